//! A refused request says why: the 400 (or 501) body names the codec's reason in one line of
//! plain text, and the reason is logged at info level with the client's address.

mod common;
use common::*;

use std::time::Duration;

/// The exact bytes of corelay's answer to `req` (sent on a fresh connection, read to EOF:
/// the connection closes after a refused head), with the Date line and the generated
/// X-Request-Id line taken out.
fn answer(cr: &Corelay, req: &[u8]) -> String {
    let mut c = Client::connect(cr.addr);
    c.send(req);
    // A reset after the answer is fine (the kernel resets when unread request bytes are
    // left at close); the answer itself must have arrived whole.
    let bytes = c.wire.read_to_eof().unwrap_or_else(|(_, got)| got);
    let mut text = String::from_utf8(bytes).unwrap();
    for field in ["Date: ", "X-Request-Id: "] {
        let at = text
            .find(field)
            .unwrap_or_else(|| panic!("no {field} line in {text:?}"));
        let end = at + text[at..].find("\r\n").unwrap() + 2;
        text = format!("{}{}", &text[..at], &text[end..]);
    }
    text
}

fn expected(status_line: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status_line}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn bad_requests_name_their_reason_in_the_body_and_the_log() {
    let be = Backend::ok(b"ok");
    // The only test of this binary, so setting the environment the child inherits is safe.
    std::env::set_var("RUST_LOG", "info");
    let mut cr = Corelay::start(&[be.addr], &[]);
    let both = format!(
        "POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    assert_eq!(
        answer(&cr, both.as_bytes()),
        expected(
            "400 Bad Request",
            "400 Bad Request: both Transfer-Encoding and Content-Length\n"
        )
    );
    assert_eq!(
        answer(&cr, b"GET / HTTP/1.1\r\n\r\n"),
        expected("400 Bad Request", "400 Bad Request: missing Host\n")
    );
    // A body whose chunked framing breaks: the head was fine, the reason is the chunk's.
    let bad_chunk =
        format!("POST / HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    assert_eq!(
        answer(&cr, bad_chunk.as_bytes()),
        expected(
            "400 Bad Request",
            "400 Bad Request: invalid chunk size line\n"
        )
    );
    // Statuses that already say it all keep their plain body.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Fill: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(
        answer(&cr, big.as_bytes()),
        expected(
            "431 Request Header Fields Too Large",
            "431 Request Header Fields Too Large\n"
        )
    );
    cr.signal(SIGTERM);
    cr.wait_exit(Duration::from_secs(10)).expect("exit");
    let err = cr.stderr();
    for reason in [
        "127.0.0.1: 400 Bad Request: both Transfer-Encoding and Content-Length",
        "127.0.0.1: 400 Bad Request: missing Host",
        "127.0.0.1: 400 Bad Request: invalid chunk size line",
    ] {
        assert_eq!(err.matches(reason).count(), 1, "{reason}: {err}");
    }
    assert!(
        err.lines()
            .filter(|l| l.contains(": 400 Bad Request: "))
            .all(|l| l.contains(" INFO ")),
        "{err}"
    );
}
