//! Per-shard counters.
//!
//! Each shard owns one [`ShardStats`] and is its only writer; a metrics reader
//! on another thread reads it through the same `Arc` with Relaxed loads. No
//! locks and no cross-shard writes, so the request path never contends.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of one shard.
///
/// Aligned to a cache line so that shards' counters, allocated next to each
/// other at startup, never share a line: otherwise every increment on one core
/// would invalidate its neighbour's line (false sharing).
#[repr(align(64))]
#[derive(Debug, Default)]
pub struct ShardStats {
    /// Connections accepted since start.
    pub connections_accepted: AtomicU64,
    /// Connections whose handler task has not finished yet.
    pub connections_open: AtomicU64,
    /// Failed `accept` calls (EMFILE, ENFILE, ENOBUFS, ...).
    pub accept_errors: AtomicU64,
}

/// A point-in-time copy of [`ShardStats`].
///
/// Fields are loaded one by one, so a snapshot is not atomic as a whole; that
/// is fine for monitoring and avoids any synchronisation with the shard.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub connections_accepted: u64,
    pub connections_open: u64,
    pub accept_errors: u64,
}

impl ShardStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connections_accepted: self.connections_accepted.load(Relaxed),
            connections_open: self.connections_open.load(Relaxed),
            accept_errors: self.accept_errors.load(Relaxed),
        }
    }
}

/// Adds snapshots field by field, for totals across shards.
impl std::ops::Add for StatsSnapshot {
    type Output = StatsSnapshot;

    fn add(self, o: StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            connections_accepted: self.connections_accepted + o.connections_accepted,
            connections_open: self.connections_open + o.connections_open,
            accept_errors: self.accept_errors + o.accept_errors,
        }
    }
}

impl std::iter::Sum for StatsSnapshot {
    fn sum<I: Iterator<Item = StatsSnapshot>>(iter: I) -> StatsSnapshot {
        iter.fold(StatsSnapshot::default(), |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_cache_line_aligned() {
        assert_eq!(std::mem::align_of::<ShardStats>(), 64);
        assert_eq!(std::mem::size_of::<ShardStats>(), 64);
    }

    #[test]
    fn snapshots_and_sums() {
        let a = ShardStats::default();
        a.connections_accepted.fetch_add(3, Relaxed);
        a.connections_open.fetch_add(1, Relaxed);
        let b = ShardStats::default();
        b.accept_errors.fetch_add(2, Relaxed);
        let total: StatsSnapshot = [a.snapshot(), b.snapshot()].into_iter().sum();
        assert_eq!(
            total,
            StatsSnapshot {
                connections_accepted: 3,
                connections_open: 1,
                accept_errors: 2
            }
        );
    }
}
