//! Command-line configuration: the flags, their defaults, and validation into a [`Config`].
//!
//! Every default sits next to the flag that uses it, with the reason for its value, so that
//! `corelay --help` and this file tell the same story. A bad value produces one line on
//! stderr that names the flag and what to fix (see [`parse_args`]).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Parser;

use crate::http1::{Limits, MAX_HEADERS_LIMIT};

/// A thread-per-core HTTP/1.1 reverse proxy on io_uring.
#[derive(Parser, Debug)]
#[command(name = "corelay", version, about, long_about = None)]
pub struct Args {
    /// Address to accept client connections on; every shard listens on it with SO_REUSEPORT.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub listen: String,

    /// Backend server (host:port); repeat for several. Requests are spread round-robin.
    #[arg(long = "backend", value_name = "ADDR", required = true)]
    pub backends: Vec<String>,

    /// Number of shards: the first N online CPUs [default: all online CPUs].
    #[arg(long, value_name = "N", conflicts_with = "cpus", value_parser = positive_usize)]
    pub cores: Option<usize>,

    /// CPUs to run shards on, e.g. "0,2-5" [default: all online CPUs].
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,

    /// Listen backlog per shard: connections the kernel holds while a shard is busy.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = positive_u32)]
    pub backlog: u32,

    /// Size of one relay buffer, a power of two from 1KiB to 16MiB. Bodies move through these.
    #[arg(long, value_name = "SIZE", default_value = "16KiB", value_parser = parse_size)]
    pub buffer_size: usize,

    /// Relay buffers per shard (at most 16384); memory for bodies is cores x this x
    /// --buffer-size, fixed at start.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = positive_usize)]
    pub buffer_ring_size: usize,

    /// Most relay buffers one body transfer may hold at once (reads running ahead of writes);
    /// at most --buffer-ring-size.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_BUFFERS_PER_TRANSFER, value_parser = positive_usize)]
    pub max_buffers_per_transfer: usize,

    /// Body relay engine: `ring` (registered buffers on a per-shard io_uring), `copy` (one
    /// buffer, recv/send), or `auto` (ring where the kernel supports it, else copy with a warning).
    #[arg(long, value_name = "MODE", value_enum, default_value_t = RelayMode::Auto)]
    pub relay: RelayMode,

    /// Bodies (or chunks) of at most this many bytes use the copy engine even when the ring
    /// engine is on; 0 sends everything through the ring.
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_RELAY_COPY_BELOW, value_parser = parse_size_or_zero)]
    pub relay_copy_below: usize,

    /// Largest request or response head (request line plus headers), in bytes; larger gets 431.
    #[arg(long, value_name = "SIZE", default_value = "16384", value_parser = parse_size)]
    pub max_header_bytes: usize,

    /// Most header fields in one request or response; more gets 431.
    #[arg(long, value_name = "N", default_value_t = crate::http1::DEFAULT_MAX_HEADERS, value_parser = positive_usize)]
    pub max_headers: usize,

    /// Longest request-target, in bytes; longer gets 414.
    #[arg(long, value_name = "SIZE", default_value = "8192", value_parser = parse_size)]
    pub max_target_len: usize,

    /// Absolute deadline for a client to send a complete request head, from its first byte
    /// (against slowloris); expiry gets 408.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub client_header_timeout: Duration,

    /// How long an idle keep-alive client connection is kept open between requests.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration)]
    pub client_keepalive_timeout: Duration,

    /// Longest wait for the next bytes of a request body from the client.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration)]
    pub client_body_timeout: Duration,

    /// Longest wait for a client to accept more response bytes.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration)]
    pub send_timeout: Duration,

    /// Longest wait for a TCP connection to a backend.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_duration)]
    pub backend_connect_timeout: Duration,

    /// Longest wait for a backend's response head, and between two reads of its body; expiry gets 504.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration)]
    pub backend_response_timeout: Duration,

    /// How long an idle pooled backend connection is kept. Shorter than the 5 s keep-alive of
    /// common backends (Node.js, Apache), so corelay closes first and rarely reuses a dying one.
    #[arg(long, value_name = "DUR", default_value = "4s", value_parser = parse_duration)]
    pub backend_idle_timeout: Duration,

    /// Idle keep-alive connections kept per backend, per shard. Below the number of requests
    /// in flight, every burst closes and reopens backend connections, so the default covers
    /// a thousand concurrent clients per core (an idle connection costs a 4 KiB buffer).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub backend_max_idle: usize,

    /// How long a backend that refused a connection is skipped by the balancer.
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_duration)]
    pub backend_retry_backoff: Duration,

    /// On SIGTERM or SIGINT, how long in-flight requests may take to finish before exit.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Serve Prometheus metrics at http://ADDR/metrics [default: off].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

/// The validated configuration every shard reads (shared read-only across threads).
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub backends: Vec<SocketAddr>,
    pub cpus: Vec<usize>,
    pub backlog: u32,
    pub buffer_size: usize,
    pub buffer_ring_size: usize,
    pub max_buffers_per_transfer: usize,
    pub relay: RelayMode,
    pub relay_copy_below: u64,
    pub limits: Limits,
    pub client_header_timeout: Duration,
    pub client_keepalive_timeout: Duration,
    pub client_body_timeout: Duration,
    pub send_timeout: Duration,
    pub backend_connect_timeout: Duration,
    pub backend_response_timeout: Duration,
    pub backend_idle_timeout: Duration,
    pub backend_max_idle: usize,
    pub backend_retry_backoff: Duration,
    pub drain_timeout: Duration,
    pub metrics_listen: Option<SocketAddr>,
}

/// How bodies are relayed (`--relay`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayMode {
    Auto,
    Ring,
    Copy,
}

/// K: buffers one transfer may hold. Measured in docs/relay.md: 4 buffers of 16 KiB in flight
/// reach the plateau; more only lets one transfer take more of the shared ring.
pub const DEFAULT_MAX_BUFFERS_PER_TRANSFER: usize = 4;

/// Bodies up to this size go through the copy engine (docs/relay.md has the measurement).
pub const DEFAULT_RELAY_COPY_BELOW: &str = "16KiB";

/// Relay memory one shard may register (cores x this is the process total).
const MAX_RELAY_MEMORY_PER_SHARD: usize = 1 << 30;

/// Relay buffers smaller than this make a syscall per tiny read; larger than the maximum
/// make the fixed per-shard memory unreasonable for a single buffer.
const MIN_BUFFER_SIZE: usize = 1024;
const MAX_BUFFER_SIZE: usize = 16 * 1024 * 1024;

/// A request head must at least hold a request line and a Host header.
const MIN_HEADER_BYTES: usize = 256;

impl Config {
    /// Validates parsed flags; the error is one line naming the flag.
    pub fn from_args(args: Args) -> Result<Config, String> {
        let listen = resolve_one("--listen", &args.listen)?;
        let backends = args
            .backends
            .iter()
            .map(|b| resolve_one("--backend", b))
            .collect::<Result<Vec<_>, _>>()?;
        let cpu_list = match &args.cpus {
            Some(s) => Some(shards::parse_cpu_list(s).map_err(|e| format!("--cpus: {e}"))?),
            None => None,
        };
        let cpus = shards::select_cpus(args.cores, cpu_list.as_deref())?;
        if !(MIN_BUFFER_SIZE..=MAX_BUFFER_SIZE).contains(&args.buffer_size)
            || !args.buffer_size.is_power_of_two()
        {
            return Err(format!(
                "--buffer-size {}: must be a power of two between 1KiB and 16MiB",
                args.buffer_size
            ));
        }
        if args.buffer_ring_size > shards::MAX_RING_BUFFERS {
            return Err(format!(
                "--buffer-ring-size {}: must be at most {} (io_uring's limit on registered buffers)",
                args.buffer_ring_size,
                shards::MAX_RING_BUFFERS
            ));
        }
        let per_shard = args.buffer_ring_size as u128 * args.buffer_size as u128;
        if per_shard > MAX_RELAY_MEMORY_PER_SHARD as u128 {
            return Err(format!(
                "--buffer-ring-size {} x --buffer-size {}: {} MiB of relay memory per shard, more than the 1024 MiB allowed",
                args.buffer_ring_size,
                args.buffer_size,
                per_shard >> 20
            ));
        }
        if args.max_buffers_per_transfer > args.buffer_ring_size {
            return Err(format!(
                "--max-buffers-per-transfer {}: must be at most --buffer-ring-size ({})",
                args.max_buffers_per_transfer, args.buffer_ring_size
            ));
        }
        if args.max_header_bytes < MIN_HEADER_BYTES {
            return Err(format!(
                "--max-header-bytes {}: must be at least {MIN_HEADER_BYTES}",
                args.max_header_bytes
            ));
        }
        if args.max_headers > MAX_HEADERS_LIMIT {
            return Err(format!(
                "--max-headers {}: must be at most {MAX_HEADERS_LIMIT}",
                args.max_headers
            ));
        }
        if args.max_target_len == 0 || args.max_target_len >= args.max_header_bytes {
            return Err(format!(
                "--max-target-len {}: must be between 1 and --max-header-bytes ({})",
                args.max_target_len, args.max_header_bytes
            ));
        }
        let metrics_listen = match &args.metrics_listen {
            Some(s) => Some(resolve_one("--metrics-listen", s)?),
            None => None,
        };
        Ok(Config {
            listen,
            backends,
            cpus,
            backlog: args.backlog,
            buffer_size: args.buffer_size,
            buffer_ring_size: args.buffer_ring_size,
            max_buffers_per_transfer: args.max_buffers_per_transfer,
            relay: args.relay,
            relay_copy_below: args.relay_copy_below as u64,
            limits: Limits {
                max_header_bytes: args.max_header_bytes,
                max_headers: args.max_headers,
                max_target_len: args.max_target_len,
            },
            client_header_timeout: args.client_header_timeout,
            client_keepalive_timeout: args.client_keepalive_timeout,
            client_body_timeout: args.client_body_timeout,
            send_timeout: args.send_timeout,
            backend_connect_timeout: args.backend_connect_timeout,
            backend_response_timeout: args.backend_response_timeout,
            backend_idle_timeout: args.backend_idle_timeout,
            backend_max_idle: args.backend_max_idle,
            backend_retry_backoff: args.backend_retry_backoff,
            drain_timeout: args.drain_timeout,
            metrics_listen,
        })
    }
}

/// Parses the process arguments. On error returns the one-line message to print (clap's
/// multi-line rendering is cut to its first line, which already names the flag); `--help`
/// and `--version` come back as `Err(Ok(text))` to be printed whole with exit code 0.
pub fn parse_args<I, T>(args: I) -> Result<Config, Result<String, String>>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            return Err(match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Ok(e.to_string()),
                _ => {
                    // clap's first paragraph names the flag (sometimes on an indented
                    // second line); usage and hints follow a blank line.
                    let text = e.to_string();
                    let first: Vec<&str> = text
                        .lines()
                        .take_while(|l| !l.trim().is_empty())
                        .map(str::trim)
                        .collect();
                    Err(first.join(" "))
                }
            });
        }
    };
    Config::from_args(args).map_err(|e| Err(format!("error: {e}")))
}

fn resolve_one(flag: &str, s: &str) -> Result<SocketAddr, String> {
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| format!("{flag} '{s}': {e} (expected host:port, e.g. 127.0.0.1:9000)"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{flag} '{s}': the name resolved to no address"))
}

fn positive_usize(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number".into()),
    }
}

fn positive_u32(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number".into()),
    }
}

/// Sizes: a number of bytes, optionally with a unit: `k`/`KiB`, `m`/`MiB`, `g`/`GiB` (all binary).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| "expected a size such as 16384, 16k or 16KiB".to_string())?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit '{other}' (use k, m or g)")),
    };
    match n.checked_mul(mult) {
        Some(0) => Err("must be greater than 0".into()),
        Some(v) => Ok(v),
        None => Err("too large".into()),
    }
}

/// Like [`parse_size`], but 0 is allowed.
pub fn parse_size_or_zero(s: &str) -> Result<usize, String> {
    if s.trim() == "0" {
        return Ok(0);
    }
    parse_size(s)
}

/// Durations: a number with a unit `ms`, `s`, `m` or `h`; a bare number means seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| "expected a duration such as 500ms, 10s or 2m".to_string())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        other => {
            return Err(format!(
                "unknown duration unit '{other}' (use ms, s, m or h)"
            ))
        }
    };
    if d.is_zero() {
        return Err("must be greater than 0".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16384"), Ok(16384));
        assert_eq!(parse_size("16k"), Ok(16384));
        assert_eq!(parse_size("16KiB"), Ok(16384));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("0").is_err());
        assert!(parse_size("16x").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    fn err_of(args: &[&str]) -> String {
        match parse_args(args.iter().copied()) {
            Err(Err(e)) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn bad_flags_give_one_line_naming_the_flag() {
        let e = err_of(&["corelay", "--backend", "127.0.0.1:1", "--cores", "0"]);
        assert!(e.contains("--cores"), "{e}");
        assert!(!e.contains('\n'));
        let e = err_of(&[
            "corelay",
            "--backend",
            "127.0.0.1:1",
            "--listen",
            "nonsense",
        ]);
        assert!(e.contains("--listen"), "{e}");
        let e = err_of(&["corelay"]);
        assert!(e.contains("--backend"), "{e}");
        let e = err_of(&[
            "corelay",
            "--backend",
            "127.0.0.1:1",
            "--client-header-timeout",
            "5x",
        ]);
        assert!(e.contains("--client-header-timeout"), "{e}");
    }

    #[test]
    fn relay_flags_are_validated() {
        let base = ["corelay", "--backend", "127.0.0.1:1"];
        fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
            let mut v = vec!["corelay", "--backend", "127.0.0.1:1"];
            v.extend_from_slice(extra);
            v
        }
        for (extra, flag) in [
            (&["--buffer-size", "0"][..], "--buffer-size"),
            (&["--buffer-size", "3000"][..], "--buffer-size"),
            (&["--buffer-size", "32MiB"][..], "--buffer-size"),
            (&["--buffer-ring-size", "0"][..], "--buffer-ring-size"),
            (&["--buffer-ring-size", "20000"][..], "--buffer-ring-size"),
            (
                &["--buffer-ring-size", "16384", "--buffer-size", "1MiB"][..],
                "--buffer-ring-size",
            ),
            (
                &["--max-buffers-per-transfer", "0"][..],
                "--max-buffers-per-transfer",
            ),
            (
                &["--buffer-ring-size", "8", "--max-buffers-per-transfer", "9"][..],
                "--max-buffers-per-transfer",
            ),
            (&["--relay", "fast"][..], "--relay"),
            (&["--relay-copy-below", "1x"][..], "--relay-copy-below"),
        ] {
            let e = err_of(&with(extra));
            assert!(e.contains(flag), "{extra:?}: {e}");
            assert!(!e.contains('\n'), "{extra:?}: {e}");
        }
        let c = parse_args(with(&["--relay", "copy", "--relay-copy-below", "0"])).unwrap();
        assert_eq!(c.relay, RelayMode::Copy);
        assert_eq!(c.relay_copy_below, 0);
        let c = parse_args(base).unwrap();
        assert_eq!(c.relay, RelayMode::Auto);
        assert_eq!(c.max_buffers_per_transfer, DEFAULT_MAX_BUFFERS_PER_TRANSFER);
    }
}
