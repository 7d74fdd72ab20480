//! The relay seam: the one place where body bytes move from one socket to another.
//!
//! The HTTP code ([`crate::proxy::body`]) decides *how many* bytes a body has and handles
//! the framing bytes itself (chunk size lines, trailers, bytes already read into its head
//! buffer). Everything else goes through [`Relay::copy`], which hands the bytes to the shard
//! engine's relay (`shards::engine::relay`): receives into the shard's registered buffers
//! (`--buffer-ring-size` × `--buffer-size`, fixed at start) and `WRITE_FIXED` from the same
//! memory, reads running ahead of writes with at most `--max-buffers-per-transfer` buffers per
//! transfer. See `docs/relay.md`.

use shards::Conn;

pub use shards::RelayError;

/// A shard's body mover: the per-transfer buffer cap. Copy (it is two words).
#[derive(Clone, Copy)]
pub struct Relay {
    max_buffers: usize,
}

impl Relay {
    pub fn new(max_buffers: usize) -> Relay {
        Relay { max_buffers }
    }

    /// Moves exactly `len` bytes from `src` to `dst`, or everything until `src` reaches EOF
    /// when `len` is `None`. Never reads more than `len` bytes from `src`, so bytes that belong
    /// to the next message stay in the socket. Returns the number of bytes moved. `src` must
    /// have no received bytes pending (`Conn::drain_ready`).
    /// (A plain function returning the engine's future: an `async fn` wrapper would add its
    /// own copy of the arguments to every connection task's state.)
    pub fn copy<'a>(
        &self,
        src: &'a mut Conn,
        dst: &'a mut Conn,
        len: Option<u64>,
    ) -> impl std::future::Future<Output = Result<u64, RelayError>> + 'a {
        shards::relay(src, dst, len, self.max_buffers)
    }
}
