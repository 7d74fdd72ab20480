//! Command-line configuration: the flags, their defaults, and validation into a [`Config`].
//!
//! Every default sits next to the flag that uses it, with the reason for its value, so that
//! `corelay --help` and this file tell the same story. A bad value produces one line on
//! stderr that names the flag and what to fix (see [`parse_args`]).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use std::ffi::OsString;

use clap::Parser;

use crate::config_file::{self, FileConfig};

use crate::http1::{Limits, UnderscoreAction, MAX_HEADERS_LIMIT, MAX_HEADER_BYTES_LIMIT};

/// A thread-per-core HTTP/1.1 reverse proxy on io_uring.
#[derive(Parser, Debug)]
#[command(
    name = "corelay",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true,
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Sub>,
    #[command(flatten)]
    pub args: Args,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Validate a config file: exit 0 if it is valid, else print each error with its line.
    Check {
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
    },
    /// Read a password on stdin and print its stored form for `basic` auth users.
    HashPassword,
}

/// The flags of `corelay` (each also a key of the config file).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to accept client connections on; every shard listens on it with SO_REUSEPORT.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub listen: String,

    /// Read settings, backend groups and routes from this TOML file; flags given on the
    /// command line override its keys (see docs/corelay.example.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,

    /// Backend server (host:port); repeat for several. Requests are spread round-robin.
    /// Required unless a config file defines backends or groups.
    #[arg(long = "backend", value_name = "ADDR")]
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
    #[arg(long, value_name = "SIZE", default_value = "64KiB", value_parser = parse_size)]
    pub buffer_size: usize,

    /// Relay buffers per shard (at most 16384); memory for bodies is cores x this x
    /// --buffer-size, fixed at start.
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = positive_usize)]
    pub buffer_ring_size: usize,

    /// Most relay buffers one body transfer may hold at once (reads running ahead of writes);
    /// at most --buffer-ring-size.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_BUFFERS_PER_TRANSFER, value_parser = positive_usize)]
    pub max_buffers_per_transfer: usize,

    /// Body relay engine. Only `ring` exists since the shard engine (registered buffers on the
    /// shard's io_uring); `auto` is kept as its synonym so existing command lines work.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = RelayMode::Auto)]
    pub relay: RelayMode,

    /// No effect since the copy engine was removed: every body streams through the relay
    /// buffers, and bytes that arrived with a head go out with the next head in one send.
    /// Accepted (with a warning) so existing command lines and files keep working.
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

    /// Request header fields whose name contains `_`, which CGI- and WSGI-style backends read
    /// as `-` (`Content_Length` as Content-Length): `drop` leaves them out (as nginx does by
    /// default), `reject` answers 400, `allow` forwards them, except names that read as a
    /// framing or proxy field, which get 400.
    #[arg(long, value_name = "ACTION", default_value = "drop", value_parser = parse_underscores)]
    pub headers_with_underscores: UnderscoreAction,

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

    /// Consecutive connect failures or response timeouts after which a backend is skipped for
    /// `--fail-timeout` (passive health, as nginx's max_fails; counted per core); 0: never.
    /// 3 rather than nginx's 1, so one lost connection does not take a backend out.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_fails: u32,

    /// How long a backend that reached `--max-fails` is skipped before it is tried again.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub fail_timeout: Duration,
    /// At start, try one connection to each backend (in the background; readiness does not
    /// wait) and warn about each one that cannot be reached. `--backend-probe=false` for
    /// backends that should see no connection before a request.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub backend_probe: bool,

    /// On SIGTERM or SIGINT, how long in-flight requests may take to finish before exit.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// How long an upgraded (WebSocket) connection may move no byte either way before it is
    /// closed, as HAProxy's `timeout tunnel`. Long, since live-update channels are often quiet
    /// for minutes between messages.
    #[arg(long, value_name = "DUR", default_value = "1h", value_parser = parse_duration)]
    pub tunnel_idle_timeout: Duration,

    /// Serve Prometheus metrics at http://ADDR/metrics [default: off].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,

    /// Expect a PROXY protocol v1 or v2 header on every client connection (behind an L4
    /// load balancer); connections without one are closed. `--proxy-protocol=false` turns
    /// off what a config file turned on.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub proxy_protocol: bool,

    /// Access log: `off`, `stderr`, or a file path (appended to).
    #[arg(long, value_name = "DEST", default_value = "off")]
    pub access_log: String,

    /// Access log line format: `combined`, `json`, or an nginx-style template such as
    /// '$remote_addr "$request" $status $body_bytes_sent $request_time' (see
    /// docs/observability.md for the variables).
    #[arg(long, value_name = "FORMAT", default_value = "combined", value_parser = parse_log_format)]
    pub access_log_format: crate::access_log::Format,

    /// Requests in flight per core; more wait in the queue. The default holds 10,000
    /// concurrent slow requests on one core, with room to spare.
    #[arg(long, value_name = "N", default_value_t = 16384, value_parser = positive_usize)]
    pub max_requests_per_core: usize,

    /// Requests that may wait for a slot per core; beyond it they get 503 at once.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub queue_size: usize,

    /// Longest wait in the queue before 503 with Retry-After.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_duration)]
    pub queue_timeout: Duration,

    /// Open client connections per core beyond which the shard stops accepting (the kernel
    /// backlog holds the rest); 0 means no limit.
    #[arg(long, value_name = "N", default_value_t = 32768)]
    pub max_connections_per_core: usize,

    /// Open connections one client address may hold per core; more get 429 (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_connections_per_client: usize,

    /// Largest request body accepted; a larger Content-Length gets 413 before any of the body
    /// is read (0: no limit).
    #[arg(long, value_name = "SIZE", default_value = "0", value_parser = parse_size_or_zero)]
    pub client_max_body_size: usize,

    /// What to do with a client's valid `X-Request-Id` (1 to 128 visible ASCII characters):
    /// `generate` replaces it with corelay's own, `keep` forwards it. An invalid one is always
    /// replaced.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = RequestIdMode::Generate)]
    pub request_id: RequestIdMode,
}

/// `--request-id`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestIdMode {
    Generate,
    Keep,
}

/// `--access-log-format`: parsed (a template into its pieces) once, here.
fn parse_log_format(s: &str) -> Result<crate::access_log::Format, String> {
    s.parse()
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
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub backend_probe: bool,
    pub drain_timeout: Duration,
    pub tunnel_idle_timeout: Duration,
    pub metrics_listen: Option<SocketAddr>,
    pub proxy_protocol: bool,
    pub access_log: crate::access_log::Destination,
    pub access_log_format: crate::access_log::Format,
    pub max_requests_per_core: usize,
    pub queue_size: usize,
    pub queue_timeout: Duration,
    pub max_connections_per_core: usize,
    pub max_connections_per_client: usize,
    /// 0: no limit.
    pub client_max_body_size: u64,
    pub request_id: RequestIdMode,
    /// Backend groups; a request is routed to one of them. In command-line mode there is one,
    /// `default`, made of the `--backend` list.
    pub groups: Vec<Group>,
    pub routes: Vec<RouteConfig>,
}

/// How a group spreads requests over its backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    #[default]
    RoundRobin,
    /// Fewest requests in flight on this shard.
    LeastRequests,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub backends: Vec<SocketAddr>,
    pub policy: Policy,
    /// Active health checks (`health_check = { ... }` in the file); none by default.
    pub health: Option<HealthCheck>,
}

/// A group's active health check: `GET path` to each backend every `interval`; a 2xx or 3xx
/// within `timeout` is a success. Up after `rise` successes in a row, down after `fall`
/// failures in a row (HAProxy's `inter`/`timeout check`/`rise`/`fall`, same defaults but
/// interval and timeout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

#[derive(Clone, Debug)]
pub struct RouteConfig {
    pub host: crate::route::HostMatch,
    pub prefix: String,
    pub rewrite: crate::route::Rewrite,
    pub group: usize,
    pub auth: crate::auth::AuthConfig,
    /// Forward the credential header to the backend (it is stripped by default).
    pub keep_credentials: bool,
    /// Protocols a request may upgrade to (lower case); empty refuses every upgrade.
    pub upgrade: Vec<String>,
}

/// The protocols a route upgrades to unless it says otherwise.
pub fn default_upgrades() -> Vec<String> {
    vec!["websocket".to_string()]
}

/// How bodies are relayed (`--relay`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayMode {
    Auto,
    Ring,
}

/// K: buffers one transfer may hold (docs/relay.md): 4 of 64 KiB, 1/32 of the default ring of
/// 128 (8 MiB per shard), so 32 stalled readers are needed to take every buffer; more per
/// transfer only lets one transfer take more of the shared ring.
pub const DEFAULT_MAX_BUFFERS_PER_TRANSFER: usize = 4;

/// The retired `--relay-copy-below` default (the flag has no effect, see its help).
pub const DEFAULT_RELAY_COPY_BELOW: &str = "64KiB";

/// The retired `--relay-copy-below` default, in bytes, to tell whether one was given.
pub fn retired_copy_below() -> u64 {
    parse_size(DEFAULT_RELAY_COPY_BELOW).expect("valid default") as u64
}

/// Relay memory one shard may register (cores x this is the process total).
const MAX_RELAY_MEMORY_PER_SHARD: usize = 1 << 30;

/// Relay buffers smaller than this make a syscall per tiny read; larger than the maximum
/// make the fixed per-shard memory unreasonable for a single buffer.
const MIN_BUFFER_SIZE: usize = 1024;
const MAX_BUFFER_SIZE: usize = 16 * 1024 * 1024;

/// A request head must at least hold a request line and a Host header.
const MIN_HEADER_BYTES: usize = 256;

impl Config {
    /// Validates parsed flags (and what a config file adds); the error is one line naming
    /// the flag.
    pub fn from_args(args: Args, file: Option<FileConfig>) -> Result<Config, String> {
        let listen = resolve_one("--listen", &args.listen)?;
        let cli_backends = args
            .backends
            .iter()
            .map(|b| resolve_one("--backend", b))
            .collect::<Result<Vec<_>, _>>()?;
        let (groups, routes) = groups_and_routes(cli_backends, file)?;
        let backends = groups[routes[0].group].backends.clone();
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
        if args.max_header_bytes > MAX_HEADER_BYTES_LIMIT {
            return Err(format!(
                "--max-header-bytes {}: must be at most {MAX_HEADER_BYTES_LIMIT} (1 MiB)",
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
        let access_log = crate::access_log::Destination::parse(&args.access_log);
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
                underscores: args.headers_with_underscores,
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
            max_fails: args.max_fails,
            fail_timeout: args.fail_timeout,
            backend_probe: args.backend_probe,
            drain_timeout: args.drain_timeout,
            tunnel_idle_timeout: args.tunnel_idle_timeout,
            metrics_listen,
            proxy_protocol: args.proxy_protocol,
            access_log,
            access_log_format: args.access_log_format,
            max_requests_per_core: args.max_requests_per_core,
            queue_size: args.queue_size,
            queue_timeout: args.queue_timeout,
            max_connections_per_core: args.max_connections_per_core,
            max_connections_per_client: args.max_connections_per_client,
            client_max_body_size: args.client_max_body_size as u64,
            request_id: args.request_id,
            groups,
            routes,
        })
    }
}

/// What the command line asks for.
pub enum Action {
    Run(Box<Config>),
    /// `corelay check`: the file's errors, if any (one line each).
    Check(Result<(), Vec<String>>),
    HashPassword,
    /// `--help` or `--version`: the text to print, exit 0.
    Print(String),
}

/// Parses the process arguments (reading `--config` if given). On error returns the one-line
/// message to print.
pub fn parse_args<I, T>(args: I) -> Result<Action, String>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => return clap_error(e),
    };
    match cli.command {
        Some(Sub::HashPassword) => return Ok(Action::HashPassword),
        Some(Sub::Check { config }) => {
            let checked = config_file::load(&config).and_then(|file| {
                let locator = file.locator();
                let mut full = vec![argv[0].clone()];
                full.extend(file.args_under(&[]));
                let args = Cli::try_parse_from(&full)
                    .map_err(|e| vec![locator.locate(&first_paragraph(&e.to_string()))])?
                    .args;
                let config =
                    Config::from_args(args, Some(file)).map_err(|e| vec![locator.locate(&e)])?;
                let problems = check_environment(&config);
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(problems.iter().map(|e| locator.locate(e)).collect())
                }
            });
            return Ok(Action::Check(checked));
        }
        None => {}
    }
    let (args, file) = match cli.args.config.clone() {
        None => (cli.args, None),
        Some(path) => {
            let file = config_file::load(&path).map_err(|errors| {
                let more = if errors.len() > 1 {
                    format!(
                        " (and {} more; run `corelay check --config FILE`)",
                        errors.len() - 1
                    )
                } else {
                    String::new()
                };
                format!("error: {}{more}", errors[0])
            })?;
            // The file's keys as flags first, then the command line, which wins.
            let locator = file.locator();
            let mut full = vec![argv[0].clone()];
            full.extend(file.args_under(&argv[1..]));
            full.extend(argv[1..].iter().cloned());
            // An error about a flag the command line gave is the command line's; otherwise it
            // comes from the file (e.g. two keys that conflict) and names its line.
            let place = |e: String| {
                let on_cli = argv[1..].iter().any(|a| {
                    let a = a.to_string_lossy();
                    a.starts_with("--") && e.contains(a.split('=').next().unwrap_or(""))
                });
                if on_cli {
                    e
                } else {
                    format!("error: {}", locator.locate(&e))
                }
            };
            return match Cli::try_parse_from(&full) {
                Ok(c) => Config::from_args(c.args, Some(file))
                    .map(|c| Action::Run(Box::new(c)))
                    .map_err(|e| place(format!("error: {e}"))),
                Err(e) => clap_error(e).map_err(place),
            };
        }
    };
    Config::from_args(args, file)
        .map(|c| Action::Run(Box::new(c)))
        .map_err(|e| format!("error: {e}"))
}

fn clap_error(e: clap::Error) -> Result<Action, String> {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Ok(Action::Print(e.to_string())),
        _ => Err(first_paragraph(&e.to_string())),
    }
}

/// clap's first paragraph names the flag (sometimes on an indented second line); usage and
/// hints follow a blank line.
fn first_paragraph(text: &str) -> String {
    let first: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    first.join(" ")
}

/// What a config file key must hold to stand for its flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagKind {
    /// `true` or `false`: the flag is written `--flag=true` / `--flag=false`, so a file's
    /// `true` can be switched off on the command line (the last one given wins).
    Bool,
    /// A plain switch (`--flag`, no value): `true` gives the flag, `false` leaves it out.
    Switch,
    /// Anything else: a string or a number, given as the flag's value.
    Value,
}

/// Whether `--flag` is a boolean, from clap's own description of it (a boolean flag takes
/// `true` or `false` as its optional value), so a flag added later needs no list kept here.
pub fn flag_kind(flag: &str) -> FlagKind {
    use clap::CommandFactory;
    let long = flag.trim_start_matches("--");
    let cmd = Cli::command();
    let Some(arg) = cmd.get_arguments().find(|a| a.get_long() == Some(long)) else {
        return FlagKind::Value;
    };
    if matches!(
        arg.get_action(),
        clap::ArgAction::SetTrue | clap::ArgAction::SetFalse
    ) {
        return FlagKind::Switch;
    }
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .map(|v| v.get_name().to_string())
        .collect();
    if values == ["true", "false"] {
        FlagKind::Bool
    } else {
        FlagKind::Value
    }
}

/// Checks one flag with its value the way the command line would (for config file keys).
pub(crate) fn check_flag(flag: &[OsString]) -> Result<(), String> {
    let mut argv: Vec<OsString> = vec!["corelay".into()];
    argv.extend(flag.iter().cloned());
    let cli = Cli::try_parse_from(&argv).map_err(|e| {
        first_paragraph(&e.to_string())
            .trim_start_matches("error: ")
            .to_string()
    })?;
    // Values only the validation step refuses (e.g. a bad address) are checked there.
    let a = &cli.args;
    if flag.first().is_some_and(|f| f == "--listen") {
        resolve_one("--listen", &a.listen)?;
    }
    if let Some(m) = &a.metrics_listen {
        resolve_one("--metrics-listen", m)?;
    }
    if let Some(c) = &a.cpus {
        shards::parse_cpu_list(c)?;
    }
    Ok(())
}

/// What `corelay check` can find out without starting: that the access log can be created
/// or appended to (backend addresses have resolved and route groups exist by the time a
/// [`Config`] is built). One message per problem, naming the flag.
pub fn check_environment(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if let crate::access_log::Destination::File(path) = &config.access_log {
        if let Err(e) = check_writable_file(path) {
            problems.push(format!("--access-log {}: {e}", path.display()));
        }
    }
    problems
}

/// Whether `path` could be opened for appending (created if missing), without creating it.
fn check_writable_file(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let writable = |p: &std::path::Path| {
        let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: access(2) on a NUL-terminated path; it only reads it.
        unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err("is a directory".into()),
        Ok(_) if writable(path) => return Ok(()),
        Ok(_) => return Err("the file is not writable".into()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.to_string()),
        Err(_) => {}
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(format!("{} is not a directory", dir.display())),
        Ok(_) if writable(dir) => Ok(()),
        Ok(_) => Err(format!(
            "cannot create the file: directory {} is not writable",
            dir.display()
        )),
        Err(_) => Err(format!("directory {} does not exist", dir.display())),
    }
}

/// The backend groups and routes: from the file, or the command line's `--backend` list as
/// the `default` group behind one catch-all route. `--backend` on the command line replaces
/// the file's top-level `backends`.
fn groups_and_routes(
    cli_backends: Vec<SocketAddr>,
    file: Option<FileConfig>,
) -> Result<(Vec<Group>, Vec<RouteConfig>), String> {
    let mut groups = Vec::new();
    let mut routes = Vec::new();
    if let Some(file) = file {
        groups = file.groups;
        routes = file.routes;
        if !cli_backends.is_empty() {
            match groups.iter_mut().find(|g| g.name == "default") {
                Some(g) => g.backends = cli_backends.clone(),
                None => groups.push(Group {
                    name: "default".into(),
                    backends: cli_backends.clone(),
                    policy: Policy::RoundRobin,
                    health: None,
                }),
            }
        }
    } else if !cli_backends.is_empty() {
        groups.push(Group {
            name: "default".into(),
            backends: cli_backends,
            policy: Policy::RoundRobin,
            health: None,
        });
    }
    if routes.is_empty() {
        let Some(default) = groups.iter().position(|g| g.name == "default") else {
            return Err(if groups.is_empty() {
                "no backend: give --backend ADDR, or a config file with backends or groups".into()
            } else {
                "no route: a config file with groups needs [[routes]] (or top-level 'backends')"
                    .into()
            });
        };
        routes.push(RouteConfig {
            host: crate::route::HostMatch::Any,
            prefix: "/".into(),
            rewrite: crate::route::Rewrite::Keep,
            group: default,
            auth: crate::auth::AuthConfig::None,
            keep_credentials: false,
            upgrade: default_upgrades(),
        });
    }
    Ok((groups, routes))
}

pub(crate) fn resolve_one(flag: &str, s: &str) -> Result<SocketAddr, String> {
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

fn parse_underscores(s: &str) -> Result<UnderscoreAction, String> {
    UnderscoreAction::from_name(s)
        .ok_or_else(|| format!("expected one of {}", UnderscoreAction::NAMES.join(", ")))
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
            Err(e) => e,
            Ok(_) => panic!("expected an error for {args:?}"),
        }
    }

    /// The configuration `args` run with.
    fn run_of<'a>(args: impl IntoIterator<Item = &'a str>) -> Config {
        match parse_args(args) {
            Ok(Action::Run(c)) => *c,
            Ok(_) => panic!("not a run"),
            Err(e) => panic!("{e}"),
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
        let e = err_of(&with(&["--relay", "copy"]));
        assert!(e.contains("--relay"), "{e}");
        let c = run_of(with(&["--relay", "ring", "--relay-copy-below", "0"]));
        assert_eq!(c.relay, RelayMode::Ring);
        assert_eq!(c.relay_copy_below, 0);
        let c = run_of(base);
        assert_eq!(c.relay, RelayMode::Auto);
        assert_eq!(c.max_buffers_per_transfer, DEFAULT_MAX_BUFFERS_PER_TRANSFER);
    }
    #[test]
    fn head_limits_are_bounded() {
        let with = |flag: &str, v: &str| {
            parse_args(["corelay", "--backend", "127.0.0.1:1", flag, v]).map(|a| match a {
                Action::Run(c) => c.limits,
                _ => panic!("not a run"),
            })
        };
        assert_eq!(
            with("--max-header-bytes", "1MiB").unwrap().max_header_bytes,
            MAX_HEADER_BYTES_LIMIT
        );
        let e = with("--max-header-bytes", "1048577").unwrap_err();
        assert!(
            e.contains("--max-header-bytes") && e.contains("at most"),
            "{e}"
        );
        assert_eq!(
            with("--max-headers", "512").unwrap().max_headers,
            MAX_HEADERS_LIMIT
        );
        let e = with("--max-headers", "513").unwrap_err();
        assert!(e.contains("--max-headers") && e.contains("at most"), "{e}");
    }

    #[test]
    fn headers_with_underscores_flag() {
        let base = ["corelay", "--backend", "127.0.0.1:1"];
        assert_eq!(run_of(base).limits.underscores, UnderscoreAction::Drop);
        for (name, action) in [
            ("allow", UnderscoreAction::Allow),
            ("drop", UnderscoreAction::Drop),
            ("reject", UnderscoreAction::Reject),
        ] {
            let mut args = base.to_vec();
            args.extend(["--headers-with-underscores", name]);
            assert_eq!(run_of(args).limits.underscores, action);
        }
        let mut args = base.to_vec();
        args.extend(["--headers-with-underscores", "ignore"]);
        let e = err_of(&args);
        assert!(
            e.contains("--headers-with-underscores") && e.contains("allow, drop, reject"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
}
