//! RLIMIT_MEMLOCK handling. A separate test binary (so a separate process)
//! because it changes the process-wide limit.

use shards::{online_cpus, raise_memlock_limit, Conn, Server, ServerConfig};

fn set_soft_limit(bytes: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on structs we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim), 0);
        lim.rlim_cur = bytes;
        assert_eq!(libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim), 0);
    }
}

fn start() -> std::io::Result<Server> {
    let config = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![online_cpus().unwrap()[0]],
    );
    Server::start(config, |_ctx| |_conn: Conn, _peer| async {})
}

#[test]
fn too_low_limit_fails_start_with_the_fix_then_raising_it_works() {
    // Below glommio's 512 KiB minimum: the shard cannot start, and start()
    // says so instead of leaving a dead shard.
    set_soft_limit(256 << 10);
    let err = start()
        .err()
        .expect("start must fail with a 256 KiB memlock limit");
    let msg = err.to_string();
    assert!(msg.contains("RLIMIT_MEMLOCK is 256 KiB"), "{msg}");
    assert!(msg.contains("ulimit -l unlimited"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");

    // Raising the soft limit up to the hard limit is always allowed; a host
    // whose hard limit is under 1 MiB (and no CAP_SYS_RESOURCE) gets the fix.
    let now = match raise_memlock_limit(1 << 20) {
        Ok(now) => now,
        Err(msg) => {
            assert!(
                msg.starts_with("RLIMIT_MEMLOCK is 256 KiB (hard limit"),
                "{msg}"
            );
            assert!(msg.contains("CAP_SYS_RESOURCE"), "{msg}");
            return;
        }
    };
    assert!(now >= 1 << 20);
    let server = start().unwrap();
    server.shutdown_handle().trigger();
    server.join().unwrap();
}
