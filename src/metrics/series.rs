//! One shard's proxy series: what the request path records, in cells only that shard writes.
//!
//! Recording is an index computation and a relaxed store or two: no lock, no allocation, no
//! string, no clock read (callers pass durations they measured anyway).

use std::sync::Arc;
use std::time::Duration;

use super::cells::{observe, Cells, HISTOGRAM_CELLS};
use super::layout::{code_slot, Layout, Source, CODE_SLOTS};
use crate::proxy::{ErrorKind, ProxyError, Side};

/// Per-shard counters without labels (besides the shard's own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    ClientErrors,
    BackendErrors,
    BackendConnects,
    BackendConnectErrors,
    BackendReuses,
    BackendRetries,
    /// Gauges: requests past the admit phase, and waiting in its queue.
    AdmissionInFlight,
    AdmissionQueued,
    /// Upgraded connections: open now (a gauge), and since start.
    TunnelsOpen,
    Tunnels,
}
const COUNTERS: usize = Counter::Tunnels as usize + 1;

/// How a backend failed a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No connection: refused, unreachable, or any other connect error.
    Refused,
    /// Connect, send or response past its timeout.
    Timeout,
    /// The connection closed, reset or failed once established, before the response ended.
    Reset,
    /// The response was not valid HTTP/1.1 (head or chunked framing).
    Malformed,
}
pub const FAILURES: [(Failure, &str); 4] = [
    (Failure::Refused, "refused"),
    (Failure::Timeout, "timeout"),
    (Failure::Reset, "reset"),
    (Failure::Malformed, "malformed"),
];

impl Failure {
    /// The failure an error that ended a request stands for, if it is a backend's. Connect
    /// errors are `None`: each refused attempt was already counted where it happened, against
    /// the backend tried.
    pub fn of(e: &ProxyError) -> Option<Failure> {
        if e.side() != Side::Backend {
            return None;
        }
        match e.kind {
            ErrorKind::Connect(_) | ErrorKind::ConnectTimeout => None,
            ErrorKind::BackendTimeout => Some(Failure::Timeout),
            ErrorKind::BadResponse(_) | ErrorKind::BadResponseBody(_) => Some(Failure::Malformed),
            _ => Some(Failure::Reset),
        }
    }
}

/// Cells per backend: requests, the failures, in flight, idle pooled.
const B_REQUESTS: usize = 0;
const B_FAILURES: usize = 1;
const B_IN_FLIGHT: usize = B_FAILURES + FAILURES.len();
const B_IDLE: usize = B_IN_FLIGHT + 1;
const BACKEND_CELLS: usize = B_IDLE + 1;

pub struct ProxyStats {
    pub layout: Arc<Layout>,
    counters: Cells,
    /// `[route][code slot]`.
    requests: Cells,
    /// A request-duration histogram per route.
    durations: Cells,
    /// `[backend][BACKEND_CELLS]`.
    backends: Cells,
    /// Per backend: connect time of new connections, and time from the request sent to the
    /// response head.
    connect_time: Cells,
    head_time: Cells,
}

impl ProxyStats {
    pub fn new(layout: Arc<Layout>) -> ProxyStats {
        let routes = layout.routes.len();
        let backends = layout.backends.len();
        ProxyStats {
            counters: Cells::new(COUNTERS),
            requests: Cells::new(routes * CODE_SLOTS),
            durations: Cells::new(routes * HISTOGRAM_CELLS),
            backends: Cells::new(backends * BACKEND_CELLS),
            connect_time: Cells::new(backends * HISTOGRAM_CELLS),
            head_time: Cells::new(backends * HISTOGRAM_CELLS),
            layout,
        }
    }

    #[inline]
    pub fn inc(&self, c: Counter) {
        self.counters.inc(c as usize);
    }

    #[inline]
    pub fn set(&self, c: Counter, v: u64) {
        self.counters.set(c as usize, v);
    }

    pub fn get(&self, c: Counter) -> u64 {
        self.counters.get(c as usize)
    }

    /// Counts a tunnel as open until the guard drops (on the stats it was counted in).
    pub fn tunnel_opened(self: &Arc<Self>) -> TunnelOpen {
        self.inc(Counter::Tunnels);
        self.inc(Counter::TunnelsOpen);
        TunnelOpen(self.clone())
    }

    pub fn count_error(&self, e: &ProxyError) {
        match e.side() {
            Side::Client => self.inc(Counter::ClientErrors),
            Side::Backend => self.inc(Counter::BackendErrors),
        }
    }

    /// A request ended (answered, refused or cut): `route` is its route's index, or
    /// [`Layout::no_route`].
    #[inline]
    pub fn request_done(&self, route: usize, status: u16, source: Source, took: Duration) {
        self.requests
            .inc(route * CODE_SLOTS + code_slot(status, source));
        observe(&self.durations, route * HISTOGRAM_CELLS, took);
    }

    #[inline]
    pub fn backend_request(&self, backend: usize) {
        self.backends.inc(backend * BACKEND_CELLS + B_REQUESTS);
    }

    #[inline]
    pub fn backend_failure(&self, backend: usize, f: Failure) {
        self.backends
            .inc(backend * BACKEND_CELLS + B_FAILURES + f as usize);
    }

    #[inline]
    pub fn connect_time(&self, backend: usize, d: Duration) {
        observe(&self.connect_time, backend * HISTOGRAM_CELLS, d);
    }

    #[inline]
    pub fn head_time(&self, backend: usize, d: Duration) {
        observe(&self.head_time, backend * HISTOGRAM_CELLS, d);
    }

    /// The balancer's count of this shard's requests in flight on `backend`: the gauge is
    /// the state itself, so publishing it costs nothing extra.
    #[inline]
    pub fn in_flight(&self, backend: usize) -> u64 {
        self.backends.get(backend * BACKEND_CELLS + B_IN_FLIGHT)
    }

    #[inline]
    pub fn set_in_flight(&self, backend: usize, n: u64) {
        self.backends.set(backend * BACKEND_CELLS + B_IN_FLIGHT, n);
    }

    #[inline]
    pub fn set_idle(&self, backend: usize, n: u64) {
        self.backends.set(backend * BACKEND_CELLS + B_IDLE, n);
    }

    // Readers, for the scrape.

    pub fn requests(&self, route: usize, code: usize) -> u64 {
        self.requests.get(route * CODE_SLOTS + code)
    }

    pub fn durations(&self) -> (&Cells, usize) {
        (&self.durations, HISTOGRAM_CELLS)
    }

    pub fn connect_times(&self) -> (&Cells, usize) {
        (&self.connect_time, HISTOGRAM_CELLS)
    }

    pub fn head_times(&self) -> (&Cells, usize) {
        (&self.head_time, HISTOGRAM_CELLS)
    }

    pub fn backend_requests(&self, backend: usize) -> u64 {
        self.backends.get(backend * BACKEND_CELLS + B_REQUESTS)
    }

    pub fn backend_failures(&self, backend: usize, f: Failure) -> u64 {
        self.backends
            .get(backend * BACKEND_CELLS + B_FAILURES + f as usize)
    }

    pub fn idle(&self, backend: usize) -> u64 {
        self.backends.get(backend * BACKEND_CELLS + B_IDLE)
    }
}

/// An open tunnel, counted in `corelay_tunnels_open` until dropped.
pub struct TunnelOpen(Arc<ProxyStats>);

impl Drop for TunnelOpen {
    fn drop(&mut self) {
        let n = self.0.get(Counter::TunnelsOpen);
        self.0.set(Counter::TunnelsOpen, n - 1);
    }
}

/// The per-backend gauges of one group on one shard: what its balancer and pool publish
/// into.
#[derive(Clone)]
pub struct BackendGauges {
    stats: Arc<ProxyStats>,
    base: usize,
}

impl BackendGauges {
    pub fn new(stats: Arc<ProxyStats>, group: usize) -> BackendGauges {
        let base = stats.layout.group_base[group];
        BackendGauges { stats, base }
    }

    /// Gauges of their own, for unit tests.
    #[cfg(test)]
    pub fn detached(backends: usize) -> BackendGauges {
        let stats = Arc::new(ProxyStats::new(Arc::new(Layout::for_backends(backends))));
        BackendGauges { stats, base: 0 }
    }

    /// The backend's slot in the shard's series.
    pub fn slot(&self, backend: usize) -> usize {
        self.base + backend
    }

    #[inline]
    pub fn in_flight(&self, backend: usize) -> u64 {
        self.stats.in_flight(self.base + backend)
    }

    #[inline]
    pub fn set_in_flight(&self, backend: usize, n: u64) {
        self.stats.set_in_flight(self.base + backend, n);
    }

    #[inline]
    pub fn set_idle(&self, backend: usize, n: usize) {
        self.stats.set_idle(self.base + backend, n as u64);
    }
}
