//! A socket with the read buffer its message heads are parsed from.
//!
//! Heads (and chunk size lines, and trailers) are parsed in place from `buf[start..end]`;
//! whatever follows a head is the start of its body, or the next pipelined request, and
//! stays here until the body code or the next parse consumes it.

use std::io;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

/// The first allocation for a head buffer. Almost every request and response head fits in
/// it, and it stays small so that 10,000 idle or waiting connections cost little memory.
pub const INITIAL_HEAD_BUFFER: usize = 4 * 1024;

pub struct Peer {
    pub stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The buffer never grows past this: a head larger than the limit is refused, not buffered.
    max: usize,
}

impl Peer {
    pub fn new(stream: TcpStream, max: usize) -> Peer {
        Peer {
            stream,
            buf: vec![0; INITIAL_HEAD_BUFFER.min(max)],
            start: 0,
            end: 0,
            max,
        }
    }

    /// Bytes read but not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
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
    /// the unconsumed bytes to the front, then by growing the buffer up to `max`.
    pub async fn fill(&mut self) -> io::Result<usize> {
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
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }
}
