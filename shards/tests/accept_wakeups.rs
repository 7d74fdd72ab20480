//! The shard's root task (the accept loop) is woken once per accepted connection for the
//! whole life of the process. Nothing it awaits alongside may keep a waker per wake-up:
//! glommio counts a task's wakers in an `i16` and panics the shard at 32,767. The soak found
//! this (docs/benchmarks.md): the remote shutdown wait was a glommio file read, whose
//! `collect_rw` stores a new waker on every poll.

use std::{
    io::Read,
    net::{SocketAddr, TcpStream as StdStream},
    time::Duration,
};

use shards::{online_cpus, Conn, Server, ServerConfig, ShardContext};

/// More wake-ups of the accept loop than glommio's reference count can hold.
const CONNECTIONS: usize = 33_000;

fn close_at_once(
    _ctx: &ShardContext,
) -> impl Fn(Conn, SocketAddr) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    |conn, _peer| Box::pin(async move { drop(conn) })
}

#[test]
fn a_shard_survives_more_accepts_than_a_task_has_references() {
    let cpu = online_cpus().unwrap()[0];
    let config = ServerConfig {
        backlog: 128,
        drain_timeout: Duration::from_secs(5),
        ..ServerConfig::new("127.0.0.1:0".parse().unwrap(), vec![cpu])
    };
    let server = Server::start(config, close_at_once).unwrap();
    let addr = server.local_addr();
    for i in 0..CONNECTIONS {
        // One at a time, so that each connection is its own wake-up of the accept loop.
        let mut s = StdStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let n = s
            .read(&mut [0u8; 1])
            .unwrap_or_else(|e| panic!("connection {i}: no close from the shard: {e}"));
        assert_eq!(n, 0, "connection {i}");
    }
    let accepted: u64 = server
        .shards()
        .iter()
        .map(|s| s.stats.snapshot().connections_accepted)
        .sum();
    assert_eq!(accepted, CONNECTIONS as u64);
    server.shutdown_handle().trigger();
    server.join().expect("the shard ended without a panic");
}
