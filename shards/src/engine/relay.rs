//! Moving body bytes from one connection to another through the relay buffers.
//!
//! A receive with buffer select from the relay group picks a registered buffer only when its
//! data arrives; the bytes go out with `WRITE_FIXED` from that same memory (no copy in user
//! space), and the buffer returns to the kernel's ring when the write completes.
//!
//! Ordering: one receive in flight on the source and one write in flight on the destination;
//! receives run ahead while the transfer holds fewer than K buffers. Two unlinked operations
//! on one stream socket have no order, and a linked chain breaks on every short write (normal
//! on a full send buffer), so writes go one at a time, the remainder of a short one first.
//! The K buffers decouple the two sides: a slow write never stalls the receive while the
//! transfer has buffers, and one transfer never holds more than K.
//!
//! Never past `len`: each receive asks for `min(buffer size, remaining)`, so bytes of the
//! next message stay in the socket.
//!
//! Cancellation: dropping the future abandons its operations (see `mod.rs`); a buffer in a
//! write in flight returns to the ring with that write's completion.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use io_uring::{cqueue, opcode, squeue, types};

use super::bufs::Group;
use super::{cqe_error, Conn, Engine, Hold, Kind};

/// Which end of a transfer failed.
#[derive(Debug)]
pub enum RelayError {
    /// Receiving from the source failed (including its read timeout).
    Read(io::Error),
    /// Writing to the destination failed (including its write timeout).
    Write(io::Error),
    /// The source closed before `len` bytes arrived.
    UnexpectedEof,
}

/// A filled relay buffer: `off..len` still to be written.
#[derive(Clone, Copy)]
pub(crate) struct Filled {
    bid: u16,
    off: u32,
    len: u32,
}

struct Writing {
    idx: u32,
    f: Filled,
    since: Instant,
}

/// The transfer's own state; its buffers go back to the ring if it is dropped.
struct Transfer<'a> {
    engine: &'a Engine,
    reading: Option<(u32, Instant)>,
    writing: Option<Writing>,
    filled: VecDeque<Filled>,
    /// The transfer's place in the queue for a relay buffer, while it waits.
    ticket: Option<u64>,
}

impl Drop for Transfer<'_> {
    fn drop(&mut self) {
        self.engine.inner().bufs.leave(&mut self.ticket);
        if let Some((idx, _)) = self.reading.take() {
            self.engine.abandon(idx);
        }
        if let Some(w) = self.writing.take() {
            // The write's completion recycles its buffer (Kind::WriteRelay).
            self.engine.abandon(w.idx);
        }
        for f in self.filled.drain(..) {
            self.engine.inner().bufs.recycle(Group::Relay, f.bid);
        }
        let q = std::mem::take(&mut self.filled);
        self.engine.give_queue(q);
    }
}

/// Moves exactly `len` bytes from `src` to `dst`, or everything until `src` closes when `len`
/// is `None`, holding at most `k` relay buffers. Returns the bytes moved. The caller first
/// takes what `src` already received ([`Conn::drain_ready`]): the relay starts at the socket.
pub async fn relay(
    src: &mut Conn,
    dst: &mut Conn,
    len: Option<u64>,
    k: usize,
) -> Result<u64, RelayError> {
    let engine = src.engine().clone();
    debug_assert_eq!(
        src.ready_len(),
        0,
        "relay: take the source's ready bytes first"
    );
    if len == Some(0) {
        return Ok(0);
    }
    let mut moved: u64 = 0;
    let mut remaining = len;
    let (sfd, dfd) = (src.fd(), dst.fd());
    let (rto, wto) = (src.read_timeout(), dst.write_timeout());
    let size = engine.relay_buffer_size();
    let k = k.max(1);
    let mut t = Transfer {
        engine: &engine,
        reading: None,
        writing: None,
        filled: engine.take_queue(),
        ticket: None,
    };
    let mut read_done = false;
    let mut sleep: Option<super::Sleep> = None;

    loop {
        let held = t.reading.is_some() as usize + t.writing.is_some() as usize + t.filled.len();
        // A receive is armed only with a reserved buffer: holding none, the transfer waits its
        // turn for one; holding some, it takes another only if one is free and nobody waits.
        let reserved = !read_done
            && t.reading.is_none()
            && held < k
            && std::future::poll_fn(|cx| {
                engine
                    .inner()
                    .bufs
                    .poll_reserve(held == 0, &mut t.ticket, cx)
            })
            .await;
        if reserved {
            let want = match remaining {
                Some(n) => n.min(size as u64) as u32,
                None => size as u32,
            };
            let sqe = opcode::Recv::new(types::Fixed(sfd), std::ptr::null_mut(), want)
                .buf_group(Group::Relay as u16)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT);
            let idx = engine.start(sqe, Kind::Recv(Group::Relay), Hold::None);
            t.reading = Some((idx, engine.now()));
        }
        if t.writing.is_none() {
            if let Some(f) = t.filled.pop_front() {
                // SAFETY: the transfer owns buffer `bid`; off..len is inside it.
                let ptr = unsafe {
                    engine
                        .inner()
                        .bufs
                        .addr(Group::Relay, f.bid)
                        .add(f.off as usize)
                };
                let sqe =
                    opcode::WriteFixed::new(types::Fixed(dfd), ptr, f.len - f.off, f.bid).build();
                let idx = engine.start(sqe, Kind::WriteRelay(f.bid), Hold::None);
                t.writing = Some(Writing {
                    idx,
                    f,
                    since: engine.now(),
                });
            }
        }
        if read_done && t.reading.is_none() && t.writing.is_none() && t.filled.is_empty() {
            return Ok(moved);
        }

        // Whichever completes first; or the earliest deadline of the operations in flight.
        let due = [
            t.reading.and_then(|(_, s)| rto.map(|d| (s + d, true))),
            t.writing
                .as_ref()
                .and_then(|w| wto.map(|d| (w.since + d, false))),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(at, _)| *at);
        if sleep.as_ref().map(|s| s.deadline()) != due.map(|(at, _)| at) {
            sleep = due.map(|(at, _)| engine.sleep_until(at));
        }
        enum Ev {
            Read(i32, u32),
            Write(i32),
            Timeout(bool),
        }
        let ev = std::future::poll_fn(|cx| {
            if let Some((idx, _)) = t.reading {
                if let Poll::Ready((res, flags, _)) = engine.poll_op(idx, cx) {
                    t.reading = None;
                    return Poll::Ready(Ev::Read(res, flags));
                }
            }
            if let Some(w) = &t.writing {
                if let Poll::Ready((res, _, _)) = engine.poll_op(w.idx, cx) {
                    return Poll::Ready(Ev::Write(res));
                }
            }
            if let (Some(s), Some((_, is_read))) = (sleep.as_mut(), due) {
                if Pin::new(s).poll(cx).is_ready() {
                    return Poll::Ready(Ev::Timeout(is_read));
                }
            }
            Poll::Pending
        })
        .await;

        match ev {
            Ev::Timeout(true) => return Err(RelayError::Read(timed_out("receive"))),
            Ev::Timeout(false) => return Err(RelayError::Write(timed_out("send"))),
            Ev::Write(res) => {
                let mut w = t.writing.take().expect("write in flight");
                if res <= 0 {
                    // The buffer is ours again (the completion arrived): back to the ring.
                    engine.inner().bufs.recycle(Group::Relay, w.f.bid);
                    return Err(RelayError::Write(if res == 0 {
                        io::Error::new(io::ErrorKind::WriteZero, "relay write returned 0")
                    } else {
                        cqe_error(res)
                    }));
                }
                w.f.off += res as u32;
                moved += res as u64;
                if w.f.off < w.f.len {
                    t.filled.push_front(w.f);
                } else {
                    engine.inner().bufs.recycle(Group::Relay, w.f.bid);
                }
            }
            Ev::Read(res, flags) => {
                let bid = cqueue::buffer_select(flags);
                match bid {
                    Some(_) => engine.inner().bufs.picked(Group::Relay),
                    None => engine.inner().bufs.unreserve(),
                }
                if res == -libc::ENOBUFS {
                    // Reservations keep receives within the free buffers, so this is not
                    // expected; it is retried with a new reservation.
                    engine
                        .stats()
                        .no_buffers
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
                if res < 0 {
                    return Err(RelayError::Read(cqe_error(res)));
                }
                if res == 0 {
                    match remaining {
                        None => read_done = true,
                        Some(_) => return Err(RelayError::UnexpectedEof),
                    }
                    continue;
                }
                let bid = bid.expect("relay receive with data has a buffer");
                t.filled.push_back(Filled {
                    bid,
                    off: 0,
                    len: res as u32,
                });
                let held = t.writing.is_some() as usize + t.filled.len();
                engine.note_transfer_held(held);
                if let Some(r) = remaining.as_mut() {
                    *r -= res as u64;
                    if *r == 0 {
                        read_done = true;
                    }
                }
            }
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("relay {what} timed out"))
}
