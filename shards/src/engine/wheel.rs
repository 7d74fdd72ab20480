//! The shard's timer wheel: every per-request deadline (client header, keep-alive, body,
//! send, backend connect and response) is an entry here, not a glommio timer.
//!
//! A hashed wheel of [`SLOTS`] buckets of [`TICK`] each. Arming pushes an `(id, generation)`
//! pair into a bucket (the bucket vectors keep their capacity, so steady state allocates
//! nothing); cancelling only bumps the entry's generation, and stale pairs are dropped when
//! their bucket comes round. The driver advances the wheel once per loop turn, and before it
//! parks it arms one ring timeout for the next non-empty bucket.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::Engine;

/// Resolution of every deadline. Timeouts here are seconds long; a millisecond is plenty.
pub const TICK: Duration = Duration::from_millis(1);
/// Buckets in the wheel: one lap is 4 s; later deadlines stay in their bucket for more laps.
const SLOTS: usize = 4096;

struct Entry {
    gen: u32,
    tick: u64,
    waker: Option<Waker>,
    fired: bool,
    live: bool,
}

pub(crate) struct Wheel {
    origin: Instant,
    /// Every tick up to and including this one has been processed.
    done: u64,
    buckets: Vec<Vec<(u32, u32)>>,
    /// One bit per non-empty bucket, so finding the next deadline skips empty ones.
    occupied: Vec<u64>,
    /// The earliest armed tick, while known; parking asks for it on every idle turn.
    next: Option<Option<u64>>,
    entries: Vec<Entry>,
    free: Vec<u32>,
    live: usize,
}

impl Wheel {
    pub fn new(origin: Instant) -> Wheel {
        Wheel {
            origin,
            done: 0,
            buckets: (0..SLOTS).map(|_| Vec::new()).collect(),
            occupied: vec![0; SLOTS / 64],
            next: Some(None),
            entries: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }

    /// The first tick at or after `at`.
    fn tick_of(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.origin);
        let t = TICK.as_nanos();
        d.as_nanos().div_ceil(t) as u64
    }

    fn arm(&mut self, at: Instant, waker: &Waker) -> (u32, u32) {
        let tick = self.tick_of(at).max(self.done + 1);
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.entries.push(Entry {
                    gen: 0,
                    tick: 0,
                    waker: None,
                    fired: false,
                    live: false,
                });
                (self.entries.len() - 1) as u32
            }
        };
        let e = &mut self.entries[id as usize];
        e.tick = tick;
        e.waker = Some(waker.clone());
        e.fired = false;
        e.live = true;
        let gen = e.gen;
        let b = (tick % SLOTS as u64) as usize;
        self.buckets[b].push((id, gen));
        self.occupied[b / 64] |= 1 << (b % 64);
        self.live += 1;
        if let Some(next) = self.next {
            self.next = Some(Some(next.map_or(tick, |n| n.min(tick))));
        }
        (id, gen)
    }

    fn disarm(&mut self, (id, gen): (u32, u32)) {
        let e = &mut self.entries[id as usize];
        if e.gen == gen && e.live {
            if self.next == Some(Some(e.tick)) {
                self.next = None;
            }
            e.live = false;
            e.gen = e.gen.wrapping_add(1);
            e.waker = None;
            self.live -= 1;
            self.free.push(id);
        }
    }

    /// Processes every tick up to `now`; returns how many timers fired.
    pub fn advance(&mut self, now: Instant) -> usize {
        if self.live == 0 {
            self.done = self.tick_of(now).saturating_sub(1).max(self.done);
            return 0;
        }
        let target = now.saturating_duration_since(self.origin).as_nanos() / TICK.as_nanos();
        let target = target as u64;
        if target <= self.done {
            return 0;
        }
        let mut fired = 0;
        let span = (target - self.done).min(SLOTS as u64);
        for t in (target + 1 - span)..=target {
            let b = (t % SLOTS as u64) as usize;
            let mut bucket = std::mem::take(&mut self.buckets[b]);
            bucket.retain(|&(id, gen)| {
                let e = &mut self.entries[id as usize];
                if e.gen != gen || !e.live || e.fired {
                    return false;
                }
                if e.tick <= target {
                    e.fired = true;
                    if let Some(w) = e.waker.take() {
                        w.wake();
                    }
                    fired += 1;
                    return false;
                }
                true
            });
            if bucket.is_empty() {
                self.occupied[b / 64] &= !(1 << (b % 64));
            }
            self.buckets[b] = bucket;
        }
        self.done = target;
        if matches!(self.next, Some(Some(n)) if n <= target) {
            self.next = None;
        }
        fired
    }

    /// When the earliest armed timer is due, for the park timer. Cached between calls;
    /// a scan visits only non-empty buckets and drops the stale pairs it meets.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        if self.live == 0 {
            return None;
        }
        let tick = match self.next {
            Some(t) => t,
            None => {
                let t = self.scan();
                self.next = Some(t);
                t
            }
        }?;
        Some(self.origin + Duration::from_nanos(tick * TICK.as_nanos() as u64))
    }

    fn scan(&mut self) -> Option<u64> {
        let mut best: Option<u64> = None;
        let start = self.done + 1;
        let mut k = 0u64;
        while k < SLOTS as u64 {
            let t = start + k;
            let b = (t % SLOTS as u64) as usize;
            let word = self.occupied[b / 64] >> (b % 64);
            if word == 0 {
                // Skip to the next word.
                k += 64 - (b % 64) as u64;
                continue;
            }
            let skip = word.trailing_zeros() as u64;
            if skip > 0 {
                k += skip;
                continue;
            }
            let entries = &self.entries;
            self.buckets[b].retain(|&(id, gen)| {
                let e = &entries[id as usize];
                e.gen == gen && e.live && !e.fired
            });
            if self.buckets[b].is_empty() {
                self.occupied[b / 64] &= !(1 << (b % 64));
            }
            for &(id, _) in &self.buckets[b] {
                let et = self.entries[id as usize].tick;
                best = Some(best.map_or(et, |m: u64| m.min(et)));
            }
            if best == Some(t) {
                return best;
            }
            k += 1;
        }
        best
    }
}

/// A future that completes at its deadline (never before it).
pub struct Sleep {
    engine: Engine,
    at: Instant,
    key: Option<(u32, u32)>,
}

impl Sleep {
    pub(crate) fn new(engine: Engine, at: Instant) -> Sleep {
        Sleep {
            engine,
            at,
            key: None,
        }
    }

    pub fn deadline(&self) -> Instant {
        self.at
    }

    fn wheel(&self) -> &RefCell<Wheel> {
        &self.engine.inner().wheel
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.engine.now() >= self.at {
            if let Some(k) = self.key.take() {
                self.wheel().borrow_mut().disarm(k);
            }
            return Poll::Ready(());
        }
        let key = self.key;
        let mut w = self.wheel().borrow_mut();
        match key {
            Some((id, gen)) => {
                let e = &mut w.entries[id as usize];
                if e.gen == gen && e.live && !e.fired {
                    match &e.waker {
                        Some(old) if old.will_wake(cx.waker()) => {}
                        _ => e.waker = Some(cx.waker().clone()),
                    }
                    return Poll::Pending;
                }
                // Fired a little early (tick rounding of `now`) or recycled: arm again.
                w.disarm((id, gen));
                let at = self.at;
                let k = w.arm(at, cx.waker());
                drop(w);
                self.key = Some(k);
            }
            None => {
                let at = self.at;
                let k = w.arm(at, cx.waker());
                drop(w);
                self.key = Some(k);
            }
        }
        self.engine.timer_armed(self.at);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.wheel().borrow_mut().disarm(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_or_after_the_deadline_and_cancelled_entries_never_fire() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        let waker = futures_lite::future::block_on(std::future::poll_fn(|cx| {
            Poll::Ready(cx.waker().clone())
        }));
        let a = w.arm(t0 + Duration::from_millis(5), &waker);
        let b = w.arm(t0 + Duration::from_millis(5), &waker);
        let _c = w.arm(t0 + Duration::from_secs(9), &waker); // two laps ahead
        w.disarm(b);
        assert_eq!(w.next_deadline(), Some(t0 + Duration::from_millis(5)));
        assert_eq!(w.advance(t0 + Duration::from_millis(4)), 0);
        assert_eq!(w.advance(t0 + Duration::from_millis(5)), 1);
        assert!(w.entries[a.0 as usize].fired);
        assert_eq!(w.next_deadline(), Some(t0 + Duration::from_secs(9)));
        assert_eq!(w.advance(t0 + Duration::from_secs(8)), 0);
        assert_eq!(w.advance(t0 + Duration::from_millis(9001)), 1);
    }
}
