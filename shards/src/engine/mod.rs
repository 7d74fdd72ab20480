//! The shard's network engine: one io_uring per shard that carries every socket operation of
//! its connections (accept, recv, send, connect, shutdown, close), driven between glommio task
//! runs.
//!
//! * **Setup** (`probe.rs`): `SINGLE_ISSUER | DEFER_TASKRUN`, the ring fd registered, a sparse
//!   fixed-file table sized from `RLIMIT_NOFILE` (every socket is a direct descriptor, so the
//!   process fd table never bounds connections), two provided-buffer groups (`bufs.rs`).
//!   DEFER_TASKRUN is why no completion ever interrupts the shard with an IPI: the kernel runs
//!   completion work only inside this shard's own `io_uring_enter`.
//! * **Ownership**: every operation has a slot in [`Ops`]. Memory an operation points at (a
//!   send's bytes, a relay buffer, an accept's address) belongs to the slot while the kernel
//!   has it. A future dropped with its operation in flight turns the slot into an *orphan*: a
//!   cancel is queued, and the memory is released only when the operation's last completion
//!   arrives (`Engine::finish_orphan`).
//! * **Driving** ([`Engine::drive`], one task per shard): each turn is one
//!   `io_uring_enter(to_submit, 0, GETEVENTS)`, then the completion queue is reaped, wakers are
//!   woken, and due timers fire; then the driver yields, so every task it woke runs before
//!   the next turn. Once turns have done nothing for [`SPIN_BEFORE_PARK`] it parks: the ring's eventfd is re-enabled,
//!   one more enter makes sure nothing slipped in, and the driver waits on the eventfd through
//!   glommio's own ring (so glommio parks the thread). While busy the eventfd stays disabled,
//!   so the bridge costs no syscall under load.
//! * **Timers** (`wheel.rs`): one coarse wheel per shard for every per-request deadline.

mod bufs;
mod conn;
mod listen;
mod probe;
mod relay;
mod tunnel;
mod wheel;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

pub use bufs::RingGauges;
pub use conn::Conn;
pub use listen::{Acceptor, ACCEPT_DEPTH};
pub use probe::{probe, KernelFloor};
pub use relay::{relay, RelayError};
pub use tunnel::{tunnel, End, TunnelEnd, TunnelReport};
pub use wheel::Sleep;

use bufs::{Bufs, Group};
use wheel::Wheel;

/// The most relay buffers one ring can hold: a provided-buffer ring has at most 2^15 entries
/// and buffer ids are 16 bits; io_uring registers at most 2^14 fixed buffers.
pub const MAX_RING_BUFFERS: usize = 1 << 14;

/// user_data of operations whose completions nobody waits for (cancels, closes, options).
const TAG_IGNORE: u64 = u64::MAX;
/// user_data of the timeout armed before parking, so a due timer wakes the parked shard.
const TAG_PARK_TIMER: u64 = u64::MAX - 1;

// io_uring ABI constants the io-uring crate keeps private (linux/io_uring.h).
const ENTER_GETEVENTS: u32 = 1 << 0;
const ENTER_REGISTERED_RING: u32 = 1 << 4;

/// How long the driver keeps turning after the last turn that did something, before it
/// parks. A park and its wake go through glommio (its rings, a `membarrier`, the eventfd
/// read): about 20 µs here, more than a backend's answer on a fast network takes. Measured
/// (`wrk -c1` on `/small`): 48–53 µs per request parking at once, 26–28 µs with 30 µs of
/// spinning; at 64 connections 11.0 -> 9.7 and 13.5 -> 13.0 µs. An idle shard spins at most
/// this long once, then parks.
const SPIN_BEFORE_PARK: Duration = Duration::from_micros(30);

/// How the engine is sized. Everything is allocated once, at start.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Relay buffers (body bytes): registered fixed buffers, also provided for receives.
    pub relay_buffers: usize,
    pub relay_buffer_size: usize,
    /// Small provided buffers that receive message heads. A receive picks one only when its
    /// data arrives and gives it back as soon as the bytes are copied out, so idle
    /// connections hold none; the count bounds how many connections can deliver bytes in
    /// one loop turn (the rest see `ENOBUFS` and retry on the next turn, losing nothing).
    pub head_buffers: usize,
    /// Direct descriptors (fixed-file table entries); 0: the `RLIMIT_NOFILE` hard limit.
    pub files: u32,
}

impl EngineConfig {
    pub fn new(relay_buffers: usize, relay_buffer_size: usize) -> EngineConfig {
        EngineConfig {
            relay_buffers,
            relay_buffer_size,
            head_buffers: 512,
            files: 0,
        }
    }
}

/// Counters of one engine, written by its shard only, read by metrics.
#[derive(Default, Debug)]
pub struct EngineStats {
    /// `io_uring_enter` calls made by the engine.
    pub enters: AtomicU64,
    /// Times the driver parked (nothing to do), and so went through glommio's ring.
    pub parks: AtomicU64,
    /// Receives that found no provided buffer (`ENOBUFS`) and were retried.
    pub no_buffers: AtomicU64,
    /// Direct descriptors open now, and the table size.
    pub files_open: AtomicU64,
    pub files_total: AtomicU64,
    /// Head buffers lent out now (picked by a completed receive, not yet given back).
    pub head_buffers_out: AtomicU64,
    /// Operations in the kernel now, orphans included (updated once per loop turn).
    pub ops_in_flight: AtomicU64,
}

/// A shard's engine. Shard-local (not `Send`); cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Rc<Inner>,
}

pub(crate) struct Inner {
    // Field order is drop order: the ring goes first (the kernel lets go of every buffer and
    // descriptor), then the memory the ring pointed at.
    ring: RefCell<IoUring>,
    ring_index: i32,
    ops: RefCell<Ops>,
    bufs: Bufs,
    wheel: RefCell<Wheel>,
    eventfd: RawFd,
    /// The driver's waker while it is parked; set by [`Engine::kick`].
    driver: Cell<Option<Waker>>,
    kicked: Cell<bool>,
    /// The time at the start of this loop turn's timers: deadlines are computed from it, so
    /// the clock is read once per turn rather than once per operation.
    now: Cell<Instant>,
    /// The park timer's deadline while one is armed in the kernel.
    park_timer: Cell<Option<Instant>>,
    park_ts: RefCell<types::Timespec>,
    files_capacity: u32,
    files_open: Cell<u32>,
    stats: Arc<EngineStats>,
    closed: Cell<bool>,
    /// Transfer queues kept for reuse, so a body transfer allocates nothing.
    relay_queues: RefCell<Vec<std::collections::VecDeque<relay::Filled>>>,
}

/// What an operation is, for the cleanup of an orphan's completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A receive with buffer select from this group.
    Recv(Group),
    /// A send; the slot may hold the bytes.
    Send,
    /// A write from relay buffer `bid`.
    WriteRelay(u16),
    /// Creates a direct descriptor (accept, socket): an orphan's success must be closed.
    NewFile,
    Other,
}

#[derive(Debug)]
enum State {
    Free,
    Pending(Option<Waker>),
    Done,
    Orphan,
}

/// What a slot keeps alive for the kernel while its operation is in flight.
#[derive(Default)]
pub(crate) enum Hold {
    #[default]
    None,
    Bytes(Vec<u8>),
    Addr(Box<conn::SockAddr>),
}

struct Slot {
    state: State,
    kind: Kind,
    res: i32,
    flags: u32,
    hold: Hold,
}

/// The operation table: one slot per operation in the kernel; `user_data` is the index.
/// Slots are freed only by their last completion, so a completion never finds a reused slot.
pub(crate) struct Ops {
    slots: Vec<Slot>,
    free: Vec<u32>,
    in_flight: usize,
}

impl Ops {
    fn alloc(&mut self, kind: Kind, hold: Hold) -> u32 {
        let slot = Slot {
            state: State::Pending(None),
            kind,
            res: 0,
            flags: 0,
            hold,
        };
        self.in_flight += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, i: u32) -> Hold {
        let s = &mut self.slots[i as usize];
        s.state = State::Free;
        self.in_flight -= 1;
        self.free.push(i);
        std::mem::take(&mut s.hold)
    }
}

impl Engine {
    /// Builds the shard's engine; fails with one line naming a missing kernel feature.
    pub fn new(
        config: &EngineConfig,
        gauges: Arc<RingGauges>,
        stats: Arc<EngineStats>,
    ) -> io::Result<Engine> {
        probe::build(config, gauges, stats)
    }

    pub(crate) fn from_inner(inner: Inner) -> Engine {
        Engine {
            inner: Rc::new(inner),
        }
    }

    pub fn stats(&self) -> &Arc<EngineStats> {
        &self.inner.stats
    }

    pub fn relay_buffer_size(&self) -> usize {
        self.inner.bufs.size(Group::Relay)
    }

    pub fn files_capacity(&self) -> u32 {
        self.inner.files_capacity
    }

    /// Records that one transfer holds `n` relay buffers (for the per-transfer peak gauge).
    pub fn note_transfer_held(&self, n: usize) {
        self.inner.bufs.note_transfer_held(n);
    }

    /// The time of the current loop turn (read once per turn).
    pub fn now(&self) -> Instant {
        self.inner.now.get()
    }

    /// A future that completes at `deadline`, on the shard's timer wheel.
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep::new(self.clone(), deadline)
    }

    // ---- submission --------------------------------------------------------------------

    /// Queues an operation whose completion someone will await; returns its slot.
    pub(crate) fn start(&self, sqe: squeue::Entry, kind: Kind, hold: Hold) -> u32 {
        let idx = self.inner.ops.borrow_mut().alloc(kind, hold);
        self.push(sqe.user_data(idx as u64));
        idx
    }

    /// Queues an operation nobody awaits (its completion is dropped).
    pub(crate) fn fire(&self, sqe: squeue::Entry) {
        self.push(sqe.user_data(TAG_IGNORE));
    }

    fn push(&self, sqe: squeue::Entry) {
        let mut ring = self.inner.ring.borrow_mut();
        // SAFETY (every push): what the SQE points at is held by its slot (or is static)
        // until its completion is reaped.
        if unsafe { ring.submission().push(&sqe) }.is_err() {
            // The submission queue is full: hand it to the kernel now (no reaping needed, the
            // completion queue is twice as large and the kernel buffers overflow).
            let n = ring.submission().len() as u32;
            drop(ring);
            let _ = self.enter(n, 0);
            let mut ring = self.inner.ring.borrow_mut();
            unsafe { ring.submission().push(&sqe) }.expect("submission queue has room");
        } else {
            drop(ring);
        }
        self.kick();
    }

    /// Wakes the driver if it is parked: a task that ran for another reason (a glommio timer,
    /// an event) queued work that the next turn must submit.
    fn kick(&self) {
        if let Some(w) = self.inner.driver.take() {
            self.inner.kicked.set(true);
            w.wake();
        }
    }

    /// A timer was armed for `at`: a parked driver whose ring timeout is later (or absent)
    /// must re-park with an earlier one, or the timer would fire only with the next event.
    pub(crate) fn timer_armed(&self, at: Instant) {
        if matches!(self.inner.park_timer.get(), Some(t) if t <= at) {
            return;
        }
        self.kick();
    }

    /// Polls an operation's slot. `Ready((res, flags))` once its completion arrived; the slot
    /// is then free and its hold comes back.
    pub(crate) fn poll_op(&self, idx: u32, cx: &mut Context<'_>) -> Poll<(i32, u32, Hold)> {
        let mut ops = self.inner.ops.borrow_mut();
        let slot = &mut ops.slots[idx as usize];
        match &mut slot.state {
            State::Pending(w) => {
                match w {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            State::Done => {
                let (res, flags) = (slot.res, slot.flags);
                let hold = ops.release(idx);
                Poll::Ready((res, flags, hold))
            }
            s => panic!("engine: op {idx} polled in state {s:?}"),
        }
    }

    /// Gives up on an operation still in flight: its slot becomes an orphan and a cancel is
    /// queued. Whatever the slot holds stays alive until the operation's completion arrives.
    /// If the completion already arrived, its results are cleaned up at once.
    pub(crate) fn abandon(&self, idx: u32) {
        let done = {
            let mut ops = self.inner.ops.borrow_mut();
            let slot = &mut ops.slots[idx as usize];
            match slot.state {
                State::Pending(_) => {
                    slot.state = State::Orphan;
                    false
                }
                State::Done => true,
                _ => return,
            }
        };
        if done {
            self.finish_orphan(idx);
        } else {
            self.inner.bufs.gauges().orphaned.fetch_add(1, Relaxed);
            self.fire(opcode::AsyncCancel::new(idx as u64).build());
        }
    }

    /// Cleans up after an orphan's (or an abandoned, completed op's) last completion.
    fn finish_orphan(&self, idx: u32) {
        let (kind, res, flags, hold) = {
            let mut ops = self.inner.ops.borrow_mut();
            let s = &ops.slots[idx as usize];
            let (kind, res, flags) = (s.kind, s.res, s.flags);
            (kind, res, flags, ops.release(idx))
        };
        drop(hold);
        match kind {
            Kind::Recv(g) => match cqueue::buffer_select(flags) {
                Some(bid) => {
                    self.inner.bufs.picked(g);
                    self.inner.bufs.recycle(g, bid);
                }
                None if g == Group::Relay => self.inner.bufs.unreserve(),
                None => {}
            },
            Kind::WriteRelay(bid) => self.inner.bufs.recycle(Group::Relay, bid),
            Kind::NewFile if res >= 0 => self.close_file(res as u32),
            _ => {}
        }
    }

    // ---- descriptors -------------------------------------------------------------------

    /// Counts a new direct descriptor.
    pub(crate) fn file_opened(&self) {
        let n = self.inner.files_open.get() + 1;
        self.inner.files_open.set(n);
        self.inner.stats.files_open.store(n as u64, Relaxed);
    }

    /// Closes direct descriptor `fd`. Its owner has already abandoned whatever it had in
    /// flight on it (each abandon queues a cancel by `user_data`, which the kernel finds in a
    /// hash; a cancel by descriptor would walk every request in flight, which made closing
    /// 10,000 connections quadratic). The cancels precede the close in the same submission.
    pub(crate) fn close_file(&self, fd: u32) {
        self.fire(opcode::Close::new(types::Fixed(fd)).build());
        let n = self.inner.files_open.get().saturating_sub(1);
        self.inner.files_open.set(n);
        self.inner.stats.files_open.store(n as u64, Relaxed);
    }

    // ---- the loop ----------------------------------------------------------------------

    /// `io_uring_enter` on the registered ring fd; retries `EINTR`. `EBUSY`/`EAGAIN` (the
    /// completion side is backed up) leave the rest queued for the next turn.
    fn enter(&self, to_submit: u32, flags: u32) -> io::Result<()> {
        self.inner.stats.enters.fetch_add(1, Relaxed);
        loop {
            // SAFETY: plain syscall on our registered ring index, no argument struct.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_io_uring_enter,
                    self.inner.ring_index,
                    to_submit,
                    0u32,
                    flags | ENTER_REGISTERED_RING,
                    std::ptr::null::<libc::c_void>(),
                    0usize,
                )
            };
            if r >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EBUSY) | Some(libc::EAGAIN) => return Ok(()),
                _ => return Err(e),
            }
        }
    }

    /// One turn: submit what is queued and run deferred completion work in one enter, reap,
    /// fire due timers. Returns whether anything happened.
    fn turn(&self) -> bool {
        let queued = self.inner.ring.borrow_mut().submission().len() as u32;
        if let Err(e) = self.enter(queued, ENTER_GETEVENTS) {
            log::error!("engine: io_uring_enter failed: {e}");
        }
        let reaped = self.reap();
        let in_flight = self.inner.ops.borrow().in_flight as u64;
        self.inner.stats.ops_in_flight.store(in_flight, Relaxed);
        let now = Instant::now();
        self.inner.now.set(now);
        let fired = self.inner.wheel.borrow_mut().advance(now);
        queued > 0 || reaped > 0 || fired > 0
    }

    /// Reaps the completion queue: wakes each operation's task, cleans up orphans.
    fn reap(&self) -> usize {
        let mut n = 0;
        loop {
            let cqe = {
                let mut ring = self.inner.ring.borrow_mut();
                let mut cq = ring.completion();
                match cq.next() {
                    Some(c) => c,
                    None => break,
                }
            };
            n += 1;
            let tag = cqe.user_data();
            if tag == TAG_IGNORE {
                continue;
            }
            if tag == TAG_PARK_TIMER {
                self.inner.park_timer.set(None);
                continue;
            }
            let idx = tag as u32;
            let orphan = {
                let mut ops = self.inner.ops.borrow_mut();
                let slot = &mut ops.slots[idx as usize];
                slot.res = cqe.result();
                slot.flags = cqe.flags();
                match std::mem::replace(&mut slot.state, State::Done) {
                    State::Pending(w) => {
                        drop(ops);
                        if let Some(w) = w {
                            w.wake();
                        }
                        false
                    }
                    State::Orphan => true,
                    other => {
                        log::error!("engine: completion for op {idx} in state {other:?}");
                        slot.state = other;
                        false
                    }
                }
            };
            if orphan {
                self.finish_orphan(idx);
            }
        }
        n
    }

    /// The driver: spawn once per shard, on its executor. Returns after [`Engine::close`].
    pub async fn drive(self) {
        let efd = self.inner.eventfd;
        // SAFETY: the eventfd belongs to the engine and outlives this file's reads (the
        // BufferedFile is forgotten, not closed, below).
        let file = Rc::new(unsafe {
            <glommio::io::BufferedFile as std::os::fd::FromRawFd>::from_raw_fd(efd)
        });
        let waiter = {
            let file = file.clone();
            let engine = self.clone();
            glommio::spawn_local(async move {
                loop {
                    if file.read_at(0, 8).await.is_err() {
                        glommio::timer::sleep(Duration::from_millis(1)).await;
                    }
                    if engine.inner.closed.get() {
                        return;
                    }
                    engine.kick();
                }
            })
        };
        self.inner.ring.borrow_mut().completion().disable_eventfd();
        let mut busy_at = Instant::now();
        while !self.inner.closed.get() {
            if self.turn() {
                busy_at = self.now();
                futures_lite::future::yield_now().await;
                continue;
            }
            if self.now().saturating_duration_since(busy_at) < SPIN_BEFORE_PARK {
                futures_lite::future::yield_now().await;
                continue;
            }
            // Nothing happened: park. Re-enable the eventfd, then look once more, so that a
            // completion queued between the turn and here is not slept through.
            self.arm_park_timer();
            self.inner.ring.borrow_mut().completion().enable_eventfd();
            if self.turn() {
                self.inner.ring.borrow_mut().completion().disable_eventfd();
                futures_lite::future::yield_now().await;
                continue;
            }
            self.inner.stats.parks.fetch_add(1, Relaxed);
            std::future::poll_fn(|cx| {
                if self.inner.kicked.replace(false) || self.inner.closed.get() {
                    Poll::Ready(())
                } else {
                    self.inner.driver.set(Some(cx.waker().clone()));
                    Poll::Pending
                }
            })
            .await;
            self.inner.driver.set(None);
            self.inner.ring.borrow_mut().completion().disable_eventfd();
        }
        let _ = waiter.cancel().await;
        if let Ok(f) = Rc::try_unwrap(file) {
            // The eventfd is the engine's; glommio must not close it.
            std::mem::forget(f);
        }
    }

    /// Before parking: a timeout on the ring for the wheel's next deadline, so that a due
    /// timer wakes the shard through the same eventfd as any completion.
    fn arm_park_timer(&self) {
        let Some(next) = self.inner.wheel.borrow_mut().next_deadline() else {
            return;
        };
        if matches!(self.inner.park_timer.get(), Some(at) if at <= next) {
            return;
        }
        let d = next.saturating_duration_since(Instant::now());
        *self.inner.park_ts.borrow_mut() = types::Timespec::from(d);
        let ts: *const types::Timespec = &*self.inner.park_ts.borrow();
        // SAFETY: the timespec lives in the engine; the kernel copies it at submission.
        let sqe = opcode::Timeout::new(ts).build().user_data(TAG_PARK_TIMER);
        self.push(sqe);
        self.inner.park_timer.set(Some(next));
    }

    /// Stops the driver; in-flight operations end with the ring when the engine is dropped.
    pub fn close(&self) {
        self.inner.closed.set(true);
        self.kick();
        // Submit what is queued (the last closes), so peers see them now.
        let queued = self.inner.ring.borrow_mut().submission().len() as u32;
        let _ = self.enter(queued, ENTER_GETEVENTS);
        self.reap();
    }

    pub(crate) fn take_queue(&self) -> std::collections::VecDeque<relay::Filled> {
        self.inner
            .relay_queues
            .borrow_mut()
            .pop()
            .unwrap_or_default()
    }

    pub(crate) fn give_queue(&self, mut q: std::collections::VecDeque<relay::Filled>) {
        q.clear();
        let mut qs = self.inner.relay_queues.borrow_mut();
        if qs.len() < 1024 {
            qs.push(q);
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: we own the eventfd.
        unsafe { libc::close(self.eventfd) };
    }
}

/// Awaits one operation: the slot, and the engine that owns it. Dropping it before the
/// completion orphans the operation (see [`Engine::abandon`]).
pub(crate) struct Op {
    engine: Engine,
    idx: Option<u32>,
}

impl Op {
    pub(crate) fn new(engine: &Engine, idx: u32) -> Op {
        Op {
            engine: engine.clone(),
            idx: Some(idx),
        }
    }
}

impl Future for Op {
    type Output = (i32, u32, Hold);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let idx = self.idx.expect("op polled after completion");
        match self.engine.poll_op(idx, cx) {
            Poll::Ready(r) => {
                self.idx = None;
                Poll::Ready(r)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if let Some(idx) = self.idx {
            self.engine.abandon(idx);
        }
    }
}

/// A negated errno from a completion as an `io::Error`.
pub(crate) fn cqe_error(res: i32) -> io::Error {
    io::Error::from_raw_os_error(-res)
}
