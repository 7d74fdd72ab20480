//! Persistent connections on both sides: reuse, pipelining, bodiless
//! responses, 100-continue, HTTP/1.0 rules, idle timeouts, the stale
//! keep-alive race.

mod common;
use common::*;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn hundred_sequential_requests_use_one_backend_connection() {
    let be = Backend::http(|req| ok_response(req.target.as_bytes()));
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    for i in 0..100 {
        let path = format!("/r{i}");
        let r = c.roundtrip(&get(&path));
        assert_eq!((r.status, r.body_str()), (200, path));
    }
    let reqs = be.wait_requests(100, WAIT);
    assert_eq!(
        be.connections(),
        1,
        "backend connections for 100 sequential requests"
    );
    assert!(reqs.iter().all(|r| r.conn == 0));
    let targets: Vec<String> = reqs.iter().map(|r| r.target.clone()).collect();
    let expected: Vec<String> = (0..100).map(|i| format!("/r{i}")).collect();
    assert_eq!(targets, expected);
}

#[test]
fn mixed_requests_reuse_the_backend_connection() {
    let be = Backend::http(|req| {
        if req.method == "HEAD" {
            b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n".to_vec()
        } else {
            ok_response(&req.body)
        }
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    assert_eq!(c.roundtrip(&post("/a", b"first")).body, b"first");
    let mut chunked = b"POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    chunked.extend(chunk_encode(b"second body", 4));
    assert_eq!(c.roundtrip(&chunked).body, b"second body");
    c.send(b"HEAD /c HTTP/1.1\r\nHost: h\r\n\r\n");
    let r = c.read_head_response().expect("HEAD response");
    assert_eq!(r.header("content-length"), Some("7"));
    assert_eq!(c.roundtrip(&get("/d")).status, 200);
    assert_eq!(c.roundtrip(&post("/e", b"")).status, 200);
    be.wait_requests(5, WAIT);
    assert_eq!(be.connections(), 1);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let be = Backend::http(|req| {
        if req.target == "/slow" {
            thread::sleep(Duration::from_millis(300));
        }
        ok_response(format!("{}:{}", req.target, String::from_utf8_lossy(&req.body)).as_bytes())
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let mut all = get("/slow");
    all.extend(post("/post", b"body-b"));
    all.extend(get("/fast"));
    c.send(&all);
    let bodies: Vec<String> = (0..3)
        .map(|i| {
            c.read_response()
                .unwrap_or_else(|e| panic!("pipelined response {i}: {e:?}"))
                .body_str()
        })
        .collect();
    assert_eq!(bodies, vec!["/slow:", "/post:body-b", "/fast:"]);
}

#[test]
fn head_response_keeps_content_length_and_has_no_body() {
    let be = Backend::http(|req| {
        if req.method == "HEAD" {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\r\n".to_vec()
        } else {
            ok_response(b"next")
        }
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(b"HEAD /file HTTP/1.1\r\nHost: h\r\n\r\n");
    let r = c.read_head_response().expect("HEAD response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1234"));
    assert!(!r.has("transfer-encoding"), "{:?}", r.headers);
    // No stray body bytes, no hang: the next response starts right away.
    let r = c.roundtrip(&get("/next"));
    assert_eq!((r.status, r.body_str().as_str()), (200, "next"));
    assert_eq!(be.requests()[0].method, "HEAD");
}

#[test]
fn no_content_204_has_no_body() {
    let be = Backend::http(|req| {
        if req.target == "/204" {
            b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\nX-A: 1\r\n\r\n".to_vec()
        } else {
            ok_response(b"next")
        }
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/204"));
    assert_eq!(r.status_line, "HTTP/1.1 204 No Content");
    assert!(!r.has("transfer-encoding"), "{:?}", r.headers);
    assert_eq!(r.header("x-a"), Some("1"));
    let r = c.roundtrip(&get("/next"));
    assert_eq!((r.status, r.body_str().as_str()), (200, "next"));
}

#[test]
fn not_modified_304_keeps_content_length_and_has_no_body() {
    let be = Backend::http(|req| {
        if req.target == "/304" {
            b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 42\r\n\r\n".to_vec()
        } else {
            ok_response(b"next")
        }
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(b"GET /304 HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"v1\"\r\n\r\n");
    assert_eq!(r.status_line, "HTTP/1.1 304 Not Modified");
    assert_eq!(r.header("content-length"), Some("42"));
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert!(!r.has("transfer-encoding"), "{:?}", r.headers);
    let r = c.roundtrip(&get("/next"));
    assert_eq!((r.status, r.body_str().as_str()), (200, "next"));
    assert_eq!(
        be.wait_requests(1, WAIT)[0].header("if-none-match"),
        Some("\"v1\"")
    );
}

#[test]
fn expect_100_continue_is_answered_by_the_proxy() {
    let be = Backend::http(|req| ok_response(&req.body));
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(b"POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n");
    c.set_read_timeout(Duration::from_secs(5));
    let interim = c
        .wire
        .read_head(4096)
        .expect("no 100 Continue before the body was sent");
    assert_eq!(
        String::from_utf8_lossy(&interim),
        "HTTP/1.1 100 Continue\r\n\r\n"
    );
    c.send(b"hello world");
    let r = c.read_response().expect("final response");
    assert_eq!((r.status, r.body_str().as_str()), (200, "hello world"));
    let req = &be.wait_requests(1, WAIT)[0];
    assert!(
        !req.has("expect"),
        "Expect forwarded to the backend: {:?}",
        req.headers
    );
    assert_eq!(req.body, b"hello world");
    // connection still usable
    assert_eq!(c.roundtrip(&get("/x")).status, 200);
}

#[test]
fn http10_request_without_keepalive_closes_after_response() {
    let be = Backend::ok(b"one-oh");
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(b"GET /ten HTTP/1.0\r\nHost: h\r\n\r\n");
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.body, b"one-oh");
    if r.framing != Framing::Close {
        c.expect_closed();
    }
    let req = &be.wait_requests(1, WAIT)[0];
    assert_eq!(req.request_line, "GET /ten HTTP/1.1");
}

#[test]
fn http10_keepalive_connection_persists() {
    let be = Backend::http(|req| ok_response(req.target.as_bytes()));
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    for p in ["/a", "/b", "/c"] {
        let r = c.roundtrip(
            format!("GET {p} HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.body_str(), p);
        assert!(
            !r.conn_close(),
            "keep-alive HTTP/1.0 request answered with close: {:?}",
            r.headers
        );
        assert_ne!(
            r.framing,
            Framing::Chunked,
            "chunked sent to an HTTP/1.0 client"
        );
    }
}

#[test]
fn http10_client_never_gets_chunked() {
    let be = Backend::http(|_| {
        let mut v = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        v.extend(chunk_encode(b"chunked at the origin", 4));
        v
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(b"GET / HTTP/1.0\r\nHost: h\r\n\r\n");
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200);
    assert!(
        !r.has("transfer-encoding"),
        "Transfer-Encoding sent to an HTTP/1.0 client: {:?}",
        r.headers
    );
    assert_eq!(r.body_str(), "chunked at the origin");
}

#[test]
fn connection_close_from_client_closes_after_response() {
    let be = Backend::ok(b"bye");
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get_close("/"));
    assert_eq!(r.body, b"bye");
    if r.framing != Framing::Close {
        c.expect_closed();
    }
}

#[test]
fn backend_connection_close_is_not_reused() {
    let be = Backend::http(|_| response(200, "OK", &[("Connection", "close")], b"once"));
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    for _ in 0..3 {
        let r = c.roundtrip(&get("/"));
        assert_eq!((r.status, r.body.as_slice()), (200, &b"once"[..]));
    }
    assert_eq!(be.connections(), 3);
}

#[test]
fn idle_backend_connection_is_closed_after_backend_idle_timeout() {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = Mutex::new(tx);
    let be = Backend::start(move |mut conn| {
        if conn.read_request().is_err() {
            return;
        }
        conn.write(&ok_response(b"x")).unwrap();
        let t0 = Instant::now();
        let e = conn.drain_to_eof();
        let _ = tx.lock().unwrap().send((e, t0.elapsed()));
    });
    let cr = Corelay::start(&[be.addr], &["--backend-idle-timeout", "300ms"]);
    let mut c = Client::connect(cr.addr);
    assert_eq!(c.roundtrip(&get("/")).status, 200);
    let (e, idle) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("proxy never closed the idle backend connection");
    assert!(e.is_closed(), "backend connection ended with {e:?}");
    assert!(
        idle >= Duration::from_millis(250),
        "closed after {idle:?}, before the 300ms idle timeout"
    );
}

#[test]
fn idle_client_connection_is_closed_after_keepalive_timeout() {
    let be = Backend::ok(b"x");
    let cr = Corelay::start(&[be.addr], &["--client-keepalive-timeout", "500ms"]);
    let mut c = Client::connect(cr.addr);
    assert_eq!(c.roundtrip(&get("/")).status, 200);
    let t0 = Instant::now();
    c.set_read_timeout(Duration::from_secs(5));
    c.expect_closed();
    let idle = t0.elapsed();
    assert!(idle >= Duration::from_millis(400), "closed after {idle:?}");
}

#[test]
fn backend_max_idle_limits_the_pool() {
    // Two concurrent requests force two backend connections; with
    // --backend-max-idle 1 only one may stay pooled afterwards.
    let barrier = Arc::new(Barrier::new(2));
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = Mutex::new(tx);
    let be = Backend::start(move |mut conn| {
        if conn.read_request().is_err() {
            return;
        }
        barrier.wait();
        conn.write(&ok_response(b"x")).unwrap();
        conn.wire.set_read_timeout(Duration::from_secs(3));
        let e = conn.drain_to_eof();
        let _ = tx.lock().unwrap().send((conn.index, e));
    });
    let cr = Corelay::start(
        &[be.addr],
        &["--backend-max-idle", "1", "--backend-idle-timeout", "30s"],
    );
    let addr = cr.addr;
    let hs: Vec<_> = (0..2)
        .map(|_| {
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                let r = c.roundtrip(&get("/"));
                assert_eq!(r.status, 200);
                c // keep the client connection open
            })
        })
        .collect();
    let _clients: Vec<Client> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(be.connections(), 2);
    let (_, first) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("no backend connection ended");
    assert!(
        first.is_closed(),
        "expected the proxy to close one pooled connection, got {first:?}"
    );
    let (_, second) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("second backend connection script did not end");
    assert_eq!(
        second,
        WireError::Timeout,
        "both pooled connections were closed with --backend-max-idle 1"
    );
}

/// An origin that closes each idle keep-alive connection exactly 1 s after
/// its last response (a request arriving in that instant is never answered).
fn closes_idle_after_1s() -> Backend {
    Backend::start(|mut conn| {
        let mut first = true;
        loop {
            if !first {
                conn.wire.set_read_timeout(Duration::from_secs(1));
            }
            first = false;
            let req = match conn.read_request() {
                Ok(r) => r,
                Err(_) => return, // timeout: drop the connection (RST if bytes are pending)
            };
            conn.wire.set_read_timeout(BACKEND_IO_TIMEOUT);
            if conn.write(&ok_response(req.target.as_bytes())).is_err() {
                return;
            }
        }
    })
}

#[test]
fn stale_keepalive_race_is_retried() {
    // Sweep the gap between two requests across the origin's 1 s close, at
    // 1 ms resolution from 950 to 1049 ms (plus a coarser tail), in parallel
    // lanes that each have their own origin and corelay.
    const LANES: u64 = 10;
    let lanes: Vec<_> = (0..LANES)
        .map(|lane| {
            thread::spawn(move || {
                let be = closes_idle_after_1s();
                let cr = Corelay::start(&[be.addr], &["--backend-idle-timeout", "10s"]);
                let mut c = Client::connect(cr.addr);
                assert_eq!(c.roundtrip(&get("/warmup")).status, 200);
                let mut failures = Vec::new();
                let gaps: Vec<u64> = (0..10).map(|j| 950 + lane + LANES * j).collect();
                for gap in gaps {
                    thread::sleep(Duration::from_millis(gap));
                    let path = format!("/after-{gap}ms");
                    c.send(&get(&path));
                    match c.read_response() {
                        Ok(r) if r.status == 200 && r.body_str() == path => {}
                        Ok(r) => failures.push(format!(
                            "gap {gap}ms: {} {:?}",
                            r.status_line,
                            r.body_str()
                        )),
                        Err(e) => {
                            failures.push(format!("gap {gap}ms: {e:?}"));
                            c = Client::connect(cr.addr);
                        }
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = lanes.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(
        failures.is_empty(),
        "requests lost to the stale keep-alive race: {failures:?}"
    );
}

/// An origin that answers only the first request of its very first
/// connection; any other request is read and then the connection is closed
/// without a response byte (reset if `reset`).
fn serves_only_first_request(reset: bool) -> Backend {
    Backend::start(move |mut conn| {
        let mut served = conn.index > 0;
        loop {
            let req = match conn.read_request() {
                Ok(r) => r,
                Err(_) => return,
            };
            if served {
                if reset {
                    conn.reset();
                }
                return;
            }
            served = true;
            if conn.write(&ok_response(req.target.as_bytes())).is_err() {
                return;
            }
        }
    })
}

/// An origin that serves one request per connection and drops the
/// connection, unanswered, when a second request arrives on it: exactly the
/// stale keep-alive race, made deterministic.
fn one_request_per_connection() -> Backend {
    Backend::start(|mut conn| {
        if let Ok(req) = conn.read_request() {
            let mut resp = ok_response(req.target.as_bytes());
            if req.method == "HEAD" {
                resp.truncate(resp.len() - req.target.len());
            }
            if conn.write(&resp).is_err() {
                return;
            }
            let _ = conn.read_request(); // a reused connection: drop it unanswered
        }
    })
}

/// Sends each request (method, extra head lines) on one client connection
/// and checks that all get 200 and each after the first reached the backend
/// twice: on the reused connection, then on a fresh one.
fn check_retried(requests: &[(&str, &str)]) {
    let be = one_request_per_connection();
    let cr = Corelay::start_with_metrics(&[be.addr], &["--backend-idle-timeout", "10s"]);
    let mut c = Client::connect(cr.addr);
    assert_eq!(c.roundtrip(&get("/0")).status, 200);
    for (i, (m, extra)) in requests.iter().enumerate() {
        let i = i + 1;
        c.send(format!("{m} /{i} HTTP/1.1\r\nHost: h\r\n{extra}\r\n").as_bytes());
        let r = if *m == "HEAD" {
            c.read_head_response()
        } else {
            c.read_response()
        };
        let r = r.unwrap_or_else(|e| panic!("{m} /{i}: {e:?}"));
        assert_eq!(
            r.status, 200,
            "{m} /{i} ({extra:?}) failing on a reused connection was not retried: {}",
            r.status_line
        );
    }
    let reqs = be.requests();
    for i in 1..=requests.len() {
        let tries: Vec<usize> = reqs
            .iter()
            .filter(|r| r.target == format!("/{i}"))
            .map(|r| r.conn)
            .collect();
        assert_eq!(
            tries.len(),
            2,
            "request /{i} attempts on backend connections {tries:?}"
        );
    }
    assert_eq!(
        cr.metric("corelay_backend_retries_total"),
        requests.len() as f64
    );
}

#[test]
fn request_failing_on_reused_connection_is_retried_on_a_fresh_one() {
    check_retried(&[
        ("GET", ""),
        ("HEAD", ""),
        ("GET", ""),
        ("PUT", ""),
        ("DELETE", ""),
        ("OPTIONS", ""),
    ]);
}

#[test]
fn request_with_empty_content_length_body_is_retried() {
    // `Content-Length: 0` means nothing of the request can be lost: it is as
    // replayable as a request without a body (some clients always send it).
    check_retried(&[
        ("GET", "Content-Length: 0\r\n"),
        ("PUT", "Content-Length: 0\r\n"),
    ]);
}

#[test]
fn retry_happens_only_once() {
    let be = serves_only_first_request(false);
    let cr = Corelay::start(&[be.addr], &["--backend-idle-timeout", "10s"]);
    let mut c = Client::connect(cr.addr);
    assert_eq!(c.roundtrip(&get("/first")).status, 200);
    let r = c.roundtrip(&get("/second"));
    assert_eq!(r.status, 502, "{}", r.status_line);
    let tries = be
        .requests()
        .iter()
        .filter(|r| r.target == "/second")
        .count();
    assert_eq!(
        tries, 2,
        "/second must be tried on the reused connection and once more on a fresh one"
    );
}

#[test]
fn non_idempotent_request_is_not_retried() {
    let be = serves_only_first_request(true);
    let cr = Corelay::start(&[be.addr], &["--backend-idle-timeout", "10s"]);
    let mut c = Client::connect(cr.addr);
    assert_eq!(c.roundtrip(&get("/first")).status, 200);
    c.send(&post("/once", b"pay"));
    match c.read_response() {
        Ok(r) => assert_eq!(r.status, 502, "{}", r.status_line),
        Err(e) => assert!(e.is_closed(), "{e:?}"),
    }
    // kill corelay so every backend connection ends, then count attempts
    drop(c);
    drop(cr);
    be.settle();
    let tries = be.requests().iter().filter(|r| r.target == "/once").count();
    assert_eq!(tries, 1, "POST was sent {tries} times");
}

#[test]
fn head_response_with_chunked_framing_has_no_body() {
    let be = Backend::http(|req| {
        if req.method == "HEAD" {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()
        } else {
            ok_response(b"next")
        }
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    for _ in 0..2 {
        c.send(b"HEAD /stream HTTP/1.1\r\nHost: h\r\n\r\n");
        let r = c.read_head_response().expect("HEAD response");
        assert_eq!(r.status, 200);
        let r = c.roundtrip(&get("/next"));
        assert_eq!((r.status, r.body_str().as_str()), (200, "next"));
    }
}

#[test]
fn expect_100_continue_in_http10_is_ignored() {
    // RFC 9110 10.1.1: a 100-continue expectation in an HTTP/1.0 request
    // MUST be ignored (and 1xx must not be sent to an HTTP/1.0 client).
    let be = Backend::http(|req| ok_response(&req.body));
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(
        b"POST /up HTTP/1.0\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(
        r.status, 200,
        "first response to an HTTP/1.0 client: {}",
        r.status_line
    );
    assert_eq!(r.body, b"hello");
}

#[test]
fn requests_pipelined_after_connection_close_are_not_forwarded() {
    let be = Backend::http(|req| ok_response(req.target.as_bytes()));
    let mut cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let mut both = get_close("/first");
    both.extend(get("/second"));
    c.send(&both);
    let r = c.read_response().expect("response to the first request");
    assert_eq!(r.body, b"/first");
    if r.framing != Framing::Close {
        c.expect_closed();
    }
    cr.kill();
    be.settle();
    let targets: Vec<String> = be.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(
        targets,
        vec!["/first"],
        "a request after Connection: close was forwarded"
    );
}

#[test]
fn header_timeout_applies_to_later_requests_on_a_connection() {
    let be = Backend::ok(b"x");
    let cr = Corelay::start(&[be.addr], &["--client-header-timeout", "1s"]);
    let mut c = Client::connect(cr.addr);
    assert_eq!(c.roundtrip(&get("/")).status, 200);
    c.set_read_timeout(Duration::from_secs(5));
    let t0 = Instant::now();
    c.send(b"GET /second HTTP/1.1\r\nHost: h\r\n"); // and never the end of the head
    match c.read_response() {
        Ok(r) => assert_eq!(r.status, 408, "{}", r.status_line),
        Err(e) => assert!(e.is_closed(), "incomplete second head not cut: {e:?}"),
    }
    let took = t0.elapsed();
    // Only the header timeout can end this (the client's own read timeout is 5 s); a
    // loaded machine only makes it later.
    assert!(took >= Duration::from_millis(900), "cut after {took:?}");
}

#[test]
fn idle_keepalive_period_is_not_limited_by_the_header_timeout() {
    let be = Backend::ok(b"x");
    let cr = Corelay::start(
        &[be.addr],
        &[
            "--client-header-timeout",
            "500ms",
            "--client-keepalive-timeout",
            "5s",
        ],
    );
    let mut c = Client::connect(cr.addr);
    assert_eq!(c.roundtrip(&get("/")).status, 200);
    thread::sleep(Duration::from_millis(1200)); // idle, no byte of a new request
    c.send(&get("/after-idle"));
    let r = c
        .read_response()
        .expect("idle keep-alive connection was closed before --client-keepalive-timeout");
    assert_eq!(r.status, 200);
}

#[test]
fn many_concurrent_clients() {
    let be = Backend::http(|req| ok_response(req.target.as_bytes()));
    // a pool big enough for all 50: no connection churn expected
    let cr = Corelay::start_with_metrics(&[be.addr], &["--backend-max-idle", "64"]);
    let addr = cr.addr;
    let hs: Vec<_> = (0..50)
        .map(|t| {
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                for i in 0..20 {
                    let path = format!("/t{t}/r{i}");
                    let r = c.roundtrip(&get(&path));
                    assert_eq!((r.status, r.body_str()), (200, path));
                }
            })
        })
        .collect();
    for h in hs {
        h.join().expect("client thread failed");
    }
    assert_eq!(be.requests().len(), 1000);
    assert!(
        be.connections() <= 50,
        "{} backend connections for 50 clients",
        be.connections()
    );
    eventually(Duration::from_secs(5), "connections_open back to 0", || {
        cr.metric("corelay_connections_open") == 0.0
    });
}
