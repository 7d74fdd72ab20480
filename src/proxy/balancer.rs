//! Spreading a group's requests over its backends: round-robin, or fewest requests in
//! flight; backends that recently refused connections, that failed `max_fails` times in a
//! row (passive health) or that active checks found down are tried last, and so still tried
//! when no other is left.
//!
//! Each shard has its own balancer per group, so the rotation, the in-flight counts and the
//! back-off state need no synchronisation; with N shards each backend still gets an even
//! share overall (`least_requests` counts this shard's requests only). The in-flight counts
//! live in the shard's metrics cells (`corelay_backend_in_flight`): the gauge is the state,
//! so publishing it costs nothing.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::health::{Fails, GroupHealth};
use crate::config::Policy;
use crate::metrics::BackendGauges;

pub struct Balancer {
    backends: Vec<SocketAddr>,
    down_until: Vec<Cell<Option<Instant>>>,
    in_flight: BackendGauges,
    fails: Vec<Fails>,
    next: Cell<usize>,
    backoff: Duration,
    policy: Policy,
    max_fails: u32,
    fail_timeout: Duration,
    /// The active checks' verdicts for this group.
    health: Option<Arc<GroupHealth>>,
}

/// Counts one request in flight on a backend until dropped.
pub struct InFlight<'a> {
    gauges: &'a BackendGauges,
    backend: usize,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let n = self.gauges.in_flight(self.backend);
        self.gauges.set_in_flight(self.backend, n - 1);
    }
}

impl Balancer {
    pub fn new(
        backends: Vec<SocketAddr>,
        backoff: Duration,
        policy: Policy,
        in_flight: BackendGauges,
    ) -> Balancer {
        let down_until = backends.iter().map(|_| Cell::new(None)).collect();
        let fails = backends.iter().map(|_| Fails::default()).collect();
        Balancer {
            backends,
            down_until,
            in_flight,
            fails,
            next: Cell::new(0),
            backoff,
            policy,
            max_fails: 0,
            fail_timeout: Duration::ZERO,
            health: None,
        }
    }

    /// Skips a backend for `fail_timeout` after `max_fails` failures in a row (0: never).
    pub fn with_passive(mut self, max_fails: u32, fail_timeout: Duration) -> Balancer {
        self.max_fails = max_fails;
        self.fail_timeout = fail_timeout;
        self
    }

    /// Reads the group's active health verdicts from `health`.
    pub fn with_health(mut self, health: Arc<GroupHealth>) -> Balancer {
        self.health = Some(health);
        self
    }

    fn usable(&self, idx: usize, now: Instant) -> bool {
        !self.down_until[idx].get().is_some_and(|t| t > now)
            && !self.fails[idx].ejected(now)
            && self.health.as_ref().map_or(true, |h| h.is_up(idx))
    }

    /// A connect failure or a response timeout of `index` (passive health). Logged when it
    /// takes the backend out.
    pub fn failed(&self, index: usize, now: Instant) {
        if self.fails[index].failed(self.max_fails, self.fail_timeout, now) {
            log::info!(
                "backend {}: skipped for {:?} after {} failures in a row",
                self.backends[index],
                self.fail_timeout,
                self.max_fails
            );
        }
    }

    /// A response head arrived from `index`.
    pub fn succeeded(&self, index: usize) {
        self.fails[index].succeeded();
    }

    /// Marks a request as in flight on `index` for as long as the guard lives.
    pub fn start(&self, index: usize) -> InFlight<'_> {
        let n = self.in_flight.in_flight(index);
        self.in_flight.set_in_flight(index, n + 1);
        InFlight {
            gauges: &self.in_flight,
            backend: index,
        }
    }

    pub fn len(&self) -> usize {
        self.backends.len()
    }

    pub fn addr(&self, index: usize) -> SocketAddr {
        self.backends[index]
    }

    /// The order in which to try backends for one request: the next one in rotation first,
    /// then the others; backends in back-off, ejected or down go last, so that they are still
    /// tried when nothing else is left (a single backend that refused once is not refused for
    /// good, and a group whose backends are all down still gets its requests tried).
    pub fn plan(&self, now: Instant) -> Plan {
        let n = self.backends.len();
        let first = self.next.get() % n;
        self.next.set((first + 1) % n);
        let mut order = [usize::MAX; MAX_PLAN];
        let mut len = 0;
        for pass_down in [false, true] {
            let start = len;
            for i in 0..n.min(MAX_PLAN) {
                let idx = (first + i) % n;
                let down = !self.usable(idx, now);
                if down == pass_down {
                    order[len] = idx;
                    len += 1;
                }
            }
            if self.policy == Policy::LeastRequests {
                // Stable: among equals, the rotation order decides.
                order[start..len].sort_by_key(|&i| self.in_flight.in_flight(i));
            }
        }
        Plan { order, len, pos: 0 }
    }

    /// Records a refused or failed connection: the backend is skipped for the back-off period.
    pub fn mark_down(&self, index: usize, now: Instant) {
        self.down_until[index].set(Some(now + self.backoff));
    }

    pub fn mark_up(&self, index: usize) {
        if self.down_until[index].get().is_some() {
            self.down_until[index].set(None);
        }
    }
}

/// A request tries at most this many distinct backends before giving up with 502.
const MAX_PLAN: usize = 16;

/// The backends one request may try, in order (no allocation).
pub struct Plan {
    order: [usize; MAX_PLAN],
    len: usize,
    pos: usize,
}

impl Iterator for Plan {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.pos < self.len {
            self.pos += 1;
            Some(self.order[self.pos - 1])
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balancer(n: usize, policy: Policy) -> Balancer {
        let addrs = (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 9000 + i as u16)))
            .collect();
        Balancer::new(
            addrs,
            Duration::from_secs(1),
            policy,
            BackendGauges::detached(n),
        )
    }

    #[test]
    fn rotates_evenly() {
        let b = balancer(3, Policy::RoundRobin);
        let now = Instant::now();
        let firsts: Vec<usize> = (0..6).map(|_| b.plan(now).next().unwrap()).collect();
        assert_eq!(firsts, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(b.plan(now).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn least_requests_prefers_the_idlest() {
        let b = balancer(3, Policy::LeastRequests);
        let now = Instant::now();
        let _a = b.start(0);
        let _b = b.start(0);
        let c = b.start(1);
        assert_eq!(b.plan(now).collect::<Vec<_>>(), vec![2, 1, 0]);
        drop(c);
        let first = b.plan(now).next().unwrap();
        assert!(first == 1 || first == 2);
        assert_eq!(b.plan(now).last(), Some(0));
    }

    #[test]
    fn in_flight_counts_are_the_published_gauges() {
        let b = balancer(2, Policy::LeastRequests);
        let a = b.start(1);
        let c = b.start(1);
        assert_eq!((b.in_flight.in_flight(0), b.in_flight.in_flight(1)), (0, 2));
        drop(a);
        assert_eq!(b.in_flight.in_flight(1), 1);
        drop(c);
        assert_eq!(b.in_flight.in_flight(1), 0);
    }

    #[test]
    fn down_backends_go_last_until_backoff_ends() {
        let b = balancer(2, Policy::RoundRobin);
        let now = Instant::now();
        b.mark_down(0, now);
        assert_eq!(b.plan(now).collect::<Vec<_>>(), vec![1, 0]);
        assert_eq!(b.plan(now).collect::<Vec<_>>(), vec![1, 0]);
        let later = now + Duration::from_secs(2);
        assert_eq!(b.plan(later).collect::<Vec<_>>(), vec![0, 1]);
    }
}
