//! A socket with the read buffer its message heads are parsed from.
//!
//! Heads (and chunk size lines, and trailers) are parsed in place from `buf[start..end]`;
//! whatever follows a head is the start of its body, or the next pipelined request, and
//! stays here until the body code or the next parse consumes it.
//!
//! The buffer is borrowed from the shard's [`HeadBuffers`] and given back whenever the peer
//! waits for bytes with nothing buffered: a keep-alive client between requests, or a backend
//! that takes seconds to answer, then holds no buffer at all (the engine's receive picks a
//! kernel-provided buffer only when bytes arrive, see `shards::engine::conn`). That is what
//! lets one core keep 10,000 slow requests in flight in a few MiB.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Instant;

use shards::Conn;

/// The size of a pooled head buffer. Almost every request and response head fits in it.
pub const HEAD_BUFFER: usize = 4 * 1024;

/// Idle head buffers a shard keeps for reuse; beyond this, released buffers are freed, so a
/// burst of connections does not pin its peak memory forever.
const HEAD_BUFFERS_KEPT: usize = 1024;

/// The shard's free list of head buffers (shard-local).
#[derive(Clone, Default)]
pub struct HeadBuffers(Rc<RefCell<Vec<Vec<u8>>>>);

impl HeadBuffers {
    fn take(&self) -> Vec<u8> {
        self.0
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| vec![0; HEAD_BUFFER])
    }

    fn give(&self, buf: Vec<u8>) {
        // Buffers that grew for a large head are freed rather than kept at their size.
        let mut free = self.0.borrow_mut();
        if buf.len() == HEAD_BUFFER && free.len() < HEAD_BUFFERS_KEPT {
            free.push(buf);
        }
    }
}

pub struct Peer {
    pub conn: Conn,
    /// Empty (no allocation) while nothing is buffered and the peer is waiting.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The buffer never grows past this: a head larger than the limit is refused, not buffered.
    max: usize,
    pool: HeadBuffers,
}

impl Peer {
    pub fn new(conn: Conn, max: usize, pool: HeadBuffers) -> Peer {
        Peer {
            conn,
            buf: Vec::new(),
            start: 0,
            end: 0,
            max,
            pool,
        }
    }

    /// Bytes read but not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The unconsumed bytes, for in-place normalisation before parsing.
    pub fn buffered_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// True when the buffer holds `max` unconsumed bytes and so cannot take more.
    pub fn is_full(&self) -> bool {
        self.end - self.start >= self.max
    }

    /// Reads more bytes after the buffered ones. Returns 0 at EOF. Makes room first by moving
    /// the unconsumed bytes to the front, then by growing the buffer up to `max`. While no
    /// bytes are buffered, waits without holding a buffer. Honours the connection's read
    /// timeout (`TimedOut`).
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.release();
        }
        if self.conn.wait_data().await? == 0 {
            return Ok(0);
        }
        self.make_room()?;
        let n = self.conn.take_into(&mut self.buf[self.end..]);
        self.end += n;
        Ok(n)
    }

    /// [`fill`](Self::fill) with an absolute deadline: `Ok(None)` once it passes. The wait
    /// stays armed in the engine, so nothing is lost when the deadline wins.
    pub async fn fill_until(&mut self, deadline: Instant) -> io::Result<Option<usize>> {
        let sleep = self.conn.engine().sleep_until(deadline);
        futures_lite::future::or(async { self.fill().await.map(Some) }, async {
            sleep.await;
            Ok(None)
        })
        .await
    }

    fn make_room(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            self.buf = self.pool.take();
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                if self.buf.len() >= self.max {
                    return Err(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        "head buffer limit reached",
                    ));
                }
                let grown = (self.buf.len() * 2).min(self.max);
                self.buf.resize(grown, 0);
            }
        }
        Ok(())
    }

    /// Gives the buffer back to the shard when nothing is buffered: for a connection about to
    /// wait a long time without reading (a client whose request is with a slow backend, a
    /// backend connection going idle in the pool).
    pub fn release_if_empty(&mut self) {
        if self.start == self.end {
            self.release();
        }
    }

    fn release(&mut self) {
        if !self.buf.is_empty() {
            self.pool.give(std::mem::take(&mut self.buf));
        }
    }

    /// Sends all of `out` (the kernel owns the bytes meanwhile; the vector comes back).
    pub async fn send(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        send(&mut self.conn, out).await
    }
}

/// Sends all of `out` on `conn` and puts the vector back in place, so its capacity is reused:
/// no allocation per message.
pub async fn send(conn: &mut Conn, out: &mut Vec<u8>) -> io::Result<()> {
    let (r, back) = conn.send(std::mem::take(out)).await;
    *out = back;
    r
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.release();
    }
}
