//! A socket with the read buffer its message heads are parsed from.
//!
//! Heads (and chunk size lines, and trailers) are parsed in place from `buf[start..end]`;
//! whatever follows a head is the start of its body, or the next pipelined request, and
//! stays here until the body code or the next parse consumes it.
//!
//! The buffer is borrowed from the shard's [`HeadBuffers`] and given back whenever the peer
//! waits for bytes with nothing buffered: a keep-alive client between requests, or a backend
//! that takes seconds to answer, then holds no buffer at all. That is what lets one core keep
//! 10,000 slow requests in flight in a few tens of MiB.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

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
    pub stream: TcpStream,
    /// Empty (no allocation) while nothing is buffered and the peer is waiting.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The buffer never grows past this: a head larger than the limit is refused, not buffered.
    max: usize,
    pool: HeadBuffers,
}

impl Peer {
    pub fn new(stream: TcpStream, max: usize, pool: HeadBuffers) -> Peer {
        Peer {
            stream,
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
    /// bytes are buffered and none are ready, waits without holding a buffer.
    pub async fn fill(&mut self) -> io::Result<usize> {
        self.make_room()?;
        let ready = future::poll_once(self.stream.read(&mut self.buf[self.end..])).await;
        match ready {
            Some(n) => {
                let n = n?;
                self.end += n;
                Ok(n)
            }
            None if self.start == self.end => {
                // Nothing buffered and nothing ready: give the buffer back and wait with a
                // one-byte read (a plain read honours the stream's read timeout), then take a
                // buffer again for the byte and whatever else is ready.
                self.release();
                let mut first = [0u8; 1];
                if self.stream.read(&mut first).await? == 0 {
                    return Ok(0);
                }
                self.make_room()?;
                self.buf[0] = first[0];
                self.end = 1;
                if let Some(more) = future::poll_once(self.stream.read(&mut self.buf[1..])).await {
                    self.end += more?;
                }
                Ok(self.end)
            }
            None => {
                // Part of a head is buffered: keep the buffer and wait on it.
                let n = self.stream.read(&mut self.buf[self.end..]).await?;
                self.end += n;
                Ok(n)
            }
        }
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

    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.release();
    }
}
