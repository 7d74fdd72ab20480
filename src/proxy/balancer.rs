//! Spreading a group's requests over its backends: round-robin, or fewest requests in
//! flight; backends that recently refused connections, that failed `max_fails` times in a
//! row (passive health) or that active checks found down are tried last, and so still tried
//! when no other is left.
//!
//! Each shard has its own balancer per group, so the rotation, the in-flight counts and the
//! back-off state need no synchronisation; with N shards each backend still gets an even
//! share overall (`least_requests` counts this shard's requests only).

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::health::{Fails, GroupHealth};
use crate::config::Policy;

pub struct Balancer {
    backends: Vec<SocketAddr>,
    down_until: Vec<Cell<Option<Instant>>>,
    in_flight: Vec<Cell<usize>>,
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
pub struct InFlight<'a>(&'a Cell<usize>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

impl Balancer {
    pub fn new(backends: Vec<SocketAddr>, backoff: Duration, policy: Policy) -> Balancer {
        let down_until = backends.iter().map(|_| Cell::new(None)).collect();
        let in_flight = backends.iter().map(|_| Cell::new(0)).collect();
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
        let c = &self.in_flight[index];
        c.set(c.get() + 1);
        InFlight(c)
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
                order[start..len].sort_by_key(|&i| self.in_flight[i].get());
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

    fn addrs(n: usize) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 9000 + i as u16)))
            .collect()
    }

    #[test]
    fn rotates_evenly() {
        let b = Balancer::new(addrs(3), Duration::from_secs(1), Policy::RoundRobin);
        let now = Instant::now();
        let firsts: Vec<usize> = (0..6).map(|_| b.plan(now).next().unwrap()).collect();
        assert_eq!(firsts, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(b.plan(now).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn least_requests_prefers_the_idlest() {
        let b = Balancer::new(addrs(3), Duration::from_secs(1), Policy::LeastRequests);
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
    fn down_backends_go_last_until_backoff_ends() {
        let b = Balancer::new(addrs(2), Duration::from_secs(1), Policy::RoundRobin);
        let now = Instant::now();
        b.mark_down(0, now);
        assert_eq!(b.plan(now).collect::<Vec<_>>(), vec![1, 0]);
        assert_eq!(b.plan(now).collect::<Vec<_>>(), vec![1, 0]);
        let later = now + Duration::from_secs(2);
        assert_eq!(b.plan(later).collect::<Vec<_>>(), vec![0, 1]);
    }
}
