//! The log phase: what one request leaves in the metrics and the access log.
//!
//! The parts of the request head the log line needs are copied when the head is parsed
//! (only when the log is on), because the head's bytes in the client buffer are reused by the
//! body and the next request long before the response ends.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use super::shard::Shard;
use crate::access_log::Entry;
use crate::http1::{RequestHead, Version};
use crate::metrics::Source;

#[derive(Default)]
pub struct Record {
    /// Method, target, referer and user agent, back to back.
    head: Vec<u8>,
    method: Range<usize>,
    target: Range<usize>,
    referer: Option<Range<usize>>,
    user_agent: Option<Range<usize>>,
    version: Option<Version>,
    pub started: Option<Instant>,
    pub status: u16,
    /// Bytes sent to the client, head included (nginx's `$bytes_sent`).
    pub bytes: u64,
    /// Bytes from the client through a tunnel (an upgraded connection), for its log line.
    pub received: Option<u64>,
    /// The part of `bytes` that was the response head: `bytes - head_bytes` is nginx's
    /// `$body_bytes_sent`, what the combined and JSON lines show.
    pub head_bytes: u64,
    pub upstream: Option<SocketAddr>,
    pub upstream_started: Option<Instant>,
    pub upstream_time: Option<Duration>,
    pub user: Option<Rc<str>>,
    /// Begun by [`Record::begin_unparsed`]: a missing version means none was read.
    unparsed: bool,
    /// The route that took the request (its index), if one did.
    pub route: Option<usize>,
    /// Who produced `status`: set to the backend when its head is relayed.
    pub source: Source,
    /// The backend's metrics slot, once a connection to one was had.
    pub backend: Option<usize>,
}

/// Most of an unparsed request line that is kept: the formatter cuts each field at its own
/// limit anyway, this bounds the copy (method, space, the longest target logged, space,
/// `HTTP/1.1`).
const MAX_UNPARSED_LINE: usize = crate::access_log::MAX_METHOD_BYTES
    + 1
    + crate::access_log::MAX_TARGET_BYTES
    + 1
    + "HTTP/1.1".len();

impl Record {
    /// Starts a request's record from its parsed head in `buf`.
    pub fn begin(&mut self, enabled: bool, buf: &[u8], req: &RequestHead) {
        self.status = 0;
        self.bytes = 0;
        self.received = None;
        self.head_bytes = 0;
        self.upstream = None;
        self.upstream_started = None;
        self.upstream_time = None;
        self.user = None;
        self.route = None;
        self.source = Source::Proxy;
        self.backend = None;
        self.started = Some(Instant::now());
        self.version = Some(req.version);
        self.unparsed = false;
        if !enabled {
            return;
        }
        self.head.clear();
        let push = |bytes: &[u8], head: &mut Vec<u8>| {
            let start = head.len();
            head.extend_from_slice(bytes);
            start..head.len()
        };
        self.method = push(req.method_span.get(buf), &mut self.head);
        let start = self.head.len();
        req.write_target(buf, &mut self.head);
        self.target = start..self.head.len();
        self.referer = req.header(buf, "referer").map(|v| push(v, &mut self.head));
        self.user_agent = req
            .header(buf, "user-agent")
            .map(|v| push(v, &mut self.head));
    }

    /// Starts a record for a request whose head could not be parsed (or was not read):
    /// `read` is what the client sent of it, of which the request line (what there is of it,
    /// bounded) is logged, split as a parsed one would be. A line without a recognisable
    /// `HTTP/1.x` at its end logs no protocol, rather than one the client never sent.
    pub fn begin_unparsed(&mut self, enabled: bool, read: &[u8]) {
        self.status = 0;
        self.bytes = 0;
        self.received = None;
        self.head_bytes = 0;
        self.upstream = None;
        self.upstream_started = None;
        self.upstream_time = None;
        self.user = None;
        self.route = None;
        self.source = Source::Proxy;
        self.backend = None;
        self.started = Some(Instant::now());
        self.version = None;
        self.head.clear();
        self.method = 0..0;
        self.target = 0..0;
        self.referer = None;
        self.user_agent = None;
        if !enabled {
            return;
        }
        // Leading empty lines are allowed before a request line (RFC 9112 §2.2).
        let start = read
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(read.len());
        let line = &read[start..];
        let end = line
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(line.len());
        let line = &line[..end.min(MAX_UNPARSED_LINE)];
        let (method, rest) = match line.iter().position(|&b| b == b' ') {
            Some(sp) => (&line[..sp], &line[sp + 1..]),
            None => (line, &line[line.len()..]),
        };
        let (target, version) = match rest.iter().rposition(|&b| b == b' ') {
            Some(sp) => match &rest[sp + 1..] {
                b"HTTP/1.1" => (&rest[..sp], Some(Version::Http11)),
                b"HTTP/1.0" => (&rest[..sp], Some(Version::Http10)),
                _ => (rest, None),
            },
            None => (rest, None),
        };
        self.head.extend_from_slice(method);
        self.method = 0..method.len();
        self.head.extend_from_slice(target);
        self.target = method.len()..self.head.len();
        self.version = version;
        self.unparsed = true;
    }

    /// Counts a tunnel: the 101's head, then the bytes each way after it.
    pub fn tunnelled(&mut self, head: u64, down: u64, up: u64) {
        self.bytes = head + down;
        self.head_bytes = head;
        self.received = Some(up);
    }

    /// Counts a response corelay wrote itself (an error, a local answer), head and body, in
    /// `out` as sent.
    pub fn sent_local(&mut self, out: &[u8]) {
        let head = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(out.len(), |p| p + 4);
        self.bytes += out.len() as u64;
        self.head_bytes += head as u64;
    }

    /// Ends the request, if one was begun: counts it in the shard's metrics and writes its
    /// line if the log is on. The one clock read here serves both.
    pub fn finish(&mut self, shard: &Shard, client: IpAddr, request_id: &[u8]) {
        let Some(started) = self.started.take() else {
            return;
        };
        let took = started.elapsed();
        let stats = &shard.stats;
        let route = self.route.unwrap_or_else(|| stats.layout.no_route());
        stats.request_done(route, self.status, self.source, took);
        let log = &shard.access_log;
        if !log.enabled() {
            return;
        }
        let part = |r: &Option<Range<usize>>| r.clone().map(|r| &self.head[r]);
        log.log(&Entry {
            client,
            user: self.user.as_deref(),
            time: SystemTime::now(),
            method: &self.head[self.method.clone()],
            target: &self.head[self.target.clone()],
            protocol: match self.version {
                Some(Version::Http10) => "HTTP/1.0",
                Some(_) => "HTTP/1.1",
                None if self.unparsed => "",
                None => "HTTP/1.1",
            },
            status: self.status,
            bytes_sent: self.bytes,
            body_bytes_sent: self.bytes.saturating_sub(self.head_bytes),
            referer: part(&self.referer),
            user_agent: part(&self.user_agent),
            upstream: self.upstream,
            upstream_time: self.upstream_time,
            request_time: took,
            request_id,
            bytes_received: self.received,
        });
    }
}
