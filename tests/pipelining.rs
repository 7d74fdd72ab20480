//! Pipelined requests where the middle one fails after it was parsed (401, 404, 413, 502,
//! 504): corelay answers it, closes, and nothing pipelined after it reaches a backend. Also
//! an early backend answer while the unread request body holds a smuggled request.

mod common;
use common::*;

/// A good backend (answers its target), a dead one (refuses), one that never answers, and
/// routes that reach each, plus one with auth; unmatched paths get 404.
struct Fixture {
    cr: Corelay,
    good: Backend,
    silent: Backend,
    _cfg: TempConfig,
}

impl Fixture {
    fn start() -> Fixture {
        let good = Backend::http(|req| ok_response(req.target.as_bytes()));
        let silent = Backend::start(|mut conn| {
            if conn.read_request().is_ok() {
                let _ = conn.drain_to_eof(); // never answers
            }
        });
        let cfg = TempConfig::new(
            "pipelining.toml",
            &format!(
                r#"listen = "127.0.0.1:0"
cores = 1
client_max_body_size = "1k"
backend_response_timeout = "500ms"

[groups.good]
backends = ["{}"]

[groups.dead]
backends = ["{}"]

[groups.silent]
backends = ["{}"]

[[routes]]
path = "/ok"
group = "good"

[[routes]]
path = "/auth"
group = "good"
auth = {{ type = "bearer", tokens = ["tok"] }}

[[routes]]
path = "/dead"
group = "dead"

[[routes]]
path = "/silent"
group = "silent"
"#,
                good.addr,
                dead_addr(),
                silent.addr
            ),
        );
        let cr = Corelay::start_with_config(&cfg.path, &[]);
        Fixture {
            cr,
            good,
            silent,
            _cfg: cfg,
        }
    }
}

/// `first`, then `middle`, then two more, in one write: the first is answered, the middle
/// gets `status` with `Connection: close`, and the connection closes.
fn middle_fails(middle: &[u8], status: u16) {
    let mut f = Fixture::start();
    let mut c = Client::connect(f.cr.addr);
    let mut all = get("/ok/first");
    all.extend_from_slice(middle);
    all.extend(get("/ok/after1"));
    all.extend(post("/ok/after2", b"x"));
    c.send(&all);
    let r = c.read_response().expect("first response");
    assert_eq!((r.status, r.body_str().as_str()), (200, "/ok/first"));
    let r = c.read_response().expect("the middle request's answer");
    assert_eq!(r.status, status, "{}", r.status_line);
    assert!(r.conn_close(), "{:?}", r.headers);
    c.expect_closed();
    f.cr.kill();
    f.good.settle();
    f.silent.settle();
    let targets: Vec<String> = f.good.requests().iter().map(|r| r.target.clone()).collect();
    let text: String = f
        .good
        .all_received()
        .iter()
        .chain(f.silent.all_received().iter())
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(
        !text.contains("/after"),
        "forwarded after the failure: {text}"
    );
    assert_eq!(targets, ["/ok/first"], "{text}");
}

#[test]
fn pipelined_after_a_401_is_not_forwarded() {
    middle_fails(&get("/auth/x"), 401);
}

#[test]
fn pipelined_after_a_404_is_not_forwarded() {
    middle_fails(&get("/nowhere"), 404);
}

#[test]
fn pipelined_after_a_413_is_not_forwarded() {
    // The over-limit body is sent too: its bytes must not be read as requests either.
    middle_fails(&post("/ok/big", &vec![b'b'; 2048]), 413);
}

#[test]
fn pipelined_after_a_502_is_not_forwarded() {
    middle_fails(&get("/dead/x"), 502);
}

#[test]
fn pipelined_after_a_504_is_not_forwarded() {
    middle_fails(&get("/silent/x"), 504);
}

/// The backend answers after reading only the head, then resets: the rest of the request
/// body, which holds a complete request, is never read as a request by corelay, and the
/// backend connection is not pooled.
#[test]
fn an_early_answer_with_a_smuggled_request_in_the_unread_body() {
    let be = Backend::start(|mut conn| {
        let head = match conn.wire.read_head(1 << 16) {
            Ok(h) => h,
            Err(_) => return,
        };
        if head.starts_with(b"POST /upload ") {
            // A keep-alive answer, then a reset with the body unread.
            let _ = conn.write(&response(413, "Payload Too Large", &[], b"no"));
            conn.reset();
            return;
        }
        // Any other connection: the head of an ordinary request, answered.
        let _ = conn.write(&ok_response(b"next"));
        let _ = conn.drain_to_eof();
    });
    let mut cr = Corelay::start_with_metrics(&[be.addr], &[]);
    let smuggled = get("/smuggled");
    let mut body = smuggled.clone();
    body.extend(vec![b'p'; 4 << 20]);
    body.extend(&smuggled);
    let mut c = Client::connect(cr.addr);
    let mut w = c.stream().try_clone().unwrap();
    let req = post("/upload", &body);
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        // Fails once corelay closes; what matters is what reached the backend.
        let _ = w.write_all(&req);
    });
    let r = c.read_response().expect("the early answer");
    assert_eq!((r.status, r.body_str().as_str()), (413, "no"));
    assert!(r.conn_close(), "{:?}", r.headers);
    match c.wire.read_to_eof() {
        Ok(b) | Err((_, b)) => assert!(b.is_empty(), "{:?}", String::from_utf8_lossy(&b)),
    }
    writer.join().unwrap();
    // Another client: a fresh backend connection, not the one with a body half-read.
    let r = Client::connect(cr.addr).roundtrip(&get("/next"));
    assert_eq!((r.status, r.body_str().as_str()), (200, "next"));
    assert_eq!(cr.metric("corelay_backend_reuses_total"), 0.0);
    cr.kill();
    be.settle();
    assert_eq!(be.connections(), 2);
    let second = String::from_utf8_lossy(&be.received(1)).into_owned();
    assert!(second.starts_with("GET /next HTTP/1.1\r\n"), "{second:?}");
    assert!(!second.contains("/smuggled"), "{second:?}");
}
