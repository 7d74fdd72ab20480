//! Which series exist: fixed by the configuration (routes, groups, backends) and by the
//! closed set of status codes, never by what a client sends, so a scrape's size is known at
//! start. Every series has a slot (an index into a shard's cells) and its label text.

use std::net::SocketAddr;

use crate::config::Config;
use crate::route::HostMatch;

/// Status codes corelay answers with itself, each counted in a series of its own
/// (`source="proxy"`): 200 for TRACE/OPTIONS it answers as the final recipient, the refusals
/// of the gate phases, 499 (nginx's: the client left before an answer, nothing was sent),
/// and the 502/503/504 that stand for a failed backend or a full shard.
pub const PROXY_CODES: [u16; 17] = [
    200, 400, 401, 403, 404, 408, 413, 414, 417, 429, 431, 499, 501, 502, 503, 504, 505,
];

/// A backend's status codes are counted by class (`source="backend"`, `code="2xx"`...): the
/// backend decides them, and one series per code it might send would let it (or a client
/// steering it) grow the scrape without bound.
pub const BACKEND_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Status slots per route.
pub const CODE_SLOTS: usize = PROXY_CODES.len() + BACKEND_CLASSES.len();

/// Who produced the status a request ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Source {
    /// corelay answered (or cut the connection) itself.
    #[default]
    Proxy,
    /// The backend's response head was relayed.
    Backend,
}

/// The status slot of a request's outcome.
pub fn code_slot(status: u16, source: Source) -> usize {
    if source == Source::Proxy {
        if let Some(i) = PROXY_CODES.iter().position(|&c| c == status) {
            return i;
        }
        // Every code the proxy makes is listed (the unit test below checks the error paths'
        // codes); one that is not would still be counted, by class.
        debug_assert!(false, "status {status} missing from PROXY_CODES");
    }
    let class = usize::from(status / 100).clamp(1, BACKEND_CLASSES.len()) - 1;
    PROXY_CODES.len() + class
}

/// The `code` and `source` label values of a status slot.
pub fn code_labels(slot: usize) -> (String, &'static str) {
    match PROXY_CODES.get(slot) {
        Some(c) => (c.to_string(), "proxy"),
        None => (
            BACKEND_CLASSES[slot - PROXY_CODES.len()].to_string(),
            "backend",
        ),
    }
}

/// Label text of one backend: `group="..",backend=".."`.
#[derive(PartialEq, Eq)]
pub struct BackendLabels {
    pub group: String,
    pub addr: SocketAddr,
}

#[derive(PartialEq, Eq)]
pub struct Layout {
    /// `route="..",group=".."` per route, in `config.routes` order, then one for requests no
    /// route took (refused before routing, or no route matched): `route="-",group="-"`.
    pub routes: Vec<String>,
    /// Every backend of every group, group by group (a backend in two groups is two series:
    /// each group has its own pool and balancer).
    pub backends: Vec<BackendLabels>,
    /// The first backend slot of each group.
    pub group_base: Vec<usize>,
}

impl Layout {
    pub fn new(config: &Config) -> Layout {
        let mut routes: Vec<String> = config
            .routes
            .iter()
            .map(|r| {
                let host = match &r.host {
                    HostMatch::Any => "*".to_string(),
                    HostMatch::Exact(h) => h.clone(),
                    HostMatch::Suffix(s) => format!("*{s}"),
                };
                format!(
                    "route=\"{}\",group=\"{}\"",
                    escape(&format!("{host}{}", r.prefix)),
                    escape(&config.groups[r.group].name)
                )
            })
            .collect();
        routes.push("route=\"-\",group=\"-\"".to_string());
        let mut backends = Vec::new();
        let mut group_base = Vec::new();
        for g in &config.groups {
            group_base.push(backends.len());
            backends.extend(g.backends.iter().map(|&addr| BackendLabels {
                group: escape(&g.name),
                addr,
            }));
        }
        Layout {
            routes,
            backends,
            group_base,
        }
    }

    /// A layout of one group of `n` backends and no route, for unit tests of the parts that
    /// publish per-backend gauges.
    #[cfg(test)]
    pub fn for_backends(n: usize) -> Layout {
        Layout {
            routes: vec!["route=\"-\",group=\"-\"".to_string()],
            backends: (0..n)
                .map(|i| BackendLabels {
                    group: "test".into(),
                    addr: SocketAddr::from(([127, 0, 0, 1], 9000 + i as u16)),
                })
                .collect(),
            group_base: vec![0],
        }
    }

    /// The slot of requests that no route took.
    pub fn no_route(&self) -> usize {
        self.routes.len() - 1
    }
}

/// A label value as the text format wants it: `\`, `"` and newline escaped.
pub(super) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::RequestError;
    use crate::proxy::{ErrorKind, ProxyError};

    #[test]
    fn proxy_codes_and_backend_classes() {
        assert_eq!(code_slot(404, Source::Proxy), 4);
        assert_eq!(code_labels(code_slot(404, Source::Proxy)).0, "404");
        let (code, source) = code_labels(code_slot(404, Source::Backend));
        assert_eq!((code.as_str(), source), ("4xx", "backend"));
        let (code, source) = code_labels(code_slot(502, Source::Proxy));
        assert_eq!((code.as_str(), source), ("502", "proxy"));
        assert_eq!(code_labels(code_slot(599, Source::Backend)).0, "5xx");
        assert_eq!(code_labels(code_slot(101, Source::Backend)).0, "1xx");
    }

    /// Every status an error can map to has its own series.
    #[test]
    fn every_error_status_is_listed() {
        let kinds = [
            ErrorKind::BadRequest(RequestError::HeaderTooLarge),
            ErrorKind::BadRequest(RequestError::UriTooLong),
            ErrorKind::BadRequest(RequestError::BadRequest("x")),
            ErrorKind::BadRequest(RequestError::TooManyHeaders),
            ErrorKind::BadRequest(RequestError::NotImplemented("x")),
            ErrorKind::BadRequest(RequestError::ExpectationFailed),
            ErrorKind::BadRequest(RequestError::VersionNotSupported),
            ErrorKind::HeaderTimeout,
            ErrorKind::NoRoute,
            ErrorKind::BodyTooLarge,
            ErrorKind::TooManyConnections,
            ErrorKind::Unauthorized(None),
            ErrorKind::Forbidden,
            ErrorKind::Overloaded,
            ErrorKind::ConnectTimeout,
            ErrorKind::BackendClosed,
        ];
        for k in kinds {
            let s = ProxyError::new(k).status().unwrap();
            assert!(PROXY_CODES.contains(&s), "{s}");
        }
    }
}
