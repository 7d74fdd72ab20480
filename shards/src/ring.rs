//! A shard's buffer ring: fixed relay memory, allocated once, optionally registered with a
//! private io_uring (the *relay ring*) for `READ_FIXED` / `WRITE_FIXED`.
//!
//! * [`BufferRing::new`] maps `count` buffers of `size` bytes once. They are lent as [`Buf`]s
//!   and come back when a `Buf` is dropped; when none is free, [`BufferRing::acquire`] waits
//!   (first come, first served) and never allocates.
//! * [`BufferRing::with_uring`] additionally builds the relay ring and registers every buffer
//!   as a fixed buffer. A `Buf` can then start one operation at a time on its own memory
//!   ([`Buf::start_read`], [`Buf::start_write`]) and poll for its result ([`Buf::poll_result`]).
//! * The completion table has one slot per buffer (a buffer has at most one operation in
//!   the kernel), owned by the ring, not by the transfer: `Held`, `InFlight(waker)`,
//!   `Done(res)` or `Orphaned`. A `Buf` dropped while its operation is in flight becomes
//!   `Orphaned` and an `ASYNC_CANCEL` is submitted for it; the buffer goes back to the free
//!   list only when its CQE arrives, because until then the kernel may still write into it.
//! * Starting an operation only queues its SQE; the first wait on any result
//!   ([`Buf::poll_result`]) flushes ([`BufferRing::flush`]): one `io_uring_enter` for
//!   everything queued, then the completion queue is reaped at once (operations that complete
//!   inline, such as a read with data already queued, never wait). The rest are reaped by
//!   [`BufferRing::drive`], one task per shard that awaits an eventfd registered with
//!   `IORING_REGISTER_EVENTFD` through glommio's own ring, so no thread ever polls.
//!
//! Optional per-operation timeouts are `IORING_OP_LINK_TIMEOUT`s linked to the operation: an
//! operation that waits longer completes with `-ECANCELED`, which [`Buf::poll_result`] reports
//! as `-ETIME`. The relay does not use them (one timer per transfer is cheaper).
//!
//! Gauges ([`RingGauges`]) are written live by the ring (relaxed atomics, shard-local writer).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::os::unix::io::{FromRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use io_uring::{opcode, squeue, types, IoUring};

/// The most buffers one ring can register (`IORING_MAX_REG_BUFFERS`).
pub const MAX_RING_BUFFERS: usize = 1 << 14;

/// user_data of SQEs whose completions are ignored (link timeouts, cancels, polls).
const TAG_IGNORE: u64 = u64::MAX;

/// Live gauges of one shard's buffer ring, read by the metrics thread.
#[derive(Default, Debug)]
pub struct RingGauges {
    /// Buffers on the free list now.
    pub free: AtomicU64,
    /// Buffers in the ring.
    pub total: AtomicU64,
    /// Most buffers ever held at once by a single transfer (reported by the relay).
    pub transfer_max: AtomicU64,
    /// Most buffers ever out of the free list at once.
    pub out_max: AtomicU64,
    /// Operations orphaned by a dropped transfer (their buffer came back on the CQE).
    pub orphaned: AtomicU64,
}

fn set(g: &AtomicU64, v: u64) {
    g.store(v, Ordering::Relaxed);
}

fn raise(g: &AtomicU64, v: u64) {
    if v > g.load(Ordering::Relaxed) {
        g.store(v, Ordering::Relaxed);
    }
}

/// The buffers' memory: one anonymous private mapping.
struct Memory {
    ptr: *mut u8,
    len: usize,
}

impl Memory {
    fn map(len: usize) -> io::Result<Memory> {
        // SAFETY: anonymous private mapping, checked for failure.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Memory {
            ptr: ptr as *mut u8,
            len,
        })
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `map` mapped. Registered pages stay pinned by the
        // kernel until the ring is gone, so an operation still in flight at teardown never
        // writes into memory reused by someone else.
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len);
        }
    }
}

#[derive(Debug)]
enum Slot {
    Free,
    /// Lent out, no operation in the kernel.
    Held,
    /// An operation is in the kernel; the waker of the task awaiting it.
    InFlight(Option<Waker>),
    /// The operation completed with this result; not yet collected.
    Done(i32),
    /// The `Buf` was dropped while its operation was in flight: free on the CQE.
    Orphaned,
}

#[derive(Clone, Copy, Debug)]
enum OpKind {
    Read,
    Write,
}

/// The last operation a buffer started, kept to resubmit it after `-EAGAIN`.
#[derive(Clone, Copy, Debug)]
struct OpSpec {
    kind: OpKind,
    fd: RawFd,
    off: u32,
    len: u32,
    timeout: Option<Duration>,
}

struct Table {
    slots: Vec<Slot>,
    free: Vec<u16>,
    /// Tasks waiting for a free buffer, first come first served.
    waiters: VecDeque<(u64, Waker)>,
    next_ticket: u64,
    /// Timespecs of link timeouts, one per buffer: stable addresses until the SQE is consumed.
    timespecs: Box<[types::Timespec]>,
    specs: Vec<Option<OpSpec>>,
}

struct Uring {
    ring: RefCell<IoUring>,
    /// The eventfd registered with the relay ring; handed to the driver task once.
    eventfd: Cell<Option<RawFd>>,
    /// SQEs pushed but not yet submitted: the next [`BufferRing::flush`] carries them.
    queued: Cell<bool>,
}

struct Inner {
    // Field order matters: the ring is dropped (and its fixed buffers unregistered) before
    // the memory is unmapped.
    uring: Option<Uring>,
    table: RefCell<Table>,
    memory: Memory,
    count: usize,
    size: usize,
    gauges: Arc<RingGauges>,
}

/// A shard's buffer ring. Shard-local (not `Send`); cheap to clone.
#[derive(Clone)]
pub struct BufferRing {
    inner: Rc<Inner>,
}

/// One buffer on loan. It returns to the ring when dropped — at once if no operation is in
/// flight on it, else when that operation's CQE arrives.
pub struct Buf {
    ring: BufferRing,
    idx: u16,
}

impl BufferRing {
    /// Maps `count` buffers of `size` bytes, without io_uring.
    pub fn new(count: usize, size: usize, gauges: Arc<RingGauges>) -> io::Result<BufferRing> {
        if count == 0 || count > MAX_RING_BUFFERS || size == 0 || size > u32::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer ring: bad count or size",
            ));
        }
        let len = count
            .checked_mul(size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "buffer ring too large"))?;
        let memory = Memory::map(len)?;
        Ok(BufferRing::assemble(memory, None, count, size, gauges))
    }

    /// Maps the buffers and registers them as fixed buffers on a new relay ring. Fails if
    /// io_uring, one of the operations used, or the registration is not available.
    pub fn with_uring(
        count: usize,
        size: usize,
        gauges: Arc<RingGauges>,
    ) -> io::Result<BufferRing> {
        let plain = BufferRing::new(count, size, gauges.clone())?;
        let inner = Rc::try_unwrap(plain.inner).ok().expect("fresh ring");
        let memory = inner.memory;
        let entries = (count * 4).next_power_of_two().clamp(64, 32768) as u32;
        let ring = build_ring(entries)?;
        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        for (code, name) in [
            (opcode::ReadFixed::CODE, "READ_FIXED"),
            (opcode::WriteFixed::CODE, "WRITE_FIXED"),
            (opcode::LinkTimeout::CODE, "LINK_TIMEOUT"),
            (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
            (opcode::PollAdd::CODE, "POLL_ADD"),
        ] {
            if !probe.is_supported(code) {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("io_uring op {name} is not supported by this kernel"),
                ));
            }
        }
        let iovecs: Vec<libc::iovec> = (0..count)
            .map(|i| libc::iovec {
                // SAFETY: inside the mapping.
                iov_base: unsafe { memory.ptr.add(i * size) } as *mut libc::c_void,
                iov_len: size,
            })
            .collect();
        // SAFETY: the iovecs point into `memory`, which outlives the ring (field order).
        unsafe { ring.submitter().register_buffers(&iovecs) }.map_err(|e| {
            let hint = if e.raw_os_error() == Some(libc::ENOMEM) {
                " (RLIMIT_MEMLOCK too low?)"
            } else {
                ""
            };
            io::Error::new(e.kind(), format!("registering relay buffers: {e}{hint}"))
        })?;
        // SAFETY: plain eventfd creation.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        if let Err(e) = ring.submitter().register_eventfd(efd) {
            // SAFETY: we own efd.
            unsafe { libc::close(efd) };
            return Err(e);
        }
        let uring = Uring {
            ring: RefCell::new(ring),
            eventfd: Cell::new(Some(efd)),
            queued: Cell::new(false),
        };
        Ok(BufferRing::assemble(
            memory,
            Some(uring),
            count,
            size,
            gauges,
        ))
    }

    fn assemble(
        memory: Memory,
        uring: Option<Uring>,
        count: usize,
        size: usize,
        gauges: Arc<RingGauges>,
    ) -> BufferRing {
        set(&gauges.total, count as u64);
        set(&gauges.free, count as u64);
        let table = Table {
            slots: (0..count).map(|_| Slot::Free).collect(),
            free: (0..count as u16).rev().collect(),
            waiters: VecDeque::new(),
            next_ticket: 0,
            timespecs: (0..count).map(|_| types::Timespec::new()).collect(),
            specs: vec![None; count],
        };
        BufferRing {
            inner: Rc::new(Inner {
                uring,
                table: RefCell::new(table),
                memory,
                count,
                size,
                gauges,
            }),
        }
    }

    /// Whether buffers are registered with a relay ring (fixed-buffer operations available).
    pub fn has_uring(&self) -> bool {
        self.inner.uring.is_some()
    }

    pub fn buffer_size(&self) -> usize {
        self.inner.size
    }

    pub fn total(&self) -> usize {
        self.inner.count
    }

    pub fn free(&self) -> usize {
        self.inner.table.borrow().free.len()
    }

    pub fn gauges(&self) -> &Arc<RingGauges> {
        &self.inner.gauges
    }

    /// Records that one transfer holds `n` buffers (for the per-transfer peak gauge).
    pub fn note_transfer_held(&self, n: usize) {
        raise(&self.inner.gauges.transfer_max, n as u64);
    }

    /// Takes a free buffer if one is free and nobody is waiting for one (waiters first).
    pub fn try_acquire(&self) -> Option<Buf> {
        let mut t = self.inner.table.borrow_mut();
        if !t.waiters.is_empty() {
            return None;
        }
        self.take(&mut t)
    }

    fn take(&self, t: &mut Table) -> Option<Buf> {
        let idx = t.free.pop()?;
        t.slots[idx as usize] = Slot::Held;
        let free = t.free.len();
        set(&self.inner.gauges.free, free as u64);
        raise(&self.inner.gauges.out_max, (self.inner.count - free) as u64);
        Some(Buf {
            ring: self.clone(),
            idx,
        })
    }

    /// Waits (in arrival order) until a buffer is free and takes it. Never allocates.
    pub async fn acquire(&self) -> Buf {
        if let Some(b) = self.try_acquire() {
            return b;
        }
        let mut wait = Acquire {
            ring: self,
            ticket: None,
        };
        std::future::poll_fn(|cx| wait.poll(cx)).await
    }

    /// Returns buffer `idx` to the free list and wakes the first waiter.
    fn release(&self, idx: u16) {
        let waker = {
            let mut t = self.inner.table.borrow_mut();
            t.slots[idx as usize] = Slot::Free;
            t.specs[idx as usize] = None;
            t.free.push(idx);
            set(&self.inner.gauges.free, t.free.len() as u64);
            t.waiters.front().map(|(_, w)| w.clone())
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Reaps every CQE in the relay ring's completion queue.
    pub fn reap(&self) {
        let Some(u) = &self.inner.uring else { return };
        let mut wake: Vec<Waker> = Vec::new();
        let mut orphans: Vec<u16> = Vec::new();
        {
            let mut ring = u.ring.borrow_mut();
            let mut t = self.inner.table.borrow_mut();
            for cqe in ring.completion() {
                let tag = cqe.user_data();
                if tag == TAG_IGNORE {
                    continue;
                }
                let idx = tag as usize;
                let Some(slot) = t.slots.get_mut(idx) else {
                    continue;
                };
                match std::mem::replace(slot, Slot::Done(cqe.result())) {
                    Slot::InFlight(w) => wake.extend(w),
                    Slot::Orphaned => {
                        *slot = Slot::Held;
                        orphans.push(idx as u16);
                    }
                    other => {
                        // Not ours to change: a CQE for a slot without an operation.
                        log::error!("relay ring: unexpected CQE for buffer {idx} in {other:?}");
                        *slot = other;
                    }
                }
            }
        }
        for idx in orphans {
            self.release(idx);
        }
        for w in wake {
            w.wake();
        }
    }

    /// The completion driver: awaits the relay ring's eventfd through glommio's ring and reaps.
    /// Spawn once per shard; it runs until the executor ends. Returns at once without a ring.
    pub async fn drive(self) {
        let Some(efd) = self.inner.uring.as_ref().and_then(|u| u.eventfd.take()) else {
            return;
        };
        // SAFETY: we own efd; the BufferedFile closes it when the driver ends.
        let file = unsafe { glommio::io::BufferedFile::from_raw_fd(efd) };
        loop {
            if let Err(e) = self.flush() {
                log::warn!("relay ring: submit failed: {e}");
            }
            match file.read_at(0, 8).await {
                Ok(_) => {}
                Err(e) => {
                    log::warn!("relay ring: eventfd read failed: {e}");
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }

    /// Queues SQEs without entering the kernel; the next [`BufferRing::flush`] (every wait
    /// on a result flushes first) submits everything queued in one `io_uring_enter`. On a full
    /// submission queue, submits what is queued first.
    fn push(&self, sqes: &[squeue::Entry]) -> io::Result<()> {
        let u = self.inner.uring.as_ref().expect("relay ring present");
        let mut ring = u.ring.borrow_mut();
        // SAFETY (for every push): the buffers and timespecs the SQEs point to live in
        // `Inner` at stable addresses until their CQEs are reaped.
        if unsafe { ring.submission().push_multiple(sqes) }.is_err() {
            enter(&ring)?;
            unsafe { ring.submission().push_multiple(sqes) }
                .map_err(|_| io::Error::other("relay ring submission queue full"))?;
        }
        u.queued.set(true);
        Ok(())
    }

    /// Submits every queued SQE (one `io_uring_enter`, none if nothing is queued and no
    /// deferred completion work is pending) and reaps the completion queue.
    pub fn flush(&self) -> io::Result<()> {
        let Some(u) = &self.inner.uring else {
            return Ok(());
        };
        let res = {
            let mut ring = u.ring.borrow_mut();
            if u.queued.get() || ring.submission().taskrun() || ring.submission().cq_overflow() {
                let r = enter(&ring);
                if ring.submission().is_empty() {
                    u.queued.set(false);
                }
                r
            } else {
                Ok(())
            }
        };
        self.reap();
        res
    }
}

/// Builds the relay ring. No setup flags: `SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG` works
/// with the eventfd wake-up here (kernel 6.18: the eventfd fires when deferred work is queued,
/// and the next flush runs it), but measured no better (docs/relay.md), and plain task work
/// needs no enter to post completions.
fn build_ring(entries: u32) -> io::Result<IoUring> {
    IoUring::builder().build(entries)
}

/// One `io_uring_enter` submitting what is queued (and running deferred completion work);
/// retries `EINTR`. `EBUSY`/`EAGAIN` (completion queue full, no memory) leave the SQEs queued
/// for the next flush, after the caller reaps.
fn enter(ring: &IoUring) -> io::Result<()> {
    loop {
        match ring.submit() {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    || e.raw_os_error() == Some(libc::EAGAIN) =>
            {
                return Ok(())
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waiting for a free buffer; leaves the queue when dropped (passing a wake-up on).
struct Acquire<'a> {
    ring: &'a BufferRing,
    ticket: Option<u64>,
}

impl Acquire<'_> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Buf> {
        let ring = self.ring;
        let mut t = ring.inner.table.borrow_mut();
        let first = match self.ticket {
            None => t.waiters.is_empty(),
            Some(me) => t.waiters.front().map(|(k, _)| *k) == Some(me),
        };
        if first && !t.free.is_empty() {
            if self.ticket.take().is_some() {
                t.waiters.pop_front();
            }
            let buf = ring.take(&mut t).expect("free buffer");
            // Pass the turn on if more buffers are free.
            let next = (!t.free.is_empty())
                .then(|| t.waiters.front().map(|(_, w)| w.clone()))
                .flatten();
            drop(t);
            if let Some(w) = next {
                w.wake();
            }
            return Poll::Ready(buf);
        }
        match self.ticket {
            Some(me) => {
                if let Some(e) = t.waiters.iter_mut().find(|(k, _)| *k == me) {
                    e.1 = cx.waker().clone();
                }
            }
            None => {
                let me = t.next_ticket;
                t.next_ticket += 1;
                t.waiters.push_back((me, cx.waker().clone()));
                self.ticket = Some(me);
            }
        }
        Poll::Pending
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        let Some(me) = self.ticket else { return };
        let next = {
            let mut t = self.ring.inner.table.borrow_mut();
            t.waiters.retain(|(k, _)| *k != me);
            (!t.free.is_empty())
                .then(|| t.waiters.front().map(|(_, w)| w.clone()))
                .flatten()
        };
        if let Some(w) = next {
            w.wake();
        }
    }
}

impl Buf {
    pub fn index(&self) -> usize {
        self.idx as usize
    }

    pub fn len(&self) -> usize {
        self.ring.inner.size
    }

    pub fn is_empty(&self) -> bool {
        self.ring.inner.size == 0
    }

    fn ptr(&self) -> *mut u8 {
        // SAFETY: inside the mapping.
        unsafe {
            self.ring
                .inner
                .memory
                .ptr
                .add(self.idx as usize * self.ring.inner.size)
        }
    }

    fn assert_idle(&self) {
        let t = self.ring.inner.table.borrow();
        assert!(
            matches!(t.slots[self.idx as usize], Slot::Held),
            "relay buffer {} used while an operation is in flight",
            self.idx
        );
    }

    /// The buffer's bytes. Panics while an operation is in flight on it.
    pub fn as_slice(&self) -> &[u8] {
        self.assert_idle();
        // SAFETY: this Buf is the only owner of the range and the kernel is not using it.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len()) }
    }

    /// The buffer's bytes, writable. Panics while an operation is in flight on it.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.assert_idle();
        // SAFETY: as above, and `&mut self` makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(), self.len()) }
    }

    /// Whether an operation is in the kernel (or completed and not yet collected).
    pub fn busy(&self) -> bool {
        !matches!(
            self.ring.inner.table.borrow().slots[self.idx as usize],
            Slot::Held
        )
    }

    /// Starts `READ_FIXED` of at most `len` bytes from `fd` into the start of the buffer.
    pub fn start_read(
        &mut self,
        fd: RawFd,
        len: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.start(OpSpec {
            kind: OpKind::Read,
            fd,
            off: 0,
            len: len.min(self.len()) as u32,
            timeout,
        })
    }

    /// Starts `WRITE_FIXED` of the buffer's bytes `off..off + len` to `fd`.
    pub fn start_write(
        &mut self,
        fd: RawFd,
        off: usize,
        len: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        assert!(off + len <= self.len());
        self.start(OpSpec {
            kind: OpKind::Write,
            fd,
            off: off as u32,
            len: len as u32,
            timeout,
        })
    }

    fn start(&mut self, spec: OpSpec) -> io::Result<()> {
        self.assert_idle();
        self.submit_spec(spec, false)
    }

    fn submit_spec(&mut self, spec: OpSpec, poll_first: bool) -> io::Result<()> {
        let idx = self.idx as usize;
        let ptr = unsafe { self.ptr().add(spec.off as usize) };
        let mut t = self.ring.inner.table.borrow_mut();
        t.slots[idx] = Slot::InFlight(None);
        t.specs[idx] = Some(spec);
        let mut sqes: [Option<squeue::Entry>; 3] = [None, None, None];
        let fd = types::Fd(spec.fd);
        let link = if spec.timeout.is_some() {
            squeue::Flags::IO_LINK
        } else {
            squeue::Flags::empty()
        };
        if poll_first {
            let mask = match spec.kind {
                OpKind::Read => libc::POLLIN,
                OpKind::Write => libc::POLLOUT,
            } as u32;
            sqes[0] = Some(
                opcode::PollAdd::new(fd, mask)
                    .build()
                    .flags(squeue::Flags::IO_LINK)
                    .user_data(TAG_IGNORE),
            );
        }
        let op = match spec.kind {
            OpKind::Read => opcode::ReadFixed::new(fd, ptr, spec.len, self.idx).build(),
            OpKind::Write => opcode::WriteFixed::new(fd, ptr, spec.len, self.idx).build(),
        };
        sqes[1] = Some(op.flags(link).user_data(idx as u64));
        if let Some(d) = spec.timeout {
            t.timespecs[idx] = types::Timespec::from(d);
            let ts: *const types::Timespec = &t.timespecs[idx];
            // SAFETY: the timespec lives in the table until the buffer's next operation.
            sqes[2] = Some(
                opcode::LinkTimeout::new(unsafe { &*ts })
                    .build()
                    .user_data(TAG_IGNORE),
            );
        }
        drop(t);
        let n = sqes.iter().flatten().count();
        let mut list = [
            opcode::Nop::new().build(),
            opcode::Nop::new().build(),
            opcode::Nop::new().build(),
        ];
        for (d, e) in list.iter_mut().zip(sqes.into_iter().flatten()) {
            *d = e;
        }
        if let Err(e) = self.ring.push(&list[..n]) {
            // Nothing was queued (the queue stayed full even after a submit): idle again.
            self.ring.inner.table.borrow_mut().slots[idx] = Slot::Held;
            return Err(e);
        }
        Ok(())
    }

    /// Polls the operation started on this buffer. Returns its raw result (bytes, or a negated
    /// errno; a link timeout that fired gives `-ETIME`), and the buffer is idle again.
    pub fn poll_result(&mut self, cx: &mut Context<'_>) -> Poll<i32> {
        let idx = self.idx as usize;
        let res = {
            let mut t = self.ring.inner.table.borrow_mut();
            match &mut t.slots[idx] {
                Slot::InFlight(w) => {
                    match w {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => *w = Some(cx.waker().clone()),
                    }
                    drop(t);
                    // Submit what is queued (this op, and whatever else this task started)
                    // in one enter, and look at the completion queue before sleeping: ops on
                    // sockets with data or room complete inline.
                    if let Err(e) = self.ring.flush() {
                        // The op may still be queued: the slot stays in flight, so dropping
                        // this Buf orphans it until its CQE (it never reuses the memory early).
                        return Poll::Ready(-e.raw_os_error().unwrap_or(libc::EIO));
                    }
                    let mut t = self.ring.inner.table.borrow_mut();
                    match t.slots[idx] {
                        Slot::Done(res) => {
                            t.slots[idx] = Slot::Held;
                            res
                        }
                        _ => return Poll::Pending,
                    }
                }
                Slot::Done(res) => {
                    let res = *res;
                    t.slots[idx] = Slot::Held;
                    res
                }
                other => panic!("relay buffer {idx}: poll_result without an operation ({other:?})"),
            }
        };
        if res == -libc::EAGAIN {
            // Not seen on kernels that poll internally, but allowed: wait for readiness with
            // a linked POLL_ADD, then run the same operation again.
            let spec = self.ring.inner.table.borrow().specs[idx];
            if let Some(spec) = spec {
                if let Err(e) = self.submit_spec(spec, true) {
                    return Poll::Ready(-e.raw_os_error().unwrap_or(libc::EIO));
                }
                return self.poll_result(cx);
            }
        }
        let timed = self.ring.inner.table.borrow().specs[idx].is_some_and(|s| s.timeout.is_some());
        if res == -libc::ECANCELED && timed {
            // Only our link timeout cancels an operation whose Buf is alive.
            return Poll::Ready(-libc::ETIME);
        }
        Poll::Ready(res)
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let idx = self.idx as usize;
        let in_flight = {
            let mut t = self.ring.inner.table.borrow_mut();
            match t.slots[idx] {
                Slot::InFlight(_) => {
                    t.slots[idx] = Slot::Orphaned;
                    true
                }
                _ => false,
            }
        };
        if !in_flight {
            self.ring.release(self.idx);
            return;
        }
        set(
            &self.ring.inner.gauges.orphaned,
            self.ring.inner.gauges.orphaned.load(Ordering::Relaxed) + 1,
        );
        // The kernel may still write into the buffer: cancel, and let the CQE free it.
        let cancel = opcode::AsyncCancel::new(idx as u64)
            .build()
            .user_data(TAG_IGNORE);
        if let Err(e) = self.ring.push(&[cancel]).and_then(|()| self.ring.flush()) {
            log::warn!("relay ring: cancel failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use glommio::net::{TcpListener, TcpStream};
    use std::os::unix::io::AsRawFd;

    fn gauges() -> Arc<RingGauges> {
        Arc::new(RingGauges::default())
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let c = glommio::spawn_local(async move { TcpStream::connect(addr).await.unwrap() });
        let s = l.accept().await.unwrap();
        (c.await, s)
    }

    async fn result(buf: &mut Buf) -> i32 {
        std::future::poll_fn(|cx| buf.poll_result(cx)).await
    }

    #[test]
    fn acquire_waits_in_order_and_dropped_waiters_pass_the_turn() {
        glommio::LocalExecutor::default().run(async {
            let ring = BufferRing::new(1, 1024, gauges()).unwrap();
            let a = ring.acquire().await;
            assert!(ring.try_acquire().is_none());
            let r2 = ring.clone();
            let dropped = glommio::spawn_local(async move { r2.acquire().await.index() });
            let r3 = ring.clone();
            let second = glommio::spawn_local(async move { r3.acquire().await.index() });
            glommio::yield_if_needed().await;
            glommio::timer::sleep(Duration::from_millis(5)).await;
            // The first waiter goes away: its turn must pass to the second.
            dropped.cancel().await;
            drop(a);
            assert_eq!(second.await, 0);
            assert_eq!(ring.free(), 1);
            assert_eq!(ring.gauges().free.load(Ordering::Relaxed), 1);
        });
    }

    #[test]
    fn read_and_write_fixed_move_bytes_and_sockets_are_blocking() {
        glommio::LocalExecutor::default().run(async {
            let ring = BufferRing::with_uring(4, 4096, gauges()).unwrap();
            glommio::spawn_local(ring.clone().drive()).detach();
            let (mut a, b) = pair().await;
            let (c, mut d) = pair().await;
            // glommio's sockets are blocking fds (it passes MSG_DONTWAIT per call).
            // SAFETY: fcntl on a valid fd.
            let fl = unsafe { libc::fcntl(b.as_raw_fd(), libc::F_GETFL) };
            assert_eq!(fl & libc::O_NONBLOCK, 0);
            let mut buf = ring.acquire().await;
            buf.start_read(b.as_raw_fd(), 5, None).unwrap();
            assert!(buf.busy());
            a.write_all(b"hello world").await.unwrap();
            assert_eq!(result(&mut buf).await, 5);
            assert_eq!(&buf.as_slice()[..5], b"hello");
            buf.start_write(c.as_raw_fd(), 1, 4, None).unwrap();
            assert_eq!(result(&mut buf).await, 4);
            let mut got = [0u8; 4];
            d.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"ello");
        });
    }

    #[test]
    fn link_timeout_reports_etime_and_buffer_returns() {
        glommio::LocalExecutor::default().run(async {
            let ring = BufferRing::with_uring(2, 4096, gauges()).unwrap();
            glommio::spawn_local(ring.clone().drive()).detach();
            let (_a, b) = pair().await;
            let mut buf = ring.acquire().await;
            let t = std::time::Instant::now();
            buf.start_read(b.as_raw_fd(), 100, Some(Duration::from_millis(50)))
                .unwrap();
            assert_eq!(result(&mut buf).await, -libc::ETIME);
            assert!(t.elapsed() >= Duration::from_millis(45));
            drop(buf);
            assert_eq!(ring.free(), 2);
        });
    }

    #[test]
    fn dropping_a_buf_in_flight_frees_it_only_on_its_cqe() {
        glommio::LocalExecutor::default().run(async {
            let ring = BufferRing::with_uring(2, 4096, gauges()).unwrap();
            glommio::spawn_local(ring.clone().drive()).detach();
            let (_a, b) = pair().await;
            let mut buf = ring.acquire().await;
            buf.start_read(b.as_raw_fd(), 100, None).unwrap();
            drop(buf);
            // Orphaned until the read's CQE (-ECANCELED) comes back; the cancel usually
            // completes inline, so this may already be the case.
            for _ in 0..100 {
                if ring.free() == 2 {
                    break;
                }
                glommio::timer::sleep(Duration::from_millis(2)).await;
            }
            assert_eq!(ring.free(), 2);
            assert_eq!(ring.gauges().orphaned.load(Ordering::Relaxed), 1);
        });
    }
}
