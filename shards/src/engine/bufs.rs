//! The engine's buffer memory: two provided-buffer rings (`IORING_REGISTER_PBUF_RING`).
//!
//! * [`Group::Head`]: small buffers that receive message heads. The kernel picks one only when
//!   a receive's data arrives; the connection copies the bytes into its head buffer and gives
//!   it back in the same task run, so a waiting connection holds no buffer at all.
//! * [`Group::Relay`]: the relay buffers (`--buffer-ring-size` × `--buffer-size`), also
//!   registered as fixed buffers with the same indices. A body receive picks one; the bytes
//!   then go out with `WRITE_FIXED` from that same memory, and the buffer returns to the ring
//!   when the write completes. Fixed memory, shared fairly: a transfer *reserves* a buffer
//!   before it arms a receive ([`Bufs::poll_reserve`]), so receives never outnumber free
//!   buffers (no `ENOBUFS`), a transfer holding none waits its turn first come first served,
//!   and one holding some takes another only when nobody waits. Nothing is ever allocated.
//!
//! A buffer is in exactly one place: the kernel's ring (free), a completed receive's owner, a
//! write in flight, or an orphaned operation's slot until its completion (see `mod.rs`).

use std::cell::{Cell, RefCell};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use io_uring::{types::BufRingEntry, IoUring};

/// Size of a head buffer. Most request and response heads fit in one receive; a larger head
/// takes several (the connection's own head buffer collects them). Every one of them may be
/// touched in a burst, so this times the count is resident memory: 2 KiB x 512 is 1 MiB.
pub const HEAD_BUFFER_SIZE: usize = 2048;

/// Live gauges of one shard's relay buffers, read by the metrics thread.
#[derive(Default, Debug)]
pub struct RingGauges {
    /// Relay buffers free now (in the kernel's provided ring).
    pub free: AtomicU64,
    /// Relay buffers in all.
    pub total: AtomicU64,
    /// Most buffers ever held at once by a single transfer (reported by the relay).
    pub transfer_max: AtomicU64,
    /// Most buffers ever out of the ring at once.
    pub out_max: AtomicU64,
    /// Operations orphaned by a dropped future (their memory came back on the completion).
    pub orphaned: AtomicU64,
}

fn raise(g: &AtomicU64, v: u64) {
    if v > g.load(Relaxed) {
        g.store(v, Relaxed);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Head = 0,
    Relay = 1,
}

/// One anonymous private mapping.
pub(crate) struct Memory {
    pub ptr: *mut u8,
    pub len: usize,
}

impl Memory {
    pub fn map(len: usize) -> io::Result<Memory> {
        // SAFETY: anonymous private mapping, checked for failure.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len.max(1),
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
            ptr: ptr.cast(),
            len: len.max(1),
        })
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `map` mapped; the ring that used it is gone (field order
        // in the engine).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

struct Pool {
    memory: Memory,
    entries: Memory,
    size: usize,
    count: usize,
    mask: u16,
    tail: Cell<u16>,
    free: Cell<usize>,
}

impl Pool {
    fn new(count: usize, size: usize) -> io::Result<Pool> {
        let memory = Memory::map(count * size)?;
        let n = count.next_power_of_two();
        let entries = Memory::map(n * std::mem::size_of::<BufRingEntry>())?;
        let pool = Pool {
            memory,
            entries,
            size,
            count,
            mask: (n - 1) as u16,
            tail: Cell::new(0),
            free: Cell::new(0),
        };
        for bid in 0..count as u16 {
            pool.put(bid);
        }
        Ok(pool)
    }

    fn addr(&self, bid: u16) -> *mut u8 {
        // SAFETY: bid < count, inside the mapping.
        unsafe { self.memory.ptr.add(bid as usize * self.size) }
    }

    /// Hands buffer `bid` back to the kernel.
    fn put(&self, bid: u16) {
        let tail = self.tail.get();
        let base = self.entries.ptr as *mut BufRingEntry;
        // SAFETY: the entry at `tail & mask` is not the kernel's (it only reads entries
        // between its head and our published tail), and the tail store below publishes it.
        unsafe {
            let e = &mut *base.add((tail & self.mask) as usize);
            e.set_addr(self.addr(bid) as u64);
            e.set_len(self.size as u32);
            e.set_bid(bid);
            let t = BufRingEntry::tail(base) as *const std::sync::atomic::AtomicU16;
            (*t).store(tail.wrapping_add(1), std::sync::atomic::Ordering::Release);
        }
        self.tail.set(tail.wrapping_add(1));
        self.free.set(self.free.get() + 1);
    }
}

pub(crate) struct Bufs {
    head: Pool,
    relay: Pool,
    gauges: Arc<RingGauges>,
    /// Relay buffers promised to receives in flight (each will pick one, or give it back).
    reserved: Cell<usize>,
    /// Transfers waiting to reserve a relay buffer, first come first served.
    waiters: RefCell<std::collections::VecDeque<(u64, Waker)>>,
    next_ticket: Cell<u64>,
    stats: Arc<super::EngineStats>,
}

impl Bufs {
    /// Maps both pools and registers them with `ring`: the relay memory as fixed buffers and
    /// both as provided-buffer rings.
    pub fn new(
        ring: &IoUring,
        head_count: usize,
        relay_count: usize,
        relay_size: usize,
        gauges: Arc<RingGauges>,
        stats: Arc<super::EngineStats>,
    ) -> io::Result<Bufs> {
        let head = Pool::new(head_count, HEAD_BUFFER_SIZE)?;
        let relay = Pool::new(relay_count, relay_size)?;
        let iovecs: Vec<libc::iovec> = (0..relay_count as u16)
            .map(|bid| libc::iovec {
                iov_base: relay.addr(bid).cast(),
                iov_len: relay_size,
            })
            .collect();
        let sub = ring.submitter();
        // SAFETY: the iovecs point into `relay.memory`, which outlives the ring (the engine
        // drops the ring first).
        unsafe { sub.register_buffers(&iovecs) }.map_err(|e| {
            let hint = if e.raw_os_error() == Some(libc::ENOMEM) {
                " (RLIMIT_MEMLOCK too low?)"
            } else {
                ""
            };
            io::Error::new(e.kind(), format!("registering relay buffers: {e}{hint}"))
        })?;
        for (pool, g) in [(&head, Group::Head), (&relay, Group::Relay)] {
            // SAFETY: the entries mapping outlives the ring, as above.
            unsafe {
                sub.register_buf_ring_with_flags(
                    pool.entries.ptr as u64,
                    (pool.mask as u32 + 1) as u16,
                    g as u16,
                    0,
                )
            }
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("io_uring provided-buffer ring (Linux 5.19+): {e}"),
                )
            })?;
        }
        gauges.total.store(relay_count as u64, Relaxed);
        gauges.free.store(relay_count as u64, Relaxed);
        Ok(Bufs {
            head,
            relay,
            gauges,
            reserved: Cell::new(0),
            waiters: RefCell::new(std::collections::VecDeque::new()),
            next_ticket: Cell::new(0),
            stats,
        })
    }

    fn pool(&self, g: Group) -> &Pool {
        match g {
            Group::Head => &self.head,
            Group::Relay => &self.relay,
        }
    }

    pub fn gauges(&self) -> &Arc<RingGauges> {
        &self.gauges
    }

    pub fn size(&self, g: Group) -> usize {
        self.pool(g).size
    }

    /// The bytes of buffer `bid`.
    ///
    /// # Safety
    /// The caller owns `bid` (a completed receive picked it) and `len` is at most its size.
    pub unsafe fn bytes(&self, g: Group, bid: u16, len: usize) -> &[u8] {
        std::slice::from_raw_parts(self.pool(g).addr(bid), len)
    }

    pub fn addr(&self, g: Group, bid: u16) -> *mut u8 {
        self.pool(g).addr(bid)
    }

    /// Relay buffers neither lent out nor promised to a receive in flight.
    pub fn available(&self) -> usize {
        self.relay.free.get() - self.reserved.get()
    }

    fn publish(&self) {
        let p = &self.relay;
        self.gauges.free.store(self.available() as u64, Relaxed);
        raise(&self.gauges.out_max, (p.count - self.available()) as u64);
    }

    /// A completed receive picked a buffer of group `g`: it is out of the ring now (for the
    /// relay group, the receive's reservation became that buffer).
    pub fn picked(&self, g: Group) {
        let p = self.pool(g);
        p.free.set(p.free.get() - 1);
        match g {
            Group::Head => {
                self.stats.head_buffers_out.fetch_add(1, Relaxed);
            }
            Group::Relay => self.reserved.set(self.reserved.get() - 1),
        }
    }

    /// Gives buffer `bid` of group `g` back to the kernel (and a waiting transfer its turn).
    pub fn recycle(&self, g: Group, bid: u16) {
        let p = self.pool(g);
        p.put(bid);
        match g {
            Group::Head => {
                self.stats.head_buffers_out.fetch_sub(1, Relaxed);
            }
            Group::Relay => self.freed(),
        }
    }

    /// A relay receive ended without picking a buffer (end of stream, error, cancelled).
    pub fn unreserve(&self) {
        self.reserved.set(self.reserved.get() - 1);
        self.freed();
    }

    fn freed(&self) {
        self.publish();
        if self.available() > 0 {
            if let Some((_, w)) = self.waiters.borrow().front() {
                w.wake_by_ref();
            }
        }
    }

    /// Reserves a relay buffer for a receive about to be armed. `wait`: the transfer holds
    /// none, so it queues (first come, first served) until one is available; otherwise it
    /// takes one only if one is available and nobody is waiting. `ticket` keeps the place in
    /// the queue across polls; [`Bufs::leave`] gives it up.
    pub fn poll_reserve(
        &self,
        wait: bool,
        ticket: &mut Option<u64>,
        cx: &mut Context<'_>,
    ) -> Poll<bool> {
        let mut q = self.waiters.borrow_mut();
        let first = match *ticket {
            None => q.is_empty(),
            Some(me) => q.front().map(|(k, _)| *k) == Some(me),
        };
        if first && self.available() > 0 {
            if ticket.take().is_some() {
                q.pop_front();
            }
            self.reserved.set(self.reserved.get() + 1);
            drop(q);
            self.publish();
            // Pass the turn on if more are available.
            self.freed();
            return Poll::Ready(true);
        }
        if !wait {
            return Poll::Ready(false);
        }
        match *ticket {
            Some(me) => {
                if let Some(e) = q.iter_mut().find(|(k, _)| *k == me) {
                    e.1 = cx.waker().clone();
                }
            }
            None => {
                let me = self.next_ticket.get();
                self.next_ticket.set(me + 1);
                q.push_back((me, cx.waker().clone()));
                *ticket = Some(me);
            }
        }
        Poll::Pending
    }

    /// Leaves the reservation queue (a transfer dropped while waiting), passing the turn on.
    pub fn leave(&self, ticket: &mut Option<u64>) {
        if let Some(me) = ticket.take() {
            self.waiters.borrow_mut().retain(|(k, _)| *k != me);
            self.freed();
        }
    }

    pub fn note_transfer_held(&self, n: usize) {
        raise(&self.gauges.transfer_max, n as u64);
    }
}
