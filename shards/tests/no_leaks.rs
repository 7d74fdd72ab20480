//! Starting and stopping servers must not leak sockets or io_uring
//! instances, including connections dropped at the drain timeout. A separate
//! test binary so that no other test opens fds meanwhile.

use std::{io::Write, net::TcpStream as StdStream, time::Duration};

use shards::{online_cpus, Conn, Server, ServerConfig};

/// Targets of this process's open fds, e.g. "socket:[123]".
fn open_fds() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .map(|p| p.display().to_string())
        .collect()
}

fn count(fds: &[String], kind: &str) -> usize {
    fds.iter().filter(|f| f.contains(kind)).count()
}

#[test]
fn start_stop_cycles_leak_no_sockets_or_rings() {
    let online = online_cpus().unwrap();
    let cpus = vec![online[0], *online.get(1).unwrap_or(&online[0])];
    let before = open_fds();
    const ROUNDS: usize = 4;
    for round in 0..ROUNDS {
        let config = ServerConfig {
            drain_timeout: Duration::from_millis(100),
            ..ServerConfig::new("127.0.0.1:0".parse().unwrap(), cpus.clone())
        };
        // Waits for one byte, ignoring shutdown, so idle connections are
        // only closed by the drain timeout.
        let server = Server::start(config, |_ctx| {
            |mut conn: Conn, _peer| async move {
                let _ = conn.recv(&mut [0u8; 1]).await;
            }
        })
        .unwrap();
        let mut clients = Vec::new();
        for i in 0..4 {
            let mut c = StdStream::connect(server.local_addr()).unwrap();
            if (round + i) % 2 == 0 {
                c.write_all(b"x").unwrap();
            }
            clients.push(c);
        }
        std::thread::sleep(Duration::from_millis(50));
        server.shutdown_handle().trigger();
        server.join().unwrap();
    }
    let after = open_fds();
    assert_eq!(
        count(&after, "socket:"),
        count(&before, "socket:"),
        "{after:?}"
    );
    assert_eq!(
        count(&after, "io_uring"),
        count(&before, "io_uring"),
        "{after:?}"
    );
    // glommio 0.9 itself never closes each executor's sleep-notifier eventfd
    // (reproducible with a bare LocalExecutor); anything beyond that is ours.
    let leaked_eventfds = count(&after, "eventfd") - count(&before, "eventfd");
    assert!(leaked_eventfds <= ROUNDS * cpus.len(), "{after:?}");
}
