//! Hot reload: the configuration generation every shard serves, and the switch to a new one.
//!
//! The signal thread validates a new configuration exactly as `corelay check` does (it is
//! read by the same `config::parse_args`), then [`Reloader::install`] publishes it as a new
//! [`Generation`]. Shards notice with one relaxed atomic load when a request starts (and on
//! their pool sweep), and build their own state for it there (`proxy::Current`): nothing is
//! locked on the request path, requests in flight finish on the generation they started
//! with, and open client connections move to the new one between requests.
//!
//! What a running shard cannot change (its listener, its CPU, its buffers and rings, its
//! admission sizes, the log and metrics destinations) is kept from the running configuration
//! and reported as needing a restart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::proxy::HealthTable;

/// One configuration, as every shard serves it once it has moved to it.
pub struct Generation {
    pub number: u64,
    pub config: Arc<Config>,
    pub health: Arc<HealthTable>,
}

/// The current generation, shared by every shard and the signal thread.
pub struct Reloader {
    number: AtomicU64,
    current: Mutex<Arc<Generation>>,
    /// Reloads applied and refused since start (for `/metrics`).
    pub successes: AtomicU64,
    pub failures: AtomicU64,
}

impl Reloader {
    pub fn new(config: Arc<Config>) -> Arc<Reloader> {
        let health = HealthTable::new(&config);
        Arc::new(Reloader {
            number: AtomicU64::new(0),
            current: Mutex::new(Arc::new(Generation {
                number: 0,
                config,
                health,
            })),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    /// The current generation's number: what a shard compares with its own.
    pub fn number(&self) -> u64 {
        self.number.load(Ordering::Acquire)
    }

    pub fn current(&self) -> Arc<Generation> {
        self.current.lock().unwrap().clone()
    }

    /// Publishes `new` as the next generation. Settings that need a restart keep their
    /// running values; their keys are returned.
    pub fn install(&self, mut new: Config) -> Vec<&'static str> {
        let mut current = self.current.lock().unwrap();
        let old = &current.config;
        let mut restart = Vec::new();
        macro_rules! keep {
            ($($field:ident),* $(,)?) => {
                $( if old.$field != new.$field {
                    restart.push(stringify!($field));
                    new.$field = old.$field.clone();
                } )*
            };
        }
        keep!(
            listen,
            cpus,
            backlog,
            buffer_size,
            buffer_ring_size,
            max_buffers_per_transfer,
            relay,
            drain_timeout,
            metrics_listen,
            access_log,
            access_log_format,
            max_requests_per_core,
            queue_size,
            queue_timeout,
            max_connections_per_core,
        );
        let health = HealthTable::after(Some((&current.health, old)), &new);
        let number = current.number + 1;
        *current = Arc::new(Generation {
            number,
            config: Arc::new(new),
            health,
        });
        self.number.store(number, Ordering::Release);
        self.successes.fetch_add(1, Ordering::Relaxed);
        restart
    }

    pub fn refused(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
}
