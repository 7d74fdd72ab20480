//! The registered-buffer engine: `READ_FIXED` from the source into ring buffers, `WRITE_FIXED`
//! of each filled buffer to the destination from the same memory, with reads running ahead of
//! writes.
//!
//! Ordering: at most one read in flight on the source and one write in flight on the
//! destination; reads run ahead while the transfer holds fewer than K buffers. The kernel
//! gives no order between two unlinked operations on one stream socket, and a linked chain
//! is serialized by the kernel anyway and is broken by every short write (normal on a socket
//! whose send buffer is full), which would cancel the rest of the chain. One write per socket,
//! resubmitting the remainder of a short write, keeps the order with no such case, and the
//! K buffers give the decoupling (the reader never waits for the writer while it has
//! buffers).
//!
//! Cancellation: every buffer is a [`Buf`], owned by this future. Dropping the future (client
//! timeout, connection aborted at drain) drops the `Buf`s; one with an operation in flight is
//! orphaned in the ring's table and comes back on its CQE (see `shards::ring`).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::unix::io::AsRawFd;
use std::task::{Context, Poll};
use std::time::Instant;

use glommio::timer::Timer;

use glommio::net::TcpStream;
use shards::{Buf, BufferRing};

use super::RelayError;

/// A filled buffer waiting to be written: `buf[off..len]` is still to go.
struct Filled {
    buf: Buf,
    off: usize,
    len: usize,
}

pub async fn copy(
    ring: &BufferRing,
    max_buffers: usize,
    src: &mut TcpStream,
    dst: &mut TcpStream,
    len: Option<u64>,
) -> Result<u64, RelayError> {
    if len == Some(0) {
        return Ok(0);
    }
    let sfd = src.as_raw_fd();
    let dfd = dst.as_raw_fd();
    let rto = src.read_timeout();
    let wto = dst.write_timeout();
    // Timeouts: one timer per transfer (see `Deadline`), not a LINK_TIMEOUT per op (which
    // cost an SQE, a CQE and an hrtimer per op: measured in docs/relay.md).
    let (op_rto, op_wto) = (None, None);
    let mut deadline = Deadline::default();
    let mut read_since = Instant::now();
    let mut write_since = read_since;
    let size = ring.buffer_size();
    let k = max_buffers.max(1);

    // Bytes still to read (None: until EOF).
    let mut remaining = len;
    let mut read_done = false;
    let mut moved: u64 = 0;
    let mut reading: Option<Buf> = None;
    let mut writing: Option<Filled> = None;
    let mut filled: VecDeque<Filled> = VecDeque::with_capacity(k);

    loop {
        let held = reading.is_some() as usize + writing.is_some() as usize + filled.len();
        // Start a read if the transfer may hold another buffer.
        if !read_done && reading.is_none() && held < k {
            let next = if held == 0 {
                Some(ring.acquire().await)
            } else {
                ring.try_acquire()
            };
            if let Some(mut buf) = next {
                let want = match remaining {
                    Some(n) => n.min(size as u64) as usize,
                    None => size,
                };
                buf.start_read(sfd, want, op_rto)
                    .map_err(RelayError::Read)?;
                if rto.is_some() {
                    read_since = Instant::now();
                }
                reading = Some(buf);
                ring.note_transfer_held(held + 1);
            }
        }
        // Start the next write if none is in flight.
        if writing.is_none() {
            if let Some(mut f) = filled.pop_front() {
                f.buf
                    .start_write(dfd, f.off, f.len - f.off, op_wto)
                    .map_err(RelayError::Write)?;
                if wto.is_some() {
                    write_since = Instant::now();
                }
                writing = Some(f);
            }
        }
        if reading.is_none() && writing.is_none() {
            debug_assert!(read_done && filled.is_empty());
            return Ok(moved);
        }

        // Wait for the read or the write (whichever completes first).
        let (r, w) = std::future::poll_fn(|cx| {
            let r = match reading.as_mut() {
                Some(b) => match b.poll_result(cx) {
                    Poll::Ready(res) => Some(res),
                    Poll::Pending => None,
                },
                None => None,
            };
            let w = match writing.as_mut() {
                Some(f) => match f.buf.poll_result(cx) {
                    Poll::Ready(res) => Some(res),
                    Poll::Pending => None,
                },
                None => None,
            };
            if r.is_some() || w.is_some() {
                return Poll::Ready(Ok((r, w)));
            }
            // Neither is done: the transfer's one timer covers the op waiting longest.
            let due = [
                reading
                    .is_some()
                    .then_some(())
                    .and(rto)
                    .map(|d| (read_since + d, true)),
                writing
                    .is_some()
                    .then_some(())
                    .and(wto)
                    .map(|d| (write_since + d, false)),
            ]
            .into_iter()
            .flatten()
            .min_by_key(|(at, _)| *at);
            match deadline.poll(cx, due) {
                Poll::Ready(true) => Poll::Ready(Err(RelayError::Read(timed_out("receive")))),
                Poll::Ready(false) => Poll::Ready(Err(RelayError::Write(timed_out("send")))),
                Poll::Pending => Poll::Pending,
            }
        })
        .await?;

        if let Some(res) = w {
            let mut f = writing.take().expect("write in flight");
            if res < 0 {
                return Err(RelayError::Write(os_error(res, "send")));
            }
            if res == 0 {
                return Err(RelayError::Write(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "relay write returned 0",
                )));
            }
            f.off += res as usize;
            moved += res as u64;
            if f.off < f.len {
                // Short write: the rest goes first, before any later buffer.
                filled.push_front(f);
            }
            // else: `f.buf` drops here and returns to the ring.
        }
        if let Some(res) = r {
            let buf = reading.take().expect("read in flight");
            if res < 0 {
                return Err(RelayError::Read(os_error(res, "receive")));
            }
            if res == 0 {
                drop(buf);
                match remaining {
                    None => read_done = true,
                    Some(_) => return Err(RelayError::UnexpectedEof),
                }
            } else {
                let n = res as usize;
                if let Some(rem) = remaining.as_mut() {
                    *rem -= n as u64;
                    if *rem == 0 {
                        read_done = true;
                    }
                }
                filled.push_back(Filled {
                    buf,
                    off: 0,
                    len: n,
                });
            }
        }
    }
}

/// The transfer's one timer: armed only when the transfer has to wait, for the earliest
/// deadline of the ops in flight (start + the stream's timeout). Ops that complete move the
/// deadlines forward without touching the timer; when it fires early it is re-armed for the
/// current deadline, so it fires about once per timeout period however many ops run.
#[derive(Default)]
struct Deadline {
    timer: Option<(Timer, Instant)>,
}

impl Deadline {
    /// `due`: the earliest deadline and whether it is the read's. Ready(is_read) once passed.
    fn poll(&mut self, cx: &mut Context<'_>, due: Option<(Instant, bool)>) -> Poll<bool> {
        let Some((at, is_read)) = due else {
            return Poll::Pending;
        };
        loop {
            let now = Instant::now();
            if now >= at {
                self.timer = None;
                return Poll::Ready(is_read);
            }
            match &mut self.timer {
                Some((_, armed)) if *armed <= at => {}
                slot => *slot = Some((Timer::new(at - now), at)),
            }
            let (timer, _) = self.timer.as_mut().expect("armed");
            match std::pin::Pin::new(timer).poll(cx) {
                Poll::Pending => return Poll::Pending,
                // Fired for an older deadline: re-arm for `at`.
                Poll::Ready(_) => self.timer = None,
            }
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("relay {what} timed out"))
}

/// A negated errno from a CQE as an io::Error; a fired link timeout (`-ETIME`) is `TimedOut`,
/// like glommio's own stream timeouts.
fn os_error(res: i32, what: &str) -> io::Error {
    if res == -libc::ETIME {
        io::Error::new(io::ErrorKind::TimedOut, format!("relay {what} timed out"))
    } else {
        io::Error::from_raw_os_error(-res)
    }
}
