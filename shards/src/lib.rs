//! corelay's thread-per-core substrate, with no HTTP in it.
//!
//! One pinned glommio `LocalExecutor` per selected CPU (a *shard*), each with
//! its own SO_REUSEPORT listener on the same address, running a connection
//! handler the embedding application provides; the shard's own io_uring network engine
//! ([`engine`]: every socket operation, buffers, timers); per-shard counters; and a
//! shutdown signal with draining. Shard state never crosses threads on the
//! request path: handlers are built on their shard and may hold `Rc` state,
//! and counters are per-shard atomics that only their shard writes.
//!
//! ```no_run
//! use shards::{select_cpus, Conn, Server, ServerConfig};
//!
//! let cpus = select_cpus(None, None).unwrap();
//! let config = ServerConfig::new("0.0.0.0:8080".parse().unwrap(), cpus);
//! let server = Server::start(config, |_ctx| {
//!     |conn: Conn, _peer| async move { drop(conn) }
//! })
//! .unwrap();
//! let stop = server.shutdown_handle();
//! // ... from a signal-handling thread: stop.trigger();
//! # stop.trigger();
//! server.join().unwrap();
//! ```

mod cpus;
pub mod engine;
mod event;
mod listener;
mod memlock;
mod server;
mod shard;
mod shutdown;
mod signal;
mod stats;

pub use cpus::{format_cpu_list, online_cpus, parse_cpu_list, select_cpus};
pub use engine::{
    probe, relay, tunnel, Conn, Engine, EngineConfig, EngineStats, RelayError, RingGauges, Sleep,
    TunnelEnd, TunnelReport, MAX_RING_BUFFERS,
};
pub use memlock::{raise_memlock_limit, raise_nofile_limit};
pub use server::{Server, ServerConfig, ShardContext, ShardInfo};
pub use shutdown::Shutdown;
pub use signal::ShutdownHandle;
pub use stats::{ShardStats, StatsSnapshot};
