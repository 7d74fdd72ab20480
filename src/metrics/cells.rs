//! Counter storage one shard writes and the metrics thread reads, and the latency histograms
//! kept in it.
//!
//! A [`Cells`] block is whole cache lines, so no two shards' counters ever share a line (an
//! increment on one core would otherwise invalidate the line its neighbour is writing). Only
//! the owning shard writes a block, so an increment is a relaxed load and store, not a locked
//! read-modify-write; the reader may see a value one increment old, which a scrape does not
//! mind.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const PER_LINE: usize = 8;

#[repr(align(64))]
#[derive(Default)]
struct Line([AtomicU64; PER_LINE]);

/// A fixed array of `u64` cells, allocated once at start and padded to whole cache lines.
pub struct Cells(Box<[Line]>);

impl Cells {
    pub fn new(len: usize) -> Cells {
        Cells(
            (0..len.div_ceil(PER_LINE))
                .map(|_| Line::default())
                .collect(),
        )
    }

    #[inline]
    fn at(&self, i: usize) -> &AtomicU64 {
        &self.0[i / PER_LINE].0[i % PER_LINE]
    }

    /// Only the owning shard may call the writers.
    #[inline]
    pub fn add(&self, i: usize, n: u64) {
        let c = self.at(i);
        c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn inc(&self, i: usize) {
        self.add(i, 1);
    }

    #[inline]
    pub fn set(&self, i: usize, v: u64) {
        self.at(i).store(v, Relaxed);
    }

    #[inline]
    pub fn get(&self, i: usize) -> u64 {
        self.at(i).load(Relaxed)
    }
}

/// Upper bounds (`le`, seconds) of every latency histogram: request duration, time to the
/// backend's response head, backend connect time. One set, so the three can be compared
/// bucket by bucket. It starts at 100 µs because a backend on the same host or LAN connects
/// and answers in 0.1–1 ms, which Prometheus' default buckets (from 5 ms) would lump into one;
/// it is roughly 1-2.5-5 per decade, the usual resolution for alerting on a quantile; and it
/// ends at 60 s, the default `backend_response_timeout`, past which a request has failed
/// anyway (those land in `+Inf`).
pub const LATENCY_BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// [`LATENCY_BUCKETS`] in nanoseconds, for the comparison on the request path.
const BOUNDS_NS: [u64; 18] = {
    let mut ns = [0u64; 18];
    let mut i = 0;
    while i < ns.len() {
        ns[i] = (LATENCY_BUCKETS[i] * 1e9) as u64;
        i += 1;
    }
    ns
};

/// Cells one histogram takes: a count per bucket (not cumulative), one for `+Inf`, and the
/// sum in nanoseconds.
pub const HISTOGRAM_CELLS: usize = LATENCY_BUCKETS.len() + 2;
const SUM: usize = LATENCY_BUCKETS.len() + 1;

/// Adds one observation to the histogram at `base` in `cells`.
#[inline]
pub fn observe(cells: &Cells, base: usize, d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    // Linear: most observations are fast and stop in the first few buckets.
    let bucket = BOUNDS_NS
        .iter()
        .position(|&b| ns <= b)
        .unwrap_or(LATENCY_BUCKETS.len());
    cells.inc(base + bucket);
    cells.add(base + SUM, ns);
}

/// A histogram summed over shards, as the scrape renders it.
#[derive(Default, Clone)]
pub struct HistogramTotals {
    /// Per bucket, `+Inf` last; not cumulative.
    pub buckets: [u64; LATENCY_BUCKETS.len() + 1],
    pub sum_ns: u64,
}

impl HistogramTotals {
    pub fn add_from(&mut self, cells: &Cells, base: usize) {
        for (i, b) in self.buckets.iter_mut().enumerate() {
            *b += cells.get(base + i);
        }
        self.sum_ns = self.sum_ns.wrapping_add(cells.get(base + SUM));
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_whole_cache_lines() {
        assert_eq!(std::mem::align_of::<Line>(), 64);
        assert_eq!(std::mem::size_of::<Line>(), 64);
        let c = Cells::new(9);
        assert_eq!(c.0.len(), 2);
        c.inc(8);
        c.add(8, 2);
        c.set(0, 7);
        assert_eq!((c.get(0), c.get(8)), (7, 3));
    }

    #[test]
    fn observations_land_in_their_bucket() {
        let c = Cells::new(HISTOGRAM_CELLS);
        observe(&c, 0, Duration::from_micros(100)); // on the bound: le="0.0001"
        observe(&c, 0, Duration::from_micros(101));
        observe(&c, 0, Duration::from_secs(61)); // +Inf
        let mut t = HistogramTotals::default();
        t.add_from(&c, 0);
        assert_eq!(t.buckets[0], 1);
        assert_eq!(t.buckets[1], 1);
        assert_eq!(t.buckets[LATENCY_BUCKETS.len()], 1);
        assert_eq!(t.count(), 3);
        assert_eq!(t.sum_ns, 100_000 + 101_000 + 61_000_000_000);
    }
}
