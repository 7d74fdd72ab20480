//! Two-way byte pumping between two connections, until both have closed: the engine half of
//! an upgraded (WebSocket) connection. No HTTP here: the caller has already sent the 101 and
//! the bytes each side sent past it.
//!
//! Each direction waits on its source's armed receive from the head group, so an idle tunnel
//! holds no buffer at all: a buffer is picked only when bytes arrive, copied into the
//! direction's send vector and given back at once. (The relay buffers are not used: a relay
//! receive reserves its buffer before data arrives, and thousands of quiet tunnels would
//! hold the reservations that body transfers wait for.) A direction's send owns at most one
//! head buffer's worth of bytes, so a tunnel holds at most 2 × `HEAD_BUFFER_SIZE` of memory
//! besides its two connections, however fast one side writes and however slowly the other
//! reads: the slow reader's side stops being read.
//!
//! A half-close is passed on: when one side's stream ends, the other side's write half is
//! shut down after everything before it was sent, and the other direction goes on. The idle
//! timeout counts from the last byte moved in either direction, as HAProxy's
//! `timeout tunnel` does, so a server that only pushes keeps the tunnel open.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use super::bufs::HEAD_BUFFER_SIZE;
use super::conn::{send_on, shutdown_sqe, with_deadline};
use super::{Conn, Engine};

/// One end of a tunnel: `A` is the first connection passed to [`tunnel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    A,
    B,
}

/// How a tunnel ended.
#[derive(Debug)]
pub enum TunnelEnd {
    /// Both sides closed their sending half (each close was passed on).
    Closed,
    /// No byte moved either way for the idle timeout.
    Idle,
    /// Receiving from or sending to one end failed (a reset, a send timeout).
    Failed(End, io::Error),
}

/// What a tunnel moved, and how it ended.
#[derive(Debug)]
pub struct TunnelReport {
    /// Bytes received from A and sent to B.
    pub a_to_b: u64,
    /// Bytes received from B and sent to A.
    pub b_to_a: u64,
    pub end: TunnelEnd,
}

/// Moves bytes both ways between `a` and `b` until both have closed, one fails, or nothing
/// moves for `idle`. Bytes already received on either connection go first. Dropping the
/// future abandons the operations in flight (their memory stays with their slots).
pub async fn tunnel(a: &mut Conn, b: &mut Conn, idle: Duration) -> TunnelReport {
    let engine = a.engine().clone();
    let activity = Cell::new(engine.now());
    let moved = [Cell::new(0u64), Cell::new(0u64)];
    let to_b = Dest {
        fd: b.fd(),
        timeout: b.write_timeout(),
    };
    let to_a = Dest {
        fd: a.fd(),
        timeout: a.write_timeout(),
    };
    let mut ab = pin!(pump(&engine, a, to_b, idle, &activity, &moved[0]));
    let mut ba = pin!(pump(&engine, b, to_a, idle, &activity, &moved[1]));
    let mut done = [false, false];
    let end = std::future::poll_fn(|cx| {
        for (i, (from, to)) in [(End::A, End::B), (End::B, End::A)].into_iter().enumerate() {
            if done[i] {
                continue;
            }
            let r = if i == 0 {
                ab.as_mut().poll(cx)
            } else {
                ba.as_mut().poll(cx)
            };
            match r {
                Poll::Pending => {}
                Poll::Ready(Ok(())) => done[i] = true,
                Poll::Ready(Err(PumpError::Idle)) => return Poll::Ready(TunnelEnd::Idle),
                Poll::Ready(Err(PumpError::Read(e))) => {
                    return Poll::Ready(TunnelEnd::Failed(from, e))
                }
                Poll::Ready(Err(PumpError::Write(e))) => {
                    return Poll::Ready(TunnelEnd::Failed(to, e))
                }
            }
        }
        if done == [true, true] {
            Poll::Ready(TunnelEnd::Closed)
        } else {
            Poll::Pending
        }
    })
    .await;
    TunnelReport {
        a_to_b: moved[0].get(),
        b_to_a: moved[1].get(),
        end,
    }
}

/// Where a direction sends: the other connection's descriptor and write timeout (the
/// connection itself is borrowed by the other direction's receive).
#[derive(Clone, Copy)]
struct Dest {
    fd: u32,
    timeout: Option<Duration>,
}

enum PumpError {
    Read(io::Error),
    Write(io::Error),
    Idle,
}

/// One direction: `src`'s bytes to `dst` until `src` ends, then `dst`'s write half closes.
async fn pump(
    engine: &Engine,
    src: &mut Conn,
    dst: Dest,
    idle: Duration,
    activity: &Cell<std::time::Instant>,
    moved: &Cell<u64>,
) -> Result<(), PumpError> {
    let mut buf = Vec::with_capacity(HEAD_BUFFER_SIZE);
    loop {
        let n = loop {
            let data = std::future::poll_fn(|cx| match src.poll_data(cx) {
                Some(r) => Poll::Ready(r),
                None => Poll::Pending,
            });
            match with_deadline(engine, Some(activity.get() + idle), data).await {
                Some(r) => break r.map_err(PumpError::Read)?,
                // The other direction may have moved bytes meanwhile: wait again from then.
                None if activity.get() + idle > engine.now() => continue,
                None => return Err(PumpError::Idle),
            }
        };
        if n == 0 {
            engine.fire(shutdown_sqe(dst.fd));
            return Ok(());
        }
        buf.clear();
        src.drain_ready(&mut buf, usize::MAX);
        let (r, b) = send_on(engine, dst.fd, dst.timeout, buf).await;
        buf = b;
        r.map_err(PumpError::Write)?;
        moved.set(moved.get() + n as u64);
        activity.set(engine.now());
    }
}
