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
    pub bytes: u64,
    pub upstream: Option<SocketAddr>,
    pub upstream_started: Option<Instant>,
    pub upstream_time: Option<Duration>,
    pub user: Option<Rc<str>>,
    /// The route that took the request (its index), if one did.
    pub route: Option<usize>,
    /// Who produced `status`: set to the backend when its head is relayed.
    pub source: Source,
    /// The backend's metrics slot, once a connection to one was had.
    pub backend: Option<usize>,
}

impl Record {
    /// Starts a request's record from its parsed head in `buf`.
    pub fn begin(&mut self, enabled: bool, buf: &[u8], req: &RequestHead) {
        self.status = 0;
        self.bytes = 0;
        self.upstream = None;
        self.upstream_started = None;
        self.upstream_time = None;
        self.user = None;
        self.route = None;
        self.source = Source::Proxy;
        self.backend = None;
        self.started = Some(Instant::now());
        self.version = Some(req.version);
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

    /// Starts a record for a request whose head could not be parsed (or was not read).
    pub fn begin_unparsed(&mut self) {
        self.status = 0;
        self.bytes = 0;
        self.upstream = None;
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
                _ => "HTTP/1.1",
            },
            status: self.status,
            bytes_sent: self.bytes,
            referer: part(&self.referer),
            user_agent: part(&self.user_agent),
            upstream: self.upstream,
            upstream_time: self.upstream_time,
            request_time: took,
            request_id,
        });
    }
}
