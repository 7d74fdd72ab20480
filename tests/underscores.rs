//! `--headers-with-underscores` on the wire: what a backend receives of request fields whose
//! names contain `_` (which CGI- and WSGI-style backends read as `-`, so `Content_Length` is
//! Content-Length to them), in each mode, from the flag and from the config key.

mod common;
use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// Field names of a raw head, after the request line.
fn field_names(raw_head: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(raw_head)
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_string()))
        .collect()
}

fn refused_unforwarded(cr: &Corelay, be: &Backend, req: &[u8]) {
    let mut c = Client::connect(cr.addr);
    c.send(req);
    let r = c.read_response().expect("a response");
    assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(req));
    assert!(r.conn_close());
    c.expect_closed();
    be.settle();
    assert_eq!(be.connections(), 0, "a refused request reached the backend");
}

#[test]
fn default_drops_underscore_fields_and_frames_by_the_real_one() {
    let be = Backend::http(|req| ok_response(&req.body));
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    // A backend reading `_` as `-` would take the body as 0 bytes (or chunked) and the
    // rest as a second request; corelay frames by Content-Length and drops the others.
    let r = c.roundtrip(
        b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent_Length: 0\r\n\
          Transfer_Encoding: chunked\r\nX_Custom: 1\r\nX-Kept: 2\r\n\r\nhello",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello");
    // The connection is still in step: a second request gets its own answer.
    let r = c.roundtrip(b"POST /v HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(r.body, b"hi");

    let reqs = be.wait_requests(2, WAIT);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].target, "/u");
    assert_eq!(reqs[0].body, b"hello");
    let names = field_names(&reqs[0].raw_head);
    assert!(names.iter().all(|n| !n.contains('_')), "{names:?}");
    assert!(names.iter().any(|n| n == "X-Kept"), "{names:?}");
    assert_eq!(reqs[0].header("content-length"), Some("5"));
    assert!(!reqs[0].has("transfer-encoding"));
    assert_eq!(reqs[1].target, "/v");
    be.assert_no_panics();
}

#[test]
fn reject_refuses_any_underscore_field() {
    let be = Backend::ok(b"x");
    let cr = Corelay::start(&[be.addr], &["--headers-with-underscores", "reject"]);
    refused_unforwarded(
        &cr,
        &be,
        b"GET / HTTP/1.1\r\nHost: a\r\nX_Custom: 1\r\n\r\n",
    );
    refused_unforwarded(
        &cr,
        &be,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    // Names without `_` pass.
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(b"GET / HTTP/1.1\r\nHost: a\r\nX-Custom: 1\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn allow_from_the_config_file_forwards_all_but_look_alikes() {
    let be = Backend::http(|_| ok_response(b"ok"));
    let config = TempConfig::new(
        "corelay.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\ncores = 1\nbackends = [\"{}\"]\n\
             headers_with_underscores = \"allow\"\n",
            be.addr
        ),
    );
    let cr = Corelay::start_with_config(&config.path, &[]);
    refused_unforwarded(
        &cr,
        &be,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\nhello",
    );
    refused_unforwarded(
        &cr,
        &be,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    refused_unforwarded(
        &cr,
        &be,
        b"GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 10.9.9.9\r\n\r\n",
    );
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(b"GET /a HTTP/1.1\r\nHost: a\r\nX_Custom: 1\r\n\r\n");
    assert_eq!(r.status, 200);
    let reqs = be.wait_requests(1, WAIT);
    assert_eq!(reqs[0].header("x_custom"), Some("1"));
    assert!(field_names(&reqs[0].raw_head).contains(&"X_Custom".to_string()));
}
