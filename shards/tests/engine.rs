//! The shard engine on real sockets: accept, receive, send and close; cancellation while an
//! operation is in the kernel; provided-buffer exhaustion; a full descriptor table; waking a
//! parked shard; the relay between two connections.
//!
//! Each test runs a one-shard `Server` whose handler uses the engine directly, and watches
//! the engine from outside through the shard's published counters.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::atomic::Ordering::Relaxed,
    thread,
    time::{Duration, Instant},
};

use futures_lite::future;
use shards::{online_cpus, Conn, EngineConfig, Server, ServerConfig, ShardInfo};

fn config(engine: EngineConfig) -> ServerConfig {
    ServerConfig {
        drain_timeout: Duration::from_millis(500),
        engine,
        ..ServerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            vec![online_cpus().unwrap()[0]],
        )
    }
}

fn small_engine() -> EngineConfig {
    EngineConfig::new(8, 16 * 1024)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Nothing held: no operation in the kernel, no head buffer lent, every relay buffer free,
/// no descriptor open.
fn all_back(shard: &ShardInfo, relay_total: u64) {
    eventually("every operation, buffer and descriptor back", || {
        // What stays in the kernel is the listener's accepts.
        shard.engine.ops_in_flight.load(Relaxed) == shards::engine::ACCEPT_DEPTH as u64
            && shard.engine.head_buffers_out.load(Relaxed) == 0
            && shard.gauges.free.load(Relaxed) == relay_total
            && shard.engine.files_open.load(Relaxed) == 0
    });
}

/// Echoes every message back until EOF.
async fn echo(mut conn: Conn) {
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    loop {
        match conn.recv(&mut buf).await {
            Ok(n) if n > 0 => {
                out.clear();
                out.extend_from_slice(&buf[..n]);
                let (r, back) = conn.send(std::mem::take(&mut out)).await;
                out = back;
                if r.is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}

#[test]
fn accept_receive_send_and_close_on_real_sockets() {
    let server = Server::start(config(small_engine()), |_ctx| {
        |conn: Conn, _peer| echo(conn)
    })
    .unwrap();
    let shard = server.shards()[0].clone();
    let mut clients: Vec<TcpStream> = (0..20).map(|_| connect(server.local_addr())).collect();
    for round in 0..3 {
        for (i, c) in clients.iter_mut().enumerate() {
            let msg = format!("round {round} client {i}\n");
            c.write_all(msg.as_bytes()).unwrap();
            let mut back = vec![0u8; msg.len()];
            c.read_exact(&mut back).unwrap();
            assert_eq!(back, msg.as_bytes());
        }
    }
    // The peer addresses came with the accepts: each shard-side connection saw its client.
    assert_eq!(shard.engine.files_open.load(Relaxed), 20);
    // Closing the client: the shard's receive sees EOF and its close reaches the client.
    let mut c = clients.pop().unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0);
    drop(clients);
    all_back(&shard, 8);
    server.shutdown_handle().trigger();
    server.join().unwrap();
}

#[test]
fn the_peer_address_and_nodelay_are_set_on_accepted_connections() {
    let server = Server::start(config(small_engine()), |_ctx| {
        |mut conn: Conn, peer: SocketAddr| async move {
            let line = format!("{peer}\n");
            let _ = conn.send(line.into_bytes()).await;
        }
    })
    .unwrap();
    let mut c = connect(server.local_addr());
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(got.trim(), c.local_addr().unwrap().to_string());
    server.shutdown_handle().trigger();
    server.join().unwrap();
}

#[test]
fn dropping_a_connection_mid_receive_and_mid_send_loses_nothing() {
    // Each task gives up after 200 ms on an operation still in the kernel: a receive that
    // no byte completes, or an 8 MiB send to a client that never reads. Its future is
    // dropped, then its connection: the slots stay orphaned until their completions, and
    // every buffer and descriptor comes back while the shard keeps running.
    let server = Server::start(config(small_engine()), |ctx| {
        let engine = ctx.engine.clone();
        move |mut conn: Conn, _peer| {
            let engine = engine.clone();
            async move {
                let mut first = [0u8; 1];
                if conn.recv(&mut first).await.unwrap_or(0) == 0 {
                    return;
                }
                let give_up = engine.sleep_until(Instant::now() + Duration::from_millis(200));
                if first[0] == b's' {
                    future::or(async { conn.send(vec![7u8; 8 << 20]).await.0 }, async {
                        give_up.await;
                        Ok(())
                    })
                    .await
                    .unwrap();
                } else {
                    future::or(async { conn.recv(&mut first).await.map(drop) }, async {
                        give_up.await;
                        Ok(())
                    })
                    .await
                    .unwrap();
                }
            }
        }
    })
    .unwrap();
    let shard = server.shards()[0].clone();
    let addr = server.local_addr();
    let mut clients = Vec::new();
    for kind in [b"r", b"s"] {
        for _ in 0..5 {
            let mut c = connect(addr);
            c.write_all(kind).unwrap();
            clients.push(c);
        }
    }
    eventually("ten connections with operations in the kernel", || {
        shard.engine.ops_in_flight.load(Relaxed) >= 10 + shards::engine::ACCEPT_DEPTH as u64
    });
    // The clients stay connected: only the shard side gives up.
    all_back(&shard, 8);
    assert!(
        shard.gauges.orphaned.load(Relaxed) >= 5,
        "no send was orphaned"
    );
    for mut c in clients {
        // Each connection was closed by the shard (after part of a send, for some).
        let mut sink = vec![0u8; 1 << 16];
        while let Ok(n) = c.read(&mut sink) {
            if n == 0 {
                break;
            }
        }
    }
    server.shutdown_handle().trigger();
    server.join().unwrap();
}

#[test]
fn the_drain_timeout_drops_tasks_with_operations_in_flight_and_every_buffer_comes_back() {
    let server = Server::start(config(small_engine()), |_ctx| {
        |mut conn: Conn, _peer| async move {
            let mut b = [0u8; 1];
            let _ = conn.recv(&mut b).await;
            // A send the client never takes, then a receive that never completes.
            let _ = conn.send(vec![1u8; 8 << 20]).await;
            let _ = conn.recv(&mut b).await;
        }
    })
    .unwrap();
    let shard = server.shards()[0].clone();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut c = connect(server.local_addr());
        c.write_all(b"x").unwrap();
        clients.push(c);
    }
    eventually("four blocked sends", || {
        shard.engine.ops_in_flight.load(Relaxed) >= 4
    });
    server.shutdown_handle().trigger();
    // The shard exits (its ring with it) after the drain timeout, with the clients still
    // connected: nothing may hang.
    server.join().unwrap();
    for mut c in clients {
        // Reset or closed: either way the connection is gone.
        let mut sink = vec![0u8; 1 << 16];
        loop {
            match c.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

#[test]
fn more_ready_connections_than_head_buffers_lose_nothing() {
    let engine = EngineConfig {
        head_buffers: 2,
        ..small_engine()
    };
    let server = Server::start(config(engine), |_ctx| |conn: Conn, _peer| echo(conn)).unwrap();
    let shard = server.shards()[0].clone();
    let mut clients: Vec<TcpStream> = (0..64).map(|_| connect(server.local_addr())).collect();
    for round in 0..5 {
        // Every client sends before any reads: 64 receives complete in the same turns with
        // only 2 head buffers between them.
        for (i, c) in clients.iter_mut().enumerate() {
            c.write_all(format!("{round}:{i:03}").as_bytes()).unwrap();
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let want = format!("{round}:{i:03}");
            let mut back = vec![0u8; want.len()];
            c.read_exact(&mut back).unwrap();
            assert_eq!(String::from_utf8(back).unwrap(), want);
        }
    }
    assert!(
        shard.engine.no_buffers.load(Relaxed) > 0,
        "the pool never ran dry"
    );
    drop(clients);
    all_back(&shard, 8);
    server.shutdown_handle().trigger();
    server.join().unwrap();
}

#[test]
fn a_full_descriptor_table_pauses_accepting_and_existing_connections_keep_working() {
    // 8 descriptors: at most 4 clients, so each could still open a backend socket.
    let engine = EngineConfig {
        files: 8,
        ..small_engine()
    };
    let server = Server::start(config(engine), |_ctx| |conn: Conn, _peer| echo(conn)).unwrap();
    let shard = server.shards()[0].clone();
    let addr = server.local_addr();
    let ping = |c: &mut TcpStream| {
        c.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping");
    };
    let mut served: Vec<TcpStream> = (0..4).map(|_| connect(addr)).collect();
    served.iter_mut().for_each(ping);
    // The fifth completes its handshake in the kernel's backlog but is not accepted.
    let mut waiting = connect(addr);
    waiting.write_all(b"wait").unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        waiting.read(&mut [0u8; 4]).is_err(),
        "accepted past the table"
    );
    assert_eq!(shard.stats.connections_accepted.load(Relaxed), 4);
    served.iter_mut().for_each(ping);
    // One closes: accepting resumes, and the waiting client's bytes were kept.
    drop(served.remove(0));
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut b = [0u8; 4];
    waiting.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"wait");
    served.iter_mut().for_each(ping);
    server.shutdown_handle().trigger();
    server.join().unwrap();
}

#[test]
fn a_parked_shard_wakes_on_a_completion() {
    let server = Server::start(config(small_engine()), |_ctx| {
        |conn: Conn, _peer| echo(conn)
    })
    .unwrap();
    let shard = server.shards()[0].clone();
    let mut c = connect(server.local_addr());
    c.write_all(b"a").unwrap();
    c.read_exact(&mut [0u8; 1]).unwrap();
    // Idle: the driver parks and stops entering the ring.
    eventually("the shard to park", || shard.engine.parks.load(Relaxed) > 0);
    thread::sleep(Duration::from_millis(300));
    let enters = shard.engine.enters.load(Relaxed);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        shard.engine.enters.load(Relaxed),
        enters,
        "an idle shard kept entering its ring"
    );
    // A completion (the client's bytes) wakes it.
    let parks = shard.engine.parks.load(Relaxed);
    c.write_all(b"b").unwrap();
    let mut b = [0u8; 1];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"b");
    assert!(shard.engine.enters.load(Relaxed) > enters);
    eventually("the shard to park again", || {
        shard.engine.parks.load(Relaxed) > parks
    });
    server.shutdown_handle().trigger();
    server.join().unwrap();
}

#[test]
fn relay_moves_exact_lengths_with_at_most_k_buffers() {
    // A backend that sends 3 MiB + 5 bytes; the handler relays exactly 3 MiB of it to the
    // client, then the 5 trailing bytes are still in the backend socket for a plain receive.
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let baddr = backend.local_addr().unwrap();
    let payload: Vec<u8> = (0..(3 << 20) + 5).map(|i| (i % 251) as u8).collect();
    let expect = payload.clone();
    let origin = thread::spawn(move || {
        let (mut s, _) = backend.accept().unwrap();
        s.write_all(&payload).unwrap();
        let mut b = [0u8; 1];
        let _ = s.read(&mut b);
    });
    let server = Server::start(config(small_engine()), move |ctx| {
        let engine = ctx.engine.clone();
        move |mut conn: Conn, _peer| {
            let engine = engine.clone();
            async move {
                let mut b = Conn::connect(&engine, baddr, Duration::from_secs(5))
                    .await
                    .unwrap();
                let n = shards::relay(&mut b, &mut conn, Some(3 << 20), 2)
                    .await
                    .unwrap();
                assert_eq!(n, 3 << 20);
                let mut tail = [0u8; 16];
                let mut got = 0;
                while got < 5 {
                    got += b.recv(&mut tail[got..]).await.unwrap();
                }
                let (r, _) = conn.send(tail[..5].to_vec()).await;
                r.unwrap();
                future::yield_now().await;
            }
        }
    })
    .unwrap();
    let shard = server.shards()[0].clone();
    let mut c = connect(server.local_addr());
    let mut got = vec![0u8; expect.len()];
    c.read_exact(&mut got).unwrap();
    assert!(got == expect, "relayed bytes differ");
    assert!(shard.gauges.transfer_max.load(Relaxed) <= 2);
    drop(c);
    origin.join().unwrap();
    all_back(&shard, 8);
    server.shutdown_handle().trigger();
    server.join().unwrap();
}

/// A shard whose handler connects each client to `backend` and tunnels between them with
/// `idle`; each tunnel's report (bytes each way, how it ended) comes back on the channel.
fn tunnel_server(
    backend: SocketAddr,
    idle: Duration,
) -> (Server, std::sync::mpsc::Receiver<(u64, u64, String)>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let server = Server::start(config(small_engine()), move |ctx| {
        let engine = ctx.engine.clone();
        let tx = tx.clone();
        move |mut conn: Conn, _peer| {
            let engine = engine.clone();
            let tx = tx.clone();
            async move {
                let mut b = Conn::connect(&engine, backend, Duration::from_secs(5))
                    .await
                    .unwrap();
                let r = shards::tunnel(&mut conn, &mut b, idle).await;
                let _ = tx.send((r.a_to_b, r.b_to_a, format!("{:?}", r.end)));
            }
        }
    })
    .unwrap();
    (server, rx)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

#[test]
fn a_tunnel_moves_both_ways_at_once_and_passes_each_half_close_on() {
    // 1 MiB each way at the same time. The client half-closes after its megabyte; the backend
    // must see that EOF (passed on) before it sends its last byte and closes.
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let baddr = backend.local_addr().unwrap();
    let up = pattern(1 << 20, 0x5a);
    let down = pattern(1 << 20, 0xa5);
    let (up2, down2) = (up.clone(), down.clone());
    let origin = thread::spawn(move || {
        let (mut s, _) = backend.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        let last = *down2.last().unwrap();
        let writer = thread::spawn(move || w.write_all(&down2[..down2.len() - 1]).unwrap());
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap(); // ends only with the client's half-close
        assert!(got == up2, "backend received different bytes");
        writer.join().unwrap();
        s.write_all(&[last]).unwrap();
    });
    let (server, reports) = tunnel_server(baddr, Duration::from_secs(30));
    let shard = server.shards()[0].clone();
    let mut c = connect(server.local_addr());
    let mut w = c.try_clone().unwrap();
    let up3 = up.clone();
    let writer = thread::spawn(move || {
        w.write_all(&up3).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert!(got == down, "client received different bytes");
    writer.join().unwrap();
    origin.join().unwrap();
    let (ab, ba, end) = reports.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((ab, ba, end.as_str()), (1 << 20, 1 << 20, "Closed"));
    drop(c);
    all_back(&shard, 8);
    server.shutdown_handle().trigger();
    server.join().unwrap();
}

#[test]
fn a_tunnel_stays_open_while_either_side_moves_bytes_and_ends_when_both_are_idle() {
    // The backend pushes 10 bytes, one every 40 ms, while the client sends nothing: the idle
    // timeout (300 ms) counts from the last byte in either direction, so the client's quiet
    // side must not end the tunnel. Then both are quiet and it ends as Idle.
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let baddr = backend.local_addr().unwrap();
    let origin = thread::spawn(move || {
        let (mut s, _) = backend.accept().unwrap();
        for i in 0..10u8 {
            s.write_all(&[b'0' + i]).unwrap();
            thread::sleep(Duration::from_millis(40));
        }
        let mut b = [0u8; 1];
        // The tunnel's end closes the backend connection too.
        assert_eq!(s.read(&mut b).unwrap(), 0);
    });
    let (server, reports) = tunnel_server(baddr, Duration::from_millis(300));
    let shard = server.shards()[0].clone();
    let mut c = connect(server.local_addr());
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"0123456789");
    let (ab, ba, end) = reports.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((ab, ba, end.as_str()), (0, 10, "Idle"));
    origin.join().unwrap();
    drop(c);
    all_back(&shard, 8);
    server.shutdown_handle().trigger();
    server.join().unwrap();
}

#[test]
fn a_reset_client_ends_the_tunnel_and_closes_the_backend() {
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let baddr = backend.local_addr().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let origin = thread::spawn(move || {
        let (mut s, _) = backend.accept().unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hello");
        ready_tx.send(()).unwrap();
        let mut rest = Vec::new();
        // Closed by the proxy once the client's reset ends the tunnel: EOF, nothing more.
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    });
    let (server, reports) = tunnel_server(baddr, Duration::from_secs(30));
    let shard = server.shards()[0].clone();
    let mut c = connect(server.local_addr());
    c.write_all(b"hello").unwrap();
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    // SO_LINGER 0: the close sends RST.
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
    let (ab, _ba, end) = reports.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(ab, 5);
    assert!(end.starts_with("Failed(A"), "ended as {end}");
    origin.join().unwrap();
    all_back(&shard, 8);
    server.shutdown_handle().trigger();
    server.join().unwrap();
}

#[test]
fn a_dropped_relay_keeps_its_write_buffer_until_the_completion_arrives() {
    // A relay from the client to a backend that never reads: its write sits in the kernel
    // with a relay buffer. The handler drops the relay and, in the same task run (no loop
    // turn in between, so no completion can have been reaped), reads the free count: the
    // write's buffer must still be out of the ring, because the kernel may still be reading
    // it. Freeing it on drop (a use-after-free of a registered buffer: the next receive
    // could overwrite bytes the kernel is sending) would show it free here.
    use std::sync::{mpsc, Arc, Mutex, OnceLock};
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let baddr = backend.local_addr().unwrap();
    let (close_tx, close_rx) = mpsc::channel::<()>();
    let origin = thread::spawn(move || {
        let (s, _) = backend.accept().unwrap();
        // Hold the connection, reading nothing, until the test is done.
        let _ = close_rx.recv_timeout(Duration::from_secs(30));
        drop(s);
    });
    let gauges: Arc<OnceLock<Arc<shards::RingGauges>>> = Arc::new(OnceLock::new());
    let (seen_tx, seen_rx) = mpsc::channel::<(u64, u64, u64)>();
    let seen_tx = Arc::new(Mutex::new(seen_tx));
    let g2 = gauges.clone();
    let server = Server::start(config(small_engine()), move |ctx| {
        let engine = ctx.engine.clone();
        let gauges = g2.clone();
        let seen = seen_tx.clone();
        move |mut conn: Conn, _peer| {
            let engine = engine.clone();
            let gauges = gauges.clone();
            let seen = seen.clone();
            async move {
                let g = gauges.get().expect("gauges published").clone();
                let mut b = Conn::connect(&engine, baddr, Duration::from_secs(5))
                    .await
                    .unwrap();
                // Give up once the transfer has held its K = 2 buffers (one in the stuck
                // write, one filled behind it) for 100 ms.
                let stuck = async {
                    let mut since: Option<Instant> = None;
                    loop {
                        engine
                            .sleep_until(Instant::now() + Duration::from_millis(10))
                            .await;
                        if g.free.load(Relaxed) == 8 - 2 {
                            let t = *since.get_or_insert_with(Instant::now);
                            if t.elapsed() >= Duration::from_millis(100) {
                                return;
                            }
                        } else {
                            since = None;
                        }
                    }
                };
                let orphaned_before = g.orphaned.load(Relaxed);
                let done = future::or(
                    async { Some(shards::relay(&mut conn, &mut b, None, 2).await) },
                    async {
                        stuck.await;
                        None
                    },
                )
                .await;
                assert!(done.is_none(), "the relay ended: {done:?}");
                // The relay future is dropped: read the gauges before any turn.
                let free = g.free.load(Relaxed);
                let orphaned = g.orphaned.load(Relaxed);
                seen.lock()
                    .unwrap()
                    .send((free, orphaned_before, orphaned))
                    .unwrap();
            }
        }
    })
    .unwrap();
    let shard = server.shards()[0].clone();
    gauges.set(shard.gauges.clone()).unwrap();
    let c = connect(server.local_addr());
    let mut w = c.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let chunk = vec![9u8; 64 * 1024];
        for _ in 0..(256 << 20) / chunk.len() {
            if w.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let (free, orphaned_before, orphaned) = seen_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the handler gave up on the relay");
    assert!(
        free < 8,
        "the stuck write's relay buffer was back in the ring before its completion (free {free})"
    );
    assert!(
        orphaned > orphaned_before,
        "the write in flight was not orphaned"
    );
    // Its completion (the cancel) gives it back.
    all_back(&shard, 8);
    close_tx.send(()).unwrap();
    origin.join().unwrap();
    let _ = c.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    server.shutdown_handle().trigger();
    server.join().unwrap();
}
