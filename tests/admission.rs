//! Per-shard limits: requests in flight with a bounded queue (503 + Retry-After), the body
//! size limit (413 before the body is read), and the connection cap (the backlog holds the
//! rest until a connection closes).

mod common;
use common::*;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// A backend that holds every request until `release` opens, and counts how many it holds
/// at once (the most ever in `peak`).
fn held_backend(release: &Gate, body: &'static [u8]) -> (Backend, Arc<AtomicUsize>) {
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (gate, peak2) = (release.clone(), peak.clone());
    let be = Backend::http(move |_| {
        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
        peak2.fetch_max(n, Ordering::SeqCst);
        assert!(gate.wait(Duration::from_secs(30)), "never released");
        now.fetch_sub(1, Ordering::SeqCst);
        ok_response(body)
    });
    (be, peak)
}

#[test]
fn admission_queue_overflow_gets_503_with_retry_after() {
    let release = Gate::new();
    let (backend, peak) = held_backend(&release, b"slow");
    let mut cr = Corelay::start(
        &[backend.addr],
        &[
            "--max-requests-per-core",
            "10",
            "--queue-size",
            "5",
            "--queue-timeout",
            "30s",
        ],
    );
    const N: usize = 30;
    let (tx, rx) = mpsc::channel::<(usize, Response)>();
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let (addr, tx) = (cr.addr, tx.clone());
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                c.set_read_timeout(Duration::from_secs(40));
                c.send(&get(&format!("/req{i}")));
                let r = c
                    .read_response()
                    .unwrap_or_else(|e| panic!("request {i}: no response: {e:?}"));
                tx.send((i, r)).unwrap();
            })
        })
        .collect();
    // While the backend holds everything, 10 requests are in flight, 5 wait in the queue,
    // and the other 15 are refused at once (not after waiting for a slot: none frees).
    let busy: Vec<Response> = (0..15)
        .map(|_| rx.recv_timeout(Duration::from_secs(20)).expect("a 503").1)
        .collect();
    for r in &busy {
        assert_eq!(r.status, 503, "{}", r.status_line);
        assert_eq!(r.header("retry-after"), Some("1"), "{:?}", r.headers);
        assert!(r.has("content-length"), "{:?}", r.headers);
    }
    eventually(
        Duration::from_secs(10),
        "10 requests held at the backend",
        || peak.load(Ordering::SeqCst) == 10,
    );
    release.open();
    let ok: Vec<Response> = (0..15)
        .map(|_| rx.recv_timeout(Duration::from_secs(20)).expect("a 200").1)
        .collect();
    for r in &ok {
        assert_eq!((r.status, r.body_str().as_str()), (200, "slow"));
    }
    for h in handles {
        h.join().expect("client thread");
    }
    // The queued five waited for the first ten: never more than 10 at the backend at once.
    assert_eq!(peak.load(Ordering::SeqCst), 10);

    // corelay keeps serving: every slot and queue place was given back.
    for round in 0..2 {
        let mut c = Client::connect(cr.addr);
        let r = c.roundtrip(&get(&format!("/after{round}")));
        assert_eq!(
            (r.status, r.body_str().as_str()),
            (200, "slow"),
            "{}",
            r.status_line
        );
    }
    // Only admitted requests reached the backend, counted once nothing can arrive any more.
    cr.kill();
    backend.settle();
    assert_eq!(backend.requests().len(), 17);
    backend.assert_no_panics();
}

/// A queued request that waits longer than `queue_timeout` gets 503 with Retry-After.
#[test]
fn queue_timeout_gets_503_with_retry_after() {
    let release = Gate::new();
    let (backend, _) = held_backend(&release, b"slow");
    let mut cr = Corelay::start(
        &[backend.addr],
        &[
            "--max-requests-per-core",
            "1",
            "--queue-size",
            "5",
            "--queue-timeout",
            "300ms",
        ],
    );
    let mut first = Client::connect(cr.addr);
    first.send(&get("/first"));
    backend.wait_requests(1, Duration::from_secs(5));
    // The only slot is held until the test releases it: the 503 can only come from the
    // queue timeout.
    let t = Instant::now();
    let mut second = Client::connect(cr.addr);
    let r = second.roundtrip(&get("/second"));
    let waited = t.elapsed();
    assert_eq!(r.status, 503, "{}", r.status_line);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        waited >= Duration::from_millis(250),
        "503 after {waited:?}, before the 300 ms queue timeout"
    );
    release.open();
    assert_eq!(first.read_response().expect("first").status, 200);
    cr.kill();
    backend.settle();
    assert_eq!(backend.requests().len(), 1);
    backend.assert_no_panics();
}

#[test]
fn body_over_client_max_body_size_gets_413_and_reaches_no_backend() {
    let backend = Backend::http(|req| ok_response(format!("got {}", req.body.len()).as_bytes()));
    let mut cr = Corelay::start(&[backend.addr], &["--client-max-body-size", "1k"]);
    // 2 KiB announced and sent at once, as clients do.
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&post("/upload", &pattern(2048, 1)));
    assert_eq!(r.status, 413, "{}", r.status_line);
    assert!(r.has("content-length"), "{:?}", r.headers);
    // One byte over.
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&post("/upload", &pattern(1025, 2)));
    assert_eq!(r.status, 413, "{}", r.status_line);
    // Only the head: 413 comes before any of the body is sent.
    let mut c = Client::connect(cr.addr);
    c.send(b"POST /upload HTTP/1.1\r\nHost: corelay.test\r\nContent-Length: 1048576\r\n\r\n");
    let r = c.read_response().expect("413 before the body");
    assert_eq!(r.status, 413, "{}", r.status_line);
    c.set_read_timeout(Duration::from_secs(5));
    c.expect_closed();
    drop(c);

    // 512 bytes, and exactly the limit, pass whole.
    for (len, seed) in [(512, 3), (1024, 4)] {
        let body = pattern(len, seed);
        let mut c = Client::connect(cr.addr);
        let r = c.roundtrip(&post("/upload", &body));
        assert_eq!(
            (r.status, r.body_str()),
            (200, format!("got {len}")),
            "{}",
            r.status_line
        );
        let got = backend.requests().last().unwrap().clone();
        assert_eq!(got.request_line, "POST /upload HTTP/1.1");
        assert_bytes_eq(&got.body, &body, "forwarded body");
    }
    // Once nothing can arrive any more: the backend got the two accepted requests and not a
    // byte of the refused ones.
    cr.kill();
    backend.settle();
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 2);
    let forwarded: usize = reqs.iter().map(|r| r.raw_head.len() + r.body.len()).sum();
    assert_eq!(
        backend.total_received(),
        forwarded,
        "a refused body reached the backend"
    );
    backend.assert_no_panics();
}

/// A client that sends a large over-limit body right behind its head still reads the 413:
/// corelay must not reset the connection under the response.
#[test]
fn large_body_over_limit_still_reads_413() {
    let backend = Backend::ok(b"never");
    let mut cr = Corelay::start(&[backend.addr], &["--client-max-body-size", "1k"]);
    for round in 0..3 {
        let mut c = Client::connect(cr.addr);
        let body = pattern(256 * 1024, round);
        let mut req = format!(
            "POST /big HTTP/1.1\r\nHost: corelay.test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        // The write may fail once corelay has answered and closed; the answer still counts.
        let _ = c.try_send(&req);
        match c.read_response() {
            Ok(r) => assert_eq!(r.status, 413, "round {round}: {}", r.status_line),
            Err(e) => panic!("round {round}: the 413 was lost: {e:?}"),
        }
    }
    cr.kill();
    backend.settle();
    assert_eq!(backend.connections(), 0);
}

#[test]
fn max_connections_per_core_holds_extra_connections_until_one_closes() {
    let backend = Backend::ok(b"ok");
    let cr = Corelay::start(&[backend.addr], &["--max-connections-per-core", "2"]);
    let mut c1 = Client::connect(cr.addr);
    let mut c2 = Client::connect(cr.addr);
    assert_eq!(c1.roundtrip(&get("/c1")).status, 200);
    assert_eq!(c2.roundtrip(&get("/c2")).status, 200);
    // The third connection completes in the kernel backlog, but corelay does not accept it.
    let mut c3 = Client::connect(cr.addr);
    c3.send(&get("/c3"));
    c3.set_read_timeout(Duration::from_millis(800));
    match c3.read_response() {
        Err(WireError::Timeout) => {}
        other => panic!("the third connection was served past the cap: {other:?}"),
    }
    assert_eq!(backend.requests().len(), 2);
    // Both open clients are still served.
    assert_eq!(c1.roundtrip(&get("/c1b")).status, 200);
    assert_eq!(c2.roundtrip(&get("/c2b")).status, 200);
    // One closes: the shard accepts again, and the waiting request is served.
    drop(c1);
    c3.set_read_timeout(Duration::from_secs(5));
    let r = c3
        .read_response()
        .expect("third connection served after one closed");
    assert_eq!(r.status, 200);
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 5);
    assert_eq!(reqs[4].request_line, "GET /c3 HTTP/1.1");
    // Still at the cap (c2, c3): a fourth waits again.
    let mut c4 = Client::connect(cr.addr);
    c4.send(&get("/c4"));
    c4.set_read_timeout(Duration::from_millis(500));
    assert!(
        matches!(c4.read_response(), Err(WireError::Timeout)),
        "the fourth connection was served past the cap"
    );
    drop(c3);
    c4.set_read_timeout(Duration::from_secs(5));
    assert_eq!(c4.read_response().expect("fourth served").status, 200);
    assert_eq!(c2.roundtrip(&get("/c2c")).status, 200);
}

/// `client_max_body_size` is the largest body accepted, however it is framed: a chunked body
/// that grows past it must not be relayed whole (nginx answers 413 for this too). A limit
/// that only looks at Content-Length is bypassed by any client that sends chunked.
#[test]
fn chunked_body_over_client_max_body_size_gets_413() {
    let backend = Backend::http(|req| ok_response(format!("got {}", req.body.len()).as_bytes()));
    let cr = Corelay::start(&[backend.addr], &["--client-max-body-size", "1k"]);
    // Under the limit: relayed.
    let small = pattern(512, 5);
    let mut req =
        b"POST /chunked HTTP/1.1\r\nHost: corelay.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    req.extend_from_slice(&chunk_encode(&small, 200));
    let r = Client::connect(cr.addr).roundtrip(&req);
    assert_eq!((r.status, r.body_str().as_str()), (200, "got 512"));
    // Over it: 2 KiB in 256-byte chunks.
    let big = pattern(2048, 6);
    let mut req =
        b"POST /chunked HTTP/1.1\r\nHost: corelay.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    req.extend_from_slice(&chunk_encode(&big, 256));
    let mut c = Client::connect(cr.addr);
    let _ = c.try_send(&req);
    let r = c.read_response();
    let whole_body_relayed = backend.requests().iter().any(|q| q.body.len() == 2048);
    assert!(
        matches!(&r, Ok(r) if r.status == 413) && !whole_body_relayed,
        "a 2 KiB chunked body with --client-max-body-size 1k: response {:?}, relayed whole to the backend: {whole_body_relayed}",
        r.as_ref().map(|r| r.status_line.clone())
    );
}

/// `--max-connections-per-client`: one address gets 429 past its cap, and the slot of a
/// closed connection is given back (a leak would lock the client out for good).
#[test]
fn the_per_client_connection_cap_is_released_on_close() {
    let backend = Backend::ok(b"ok");
    let mut cr =
        Corelay::start_with_metrics(&[backend.addr], &["--max-connections-per-client", "2"]);
    for round in 0..3 {
        let mut a = Client::connect(cr.addr);
        let mut b = Client::connect(cr.addr);
        assert_eq!(a.roundtrip(&get("/a")).status, 200, "round {round}");
        assert_eq!(b.roundtrip(&get("/b")).status, 200, "round {round}");
        let mut over = Client::connect(cr.addr);
        over.send(&get("/over"));
        let r = over.read_response().expect("429");
        assert_eq!(r.status, 429, "round {round}: {}", r.status_line);
        assert!(r.conn_close(), "{:?}", r.headers);
        over.expect_closed();
        // One closes: once corelay has seen it, the client may open another.
        drop(a);
        cr.wait_metric("corelay_connections_open", 1.0);
        let mut c = Client::connect(cr.addr);
        assert_eq!(c.roundtrip(&get("/c")).status, 200, "round {round}");
        assert_eq!(b.roundtrip(&get("/b2")).status, 200, "round {round}");
        drop((b, c));
        cr.wait_metric("corelay_connections_open", 0.0);
    }
    cr.kill();
    backend.settle();
    // The refused connections sent nothing on.
    assert!(backend.requests().iter().all(|r| r.target != "/over"));
    assert_eq!(backend.requests().len(), 12);
}
