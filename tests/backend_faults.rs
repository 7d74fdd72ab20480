//! Misbehaving backends: timeouts, truncated bodies, malformed responses.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn backend_response_timeout_gives_504() {
    let be = Backend::start(|mut conn| {
        if conn.read_request().is_ok() {
            let _ = conn.drain_to_eof(); // never answer
        }
    });
    let cr = Corelay::start(&[be.addr], &["--backend-response-timeout", "500ms"]);
    let mut c = Client::connect(cr.addr);
    let t0 = Instant::now();
    c.send(&get("/hang"));
    let r = c.read_response().expect("no response to a hanging backend");
    let took = t0.elapsed();
    assert_eq!(r.status, 504, "{}", r.status_line);
    assert!(r.has("content-length"), "{:?}", r.headers);
    assert!(
        took >= Duration::from_millis(400),
        "504 after {took:?}, before the 500ms timeout"
    );
}

#[test]
fn backend_closing_without_response_gives_502() {
    let be = Backend::start(|mut conn| {
        let _ = conn.read_request(); // then close without a byte
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/"));
    assert_eq!(r.status, 502, "{}", r.status_line);
    assert!(r.has("content-length"), "{:?}", r.headers);
}

#[test]
fn malformed_backend_responses_give_502() {
    let oversized_head = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
        "b".repeat(20_000)
    );
    let many_fields = format!(
        "HTTP/1.1 200 OK\r\n{}Content-Length: 2\r\n\r\nok",
        "X-F: 1\r\n".repeat(150)
    );
    let cases: Vec<(&str, &[u8])> = vec![
        ("bad-status", b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n"),
        ("four-digit-status", b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"),
        ("garbage", b"this is not http at all\r\n\r\n"),
        ("cl-and-te", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("differing-cl", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        ("invalid-cl", b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello"),
        ("negative-cl", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello"),
        ("field-without-colon", b"HTTP/1.1 200 OK\r\nX-Broken\r\nContent-Length: 2\r\n\r\nok"),
        ("head-over-max-header-bytes", oversized_head.as_bytes()),
        ("more-than-max-headers", many_fields.as_bytes()),
    ];
    let table: Vec<(String, Vec<u8>)> = cases
        .iter()
        .map(|(n, b)| (format!("/{n}"), b.to_vec()))
        .collect();
    let be = Backend::start(move |mut conn| {
        if let Ok(req) = conn.read_request() {
            match table.iter().find(|(p, _)| *p == req.target) {
                Some((_, bytes)) => {
                    let _ = conn.write(bytes);
                    let _ = conn.drain_to_eof();
                }
                None => {
                    let _ = conn.write(&ok_response(b"fine"));
                    let _ = conn.drain_to_eof();
                }
            }
        }
    });
    let cr = Corelay::start(&[be.addr], &["--backend-response-timeout", "3s"]);
    let mut failures = Vec::new();
    for (name, _) in &cases {
        let mut c = Client::connect(cr.addr);
        c.send(&get(&format!("/{name}")));
        match c.read_response() {
            Ok(r) if r.status == 502 && r.has("content-length") => {}
            Ok(r) => failures.push(format!(
                "{name}: got {:?} {:?} body {:?}",
                r.status_line,
                r.headers,
                r.body_str()
            )),
            Err(e) => failures.push(format!("{name}: no well-formed response: {e:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "malformed backend responses not turned into 502: {failures:#?}"
    );
    // The proxy is still healthy.
    let mut c = Client::connect(cr.addr);
    assert_eq!(c.roundtrip(&get("/ok")).body, b"fine");
}

/// What a client observed when the backend cut a response short: the head, every body
/// byte before the cut, and how the connection ended.
fn observe_cut(c: &mut Client) -> (Response, Vec<u8>, WireError) {
    c.send(&get("/"));
    let head = c
        .wire
        .read_response_head()
        .unwrap_or_else(|e| panic!("no response head before the cut: {e:?}"));
    let (end, rest) = match c.wire.read_to_eof() {
        Ok(b) => (WireError::Eof, b),
        Err((e, b)) => (e, b),
    };
    (head, rest, end)
}

/// The head corelay relays for a backend head `HTTP/1.1 200 OK` + `framing`: its own Date
/// and Via, then the backend's framing field, then the request's generated X-Request-Id.
fn assert_relayed_head(head: &Response, framing: (&str, &str)) {
    assert_eq!(head.status_line, "HTTP/1.1 200 OK");
    let names: Vec<&str> = head.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["Date", "Via", framing.0, "X-Request-Id"],
        "{:?}",
        head.headers
    );
    assert!(is_generated_request_id(
        head.header("x-request-id").unwrap()
    ));
    assert_eq!(head.header("via"), Some("1.1 corelay"));
    assert_eq!(head.header(framing.0), Some(framing.1));
}

/// A response cut short by its backend reaches the client as what the backend sent, then a
/// reset (RST): never a clean EOF, which a client could take for the end of a
/// close-delimited message, and never a completed message.
fn assert_cut(end: &WireError, rest: &[u8], sent: &[u8]) {
    assert_bytes_eq(rest, sent, "body bytes before the cut");
    assert_eq!(
        *end,
        WireError::Reset,
        "a cut response must end in a reset, not a clean close"
    );
}

/// 1000 bytes of a declared 1,000,000.
const CL_PART: usize = 1000;

fn cut_cl_backend(reset: bool) -> Backend {
    Backend::start(move |mut conn| {
        if conn.read_request().is_ok() {
            let mut v = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n".to_vec();
            v.extend(vec![b'a'; CL_PART]);
            let _ = conn.write(&v);
            if reset {
                conn.reset();
            }
        }
    })
}

/// Ten whole chunks, then a chunk cut five bytes into its data.
fn cut_chunked_body() -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..10 {
        v.extend(b"64\r\n");
        v.extend(vec![b'a'; 100]);
        v.extend(b"\r\n");
    }
    v.extend(b"64\r\naaaaa"); // cut inside a chunk
    v
}

fn cut_chunked_backend(reset: bool) -> Backend {
    Backend::start(move |mut conn| {
        if conn.read_request().is_ok() {
            let mut v = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            v.extend(cut_chunked_body());
            let _ = conn.write(&v);
            if reset {
                conn.reset();
            }
        }
    })
}

fn cl_cut(reset: bool) {
    let be = cut_cl_backend(reset);
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let (head, rest, end) = observe_cut(&mut c);
    assert_relayed_head(&head, ("Content-Length", "1000000"));
    assert_cut(&end, &rest, &[b'a'; CL_PART]);
}

fn chunked_cut(reset: bool) {
    let be = cut_chunked_backend(reset);
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let (head, rest, end) = observe_cut(&mut c);
    assert_relayed_head(&head, ("Transfer-Encoding", "chunked"));
    // Chunk bytes stream through as they come, the cut chunk's start included; no
    // last-chunk is ever made up.
    assert_cut(&end, &rest, &cut_chunked_body());
}

#[test]
fn backend_closing_mid_content_length_body_cuts_the_client() {
    cl_cut(false);
}

#[test]
fn backend_resetting_mid_content_length_body_cuts_the_client() {
    cl_cut(true);
}

#[test]
fn backend_closing_mid_chunked_body_cuts_the_client() {
    chunked_cut(false);
}

#[test]
fn backend_resetting_mid_chunked_body_cuts_the_client() {
    chunked_cut(true);
}

#[test]
fn invalid_chunk_in_backend_response_cuts_the_client() {
    // The backend keeps its connection open: the proxy must react to the
    // invalid chunk-size line itself, not to EOF. The bad line arrives with the head, before
    // corelay relayed anything, so the client gets a 502 and the connection closes.
    let be = Backend::start(|mut conn| {
        if conn.read_request().is_ok() {
            let _ = conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n");
            let _ = conn.drain_to_eof();
        }
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/"));
    assert_eq!(r.status_line, "HTTP/1.1 502 Bad Gateway");
    assert_eq!(r.body_str(), "502 Bad Gateway\n");
    assert!(r.conn_close(), "{:?}", r.headers);
    c.expect_closed();
}

#[test]
fn invalid_chunk_after_streamed_response_data_cuts_the_client() {
    // The bad chunk is sent only once the client has received the response
    // head, so corelay cannot turn it into a 502 any more.
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let go_rx = std::sync::Mutex::new(go_rx);
    let be = Backend::start(move |mut conn| {
        if conn.read_request().is_ok() {
            let _ =
                conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
            let _ = go_rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
            let _ = conn.write(b"0x5\r\nworld\r\n0\r\n\r\n");
            let _ = conn.drain_to_eof();
        }
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(&get("/"));
    let head = c
        .wire
        .read_response_head()
        .expect("response head not relayed before the body completed");
    assert_relayed_head(&head, ("Transfer-Encoding", "chunked"));
    go_tx.send(()).unwrap();
    let (end, rest) = match c.wire.read_to_eof() {
        Ok(b) => (WireError::Eof, b),
        Err((e, b)) => (e, b),
    };
    // The valid chunk, then nothing of the bad line: a reset.
    assert_cut(&end, &rest, b"5\r\nhello\r\n");
}

#[test]
fn bytes_after_a_complete_response_never_reach_another_request() {
    // The origin appends a whole extra response after the first one. A pooled
    // connection with unread bytes must not be reused: otherwise the next
    // request (here from another client) is answered with the leftover.
    let be = Backend::start(|mut conn| loop {
        let req = match conn.read_request() {
            Ok(r) => r,
            Err(_) => return,
        };
        let resp = if req.target == "/first" {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED".to_vec()
        } else {
            ok_response(req.target.as_bytes())
        };
        if conn.write(&resp).is_err() {
            return;
        }
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut a = Client::connect(cr.addr);
    let r = a.roundtrip(&get("/first"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    for i in 0..3 {
        let mut b = Client::connect(cr.addr);
        let path = format!("/second-{i}");
        b.send(&get(&path));
        match b.read_response() {
            Ok(r) => {
                assert_ne!(
                    r.body, b"SMUGGLED",
                    "a leftover response was delivered to another client"
                );
                assert_eq!((r.status, r.body_str()), (200, path.clone()));
            }
            Err(e) => panic!("{path}: {e:?}"),
        }
    }
}

#[test]
fn unsolicited_bytes_on_an_idle_pooled_connection_are_not_relayed() {
    // The origin sends a complete extra response on the connection after it
    // went idle in corelay's pool. Reusing that connection would hand the
    // unsolicited response to the next request (another client here).
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let tx = std::sync::Mutex::new(tx);
    let be = Backend::start(move |mut conn| loop {
        let req = match conn.read_request() {
            Ok(r) => r,
            Err(_) => return,
        };
        if conn.write(&ok_response(req.target.as_bytes())).is_err() {
            return;
        }
        if req.target == "/first" {
            std::thread::sleep(Duration::from_millis(100));
            if conn
                .write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED")
                .is_err()
            {
                return;
            }
            let _ = tx.lock().unwrap().send(());
        }
    });
    let cr = Corelay::start(&[be.addr], &["--backend-idle-timeout", "10s"]);
    let mut a = Client::connect(cr.addr);
    assert_eq!(a.roundtrip(&get("/first")).body, b"/first");
    rx.recv_timeout(Duration::from_secs(5))
        .expect("origin did not send the unsolicited bytes");
    let mut b = Client::connect(cr.addr);
    b.send(&get("/second"));
    match b.read_response() {
        Ok(r) => {
            assert_ne!(
                r.body, b"SMUGGLED",
                "an unsolicited response was delivered to another client"
            );
            assert_eq!((r.status, r.body_str().as_str()), (200, "/second"));
        }
        Err(e) => panic!("/second: {e:?}"),
    }
}

#[test]
fn backend_answering_before_reading_the_body_is_relayed_not_502() {
    // The backend reads only the head of a 64 MiB upload (far more than socket buffers
    // hold), answers 413 and closes with the body unread, so its kernel resets the
    // connection while corelay is still sending: the client must get that 413.
    let be = Backend::start(|conn| {
        let mut wire = conn.wire;
        if wire.read_head(1 << 20).is_ok() {
            let _ = wire.write_all(
                b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large",
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let body = vec![b'x'; 64 << 20];
    let mut req = format!(
        "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    // The client keeps writing while corelay answers; its write may fail once corelay closes.
    let stream = c.stream().try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut s = stream;
        let _ = std::io::Write::write_all(&mut s, &req);
    });
    let r = c.read_response().expect("no response");
    assert_eq!(r.status, 413, "{}", r.status_line);
    assert_eq!(r.body, b"too large");
    assert!(
        r.conn_close(),
        "the unread body means the connection must close"
    );
    let _ = writer.join();
}

/// A listener whose accept queue is full and never drained: a new connection's SYN is
/// dropped, so connecting to it hangs (on loopback a refused or unroutable address fails at
/// once instead). Keep the returned sockets alive for as long as it must stay full.
fn full_backlog_listener() -> (std::net::SocketAddr, Vec<std::net::TcpStream>) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    // Backlog 0 holds one connection; connect until one hangs.
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    std::mem::forget(sock); // the listener stays open (never accepting) for the test
    (addr, fillers)
}

#[test]
fn backend_connect_timeout_gives_504() {
    let (addr, _fillers) = full_backlog_listener();
    let cr = Corelay::start_with_metrics(&[addr], &["--backend-connect-timeout", "300ms"]);
    let mut c = Client::connect(cr.addr);
    let t0 = Instant::now();
    let r = c.roundtrip(&get("/"));
    assert_eq!(r.status, 504, "{}", r.status_line);
    assert!(r.has("content-length"), "{:?}", r.headers);
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(cr.metric("corelay_backend_connect_errors_total"), 1.0);
}

#[test]
fn a_refusing_backend_is_skipped_for_the_retry_backoff_then_tried_again() {
    let good = Backend::http(|req| ok_response(req.target.as_bytes()));
    let dead = dead_addr();
    // A long back-off: once refused, the dead backend is not tried again at all.
    let cr = Corelay::start_with_metrics(&[dead, good.addr], &["--backend-retry-backoff", "1h"]);
    let statuses: Vec<u16> = (0..20)
        .map(|i| {
            Client::connect(cr.addr)
                .roundtrip(&get(&format!("/r{i}")))
                .status
        })
        .collect();
    assert_eq!(
        cr.metric("corelay_backend_connect_errors_total"),
        1.0,
        "{statuses:?}"
    );
    // The refused connect moves on to the next backend: no client sees the refusal.
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(good.requests().len(), 20);
    drop(cr);
    // A short one: after it expires the dead backend is tried again (a second refusal).
    let cr = Corelay::start_with_metrics(&[dead, good.addr], &["--backend-retry-backoff", "200ms"]);
    let mut first_refusal = None;
    let mut i = 0;
    eventually(
        Duration::from_secs(20),
        "the dead backend tried again",
        || {
            i += 1;
            // Taken before the request: no later than the refusal it may cause.
            let sent = Instant::now();
            let r = Client::connect(cr.addr).roundtrip(&get(&format!("/s{i}")));
            assert_eq!(r.status, 200, "{}", r.status_line);
            let errors = cr.metric("corelay_backend_connect_errors_total");
            if errors >= 1.0 && first_refusal.is_none() {
                first_refusal = Some(sent);
            }
            errors >= 2.0
        },
    );
    let gap = first_refusal.expect("a first refusal").elapsed();
    assert!(
        gap >= Duration::from_millis(200),
        "tried again {gap:?} after the first refusal, within the 200 ms back-off"
    );
}
