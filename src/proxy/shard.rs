//! The state every connection of one shard shares: configuration, routes, authorizers,
//! backend groups with their balancers and keep-alive pools, admission, the access log, the
//! engine; per-connection scratch space; the pool sweeper; and the handler the `shards` crate
//! runs for each accepted connection.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::admission::{self, Admission};
use super::balancer::Balancer;
use super::peer;
use super::pool::Pool;
use super::{client, log_record};
use crate::access_log::{ShardLog, ShardLogWriter};
use crate::auth::Authorizer;
use crate::config::Config;
use crate::http1::{ChunkedDecoder, Limits, RequestHead, ResponseHead, MAX_TRAILER_BYTES};
use crate::metrics::ProxyStats;
use crate::relay::Relay;
use crate::route::{Route, RouteTable};

/// The token corelay adds to `Via` headers.
pub const VIA: &str = "corelay";

/// Everything one shard's connections share. Lives on the shard's thread only.
pub struct Shard {
    pub config: Arc<Config>,
    /// One per configured backend group, in `config.groups` order.
    pub groups: Vec<GroupState>,
    pub routes: RouteTable,
    /// One per route, in `config.routes` order (a route's `index`).
    pub authorizers: Vec<Authorizer>,
    pub admission: Admission,
    pub clients: admission::ClientCounts,
    pub access_log: ShardLog,
    pub relay: Relay,
    /// The shard's network engine: every socket, buffer and deadline of its connections.
    pub engine: shards::Engine,
    pub stats: Arc<ProxyStats>,
    pub shutdown: shards::Shutdown,
    /// Host sent to backends for HTTP/1.0 requests that carry none.
    pub default_host: String,
    /// A head buffer may grow to hold a full head or a full chunked trailer section.
    pub head_buffer_max: usize,
    pub head_buffers: peer::HeadBuffers,
}

/// A backend group on this shard: its balancer and its keep-alive pool.
pub struct GroupState {
    pub balancer: Balancer,
    pub pool: Pool,
}

impl Shard {
    pub fn new(
        config: Arc<Config>,
        stats: Arc<ProxyStats>,
        ctx: &shards::ShardContext,
        access_log: ShardLog,
    ) -> Shard {
        let first = config.backends[0];
        let groups = config
            .groups
            .iter()
            .map(|g| GroupState {
                balancer: Balancer::new(g.backends.clone(), config.backend_retry_backoff, g.policy),
                pool: Pool::new(
                    g.backends.len(),
                    config.backend_max_idle,
                    config.backend_idle_timeout,
                ),
            })
            .collect();
        let routes = RouteTable::new(
            config
                .routes
                .iter()
                .enumerate()
                .map(|(index, r)| Route {
                    host: r.host.clone(),
                    prefix: r.prefix.clone(),
                    rewrite: r.rewrite.clone(),
                    group: r.group,
                    index,
                    fold_case: !matches!(r.auth, crate::auth::AuthConfig::None),
                })
                .collect(),
        );
        let relay = Relay::new(config.max_buffers_per_transfer);
        let authorizers = config
            .routes
            .iter()
            .map(|r| {
                // Validated when the config was read; a failure here is a bug, not input.
                Authorizer::new(&r.auth, r.keep_credentials).expect("route auth was validated")
            })
            .collect();
        Shard {
            groups,
            routes,
            authorizers,
            clients: Default::default(),
            access_log,
            admission: Admission::new(
                config.max_requests_per_core,
                config.queue_size,
                config.queue_timeout,
            ),
            relay,
            engine: ctx.engine.clone(),
            stats,
            shutdown: ctx.shutdown.clone(),
            default_host: first.to_string(),
            head_buffer_max: config.limits.max_header_bytes.max(MAX_TRAILER_BYTES + 1024),
            head_buffers: peer::HeadBuffers::default(),
            config,
        }
    }

    /// Closes idle backend connections past their idle timeout, until shutdown; then closes all.
    async fn sweep_pool(self: Rc<Self>) {
        let period = (self.config.backend_idle_timeout / 2)
            .clamp(Duration::from_millis(100), Duration::from_secs(1));
        loop {
            let tick = futures_lite::future::or(
                async {
                    self.engine.sleep_until(Instant::now() + period).await;
                    true
                },
                async {
                    self.shutdown.wait().await;
                    false
                },
            )
            .await;
            if !tick {
                self.groups.iter().for_each(|g| g.pool.clear());
                return;
            }
            let now = Instant::now();
            let mut idle = 0;
            for g in &self.groups {
                g.pool.sweep(now);
                idle += g.pool.idle_count();
            }
            self.stats.set(&self.stats.backend_idle, idle as u64);
        }
    }
}

/// Per-connection parse state, reused across the connection's requests.
pub struct Scratch {
    pub limits: Limits,
    pub req: RequestHead,
    pub resp: ResponseHead,
    pub decoder: ChunkedDecoder,
    /// Encoded heads and small body pieces waiting to be written.
    pub out: Vec<u8>,
    /// The request-target as forwarded, and its normalised form (see `route::normalize`).
    pub target: Vec<u8>,
    pub norm: Vec<u8>,
    /// What the log phase writes for the current request.
    pub log: log_record::Record,
}

impl Scratch {
    pub(super) fn new(limits: Limits) -> Scratch {
        // The header vectors start empty and grow to what this connection's messages use
        // (they keep that capacity): the codec's 16 preallocated fields each would be 512 B
        // for every one of 10,000 held connections.
        let mut req = RequestHead::new();
        req.headers = Vec::new();
        let mut resp = ResponseHead::new();
        resp.headers = Vec::new();
        Scratch {
            limits,
            req,
            resp,
            decoder: ChunkedDecoder::new(),
            out: Vec::new(),
            target: Vec::new(),
            norm: Vec::new(),
            log: Default::default(),
        }
    }
}

/// Builds a shard's connection handler; called once on each shard's thread.
/// The shard's access log buffer is flushed when the shard (and so its log) is dropped at
/// the end of draining.
pub fn handler(
    config: Arc<Config>,
    stats: Arc<ProxyStats>,
    log: ShardLogWriter,
    ctx: &shards::ShardContext,
) -> impl Fn(shards::Conn, std::net::SocketAddr) -> futures_lite::future::BoxedLocal<()> {
    let log = ShardLog::new(log);
    log.spawn_flusher();
    let shard = Rc::new(Shard::new(config, stats, ctx, log));
    glommio::spawn_local(shard.clone().sweep_pool()).detach();
    let logged = std::cell::Cell::new(false);
    move |conn, peer| {
        let shard = shard.clone();
        let task = client::serve(shard, conn, peer);
        if !logged.replace(true) {
            // What each open connection costs before any buffer: its task's state machine.
            log::debug!(
                "connection task state: {} bytes",
                std::mem::size_of_val(&task)
            );
        }
        Box::pin(task)
    }
}
