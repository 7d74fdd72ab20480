//! Upgrade tunnels with a real WebSocket implementation on both ends (tungstenite): the
//! handshake, a server push before the client sends, 1 MiB messages both ways, the close
//! handshake, a backend that refuses the upgrade, a client that vanishes mid-tunnel, the idle
//! timeout, a route that refuses upgrades, and tunnels leaving request admission.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Client, Corelay, Wire};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::server::{Request, Response};
use tungstenite::{Message, WebSocket};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// A WebSocket backend: records each handshake's Upgrade and Connection headers, then runs
/// `serve` on the socket.
fn ws_backend(
    serve: impl Fn(WebSocket<TcpStream>) + Send + Sync + 'static,
) -> (SocketAddr, Arc<Mutex<Vec<(String, String)>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let serve = Arc::new(serve);
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let seen = seen2.clone();
            let serve = serve.clone();
            thread::spawn(move || {
                let cb = |req: &Request, resp: Response| {
                    let h = |n: &str| {
                        req.headers()
                            .get(n)
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default()
                    };
                    seen.lock().unwrap().push((h("upgrade"), h("connection")));
                    Ok(resp)
                };
                if let Ok(ws) = tungstenite::accept_hdr(s, cb) {
                    serve(ws);
                }
            });
        }
    });
    (addr, seen)
}

fn ws_connect(proxy: SocketAddr) -> WebSocket<TcpStream> {
    let s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!("ws://{proxy}/ws").into_client_request().unwrap();
    let (ws, resp) = tungstenite::client(req, s).expect("handshake through corelay");
    assert_eq!(resp.status(), 101);
    ws
}

fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// No tunnel, client connection, head buffer or relay buffer left on the shard.
fn all_released(c: &Corelay) {
    eventually("tunnels and buffers released", || {
        c.metric("corelay_tunnels_open") == 0.0
            && c.metric("corelay_connections_open") == 0.0
            && c.metric("corelay_engine_head_buffers_held") == 0.0
            && c.metric("corelay_relay_buffers_free") == c.metric("corelay_relay_buffers_total")
    });
}

#[test]
fn websocket_push_megabyte_messages_and_close_through_the_tunnel() {
    let (backend, seen) = ws_backend(|mut ws| {
        // The server speaks first: the push must reach a client that has sent nothing yet.
        ws.send(Message::text("hello")).unwrap();
        loop {
            match ws.read() {
                Ok(Message::Binary(b)) => {
                    // Echo, and a different megabyte of its own.
                    ws.send(Message::binary(b)).unwrap();
                    ws.send(Message::binary(pattern(1 << 20, 0x33))).unwrap();
                }
                // tungstenite answers the Close itself; the next read ends the stream.
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let log = std::env::temp_dir().join(format!("corelay-ws-log-{}", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let c = Corelay::start_with_metrics(
        &[backend],
        &[
            "--access-log",
            log.to_str().unwrap(),
            "--access-log-format",
            "json",
        ],
    );
    let mut ws = ws_connect(c.addr);
    assert_eq!(ws.read().unwrap(), Message::text("hello"));
    let up = pattern(1 << 20, 0x5a);
    ws.send(Message::binary(up.clone())).unwrap();
    assert!(ws.read().unwrap().into_data() == up, "echo differs");
    assert!(
        ws.read().unwrap().into_data() == pattern(1 << 20, 0x33),
        "push differs"
    );
    assert_eq!(c.metric("corelay_tunnels_open"), 1.0);
    // The close handshake: our Close, the server's Close back, then the end of the stream.
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("close handshake: {e}"),
        }
    }
    assert_eq!(
        *seen.lock().unwrap(),
        vec![("websocket".to_string(), "upgrade".to_string())]
    );
    drop(ws);
    all_released(&c);
    assert_eq!(c.metric("corelay_tunnels_total"), 1.0);
    // One line for the tunnel: the 101, the bytes each way after the handshake (the frames:
    // 1 MiB up with its 14-byte masked header and a 6-byte close frame; hello, two 1 MiB binaries
    // and a 2-byte close frame down), and how long it lasted.
    let mut line = String::new();
    eventually("the tunnel's log line", || {
        line = std::fs::read_to_string(&log).unwrap_or_default();
        line.contains("\"status\":101")
    });
    assert_eq!(line.lines().count(), 1, "{line}");
    let num = |key: &str| -> u64 {
        let at = line
            .find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("{key} in {line}"));
        let rest = &line[at + key.len() + 3..];
        rest[..rest.find([',', '}']).unwrap()].parse().unwrap()
    };
    assert_eq!(num("bytes_received"), (1 << 20) + 14 + 6);
    assert_eq!(num("bytes"), 7 + 2 * ((1 << 20) + 10) + 2);
}

#[test]
fn a_refused_upgrade_is_an_ordinary_response_and_early_bytes_are_the_next_request() {
    // A backend that answers the upgrade request with a 200. The client sent its next
    // request right behind the upgrade request: it must not reach the backend before the
    // 200 (it might have been the new protocol's first bytes), and then it is a request.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = l.local_addr().unwrap();
    let origin = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut w = Wire::new(s);
        let first = w.read_request().unwrap();
        assert_eq!(first.target, "/ws");
        assert_eq!(first.header("upgrade"), Some("websocket"));
        // Nothing else may arrive while the upgrade is undecided.
        thread::sleep(Duration::from_millis(200));
        assert!(
            w.buffered().is_empty(),
            "bytes past the upgrade request arrived early"
        );
        let stream = &w.stream;
        stream.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let early = stream.peek(&mut b);
        assert!(
            matches!(&early, Err(e) if e.kind() == ErrorKind::WouldBlock),
            "bytes past the upgrade request arrived early: {early:?}"
        );
        stream.set_nonblocking(false).unwrap();
        w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno")
            .unwrap();
        let second = w.read_request().unwrap();
        assert_eq!(second.target, "/next");
        assert!(!second.has("upgrade"));
        w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes")
            .unwrap();
    });
    let c = Corelay::start_with_metrics(&[backend], &[]);
    let mut client = Client::connect(c.addr);
    client.send(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\
          GET /next HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    let r = client.read_response().unwrap();
    assert_eq!((r.status, r.body_str().as_str()), (200, "no"));
    let r = client.read_response().unwrap();
    assert_eq!((r.status, r.body_str().as_str()), (200, "yes"));
    origin.join().unwrap();
    assert_eq!(c.metric("corelay_tunnels_total"), 0.0);
}

#[test]
fn a_client_that_vanishes_mid_tunnel_closes_the_backend_and_returns_every_buffer() {
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    let closed_tx = Mutex::new(closed_tx);
    let (backend, _) = ws_backend(move |mut ws| {
        ws.send(Message::text("ready")).unwrap();
        // Reads until the proxy closes its side: a clean end or an error, never a hang.
        let end = loop {
            match ws.read() {
                Ok(_) => {}
                Err(e) => break e.to_string(),
            }
        };
        let _ = closed_tx.lock().unwrap().send(end);
    });
    let c = Corelay::start_with_metrics(&[backend], &[]);
    let mut ws = ws_connect(c.addr);
    assert_eq!(ws.read().unwrap(), Message::text("ready"));
    // Half a frame, then the client is gone.
    ws.get_mut()
        .write_all(&[0x82, 0x7e, 0x10, 0x00, 1, 2, 3])
        .unwrap();
    drop(ws);
    closed_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the backend side was not closed");
    all_released(&c);
}

#[test]
fn an_idle_tunnel_is_closed_after_the_tunnel_idle_timeout() {
    let (backend, _) = ws_backend(|mut ws| while ws.read().is_ok() {});
    let c = Corelay::start_with_metrics(&[backend], &["--tunnel-idle-timeout", "300ms"]);
    let mut ws = ws_connect(c.addr);
    ws.send(Message::text("one")).unwrap();
    // Nothing moves now; the proxy closes both sides.
    let mut b = [0u8; 1];
    let n = ws.get_mut().read(&mut b).expect("closed, not reset");
    assert_eq!(n, 0, "expected the end of the stream");
    all_released(&c);
}

#[test]
fn a_route_with_an_empty_upgrade_list_strips_the_offer() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = l.local_addr().unwrap();
    let origin = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut w = Wire::new(s);
        let r = w.read_request().unwrap();
        assert!(!r.has("upgrade") && !r.has("connection"), "{:?}", r.headers);
        w.write_all(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    });
    let dir = std::env::temp_dir().join(format!("corelay-ws-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("noupgrade.toml");
    std::fs::write(
        &file,
        format!(
            "backends = [\"{backend}\"]\n\n[[routes]]\npath = \"/\"\ngroup = \"default\"\nupgrade = []\n"
        ),
    )
    .unwrap();
    let c = Corelay::start(&[], &["--config", file.to_str().unwrap()]);
    let mut client = Client::connect(c.addr);
    let r = client.roundtrip(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert_eq!(r.status, 426);
    origin.join().unwrap();
}

#[test]
fn an_open_tunnel_does_not_hold_a_request_slot() {
    // One request in flight per core and no queue: the tunnel must have left admission, or
    // the plain request after it gets 503.
    let (ws_addr, _) = ws_backend(|mut ws| while ws.read().is_ok() {});
    let c = Corelay::start_with_metrics(
        &[ws_addr],
        &["--max-requests-per-core", "1", "--queue-size", "0"],
    );
    let mut ws = ws_connect(c.addr);
    ws.send(Message::text("keep me open")).unwrap();
    assert_eq!(c.metric("corelay_tunnels_open"), 1.0);
    // The WebSocket backend answers a plain GET with 400 (not a handshake): any answer from
    // the backend shows the request was admitted.
    let mut client = Client::connect(c.addr);
    let r = client.roundtrip(b"GET /plain HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert_ne!(r.status, 503, "the tunnel held the only request slot");
    assert_eq!(c.metric("corelay_tunnels_open"), 1.0);
}
