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
use super::request::{Method, RequestBody, RequestHead, Version};
use super::response::ResponseHead;
use super::span::HeaderSpan;

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
/// ourselves (Expect: the proxy answers 100-continue), and the one a client
/// could spoof (X-Forwarded-Proto).
const REQUEST_REWRITTEN: &[&str] = &[
    "host",
    "transfer-encoding",
    "content-length",
    "expect",
    "x-forwarded-proto",
    "x-forwarded-for",
    "via",
];

/// Fields never copied from the backend to the client, beyond hop-by-hop.
const RESPONSE_REWRITTEN: &[&str] = &["transfer-encoding", "content-length", "via"];

/// Appends the request head for the backend (always HTTP/1.1) to `out`.
pub fn encode_request(buf: &[u8], head: &RequestHead, info: &ForwardInfo, out: &mut Vec<u8>) {
    out.extend_from_slice(head.method_span.get(buf));
    out.push(b' ');
    out.extend_from_slice(head.target.get(buf));
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    match head.host {
        Some(h) => out.extend_from_slice(h.get(buf)),
        None => out.extend_from_slice(info.default_host.as_bytes()),
    }
    out.extend_from_slice(b"\r\n");

    let headers = &head.headers[..];
    for h in headers {
        let name = h.name.get(buf);
        if !is_listed(REQUEST_REWRITTEN, name) && !connection::is_hop_field(buf, headers, name) {
            write_field(buf, h, out);
        }
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
/// `Connection: keep-alive` (1.0 closes by default).
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
    for h in headers {
        let name = h.name.get(buf);
        if !is_listed(RESPONSE_REWRITTEN, name) && !connection::is_hop_field(buf, headers, name) {
            write_field(buf, h, out);
        }
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
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if client_version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
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
