//! Response head parsing (backend to proxy): status line, header fields and
//! the body framing of RFC 9112 §6.3, which depends on the request method.
//!
//! Any framing we cannot read with certainty is `Malformed`: the proxy answers
//! 502 and drops the backend connection rather than relay a body whose end it
//! might place differently from the client.

use std::fmt;
use std::mem::MaybeUninit;

use super::connection;
use super::framing::{ContentLength, TransferEncoding};
use super::limits::{Limits, INITIAL_HEADER_CAPACITY, MAX_HEADERS_LIMIT};
use super::request::{Method, Version};
use super::span::{HeaderSpan, Span};

/// The range of status codes RFC 9110 §15 defines: the first digit is the
/// class, 1 to 5. Anything else from a backend is a malformed response.
const MIN_STATUS: u16 = 100;
const MAX_STATUS: u16 = 599;

/// How the response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseBody {
    /// No body: HEAD, 1xx, 204, 304.
    None,
    Length(u64),
    Chunked,
    /// No framing fields: the body runs until the backend closes.
    CloseDelimited,
}

/// A parsed response head, reused like `RequestHead`.
#[derive(Clone, Debug)]
pub struct ResponseHead {
    pub status: u16,
    /// Reason phrase as received (may be empty).
    pub reason: Span,
    pub version: Version,
    pub headers: Vec<HeaderSpan>,
    /// Bytes of the head including the final CRLFCRLF.
    pub head_len: usize,
    pub body: ResponseBody,
    /// A valid Content-Length value, also when `body` is None (HEAD/304),
    /// so it can be passed on to the client.
    pub content_length: Option<u64>,
    /// The backend allows reuse of the connection after this response.
    pub keep_alive: bool,
}

impl ResponseHead {
    pub fn new() -> Self {
        Self::with_headers(Vec::with_capacity(INITIAL_HEADER_CAPACITY))
    }

    /// Resets every field, keeping the header vector's capacity.
    pub fn clear(&mut self) {
        let mut headers = std::mem::take(&mut self.headers);
        headers.clear();
        *self = Self::with_headers(headers);
    }

    fn with_headers(headers: Vec<HeaderSpan>) -> Self {
        ResponseHead {
            status: 0,
            reason: Span::default(),
            version: Version::Http11,
            headers,
            head_len: 0,
            body: ResponseBody::None,
            content_length: None,
            keep_alive: false,
        }
    }

    /// The value of the first header field named `name` (case-insensitive).
    pub fn header<'a>(&self, buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.is(buf, name))
            .map(|h| h.value.get(buf))
    }
}

impl Default for ResponseHead {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a response head was refused; the proxy answers 502 for all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseError {
    HeaderTooLarge,
    TooManyHeaders,
    Malformed(&'static str),
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::HeaderTooLarge => f.write_str("response head too large"),
            ResponseError::TooManyHeaders => f.write_str("too many response header fields"),
            ResponseError::Malformed(r) => write!(f, "malformed response: {r}"),
        }
    }
}

impl std::error::Error for ResponseError {}

/// Parses a response head from the start of `buf` into `head`.
/// `request_method` decides whether a body follows (HEAD never has one).
///
/// Ok(true): complete head in `buf[..head.head_len]`. Ok(false): need more
/// bytes, and `buf` is still within the limits.
pub fn parse_response(
    buf: &[u8],
    limits: &Limits,
    request_method: Method,
    head: &mut ResponseHead,
) -> Result<bool, ResponseError> {
    head.clear();
    // As for requests: only the bytes a head may take are looked at.
    let view = &buf[..buf.len().min(limits.max_header_bytes)];
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_LIMIT];
    let mut res = httparse::Response::new(&mut []);
    let status = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(
            &mut res,
            view,
            &mut storage[..limits.effective_max_headers()],
        )
        .map_err(|e| match e {
            httparse::Error::TooManyHeaders => ResponseError::TooManyHeaders,
            httparse::Error::Version => ResponseError::Malformed("unsupported HTTP version"),
            httparse::Error::Status => ResponseError::Malformed("invalid status line"),
            httparse::Error::HeaderName => ResponseError::Malformed("invalid header name"),
            httparse::Error::HeaderValue => ResponseError::Malformed("invalid header value"),
            httparse::Error::NewLine => ResponseError::Malformed("invalid line ending"),
            httparse::Error::Token => ResponseError::Malformed("invalid token"),
        })?;
    let head_len = match status {
        httparse::Status::Partial if view.len() >= limits.max_header_bytes => {
            return Err(ResponseError::HeaderTooLarge)
        }
        httparse::Status::Partial => return Ok(false),
        httparse::Status::Complete(n) => n,
    };
    let (Some(minor), Some(code)) = (res.version, res.code) else {
        return Err(ResponseError::Malformed("invalid status line"));
    };
    // httparse takes any three digits; RFC 9110 §15: "All valid status codes
    // are within the range of 100 to 599, inclusive." Outside it there is no
    // class to tell us whether a body follows.
    if !(MIN_STATUS..=MAX_STATUS).contains(&code) {
        return Err(ResponseError::Malformed("invalid status code"));
    }
    head.status = code;
    head.version = Version::from_minor(minor);
    head.head_len = head_len;
    head.reason = reason_span(buf);

    let mut content_length = ContentLength::default();
    let mut transfer_encoding = TransferEncoding::default();
    for h in res.headers.iter() {
        let span = HeaderSpan::of(buf, h);
        head.headers.push(span);
        if span.is(buf, "content-length") {
            content_length
                .add_line(h.value)
                .map_err(|e| ResponseError::Malformed(e.reason()))?;
        } else if span.is(buf, "transfer-encoding") {
            transfer_encoding.add_line(h.value);
        }
    }
    head.content_length = content_length.get();
    let http11 = head.version == Version::Http11;
    head.body = body(
        request_method,
        code,
        http11,
        &content_length,
        &transfer_encoding,
    )?;
    head.keep_alive = head.body != ResponseBody::CloseDelimited
        && connection::persists(buf, &head.headers, http11);
    Ok(true)
}

/// RFC 9112 §6.3, in its order of precedence.
fn body(
    method: Method,
    status: u16,
    http11: bool,
    cl: &ContentLength,
    te: &TransferEncoding,
) -> Result<ResponseBody, ResponseError> {
    if method == Method::Head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(ResponseBody::None);
    }
    if te.is_present() {
        if !http11 {
            // §6.1: TE in an HTTP/1.0 message means the framing is faulty.
            return Err(ResponseError::Malformed("Transfer-Encoding in HTTP/1.0"));
        }
        if cl.get().is_some() {
            return Err(ResponseError::Malformed(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        // Other codings are legal, but we would have to forward them to a
        // client that never asked for them (TE is hop-by-hop).
        te.check_only_chunked()
            .map_err(|e| ResponseError::Malformed(e.reason()))?;
        return Ok(ResponseBody::Chunked);
    }
    Ok(match cl.get() {
        Some(n) => ResponseBody::Length(n),
        None => ResponseBody::CloseDelimited,
    })
}

/// The reason phrase of a status line httparse accepted. Computed from the
/// bytes because httparse replaces a reason containing obs-text with "".
fn reason_span(buf: &[u8]) -> Span {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(0);
    // "HTTP/1.x NNN" is 12 bytes, then SP reason or the line end.
    let after_code = start + 12;
    if buf.get(after_code) != Some(&b' ') {
        return Span::new(after_code, after_code);
    }
    let reason_start = after_code + 1;
    let len = buf[reason_start..]
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(0);
    Span::new(reason_start, reason_start + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_for(buf: &[u8], method: Method) -> Result<ResponseHead, ResponseError> {
        let mut head = ResponseHead::new();
        match parse_response(buf, &Limits::default(), method, &mut head)? {
            true => Ok(head),
            false => panic!("partial"),
        }
    }

    fn parse(buf: &[u8]) -> Result<ResponseHead, ResponseError> {
        parse_for(buf, Method::Get)
    }

    fn malformed(buf: &[u8]) -> bool {
        matches!(parse(buf), Err(ResponseError::Malformed(_)))
    }

    #[test]
    fn simple_response() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
        let h = parse(buf).unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.reason.get(buf), b"OK");
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.head_len, buf.len() - 5);
        assert_eq!(h.headers.len(), 2);
        assert_eq!(h.body, ResponseBody::Length(5));
        assert_eq!(h.content_length, Some(5));
        assert!(h.keep_alive);
        assert_eq!(h.header(buf, "server"), Some(&b"x"[..]));
    }

    #[test]
    fn incremental_and_limits() {
        let buf = b"HTTP/1.1 204 No Content\r\nA: b\r\n\r\n";
        let mut head = ResponseHead::new();
        for end in 0..buf.len() {
            assert_eq!(
                parse_response(&buf[..end], &Limits::default(), Method::Get, &mut head),
                Ok(false)
            );
        }
        let small = Limits {
            max_header_bytes: 20,
            ..Limits::default()
        };
        assert_eq!(
            parse_response(&buf[..20], &small, Method::Get, &mut head),
            Err(ResponseError::HeaderTooLarge)
        );
        assert_eq!(
            parse_response(buf, &small, Method::Get, &mut head),
            Err(ResponseError::HeaderTooLarge)
        );
        // A bad byte past the limit is not looked at: too large, at once as in pieces
        // (found by fuzz target response_head).
        let late = b"HTTP/1.1 200 OK\r\nA: bbbbb\x00\r\n\r\n";
        assert_eq!(
            parse_response(late, &small, Method::Get, &mut head),
            Err(ResponseError::HeaderTooLarge)
        );
        let few = Limits {
            max_headers: 1,
            ..Limits::default()
        };
        assert_eq!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n",
                &few,
                Method::Get,
                &mut head
            ),
            Err(ResponseError::TooManyHeaders)
        );
    }

    #[test]
    fn reason_phrases() {
        let buf = b"HTTP/1.1 404 Not  Found \r\n\r\n";
        assert_eq!(parse(buf).unwrap().reason.get(buf), b"Not  Found ");
        let buf = b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse(buf).unwrap().reason.get(buf), b"");
        let buf = b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n";
        assert!(parse(buf).unwrap().reason.is_empty());
        // obs-text is kept (httparse would report "").
        let buf = b"HTTP/1.1 200 Tr\xe8s bien\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse(buf).unwrap().reason.get(buf), b"Tr\xe8s bien");
        let buf = b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let h = parse(buf).unwrap();
        assert_eq!(h.reason.get(buf), b"OK");
        assert_eq!(h.head_len, buf.len());
    }

    #[test]
    fn status_line_errors() {
        assert!(malformed(b"HTTP/1.1 20 OK\r\n\r\n"));
        assert!(malformed(b"HTTP/1.1 2000 OK\r\n\r\n"));
        assert!(malformed(b"HTTP/1.1 099 Low\r\n\r\n"));
        assert!(malformed(b"HTTP/1.1 abc OK\r\n\r\n"));
        assert!(malformed(b"HTTP/2.0 200 OK\r\n\r\n"));
        assert!(malformed(b"HTTP/1.2 200 OK\r\n\r\n"));
        assert!(malformed(b"ICY 200 OK\r\n\r\n"));
        assert!(malformed(b"HTTP/1.1 200 O\x00K\r\n\r\n"));
        assert!(malformed(b"HTTP/1.1 200 OK\r\nA : b\r\n\r\n"));
        assert!(malformed(b"HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n"));
        assert!(malformed(b"HTTP/1.1 200 OK\r\nA: b\x00\r\n\r\n"));
        // RFC 9110 §15: only classes 1xx-5xx exist.
        assert!(malformed(b"HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n"));
        assert!(malformed(b"HTTP/1.1 999 Odd\r\n\r\n"));
        assert!(malformed(b"HTTP/1.1 000 Zero\r\n\r\n"));
        assert_eq!(parse(b"HTTP/1.1 599 Odd\r\n\r\n").unwrap().status, 599);
        assert_eq!(parse(b"HTTP/1.1 199 Odd\r\n\r\n").unwrap().status, 199);
        assert_eq!(parse(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap().status, 100);
    }

    #[test]
    fn bodiless_responses_record_content_length() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        let h = parse_for(buf, Method::Head).unwrap();
        assert_eq!(h.body, ResponseBody::None);
        assert_eq!(h.content_length, Some(10));
        assert!(h.keep_alive);
        let buf = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n";
        let h = parse(buf).unwrap();
        assert_eq!(h.body, ResponseBody::None);
        assert_eq!(h.content_length, Some(10));
        for status in ["100", "101", "103", "204", "304"] {
            let buf = format!("HTTP/1.1 {status} X\r\n\r\n");
            assert_eq!(parse(buf.as_bytes()).unwrap().body, ResponseBody::None);
        }
        // Framing of a bodiless response is not used, but TE is still
        // not allowed to make it chunked.
        let buf = b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(buf).unwrap().body, ResponseBody::None);
        // An invalid length is still an error: it signals a broken backend.
        assert!(matches!(
            parse_for(
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                Method::Head
            ),
            Err(ResponseError::Malformed(_))
        ));
    }

    #[test]
    fn framing() {
        let b = |extra: &str| {
            let buf = format!("HTTP/1.1 200 OK\r\n{extra}\r\n");
            parse(buf.as_bytes()).map(|h| h.body)
        };
        assert_eq!(
            b("Transfer-Encoding: chunked\r\n"),
            Ok(ResponseBody::Chunked)
        );
        assert_eq!(
            b("Transfer-Encoding: Chunked \r\n"),
            Ok(ResponseBody::Chunked)
        );
        assert_eq!(b("Content-Length: 7\r\n"), Ok(ResponseBody::Length(7)));
        assert_eq!(b("Content-Length: 7, 7\r\n"), Ok(ResponseBody::Length(7)));
        assert_eq!(b(""), Ok(ResponseBody::CloseDelimited));
        for extra in [
            "Transfer-Encoding: gzip, chunked\r\n",
            "Transfer-Encoding: gzip\r\n",
            "Transfer-Encoding: chunked, gzip\r\n",
            "Transfer-Encoding: chunked, chunked\r\n",
            "Transfer-Encoding:\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: -5\r\n",
            "Content-Length: 5a\r\n",
            "Content-Length: \r\n",
        ] {
            assert!(
                matches!(b(extra), Err(ResponseError::Malformed(_))),
                "{extra}"
            );
        }
        let buf = b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(malformed(buf));
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |buf: &[u8]| parse(buf).unwrap().keep_alive;
        assert!(ka(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(!ka(
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(ka(
            b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
        ));
        // Close-delimited bodies end the connection whatever the headers say.
        assert!(!ka(b"HTTP/1.1 200 OK\r\n\r\n"));
        assert!(!ka(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"));
        assert!(ka(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"));
    }

    #[test]
    fn head_is_reused() {
        let mut head = ResponseHead::new();
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nA: 1\r\n\r\n";
        assert_eq!(
            parse_response(a, &Limits::default(), Method::Get, &mut head),
            Ok(true)
        );
        let ptr = head.headers.as_ptr();
        let b = b"HTTP/1.0 204 No Content\r\n\r\n";
        assert_eq!(
            parse_response(b, &Limits::default(), Method::Get, &mut head),
            Ok(true)
        );
        assert_eq!(head.headers.len(), 0);
        assert_eq!(head.headers.as_ptr(), ptr);
        assert_eq!(head.content_length, None);
        assert_eq!(head.version, Version::Http10);
    }
}
