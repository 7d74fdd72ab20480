//! Active health checks: one prober per backend, on one shard, publishing up/down to all.
//!
//! Each backend of a group with `health_check` is probed by exactly one shard (backends are
//! dealt out round the shards), so a backend gets one probe per interval however many cores
//! run. The result is one `AtomicBool` per backend that the prober writes on a transition
//! and every shard's balancer reads with a relaxed load when it plans a request: no lock,
//! and a line that is written only when a backend changes state.
//!
//! A probe is `GET <path>` with `Connection: close` on a new connection through the shard's
//! engine; a 2xx or 3xx status line within the timeout is a success, anything else (refused,
//! reset, timed out, another status, not HTTP) a failure with its reason. Up after `rise`
//! successes in a row, down after `fall` failures in a row; backends start up, so that a
//! restart does not take every backend out until its first probes pass.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shards::Conn;

use super::shard::Shard;
use crate::config::{Config, HealthCheck};

/// The up/down state of one group's backends, shared by all shards. Kept across a reload
/// when the group and its check are unchanged, so a reload does not forget a down backend.
pub struct GroupHealth {
    up: Vec<AtomicBool>,
}

impl GroupHealth {
    /// Whether active checks consider the backend up (always, without checks).
    pub fn is_up(&self, backend: usize) -> bool {
        self.up[backend].load(Ordering::Relaxed)
    }

    fn set(&self, backend: usize, up: bool) {
        self.up[backend].store(up, Ordering::Relaxed);
    }
}

/// Every group's [`GroupHealth`], in `config.groups` order.
pub struct HealthTable {
    groups: Vec<Arc<GroupHealth>>,
}

impl HealthTable {
    pub fn new(config: &Config) -> Arc<HealthTable> {
        HealthTable::after(None, config)
    }

    /// The table for `config`, reusing `previous`'s state for every group whose name,
    /// backends and health check are unchanged.
    pub fn after(previous: Option<(&HealthTable, &Config)>, config: &Config) -> Arc<HealthTable> {
        let groups = config
            .groups
            .iter()
            .map(|g| {
                let same = previous.and_then(|(table, old)| {
                    let i = old.groups.iter().position(|o| {
                        o.name == g.name && o.backends == g.backends && o.health == g.health
                    })?;
                    Some(table.groups[i].clone())
                });
                same.unwrap_or_else(|| {
                    Arc::new(GroupHealth {
                        up: g.backends.iter().map(|_| AtomicBool::new(true)).collect(),
                    })
                })
            })
            .collect();
        Arc::new(HealthTable { groups })
    }

    pub fn group(&self, group: usize) -> &Arc<GroupHealth> {
        &self.groups[group]
    }
}

/// Starts the probers this shard owns: backend number `k` (counted over every group with a
/// health check) belongs to shard `k % shards`.
pub fn spawn_probers(shard: &Rc<Shard>, index: usize, shards: usize) {
    let mut k = 0;
    for (g, group) in shard.config.groups.iter().enumerate() {
        let Some(hc) = &group.health else { continue };
        for (b, &addr) in group.backends.iter().enumerate() {
            if k % shards == index {
                let p = Prober {
                    shard: shard.clone(),
                    group: g,
                    backend: b,
                    addr,
                    check: hc.clone(),
                };
                glommio::spawn_local(p.run()).detach();
            }
            k += 1;
        }
    }
}

struct Prober {
    shard: Rc<Shard>,
    group: usize,
    backend: usize,
    addr: SocketAddr,
    check: HealthCheck,
}

impl Prober {
    async fn run(self) {
        let (mut up, mut streak) = (true, 0u32);
        let name = &self.shard.config.groups[self.group].name;
        loop {
            let tick = futures_lite::future::or(
                async {
                    let next = self.shard.engine.now() + self.check.interval;
                    self.shard.engine.sleep_until(next).await;
                    true
                },
                async {
                    self.shard.shutdown.wait().await;
                    false
                },
            )
            .await;
            // A reload starts the new configuration's probers; this one's work is done.
            if !tick || self.shard.superseded() {
                return;
            }
            let result = probe(&self.shard, self.addr, &self.check).await;
            // `streak` counts results that disagree with the current state.
            let (needed, verdict) = match (&result, up) {
                (Ok(_), true) | (Err(_), false) => {
                    streak = 0;
                    continue;
                }
                (Ok(_), false) => (self.check.rise, "up"),
                (Err(_), true) => (self.check.fall, "down"),
            };
            streak += 1;
            if streak < needed {
                continue;
            }
            up = !up;
            streak = 0;
            self.shard.health.group(self.group).set(self.backend, up);
            let why = match &result {
                Ok(status) => format!("answered {status}"),
                Err(e) => e.clone(),
            };
            log::info!(
                "backend {} of group {name}: {verdict} after {needed} checks in a row (last: {why})",
                self.addr
            );
        }
    }
}

/// Longest status line a probe reads; more without a line end is not HTTP.
const PROBE_READ_MAX: usize = 1024;

/// One probe: the status of a 2xx or 3xx answer, or why it failed.
async fn probe(shard: &Shard, addr: SocketAddr, check: &HealthCheck) -> Result<u16, String> {
    let deadline = Instant::now() + check.timeout;
    let work = async {
        let mut conn = Conn::connect(&shard.engine, addr, check.timeout)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: corelay-health-check\r\n\
             Connection: close\r\n\r\n",
            check.path
        );
        let (r, _) = conn.send(req.into_bytes()).await;
        r.map_err(|e| format!("send: {e}"))?;
        let mut line = Vec::new();
        let mut buf = [0u8; 512];
        while !line.contains(&b'\n') {
            if line.len() >= PROBE_READ_MAX {
                return Err("no status line".to_string());
            }
            match conn.recv(&mut buf).await {
                Ok(0) => return Err("closed before a status line".to_string()),
                Ok(n) => line.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("receive: {e}")),
            }
        }
        let status = status_of(&line).ok_or_else(|| "not an HTTP status line".to_string())?;
        if (200..400).contains(&status) {
            Ok(status)
        } else {
            Err(format!("answered {status}"))
        }
    };
    let timeout = async {
        shard.engine.sleep_until(deadline).await;
        Err(format!("no answer within {:?}", check.timeout))
    };
    futures_lite::future::or(work, timeout).await
}

/// `HTTP/1.x NNN ...` → NNN.
fn status_of(line: &[u8]) -> Option<u16> {
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))?;
    let digits = rest.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit)
        || rest.get(3).is_some_and(|&b| b != b' ' && b != b'\r')
    {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Passive health, per shard: consecutive failures of one backend, and until when it is
/// skipped once they reach `max_fails` (nginx's `max_fails`/`fail_timeout`).
#[derive(Default)]
pub struct Fails {
    count: std::cell::Cell<u32>,
    until: std::cell::Cell<Option<Instant>>,
}

impl Fails {
    pub fn ejected(&self, now: Instant) -> bool {
        self.until.get().is_some_and(|t| t > now)
    }

    /// Counts a failure; true when it ejects the backend.
    pub fn failed(&self, max: u32, timeout: Duration, now: Instant) -> bool {
        if max == 0 {
            return false;
        }
        let n = self.count.get() + 1;
        if n >= max {
            self.count.set(0);
            self.until.set(Some(now + timeout));
            true
        } else {
            self.count.set(n);
            false
        }
    }

    pub fn succeeded(&self) {
        if self.count.get() != 0 {
            self.count.set(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_of(b"HTTP/1.0 302\r\n"), Some(302));
        assert_eq!(status_of(b"HTTP/1.1 20 OK\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 2000 OK\r\n"), None);
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
    }

    #[test]
    fn max_fails_in_a_row_eject_for_fail_timeout() {
        let f = Fails::default();
        let now = Instant::now();
        let t = Duration::from_secs(10);
        assert!(!f.failed(3, t, now));
        f.succeeded();
        assert!(!f.failed(3, t, now));
        assert!(!f.failed(3, t, now));
        assert!(!f.ejected(now));
        assert!(f.failed(3, t, now));
        assert!(f.ejected(now + Duration::from_secs(9)));
        assert!(!f.ejected(now + Duration::from_secs(10)));
        // Off with 0.
        assert!(!Fails::default().failed(0, t, now));
    }
}
