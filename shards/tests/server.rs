//! End-to-end tests over real sockets: shards start, serve, count and shut
//! down.

use std::{
    cell::Cell,
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream as StdStream},
    rc::Rc,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures_lite::future;
use shards::{online_cpus, Conn, Server, ServerConfig, ShardContext, Shutdown, StatsSnapshot};

/// Two CPUs for two shards; on a one-CPU machine both shards share it,
/// which the server allows (only `select_cpus` insists on distinct CPUs).
fn two_cpus() -> Vec<usize> {
    let online = online_cpus().unwrap();
    vec![online[0], *online.get(1).unwrap_or(&online[0])]
}

fn config(drain_timeout: Duration) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        cpus: two_cpus(),
        backlog: 128,
        drain_timeout,
        ..ServerConfig::new("127.0.0.1:0".parse().unwrap(), two_cpus())
    }
}

fn totals(server: &Server) -> StatsSnapshot {
    server.shards().iter().map(|s| s.stats.snapshot()).sum()
}

fn connect(addr: SocketAddr) -> StdStream {
    let s = StdStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Polls `cond` for up to 5 s; counters are updated by other threads.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Echoes until EOF; when shutdown begins, stops between reads and closes,
/// the way a keep-alive HTTP handler closes idle connections.
fn echo_handler(
    ctx: &ShardContext,
) -> impl Fn(Conn, SocketAddr) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    let shutdown = ctx.shutdown.clone();
    // Rc state is fine: the handler never leaves its shard.
    let served = Rc::new(Cell::new(0u64));
    move |stream, _peer| Box::pin(echo(stream, shutdown.clone(), served.clone()))
}

async fn echo(mut conn: Conn, shutdown: Shutdown, served: Rc<Cell<u64>>) {
    served.set(served.get() + 1);
    let mut buf = vec![0u8; 1024];
    loop {
        let read = future::or(async { Some(conn.recv(&mut buf).await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        match read {
            Some(Ok(n)) if n > 0 => {
                let out = buf[..n].to_vec();
                if conn.send(out).await.0.is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}

#[test]
fn two_shards_echo_count_and_shut_down() {
    let server = Server::start(config(Duration::from_secs(5)), echo_handler).unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    assert_eq!(server.shards().len(), 2);
    assert_eq!(server.shards()[1].index, 1);

    const CONNS: u64 = 16;
    for i in 0..CONNS {
        let mut s = connect(addr);
        let msg = format!("hello {i}");
        s.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0; msg.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, msg.as_bytes());
    }
    eventually("all connections to close", || {
        let t = totals(&server);
        t.connections_accepted == CONNS && t.connections_open == 0
    });
    assert_eq!(totals(&server).accept_errors, 0);

    // An idle keep-alive connection must not hold shutdown up: the handler
    // sees the signal and closes it.
    let mut idle = connect(addr);
    idle.write_all(b"x").unwrap();
    idle.read_exact(&mut [0u8; 1]).unwrap();
    eventually("idle connection to be open", || {
        totals(&server).connections_open == 1
    });

    let stats: Vec<_> = server.shards().iter().map(|s| s.stats.clone()).collect();
    let handle = server.shutdown_handle();
    let started = Instant::now();
    std::thread::spawn(move || handle.trigger());
    server.join().unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");

    assert_eq!(idle.read(&mut [0u8; 1]).unwrap(), 0, "expected EOF");
    let open: u64 = stats.iter().map(|s| s.snapshot().connections_open).sum();
    assert_eq!(open, 0);
    let err = StdStream::connect(addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn max_connections_pauses_accepting_until_one_closes() {
    let mut cfg = config(Duration::from_secs(5));
    cfg.cpus.truncate(1);
    cfg.max_connections = 2;
    let server = Server::start(cfg, echo_handler).unwrap();
    let addr = server.local_addr();
    let echo_once = |s: &mut StdStream| {
        s.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
    };
    let mut a = connect(addr);
    let mut b = connect(addr);
    echo_once(&mut a);
    echo_once(&mut b);
    // The third connection completes in the kernel's backlog but is not accepted.
    let mut c = connect(addr);
    c.write_all(b"y").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        c.read(&mut [0u8; 1]).is_err(),
        "served past max_connections"
    );
    assert_eq!(totals(&server).connections_accepted, 2);
    drop(a);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut back = [0u8; 1];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"y");
    assert_eq!(totals(&server).connections_accepted, 3);
}

#[test]
fn reuseport_spreads_connections_over_both_shards() {
    let server = Server::start(config(Duration::from_secs(5)), echo_handler).unwrap();
    let addr = server.local_addr();
    // The kernel hashes each connection's 4-tuple to a listener; with enough
    // connections from different source ports both shards get some.
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(connect(addr));
    }
    eventually("64 accepts", || totals(&server).connections_accepted == 64);
    for shard in server.shards() {
        assert!(
            shard.stats.snapshot().connections_accepted > 0,
            "shard {} got no connections",
            shard.index
        );
    }
    drop(held);
    server.shutdown_handle().trigger();
    server.join().unwrap();
}

#[test]
fn drain_timeout_drops_stuck_connections() {
    let server = Server::start(config(Duration::from_millis(200)), |_ctx| {
        // Ignores shutdown and waits for a request that never comes. (It
        // must wait on real I/O: a task that registers no waker anywhere,
        // like future::pending(), is dropped by glommio right away.)
        |mut conn: Conn, _peer| async move {
            let _ = conn.recv(&mut [0u8; 1]).await;
        }
    })
    .unwrap();
    let addr = server.local_addr();
    let mut stuck = connect(addr);
    eventually("stuck connection to be open", || {
        totals(&server).connections_open == 1
    });

    let started = Instant::now();
    server.shutdown_handle().trigger();
    server.join().unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(190),
        "did not wait for drain: {took:?}"
    );
    assert!(took < Duration::from_secs(2), "drain took {took:?}");
    // The connection was dropped with the executor.
    let mut buf = [0u8; 1];
    match stuck.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection to be closed, got {other:?}"),
    }
}

#[test]
fn handler_factory_runs_once_per_shard_on_its_cpu() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let cpus = two_cpus();
    let server = Server::start(config(Duration::from_secs(1)), move |ctx| {
        seen.fetch_add(1, Ordering::SeqCst);
        assert_eq!(
            std::thread::current().name(),
            Some(&*format!("shard-{}", ctx.index))
        );
        assert_ne!(ctx.local_addr.port(), 0);
        // The thread is pinned to exactly the shard's CPU.
        assert_eq!(current_affinity(), vec![ctx.cpu]);
        |_conn: Conn, _peer| async {}
    })
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let got: Vec<usize> = server.shards().iter().map(|s| s.cpu).collect();
    assert_eq!(got, cpus);
    // Dropping the server shuts it down and joins.
    drop(server);
}

fn current_affinity() -> Vec<usize> {
    // SAFETY: zeroed cpu_set_t is valid; the kernel fills it in.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set),
            0
        );
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

#[test]
fn panicking_factory_fails_start() {
    let err = Server::start(config(Duration::from_secs(1)), |ctx| {
        if ctx.index == 1 {
            panic!("no backends for shard 1");
        }
        |_conn: Conn, _peer| async {}
    })
    .err()
    .expect("start must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("shard 1") && msg.contains("no backends"),
        "{msg}"
    );
}

#[test]
fn bad_cpu_fails_start() {
    let mut cfg = config(Duration::from_secs(1));
    cfg.cpus = vec![online_cpus().unwrap()[0], 1000];
    let err = Server::start(cfg, |_ctx| |_conn: Conn, _peer| async {})
        .err()
        .expect("start must fail");
    let msg = err.to_string();
    assert!(msg.contains("shard 1 (CPU 1000)"), "{msg}");
}

#[test]
fn bind_error_surfaces_before_any_thread() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = config(Duration::from_secs(1));
    cfg.listen = taken.local_addr().unwrap();
    let err = Server::start(cfg, |_ctx| |_conn: Conn, _peer| async {})
        .err()
        .expect("start must fail");
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
}

#[test]
fn empty_cpu_list_is_rejected() {
    let mut cfg = config(Duration::from_secs(1));
    cfg.cpus.clear();
    let err = Server::start(cfg, |_ctx| |_conn: Conn, _peer| async {})
        .err()
        .expect("start must fail");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}
