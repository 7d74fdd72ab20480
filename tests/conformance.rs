//! Adversarial HTTP/1.1 conformance tests (RFC 9112, RFC 9110), written from
//! the point of view of request-smuggling research and of an operator.
//!
//! Every case states what the RFC requires and asserts the exact status the
//! client gets and/or the exact bytes the backend receives (or that it
//! receives nothing). Where the RFC allows several behaviours, exactly those
//! are accepted. Every read is bounded by a timeout.

mod common;
use common::*;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// local helpers
// ---------------------------------------------------------------------------

/// A backend answering every complete, valid request with 200 "forwarded"
/// (keep-alive); on anything it cannot read it drains to EOF.
fn fwd_backend() -> Backend {
    Backend::start(|mut conn| loop {
        match conn.read_request() {
            Ok(req) => {
                let resp = if req.method == "HEAD" {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n".to_vec()
                } else {
                    ok_response(b"forwarded")
                };
                if conn.write(&resp).is_err() {
                    return;
                }
            }
            Err(_) => {
                let _ = conn.drain_to_eof();
                return;
            }
        }
    })
}

/// What the client observed for a request that should be refused.
#[derive(Debug)]
enum Outcome {
    /// A response with this status, after which the connection was closed
    /// with no further bytes.
    Status(u16),
    /// The connection was closed without any response byte.
    Closed,
}

/// Sends `req` on a fresh connection; returns the outcome or a description of
/// a protocol problem (bytes after the error response, no close, garbage).
fn refusal(cr: &Corelay, req: &[u8]) -> Result<Outcome, String> {
    let mut c = Client::connect(cr.addr);
    c.set_read_timeout(Duration::from_secs(5));
    let _ = c.try_send(req); // corelay may close before reading everything
    let r = match c.read_response() {
        Ok(r) => r,
        Err(WireError::Eof) | Err(WireError::Reset) => return Ok(Outcome::Closed),
        Err(e) => return Err(format!("no response and no clean close: {e:?}")),
    };
    if r.status < 400 {
        return Ok(Outcome::Status(r.status));
    }
    if !r.conn_close() {
        return Err(format!(
            "{} without Connection: close: {:?}",
            r.status, r.headers
        ));
    }
    match c.wire.read_to_eof() {
        Ok(b) if b.is_empty() => Ok(Outcome::Status(r.status)),
        Err((WireError::Reset, b)) if b.is_empty() => Ok(Outcome::Status(r.status)),
        Ok(b) | Err((_, b)) if !b.is_empty() => Err(format!(
            "bytes after the {} response: {:?}",
            r.status,
            String::from_utf8_lossy(&b)
        )),
        Err((e, _)) => Err(format!(
            "connection not closed after the {} response: {e:?}",
            r.status
        )),
        _ => unreachable!(),
    }
}

/// Runs every `(name, request, allowed statuses, close-without-response ok)`
/// case against one corelay, then checks that the backend received nothing.
fn refuse_all(extra: &[&str], cases: &[(&str, Vec<u8>, &[u16], bool)]) {
    let be = fwd_backend();
    let mut cr = Corelay::start(&[be.addr], extra);
    let mut failures = Vec::new();
    for (name, req, allowed, close_ok) in cases {
        match refusal(&cr, req) {
            Ok(Outcome::Status(s)) if allowed.contains(&s) => {}
            Ok(Outcome::Closed) if *close_ok => {}
            Ok(o) => failures.push(format!("{name}: got {o:?}, allowed {allowed:?}")),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    backend_got_nothing(&mut cr, &be);
}

/// Kills corelay (closing all its sockets), settles the backend and asserts
/// that not a single byte reached it.
fn backend_got_nothing(cr: &mut Corelay, be: &Backend) {
    cr.kill();
    be.settle();
    let got = be.all_received();
    assert!(
        got.iter().all(|b| b.is_empty()),
        "refused input reached the backend: {:?}",
        got.iter()
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(400)]).into_owned())
            .collect::<Vec<_>>()
    );
}

/// Kills corelay, settles the backend and asserts that it never received a
/// complete request (partial bytes followed by a close are harmless).
fn backend_got_no_complete_request(cr: &mut Corelay, be: &Backend) {
    cr.kill();
    be.settle();
    let reqs = be.requests();
    assert!(
        reqs.is_empty(),
        "a complete request reached the backend: {:?}",
        reqs.iter()
            .map(|r| (
                r.request_line.clone(),
                String::from_utf8_lossy(&r.body).into_owned()
            ))
            .collect::<Vec<_>>()
    );
}

/// The head corelay is expected to forward: request line, Host first, the
/// end-to-end fields in order, the proxy fields, then the framing field.
fn fwd_head(line: &str, host: &str, fields: &[&str], via: &str, framing: Option<&str>) -> String {
    let mut s = format!("{line}\r\nHost: {host}\r\n");
    for f in fields {
        s.push_str(f);
        s.push_str("\r\n");
    }
    s.push_str("X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n");
    s.push_str(&format!("Via: {via} corelay\r\n"));
    if let Some(f) = framing {
        s.push_str(f);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s
}

/// Sends one request through a fresh corelay to a `fwd_backend` and returns
/// (client response, the exact bytes the backend received on its connection).
fn forward_one(req: &[u8]) -> (Response, Vec<u8>) {
    let be = fwd_backend();
    let mut cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(req);
    let head_req = req.starts_with(b"HEAD ");
    let r = c
        .wire
        .read_response(head_req)
        .unwrap_or_else(|e| panic!("no response to {:?}: {e:?}", String::from_utf8_lossy(req)));
    be.wait_requests(1, WAIT);
    drop(c);
    cr.kill();
    be.settle();
    be.assert_no_panics();
    let got = without_generated_request_id(&be.received(0));
    (r, got)
}

fn assert_forwarded(req: &[u8], expected: &str) {
    let (r, got) = forward_one(req);
    assert_eq!(r.status, 200, "{}", r.status_line);
    assert_bytes_eq(&got, expected.as_bytes(), "bytes received by the backend");
}

// ---------------------------------------------------------------------------
// request line
// ---------------------------------------------------------------------------

#[test]
fn invalid_request_lines_are_refused_and_never_forwarded() {
    // RFC 9112 §3: request-line = method SP request-target SP HTTP-version;
    // invalid request-line → 400 (§3, "SHOULD respond with 400"), §2.3
    // HTTP-name is case-sensitive; a major version we do not speak may get
    // 505 (RFC 9110 §15.6.6) or 400. Closing without a response is allowed
    // for input that is not HTTP/1.x at all (RFC 9112 §2.2 / HTTP/2 preface).
    const B400: &[u16] = &[400];
    const B400_505: &[u16] = &[400, 505];
    let cases: Vec<(&str, Vec<u8>, &[u16], bool)> = vec![
        (
            "lowercase http/1.1",
            b"GET / http/1.1\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "HTTP/2.0",
            b"GET / HTTP/2.0\r\nHost: h\r\n\r\n".to_vec(),
            B400_505,
            false,
        ),
        (
            "h2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            B400_505,
            true,
        ),
        (
            "HTTP/3.0",
            b"GET / HTTP/3.0\r\nHost: h\r\n\r\n".to_vec(),
            B400_505,
            false,
        ),
        (
            "HTTP/1.10",
            b"GET / HTTP/1.10\r\nHost: h\r\n\r\n".to_vec(),
            B400_505,
            false,
        ),
        (
            "HTTP/11",
            b"GET / HTTP/11\r\nHost: h\r\n\r\n".to_vec(),
            B400_505,
            false,
        ),
        (
            "missing version",
            b"GET /\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            true,
        ),
        ("HTTP/0.9 line", b"GET /\r\n\r\n".to_vec(), B400, true),
        (
            "raw space in target",
            b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "NUL in target",
            b"GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "DEL in target",
            b"GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "VT in target",
            b"GET /a\x0bb HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "fragment in target",
            b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "non-ASCII target",
            b"GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "trailing space",
            b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "GET *",
            b"GET * HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "authority-form GET",
            b"GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "relative target",
            b"GET a/b HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "userinfo in absolute-form",
            b"GET http://u:p@h/ HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "empty host in absolute-form",
            b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "bad port in absolute-form",
            b"GET http://h:8x/ HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "unknown scheme",
            b"GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "method with separator",
            b"GE,T / HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "empty method",
            b" / HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "bare CR in request line",
            b"GET / HTTP/1.1\rHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
    ];
    refuse_all(&[], &cases);
}

#[test]
fn connect_is_not_implemented() {
    // RFC 9110 §9.1: a method the origin does not implement → 501 (SHOULD);
    // 405 is also a valid answer. Never forwarded (corelay cannot tunnel).
    refuse_all(
        &[],
        &[(
            "CONNECT",
            b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n".to_vec(),
            &[501, 405],
            false,
        )],
    );
}

#[test]
fn whitespace_other_than_single_sp_in_request_line() {
    // RFC 9112 §3: recipients MAY parse on whitespace boundaries (HTAB too),
    // so either 400, or a forwarded request with a canonical request line.
    for req in [
        &b"GET\t/\tHTTP/1.1\r\nHost: h\r\n\r\n"[..],
        b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
    ] {
        let be = fwd_backend();
        let mut cr = Corelay::start(&[be.addr], &[]);
        match refusal(&cr, req) {
            Ok(Outcome::Status(400)) => backend_got_nothing(&mut cr, &be),
            Ok(Outcome::Status(200)) => {
                let r = be.wait_requests(1, WAIT);
                assert_eq!(r[0].request_line, "GET / HTTP/1.1");
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(req)),
        }
    }
}

#[test]
fn http_1_2_is_processed_as_http_1_1() {
    // RFC 9110 §2.5: "A recipient that receives a message with a major
    // version number that it implements and a minor version number higher
    // than what it implements SHOULD process the message as if it were in the
    // highest minor version within that major version to which the recipient
    // is conformant." (RFC 9112 §2.3 likewise.) HTTP/1.2 → handled as 1.1.
    let be = fwd_backend();
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(b"GET /v HTTP/1.2\r\nHost: h\r\n\r\n");
    let r = c.read_response().expect("response to an HTTP/1.2 request");
    assert_eq!(r.status, 200, "{}", r.status_line);
    assert_eq!(be.requests()[0].request_line, "GET /v HTTP/1.1");
}

#[test]
fn method_is_case_sensitive_and_forwarded_verbatim() {
    // RFC 9110 §9.1: the method token is case-sensitive; `get` is not GET and
    // an unknown method is forwarded as received, with its body.
    assert_forwarded(
        b"get /m HTTP/1.1\r\nHost: h\r\n\r\n",
        &fwd_head("get /m HTTP/1.1", "h", &[], "1.1", None),
    );
    let long = "X".repeat(200);
    assert_forwarded(
        format!("{long} /m HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc").as_bytes(),
        &(fwd_head(
            &format!("{long} /m HTTP/1.1"),
            "h",
            &[],
            "1.1",
            Some("Content-Length: 3"),
        ) + "abc"),
    );
}

#[test]
fn absolute_form_authority_replaces_host() {
    // RFC 9112 §3.2.2: the authority of an absolute-form target is used as
    // the Host (the received Host is ignored/replaced); the backend gets
    // origin-form (§3.2.1: empty path → "/"). Scheme is case-insensitive.
    assert_forwarded(
        b"GET http://Example.COM:8080/p?q=1 HTTP/1.1\r\nHost: other\r\nX-A: 1\r\n\r\n",
        &fwd_head(
            "GET /p?q=1 HTTP/1.1",
            "Example.COM:8080",
            &["X-A: 1"],
            "1.1",
            None,
        ),
    );
    assert_forwarded(
        b"GET HTTP://h HTTP/1.1\r\nHost: h\r\n\r\n",
        &fwd_head("GET / HTTP/1.1", "h", &[], "1.1", None),
    );
    assert_forwarded(
        b"GET http://[::1]:81/x HTTP/1.1\r\nHost: h\r\n\r\n",
        &fwd_head("GET /x HTTP/1.1", "[::1]:81", &[], "1.1", None),
    );
    // HTTP/1.0 with absolute-form needs no Host.
    assert_forwarded(
        b"GET http://abs.test/z HTTP/1.0\r\n\r\n",
        &fwd_head("GET /z HTTP/1.1", "abs.test", &[], "1.0", None),
    );
}

#[test]
fn absolute_form_with_empty_path_and_query() {
    // "http://h?q=1" is a valid absolute-URI (RFC 3986 §4.3, path-abempty);
    // RFC 9112 §3.2.2: "A server MUST accept the absolute-form in requests",
    // and §3.2.1: an empty path is sent as "/" in origin-form → "/?q=1".
    assert_forwarded(
        b"GET http://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n",
        &fwd_head("GET /?q=1 HTTP/1.1", "h", &[], "1.1", None),
    );
}

#[test]
fn options_asterisk_is_forwarded() {
    // RFC 9112 §3.2.4: asterisk-form, OPTIONS only.
    assert_forwarded(
        b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        &fwd_head("OPTIONS * HTTP/1.1", "h", &[], "1.1", None),
    );
}

#[test]
fn options_absolute_form_with_empty_path_becomes_asterisk() {
    // RFC 9112 §3.2.4: "If a proxy receives an OPTIONS request with an
    // absolute-form of request-target in which the URI has an empty path and
    // no query component, then the last proxy on the request chain MUST send
    // a request-target of "*" when it forwards the request to the indicated
    // origin server." (Example: OPTIONS http://www.example.org:8001 HTTP/1.1
    // → OPTIONS * HTTP/1.1, Host: www.example.org:8001.)
    assert_forwarded(
        b"OPTIONS http://www.example.org:8001 HTTP/1.1\r\nHost: www.example.org:8001\r\n\r\n",
        &fwd_head(
            "OPTIONS * HTTP/1.1",
            "www.example.org:8001",
            &[],
            "1.1",
            None,
        ),
    );
}

#[test]
fn max_forwards_zero_is_not_forwarded() {
    // RFC 9110 §7.6.2: "Each intermediary that receives a TRACE or OPTIONS
    // request containing a Max-Forwards header field MUST check and update
    // its value prior to forwarding the request. If the received value is
    // zero (0), the intermediary MUST NOT forward the request; instead, the
    // intermediary MUST respond as the final recipient."
    // corelay answers as the final recipient: 200 to both (RFC 9110 §9.3.7, §9.3.8), the
    // TRACE one reflecting the request as `message/http`, the OPTIONS one with Allow.
    for (req, content_type, body) in [
        (
            &b"TRACE /t HTTP/1.1\r\nHost: h\r\nMax-Forwards: 0\r\n\r\n"[..],
            Some("message/http"),
            &b"TRACE /t HTTP/1.1\r\nHost: h\r\nMax-Forwards: 0\r\n\r\n"[..],
        ),
        (
            b"OPTIONS * HTTP/1.1\r\nHost: h\r\nMax-Forwards: 0\r\n\r\n",
            None,
            b"",
        ),
    ] {
        let be = fwd_backend();
        let mut cr = Corelay::start(&[be.addr], &[]);
        let mut c = Client::connect(cr.addr);
        c.send(req);
        let what = String::from_utf8_lossy(req).into_owned();
        let r = c
            .read_response()
            .unwrap_or_else(|e| panic!("{what:?}: no response from the final recipient: {e:?}"));
        assert_eq!(r.status_line, "HTTP/1.1 200 OK", "{what:?}");
        assert_eq!(r.header("content-type"), content_type, "{what:?}");
        assert_bytes_eq(&r.body, body, &what);
        if content_type.is_none() {
            assert_eq!(
                r.header("allow"),
                Some("GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH"),
                "{what:?}"
            );
        }
        // Answered locally, the connection stays usable (no body to skip).
        assert!(!r.conn_close(), "{what:?}: {:?}", r.headers);
        drop(c);
        backend_got_nothing(&mut cr, &be);
    }
}

#[test]
fn max_forwards_is_decremented() {
    // RFC 9110 §7.6.2: "If the received Max-Forwards value is greater than
    // zero, the intermediary MUST generate an updated Max-Forwards field in
    // the forwarded message with a field value that is the lesser of a) the
    // received value decremented by one (1) or b) the recipient's maximum
    // supported value for Max-Forwards."
    let (r, got) = forward_one(b"TRACE /t HTTP/1.1\r\nHost: h\r\nMax-Forwards: 5\r\n\r\n");
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(
        text.contains("\r\nMax-Forwards: 4\r\n") && !text.contains("Max-Forwards: 5"),
        "backend got {text:?}"
    );
}

// ---------------------------------------------------------------------------
// header fields
// ---------------------------------------------------------------------------

#[test]
fn malformed_field_lines_are_refused() {
    // RFC 9112 §5.1: no whitespace between field name and colon → 400.
    // RFC 9110 §5.1: field-name = token. RFC 9110 §5.5: CR, LF, NUL in a
    // value → reject (or replace with SP; corelay rejects); other CTLs are
    // not field-vchar. RFC 9112 §2.2: bare CR → reject or replace with SP.
    // RFC 9112 §5.2: obs-fold in a request → 400 or unfold (corelay: 400).
    const B400: &[u16] = &[400];
    let cases: Vec<(&str, Vec<u8>, &[u16], bool)> = vec![
        (
            "space before colon",
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A : 1\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "tab before colon",
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A\t: 1\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "empty name",
            b"GET / HTTP/1.1\r\nHost: h\r\n: 1\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "name with @",
            b"GET / HTTP/1.1\r\nHost: h\r\nX@Y: 1\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "name with space",
            b"GET / HTTP/1.1\r\nHost: h\r\nX Y: 1\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "non-ASCII name",
            b"GET / HTTP/1.1\r\nHost: h\r\nX\xc3\xa9: 1\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "no colon",
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "bare CR in value",
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "NUL in value",
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "DEL in value",
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7fb\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "ESC in value",
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x1bb\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "obs-fold",
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "obs-fold of TE",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            B400,
            false,
        ),
        (
            "whitespace before first field",
            b"GET / HTTP/1.1\r\n Host: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "CR CR LF",
            b"GET / HTTP/1.1\r\nHost: h\r\r\n\r\n".to_vec(),
            B400,
            false,
        ),
    ];
    refuse_all(&[], &cases);
}

#[test]
fn host_rules() {
    // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status
    // code to any HTTP/1.1 request message that lacks a Host header field and
    // to any request message that contains more than one Host header field
    // line or a Host header field with an invalid field value."
    // Host = uri-host [ ":" port ] (RFC 9110 §7.2); an http URI must not have
    // an empty host (RFC 9110 §4.2.1).
    const B400: &[u16] = &[400];
    let req = |h: &str| format!("GET / HTTP/1.1\r\n{h}\r\n\r\n").into_bytes();
    let cases: Vec<(&str, Vec<u8>, &[u16], bool)> = vec![
        ("missing", req("Accept: */*"), B400, false),
        (
            "duplicate same value",
            req("Host: h\r\nHost: h"),
            B400,
            false,
        ),
        (
            "duplicate differing case name",
            req("Host: h\r\nhOST: h"),
            B400,
            false,
        ),
        ("empty", req("Host: "), B400, false),
        ("space inside", req("Host: a b"), B400, false),
        ("userinfo", req("Host: u@h"), B400, false),
        ("bad port", req("Host: h:8o"), B400, false),
        ("two ports", req("Host: h:80:80"), B400, false),
        ("path", req("Host: h/x"), B400, false),
        ("list", req("Host: a, b"), B400, false),
        ("unbracketed IPv6", req("Host: ::1"), B400, false),
        ("bad IP literal", req("Host: [::g]"), B400, false),
        (
            "missing with absolute-form",
            b"GET http://h/ HTTP/1.1\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "duplicate with absolute-form",
            b"GET http://h/ HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n".to_vec(),
            B400,
            false,
        ),
        (
            "duplicate in HTTP/1.0",
            b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n".to_vec(),
            B400,
            false,
        ),
    ];
    refuse_all(&[], &cases);
}

#[test]
fn bare_lf_line_endings() {
    // RFC 9112 §2.2: a recipient MAY recognize a single LF as a line
    // terminator. Either 400, or the request is forwarded with a head the
    // backend reads the same way (written afresh with CRLF).
    let req = b"GET /lf HTTP/1.1\nHost: h\nX-A: 1\n\n";
    let be = fwd_backend();
    let mut cr = Corelay::start(&[be.addr], &[]);
    match refusal(&cr, req) {
        Ok(Outcome::Status(400)) => backend_got_nothing(&mut cr, &be),
        Ok(Outcome::Status(200)) => {
            be.wait_requests(1, WAIT);
            cr.kill();
            be.settle();
            assert_bytes_eq(
                &without_generated_request_id(&be.received(0)),
                fwd_head("GET /lf HTTP/1.1", "h", &["X-A: 1"], "1.1", None).as_bytes(),
                "bare-LF request as forwarded",
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn http10_without_host_gets_a_host() {
    // RFC 9112 §3.2: HTTP/1.0 may omit Host; the request forwarded as
    // HTTP/1.1 must carry exactly one (corelay uses the backend address).
    let (r, got) = forward_one(b"GET /o HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(
        text.starts_with("GET /o HTTP/1.1\r\nHost: 127.0.0.1:"),
        "{text:?}"
    );
    assert_eq!(text.matches("\r\nHost:").count(), 1, "{text:?}");
}

// ---------------------------------------------------------------------------
// hop-by-hop and proxy fields
// ---------------------------------------------------------------------------

#[test]
fn hop_by_hop_request_fields_are_removed_exactly() {
    // RFC 9110 §7.6.1: a proxy MUST remove Connection and every field it
    // names; Proxy-Connection, Keep-Alive, TE, Transfer-Encoding, Upgrade are
    // connection-specific. RFC 9110 §7.6.3: Via is appended. Expect is
    // answered by corelay (RFC 9110 §10.1.1) and X-Forwarded-Proto is set.
    assert_forwarded(
        b"GET /h HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Custom,  x-other \r\n\
          X-Custom: secret\r\nX-Other: 2\r\nKeep-Alive: timeout=300\r\nProxy-Connection: keep-alive\r\n\
          TE: trailers\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nX-End: yes\r\n\
          X-Forwarded-Proto: https\r\nX-Forwarded-For: 10.1.1.1\r\nVia: 1.0 edge\r\n\r\n",
        "GET /h HTTP/1.1\r\nHost: h\r\nX-End: yes\r\nX-Forwarded-For: 10.1.1.1, 127.0.0.1\r\n\
         X-Forwarded-Proto: http\r\nVia: 1.0 edge, 1.1 corelay\r\n\r\n",
    );
}

#[test]
fn an_upgrade_offer_answered_without_101_keeps_the_connection_in_sync() {
    // RFC 9110 §7.8: a WebSocket offer goes to the backend with Upgrade and Connection
    // (tests/websocket.rs has the tunnel); when the backend answers it normally, that answer
    // is relayed and the connection stays usable (no tunnel, no bytes swallowed or
    // smuggled). An h2c offer never reaches the backend.
    let be = fwd_backend();
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!((r.status, r.body.as_slice()), (200, &b"forwarded"[..]));
    let r = c.roundtrip(
        b"GET /h2c HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let r = c.roundtrip(&get("/after"));
    assert_eq!(r.status, 200);
    let reqs = be.wait_requests(3, WAIT);
    assert_eq!(reqs[0].header("upgrade"), Some("websocket"));
    assert_eq!(reqs[0].header("connection"), Some("upgrade"));
    assert!(
        !reqs[1].has("upgrade") && !reqs[1].has("connection") && !reqs[1].has("http2-settings"),
        "{:?}",
        reqs[1].headers
    );
    assert_eq!(reqs[2].target, "/after");
}

#[test]
fn hop_by_hop_response_fields_are_removed() {
    // RFC 9110 §7.6.1 applies to responses too.
    let be = Backend::http(|_| {
        b"HTTP/1.1 200 OK\r\nConnection: X-Internal, keep-alive\r\nX-Internal: 1\r\n\
          Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\n\
          X-Public: 2\r\nContent-Length: 2\r\n\r\nok"
            .to_vec()
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/"));
    let names: Vec<String> = r
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    for n in [
        "connection",
        "x-internal",
        "keep-alive",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(
            !names.contains(&n.to_string()),
            "{n} relayed: {:?}",
            r.headers
        );
    }
    assert_eq!(r.header("x-public"), Some("2"));
    assert_eq!(r.body, b"ok");
}

// ---------------------------------------------------------------------------
// request framing
// ---------------------------------------------------------------------------

#[test]
fn ambiguous_or_invalid_request_framing_is_refused() {
    // RFC 9112 §6.3 item 4: TE present and chunked not final → 400 and close.
    // §6.1: chunked MUST NOT be applied more than once. §6.3 item 3: CL+TE →
    // reject or use TE only, always close (corelay: 400). §6.3 item 5:
    // invalid CL → 400. §6.1: TE in HTTP/1.0 → faulty framing.
    // RFC 9112 §6.1: unknown coding → 501 (SHOULD).
    const B400: &[u16] = &[400];
    let post = |fields: &str, body: &str| {
        format!("POST / HTTP/1.1\r\nHost: h\r\n{fields}\r\n\r\n{body}").into_bytes()
    };
    let chunked_body = "5\r\nhello\r\n0\r\n\r\n";
    let cases: Vec<(&str, Vec<u8>, &[u16], bool)> = vec![
        (
            "TE identity",
            post("Transfer-Encoding: identity", chunked_body),
            B400,
            false,
        ),
        (
            "TE chunked, identity",
            post("Transfer-Encoding: chunked, identity", chunked_body),
            B400,
            false,
        ),
        (
            "TE chunked twice",
            post("Transfer-Encoding: chunked, chunked", chunked_body),
            B400,
            false,
        ),
        (
            "TE chunked on two lines",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
                chunked_body,
            ),
            B400,
            false,
        ),
        (
            "TE chunked + empty TE line",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: ",
                chunked_body,
            ),
            B400,
            false,
        ),
        (
            "TE with parameter",
            post("Transfer-Encoding: chunked;q=1", chunked_body),
            B400,
            false,
        ),
        (
            "TE quoted",
            post("Transfer-Encoding: \"chunked\"", chunked_body),
            B400,
            false,
        ),
        (
            "TE chunked then gzip line",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip",
                chunked_body,
            ),
            B400,
            false,
        ),
        (
            "TE xchunked",
            post("Transfer-Encoding: xchunked", chunked_body),
            B400,
            false,
        ),
        (
            "TE chunked with VT",
            post("Transfer-Encoding: chunked\x0b", chunked_body),
            B400,
            false,
        ),
        (
            "TE + CL",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 3",
                chunked_body,
            ),
            B400,
            false,
        ),
        (
            "CL + TE (other case)",
            post(
                "content-length: 3\r\ntransfer-encoding: CHUNKED",
                chunked_body,
            ),
            B400,
            false,
        ),
        ("CL +1", post("Content-Length: +1", "a"), B400, false),
        ("CL -0", post("Content-Length: -0", ""), B400, false),
        ("CL 1,2", post("Content-Length: 1,2", "ab"), B400, false),
        ("CL 1, 2", post("Content-Length: 1, 2", "ab"), B400, false),
        (
            "CL two lines differ",
            post("Content-Length: 1\r\nContent-Length: 2", "ab"),
            B400,
            false,
        ),
        (
            "CL trailing comma",
            post("Content-Length: 1,", "a"),
            B400,
            false,
        ),
        ("CL hex", post("Content-Length: 0x1", "a"), B400, false),
        ("CL 1 1", post("Content-Length: 1 1", "a"), B400, false),
        ("CL 1.0", post("Content-Length: 1.0", "a"), B400, false),
        (
            "CL empty line next to valid",
            post("Content-Length: 1\r\nContent-Length: ", "a"),
            B400,
            false,
        ),
        (
            "CL with NBSP",
            post("Content-Length: \u{a0}1", "a"),
            B400,
            false,
        ),
        (
            "TE in HTTP/1.0",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"
                .to_vec(),
            B400,
            false,
        ),
        (
            "gzip then chunked on two lines",
            post(
                "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked",
                chunked_body,
            ),
            &[501],
            false,
        ),
    ];
    refuse_all(&[], &cases);
}

#[test]
fn oversized_content_length_is_refused() {
    // RFC 9112 §6.3 item 5 / RFC 9110 §8.6: a length the recipient cannot
    // represent must not be forwarded; 400 or 413 (RFC 9110 §15.5.14).
    refuse_all(
        &[],
        &[
            (
                "2^53",
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9007199254740992\r\n\r\nx".to_vec(),
                &[400, 413],
                false,
            ),
            (
                "2^64",
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\nx"
                    .to_vec(),
                &[400, 413],
                false,
            ),
        ],
    );
}

#[test]
fn valid_transfer_encoding_spellings_are_normalized() {
    // RFC 9112 §7: coding names are case-insensitive; RFC 9110 §5.6.1: a
    // recipient MUST accept (and ignore) empty list elements; OWS is allowed.
    // The backend must get exactly one `Transfer-Encoding: chunked`.
    for te in [
        "Chunked",
        " chunked",
        "chunked ,",
        ", chunked",
        "\tCHUNKED\t",
    ] {
        let req = format!(
            "POST /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:{te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let expected = fwd_head(
            "POST /te HTTP/1.1",
            "h",
            &[],
            "1.1",
            Some("Transfer-Encoding: chunked"),
        ) + "5\r\nhello\r\n0\r\n\r\n";
        assert_forwarded(req.as_bytes(), &expected);
    }
}

#[test]
fn content_length_lists_and_leading_zeros_are_normalized() {
    // RFC 9112 §6.3 item 5: a list of identical values may be accepted as
    // that value; CL = 1*DIGIT so leading zeros are the same number. The
    // backend gets one canonical Content-Length.
    for cl in [
        "Content-Length: 3,3",
        "Content-Length: 3, 3",
        "Content-Length: 003",
        "Content-Length: 3\r\nContent-Length: 3",
    ] {
        let req = format!("POST /cl HTTP/1.1\r\nHost: h\r\n{cl}\r\n\r\nabc");
        let expected = fwd_head(
            "POST /cl HTTP/1.1",
            "h",
            &[],
            "1.1",
            Some("Content-Length: 3"),
        ) + "abc";
        assert_forwarded(req.as_bytes(), &expected);
    }
}

#[test]
fn content_length_on_get_is_forwarded_with_its_body() {
    // RFC 9110 §9.3.1: content in a GET has no defined semantics but is
    // framed by Content-Length (RFC 9112 §6.3); it must be forwarded as
    // framed, never left in the stream to be read as the next request.
    let be = fwd_backend();
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let body = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(body.len(), 35);
    let mut req = b"GET /g HTTP/1.1\r\nHost: h\r\nContent-Length: 35\r\n\r\n".to_vec();
    req.extend_from_slice(body);
    c.send(&req);
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200);
    c.set_read_timeout(Duration::from_millis(500));
    assert!(
        matches!(c.read_response(), Err(WireError::Timeout)),
        "a second response"
    );
    let reqs = be.requests();
    assert_eq!(
        reqs.len(),
        1,
        "{:?}",
        reqs.iter().map(|r| &r.request_line).collect::<Vec<_>>()
    );
    assert_eq!(reqs[0].body, b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(reqs[0].header("content-length"), Some("35"));
}

#[test]
fn chunked_request_is_rechunked_exactly() {
    // RFC 9112 §7.1: chunk-size is 1*HEXDIG (any case, leading zeros),
    // chunk-ext may carry quoted strings with ';' inside; the proxy writes
    // the framing afresh. RFC 9110 §6.5.1: trailer fields that control
    // framing/routing (Content-Length, Transfer-Encoding, Host) must not be
    // forwarded as if they were header fields.
    let req = b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
        005\r\nhello\r\n\
        A;name=\"v;a\\\"l\" ; x = y\r\n0123456789\r\n\
        0000;last\r\nX-Sum: 1\r\nContent-Length: 99\r\nHost: evil\r\nTransfer-Encoding: chunked\r\n\r\n";
    let expected = fwd_head(
        "POST /c HTTP/1.1",
        "h",
        &[],
        "1.1",
        Some("Transfer-Encoding: chunked"),
    ) + "5\r\nhello\r\na\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n";
    assert_forwarded(req, &expected);
}

#[test]
fn long_chunk_size_with_leading_zeros_is_never_misread() {
    // RFC 9112 §7.1: "Recipients MUST anticipate potentially large
    // hexadecimal numerals and prevent parsing errors due to integer
    // conversion overflows". 20 hex digits of value 5: either accepted and
    // forwarded as 5 bytes, or refused with 400; never forwarded raw.
    let req = b"POST /z HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
        00000000000000000005\r\nhello\r\n0\r\n\r\n";
    let be = fwd_backend();
    let mut cr = Corelay::start(&[be.addr], &[]);
    match refusal(&cr, req) {
        Ok(Outcome::Status(400)) => backend_got_no_complete_request(&mut cr, &be),
        Ok(Outcome::Status(200)) => {
            let r = be.wait_requests(1, WAIT);
            assert_eq!(r[0].body, b"hello");
        }
        other => panic!("{other:?}"),
    }
}

/// Sends a chunked request whose body is invalid; expects 400 (or a cut
/// connection once corelay can no longer answer) and no complete request at
/// the backend.
fn bad_chunked(body: &[u8]) {
    let be = fwd_backend();
    let mut cr = Corelay::start(&[be.addr], &["--client-body-timeout", "2s"]);
    let mut req = b"POST /bad HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(body);
    match refusal(&cr, &req) {
        Ok(Outcome::Status(400)) => {}
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(body)),
    }
    backend_got_no_complete_request(&mut cr, &be);
}

#[test]
fn chunk_data_longer_than_declared() {
    // RFC 9112 §7.1: chunk-data is followed by CRLF; anything else is invalid.
    bad_chunked(b"3\r\nabcd\r\n0\r\n\r\n");
}

#[test]
fn chunk_data_shorter_than_declared() {
    bad_chunked(b"5\r\nabc\r\n0\r\n\r\n");
}

#[test]
fn chunk_extension_with_unterminated_quoted_string() {
    // chunk-ext-val = token / quoted-string (RFC 9112 §7.1.1).
    bad_chunked(b"5;a=\"unterminated\r\nhello\r\n0\r\n\r\n");
}

#[test]
fn chunk_extension_without_name() {
    bad_chunked(b"5;=x\r\nhello\r\n0\r\n\r\n");
}

#[test]
fn chunk_size_with_underscore_or_sign() {
    bad_chunked(b"0_5\r\nhello\r\n0\r\n\r\n");
}

#[test]
fn last_chunk_followed_by_a_request_line_instead_of_crlf() {
    // The trailer section must end with an empty line (RFC 9112 §7.1); a
    // request line there is not a field line. The next "request" must not be
    // forwarded either.
    bad_chunked(b"0\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n");
}

#[test]
fn trailer_field_with_obs_fold() {
    bad_chunked(b"0\r\nX-A: 1\r\n folded\r\n\r\n");
}

#[test]
fn chunked_body_missing_final_crlf_times_out() {
    // "0\r\n" without the empty line that ends the trailer section: the
    // message is incomplete → 408 after the body timeout (RFC 9110 §15.5.9),
    // or a close; never a complete request at the backend.
    let be = fwd_backend();
    let mut cr = Corelay::start(&[be.addr], &["--client-body-timeout", "1s"]);
    let req =
        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n";
    match refusal(&cr, req) {
        Ok(Outcome::Status(408)) | Ok(Outcome::Closed) => {}
        other => panic!("{other:?}"),
    }
    backend_got_no_complete_request(&mut cr, &be);
}

// ---------------------------------------------------------------------------
// connection management
// ---------------------------------------------------------------------------

#[test]
fn close_wins_over_keep_alive() {
    // RFC 9112 §9.6: a `close` option means the connection closes after the
    // response; requests pipelined after it are never forwarded (§9.3).
    let be = fwd_backend();
    let mut cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let mut req = b"GET /1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n".to_vec();
    req.extend(get("/2"));
    c.send(&req);
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200);
    assert!(r.conn_close(), "{:?}", r.headers);
    c.expect_closed();
    cr.kill();
    be.settle();
    let reqs = be.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].target, "/1");
}

#[test]
fn http10_keep_alive_is_case_insensitive_and_answered() {
    // RFC 9112 §9.3 / Appendix C.2.2: an HTTP/1.0 client asking for
    // keep-alive gets `Connection: keep-alive` if the connection persists.
    // Connection options are case-insensitive (RFC 9110 §7.6.1).
    let be = fwd_backend();
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    for i in 0..2 {
        c.send(format!("GET /{i} HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").as_bytes());
        let r = c.read_response().expect("response");
        assert_eq!(r.status_line, "HTTP/1.1 200 OK");
        assert!(
            r.header_list("connection")
                .iter()
                .any(|t| t.eq_ignore_ascii_case("keep-alive")),
            "{:?}",
            r.headers
        );
        assert_eq!(r.header("content-length"), Some("9"));
    }
}

#[test]
fn http10_request_with_body_and_keep_alive_pipelined() {
    // HTTP/1.0 with Content-Length + keep-alive, pipelined: both forwarded,
    // framed exactly, in order (RFC 9112 §9.3.2).
    let be = Backend::http(|req| {
        ok_response(format!("{}:{}", req.target, String::from_utf8_lossy(&req.body)).as_bytes())
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(b"POST /a HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.0\r\n\r\n");
    let r1 = c.read_response().expect("first");
    assert_eq!(r1.body, b"/a:hello");
    let r2 = c.read_response().expect("second");
    assert_eq!(r2.body, b"/b:");
    assert!(r2.conn_close(), "{:?}", r2.headers);
    c.expect_closed();
}

#[test]
fn pipelined_bad_request_in_the_middle() {
    // RFC 9112 §9.3.2: pipelined responses in order; a request that cannot
    // be parsed ends the connection after its error response — earlier ones
    // are answered, later ones never forwarded.
    let be = fwd_backend();
    let mut cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let mut all = get("/one");
    all.extend(b"HEAD /two HTTP/1.1\r\nHost: h\r\n\r\n");
    all.extend(b"GET /three HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n");
    all.extend(get("/four"));
    c.send(&all);
    let r1 = c.read_response().expect("first");
    assert_eq!((r1.status, r1.body.as_slice()), (200, &b"forwarded"[..]));
    let r2 = c.read_head_response().expect("second (HEAD)");
    assert_eq!(r2.status, 200);
    assert_eq!(r2.header("content-length"), Some("9"));
    let r3 = c.read_response().expect("third");
    assert_eq!(r3.status, 400, "{}", r3.status_line);
    c.expect_closed();
    cr.kill();
    be.settle();
    let targets: Vec<String> = be.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(targets, vec!["/one", "/two"]);
}

#[test]
fn expect_other_than_100_continue_gets_417() {
    // RFC 9110 §10.1.1: "A server that receives an Expect field value
    // containing a member other than 100-continue MAY respond with a 417
    // (Expectation Failed)"; corelay does, and must not forward.
    refuse_all(
        &[],
        &[(
            "Expect: 200-ok",
            b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\nhi".to_vec(),
            &[417],
            false,
        )],
    );
}

#[test]
fn expect_100_continue_then_body_exact_bytes() {
    // RFC 9110 §10.1.1: the proxy answers 100 itself; the backend gets the
    // request without Expect and with the body framed as received.
    let be = fwd_backend();
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(b"PUT /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    let interim = c.wire.read_response_head().expect("100 Continue");
    assert_eq!(interim.status, 100);
    c.send(b"data");
    let r = c.read_response().expect("final");
    assert_eq!(r.status, 200);
    be.wait_requests(1, WAIT);
    assert_bytes_eq(
        &without_generated_request_id(&be.received(0)),
        (fwd_head(
            "PUT /e HTTP/1.1",
            "h",
            &[],
            "1.1",
            Some("Content-Length: 4"),
        ) + "data")
            .as_bytes(),
        "backend bytes",
    );
}

// ---------------------------------------------------------------------------
// response side
// ---------------------------------------------------------------------------

#[test]
fn backend_http10_response_and_connection_close_keep_the_client_alive() {
    // RFC 9112 §9.3: the client's persistence is decided per hop. A backend
    // HTTP/1.0 response (no keep-alive) or `Connection: close` ends the
    // backend connection only; the HTTP/1.1 client keeps its connection and
    // gets an HTTP/1.1 status line (RFC 9110 §6.2: a proxy sends its own
    // version).
    let be = Backend::start(|mut conn| {
        if let Ok(req) = conn.read_request() {
            let resp: &[u8] = if req.target == "/10" {
                b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n10"
            } else {
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\ncl"
            };
            let _ = conn.write(resp);
        }
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/10"));
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert!(!r.conn_close(), "{:?}", r.headers);
    assert_eq!(r.body, b"10");
    let r = c.roundtrip(&get("/close"));
    assert!(!r.conn_close(), "{:?}", r.headers);
    assert_eq!(r.body, b"cl");
    let r = c.roundtrip(&get("/10"));
    assert_eq!(r.body, b"10");
    assert_eq!(be.connections(), 3);
}

#[test]
fn reason_phrase_with_obs_text_is_relayed() {
    // RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ).
    let be =
        Backend::http(|_| b"HTTP/1.1 200 Bien re\xe7u\tok\r\nContent-Length: 2\r\n\r\nok".to_vec());
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(&get("/"));
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200);
    assert!(
        r.raw_head.starts_with(b"HTTP/1.1 200 Bien re\xe7u\tok\r\n"),
        "{:?}",
        String::from_utf8_lossy(&r.raw_head)
    );
}

#[test]
fn unsolicited_100_continue_is_forwarded_to_http11_only() {
    // RFC 9110 §15.2: "A proxy MUST forward 1xx responses unless the proxy
    // itself requested the generation of the 1xx response"; and a server MUST
    // NOT send a 1xx response to an HTTP/1.0 client.
    let be = Backend::http(|_| {
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(&get("/"));
    let r = c.read_response().expect("interim");
    assert_eq!(r.status, 100);
    assert!(!r.has("content-length"), "{:?}", r.headers);
    let r = c.read_response().expect("final");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));

    let mut c = Client::connect(cr.addr);
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    let r = c.read_response().expect("final");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    c.expect_closed();
}

#[test]
fn switching_protocols_without_upgrade_is_a_bad_gateway() {
    // RFC 9110 §15.2.2: 101 only answers an Upgrade request; corelay never
    // forwards Upgrade, so a 101 is invalid → 502 and never a tunnel.
    let be = Backend::start(|mut conn| {
        if conn.read_request().is_ok() {
            let _ = conn.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nRAW");
            let _ = conn.drain_to_eof();
        }
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(&get("/"));
    let r = c.read_response().expect("502");
    assert_eq!(r.status, 502);
}

#[test]
fn content_length_on_204_is_removed_and_kept_on_304() {
    // RFC 9110 §8.6: "A server MUST NOT send a Content-Length header field in
    // any response with a status code of 1xx (Informational) or 204 (No
    // Content)"; a 304 may carry the length of the selected representation.
    // Neither has content (RFC 9112 §6.3 item 1): the bytes a broken backend
    // sends after them are never relayed.
    let be = Backend::http(|req| match req.target.as_str() {
        "/204" => b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n".to_vec(),
        "/304" => b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"e\"\r\n\r\n".to_vec(),
        _ => ok_response(b"next"),
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/204"));
    assert_eq!(r.status, 204);
    assert!(
        !r.has("content-length") && !r.has("transfer-encoding"),
        "{:?}",
        r.headers
    );
    let r = c.roundtrip(&get("/304"));
    assert_eq!(r.status, 304);
    assert_eq!(r.header("content-length"), Some("5"));
    assert!(!r.has("transfer-encoding"), "{:?}", r.headers);
    let r = c.roundtrip(&get("/n"));
    assert_eq!(r.body, b"next");
}

#[test]
fn response_trailers_with_forbidden_fields_are_filtered() {
    // RFC 9110 §6.5.1: framing/routing/control fields must not be taken from
    // trailers; §6.5.2 allows a proxy to drop trailers it does not forward.
    let be = Backend::http(|_| {
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Ok: 1\r\nContent-Length: 99\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n".to_vec()
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/"));
    assert_eq!(r.body, b"ok");
    let names: Vec<String> = r
        .trailers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    for n in ["content-length", "transfer-encoding", "connection"] {
        assert!(
            !names.contains(&n.to_string()),
            "{n} in trailers: {:?}",
            r.trailers
        );
    }
    let r = c.roundtrip(&get("/again"));
    assert_eq!(r.body, b"ok");
}

#[test]
fn forwarded_response_without_date_gets_one() {
    // RFC 9110 §6.6.1: "A recipient with a clock that receives a response
    // message without a Date header field MUST record the time it was
    // received and append a corresponding Date header field to the message's
    // header section if it is cached or forwarded downstream."
    let be = Backend::ok(b"nodate");
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/"));
    assert_eq!(r.status, 200);
    let date = r
        .header("date")
        .unwrap_or_else(|| panic!("no Date: {:?}", r.headers));
    assert!(
        date.ends_with(" GMT") && date.len() == 29,
        "not an IMF-fixdate: {date:?}"
    );
}

#[test]
fn generated_4xx_responses_carry_date() {
    // RFC 9110 §6.6.1: "An origin server with a clock MUST generate a Date
    // header field in all 2xx, 3xx and 4xx responses" — corelay is the origin
    // of its own 400/408/414/417/431 responses.
    let be = fwd_backend();
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(b"GET / HTTP/1.1\r\n\r\n");
    let r = c.read_response().expect("400");
    assert_eq!(r.status, 400);
    assert!(r.has("date"), "400 without Date: {:?}", r.headers);
}

// ---------------------------------------------------------------------------
// error responses to HEAD
// ---------------------------------------------------------------------------

/// Sends a HEAD request and expects an error status with no content after the
/// head (RFC 9110 §9.3.2: "the server MUST NOT send content in the response"
/// to HEAD; RFC 9112 §6.3 item 1: any bytes after the head would be read as
/// the next response).
fn head_error_has_no_body(addr: std::net::SocketAddr, req: &[u8], status: u16) {
    let mut c = Client::connect(addr);
    c.send(req);
    let r = c.wire.read_response_head().expect("response head");
    assert_eq!(r.status, status, "{}", r.status_line);
    match c.wire.read_to_eof() {
        Ok(b) | Err((WireError::Reset, b)) => assert!(
            b.is_empty(),
            "content after a {status} response to HEAD: {:?}",
            String::from_utf8_lossy(&b)
        ),
        Err((e, _)) => panic!("connection not closed: {e:?}"),
    }
}

#[test]
fn head_to_a_dead_backend_gets_502_without_content() {
    let cr = Corelay::start(&[dead_addr()], &[]);
    head_error_has_no_body(cr.addr, b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", 502);
}

#[test]
fn head_to_a_silent_backend_gets_504_without_content() {
    let be = Backend::start(|mut conn| {
        let _ = conn.read_request();
        let _ = conn.drain_to_eof();
    });
    let cr = Corelay::start(&[be.addr], &["--backend-response-timeout", "1s"]);
    head_error_has_no_body(cr.addr, b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", 504);
}

#[test]
fn head_with_unsupported_expectation_gets_417_without_content() {
    let be = fwd_backend();
    let cr = Corelay::start(&[be.addr], &[]);
    head_error_has_no_body(
        cr.addr,
        b"HEAD / HTTP/1.1\r\nHost: h\r\nExpect: x\r\n\r\n",
        417,
    );
}

// ---------------------------------------------------------------------------
// backend faults after the response started
// ---------------------------------------------------------------------------

/// A backend that sends a chunked response in two steps: the head and a
/// first chunk, then (on a signal) a valid chunk immediately followed by an
/// invalid size line, in one write.
fn chunk_error_backend() -> (Backend, mpsc::Sender<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Mutex::new(rx);
    let be = Backend::start(move |mut conn| {
        if conn.read_request().is_ok() {
            let _ =
                conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
            let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
            let _ = conn.write(b"3\r\nabc\r\nzz\r\nmore\r\n0\r\n\r\n");
            let _ = conn.drain_to_eof();
        }
    });
    (be, tx)
}

#[test]
fn invalid_chunk_mid_response_never_injects_an_error_response_http11() {
    // Once the head went out, the only honest report of a backend framing
    // error is to cut the connection (RFC 9112 §8; RFC 9110 §15.6.3 can no
    // longer be sent). A "HTTP/1.1 502" written into the middle of the
    // chunked body is a second response inside the first.
    let (be, go) = chunk_error_backend();
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(&get("/"));
    let head = c.wire.read_response_head().expect("head");
    assert_eq!(head.status, 200);
    let first = c.wire.read_n(10, 0).expect("first chunk");
    assert_eq!(first, b"5\r\nhello\r\n");
    go.send(()).unwrap();
    let rest = match c.wire.read_to_eof() {
        Ok(b) | Err((WireError::Reset, b)) => b,
        Err((e, b)) => panic!("not cut: {e:?} after {:?}", String::from_utf8_lossy(&b)),
    };
    assert!(
        !contains(&rest, b"HTTP/1.1 502"),
        "an error response was written into the body: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(
        !matches!(
            decode_chunked(&[&first[..], &rest[..]].concat()),
            Chunked::Complete { .. }
        ),
        "complete body relayed"
    );
}

#[test]
fn invalid_chunk_mid_response_never_injects_an_error_response_http10() {
    // Same for an HTTP/1.0 client, which gets the data close-delimited: any
    // byte that is not response data becomes part of the body it accepts.
    let (be, go) = chunk_error_backend();
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    let head = c.wire.read_response_head().expect("head");
    assert_eq!(head.status, 200);
    assert!(!head.has("transfer-encoding"), "{:?}", head.headers);
    let first = c.wire.read_n(5, 0).expect("first chunk data");
    assert_eq!(first, b"hello");
    go.send(()).unwrap();
    let rest = match c.wire.read_to_eof() {
        Ok(b) | Err((WireError::Reset, b)) => b,
        Err((e, b)) => panic!("not cut: {e:?} after {:?}", String::from_utf8_lossy(&b)),
    };
    assert!(
        b"abc".starts_with(&rest),
        "bytes that are not response data were relayed as body: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

// ---------------------------------------------------------------------------
// limits
// ---------------------------------------------------------------------------

/// A GET whose whole head (request line to the final CRLF) is `n` bytes.
fn head_of(n: usize) -> Vec<u8> {
    let pre = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
    let pad = n - pre.len() - 4;
    format!("{pre}{}\r\n\r\n", "p".repeat(pad)).into_bytes()
}

#[test]
fn head_of_exactly_max_header_bytes_is_forwarded() {
    // --max-header-bytes 16384 is the largest head accepted (inclusive).
    let be = fwd_backend();
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let req = head_of(16384);
    assert_eq!(req.len(), 16384);
    let r = c.roundtrip(&req);
    assert_eq!(r.status, 200, "{}", r.status_line);
}

#[test]
fn head_one_byte_over_max_header_bytes_gets_431() {
    // RFC 6585 §5 / RFC 9110 §15.5 (431).
    refuse_all(&[], &[("16385-byte head", head_of(16385), &[431], false)]);
}

#[test]
fn target_at_and_over_max_target_len() {
    // RFC 9112 §3: a request-target longer than the server wishes to parse →
    // 414 (RFC 9110 §15.5.15).
    let t = |n: usize| format!("/{}", "t".repeat(n - 1));
    refuse_all(
        &["--max-target-len", "50"],
        &[(
            "51",
            format!("GET {} HTTP/1.1\r\nHost: h\r\n\r\n", t(51)).into_bytes(),
            &[414],
            false,
        )],
    );
    let be = fwd_backend();
    let cr = Corelay::start(&[be.addr], &["--max-target-len", "50"]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(format!("GET {} HTTP/1.1\r\nHost: h\r\n\r\n", t(50)).as_bytes());
    assert_eq!(r.status, 200);
}

#[test]
fn http10_client_never_sees_a_truncated_chunked_response_as_complete() {
    // An HTTP/1.0 client gets a chunked response close-delimited, so a clean
    // FIN tells it the body is complete (RFC 9112 §6.3 item 8). When the
    // backend dies mid-chunk, the response is incomplete (RFC 9112 §8) and
    // the only signal left is an abortive close (RST): a FIN would present a
    // short body as complete.
    let be = Backend::start(|mut conn| {
        if conn.read_request().is_ok() {
            let _ = conn.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n64\r\nshort",
            );
        }
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    let head = c.wire.read_response_head().expect("head");
    assert_eq!(head.status, 200);
    match c.wire.read_to_eof() {
        Err((WireError::Reset, _)) => {}
        Ok(b) => panic!(
            "truncated body {:?} ended with a clean close: the client takes it as complete",
            String::from_utf8_lossy(&b)
        ),
        Err((e, _)) => panic!("{e:?}"),
    }
}

#[test]
fn malformed_response_field_lines_give_502() {
    // RFC 9112 §5.2: obs-fold in a response → a proxy MUST either replace the
    // message with 502 or unfold it; §5.1: whitespace before the colon in a
    // response → a proxy MUST remove it before forwarding (or reject: 502).
    // RFC 9110 §5.5: CR/LF/NUL in a value → reject (502) or replace with SP.
    let cases: Vec<(&str, &[u8])> = vec![
        (
            "obs-fold",
            b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
        ),
        (
            "space before colon",
            b"HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 2\r\n\r\nok",
        ),
        (
            "NUL in value",
            b"HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok",
        ),
        (
            "bare CR in value",
            b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok",
        ),
        (
            "TE in HTTP/1.0",
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        ),
        (
            "TE chunked twice",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        ),
        (
            "CL 2, 3",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok!",
        ),
        (
            "status 99",
            b"HTTP/1.1 099 X\r\nContent-Length: 2\r\n\r\nok",
        ),
        (
            "HTTP/2.0 status line",
            b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ),
    ];
    let table: Vec<(String, Vec<u8>)> = cases
        .iter()
        .map(|(n, b)| (format!("/{}", n.replace(' ', "-")), b.to_vec()))
        .collect();
    let be = Backend::start(move |mut conn| {
        if let Ok(req) = conn.read_request() {
            if let Some((_, b)) = table.iter().find(|(p, _)| *p == req.target) {
                let _ = conn.write(b);
            }
            let _ = conn.drain_to_eof();
        }
    });
    let cr = Corelay::start(&[be.addr], &["--backend-response-timeout", "3s"]);
    let mut failures = Vec::new();
    for (name, _) in &cases {
        let mut c = Client::connect(cr.addr);
        c.send(&get(&format!("/{}", name.replace(' ', "-"))));
        match c.read_response() {
            Ok(r) if r.status == 502 => {}
            Ok(r) if name == &"obs-fold" && r.status == 200 && r.header("x-a") == Some("a b") => {}
            Ok(r)
                if name == &"space before colon"
                    && r.status == 200
                    && r.raw_head.windows(6).any(|w| w == b"X-A: a") => {}
            Ok(r) => failures.push(format!("{name}: {:?} {:?}", r.status_line, r.headers)),
            Err(e) => failures.push(format!("{name}: {e:?}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
