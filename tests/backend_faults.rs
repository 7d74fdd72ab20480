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
    assert!(took < Duration::from_secs(3), "504 after {took:?}");
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

/// What a client observed when the backend cut a response short.
fn observe_cut(c: &mut Client) -> Option<(Response, Vec<u8>)> {
    c.send(&get("/"));
    let head = match c.wire.read_response_head() {
        Ok(h) => h,
        Err(e) if e.is_closed() => return None, // cut before the head: fine
        Err(e) => panic!("client got {e:?} instead of a cut connection"),
    };
    if head.status == 502 {
        // A proxy that buffers may still turn it into an error response.
        return None;
    }
    // read_to_eof returns what was already buffered plus everything up to EOF.
    let rest = match c.wire.read_to_eof() {
        Ok(b) => b,
        Err((WireError::Reset, b)) => b,
        Err((e, b)) => panic!(
            "client connection was not cut after the backend died ({e:?} after {} body bytes): a hung proxy",
            b.len()
        ),
    };
    Some((head, rest))
}

fn assert_not_complete(head: &Response, rest: &[u8], declared: usize) {
    let te = head.header_list("transfer-encoding");
    if te
        .last()
        .map(|t| t.eq_ignore_ascii_case("chunked"))
        .unwrap_or(false)
    {
        assert!(
            !matches!(decode_chunked(rest), Chunked::Complete { .. }),
            "client received a complete chunked message from a truncated response"
        );
        assert!(
            !contains(rest, b"\r\n0\r\n\r\n"),
            "client received a last-chunk terminator"
        );
    } else if let Some(cl) = head.header("content-length") {
        assert_eq!(cl, declared.to_string(), "Content-Length changed");
        assert!(
            rest.len() < declared,
            "client received {} of {declared} bytes: a complete message",
            rest.len()
        );
    } else {
        panic!("a truncated response was relayed without framing (close-delimited looks complete): {:?}", head.headers);
    }
}

fn cut_cl_backend(reset: bool) -> Backend {
    Backend::start(move |mut conn| {
        if conn.read_request().is_ok() {
            let mut v = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n".to_vec();
            v.extend(vec![b'a'; 1000]);
            let _ = conn.write(&v);
            if reset {
                conn.reset();
            }
        }
    })
}

fn cut_chunked_backend(reset: bool) -> Backend {
    Backend::start(move |mut conn| {
        if conn.read_request().is_ok() {
            let mut v = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for _ in 0..10 {
                v.extend(b"64\r\n");
                v.extend(vec![b'a'; 100]);
                v.extend(b"\r\n");
            }
            v.extend(b"64\r\naaaaa"); // cut inside a chunk
            let _ = conn.write(&v);
            if reset {
                conn.reset();
            }
        }
    })
}

#[test]
fn backend_closing_mid_content_length_body_cuts_the_client() {
    let be = cut_cl_backend(false);
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    if let Some((head, rest)) = observe_cut(&mut c) {
        assert_not_complete(&head, &rest, 1_000_000);
    }
}

#[test]
fn backend_resetting_mid_content_length_body_cuts_the_client() {
    let be = cut_cl_backend(true);
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    if let Some((head, rest)) = observe_cut(&mut c) {
        assert_not_complete(&head, &rest, 1_000_000);
    }
}

#[test]
fn backend_closing_mid_chunked_body_cuts_the_client() {
    let be = cut_chunked_backend(false);
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    if let Some((head, rest)) = observe_cut(&mut c) {
        assert_not_complete(&head, &rest, 0);
    }
}

#[test]
fn backend_resetting_mid_chunked_body_cuts_the_client() {
    let be = cut_chunked_backend(true);
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    if let Some((head, rest)) = observe_cut(&mut c) {
        assert_not_complete(&head, &rest, 0);
    }
}

#[test]
fn invalid_chunk_in_backend_response_cuts_the_client() {
    // The backend keeps its connection open: the proxy must react to the
    // invalid chunk-size line itself, not to EOF.
    let be = Backend::start(|mut conn| {
        if conn.read_request().is_ok() {
            let _ = conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n");
            let _ = conn.drain_to_eof();
        }
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    if let Some((head, rest)) = observe_cut(&mut c) {
        assert_not_complete(&head, &rest, 0);
    }
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
    assert_eq!(head.status, 200, "{}", head.status_line);
    go_tx.send(()).unwrap();
    let rest = match c.wire.read_to_eof() {
        Ok(b) => b,
        Err((WireError::Reset, b)) => b,
        Err((e, b)) => panic!(
            "client connection not cut after an invalid chunk ({e:?}, {} body bytes)",
            b.len()
        ),
    };
    assert_not_complete(&head, &rest, 0);
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
