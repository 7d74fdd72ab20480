//! The TOML config file: every command-line flag as a top-level key, plus backend groups and
//! routes, which only the file can express.
//!
//! Flag keys are checked by turning them into the flags they stand for and running them
//! through the same parser as the command line, so a key and its flag accept exactly the same
//! values; the command line is then appended, so a flag given there wins. Every error names
//! the file, the line and the key (`corelay.toml:12: key 'listen': ...`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::auth::{AuthConfig, Authorizer, DEFAULT_REALM};
use crate::config::{FlagKind, Group, Policy, RouteConfig};
use crate::route::{HostMatch, Rewrite};

/// Declares the top-level keys that mirror command-line flags (key `a_b` is flag `--a-b`).
macro_rules! flag_keys {
    ($($key:ident),* $(,)?) => {
        /// Unknown keys are not refused here but found by [`unknown_keys`], which reports
        /// every one of them instead of stopping at the first.
        #[derive(Deserialize, Default)]
        struct Raw {
            $( #[serde(default)] $key: Option<Spanned<toml::Value>>, )*
            #[serde(default)]
            backends: Option<Spanned<Vec<Spanned<String>>>>,
            #[serde(default)]
            groups: BTreeMap<String, Spanned<RawGroup>>,
            #[serde(default)]
            routes: Vec<Spanned<RawRoute>>,
        }

        /// The flag keys, for unknown-key suggestions.
        const FLAG_KEYS: &[&str] = &[$(stringify!($key)),*];

        impl Raw {
            fn flag_values(&self) -> Vec<(&'static str, &Spanned<toml::Value>)> {
                let mut v = Vec::new();
                $( if let Some(x) = &self.$key { v.push((stringify!($key), x)); } )*
                v
            }
        }
    };
}

flag_keys!(
    listen,
    cores,
    cpus,
    backlog,
    buffer_size,
    buffer_ring_size,
    max_buffers_per_transfer,
    relay,
    relay_copy_below,
    max_header_bytes,
    max_headers,
    max_target_len,
    headers_with_underscores,
    client_header_timeout,
    client_keepalive_timeout,
    client_body_timeout,
    send_timeout,
    backend_connect_timeout,
    backend_response_timeout,
    backend_idle_timeout,
    backend_max_idle,
    backend_retry_backoff,
    max_fails,
    fail_timeout,
    backend_probe,
    drain_timeout,
    tunnel_idle_timeout,
    metrics_listen,
    proxy_protocol,
    access_log,
    access_log_format,
    max_requests_per_core,
    queue_size,
    queue_timeout,
    max_connections_per_core,
    max_connections_per_client,
    client_max_body_size,
    request_id,
);

/// The keys of a group and of a route (checked by [`unknown_keys`]).
const GROUP_KEYS: &[&str] = &["backends", "balance", "health_check"];
const ROUTE_KEYS: &[&str] = &[
    "host",
    "path",
    "group",
    "strip_prefix",
    "replace_prefix",
    "auth",
    "keep_credentials",
    "upgrade",
];
/// The top-level keys that are not flags.
const TABLE_KEYS: &[&str] = &["backends", "groups", "routes"];

#[derive(Deserialize)]
struct RawGroup {
    backends: Vec<Spanned<String>>,
    #[serde(default)]
    balance: Option<Spanned<String>>,
    #[serde(default)]
    health_check: Option<Spanned<RawHealthCheck>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealthCheck {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    rise: Option<u32>,
    #[serde(default)]
    fall: Option<u32>,
}

impl RawHealthCheck {
    /// Defaults: `/`, every 2 s, 1 s to answer, up after 2, down after 3.
    fn to_config(&self) -> Result<crate::config::HealthCheck, String> {
        let dur = |key: &str, v: &Option<String>, default: &str| {
            crate::config::parse_duration(v.as_deref().unwrap_or(default))
                .map_err(|e| format!("{key}: {e}"))
        };
        let hc = crate::config::HealthCheck {
            path: self.path.clone().unwrap_or_else(|| "/".into()),
            interval: dur("interval", &self.interval, "2s")?,
            timeout: dur("timeout", &self.timeout, "1s")?,
            rise: self.rise.unwrap_or(2),
            fall: self.fall.unwrap_or(3),
        };
        if !hc.path.starts_with('/') || !hc.path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "path: '{}' must start with '/' and have no spaces",
                hc.path
            ));
        }
        if hc.timeout > hc.interval {
            return Err("timeout: longer than interval (probes would overlap)".into());
        }
        if hc.rise == 0 || hc.fall == 0 {
            return Err("rise and fall: must be at least 1".into());
        }
        Ok(hc)
    }
}

#[derive(Deserialize)]
struct RawRoute {
    #[serde(default)]
    host: Option<Spanned<String>>,
    #[serde(default)]
    path: Option<Spanned<String>>,
    group: Spanned<String>,
    #[serde(default)]
    strip_prefix: bool,
    #[serde(default)]
    replace_prefix: Option<Spanned<String>>,
    #[serde(default)]
    auth: Option<Spanned<AuthSpec>>,
    #[serde(default)]
    keep_credentials: bool,
    #[serde(default)]
    upgrade: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A route's `upgrade` list: protocol names (tokens), lower-cased. `h2c` is refused rather
/// than ignored, so that a file never seems to allow what corelay always strips.
fn upgrade_list(list: &[Spanned<String>]) -> Result<Vec<String>, (std::ops::Range<usize>, String)> {
    list.iter()
        .map(|p| {
            let name = p.get_ref();
            if name.is_empty() || !name.bytes().all(crate::http1::is_tchar) {
                Err((
                    p.span(),
                    format!("'{name}' is not a protocol name (a token such as websocket)"),
                ))
            } else if name.eq_ignore_ascii_case("h2c") {
                Err((
                    p.span(),
                    "h2c is never upgraded to (corelay always strips it)".into(),
                ))
            } else {
                Ok(name.to_ascii_lowercase())
            }
        })
        .collect()
}

/// A route's authorization, as written in the file. No `Debug`: it holds secrets; it is
/// turned into an [`AuthConfig`], whose `Debug` redacts them.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSpec {
    None,
    /// `Authorization: Bearer <token>`.
    Bearer {
        tokens: Vec<String>,
        #[serde(default)]
        realm: Option<String>,
    },
    /// A key in a header of its own, e.g. `X-Api-Key`.
    ApiKey {
        header: String,
        keys: Vec<String>,
    },
    /// `Authorization: Basic`; passwords as stored by `corelay hash-password`.
    Basic {
        #[serde(default)]
        realm: Option<String>,
        users: BTreeMap<String, String>,
    },
}

impl AuthSpec {
    fn to_config(&self) -> AuthConfig {
        let realm = |r: &Option<String>| r.clone().unwrap_or_else(|| DEFAULT_REALM.to_string());
        match self {
            AuthSpec::None => AuthConfig::None,
            AuthSpec::Bearer { tokens, realm: r } => AuthConfig::Bearer {
                realm: realm(r),
                tokens: tokens.clone(),
            },
            AuthSpec::ApiKey { header, keys } => AuthConfig::ApiKey {
                header: header.clone(),
                keys: keys.clone(),
            },
            AuthSpec::Basic { realm: r, users } => AuthConfig::Basic {
                realm: realm(r),
                users: users.iter().map(|(u, h)| (u.clone(), h.clone())).collect(),
            },
        }
    }
}

/// One flag key of the file: the arguments it stands for and where it is.
pub struct FileFlag {
    pub key: &'static str,
    pub args: Vec<OsString>,
    pub line: usize,
}

/// What the file contributes beyond flags.
pub struct FileConfig {
    pub path: PathBuf,
    /// The flag keys, to be parsed (as `--key value`) before the command line's arguments.
    pub flags: Vec<FileFlag>,
    /// The default group's backends (`backends = [...]`).
    pub backends: Vec<SocketAddr>,
    pub groups: Vec<Group>,
    pub routes: Vec<RouteConfig>,
}

/// Reads and validates `path`. Errors are one line each: `path:line: key 'k': message`.
pub fn load(path: &Path) -> Result<FileConfig, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<FileConfig, Vec<String>> {
    let at =
        |span: std::ops::Range<usize>| format!("{}:{}", path.display(), line_of(text, span.start));
    let serde_error = |e: toml::de::Error| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
        format!(
            "{}:{line}: {}",
            path.display(),
            e.message().replace('\n', " ")
        )
    };
    // Every unknown key first (a syntax error stops everything: nothing after it is known).
    let mut errors = unknown_keys(path, text).map_err(|e| vec![serde_error(e)])?;
    let raw: Raw = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            // A value of the wrong type in a group or route: reported with the unknown keys.
            errors.push(serde_error(e));
            return Err(by_line(path, errors));
        }
    };

    let mut flags = Vec::new();
    for (key, value) in raw.flag_values() {
        let flag = format!("--{}", key.replace('_', "-"));
        let kind = crate::config::flag_kind(&flag);
        let boolean = matches!(kind, FlagKind::Bool | FlagKind::Switch);
        let one: Vec<OsString> = match (value.get_ref(), kind) {
            (toml::Value::Boolean(b), FlagKind::Bool) => vec![format!("{flag}={b}").into()],
            (toml::Value::Boolean(true), FlagKind::Switch) => vec![flag.clone().into()],
            (toml::Value::Boolean(false), FlagKind::Switch) => vec![],
            _ if boolean => {
                errors.push(format!(
                    "{}: key '{key}': expected true or false, not {}",
                    at(value.span()),
                    describe(value.get_ref())
                ));
                continue;
            }
            (toml::Value::String(s), _) => vec![flag.clone().into(), s.into()],
            (toml::Value::Integer(i), _) => vec![flag.clone().into(), i.to_string().into()],
            (other, _) => {
                errors.push(format!(
                    "{}: key '{key}': expected a string or a number, not {}",
                    at(value.span()),
                    describe(other)
                ));
                continue;
            }
        };
        if let Err(e) = crate::config::check_flag(&one) {
            errors.push(format!("{}: key '{key}': {e}", at(value.span())));
        }
        flags.push(FileFlag {
            key,
            args: one,
            line: line_of(text, value.span().start),
        });
    }

    let resolve = |key: &str, a: &Spanned<String>, errors: &mut Vec<String>| {
        match crate::config::resolve_one(key, a.get_ref()) {
            Ok(addr) => Some(addr),
            Err(e) => {
                errors.push(format!("{}: key '{key}': {e}", at(a.span())));
                None
            }
        }
    };
    let backends: Vec<SocketAddr> = raw
        .backends
        .iter()
        .flat_map(|b| b.get_ref().iter())
        .filter_map(|a| resolve("backends", a, &mut errors))
        .collect();

    let mut groups = Vec::new();
    if !backends.is_empty() {
        groups.push(Group {
            name: "default".into(),
            backends: backends.clone(),
            policy: Policy::RoundRobin,
            health: None,
        });
    }
    for (name, g) in &raw.groups {
        if name == "default" && !backends.is_empty() {
            errors.push(format!(
                "{}: group 'default': already defined by the top-level 'backends' key",
                at(g.span())
            ));
            continue;
        }
        let g_ref = g.get_ref();
        let addrs: Vec<SocketAddr> = g_ref
            .backends
            .iter()
            .filter_map(|a| resolve("backends", a, &mut errors))
            .collect();
        if g_ref.backends.is_empty() {
            errors.push(format!(
                "{}: group '{name}': 'backends' is empty",
                at(g.span())
            ));
        }
        let policy = match g_ref
            .balance
            .as_ref()
            .map(|b| (b.get_ref().as_str(), b.span()))
        {
            None | Some(("round_robin", _)) => Policy::RoundRobin,
            Some(("least_requests", _)) => Policy::LeastRequests,
            Some((other, span)) => {
                errors.push(format!(
                    "{}: key 'balance': unknown policy '{other}' (use round_robin or least_requests)",
                    at(span)
                ));
                Policy::RoundRobin
            }
        };
        let health = match &g_ref.health_check {
            None => None,
            Some(h) => match h.get_ref().to_config() {
                Ok(hc) => Some(hc),
                Err(e) => {
                    errors.push(format!("{}: key 'health_check': {e}", at(h.span())));
                    None
                }
            },
        };
        groups.push(Group {
            name: name.clone(),
            backends: addrs,
            policy,
            health,
        });
    }

    let mut routes = Vec::new();
    for r in &raw.routes {
        let rr = r.get_ref();
        let Some(group) = groups.iter().position(|g| g.name == *rr.group.get_ref()) else {
            errors.push(format!(
                "{}: key 'group': no group named '{}'",
                at(rr.group.span()),
                rr.group.get_ref()
            ));
            continue;
        };
        let host = match &rr.host {
            None => HostMatch::Any,
            Some(h) => match HostMatch::parse(h.get_ref()) {
                Ok(m) => m,
                Err(e) => {
                    errors.push(format!("{}: key 'host': {e}", at(h.span())));
                    continue;
                }
            },
        };
        let prefix = match &rr.path {
            None => "/".to_string(),
            Some(p) if p.get_ref().starts_with('/') => p.get_ref().clone(),
            Some(p) => {
                errors.push(format!(
                    "{}: key 'path': '{}' must start with '/'",
                    at(p.span()),
                    p.get_ref()
                ));
                continue;
            }
        };
        let rewrite = match (&rr.replace_prefix, rr.strip_prefix) {
            (Some(p), true) => {
                errors.push(format!(
                    "{}: key 'replace_prefix': use either strip_prefix or replace_prefix",
                    at(p.span())
                ));
                continue;
            }
            (Some(p), false) if !p.get_ref().starts_with('/') => {
                errors.push(format!(
                    "{}: key 'replace_prefix': '{}' must start with '/'",
                    at(p.span()),
                    p.get_ref()
                ));
                continue;
            }
            (Some(p), false) => Rewrite::Replace(p.get_ref().clone()),
            (None, true) => Rewrite::Replace(String::new()),
            (None, false) => Rewrite::Keep,
        };
        let auth = match &rr.auth {
            None => AuthConfig::None,
            Some(a) => {
                let auth = a.get_ref().to_config();
                // Building an authorizer checks tokens, names and stored hashes (cheaply).
                if let Err(e) = Authorizer::new(&auth, rr.keep_credentials) {
                    errors.push(format!("{}: key 'auth': {e}", at(a.span())));
                    continue;
                }
                auth
            }
        };
        let upgrade = match &rr.upgrade {
            None => crate::config::default_upgrades(),
            Some(list) => match upgrade_list(list.get_ref()) {
                Ok(v) => v,
                Err((span, e)) => {
                    errors.push(format!("{}: key 'upgrade': {e}", at(span)));
                    continue;
                }
            },
        };
        routes.push(RouteConfig {
            host,
            prefix,
            rewrite,
            group,
            auth,
            keep_credentials: rr.keep_credentials,
            upgrade,
        });
    }
    if !raw.routes.is_empty() && routes.is_empty() && errors.is_empty() {
        errors.push(format!("{}: no usable route", path.display()));
    }
    if errors.is_empty() {
        Ok(FileConfig {
            path: path.to_path_buf(),
            flags,
            backends,
            groups,
            routes,
        })
    } else {
        Err(by_line(path, errors))
    }
}

/// `errors` in the order of the file's lines (each starts `FILE:LINE:`; a message without a
/// line comes last), so a long list reads top to bottom like the file.
fn by_line(path: &Path, mut errors: Vec<String>) -> Vec<String> {
    let prefix = format!("{}:", path.display());
    errors.sort_by_key(|e| {
        e.strip_prefix(&prefix)
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(usize::MAX)
    });
    errors
}

impl FileConfig {
    /// The file's flags as arguments, leaving out keys the command line sets itself when
    /// the two would conflict rather than override (`cores` against `cpus`).
    pub fn args_under(&self, cli: &[OsString]) -> Vec<OsString> {
        let given = |flag: &str| {
            cli.iter().any(|a| {
                let a = a.to_string_lossy();
                a == flag || a.starts_with(&format!("{flag}="))
            })
        };
        let cpu_choice_on_cli = given("--cores") || given("--cpus");
        self.flags
            .iter()
            .filter(|f| !(cpu_choice_on_cli && matches!(f.key, "cores" | "cpus")))
            .flat_map(|f| f.args.iter().cloned())
            .collect()
    }

    /// What is needed to put later errors in the file's terms (see [`Locator::locate`]).
    pub fn locator(&self) -> Locator {
        Locator {
            path: self.path.clone(),
            keys: self.flags.iter().map(|f| (f.key, f.line)).collect(),
        }
    }
}

/// Places errors found after the file was read (those involving several keys).
pub struct Locator {
    path: PathBuf,
    keys: Vec<(&'static str, usize)>,
}

impl Locator {
    /// Puts a validation error that names a flag in the file's terms: `FILE:LINE: key 'k': ...`
    /// for the first flag it mentions that the file sets.
    pub fn locate(&self, error: &str) -> String {
        let error = error.trim_start_matches("error: ");
        for (key, line) in &self.keys {
            let flag = format!("--{}", key.replace('_', "-"));
            // The whole flag: `--access-log` is not named by `--access-log-format ...`.
            let named = error.match_indices(&flag).any(|(i, _)| {
                !error[i + flag.len()..]
                    .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
            });
            if named {
                return format!("{}:{line}: key '{key}': {error}", self.path.display());
            }
        }
        format!("{}: {error}", self.path.display())
    }
}

/// A TOML value's kind, for "expected X, not Y".
fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("the string {s:?}"),
        toml::Value::Integer(i) => format!("the number {i}"),
        toml::Value::Float(f) => format!("the number {f}"),
        toml::Value::Boolean(b) => format!("{b}"),
        toml::Value::Datetime(_) => "a date".into(),
        toml::Value::Array(_) => "a list".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

/// Groups and routes by their keys; `None` when they do not have the shape of tables (the
/// typed pass reports that).
#[derive(Deserialize)]
struct NestedKeys {
    #[serde(default)]
    groups: BTreeMap<String, BTreeMap<Spanned<String>, serde::de::IgnoredAny>>,
    #[serde(default)]
    routes: Vec<BTreeMap<Spanned<String>, serde::de::IgnoredAny>>,
}

/// An error for every key the file has that corelay does not know, at any level, with
/// the nearest known key. The document is read for its key names only (every value is
/// skipped). Err only for a document that is not valid TOML.
fn unknown_keys(path: &Path, text: &str) -> Result<Vec<String>, toml::de::Error> {
    let top_keys: BTreeMap<Spanned<String>, serde::de::IgnoredAny> = toml::from_str(text)?;
    let mut errors = Vec::new();
    let mut unknown = |key: &Spanned<String>, known: &[&'static str], within: &str| {
        if known.contains(&key.get_ref().as_str()) {
            return;
        }
        errors.push(format!(
            "{}:{}: key '{}': unknown key{within}{}",
            path.display(),
            line_of(text, key.span().start),
            key.get_ref(),
            crate::suggest::hint(key.get_ref(), known.iter().copied())
        ));
    };
    let top: Vec<&str> = FLAG_KEYS.iter().chain(TABLE_KEYS).copied().collect();
    for key in top_keys.keys() {
        unknown(key, &top, "");
    }
    if let Ok(nested) = toml::from_str::<NestedKeys>(text) {
        for (name, group) in &nested.groups {
            for key in group.keys() {
                unknown(key, GROUP_KEYS, &format!(" in group '{name}'"));
            }
        }
        for route in &nested.routes {
            for key in route.keys() {
                unknown(key, ROUTE_KEYS, " in a route");
            }
        }
    }
    Ok(errors)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<String> {
        match parse(Path::new("t.toml"), text) {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn flags_groups_and_routes() {
        let f = parse(
            Path::new("t.toml"),
            r#"
listen = "127.0.0.1:8080"
cores = 1
proxy_protocol = true
client_header_timeout = "5s"
backends = ["127.0.0.1:9000"]

[groups.api]
backends = ["127.0.0.1:9001", "127.0.0.1:9002"]
balance = "least_requests"

[[routes]]
host = "*.example.com"
path = "/api"
group = "api"
strip_prefix = true
auth = { type = "bearer", tokens = ["t1"] }

[[routes]]
group = "default"
"#,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let args: Vec<String> = f
            .args_under(&[])
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.windows(2).any(|w| w == ["--listen", "127.0.0.1:8080"]));
        assert!(args.windows(2).any(|w| w == ["--cores", "1"]));
        assert!(args.contains(&"--proxy-protocol=true".to_string()));
        assert_eq!(f.groups.len(), 2);
        assert_eq!(f.groups[1].policy, Policy::LeastRequests);
        assert_eq!(f.routes.len(), 2);
        assert_eq!(f.routes[0].group, 1);
        assert_eq!(f.routes[0].rewrite, Rewrite::Replace(String::new()));
        assert!(matches!(f.routes[0].auth, AuthConfig::Bearer { .. }));
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = errs("listen = \"127.0.0.1:1\"\nbogus = 1\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("t.toml:2:") && e[0].contains("bogus"),
            "{e:?}"
        );
        let e = errs("listen = \"nonsense\"\n");
        assert!(e[0].starts_with("t.toml:1: key 'listen'"), "{e:?}");
        let e =
            errs("backends = [\"127.0.0.1:1\"]\n\n[[routes]]\npath = \"/x\"\ngroup = \"nope\"\n");
        assert!(
            e[0].starts_with("t.toml:5: key 'group'") && e[0].contains("nope"),
            "{e:?}"
        );
        let e = errs("backends = [\"127.0.0.1:1\"]\n[[routes]]\ngroup = \"default\"\nauth = { type = \"basic\", users = { ann = \"plain\" } }\n");
        assert!(
            e[0].starts_with("t.toml:4: key 'auth'") && e[0].contains("ann"),
            "{e:?}"
        );
        let e = errs("client_header_timeout = \"5x\"\ncores = 0\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e.iter().all(|l| !l.contains('\n')));
    }

    #[test]
    fn health_checks_and_upgrade_lists() {
        let f = parse(
            Path::new("t.toml"),
            "[groups.a]\nbackends = [\"127.0.0.1:1\"]\nhealth_check = { path = \"/hz\", interval = \"5s\" }\n\
             [[routes]]\ngroup = \"a\"\nupgrade = [\"WebSocket\"]\n",
        )
        .unwrap();
        let hc = f.groups[0].health.as_ref().unwrap();
        assert_eq!(
            (hc.path.as_str(), hc.interval, hc.timeout, hc.rise, hc.fall),
            (
                "/hz",
                std::time::Duration::from_secs(5),
                std::time::Duration::from_secs(1),
                2,
                3
            )
        );
        assert_eq!(f.routes[0].upgrade, vec!["websocket".to_string()]);
        for (bad, why) in [
            ("health_check = { path = \"hz\" }", "must start with '/'"),
            (
                "health_check = { interval = \"1s\", timeout = \"2s\" }",
                "longer than interval",
            ),
            ("health_check = { rise = 0 }", "at least 1"),
            ("health_check = { interval = \"soon\" }", "interval:"),
        ] {
            let e = errs(&format!(
                "[groups.a]\nbackends = [\"127.0.0.1:1\"]\n{bad}\n[[routes]]\ngroup = \"a\"\n"
            ));
            assert!(
                e[0].starts_with("t.toml:3: key 'health_check'") && e[0].contains(why),
                "{e:?}"
            );
        }
        let e = errs(
            "backends = [\"127.0.0.1:1\"]\n[[routes]]\ngroup = \"default\"\nupgrade = [\"h2c\"]\n",
        );
        assert!(
            e[0].starts_with("t.toml:4: key 'upgrade'") && e[0].contains("h2c"),
            "{e:?}"
        );
        let e = errs(
            "backends = [\"127.0.0.1:1\"]\n[[routes]]\ngroup = \"default\"\nupgrade = [\"a b\"]\n",
        );
        assert!(e[0].contains("not a protocol name"), "{e:?}");
    }
}
