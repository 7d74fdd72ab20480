//! corelay: a thread-per-core HTTP/1.1 reverse proxy on glommio (io_uring).
//!
//! [`run`] starts the shards for a [`Config`]; the binary (`main.rs`) adds the command line,
//! start-up messages and signal handling around it, and tests can drive it the same way.

pub mod access_log;
pub mod auth;
pub mod config;
pub mod config_file;
pub mod http1;
pub mod metrics;
pub mod proxy;
pub mod proxy_protocol;
pub mod relay;
pub mod reload;
pub mod route;
pub mod suggest;

use std::sync::Arc;

pub use config::Config;

/// A running corelay: its shards, and the metrics each one publishes.
pub struct Running {
    pub server: shards::Server,
    pub metrics_addr: Option<std::net::SocketAddr>,
    access_log: Arc<access_log::Sink>,
    /// Publishes a reloaded configuration to the shards.
    pub reloader: Arc<reload::Reloader>,
}

impl Running {
    /// The access log, for the signal thread (SIGUSR1 reopens it).
    pub fn access_log(&self) -> Arc<access_log::Sink> {
        self.access_log.clone()
    }

    /// Waits for the shards to finish (after a shutdown), then for the access log's last
    /// lines to be written.
    pub fn join(self) -> std::io::Result<()> {
        let r = self.server.join();
        self.access_log.finish();
        r
    }
}

/// The shard engine's sizing for a configuration: the relay buffers it names.
pub fn engine_config(config: &Config) -> shards::EngineConfig {
    shards::EngineConfig::new(config.buffer_ring_size, config.buffer_size)
}

/// Binds every listener and starts one shard per configured CPU.
pub fn run(config: Config) -> std::io::Result<Running> {
    let config = Arc::new(config);
    let layout = Arc::new(metrics::Layout::new(&config));
    let proxy_stats: Vec<Arc<metrics::StatsSlot>> = config
        .cpus
        .iter()
        .map(|_| metrics::StatsSlot::new(Arc::new(metrics::ProxyStats::new(layout.clone()))))
        .collect();
    // Bound before the shards start, so a taken port fails start-up instead of a thread.
    let metrics_listener =
        match config.metrics_listen {
            Some(addr) => Some(std::net::TcpListener::bind(addr).map_err(|e| {
                std::io::Error::new(e.kind(), format!("--metrics-listen {addr}: {e}"))
            })?),
            None => None,
        };
    let server_config = shards::ServerConfig {
        listen: config.listen,
        cpus: config.cpus.clone(),
        backlog: config.backlog,
        drain_timeout: config.drain_timeout,
        max_connections: config.max_connections_per_core,
        engine: engine_config(&config),
    };
    let format = config.access_log_format.clone();
    let access_log = Arc::new(access_log::Sink::open(
        &config.access_log,
        format,
        config.cpus.len(),
    )?);
    let backends: Vec<std::net::SocketAddr> = config
        .groups
        .iter()
        .flat_map(|g| g.backends.iter().copied())
        .collect();
    proxy::connect_warnings::init(backends.iter().copied());
    let shard_stats = proxy_stats.clone();
    let sink = access_log.clone();
    let reloader = reload::Reloader::new(config.clone());
    let shard_reloader = reloader.clone();
    let server = shards::Server::start(server_config, move |ctx: &shards::ShardContext| {
        let log = sink.shard_logger(ctx.index);
        let stats = shard_stats[ctx.index].clone();
        proxy::handler(shard_reloader.clone(), stats, log, ctx)
    })?;
    // After the listeners are up, in the background: a dead backend is named at start-up,
    // once, without delaying readiness.
    if config.backend_probe {
        proxy::connect_warnings::spawn_probe(backends, config.backend_connect_timeout);
    }
    let metrics_addr = match metrics_listener {
        Some(listener) => {
            let addr = listener.local_addr()?;
            let shards = server
                .shards()
                .iter()
                .map(|s| metrics::ShardMetrics {
                    index: s.index,
                    cpu: s.cpu,
                    shard: s.stats.clone(),
                    proxy: proxy_stats[s.index].clone(),
                    relay: s.gauges.clone(),
                    engine: s.engine.clone(),
                    access_log: access_log.clone(),
                })
                .collect();
            metrics::spawn(listener, shards, reloader.clone(), server.shutdown_handle())?;
            Some(addr)
        }
        None => None,
    };
    Ok(Running {
        server,
        metrics_addr,
        access_log,
        reloader,
    })
}
