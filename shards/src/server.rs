//! The server: starts one pinned shard per CPU, hands out stats and the
//! shutdown handle, and joins the shards.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    sync::{mpsc, Arc},
    thread::JoinHandle,
    time::Duration,
};

use crate::{
    engine::{Conn, Engine, EngineConfig, EngineStats, RingGauges},
    listener::bind_listeners,
    shard::{self, ShardSetup},
    signal::ShutdownHandle,
    stats::ShardStats,
    Shutdown,
};

/// How to run the shards.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address every shard listens on; port 0 picks one port for all.
    pub listen: SocketAddr,
    /// One shard per entry, pinned to that CPU (see [`select_cpus`](crate::select_cpus)).
    pub cpus: Vec<usize>,
    /// listen(2) backlog of each shard's socket.
    pub backlog: u32,
    /// How long a shard waits for open connections after shutdown begins.
    pub drain_timeout: Duration,
    /// Open connections per shard beyond which it stops accepting (0: no limit). New
    /// connections then wait in the kernel's backlog, and accepting resumes as connections
    /// close, so overload queues at the cheapest place instead of costing shard memory.
    pub max_connections: usize,
    /// Each shard's network engine: relay buffers, head buffers, descriptor table.
    pub engine: EngineConfig,
}

impl ServerConfig {
    /// A config with backlog 1024, a 5 s drain timeout and 64 relay buffers of 64 KiB.
    pub fn new(listen: SocketAddr, cpus: Vec<usize>) -> ServerConfig {
        ServerConfig {
            listen,
            cpus,
            backlog: 1024,
            drain_timeout: Duration::from_secs(5),
            max_connections: 0,
            engine: EngineConfig::new(64, 64 * 1024),
        }
    }
}

/// What each shard's handler factory receives, on the shard's own thread.
#[derive(Clone)]
pub struct ShardContext {
    /// Position of this shard, 0..number of shards.
    pub index: usize,
    /// CPU this shard's thread is pinned to.
    pub cpu: usize,
    pub stats: Arc<ShardStats>,
    pub shutdown: Shutdown,
    /// The address all shards listen on (with the resolved port).
    pub local_addr: SocketAddr,
    /// The shard's network engine: connect, relay, timers.
    pub engine: Engine,
}

/// A shard as seen from outside it, for printing and metrics.
#[derive(Debug, Clone)]
pub struct ShardInfo {
    pub index: usize,
    pub cpu: usize,
    pub stats: Arc<ShardStats>,
    /// The shard's relay buffer gauges and engine counters, written by the shard.
    pub gauges: Arc<RingGauges>,
    pub engine: Arc<EngineStats>,
}

/// Running shards. Dropping it without [`join`](Server::join) triggers
/// shutdown and waits for the shards, so that no thread outlives it.
pub struct Server {
    local_addr: SocketAddr,
    shards: Vec<ShardInfo>,
    handle: ShutdownHandle,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

impl Server {
    /// Binds every shard's listener (in the calling thread, so that port 0
    /// resolves once and every shard shares the resolved port, and bind errors
    /// surface before any thread starts), then starts one thread per CPU,
    /// pinned, each running a glommio LocalExecutor. On each shard:
    /// `let handler = make_handler(&ctx)` is called once on that shard's
    /// thread (so the handler can hold Rc shard-local state), then an accept
    /// loop spawns one local task per accepted connection running
    /// `handler(stream, peer_addr)`, counting connections_accepted/open (open
    /// is decremented when the task finishes, whatever way it finishes).
    ///
    /// Returns only after every shard is accepting, or with the first shard's
    /// error (executor creation, a panic in `make_handler`), having stopped
    /// the shards that did start.
    pub fn start<F, H, Fut>(config: ServerConfig, make_handler: F) -> io::Result<Server>
    where
        F: Fn(&ShardContext) -> H + Send + Sync + 'static,
        H: Fn(Conn, SocketAddr) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        crate::memlock::raise_nofile_limit();
        let n = config.cpus.len();
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no CPUs selected: ServerConfig::cpus is empty",
            ));
        }
        let (fds, local_addr) = bind_listeners(config.listen, n, config.backlog)?;
        let handle = ShutdownHandle::new(n)?;
        let make_handler = Arc::new(make_handler);
        let (ready_tx, ready_rx) = mpsc::channel();

        // Prepare every shard before spawning any, so the only failure left
        // after the first thread starts is thread spawn itself.
        let mut setups = Vec::with_capacity(n);
        let mut shards = Vec::with_capacity(n);
        for (index, (&cpu, listener)) in config.cpus.iter().zip(fds).enumerate() {
            let stats = Arc::new(ShardStats::default());
            let gauges = Arc::new(RingGauges::default());
            let engine_stats = Arc::new(EngineStats::default());
            shards.push(ShardInfo {
                index,
                cpu,
                stats: stats.clone(),
                gauges: gauges.clone(),
                engine: engine_stats.clone(),
            });
            setups.push(ShardSetup {
                index,
                cpu,
                listener,
                local_addr,
                stats,
                wake: handle.remote_wake(index),
                drain_timeout: config.drain_timeout,
                max_connections: config.max_connections,
                engine: config.engine.clone(),
                gauges,
                engine_stats,
                make_handler: make_handler.clone(),
                ready: ready_tx.clone(),
            });
        }
        drop(ready_tx);

        let mut server = Server {
            local_addr,
            shards,
            handle,
            threads: Vec::with_capacity(n),
        };
        for setup in setups {
            let spawned = std::thread::Builder::new()
                .name(format!("shard-{}", setup.index))
                .spawn(move || shard::run(setup));
            match spawned {
                Ok(thread) => server.threads.push(thread),
                Err(e) => {
                    server.stop_quietly();
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot spawn shard thread: {e}"),
                    ));
                }
            }
        }

        for _ in 0..n {
            let failure = match ready_rx.recv() {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                // Every sender is gone before all shards reported: a shard
                // thread died (panicked) before getting ready. join() has the
                // panic message.
                Err(mpsc::RecvError) => {
                    let handle = server.handle.clone();
                    handle.trigger();
                    return Err(server
                        .join()
                        .err()
                        .unwrap_or_else(|| io::Error::other("a shard exited during startup")));
                }
            };
            server.stop_quietly();
            return Err(failure);
        }
        Ok(server)
    }

    /// The address every shard listens on, with the resolved port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The shards, in index order.
    pub fn shards(&self) -> &[ShardInfo] {
        &self.shards
    }

    /// A cloneable, Send + Sync handle that triggers shutdown from any thread
    /// (signal handler thread, tests).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Waits for every shard thread to finish. Ok(()) when all drained; an
    /// error if a shard thread panicked or failed (the first one; the others
    /// are logged).
    pub fn join(mut self) -> io::Result<()> {
        let mut first = None;
        for (thread, shard) in std::mem::take(&mut self.threads)
            .into_iter()
            .zip(&self.shards)
        {
            let err = match thread.join() {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => io::Error::new(
                    e.kind(),
                    format!("shard {} (CPU {}): {e}", shard.index, shard.cpu),
                ),
                Err(panic) => io::Error::other(format!(
                    "shard {} (CPU {}) panicked: {}",
                    shard.index,
                    shard.cpu,
                    panic_message(&panic)
                )),
            };
            if first.is_none() {
                first = Some(err);
            } else {
                log::error!("{err}");
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Triggers shutdown and joins every started thread, ignoring results;
    /// used when start() fails and by Drop.
    fn stop_quietly(&mut self) {
        self.handle.trigger();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_quietly();
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}
