//! The relay seam: the one place where body bytes move from one socket to another.
//!
//! The HTTP code ([`crate::proxy::body`]) decides *how many* bytes a body has and handles
//! the framing bytes itself (chunk size lines, trailers, bytes already read into its head
//! buffer). Everything else goes through [`Relay::copy`], so that the copy engine can be
//! swapped without touching any HTTP code.
//!
//! Two engines sit behind it, over the same fixed per-shard memory (a [`BufferRing`] of
//! `--buffer-ring-size` buffers of `--buffer-size` bytes, from the `shards` crate):
//! * [`ring`]: registered buffers on the shard's private io_uring (the *relay ring*),
//!   `READ_FIXED` / `WRITE_FIXED`, reads running ahead of writes with up to
//!   `--max-buffers-per-transfer` buffers per transfer. See `docs/relay.md`.
//! * [`copy`]: one buffer, `recv` then `send` through glommio. Used when the relay ring is
//!   not available (`--relay copy`, or `auto` on a kernel without it), and for bodies of at
//!   most `--relay-copy-below` bytes, where it measured cheaper.

mod copy;
mod ring;

use std::io;
use std::rc::Rc;
use std::sync::Arc;

use glommio::net::TcpStream;
use shards::{BufferRing, RingGauges};

use crate::config::{Config, RelayMode};

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

/// The engine a shard ended up with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Ring,
    Copy,
}

/// A shard's body mover. Cheap to clone (the ring is shard-local and reference-counted).
#[derive(Clone)]
pub struct Relay {
    inner: Rc<Inner>,
}

struct Inner {
    ring: BufferRing,
    engine: Engine,
    max_buffers: usize,
    copy_below: u64,
}

impl Relay {
    /// Builds the shard's buffer ring for the configured mode. `Ring` mode fails if the relay
    /// ring cannot be built; `Auto` falls back to the copy engine and returns the reason, for
    /// one warning.
    pub fn new(
        config: &Config,
        gauges: Arc<RingGauges>,
    ) -> Result<(Relay, Option<String>), String> {
        let (r, s) = (config.buffer_ring_size, config.buffer_size);
        let plain = |gauges| {
            BufferRing::new(r, s, gauges).map_err(|e| format!("relay buffers ({r} x {s}): {e}"))
        };
        let (ring, engine, warning) = match config.relay {
            RelayMode::Copy => (plain(gauges)?, Engine::Copy, None),
            RelayMode::Ring => match BufferRing::with_uring(r, s, gauges) {
                Ok(ring) => (ring, Engine::Ring, None),
                Err(e) => return Err(format!("--relay ring: relay ring unavailable: {e}")),
            },
            RelayMode::Auto => match BufferRing::with_uring(r, s, gauges.clone()) {
                Ok(ring) => (ring, Engine::Ring, None),
                Err(e) => (
                    plain(gauges)?,
                    Engine::Copy,
                    Some(format!(
                        "relay ring unavailable ({e}); relaying bodies with the copy engine"
                    )),
                ),
            },
        };
        let relay = Relay {
            inner: Rc::new(Inner {
                ring,
                engine,
                max_buffers: config.max_buffers_per_transfer,
                copy_below: config.relay_copy_below,
            }),
        };
        Ok((relay, warning))
    }

    /// The shard's buffer ring, for metrics and its driver task.
    pub fn pool(&self) -> &BufferRing {
        &self.inner.ring
    }

    pub fn engine(&self) -> Engine {
        self.inner.engine
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
        let i = &self.inner;
        let small = matches!(len, Some(n) if n <= i.copy_below);
        if i.engine == Engine::Ring && !small {
            ring::copy(&i.ring, i.max_buffers, src, dst, len).await
        } else {
            copy::copy(&i.ring, src, dst, len).await
        }
    }
}

/// Run once in the main thread before the shards start: builds (and drops) one relay ring
/// with the configured buffers, so that `--relay auto` settles on one engine for every shard
/// with a single warning, and `--relay ring` fails with one error line instead of a shard.
/// Returns the warning to log, if `auto` fell back to copy.
pub fn preflight(config: &mut Config) -> Result<Option<String>, String> {
    if config.relay == RelayMode::Copy {
        return Ok(None);
    }
    let gauges = Arc::new(RingGauges::default());
    match BufferRing::with_uring(config.buffer_ring_size, config.buffer_size, gauges) {
        Ok(_) => {
            config.relay = RelayMode::Ring;
            Ok(None)
        }
        Err(e) if config.relay == RelayMode::Ring => {
            Err(format!("--relay ring: relay ring unavailable: {e}"))
        }
        Err(e) => {
            config.relay = RelayMode::Copy;
            Ok(Some(format!(
                "relay ring unavailable ({e}); relaying bodies with the copy engine"
            )))
        }
    }
}
