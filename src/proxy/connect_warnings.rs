//! Warnings about backends that cannot be reached: one line at start-up for each backend a
//! quick probe cannot connect to, then at most one line per backend per [`WARN_INTERVAL`],
//! which says how many failures it stands for.
//!
//! Without this, a dead backend under load writes one WARN per request, on every shard: the
//! log fills with identical lines and the one that matters (it went down) scrolls away.
//!
//! The state is process-wide, like the logger it throttles: one slot per distinct backend
//! address, two relaxed atomics each, touched only when a connect fails (never on a request
//! that succeeds), so shards share nothing on the request path.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// At most one warning per backend in this long: an operator still sees within seconds that a
/// backend is failing, and how often, without a line per request.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Longest wait of the start-up probe for one backend. A backend that is up answers a connect
/// on a LAN in well under a millisecond; the probe runs in the background, so this only
/// bounds how long a black-holed backend keeps the probe thread.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Milliseconds since [`epoch`] plus one, so that 0 means "never warned".
const NEVER: u64 = 0;

/// One backend's throttle.
struct Throttle {
    addr: SocketAddr,
    /// When the last line was written ([`NEVER`] before the first).
    last: AtomicU64,
    /// Failures since that line that were not logged.
    suppressed: AtomicU64,
}

impl Throttle {
    fn new(addr: SocketAddr) -> Throttle {
        Throttle {
            addr,
            last: AtomicU64::new(NEVER),
            suppressed: AtomicU64::new(0),
        }
    }

    /// At `now` (ms, see [`NEVER`]): `Some(n)` if a line may be written now, `n` being the
    /// failures it also stands for; `None` if the failure is only counted. Of several shards
    /// failing at once, exactly one wins the slot.
    fn admit(&self, now: u64) -> Option<u64> {
        let interval = WARN_INTERVAL.as_millis() as u64;
        let last = self.last.load(Ordering::Relaxed);
        if (last == NEVER || now.saturating_sub(last) >= interval)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

static THROTTLES: OnceLock<Box<[Throttle]>> = OnceLock::new();

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

/// Sets up one throttle per distinct address (first call wins; later ones are ignored, as a
/// process runs one configuration).
pub fn init(addrs: impl IntoIterator<Item = SocketAddr>) {
    let mut all: Vec<SocketAddr> = addrs.into_iter().collect();
    all.sort();
    all.dedup();
    epoch();
    let _ = THROTTLES.set(all.into_iter().map(Throttle::new).collect());
}

/// Logs, within the limit, that connecting to `addr` failed with `e`.
pub fn connect_failed(addr: SocketAddr, e: &io::Error) {
    warn(addr, &format_args!("connect failed: {e}"));
}

fn warn(addr: SocketAddr, what: &std::fmt::Arguments<'_>) {
    let throttle = THROTTLES
        .get()
        .and_then(|t| t.iter().find(|t| t.addr == addr));
    let Some(throttle) = throttle else {
        log::warn!("backend {addr}: {what}");
        return;
    };
    match throttle.admit(now_ms()) {
        Some(0) => log::warn!("backend {addr}: {what}"),
        Some(n) => log::warn!(
            "backend {addr}: {what} ({n} more failure{} in the last {}s not logged)",
            if n == 1 { "" } else { "s" },
            WARN_INTERVAL.as_secs()
        ),
        None => {}
    }
}

/// Tries each backend once, in a background thread (readiness does not wait for it), and
/// warns about each one that does not accept a connection within [`PROBE_TIMEOUT`]; that
/// warning counts as the backend's first, so request failures right after it are throttled.
pub fn spawn_probe(addrs: Vec<SocketAddr>, connect_timeout: Duration) {
    let timeout = connect_timeout.min(PROBE_TIMEOUT);
    let spawned = std::thread::Builder::new()
        .name("backend-probe".into())
        .spawn(move || {
            let mut addrs = addrs;
            addrs.sort();
            addrs.dedup();
            for addr in addrs {
                if let Err(e) = TcpStream::connect_timeout(&addr, timeout) {
                    warn(addr, &format_args!("not reachable at start: {e}"));
                }
            }
        });
    if let Err(e) = spawned {
        log::debug!("backend probe not started: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count() {
        let t = Throttle::new("127.0.0.1:1".parse().unwrap());
        let ms = WARN_INTERVAL.as_millis() as u64;
        assert_eq!(t.admit(5), Some(0), "the first failure is logged");
        for i in 0..7 {
            assert_eq!(
                t.admit(6 + i),
                None,
                "repeats within the interval are counted"
            );
        }
        assert_eq!(t.admit(5 + ms - 1), None);
        assert_eq!(
            t.admit(5 + ms),
            Some(8),
            "the next line says how many it stands for"
        );
        assert_eq!(t.admit(5 + ms + 1), None);
        assert_eq!(t.admit(5 + 3 * ms), Some(1));
        assert_eq!(
            t.admit(5 + 5 * ms),
            Some(0),
            "a quiet spell resets the count"
        );
    }

    #[test]
    fn concurrent_failures_take_the_slot_once() {
        let t = std::sync::Arc::new(Throttle::new("127.0.0.1:2".parse().unwrap()));
        let admitted: u64 = (0..4)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || (0..1000).filter(|_| t.admit(7).is_some()).count())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap() as u64)
            .sum();
        assert_eq!(admitted, 1);
        assert_eq!(t.suppressed.load(Ordering::Relaxed), 3999);
    }
}
