//! The state every connection of one shard shares: configuration, routes, authorizers,
//! backend groups with their balancers and keep-alive pools, admission, the access log, the
//! engine; per-connection scratch space; the pool sweeper; and the handler the `shards` crate
//! runs for each accepted connection.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::admission::{self, Admission};
use super::balancer::Balancer;
use super::health::{self, HealthTable};
use super::peer;
use super::pool::Pool;
use super::request_id::{Generator, RequestId};
use super::{client, log_record};
use crate::access_log::{ShardLog, ShardLogWriter};
use crate::auth::Authorizer;
use crate::config::Config;
use crate::http1::{ChunkedDecoder, Limits, RequestHead, ResponseHead, MAX_TRAILER_BYTES};
use crate::metrics::{BackendGauges, Layout, ProxyStats, StatsSlot};
use crate::relay::Relay;
use crate::reload::{Generation, Reloader};
use crate::route::{Route, RouteTable};

/// The token corelay adds to `Via` headers.
pub const VIA: &str = "corelay";

/// Everything one shard's connections share for one configuration generation. Lives on the
/// shard's thread only. A reload builds a new `Shard` from the new generation (see
/// [`Current`]); what belongs to the thread rather than to a configuration (engine,
/// admission, client counts, log, stats, head buffers) is shared between generations, and so
/// is each backend group that did not change, with its pool and balancer.
pub struct Shard {
    pub config: Arc<Config>,
    /// One per configured backend group, in `config.groups` order.
    pub groups: Vec<Rc<GroupState>>,
    pub routes: RouteTable,
    /// One per route, in `config.routes` order (a route's `index`).
    pub authorizers: Vec<Authorizer>,
    pub admission: Admission,
    pub clients: Rc<admission::ClientCounts>,
    pub access_log: ShardLog,
    pub relay: Relay,
    /// The shard's network engine: every socket, buffer and deadline of its connections.
    pub engine: shards::Engine,
    pub stats: Arc<ProxyStats>,
    /// Where the metrics thread finds `stats` (replaced when a reload changes its layout).
    stats_slot: Arc<StatsSlot>,
    pub request_ids: Generator,
    pub shutdown: shards::Shutdown,
    /// Host sent to backends for HTTP/1.0 requests that carry none.
    pub default_host: String,
    /// A head buffer may grow to hold a full head or a full chunked trailer section.
    pub head_buffer_max: usize,
    pub head_buffers: peer::HeadBuffers,
    /// Every shard's view of the active health checks, for this generation's groups.
    pub health: Arc<HealthTable>,
    /// This shard's index, and the generation it serves.
    pub index: usize,
    generation: u64,
    reloader: Arc<Reloader>,
}

/// A backend group on this shard: its balancer and its keep-alive pool.
pub struct GroupState {
    pub balancer: Balancer,
    pub pool: Pool,
    /// Its backends' slots in the shard's metrics.
    pub gauges: BackendGauges,
}

impl Shard {
    pub fn new(
        reloader: Arc<Reloader>,
        stats_slot: Arc<StatsSlot>,
        ctx: &shards::ShardContext,
        access_log: ShardLog,
    ) -> Shard {
        let gen = reloader.current();
        let config = &gen.config;
        let stats = stats_slot.current();
        let thread = Shard {
            config: config.clone(),
            groups: Vec::new(),
            routes: RouteTable::new(Vec::new()),
            authorizers: Vec::new(),
            admission: Admission::publishing(
                config.max_requests_per_core,
                config.queue_size,
                config.queue_timeout,
                Some(stats.clone()),
            ),
            clients: Default::default(),
            access_log,
            relay: Relay::new(config.max_buffers_per_transfer),
            engine: ctx.engine.clone(),
            stats,
            stats_slot,
            request_ids: Generator::new(config.request_id, ctx.index),
            shutdown: ctx.shutdown.clone(),
            default_host: String::new(),
            head_buffer_max: 0,
            head_buffers: peer::HeadBuffers::default(),
            health: gen.health.clone(),
            index: ctx.index,
            generation: u64::MAX,
            reloader,
        };
        thread.successor(&gen)
    }

    /// The shard for generation `gen`: this thread's parts shared with `self`, the
    /// configuration's parts built anew, groups that did not change taken over.
    fn successor(&self, gen: &Generation) -> Shard {
        let config = &gen.config;
        // The metrics' series are fixed by routes, groups and backends: when those change,
        // the generation gets series of its own (the old ones end, as counters reset).
        let layout = Layout::new(config);
        let same_layout = *self.stats.layout == layout;
        let stats = if same_layout {
            self.stats.clone()
        } else {
            let stats = Arc::new(ProxyStats::new(Arc::new(layout)));
            self.stats_slot.set(stats.clone());
            self.admission.republish(stats.clone());
            stats
        };
        let same_pools = same_layout
            && self.config.backend_retry_backoff == config.backend_retry_backoff
            && self.config.max_fails == config.max_fails
            && self.config.fail_timeout == config.fail_timeout
            && self.config.backend_max_idle == config.backend_max_idle
            && self.config.backend_idle_timeout == config.backend_idle_timeout;
        let groups = config
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let kept = self.config.groups.iter().position(|o| o == g).filter(|&j| {
                    same_pools
                        && self.groups.len() > j
                        && Arc::ptr_eq(self.health.group(j), gen.health.group(i))
                });
                match kept {
                    Some(j) => self.groups[j].clone(),
                    None => {
                        let gauges = BackendGauges::new(stats.clone(), i);
                        Rc::new(GroupState {
                            balancer: Balancer::new(
                                g.backends.clone(),
                                config.backend_retry_backoff,
                                g.policy,
                                gauges.clone(),
                            )
                            .with_passive(config.max_fails, config.fail_timeout)
                            .with_health(gen.health.group(i).clone()),
                            pool: Pool::new(
                                g.backends.len(),
                                config.backend_max_idle,
                                config.backend_idle_timeout,
                                gauges.clone(),
                            ),
                            gauges,
                        })
                    }
                }
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
        let authorizers = config
            .routes
            .iter()
            .map(|r| {
                // Validated when the config was read; a failure here is a bug, not input.
                Authorizer::new(&r.auth, r.keep_credentials).expect("route auth was validated")
            })
            .collect();
        Shard {
            config: config.clone(),
            groups,
            routes,
            authorizers,
            admission: self.admission.clone(),
            clients: self.clients.clone(),
            access_log: self.access_log.clone(),
            relay: self.relay,
            engine: self.engine.clone(),
            stats,
            stats_slot: self.stats_slot.clone(),
            request_ids: Generator::new(config.request_id, self.index),
            shutdown: self.shutdown.clone(),
            default_host: config.backends[0].to_string(),
            head_buffer_max: config.limits.max_header_bytes.max(MAX_TRAILER_BYTES + 1024),
            head_buffers: self.head_buffers.clone(),
            health: gen.health.clone(),
            index: self.index,
            generation: gen.number,
            reloader: self.reloader.clone(),
        }
    }

    /// True once a newer configuration generation exists: one atomic load.
    pub fn superseded(&self) -> bool {
        self.reloader.number() != self.generation
    }

    /// Closes this generation's idle backend connections in groups `next` does not keep.
    /// Requests still in flight on them finish; their connections are then not pooled.
    fn retire(&self, next: &Shard) {
        for g in &self.groups {
            if !next.groups.iter().any(|n| Rc::ptr_eq(n, g)) {
                g.pool.retire();
            }
        }
    }
}

/// This thread's newest shard generation. Connections hold it and take the shard from it
/// for each request, so that they move to a new configuration between requests.
#[derive(Clone)]
pub struct Current(Rc<RefCell<Rc<Shard>>>);

impl Current {
    /// The shard to serve the next request with; builds it when a reload was published.
    pub fn get(&self) -> Rc<Shard> {
        let shard = self.0.borrow().clone();
        if !shard.superseded() {
            return shard;
        }
        let gen = shard.reloader.current();
        let next = Rc::new(shard.successor(&gen));
        shard.retire(&next);
        *self.0.borrow_mut() = next.clone();
        health::spawn_probers(&next, next.index, next.config.cpus.len());
        log::debug!(
            "shard {}: configuration generation {}",
            next.index,
            gen.number
        );
        next
    }

    /// Closes idle backend connections past their idle timeout, until shutdown; then closes
    /// all. Also moves an idle shard to a new generation, so that its probers change too.
    async fn sweep_pool(self) {
        loop {
            let shard = self.get();
            let period = (shard.config.backend_idle_timeout / 2)
                .clamp(Duration::from_millis(100), Duration::from_secs(1));
            let tick = futures_lite::future::or(
                async {
                    shard.engine.sleep_until(Instant::now() + period).await;
                    true
                },
                async {
                    shard.shutdown.wait().await;
                    false
                },
            )
            .await;
            if !tick {
                shard.groups.iter().for_each(|g| g.pool.clear());
                return;
            }
            let now = Instant::now();
            for g in &shard.groups {
                g.pool.sweep(now);
            }
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
    /// The request went out with an Upgrade offer, so a 101 may answer it.
    pub upgrade_sent: bool,
    /// The current request's `X-Request-Id`.
    pub request_id: RequestId,
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
            upgrade_sent: false,
            request_id: RequestId::default(),
        }
    }
}

/// Builds a shard's connection handler; called once on each shard's thread.
/// The shard's access log buffer is flushed when the last shard generation (and so its log)
/// is dropped at the end of draining.
pub fn handler(
    reloader: Arc<Reloader>,
    stats: Arc<StatsSlot>,
    log: ShardLogWriter,
    ctx: &shards::ShardContext,
) -> impl Fn(shards::Conn, std::net::SocketAddr) -> futures_lite::future::BoxedLocal<()> {
    let log = ShardLog::new(log);
    log.spawn_flusher();
    let shard = Rc::new(Shard::new(reloader, stats, ctx, log));
    health::spawn_probers(&shard, shard.index, shard.config.cpus.len());
    let current = Current(Rc::new(RefCell::new(shard)));
    glommio::spawn_local(current.clone().sweep_pool()).detach();
    let logged = std::cell::Cell::new(false);
    move |conn, peer| {
        let task = client::serve(current.clone(), conn, peer);
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
