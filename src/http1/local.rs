//! Responses the proxy gives as the final recipient of a request: a TRACE or
//! OPTIONS whose Max-Forwards has run out (RFC 9110 §7.6.2: "If the received
//! value is zero (0), the intermediary MUST NOT forward the request; instead,
//! the intermediary MUST respond as the final recipient.").
//!
//! See `RequestHead::answer_locally`. The caller still has to consume the
//! request (and discard any body) before the connection can carry another.

use std::io::Write;

use super::date::write_date_field;
use super::encode::write_connection;
use super::request::RequestHead;
use super::span::HeaderSpan;

/// The methods the proxy relays with their semantics known, listed in Allow
/// for `OPTIONS` (RFC 9110 §10.2.1); other methods are forwarded too, but
/// Allow describes what the target supports and the proxy cannot know more.
const ALLOW: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH";

/// Request fields left out of a TRACE reflection. RFC 9110 §9.3.8: the final
/// recipient "SHOULD exclude any request fields that are likely to contain
/// sensitive data"; credentials and cookies are its examples.
const TRACE_EXCLUDED: &[&str] = &["authorization", "proxy-authorization", "cookie"];

/// Appends the answer to an OPTIONS the proxy does not forward:
/// `200 OK` with Allow and no content (RFC 9110 §9.3.7).
///
/// `keep_alive` as in `encode_response`: false adds `Connection: close`,
/// true towards an HTTP/1.0 client adds `Connection: keep-alive`.
pub fn encode_options_response(head: &RequestHead, keep_alive: bool, out: &mut Vec<u8>) {
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nAllow: {ALLOW}\r\nContent-Length: 0\r\n"
    );
    write_date_field(out);
    write_connection(head.version, keep_alive, out);
    out.extend_from_slice(b"\r\n");
}

/// Appends the answer to a TRACE the proxy does not forward: `200 OK` with
/// the received request line and header fields as `message/http` content
/// (RFC 9110 §9.3.8), minus the fields in `TRACE_EXCLUDED`. `buf` is the
/// buffer `head` was parsed from; `keep_alive` as in
/// `encode_options_response`.
///
/// The request line is reflected byte for byte; field lines are rebuilt from
/// their parsed name and value (`name: value`), which drops only whitespace.
pub fn encode_trace_response(buf: &[u8], head: &RequestHead, keep_alive: bool, out: &mut Vec<u8>) {
    let line = request_line(buf, head);
    let reflected = || head.headers.iter().filter(|h| !is_excluded(buf, h));
    let content_length = line.len()
        + 2
        + reflected()
            .map(|h| h.name.len() + 2 + h.value.len() + 2)
            .sum::<usize>()
        + 2;
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: message/http\r\nContent-Length: {content_length}\r\n"
    );
    write_date_field(out);
    write_connection(head.version, keep_alive, out);
    out.extend_from_slice(b"\r\n");

    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
    for h in reflected() {
        out.extend_from_slice(h.name.get(buf));
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.get(buf));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The request line of `head` without its line ending (httparse also ends
/// lines with a bare LF).
fn request_line<'a>(buf: &'a [u8], head: &RequestHead) -> &'a [u8] {
    let start = head.method_span.start as usize;
    let line = &buf[start..head.head_len];
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let line = &line[..end];
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_excluded(buf: &[u8], h: &HeaderSpan) -> bool {
    TRACE_EXCLUDED.iter().any(|n| h.is(buf, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::date::without_date;
    use crate::http1::limits::Limits;
    use crate::http1::request::{parse_request, Method};

    fn parse(buf: &[u8]) -> RequestHead {
        let mut head = RequestHead::new();
        assert_eq!(parse_request(buf, &Limits::default(), &mut head), Ok(true));
        head
    }

    #[test]
    fn options_response() {
        let head = parse(b"OPTIONS * HTTP/1.1\r\nHost: h\r\nMax-Forwards: 0\r\n\r\n");
        assert!(head.answer_locally());
        let mut out = Vec::new();
        encode_options_response(&head, true, &mut out);
        assert_eq!(
            without_date(&out),
            "HTTP/1.1 200 OK\r\nAllow: GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let mut out = Vec::new();
        encode_options_response(&head, false, &mut out);
        assert!(without_date(&out).ends_with("Content-Length: 0\r\nConnection: close\r\n\r\n"));

        let head =
            parse(b"OPTIONS /x HTTP/1.0\r\nMax-Forwards: 0\r\nConnection: keep-alive\r\n\r\n");
        let mut out = Vec::new();
        encode_options_response(&head, true, &mut out);
        assert!(without_date(&out).ends_with("\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn trace_response_reflects_the_request() {
        let buf = b"\r\nTRACE /t?q HTTP/1.1\r\nHost: h\r\nMax-Forwards: 0\r\nX-A:  1 \r\n\
                    Authorization: Basic c2VjcmV0\r\ncookie: s=1\r\n\
                    Proxy-Authorization: x\r\nVia: 1.1 a\r\n\r\n";
        let head = parse(buf);
        assert_eq!(head.method, Method::Trace);
        assert!(head.answer_locally());
        let mut out = Vec::new();
        encode_trace_response(buf, &head, true, &mut out);
        let text = without_date(&out);
        let body = "TRACE /t?q HTTP/1.1\r\nHost: h\r\nMax-Forwards: 0\r\nX-A: 1\r\n\
                    Via: 1.1 a\r\n\r\n";
        assert_eq!(
            text,
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: message/http\r\nContent-Length: {}\r\n\
                 \r\n{body}",
                body.len()
            )
        );
        assert!(!text.contains("c2VjcmV0") && !text.contains("s=1"));
    }

    #[test]
    fn trace_response_connection_and_bare_lf() {
        let buf = b"TRACE / HTTP/1.0\nMax-Forwards: 0\n\n";
        let head = parse(buf);
        let mut out = Vec::new();
        encode_trace_response(buf, &head, false, &mut out);
        let text = without_date(&out);
        let body = "TRACE / HTTP/1.0\r\nMax-Forwards: 0\r\n\r\n";
        assert_eq!(
            text,
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: message/http\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
        );
    }
}
