//! `Expect: 100-continue`: refused before the body (413, 401) means no 100 at all; a backend
//! failure after the 100 still gets an answer (502), and nothing more is read as a request.

mod common;
use common::*;

fn expect_head(path: &str, len: usize, extra: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// Sends only the head and expects the final `status` as the first response: a 100 first
/// would make the client send a body corelay has already refused.
fn refused_without_100(cr: &Corelay, path: &str, extra: &str, status: u16) {
    let mut c = Client::connect(cr.addr);
    c.send(&expect_head(path, 2048, extra));
    let r = c.read_response().expect("the refusal");
    assert_eq!(r.status, status, "{}", r.status_line);
    assert!(r.conn_close(), "{:?}", r.headers);
    c.expect_closed();
}

#[test]
fn a_413_is_sent_instead_of_100_continue() {
    let be = Backend::ok(b"never");
    let mut cr = Corelay::start(&[be.addr], &["--client-max-body-size", "1k"]);
    refused_without_100(&cr, "/up", "", 413);
    cr.kill();
    be.settle();
    assert_eq!(be.connections(), 0);
}

#[test]
fn a_401_is_sent_instead_of_100_continue() {
    let be = Backend::ok(b"never");
    let cfg = TempConfig::new(
        "expect.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\ncores = 1\nbackends = [\"{}\"]\n\n[[routes]]\npath = \"/\"\ngroup = \"default\"\nauth = {{ type = \"bearer\", tokens = [\"tok\"] }}\n",
            be.addr
        ),
    );
    let mut cr = Corelay::start_with_config(&cfg.path, &[]);
    refused_without_100(&cr, "/up", "", 401);
    // With the token, the 100 comes and the body is forwarded.
    let mut c = Client::connect(cr.addr);
    c.send(&expect_head("/up", 4, "Authorization: Bearer tok\r\n"));
    let r = c.wire.read_response_head().expect("100 Continue");
    assert_eq!(r.status_line, "HTTP/1.1 100 Continue");
    c.send(b"body");
    let r = c.read_response().expect("final response");
    assert_eq!((r.status, r.body_str().as_str()), (200, "never"));
    cr.kill();
    be.settle();
    let reqs = be.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].body, b"body");
}

#[test]
fn a_backend_failure_after_the_100_gets_a_502() {
    // The backend reads the whole request and closes without a byte.
    let be = Backend::start(|mut conn| {
        let _ = conn.read_request();
    });
    let mut cr = Corelay::start_with_metrics(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(&expect_head("/up", 4, ""));
    let r = c.wire.read_response_head().expect("100 Continue");
    assert_eq!(r.status_line, "HTTP/1.1 100 Continue");
    // The body, and a request pipelined behind it.
    let mut rest = b"body".to_vec();
    rest.extend(get("/after"));
    c.send(&rest);
    let r = c.read_response().expect("502");
    assert_eq!(r.status, 502, "{}", r.status_line);
    assert!(r.conn_close(), "{:?}", r.headers);
    c.expect_closed();
    cr.wait_metric("corelay_backend_errors_total", 1.0);
    cr.wait_at_rest();
    cr.kill();
    be.settle();
    // Sent once (a body was streamed: not replayable), and nothing after it.
    let reqs = be.requests();
    assert_eq!(
        reqs.len(),
        1,
        "{:?}",
        reqs.iter().map(|r| &r.target).collect::<Vec<_>>()
    );
    assert_eq!(
        (reqs[0].target.as_str(), reqs[0].body.as_slice()),
        ("/up", &b"body"[..])
    );
}
