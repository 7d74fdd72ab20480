//! corelay's thread-per-core substrate, with no HTTP in it.
//!
//! One pinned glommio `LocalExecutor` per selected CPU (a *shard*), each with
//! its own SO_REUSEPORT listener on the same address, running a connection
//! handler the embedding application provides; per-shard counters; and a
//! shutdown signal with draining. Shard state never crosses threads on the
//! request path: handlers are built on their shard and may hold `Rc` state,
//! and counters are per-shard atomics that only their shard writes.
//!
//! ```no_run
//! use shards::{select_cpus, Server, ServerConfig};
//!
//! let cpus = select_cpus(None, None).unwrap();
//! let config = ServerConfig::new("0.0.0.0:8080".parse().unwrap(), cpus);
//! let server = Server::start(config, |_ctx| {
//!     |stream: glommio::net::TcpStream, _peer| async move { drop(stream) }
//! })
//! .unwrap();
//! let stop = server.shutdown_handle();
//! // ... from a signal-handling thread: stop.trigger();
//! # stop.trigger();
//! server.join().unwrap();
//! ```

mod cpus;
mod event;
mod listener;
mod memlock;
mod ring;
mod server;
mod shard;
mod shutdown;
mod signal;
mod stats;

pub use cpus::{format_cpu_list, online_cpus, parse_cpu_list, select_cpus};
pub use memlock::raise_memlock_limit;
pub use ring::{Buf, BufferRing, RingGauges, MAX_RING_BUFFERS};
pub use server::{Server, ServerConfig, ShardContext, ShardInfo};
pub use shutdown::Shutdown;
pub use signal::ShutdownHandle;
pub use stats::{ShardStats, StatsSnapshot};
