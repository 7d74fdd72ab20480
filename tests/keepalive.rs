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
    assert!(idle < Duration::from_secs(3), "closed after {idle:?}");
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
    assert!(idle < Duration::from_secs(3), "closed after {idle:?}");
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

#[test]
fn stale_keepalive_race_is_retried() {
    // The origin closes each idle keep-alive connection exactly 1 s after its
    // last response. A request that races with that close must be retried.
    let be = Backend::start(|mut conn| {
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
    });
    let cr = Corelay::start(&[be.addr], &["--backend-idle-timeout", "10s"]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/warmup"));
    assert_eq!(r.status, 200);
    let mut failures = Vec::new();
    for (i, gap) in [950u64, 980, 995, 1000, 1003, 1005, 1010, 1020, 1050]
        .iter()
        .enumerate()
    {
        thread::sleep(Duration::from_millis(*gap));
        let path = format!("/after-{gap}ms-{i}");
        c.send(&get(&path));
        match c.read_response() {
            Ok(r) if r.status == 200 && r.body_str() == path => {}
            Ok(r) => failures.push(format!("gap {gap}ms: {} {:?}", r.status_line, r.body_str())),
            Err(e) => {
                failures.push(format!("gap {gap}ms: {e:?}"));
                c = Client::connect(cr.addr);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "requests lost to the stale keep-alive race: {failures:?}"
    );
}
