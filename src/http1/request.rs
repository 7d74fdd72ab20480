//! Request head parsing: request line, header fields, and the decisions a
//! proxy must make from them before forwarding (target form, Host, body
//! framing, persistence, Expect), per RFC 9112 and RFC 9110.
//!
//! Strictness is deliberate: any message we might read differently from the
//! backend (two lengths, an unknown coding, a duplicate Host) is refused
//! instead of normalised, because such disagreements are request smuggling.

use std::fmt;
use std::mem::MaybeUninit;

use super::connection;
use super::framing::{ContentLength, FramingError, TransferEncoding};
use super::host;
use super::limits::{Limits, INITIAL_HEADER_CAPACITY, MAX_FORWARDS_LIMIT, MAX_HEADERS_LIMIT};
use super::span::{HeaderSpan, Span};
use super::syntax::{is_tchar, list_elements};
use super::target::{self, TargetPrefix};
use super::underscores::{self, Verdict};
use super::version::{refused_version, RefusedVersion};

/// HTTP versions we speak; anything else is refused at parse time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// The version as written in Via (`1.0` / `1.1`).
    pub fn via_str(self) -> &'static str {
        match self {
            Version::Http10 => "1.0",
            Version::Http11 => "1.1",
        }
    }

    pub(crate) fn from_minor(minor: u8) -> Version {
        if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        }
    }
}

/// Request methods the proxy treats specially; the rest are `Other` and
/// forwarded as received (see `RequestHead::method_span`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Trace,
    Patch,
    Connect,
    Other,
}

impl Method {
    /// Methods are case-sensitive (RFC 9110 §9.1): `get` is `Other`.
    pub fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }

    /// RFC 9110 §9.2.2: requests that may be retried on another connection
    /// without changing the outcome.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Options
                | Method::Trace
                | Method::Put
                | Method::Delete
        )
    }
}

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestBody {
    /// No framing fields: no body (RFC 9112 §6.3 item 7).
    None,
    Length(u64),
    Chunked,
}

/// A parsed request head. Reused across requests: `parse_request` clears it
/// first, and `headers` keeps its capacity so steady-state parsing does not
/// allocate.
#[derive(Clone, Debug)]
pub struct RequestHead {
    pub method: Method,
    pub method_span: Span,
    /// What to forward, after `target_prefix`: origin-form path+query (the
    /// path part of an absolute-form, `/` if empty), or `*` for `OPTIONS *`.
    pub target: Span,
    /// Bytes to forward before `target` that the buffer does not hold:
    /// `/` before the `?query` of `http://h?query`, or `*` (with an empty
    /// `target`) for `OPTIONS http://h` (see [`TargetPrefix`]). `None` for
    /// every origin-form request, so `target` alone is what most code needs.
    pub target_prefix: TargetPrefix,
    pub version: Version,
    pub headers: Vec<HeaderSpan>,
    /// Bytes of the head including any skipped leading empty lines and the
    /// final CRLFCRLF; the body starts at `buf[head_len]`.
    pub head_len: usize,
    pub body: RequestBody,
    /// The client allows the connection to continue after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request.
    pub expect_continue: bool,
    /// The validated host (from an absolute-form authority when present);
    /// `None` only for HTTP/1.0 without Host.
    pub host: Option<Span>,
    /// The Max-Forwards value (RFC 9110 §7.6.2), if the field is present and
    /// valid. Validated strictly only for TRACE and OPTIONS, the methods it
    /// applies to; on others an invalid value is left `None` and forwarded.
    /// Values above [`MAX_FORWARDS_LIMIT`] saturate (the proxy's "maximum
    /// supported value").
    pub max_forwards: Option<u64>,
    /// The Upgrade value of a GET offering to switch protocols (see
    /// `connection::upgrade_offer`); `None` for a request with a body.
    pub upgrade: Option<Span>,
}

impl RequestHead {
    /// Whether the request offers a protocol on `allow` to upgrade to.
    pub fn upgrade_offered(&self, buf: &[u8], allow: &[String]) -> bool {
        self.upgrade.is_some_and(|v| {
            connection::allowed_upgrades(v.get(buf), allow)
                .next()
                .is_some()
        })
    }

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
        RequestHead {
            method: Method::Get,
            method_span: Span::default(),
            target: Span::default(),
            target_prefix: TargetPrefix::None,
            version: Version::Http11,
            headers,
            head_len: 0,
            body: RequestBody::None,
            keep_alive: false,
            expect_continue: false,
            host: None,
            max_forwards: None,
            upgrade: None,
        }
    }

    /// RFC 9110 §7.6.2: a TRACE or OPTIONS with `Max-Forwards: 0` must not be
    /// forwarded; the proxy "MUST respond as the final recipient" (see
    /// `encode_options_response` and `encode_trace_response`).
    pub fn answer_locally(&self) -> bool {
        matches!(self.method, Method::Trace | Method::Options) && self.max_forwards == Some(0)
    }

    /// Appends the request-target to forward: `target_prefix`, then `target`.
    pub fn write_target(&self, buf: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(self.target_prefix.as_bytes());
        out.extend_from_slice(self.target.get(buf));
    }

    /// The value of the first header field named `name` (case-insensitive).
    pub fn header<'a>(&self, buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.is(buf, name))
            .map(|h| h.value.get(buf))
    }
}

impl Default for RequestHead {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a request head was refused; `status()` is the response to send
/// (after which the connection must be closed: the stream position is lost).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// 431: head larger than `max_header_bytes`.
    HeaderTooLarge,
    /// 431: more than `max_headers` fields.
    TooManyHeaders,
    /// 414: request-target longer than `max_target_len`.
    UriTooLong,
    /// 400, with a short reason for logs.
    BadRequest(&'static str),
    /// 501: valid HTTP we do not implement (CONNECT, extra transfer codings).
    NotImplemented(&'static str),
    /// 417: an Expect other than 100-continue.
    ExpectationFailed,
    /// 505: a well-formed HTTP-version with a major version other than 1
    /// (RFC 9110 §15.6.6), e.g. `HTTP/2.0`.
    VersionNotSupported,
}

impl RequestError {
    pub fn status(&self) -> u16 {
        match self {
            RequestError::HeaderTooLarge | RequestError::TooManyHeaders => 431,
            RequestError::UriTooLong => 414,
            RequestError::BadRequest(_) => 400,
            RequestError::NotImplemented(_) => 501,
            RequestError::ExpectationFailed => 417,
            RequestError::VersionNotSupported => 505,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::HeaderTooLarge => f.write_str("request head too large"),
            RequestError::TooManyHeaders => f.write_str("too many header fields"),
            RequestError::UriTooLong => f.write_str("request-target too long"),
            RequestError::BadRequest(r) => write!(f, "bad request: {r}"),
            RequestError::NotImplemented(r) => write!(f, "not implemented: {r}"),
            RequestError::ExpectationFailed => f.write_str("unsupported expectation"),
            RequestError::VersionNotSupported => f.write_str("unsupported HTTP major version"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Parses a request head from the start of `buf` into `head`.
///
/// Ok(true): a complete head is in `buf[..head.head_len]`. Ok(false): more
/// bytes are needed, and `buf` is still within the limits.
///
/// Only HTTP/1.0 and 1.1 are accepted; run `normalize_request_version` on the
/// buffer first to have HTTP/1.2..1.9 read as 1.1 (RFC 9110 §2.5).
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
    head: &mut RequestHead,
) -> Result<bool, RequestError> {
    head.clear();
    // Only the bytes a head may take are looked at, so the answer never depends on how
    // much past them has arrived (bytes past a complete head are the body).
    let view = &buf[..buf.len().min(limits.max_header_bytes)];
    // Before httparse, so a huge target gets 414 even while the head is partial
    // (and not 431 once the buffer fills up).
    check_target_len(view, limits.max_target_len)?;

    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_LIMIT];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        view,
        &mut storage[..limits.effective_max_headers()],
    );
    let status = match parsed {
        Ok(status) => status,
        Err(httparse::Error::Version) => match refused_version(view) {
            RefusedVersion::UnsupportedMajor => return Err(RequestError::VersionNotSupported),
            RefusedVersion::Pending => httparse::Status::Partial,
            RefusedVersion::Invalid => {
                return Err(RequestError::BadRequest("unsupported HTTP version"))
            }
        },
        Err(e) => {
            return Err(match e {
                httparse::Error::TooManyHeaders => RequestError::TooManyHeaders,
                httparse::Error::HeaderName => RequestError::BadRequest("invalid header name"),
                httparse::Error::HeaderValue => RequestError::BadRequest("invalid header value"),
                httparse::Error::NewLine => RequestError::BadRequest("invalid line ending"),
                _ => RequestError::BadRequest("invalid request line"),
            })
        }
    };
    let head_len = match status {
        httparse::Status::Partial if view.len() >= limits.max_header_bytes => {
            return Err(RequestError::HeaderTooLarge)
        }
        httparse::Status::Partial => return Ok(false),
        httparse::Status::Complete(n) => n,
    };
    // httparse fills all three on Complete.
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(RequestError::BadRequest("invalid request line"));
    };
    head.head_len = head_len;
    head.method_span = Span::of(buf, method.as_bytes());
    head.method = Method::from_bytes(method.as_bytes());
    head.version = Version::from_minor(minor);
    if head.method == Method::Connect {
        return Err(RequestError::NotImplemented("CONNECT"));
    }
    let target = target::classify(buf, Span::of(buf, path.as_bytes()), head.method)?;
    head.target = target.forward;
    head.target_prefix = target.prefix;

    let http11 = head.version == Version::Http11;
    let mut fields = Fields::default();
    for h in req.headers.iter() {
        let span = HeaderSpan::of(buf, h);
        match underscores::judge(span.name.get(buf), limits.underscores) {
            Verdict::Keep => {}
            Verdict::Drop => continue,
            Verdict::Refuse(why) => return Err(RequestError::BadRequest(why)),
        }
        head.headers.push(span);
        fields.add(buf, span, http11)?;
    }
    head.max_forwards = match fields.max_forwards {
        MaxForwards::Absent => None,
        MaxForwards::Value(n) => Some(n),
        // RFC 9110 §7.6.2 only asks intermediaries to act on it for TRACE and
        // OPTIONS; elsewhere it is opaque and forwarded as received.
        MaxForwards::Invalid(reason) => {
            if matches!(head.method, Method::Trace | Method::Options) {
                return Err(RequestError::BadRequest(reason));
            }
            None
        }
    };

    head.host = fields.host(buf, http11)?;
    if let Some(authority) = target.authority {
        // RFC 9112 §3.2.2: the authority of an absolute-form replaces Host.
        head.host = Some(authority);
    }
    head.body = fields.body(http11)?;
    if fields.bad_expect {
        return Err(RequestError::ExpectationFailed);
    }
    head.expect_continue = fields.expect_continue;
    head.keep_alive = connection::persists(buf, &head.headers, http11);
    if http11 && head.method == Method::Get && head.body == RequestBody::None {
        head.upgrade = connection::upgrade_offer(buf, &head.headers);
    }
    Ok(true)
}

/// What the Max-Forwards lines of a request said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum MaxForwards {
    #[default]
    Absent,
    Value(u64),
    /// Not `1*DIGIT`, or lines that disagree.
    Invalid(&'static str),
}

impl MaxForwards {
    /// RFC 9110 §7.6.2: `Max-Forwards = 1*DIGIT`; a single value, not a list,
    /// so "5, 5" is as invalid as "x". Repeated lines with the same value are
    /// accepted, as for Content-Length; differing ones are ambiguous.
    fn add_line(&mut self, value: &[u8]) {
        if matches!(self, MaxForwards::Invalid(_)) {
            return;
        }
        let Some(n) = parse_digits(value) else {
            *self = MaxForwards::Invalid("invalid Max-Forwards");
            return;
        };
        *self = match *self {
            MaxForwards::Value(m) if m != n => MaxForwards::Invalid("conflicting Max-Forwards"),
            _ => MaxForwards::Value(n),
        };
    }
}

/// `1*DIGIT`, saturating at [`MAX_FORWARDS_LIMIT`]: any larger count of hops is as good
/// as unlimited, and RFC 9110 §7.6.2 lets us forward our maximum instead.
fn parse_digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |n, &d| {
        (n * 10 + u64::from(d - b'0')).min(MAX_FORWARDS_LIMIT)
    }))
}

/// The header fields that drive decisions, gathered in one pass.
#[derive(Default)]
struct Fields {
    host: Option<Span>,
    host_count: usize,
    content_length: ContentLength,
    transfer_encoding: TransferEncoding,
    expect_continue: bool,
    bad_expect: bool,
    max_forwards: MaxForwards,
}

impl Fields {
    fn add(&mut self, buf: &[u8], h: HeaderSpan, http11: bool) -> Result<(), RequestError> {
        let value = h.value.get(buf);
        if h.is(buf, "host") {
            self.host_count += 1;
            self.host = Some(h.value);
        } else if h.is(buf, "content-length") {
            self.content_length
                .add_line(value)
                .map_err(|e| RequestError::BadRequest(e.reason()))?;
        } else if h.is(buf, "transfer-encoding") {
            self.transfer_encoding.add_line(value);
        } else if h.is(buf, "max-forwards") {
            self.max_forwards.add_line(value);
        } else if h.is(buf, "expect") && http11 {
            // RFC 9110 §10.1.1: a 100-continue in HTTP/1.0 must be ignored;
            // HTTP/1.0 had no Expect, so other values are ignored with it.
            // Expect is a list; an empty value expects nothing we know of.
            let mut any = false;
            for e in list_elements(value) {
                if e.eq_ignore_ascii_case(b"100-continue") {
                    self.expect_continue = true;
                    any = true;
                } else if !e.is_empty() {
                    self.bad_expect = true;
                }
            }
            if !any {
                self.bad_expect = true;
            }
        }
        Ok(())
    }

    /// RFC 9112 §3.2: HTTP/1.1 needs exactly one Host; more than one is
    /// always an error, since two routers could each pick a different one.
    fn host(&self, buf: &[u8], http11: bool) -> Result<Option<Span>, RequestError> {
        if self.host_count > 1 {
            return Err(RequestError::BadRequest("multiple Host fields"));
        }
        match self.host {
            None if http11 => Err(RequestError::BadRequest("missing Host")),
            None => Ok(None),
            Some(h) => {
                host::validate(h.get(buf)).map_err(RequestError::BadRequest)?;
                Ok(Some(h))
            }
        }
    }

    /// RFC 9112 §6.1-6.3, minus everything that is legal but ambiguous.
    fn body(&self, http11: bool) -> Result<RequestBody, RequestError> {
        let te = &self.transfer_encoding;
        if te.is_present() {
            if !http11 {
                // §6.1: HTTP/1.0 has no chunked; the framing is faulty.
                return Err(RequestError::BadRequest("Transfer-Encoding in HTTP/1.0"));
            }
            if self.content_length.get().is_some() {
                return Err(RequestError::BadRequest(
                    "both Transfer-Encoding and Content-Length",
                ));
            }
            return match te.check_only_chunked() {
                Ok(()) => Ok(RequestBody::Chunked),
                Err(FramingError::UnsupportedCoding) => Err(RequestError::NotImplemented(
                    FramingError::UnsupportedCoding.reason(),
                )),
                Err(e) => Err(RequestError::BadRequest(e.reason())),
            };
        }
        Ok(match self.content_length.get() {
            Some(n) => RequestBody::Length(n),
            None => RequestBody::None,
        })
    }
}

/// Err(UriTooLong) if the request line in `buf`, complete or not, already
/// shows a target longer than `max`. Anything that does not look like a
/// request line is left for httparse to reject.
fn check_target_len(buf: &[u8], max: usize) -> Result<(), RequestError> {
    // The empty lines httparse skips before a request line: CRLF or LF. A CR without its
    // LF is httparse's to refuse.
    let mut line = buf;
    loop {
        line = match line {
            [b'\r', b'\n', rest @ ..] | [b'\n', rest @ ..] => rest,
            [b'\r', ..] => return Ok(()),
            _ => break,
        };
    }
    let Some(sp) = line.iter().position(|&b| !is_tchar(b)) else {
        return Ok(());
    };
    if sp == 0 || line[sp] != b' ' {
        return Ok(());
    }
    let target = &line[sp + 1..];
    // Up to the first byte httparse does not take in a target (SP, CTLs): a target cut
    // short by one is refused with 400 however much follows, so the answer does not depend
    // on how much of the line has arrived.
    let len = target
        .iter()
        .position(|&b| !(b'!'..=b'~').contains(&b) && b < 0x80)
        .unwrap_or(target.len());
    if len > max {
        Err(RequestError::UriTooLong)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::limits::MAX_CONTENT_LENGTH;
    use crate::http1::UnderscoreAction;

    fn parse_with(buf: &[u8], limits: &Limits) -> Result<RequestHead, RequestError> {
        let mut head = RequestHead::new();
        match parse_request(buf, limits, &mut head)? {
            true => Ok(head),
            false => panic!("partial: {:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn parse(buf: &[u8]) -> Result<RequestHead, RequestError> {
        parse_with(buf, &Limits::default())
    }

    fn bad(buf: &[u8]) -> bool {
        matches!(parse(buf), Err(RequestError::BadRequest(_)))
    }

    fn text(buf: &[u8], s: Span) -> &str {
        std::str::from_utf8(s.get(buf)).unwrap()
    }

    /// Every proper prefix of a complete head is Ok(false), the whole is Ok(true).
    fn assert_incremental(buf: &[u8]) {
        let mut head = RequestHead::new();
        for end in 0..buf.len() {
            assert_eq!(
                parse_request(&buf[..end], &Limits::default(), &mut head),
                Ok(false),
                "prefix {end}"
            );
        }
        assert_eq!(parse_request(buf, &Limits::default(), &mut head), Ok(true));
    }

    #[test]
    fn simple_get() {
        let buf = b"GET /index.html?a=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\nBODY";
        let h = parse(buf).unwrap();
        assert_eq!(h.method, Method::Get);
        assert_eq!(text(buf, h.method_span), "GET");
        assert_eq!(text(buf, h.target), "/index.html?a=1");
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.head_len, buf.len() - 4);
        assert_eq!(h.headers.len(), 2);
        assert_eq!(text(buf, h.headers[1].name), "Accept");
        assert_eq!(text(buf, h.headers[1].value), "*/*");
        assert_eq!(h.body, RequestBody::None);
        assert!(h.keep_alive);
        assert!(!h.expect_continue);
        assert_eq!(text(buf, h.host.unwrap()), "example.com");
        assert_eq!(h.header(buf, "ACCEPT"), Some(&b"*/*"[..]));
        assert_eq!(h.header(buf, "missing"), None);
    }

    #[test]
    fn incremental_parse() {
        assert_incremental(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n");
        assert_incremental(b"\r\nGET / HTTP/1.0\r\n\r\n");
    }

    #[test]
    fn leading_empty_lines_are_skipped_and_counted() {
        let buf = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let h = parse(buf).unwrap();
        assert_eq!(h.head_len, buf.len());
        assert_eq!(text(buf, h.method_span), "GET");
        assert_eq!(text(buf, h.target), "/");
    }

    #[test]
    fn bare_lf_line_endings_are_accepted() {
        // RFC 9112 §2.2 allows it; the head is re-encoded with CRLF anyway.
        let buf = b"GET / HTTP/1.1\nHost: a\n\n";
        assert_eq!(parse(buf).unwrap().head_len, buf.len());
    }

    #[test]
    fn methods() {
        for (m, want) in [
            ("GET", Method::Get),
            ("HEAD", Method::Head),
            ("POST", Method::Post),
            ("PUT", Method::Put),
            ("DELETE", Method::Delete),
            ("OPTIONS", Method::Options),
            ("TRACE", Method::Trace),
            ("PATCH", Method::Patch),
            ("PURGE", Method::Other),
            ("get", Method::Other),
        ] {
            let buf = format!("{m} / HTTP/1.1\r\nHost: a\r\n\r\n");
            let h = parse(buf.as_bytes()).unwrap();
            assert_eq!(h.method, want, "{m}");
            assert_eq!(text(buf.as_bytes(), h.method_span), m);
        }
        assert!(bad(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(bad(b" GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    }

    #[test]
    fn idempotency() {
        use Method::*;
        for m in [Get, Head, Options, Trace, Put, Delete] {
            assert!(m.is_idempotent(), "{m:?}");
        }
        for m in [Post, Patch, Connect, Other] {
            assert!(!m.is_idempotent(), "{m:?}");
        }
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().version,
            Version::Http10
        );
        // HTTP/1.2 without normalize_request_version is still refused.
        for v in [
            "HTTP/1.2",
            "HTTP/0.9",
            "http/1.1",
            "HTTP/1.10",
            "HTTP/11",
            "HTTP/2",
        ] {
            let buf = format!("GET / {v}\r\nHost: a\r\n\r\n");
            assert!(bad(buf.as_bytes()), "{v}");
        }
        assert!(bad(b"GET /\r\nHost: a\r\n\r\n"));
        assert!(bad(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n"));
        assert!(bad(b"GET / x HTTP/2.0\r\nHost: a\r\n\r\n"));
    }

    #[test]
    fn unsupported_major_is_505() {
        // RFC 9110 §15.6.6.
        for v in ["HTTP/2.0", "HTTP/3.0", "HTTP/9.1"] {
            let buf = format!("GET / {v}\r\nHost: a\r\n\r\n");
            assert_eq!(
                parse(buf.as_bytes()).unwrap_err(),
                RequestError::VersionNotSupported,
                "{v}"
            );
        }
        let e = parse(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap_err();
        assert_eq!((e, e.status()), (RequestError::VersionNotSupported, 505));
        // httparse refuses "HTTP/2" before the line is complete; the answer waits for the
        // line end, so it is the same however the line arrives (fuzz target request_head
        // found "HTTP/2." + CRLF getting 505 in pieces and 400 at once).
        let mut head = RequestHead::new();
        for partial in [&b"GET / HTTP/2"[..], b"GET / HTTP/2.", b"GET / HTTP/2.0\r"] {
            assert_eq!(
                parse_request(partial, &Limits::default(), &mut head),
                Ok(false),
                "{:?}",
                String::from_utf8_lossy(partial)
            );
        }
        assert_same_error_in_pieces(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n");
        assert_same_error_in_pieces(b"GET / HTTP/2.\r\nHost: a\r\n\r\n");
        assert_same_error_in_pieces(b"GET / HTTP/2.0x\r\nHost: a\r\n\r\n");
        assert!(bad(b"GET / HTTP/2.\r\nHost: a\r\n\r\n"));
        assert!(bad(b"GET / HTTP/2.0x\r\nHost: a\r\n\r\n"));
        // A line that never ends still hits the head limit.
        let small = Limits {
            max_header_bytes: 12,
            ..Limits::default()
        };
        assert_eq!(
            parse_request(b"GET / HTTP/2", &small, &mut head),
            Err(RequestError::HeaderTooLarge)
        );
    }

    /// `buf` is refused, and every prefix of it is either incomplete or refused the same way.
    fn assert_same_error_in_pieces(buf: &[u8]) {
        let mut head = RequestHead::new();
        let whole = parse_request(buf, &Limits::default(), &mut head);
        assert!(whole.is_err(), "{:?}", String::from_utf8_lossy(buf));
        for end in 0..buf.len() {
            let r = parse_request(&buf[..end], &Limits::default(), &mut head);
            assert!(
                r == Ok(false) || r == whole,
                "prefix {end} of {:?}: {r:?}, whole: {whole:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn higher_minor_versions_after_normalizing() {
        // RFC 9110 §2.5: HTTP/1.2 is processed as HTTP/1.1.
        let mut buf = b"GET /v HTTP/1.2\r\nHost: a\r\n\r\n".to_vec();
        assert!(crate::http1::normalize_request_version(&mut buf));
        let h = parse(&buf).unwrap();
        assert_eq!(h.version, Version::Http11);
        assert!(h.keep_alive);
        // Arriving in pieces: normalising before each attempt works as soon as
        // the 8 version bytes are there, which is when httparse would refuse.
        let full = b"GET /v HTTP/1.7\r\nHost: a\r\n\r\n";
        let mut head = RequestHead::new();
        let mut buf = Vec::new();
        for &b in full.iter() {
            buf.push(b);
            crate::http1::normalize_request_version(&mut buf);
            let done = parse_request(&buf, &Limits::default(), &mut head).unwrap();
            assert_eq!(done, buf.len() == full.len());
        }
        assert_eq!(head.version, Version::Http11);
    }

    #[test]
    fn max_forwards() {
        let mf = |m: &str, v: &str| {
            let target = if m == "OPTIONS" { "*" } else { "/" };
            let buf = format!("{m} {target} HTTP/1.1\r\nHost: a\r\n{v}\r\n");
            parse(buf.as_bytes()).map(|h| (h.max_forwards, h.answer_locally()))
        };
        for m in ["OPTIONS", "TRACE"] {
            assert_eq!(mf(m, ""), Ok((None, false)));
            assert_eq!(mf(m, "Max-Forwards: 0\r\n"), Ok((Some(0), true)));
            assert_eq!(mf(m, "max-forwards: 00\r\n"), Ok((Some(0), true)));
            assert_eq!(mf(m, "Max-Forwards: 7\r\n"), Ok((Some(7), false)));
            assert_eq!(
                mf(m, "Max-Forwards: 3\r\nMax-Forwards: 03\r\n"),
                Ok((Some(3), false))
            );
            assert_eq!(
                mf(m, "Max-Forwards: 99999999999999999999999\r\n"),
                Ok((Some(MAX_FORWARDS_LIMIT), false))
            );
            // At the bound, and one past it (read as the bound).
            assert_eq!(
                mf(m, "Max-Forwards: 2147483647\r\n"),
                Ok((Some(MAX_FORWARDS_LIMIT), false))
            );
            assert_eq!(
                mf(m, "Max-Forwards: 2147483648\r\n"),
                Ok((Some(MAX_FORWARDS_LIMIT), false))
            );
            assert_eq!(
                mf(m, "Max-Forwards: 2147483646\r\n"),
                Ok((Some(MAX_FORWARDS_LIMIT - 1), false))
            );
            for bad_value in [
                "Max-Forwards:\r\n",
                "Max-Forwards: x\r\n",
                "Max-Forwards: -1\r\n",
                "Max-Forwards: +1\r\n",
                "Max-Forwards: 1.0\r\n",
                "Max-Forwards: 1 2\r\n",
                "Max-Forwards: 5, 5\r\n",
                "Max-Forwards: 1\r\nMax-Forwards: 2\r\n",
                "Max-Forwards: 0\r\nMax-Forwards: x\r\n",
            ] {
                assert!(is_bad(mf(m, bad_value)), "{m} {bad_value:?}");
            }
        }
        // Other methods: parsed when valid, never an error, never local.
        assert_eq!(mf("GET", "Max-Forwards: 0\r\n"), Ok((Some(0), false)));
        assert_eq!(mf("GET", "Max-Forwards: x\r\n"), Ok((None, false)));
        assert_eq!(
            mf("GET", "Max-Forwards: 1\r\nMax-Forwards: 2\r\n"),
            Ok((None, false))
        );
    }

    #[test]
    fn header_syntax_errors() {
        // Whitespace between name and colon (RFC 9112 §5.1).
        assert!(bad(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"));
        assert!(bad(
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n"
        ));
        // obs-fold (RFC 9112 §5.2).
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n"));
        // Whitespace before the first field.
        assert!(bad(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n"));
        // Missing colon, empty name, bad name chars.
        assert!(bad(b"GET / HTTP/1.1\r\nHost a\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nX(y): a\r\nHost: a\r\n\r\n"));
    }

    #[test]
    fn ctl_in_values_is_refused() {
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n"));
        // A LF inside a value ends it: "b" is then a field line without colon.
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\nb\r\n\r\n"));
        // CR LF smuggled in the target.
        assert!(bad(b"GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(bad(b"GET /a\x00 HTTP/1.1\r\nHost: a\r\n\r\n"));
    }

    #[test]
    fn value_whitespace_is_trimmed() {
        let buf = b"GET / HTTP/1.1\r\nHost: \t a \t\r\nX:\r\n\r\n";
        let h = parse(buf).unwrap();
        assert_eq!(text(buf, h.host.unwrap()), "a");
        assert!(h.headers[1].value.is_empty());
    }

    #[test]
    fn header_bytes_limit() {
        let limits = Limits {
            max_header_bytes: 64,
            ..Limits::default()
        };
        let mut head = RequestHead::new();
        // Exactly the limit is fine.
        let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        buf.resize(64 - 4, b'x');
        buf.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_request(&buf, &limits, &mut head), Ok(true));
        assert_eq!(head.head_len, 64);
        // One more byte in a complete head is too large.
        let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        big.resize(64 - 3, b'x');
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            parse_request(&big, &limits, &mut head),
            Err(RequestError::HeaderTooLarge)
        );
        // A partial head that fills the buffer limit is too large.
        let partial = &big[..64];
        assert_eq!(
            parse_request(partial, &limits, &mut head),
            Err(RequestError::HeaderTooLarge)
        );
        assert_eq!(parse_request(&big[..63], &limits, &mut head), Ok(false));
        // Only the first max_header_bytes count: a bad byte past them is not looked at, so
        // the answer is 431 whether it has arrived or not (fuzz target response_head found
        // the response parser answering differently at once and in pieces).
        let mut bad_late = big[..64].to_vec();
        bad_late.extend_from_slice(b"\x00\r\n\r\n");
        assert_eq!(
            parse_request(&bad_late, &limits, &mut head),
            Err(RequestError::HeaderTooLarge)
        );
        // A complete head followed by body bytes past the limit is fine.
        let mut with_body = buf.clone();
        with_body.extend_from_slice(&[b'b'; 100]);
        assert_eq!(parse_request(&with_body, &limits, &mut head), Ok(true));
        assert_eq!(head.head_len, 64);
    }

    #[test]
    fn header_count_limit() {
        let limits = Limits {
            max_headers: 3,
            ..Limits::default()
        };
        let ok = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(parse_with(ok, &limits).unwrap().headers.len(), 3);
        let over = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(
            parse_with(over, &limits).unwrap_err(),
            RequestError::TooManyHeaders
        );
        // Configured above the hard limit: clamped, not a panic.
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..MAX_HEADERS_LIMIT {
            many.extend_from_slice(format!("X{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let limits = Limits {
            max_headers: 100_000,
            max_header_bytes: 1 << 20,
            ..Limits::default()
        };
        assert_eq!(
            parse_with(&many, &limits).unwrap_err(),
            RequestError::TooManyHeaders
        );
    }

    #[test]
    fn target_length_limit() {
        let limits = Limits {
            max_target_len: 10,
            ..Limits::default()
        };
        let mut head = RequestHead::new();
        let ok = b"GET /123456789 HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(parse_request(ok, &limits, &mut head), Ok(true));
        let long = b"GET /1234567890 HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(
            parse_request(long, &limits, &mut head),
            Err(RequestError::UriTooLong)
        );
        // Detected while the request line is still incomplete.
        assert_eq!(
            parse_request(b"GET /1234567890", &limits, &mut head),
            Err(RequestError::UriTooLong)
        );
        assert_eq!(
            parse_request(b"\r\nGET /1234567890", &limits, &mut head),
            Err(RequestError::UriTooLong)
        );
        assert_eq!(
            parse_request(b"GET /123456789", &limits, &mut head),
            Ok(false)
        );
        // A byte that can't be in a target ends what counts: it is refused with 400
        // whether the long tail after it has arrived or not (fuzz target request_head
        // found 414 at once but 400 in pieces).
        let mut nul = b"GET /1\x00".to_vec();
        nul.resize(40, b'a');
        nul.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(matches!(
            parse_request(&nul, &limits, &mut head),
            Err(RequestError::BadRequest(_))
        ));
        for end in 0..nul.len() {
            let r = parse_request(&nul[..end], &limits, &mut head);
            assert!(
                r == Ok(false) || matches!(r, Err(RequestError::BadRequest(_))),
                "prefix {end}: {r:?}"
            );
        }
        // Only the empty lines httparse skips are skipped: a bare CR before the request
        // line is 400 however long the target after it (found by fuzz target request_head:
        // 414 at once, 400 in pieces).
        let cr = b"\r\rGET /1234567890 HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(matches!(
            parse_request(cr, &limits, &mut head),
            Err(RequestError::BadRequest(_))
        ));
        assert_eq!(
            parse_request(b"\r\n\nGET /1234567890", &limits, &mut head),
            Err(RequestError::UriTooLong)
        );
        // 414 wins over 431 when the target is what fills the buffer.
        let limits = Limits {
            max_target_len: 10,
            max_header_bytes: 16,
            ..Limits::default()
        };
        assert_eq!(
            parse_request(b"GET /1234567890123456", &limits, &mut head),
            Err(RequestError::UriTooLong)
        );
        // Absolute-form counts as received.
        let limits = Limits {
            max_target_len: 16,
            ..Limits::default()
        };
        assert_eq!(
            parse_request(b"GET http://example.com/ HTTP/1.1\r\n", &limits, &mut head),
            Err(RequestError::UriTooLong)
        );
    }

    #[test]
    fn host_rules() {
        assert!(bad(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost:\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.0\r\nHost: \r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a:x\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: :80\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n"));

        let buf = b"GET / HTTP/1.1\r\nHOST: Example.COM:8080\r\n\r\n";
        assert_eq!(
            text(buf, parse(buf).unwrap().host.unwrap()),
            "Example.COM:8080"
        );
        let buf = b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n";
        assert_eq!(text(buf, parse(buf).unwrap().host.unwrap()), "[::1]:80");
        assert_eq!(parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().host, None);
    }

    #[test]
    fn target_forms() {
        let buf = b"GET http://Example.com:81/p?q HTTP/1.1\r\nHost: other\r\n\r\n";
        let h = parse(buf).unwrap();
        assert_eq!(text(buf, h.target), "/p?q");
        assert_eq!(text(buf, h.host.unwrap()), "Example.com:81");

        let buf = b"GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n";
        let h = parse(buf).unwrap();
        assert_eq!(text(buf, h.target), "/");
        assert_eq!(h.target_prefix, TargetPrefix::None);
        assert_eq!(text(buf, h.host.unwrap()), "example.com");

        // RFC 9112 §3.2.1/§3.2.2: empty path before a query is "/".
        let buf = b"GET http://h:81?q=1 HTTP/1.1\r\nHost: h\r\n\r\n";
        let h = parse(buf).unwrap();
        assert_eq!(
            (h.target_prefix, text(buf, h.target)),
            (TargetPrefix::Slash, "?q=1")
        );
        assert_eq!(text(buf, h.host.unwrap()), "h:81");
        let mut t = Vec::new();
        h.write_target(buf, &mut t);
        assert_eq!(t, b"/?q=1");
        // RFC 9112 §3.2.4: OPTIONS to an empty path and no query is "*".
        let buf = b"OPTIONS http://www.example.org:8001 HTTP/1.1\r\nHost: x\r\n\r\n";
        let h = parse(buf).unwrap();
        assert_eq!(h.target_prefix, TargetPrefix::Asterisk);
        let mut t = Vec::new();
        h.write_target(buf, &mut t);
        assert_eq!(t, b"*");
        assert_eq!(text(buf, h.host.unwrap()), "www.example.org:8001");

        // Absolute-form on HTTP/1.0 needs no Host.
        let buf = b"GET http://example.com/x HTTP/1.0\r\n\r\n";
        assert_eq!(text(buf, parse(buf).unwrap().host.unwrap()), "example.com");

        // HTTP/1.1 still needs exactly one (valid) Host.
        assert!(bad(b"GET http://example.com/ HTTP/1.1\r\n\r\n"));
        assert!(bad(
            b"GET http://example.com/ HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"
        ));
        assert!(bad(
            b"GET http://example.com/ HTTP/1.1\r\nHost: a b\r\n\r\n"
        ));
        assert!(bad(b"GET http://ex ample.com/ HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(bad(
            b"GET http://u@example.com/ HTTP/1.1\r\nHost: a\r\n\r\n"
        ));
        assert!(bad(b"GET ftp://example.com/ HTTP/1.1\r\nHost: a\r\n\r\n"));

        let buf = b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
        let h = parse(buf).unwrap();
        assert_eq!(text(buf, h.target), "*");
        assert_eq!(h.method, Method::Options);
        assert!(bad(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"));

        // authority-form is CONNECT only, and CONNECT is not implemented.
        assert!(bad(b"GET example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert_eq!(
            parse(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
                .unwrap_err(),
            RequestError::NotImplemented("CONNECT")
        );
        assert!(bad(b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(bad(b"GET /\xc3\xa4 HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(bad(b"GET index.html HTTP/1.1\r\nHost: a\r\n\r\n"));
    }

    fn body(extra: &str) -> Result<RequestBody, RequestError> {
        let buf = format!("POST / HTTP/1.1\r\nHost: a\r\n{extra}\r\n");
        parse(buf.as_bytes()).map(|h| h.body)
    }

    fn body10(extra: &str) -> Result<RequestBody, RequestError> {
        let buf = format!("POST / HTTP/1.0\r\n{extra}\r\n");
        parse(buf.as_bytes()).map(|h| h.body)
    }

    fn is_bad<T>(r: Result<T, RequestError>) -> bool {
        matches!(r, Err(RequestError::BadRequest(_)))
    }

    #[test]
    fn transfer_encoding_framing() {
        assert_eq!(
            body("Transfer-Encoding: chunked\r\n"),
            Ok(RequestBody::Chunked)
        );
        assert_eq!(
            body("transfer-encoding: CHUNKED\r\n"),
            Ok(RequestBody::Chunked)
        );
        assert_eq!(
            body("Transfer-Encoding:\tchunked\t\r\n"),
            Ok(RequestBody::Chunked)
        );
        assert_eq!(
            body("Transfer-Encoding: , chunked,\r\n"),
            Ok(RequestBody::Chunked)
        );
        // Codings we do not decode, but which are valid HTTP.
        assert!(matches!(
            body("Transfer-Encoding: gzip, chunked\r\n"),
            Err(RequestError::NotImplemented(_))
        ));
        assert!(matches!(
            body("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
            Err(RequestError::NotImplemented(_))
        ));
        // Ambiguous or unframed.
        assert!(is_bad(body("Transfer-Encoding: chunked, chunked\r\n")));
        assert!(is_bad(body(
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
        )));
        assert!(is_bad(body("Transfer-Encoding: chunked, gzip\r\n")));
        assert!(is_bad(body("Transfer-Encoding: gzip\r\n")));
        assert!(is_bad(body("Transfer-Encoding: identity\r\n")));
        assert!(is_bad(body("Transfer-Encoding:\r\n")));
        assert!(is_bad(body("Transfer-Encoding: ,\r\n")));
        assert!(is_bad(body(
            "Transfer-Encoding: chunked\r\nTransfer-Encoding:\r\n"
        )));
        assert!(is_bad(body("Transfer-Encoding: xchunked\r\n")));
        assert!(is_bad(body("Transfer-Encoding: chunked;q=1\r\n")));
        assert!(is_bad(body("Transfer-Encoding: \"chunked\"\r\n")));
        assert!(is_bad(body("Transfer-Encoding: chunked\x0b\r\n")));
        // TE + CL, in both orders.
        assert!(is_bad(body(
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"
        )));
        assert!(is_bad(body(
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"
        )));
        // TE in HTTP/1.0.
        assert!(is_bad(body10("Transfer-Encoding: chunked\r\n")));
        // Underscore spellings: see `underscore_names_*`.
        assert!(is_bad(body("Transfer-Encoding : chunked\r\n")));
        assert!(is_bad(body("X: 1\r\n Transfer-Encoding: chunked\r\n")));
    }

    #[test]
    fn content_length_framing() {
        assert_eq!(body("Content-Length: 0\r\n"), Ok(RequestBody::Length(0)));
        assert_eq!(body("Content-Length: 42\r\n"), Ok(RequestBody::Length(42)));
        assert_eq!(body("Content-Length: 5, 5\r\n"), Ok(RequestBody::Length(5)));
        assert_eq!(
            body("Content-Length: 5\r\ncontent-length: 5\r\n"),
            Ok(RequestBody::Length(5))
        );
        assert_eq!(body10("Content-Length: 3\r\n"), Ok(RequestBody::Length(3)));
        assert_eq!(
            body("Content-Length: 9007199254740991\r\n"),
            Ok(RequestBody::Length(MAX_CONTENT_LENGTH))
        );
        for v in [
            "5, 6",
            "-1",
            "+5",
            "0x5",
            "5 5",
            "",
            "5,",
            "1e3",
            "9007199254740992",
            "18446744073709551616",
        ] {
            assert!(is_bad(body(&format!("Content-Length: {v}\r\n"))), "{v}");
        }
        assert!(is_bad(body("Content-Length: 5\r\nContent-Length: 6\r\n")));
        assert!(is_bad(body("Content-Length: 5\r\nContent-Length: \r\n")));
        assert_eq!(body(""), Ok(RequestBody::None));
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |buf: &[u8]| parse(buf).unwrap().keep_alive;
        assert!(ka(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: te\r\nConnection: close\r\n\r\n"
        ));
        assert!(ka(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(ka(
            b"GET / HTTP/1.0\r\nConnection: x\r\nConnection: keep-alive\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
        ));
        // Keep-Alive is not Connection.
        assert!(!ka(b"GET / HTTP/1.0\r\nKeep-Alive: 5\r\n\r\n"));
    }

    #[test]
    fn expect_rules() {
        let ex = |extra: &str| {
            let buf = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n{extra}\r\n");
            parse(buf.as_bytes()).map(|h| h.expect_continue)
        };
        assert_eq!(ex(""), Ok(false));
        assert_eq!(ex("Expect: 100-continue\r\n"), Ok(true));
        assert_eq!(ex("Expect: 100-Continue \r\n"), Ok(true));
        assert_eq!(ex("expect:\t100-CONTINUE\r\n"), Ok(true));
        assert_eq!(
            ex("Expect: 200-ok\r\n"),
            Err(RequestError::ExpectationFailed)
        );
        assert_eq!(
            ex("Expect: 100-continue, foo\r\n"),
            Err(RequestError::ExpectationFailed)
        );
        assert_eq!(ex("Expect:\r\n"), Err(RequestError::ExpectationFailed));
        // HTTP/1.0: ignored entirely (RFC 9110 §10.1.1).
        let buf = b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
        assert!(!parse(buf).unwrap().expect_continue);
        let buf = b"POST / HTTP/1.0\r\nExpect: weird\r\n\r\n";
        assert!(!parse(buf).unwrap().expect_continue);
    }

    #[test]
    fn error_statuses() {
        assert_eq!(RequestError::HeaderTooLarge.status(), 431);
        assert_eq!(RequestError::TooManyHeaders.status(), 431);
        assert_eq!(RequestError::UriTooLong.status(), 414);
        assert_eq!(RequestError::BadRequest("x").status(), 400);
        assert_eq!(RequestError::NotImplemented("x").status(), 501);
        assert_eq!(RequestError::ExpectationFailed.status(), 417);
        assert_eq!(RequestError::VersionNotSupported.status(), 505);
        assert_eq!(RequestError::BadRequest("x").to_string(), "bad request: x");
    }

    #[test]
    fn head_is_reused_without_reallocating() {
        let mut head = RequestHead::new();
        let a =
            b"OPTIONS http://a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\
                  Max-Forwards: 2\r\n\r\n";
        assert_eq!(parse_request(a, &Limits::default(), &mut head), Ok(true));
        let cap = head.headers.capacity();
        let ptr = head.headers.as_ptr();
        let b = b"GET /b HTTP/1.0\r\n\r\n";
        assert_eq!(parse_request(b, &Limits::default(), &mut head), Ok(true));
        assert_eq!(head.headers.len(), 0);
        assert_eq!(head.headers.capacity(), cap);
        assert_eq!(head.headers.as_ptr(), ptr);
        assert_eq!(head.body, RequestBody::None);
        assert_eq!(head.host, None);
        assert!(!head.keep_alive);
        assert_eq!(text(b, head.target), "/b");
        assert_eq!(head.target_prefix, TargetPrefix::None);
        assert_eq!(head.max_forwards, None);
        // A failed parse leaves no stale state either.
        assert!(parse_request(b"GET / HTTP/1.1\r\n\r\n", &Limits::default(), &mut head).is_err());
        head.clear();
        assert_eq!(head.head_len, 0);
    }

    #[test]
    fn cleared_head_is_not_a_head_request() {
        // The proxy answers errors without content when `method` is Head
        // (RFC 9110 §9.3.2); an error before a request line was parsed must
        // not inherit the previous request's HEAD.
        let mut head = RequestHead::new();
        let h = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(parse_request(h, &Limits::default(), &mut head), Ok(true));
        assert_eq!(head.method, Method::Head);
        assert_eq!(
            parse_request(b"HEAD / HT", &Limits::default(), &mut head),
            Ok(false)
        );
        assert_ne!(head.method, Method::Head);
        assert_eq!(parse_request(h, &Limits::default(), &mut head), Ok(true));
        head.clear();
        assert_ne!(head.method, Method::Head);
        assert_ne!(RequestHead::new().method, Method::Head);
        // Once the request line is known, an error keeps the method: a HEAD
        // refused for its fields still gets an answer without content.
        assert!(parse_request(b"HEAD / HTTP/1.1\r\n\r\n", &Limits::default(), &mut head).is_err());
        assert_eq!(head.method, Method::Head);
    }

    #[test]
    fn smuggling_classics() {
        // CL.TE / TE.CL
        assert!(is_bad(body(
            "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"
        )));
        // TE.TE with an obfuscated second coding
        assert!(is_bad(body(
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n"
        )));
        assert!(is_bad(body("Transfer-Encoding: chunked, identity\r\n")));
        // Header name with trailing whitespace / vertical tab tricks
        assert!(is_bad(body("Transfer-Encoding\t: chunked\r\n")));
        assert!(is_bad(body("Transfer-Encoding: \x0bchunked\r\n")));
        // Duplicate, differing lengths
        assert!(is_bad(body("Content-Length: 0\r\nContent-Length: 44\r\n")));
        // Length with a sign or trailing junk
        assert!(is_bad(body("Content-Length: +0\r\n")));
        assert!(is_bad(body("Content-Length: 0 \x0b\r\n")));
        // Bare CR as line terminator
        assert!(bad(b"GET / HTTP/1.1\rHost: a\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n"));
    }
    fn with_underscores(
        action: UnderscoreAction,
        extra: &str,
    ) -> Result<RequestHead, RequestError> {
        let buf = format!("POST / HTTP/1.1\r\nHost: a\r\n{extra}\r\n");
        let limits = Limits {
            underscores: action,
            ..Limits::default()
        };
        parse_with(buf.as_bytes(), &limits)
    }

    fn names(h: &RequestHead, extra: &str) -> Vec<String> {
        let buf = format!("POST / HTTP/1.1\r\nHost: a\r\n{extra}\r\n");
        h.headers
            .iter()
            .map(|f| text(buf.as_bytes(), f.name).to_string())
            .collect()
    }

    #[test]
    fn underscore_names_are_dropped_by_default() {
        assert_eq!(Limits::default().underscores, UnderscoreAction::Drop);
        let extra =
            "Transfer_Encoding: chunked\r\nContent_Length: 5\r\nX_Custom: 1\r\nX-Kept: 2\r\n";
        let h = with_underscores(UnderscoreAction::Drop, extra).unwrap();
        // Not framing, not forwarded: the backend never sees them.
        assert_eq!(h.body, RequestBody::None);
        assert_eq!(names(&h, extra), ["Host", "X-Kept"]);
        // A real framing field next to a look-alike still frames the body.
        let extra = "Content-Length: 3\r\nContent_Length: 5\r\n";
        let h = with_underscores(UnderscoreAction::Drop, extra).unwrap();
        assert_eq!(h.body, RequestBody::Length(3));
        assert_eq!(names(&h, extra), ["Host", "Content-Length"]);
    }

    #[test]
    fn underscore_names_rejected() {
        for extra in [
            "Transfer_Encoding: chunked\r\n",
            "Content_Length: 5\r\n",
            "X_Custom: 1\r\n",
        ] {
            assert!(
                is_bad(with_underscores(UnderscoreAction::Reject, extra)),
                "{extra}"
            );
        }
        let h = with_underscores(UnderscoreAction::Reject, "X-Custom: 1\r\n").unwrap();
        assert_eq!(h.headers.len(), 2);
    }

    #[test]
    fn underscore_names_allowed_except_look_alikes() {
        for extra in [
            "Transfer_Encoding: chunked\r\n",
            "content_length: 5\r\n",
            "Content-Length: 5\r\nContent_Length: 5\r\n",
            "X_Forwarded_For: 10.0.0.1\r\n",
            "Proxy_Connection: close\r\n",
        ] {
            assert!(
                is_bad(with_underscores(UnderscoreAction::Allow, extra)),
                "{extra}"
            );
        }
        let extra = "X_Custom: 1\r\nContent_Length_X: 5\r\n";
        let h = with_underscores(UnderscoreAction::Allow, extra).unwrap();
        assert_eq!(h.body, RequestBody::None);
        assert_eq!(names(&h, extra), ["Host", "X_Custom", "Content_Length_X"]);
    }
}
