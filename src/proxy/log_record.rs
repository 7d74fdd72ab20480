//! The log phase: what one request leaves in the access log.
//!
//! The parts of the request head the log line needs are copied when the head is parsed
//! (only when the log is on), because the head's bytes in the client buffer are reused by the
//! body and the next request long before the response ends.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use crate::access_log::{Entry, ShardLog};
use crate::http1::{RequestHead, Version};

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
    /// Bytes from the client through a tunnel (an upgraded connection), for its log line.
    pub received: Option<u64>,
    pub upstream: Option<SocketAddr>,
    pub upstream_started: Option<Instant>,
    pub upstream_time: Option<Duration>,
    pub user: Option<Rc<str>>,
}

impl Record {
    /// Starts a request's record from its parsed head in `buf`.
    pub fn begin(&mut self, enabled: bool, buf: &[u8], req: &RequestHead) {
        self.status = 0;
        self.bytes = 0;
        self.received = None;
        self.upstream = None;
        self.upstream_started = None;
        self.upstream_time = None;
        self.user = None;
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
        self.received = None;
        self.upstream = None;
        self.upstream_time = None;
        self.user = None;
        self.started = Some(Instant::now());
        self.version = None;
        self.head.clear();
        self.method = 0..0;
        self.target = 0..0;
        self.referer = None;
        self.user_agent = None;
    }

    /// Writes the line, if the log is on and a request was begun.
    pub fn emit(&mut self, log: &ShardLog, client: IpAddr) {
        let Some(started) = self.started.take() else {
            return;
        };
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
            request_time: started.elapsed(),
        });
    }
}
