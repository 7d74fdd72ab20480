//! Re-encoding heads for the next hop: the request towards the backend and
//! the response towards the client.
//!
//! Heads are rebuilt rather than copied: hop-by-hop fields are dropped, the
//! framing fields are written afresh from what *we* parsed, and proxy fields
//! (Via, X-Forwarded-*) are merged into one line each. The next hop therefore
//! sees exactly the framing we act on, whatever the original bytes were.

use std::io::Write;
use std::net::IpAddr;

use super::connection;
use super::date::write_date_field;
use super::request::{Method, RequestBody, RequestHead, Version};
use super::response::ResponseHead;
use super::span::HeaderSpan;
use super::syntax::name_reads_as;

/// What the proxy adds about the client connection.
#[derive(Clone, Copy, Debug)]
pub struct ForwardInfo<'a> {
    pub client_ip: IpAddr,
    /// Scheme the client used, for X-Forwarded-Proto ("http").
    pub proto: &'a str,
    /// Our pseudonym in Via (e.g. "corelay").
    pub via: &'a str,
    /// Host sent for an HTTP/1.0 request that had none.
    pub default_host: &'a str,
    /// Header names (ASCII case-insensitive) never forwarded: the credential
    /// fields that the proxy itself checked (`Authorization`, an API-key
    /// header), so that a secret meant for the proxy does not reach the
    /// backend or its logs. Their underscore spellings (`X_Api_Key`) go too, since a CGI-style
    /// backend reads them as the same field. Empty to forward everything.
    pub strip: &'a [&'a [u8]],
    /// Upgrade protocols to pass on (lower-case names; see `connection::upgrade_allowed`):
    /// when the request offers one of them, it goes out with `Connection: upgrade` and an
    /// Upgrade field listing just those. Empty to strip Upgrade as any hop-by-hop field.
    pub upgrade: &'a [String],
}

/// Framing of the response body as sent to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutFraming {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Body ends when we close the connection.
    Close,
}

/// Fields never copied from the client to the backend, beyond hop-by-hop:
/// those we rewrite (Host, framing, Via, X-Forwarded-For), the one we handle
/// ourselves (Expect: the proxy answers 100-continue), the one a client
/// could spoof (X-Forwarded-Proto), and X-Request-Id, which the proxy sets
/// itself (keeping the client's when configured to) with [`add_field`].
const REQUEST_REWRITTEN: &[&str] = &[
    "host",
    "transfer-encoding",
    "content-length",
    "expect",
    "x-forwarded-proto",
    "x-forwarded-for",
    "via",
    "x-request-id",
];

/// Fields never copied from the backend to the client, beyond hop-by-hop; the
/// client gets the X-Request-Id its request went out with, not the backend's.
const RESPONSE_REWRITTEN: &[&str] = &["transfer-encoding", "content-length", "via", "x-request-id"];

/// Adds the field `name: value` to the head that ends `out` (just encoded,
/// nothing after its empty line). `value` must be a valid field value.
pub fn add_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    debug_assert!(out.ends_with(b"\r\n\r\n"));
    out.truncate(out.len() - 2);
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n\r\n");
}

/// Appends the request head for the backend (always HTTP/1.1) to `out`.
///
/// A TRACE or OPTIONS with `Max-Forwards: n` goes out with `n - 1`; one with
/// `Max-Forwards: 0` should not be forwarded at all (`answer_locally`), and if
/// it is, it keeps 0.
pub fn encode_request(buf: &[u8], head: &RequestHead, info: &ForwardInfo, out: &mut Vec<u8>) {
    encode_request_to(buf, head, None, info, out)
}

/// [`encode_request`] with the request-target replaced by `target` (a route's rewritten or
/// normalised path), when given.
pub fn encode_request_to(
    buf: &[u8],
    head: &RequestHead,
    target: Option<&[u8]>,
    info: &ForwardInfo,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(head.method_span.get(buf));
    out.push(b' ');
    match target {
        Some(t) => out.extend_from_slice(t),
        None => head.write_target(buf, out),
    }
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    match head.host {
        Some(h) => out.extend_from_slice(h.get(buf)),
        None => out.extend_from_slice(info.default_host.as_bytes()),
    }
    out.extend_from_slice(b"\r\n");

    // RFC 9110 §7.6.2: "Each intermediary that receives a TRACE or OPTIONS
    // request containing a Max-Forwards header field MUST check and update
    // its value prior to forwarding the request." Other methods: as received.
    let max_forwards = match head.method {
        Method::Trace | Method::Options => head.max_forwards,
        _ => None,
    };
    let headers = &head.headers[..];
    for h in headers {
        let name = h.name.get(buf);
        let rewritten = is_listed(REQUEST_REWRITTEN, name)
            || info
                .strip
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n) || name_reads_as(name, n))
            || (max_forwards.is_some() && name.eq_ignore_ascii_case(b"max-forwards"));
        if !rewritten && !connection::is_hop_field(buf, headers, name) {
            write_field(buf, h, out);
        }
    }
    if let Some(n) = max_forwards {
        let _ = write!(out, "Max-Forwards: {}\r\n", n.saturating_sub(1));
    }
    if let Some(v) = head
        .upgrade
        .filter(|_| head.upgrade_offered(buf, info.upgrade))
    {
        out.extend_from_slice(b"Connection: upgrade\r\nUpgrade: ");
        for (i, e) in connection::allowed_upgrades(v.get(buf), info.upgrade).enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(e);
        }
        out.extend_from_slice(b"\r\n");
    }

    out.extend_from_slice(b"X-Forwarded-For: ");
    write_merged(buf, headers, "x-forwarded-for", out);
    let _ = write!(out, "{}\r\n", info.client_ip);
    out.extend_from_slice(b"X-Forwarded-Proto: ");
    out.extend_from_slice(info.proto.as_bytes());
    out.extend_from_slice(b"\r\n");
    write_via(buf, headers, head.version, info.via, out);

    match head.body {
        RequestBody::Length(n) => write_content_length(n, out),
        RequestBody::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        // RFC 9110 §8.6: a body-carrying method without a body should say so,
        // some backends otherwise wait for one or answer 411.
        RequestBody::None if matches!(head.method, Method::Post | Method::Put | Method::Patch) => {
            write_content_length(0, out)
        }
        RequestBody::None => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends the response head for the client to `out`. The status line is
/// always `HTTP/1.1 <status> <reason>`; `keep_alive` = false adds
/// `Connection: close`, and true towards an HTTP/1.0 client adds
/// `Connection: keep-alive` (1.0 closes by default). A response without Date
/// gets the current time (RFC 9110 §6.6.1).
pub fn encode_response(
    buf: &[u8],
    head: &ResponseHead,
    framing: OutFraming,
    client_version: Version,
    keep_alive: bool,
    info_via: &str,
    out: &mut Vec<u8>,
) {
    let _ = write!(out, "HTTP/1.1 {} ", head.status);
    out.extend_from_slice(head.reason.get(buf));
    out.extend_from_slice(b"\r\n");

    let headers = &head.headers[..];
    let mut has_date = false;
    for h in headers {
        let name = h.name.get(buf);
        if !is_listed(RESPONSE_REWRITTEN, name) && !connection::is_hop_field(buf, headers, name) {
            has_date |= name.eq_ignore_ascii_case(b"date");
            write_field(buf, h, out);
        }
    }
    // RFC 9110 §6.6.1: "A recipient with a clock that receives a response
    // message without a Date header field MUST record the time it was
    // received and append a corresponding Date header field to the message's
    // header section if it is cached or forwarded downstream." The head was
    // just received, so now is that time.
    if !has_date {
        write_date_field(out);
    }
    write_via(buf, headers, head.version, info_via, out);

    match framing {
        OutFraming::Length(n) => write_content_length(n, out),
        OutFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        OutFraming::Close => {}
        OutFraming::None => {
            // A HEAD or 304 response may tell the length the body would have
            // had (RFC 9110 §8.6); 1xx and 204 must not carry one at all.
            let forbidden = head.status < 200 || head.status == 204;
            if let (Some(n), false) = (head.content_length, forbidden) {
                write_content_length(n, out);
            }
        }
    }
    write_connection(client_version, keep_alive, out);
    out.extend_from_slice(b"\r\n");
}

/// The Connection field of a response to a `client_version` client: close
/// when we will, keep-alive to HTTP/1.0 (which closes by default), nothing
/// for HTTP/1.1 keep-alive (its default).
pub(crate) fn write_connection(client_version: Version, keep_alive: bool, out: &mut Vec<u8>) {
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if client_version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
}

fn is_listed(list: &[&str], name: &[u8]) -> bool {
    list.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

fn write_field(buf: &[u8], h: &HeaderSpan, out: &mut Vec<u8>) {
    out.extend_from_slice(h.name.get(buf));
    out.extend_from_slice(b": ");
    out.extend_from_slice(h.value.get(buf));
    out.extend_from_slice(b"\r\n");
}

fn write_content_length(n: u64, out: &mut Vec<u8>) {
    let _ = write!(out, "Content-Length: {n}\r\n");
}

/// Writes the non-empty values of every `name` line, each followed by ", ",
/// so the caller's own element comes last as in a single list. Lines that a
/// Connection option nominates are hop-by-hop and left out.
fn write_merged(buf: &[u8], headers: &[HeaderSpan], name: &str, out: &mut Vec<u8>) {
    for h in headers {
        if h.is(buf, name)
            && !h.value.is_empty()
            && !connection::is_nominated(buf, headers, name.as_bytes())
        {
            out.extend_from_slice(h.value.get(buf));
            out.extend_from_slice(b", ");
        }
    }
}

/// RFC 9110 §7.6.3: append our hop, labelled with the protocol version the
/// message was received with.
fn write_via(buf: &[u8], headers: &[HeaderSpan], received: Version, via: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"Via: ");
    write_merged(buf, headers, "via", out);
    out.extend_from_slice(received.via_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(via.as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::date::without_date;
    use crate::http1::limits::Limits;
    use crate::http1::request::parse_request;
    use crate::http1::response::{parse_response, ResponseHead};

    fn info() -> ForwardInfo<'static> {
        ForwardInfo {
            client_ip: "192.0.2.7".parse().unwrap(),
            proto: "http",
            via: "corelay",
            default_host: "backend.local",
            strip: &[],
            upgrade: &[],
        }
    }

    fn forward(buf: &[u8]) -> String {
        let mut head = RequestHead::new();
        assert_eq!(parse_request(buf, &Limits::default(), &mut head), Ok(true));
        let mut out = Vec::new();
        encode_request(buf, &head, &info(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn request_minimal() {
        assert_eq!(
            forward(b"GET /a?b HTTP/1.1\r\nhost: example.com\r\n\r\n"),
            "GET /a?b HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 192.0.2.7\r\n\
             X-Forwarded-Proto: http\r\nVia: 1.1 corelay\r\n\r\n"
        );
    }

    #[test]
    fn request_hop_by_hop_and_rewritten_fields_are_dropped() {
        let out = forward(
            b"POST /p HTTP/1.1\r\nHost: h\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n\
              Keep-Alive: 5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X\r\n\
              Upgrade: h2c\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\
              X-Forwarded-Proto: https\r\nX-Keep: yes\r\nCase-Preserved: V\r\n\r\n",
        );
        assert_eq!(
            out,
            "POST /p HTTP/1.1\r\nHost: h\r\nX-Keep: yes\r\nCase-Preserved: V\r\n\
             X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nVia: 1.1 corelay\r\n\
             Content-Length: 3\r\n\r\n"
        );
    }

    #[test]
    fn request_proxy_fields_are_merged() {
        let out = forward(
            b"GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\nHost: h\r\nVia: 1.0 fred\r\n\
              x-forwarded-for: 10.0.0.2, 10.0.0.3\r\nX-Forwarded-For:\r\nVia: 1.1 p\r\n\r\n",
        );
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nHost: h\r\n\
             X-Forwarded-For: 10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7\r\n\
             X-Forwarded-Proto: http\r\nVia: 1.0 fred, 1.1 p, 1.1 corelay\r\n\r\n"
        );
    }

    #[test]
    fn request_strip_removes_underscore_spellings() {
        // With underscores allowed, `X_Api_Key` is the same field to a CGI-style backend.
        let buf = b"GET / HTTP/1.1\r\nHost: h\r\nX_Api_Key: k\r\nX_Api_Key_Id: 7\r\n\r\n";
        let mut head = RequestHead::new();
        let limits = Limits {
            underscores: crate::http1::UnderscoreAction::Allow,
            ..Limits::default()
        };
        parse_request(buf, &limits, &mut head).unwrap();
        let strip: &[&[u8]] = &[b"X-API-Key"];
        let mut out = Vec::new();
        encode_request(buf, &head, &ForwardInfo { strip, ..info() }, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET / HTTP/1.1\r\nHost: h\r\nX_Api_Key_Id: 7\r\n\
             X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nVia: 1.1 corelay\r\n\r\n"
        );
    }

    #[test]
    fn request_ipv6_client() {
        let buf = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let mut head = RequestHead::new();
        parse_request(buf, &Limits::default(), &mut head).unwrap();
        let mut out = Vec::new();
        let i = ForwardInfo {
            client_ip: "2001:db8::1".parse().unwrap(),
            ..info()
        };
        encode_request(buf, &head, &i, &mut out);
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("X-Forwarded-For: 2001:db8::1\r\n"));
    }

    fn forward_upgrade(buf: &[u8], allow: &[String]) -> String {
        let mut head = RequestHead::new();
        parse_request(buf, &Limits::default(), &mut head).unwrap();
        let mut out = Vec::new();
        let i = ForwardInfo {
            upgrade: allow,
            ..info()
        };
        encode_request(buf, &head, &i, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn request_upgrade_passes_only_allowed_protocols() {
        let ws = vec!["websocket".to_string()];
        let get = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n\
                    Upgrade: WebSocket, foo/2, h2c\r\nSec-WebSocket-Key: k\r\n\r\n";
        let out = forward_upgrade(get, &ws);
        // Connection is rewritten to the one option that matters to the next hop; the
        // Upgrade list keeps the allowed protocols as the client spelled them.
        assert!(
            out.contains("\r\nConnection: upgrade\r\nUpgrade: WebSocket\r\n"),
            "{out}"
        );
        assert!(!out.contains("keep-alive") && !out.contains("foo") && !out.contains("h2c"));
        assert!(out.contains("Sec-WebSocket-Key: k\r\n"), "{out}");
        // Not allowed (an empty list, or only h2c even when listed): stripped as before.
        for (buf, allow) in [
            (&get[..], vec![]),
            (
                &b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"[..],
                vec!["h2c".to_string(), "websocket".to_string()],
            ),
        ] {
            let out = forward_upgrade(buf, &allow);
            assert!(!out.to_ascii_lowercase().contains("upgrade"), "{out}");
        }
    }

    #[test]
    fn request_upgrade_needs_a_bodiless_http11_get_with_one_upgrade_line() {
        let ws = vec!["websocket".to_string()];
        for buf in [
            // Connection does not list upgrade.
            &b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"[..],
            // Two Upgrade lines.
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
              Upgrade: websocket\r\n\r\n",
            // A body: where it ends and the tunnel begins would be the backend's guess.
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
              Content-Length: 2\r\n\r\nhi",
            b"POST / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
              Content-Length: 0\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        ] {
            let mut head = RequestHead::new();
            parse_request(buf, &Limits::default(), &mut head).unwrap();
            assert!(
                !head.upgrade_offered(buf, &ws),
                "{}",
                String::from_utf8_lossy(buf)
            );
            let out = forward_upgrade(buf, &ws);
            assert!(!out.to_ascii_lowercase().contains("upgrade"), "{out}");
        }
    }

    #[test]
    fn request_strip_removes_credentials() {
        let buf = b"GET / HTTP/1.1\r\nHost: h\r\nauthorization: Basic dTpw\r\nX-Keep: 1\r\n\
                    X-API-KEY: k1\r\nAuthorization: Bearer t\r\nX-Api-Key-Id: 7\r\n\r\n";
        let mut head = RequestHead::new();
        parse_request(buf, &Limits::default(), &mut head).unwrap();
        let strip: &[&[u8]] = &[b"Authorization", b"x-api-key"];
        let mut out = Vec::new();
        encode_request(buf, &head, &ForwardInfo { strip, ..info() }, &mut out);
        // Every line of a stripped name goes, whatever its case; a longer name
        // that merely starts with one stays.
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET / HTTP/1.1\r\nHost: h\r\nX-Keep: 1\r\nX-Api-Key-Id: 7\r\n\
             X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nVia: 1.1 corelay\r\n\r\n"
        );
        // An empty list forwards the credentials as received.
        let out = forward(buf);
        assert!(out.contains("\r\nauthorization: Basic dTpw\r\n"), "{out}");
        assert!(out.contains("\r\nAuthorization: Bearer t\r\n"), "{out}");
        assert!(out.contains("\r\nX-API-KEY: k1\r\n"), "{out}");
    }

    #[test]
    fn request_http10_and_absolute_form() {
        assert_eq!(
            forward(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
            "GET /x HTTP/1.1\r\nHost: backend.local\r\nX-Forwarded-For: 192.0.2.7\r\n\
             X-Forwarded-Proto: http\r\nVia: 1.0 corelay\r\n\r\n"
        );
        assert_eq!(
            forward(b"GET http://abs.example/p HTTP/1.1\r\nHost: other\r\n\r\n"),
            "GET /p HTTP/1.1\r\nHost: abs.example\r\nX-Forwarded-For: 192.0.2.7\r\n\
             X-Forwarded-Proto: http\r\nVia: 1.1 corelay\r\n\r\n"
        );
        assert!(
            forward(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").starts_with("OPTIONS * HTTP/1.1\r\n")
        );
    }

    #[test]
    fn request_absolute_form_with_empty_path() {
        // RFC 9112 §3.2.1: the empty path is sent as "/", before the query too.
        assert_eq!(
            forward(b"GET http://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n"),
            "GET /?q=1 HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 192.0.2.7\r\n\
             X-Forwarded-Proto: http\r\nVia: 1.1 corelay\r\n\r\n"
        );
        assert!(forward(b"GET http://h HTTP/1.1\r\nHost: h\r\n\r\n")
            .starts_with("GET / HTTP/1.1\r\nHost: h\r\n"));
        // RFC 9112 §3.2.4's own example.
        let out = forward(
            b"OPTIONS http://www.example.org:8001 HTTP/1.1\r\nHost: www.example.org:8001\r\n\r\n",
        );
        assert!(
            out.starts_with("OPTIONS * HTTP/1.1\r\nHost: www.example.org:8001\r\n"),
            "{out}"
        );
        assert!(forward(b"OPTIONS http://h?a HTTP/1.1\r\nHost: h\r\n\r\n")
            .starts_with("OPTIONS /?a HTTP/1.1\r\n"));
        assert!(forward(b"OPTIONS http://h/ HTTP/1.1\r\nHost: h\r\n\r\n")
            .starts_with("OPTIONS / HTTP/1.1\r\n"));
    }

    #[test]
    fn request_max_forwards() {
        // RFC 9110 §7.6.2: TRACE and OPTIONS get the value minus one, in a
        // single field replacing the received ones.
        let out = forward(b"TRACE /t HTTP/1.1\r\nHost: h\r\nMax-Forwards: 5\r\nX: 1\r\n\r\n");
        assert_eq!(
            out,
            "TRACE /t HTTP/1.1\r\nHost: h\r\nX: 1\r\nMax-Forwards: 4\r\n\
             X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nVia: 1.1 corelay\r\n\r\n"
        );
        let out = forward(
            b"OPTIONS * HTTP/1.1\r\nHost: h\r\nmax-forwards: 1\r\nMax-Forwards: 01\r\n\r\n",
        );
        assert_eq!(out.matches("ax-Forwards").count(), 1, "{out}");
        assert!(out.contains("\r\nMax-Forwards: 0\r\n"), "{out}");
        let out = forward(
            b"OPTIONS * HTTP/1.1\r\nHost: h\r\nMax-Forwards: 99999999999999999999999\r\n\r\n",
        );
        assert!(
            out.contains(&format!(
                "\r\nMax-Forwards: {}\r\n",
                crate::http1::MAX_FORWARDS_LIMIT - 1
            )),
            "{out}"
        );
        // Other methods: passed through as received, valid or not.
        for v in ["5", "0", "x", "5, 5"] {
            let out = forward(
                format!("GET / HTTP/1.1\r\nHost: h\r\nMax-Forwards: {v}\r\n\r\n").as_bytes(),
            );
            assert!(out.contains(&format!("\r\nMax-Forwards: {v}\r\n")), "{out}");
            assert_eq!(out.matches("Max-Forwards").count(), 1, "{out}");
        }
        // Absent: none is added.
        assert!(!forward(b"TRACE / HTTP/1.1\r\nHost: h\r\n\r\n").contains("Max-Forwards"));
        // A TRACE that should have been answered locally keeps its 0.
        assert!(
            forward(b"TRACE / HTTP/1.1\r\nHost: h\r\nMax-Forwards: 0\r\n\r\n")
                .contains("\r\nMax-Forwards: 0\r\n")
        );
    }

    #[test]
    fn response_date() {
        // RFC 9110 §6.6.1: a forwarded response without Date gets one...
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let mut head = ResponseHead::new();
        parse_response(buf, &Limits::default(), Method::Get, &mut head).unwrap();
        let mut out = Vec::new();
        let now = crate::http1::date::http_date_now();
        encode_response(
            buf,
            &head,
            OutFraming::Length(0),
            Version::Http11,
            true,
            "corelay",
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        let date = text.lines().find_map(|l| l.strip_prefix("Date: ")).unwrap();
        let later = crate::http1::date::http_date_now();
        assert!(date.as_bytes() == now || date.as_bytes() == later, "{date}");
        // ...one with Date keeps the backend's, and only it.
        let buf =
            b"HTTP/1.1 200 OK\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\n\r\n";
        parse_response(buf, &Limits::default(), Method::Get, &mut head).unwrap();
        let mut out = Vec::new();
        encode_response(
            buf,
            &head,
            OutFraming::Length(0),
            Version::Http11,
            true,
            "corelay",
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\nVia: 1.1 corelay\r\n\
             Content-Length: 0\r\n\r\n"
        );
        // A Date that the backend made hop-by-hop is dropped, so ours replaces it.
        let buf = b"HTTP/1.1 200 OK\r\nConnection: Date\r\nDate: x\r\nContent-Length: 0\r\n\r\n";
        parse_response(buf, &Limits::default(), Method::Get, &mut head).unwrap();
        let mut out = Vec::new();
        encode_response(
            buf,
            &head,
            OutFraming::Length(0),
            Version::Http11,
            true,
            "corelay",
            &mut out,
        );
        assert_eq!(
            without_date(&out),
            "HTTP/1.1 200 OK\r\nVia: 1.1 corelay\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn request_framing_written_afresh() {
        let out = forward(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(out.ends_with("Transfer-Encoding: chunked\r\n\r\n"), "{out}");
        assert_eq!(out.matches("Transfer-Encoding").count(), 1);
        let out = forward(b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 007, 7\r\n\r\n");
        assert!(out.ends_with("Content-Length: 7\r\n\r\n"), "{out}");
        for m in ["POST", "PUT", "PATCH"] {
            let out = forward(format!("{m} / HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
            assert!(out.ends_with("Content-Length: 0\r\n\r\n"), "{out}");
        }
        for m in ["GET", "DELETE", "PURGE"] {
            let out = forward(format!("{m} / HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
            assert!(!out.contains("Content-Length"), "{out}");
        }
        let out = forward(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
        assert!(out.ends_with("Content-Length: 0\r\n\r\n"), "{out}");
        assert!(!out.contains("Connection"));
    }

    fn respond(
        buf: &[u8],
        method: Method,
        framing: OutFraming,
        client: Version,
        keep_alive: bool,
    ) -> String {
        let mut head = ResponseHead::new();
        assert_eq!(
            parse_response(buf, &Limits::default(), method, &mut head),
            Ok(true)
        );
        let mut out = Vec::new();
        encode_response(buf, &head, framing, client, keep_alive, "corelay", &mut out);
        // These backends send no Date, so the proxy adds exactly one.
        without_date(&out)
    }

    #[test]
    fn response_basic() {
        let out = respond(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\n",
            Method::Get,
            OutFraming::Length(5),
            Version::Http11,
            true,
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nVia: 1.1 corelay\r\n\
             Content-Length: 5\r\n\r\n"
        );
    }

    #[test]
    fn response_from_http10_backend_with_empty_reason() {
        let out = respond(
            b"HTTP/1.0 200\r\nVia: 1.1 inner\r\n\r\n",
            Method::Get,
            OutFraming::Close,
            Version::Http11,
            false,
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 \r\nVia: 1.1 inner, 1.0 corelay\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn response_hop_by_hop_dropped() {
        let out = respond(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\nX-Internal: 1\r\n\
              Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\
              Upgrade: h2\r\nProxy-Connection: x\r\nTE: trailers\r\nSet-Cookie: a=1\r\n\r\n",
            Method::Get,
            OutFraming::Chunked,
            Version::Http11,
            true,
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nVia: 1.1 corelay\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn response_connection_header_for_clients() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let out = respond(
            buf,
            Method::Get,
            OutFraming::Length(0),
            Version::Http10,
            true,
        );
        assert!(
            out.ends_with("Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"),
            "{out}"
        );
        let out = respond(
            buf,
            Method::Get,
            OutFraming::Length(0),
            Version::Http10,
            false,
        );
        assert!(out.ends_with("Connection: close\r\n\r\n"), "{out}");
        let out = respond(
            buf,
            Method::Get,
            OutFraming::Length(0),
            Version::Http11,
            true,
        );
        assert!(!out.contains("Connection"), "{out}");
    }

    #[test]
    fn response_bodiless_content_length() {
        let out = respond(
            b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n",
            Method::Head,
            OutFraming::None,
            Version::Http11,
            true,
        );
        assert!(out.ends_with("Content-Length: 42\r\n\r\n"), "{out}");
        let out = respond(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\nETag: \"x\"\r\n\r\n",
            Method::Get,
            OutFraming::None,
            Version::Http11,
            true,
        );
        assert_eq!(
            out,
            "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nVia: 1.1 corelay\r\nContent-Length: 42\r\n\r\n"
        );
        for status in ["204 No Content", "100 Continue", "103 Early Hints"] {
            let buf = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            let out = respond(
                buf.as_bytes(),
                Method::Get,
                OutFraming::None,
                Version::Http11,
                true,
            );
            assert!(!out.contains("Content-Length"), "{out}");
        }
        let out = respond(
            b"HTTP/1.1 304 Not Modified\r\n\r\n",
            Method::Get,
            OutFraming::None,
            Version::Http11,
            true,
        );
        assert!(!out.contains("Content-Length"), "{out}");
    }
}
