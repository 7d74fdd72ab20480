//! The relay seam: the one place where body bytes move from one socket to another.
//!
//! The HTTP code ([`crate::proxy::body`]) decides *how many* bytes a body has and handles
//! the framing bytes itself (chunk size lines, trailers, bytes already read into its head
//! buffer). Everything else goes through [`Relay::copy`], so that the copy engine can be
//! swapped (a plain copy loop today; the registered io_uring buffer ring later) without
//! touching any HTTP code.

mod buffers;
mod copy;

use std::io;

use glommio::net::TcpStream;

pub use buffers::BufferPool;

/// Which end of a copy failed: the HTTP layer maps this to client or backend.
#[derive(Debug)]
pub enum RelayError {
    /// Reading from the source failed (including a read timeout).
    Read(io::Error),
    /// Writing to the destination failed (including a write timeout).
    Write(io::Error),
    /// The source closed before the announced length arrived.
    UnexpectedEof,
}

/// A shard's body mover. Cheap to clone (the pool is shard-local and reference-counted).
#[derive(Clone)]
pub struct Relay {
    pool: BufferPool,
}

impl Relay {
    pub fn new(pool: BufferPool) -> Relay {
        Relay { pool }
    }

    /// The shard's buffer pool, for metrics.
    pub fn pool(&self) -> &BufferPool {
        &self.pool
    }

    /// Moves exactly `len` bytes from `src` to `dst`, or everything until `src` reaches EOF
    /// when `len` is `None`. Never reads more than `len` bytes from `src`, so bytes that belong
    /// to the next message stay in the socket. Returns the number of bytes moved.
    pub async fn copy(
        &self,
        src: &mut TcpStream,
        dst: &mut TcpStream,
        len: Option<u64>,
    ) -> Result<u64, RelayError> {
        copy::copy(&self.pool, src, dst, len).await
    }
}
