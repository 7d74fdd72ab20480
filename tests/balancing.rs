//! Round-robin across backends and skipping of dead backends.

mod common;
use common::*;

#[test]
fn round_robin_splits_requests_evenly() {
    let a = Backend::ok(b"a");
    let b = Backend::ok(b"b");
    let cr = Corelay::start(&[a.addr, b.addr], &[]);
    // 10 client connections x 10 requests: an even split whether the
    // rotation is per request or per connection.
    let mut seen = (0, 0);
    for _ in 0..10 {
        let mut c = Client::connect(cr.addr);
        for _ in 0..10 {
            let r = c.roundtrip(&get("/"));
            assert_eq!(r.status, 200);
            match r.body.as_slice() {
                b"a" => seen.0 += 1,
                b"b" => seen.1 += 1,
                other => panic!("unexpected body {other:?}"),
            }
        }
    }
    assert_eq!(a.requests().len(), seen.0);
    assert_eq!(b.requests().len(), seen.1);
    assert!(
        (48..=52).contains(&seen.0) && (48..=52).contains(&seen.1),
        "split {seen:?} is not 50/50 (±2)"
    );
}

#[test]
fn refused_backend_is_skipped() {
    let dead = dead_addr();
    let live = Backend::ok(b"live");
    let cr = Corelay::start(&[dead, live.addr], &[]);
    for i in 0..20 {
        let mut c = Client::connect(cr.addr);
        let r = c.roundtrip(&get_close(&format!("/{i}")));
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"live"[..]),
            "request {i}: {}",
            r.status_line
        );
    }
    // keep-alive client too
    let mut c = Client::connect(cr.addr);
    for i in 0..20 {
        let r = c.roundtrip(&get(&format!("/ka{i}")));
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"live"[..]),
            "request ka{i}: {}",
            r.status_line
        );
    }
    assert_eq!(live.requests().len(), 40);
}

#[test]
fn only_dead_backends_gives_502() {
    let cr = Corelay::start(&[dead_addr(), dead_addr()], &[]);
    for i in 0..3 {
        let mut c = Client::connect(cr.addr);
        c.send(&get("/"));
        let r = c
            .read_response()
            .unwrap_or_else(|e| panic!("attempt {i}: no response: {e:?}"));
        assert_eq!(r.status, 502, "attempt {i}: {}", r.status_line);
        assert!(
            r.has("content-length"),
            "502 without Content-Length: {:?}",
            r.headers
        );
    }
}
