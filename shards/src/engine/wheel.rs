//! The shard's timer wheel: every per-request deadline (client header, keep-alive, body,
//! send, backend connect and response) is an entry here, not a glommio timer (the admission
//! queue timeout and the access log flusher, which are not per request, keep glommio timers).
//!
//! A hashed wheel of [`SLOTS`] buckets of [`TICK`] each. Entries live in one slab and each
//! bucket is an intrusive doubly-linked list through it, so arming and cancelling are O(1)
//! and, once the slab has grown to the shard's peak, allocate nothing. A bitmap of non-empty
//! buckets lets the park check find the next deadline without visiting empty ones, and the
//! answer is cached until a timer that could change it is armed, cancelled or fired. The
//! driver advances the wheel once per loop turn, and before it parks it arms one ring timeout
//! for the next deadline.

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
const NIL: u32 = u32::MAX;

struct Entry {
    gen: u32,
    tick: u64,
    waker: Option<Waker>,
    /// Linked in a bucket (armed, not yet fired or cancelled).
    linked: bool,
    fired: bool,
    prev: u32,
    next: u32,
}

pub(crate) struct Wheel {
    origin: Instant,
    /// Every tick up to and including this one has been processed.
    done: u64,
    heads: Vec<u32>,
    /// One bit per non-empty bucket.
    occupied: Vec<u64>,
    /// The earliest armed tick, while known (`Some(None)`: nothing armed).
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
            heads: vec![NIL; SLOTS],
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
        d.as_nanos().div_ceil(TICK.as_nanos()) as u64
    }

    fn bucket(tick: u64) -> usize {
        (tick % SLOTS as u64) as usize
    }

    fn link(&mut self, id: u32) {
        let b = Self::bucket(self.entries[id as usize].tick);
        let head = self.heads[b];
        {
            let e = &mut self.entries[id as usize];
            e.prev = NIL;
            e.next = head;
            e.linked = true;
        }
        if head != NIL {
            self.entries[head as usize].prev = id;
        }
        self.heads[b] = id;
        self.occupied[b / 64] |= 1 << (b % 64);
    }

    fn unlink(&mut self, id: u32) {
        let (prev, next, tick) = {
            let e = &mut self.entries[id as usize];
            e.linked = false;
            (e.prev, e.next, e.tick)
        };
        let b = Self::bucket(tick);
        if prev != NIL {
            self.entries[prev as usize].next = next;
        } else {
            self.heads[b] = next;
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
        if self.heads[b] == NIL {
            self.occupied[b / 64] &= !(1 << (b % 64));
        }
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
                    linked: false,
                    fired: false,
                    prev: NIL,
                    next: NIL,
                });
                (self.entries.len() - 1) as u32
            }
        };
        let e = &mut self.entries[id as usize];
        e.tick = tick;
        e.waker = Some(waker.clone());
        e.fired = false;
        let gen = e.gen;
        self.link(id);
        self.live += 1;
        if let Some(next) = self.next {
            self.next = Some(Some(next.map_or(tick, |n| n.min(tick))));
        }
        (id, gen)
    }

    fn disarm(&mut self, (id, gen): (u32, u32)) {
        let e = &self.entries[id as usize];
        if e.gen != gen {
            return;
        }
        if e.linked {
            if self.next == Some(Some(e.tick)) {
                self.next = None;
            }
            self.unlink(id);
        }
        let e = &mut self.entries[id as usize];
        e.gen = e.gen.wrapping_add(1);
        e.waker = None;
        self.live -= 1;
        self.free.push(id);
    }

    /// Processes every tick up to `now`; returns how many timers fired.
    pub fn advance(&mut self, now: Instant) -> usize {
        let target =
            (now.saturating_duration_since(self.origin).as_nanos() / TICK.as_nanos()) as u64;
        if target <= self.done {
            return 0;
        }
        let mut fired = 0;
        if self.live > 0 {
            let span = (target - self.done).min(SLOTS as u64);
            for t in (target + 1 - span)..=target {
                let b = Self::bucket(t);
                if self.occupied[b / 64] & (1 << (b % 64)) == 0 {
                    continue;
                }
                let mut id = self.heads[b];
                while id != NIL {
                    let next = self.entries[id as usize].next;
                    if self.entries[id as usize].tick <= target {
                        self.unlink(id);
                        let e = &mut self.entries[id as usize];
                        e.fired = true;
                        if let Some(w) = e.waker.take() {
                            w.wake();
                        }
                        fired += 1;
                    }
                    id = next;
                }
            }
        }
        self.done = target;
        if matches!(self.next, Some(Some(n)) if n <= target) {
            self.next = None;
        }
        fired
    }

    /// When the earliest armed timer is due, for the park timer.
    pub fn next_deadline(&mut self) -> Option<Instant> {
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

    /// The earliest armed tick: the first non-empty bucket holding an entry of this lap, or
    /// else the smallest tick seen in a whole lap.
    fn scan(&self) -> Option<u64> {
        let mut best: Option<u64> = None;
        let start = self.done + 1;
        let mut k = 0u64;
        while k < SLOTS as u64 {
            let t = start + k;
            let b = Self::bucket(t);
            let word = self.occupied[b / 64] >> (b % 64);
            if word == 0 {
                k += 64 - (b % 64) as u64;
                continue;
            }
            let skip = word.trailing_zeros() as u64;
            if skip > 0 {
                k += skip;
                continue;
            }
            let mut id = self.heads[b];
            while id != NIL {
                let e = &self.entries[id as usize];
                best = Some(best.map_or(e.tick, |m: u64| m.min(e.tick)));
                id = e.next;
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
                if e.gen == gen && e.linked {
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
