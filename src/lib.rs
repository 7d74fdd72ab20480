//! corelay: a thread-per-core HTTP/1.1 reverse proxy on glommio (io_uring).
//!
//! [`run`] starts the shards for a [`Config`]; the binary (`main.rs`) adds the command line,
//! start-up messages and signal handling around it, and tests can drive it the same way.

pub mod auth;
pub mod config;
pub mod config_file;
pub mod http1;
pub mod metrics;
pub mod proxy;
pub mod proxy_protocol;
pub mod relay;
pub mod route;

use std::sync::Arc;

pub use config::Config;

/// A running corelay: its shards, and the metrics each one publishes.
pub struct Running {
    pub server: shards::Server,
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Binds every listener and starts one shard per configured CPU.
pub fn run(config: Config) -> std::io::Result<Running> {
    let config = Arc::new(config);
    let proxy_stats: Vec<Arc<metrics::ProxyStats>> = config
        .cpus
        .iter()
        .map(|_| Arc::new(metrics::ProxyStats::default()))
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
    };
    let shard_stats = proxy_stats.clone();
    let cfg = config.clone();
    let server = shards::Server::start(server_config, move |ctx: &shards::ShardContext| {
        proxy::handler(cfg.clone(), shard_stats[ctx.index].clone(), ctx)
    })?;
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
                })
                .collect();
            metrics::spawn(listener, shards)?;
            Some(addr)
        }
        None => None,
    };
    Ok(Running {
        server,
        metrics_addr,
    })
}
