//! The route table: which backend group serves a request, chosen by Host and path prefix.
//!
//! Matching is deliberately simple and predictable, in the manner of nginx's `server_name` +
//! prefix `location`: the most specific host wins (exact name, then the longest `*.suffix`
//! wildcard, then routes for any host), and within that, the longest path prefix. The first
//! route in that order whose prefix matches serves the request.
//!
//! Because routes may carry different authorization, the path a route is chosen by must be
//! the path the backend will act on. So the path is first normalised ([`normalize`]) the way
//! backends read it: percent-encoded unreserved characters are decoded (`/%61dmin` is
//! `/admin`, RFC 3986 §6.2.2.2) and runs of slashes become one (`//admin` is `/admin`, as most
//! servers read it); dot-segments (`/public/../admin`, also encoded as `%2e`) are refused
//! rather than resolved. The normalised target is what is matched and what is forwarded.
//!
//! Spellings that backends read in more than one way are refused too, because corelay cannot
//! know which reading the backend behind a route uses (the same set Spring Security's
//! `StrictHttpFirewall` refuses by default): an encoded slash or backslash (`/admin%2Fx` is
//! `/admin/x` to a server that decodes before routing), a raw backslash (`/` on Windows
//! stacks), an encoded `%` (`/%2561dmin` is `/admin` to a server that decodes twice), an
//! encoded control character (`%00` ends a path in C), and `;` (`/admin;x` is `/admin` to
//! servlet containers, which strip path parameters). Host names are compared without their
//! trailing dot (`admin.example.` is the same DNS name).
//!
//! Case: a route with authorization matches its prefix ignoring ASCII case, so that `/ADMIN`
//! cannot reach a case-insensitive backend (IIS, ASP.NET, a case-insensitive file system)
//! without the credentials `/admin` needs; a route without authorization matches exactly, so
//! that `/API` on a case-sensitive backend is not taken out from under a protected catch-all.

/// How a route matches the request's Host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostMatch {
    Any,
    /// A lowercase host name without port.
    Exact(String),
    /// `*.example.com`, kept as the lowercase suffix `.example.com`; it matches
    /// `a.example.com` and `a.b.example.com`, not `example.com` itself.
    Suffix(String),
}

impl HostMatch {
    /// Parses `example.com`, `*.example.com` or `*` (any).
    pub fn parse(s: &str) -> Result<HostMatch, String> {
        let s = s.trim().to_ascii_lowercase();
        if s.is_empty() || s == "*" {
            return Ok(HostMatch::Any);
        }
        if let Some(rest) = s.strip_prefix("*.") {
            if rest.is_empty() || rest.contains('*') {
                return Err(format!("bad host pattern '*.{rest}'"));
            }
            return Ok(HostMatch::Suffix(format!(".{rest}")));
        }
        if s.contains('*') || s.contains(':') || s.contains('/') {
            return Err(format!(
                "bad host '{s}': use a name like example.com or *.example.com, without port"
            ));
        }
        Ok(HostMatch::Exact(s))
    }

    /// Higher is more specific.
    fn rank(&self) -> usize {
        match self {
            HostMatch::Any => 0,
            HostMatch::Suffix(s) => 1 + s.len(),
            HostMatch::Exact(_) => usize::MAX,
        }
    }

    fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => host.eq_ignore_ascii_case(h.as_bytes()),
            HostMatch::Suffix(s) => {
                host.len() > s.len()
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
        }
    }
}

/// What to do with the matched prefix before forwarding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rewrite {
    Keep,
    /// Replace the matched prefix with this one (`""`, i.e. strip, is normalised to "/").
    Replace(String),
}

#[derive(Clone, Debug)]
pub struct Route {
    pub host: HostMatch,
    /// Starts with '/'. A prefix ending in '/' matches any path that starts with it; otherwise
    /// it matches the path itself or the path followed by '/' or a query, so `/api` does not
    /// catch `/apis`.
    pub prefix: String,
    pub rewrite: Rewrite,
    /// Index of the backend group (and its authorization) in the caller's tables.
    pub group: usize,
    pub index: usize,
    /// Match the prefix ignoring ASCII case: set for routes with authorization (see the
    /// module header).
    pub fold_case: bool,
}

/// Why a request cannot be routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// No route matches: 404.
    NoRoute,
    /// The path is ambiguous for backends (dot-segments, encoded slash or `%`, `;`): 400.
    AmbiguousPath,
    /// The Host is ambiguous for backends (a percent-encoded name): 400.
    AmbiguousHost,
}

pub struct RouteTable {
    /// Sorted most specific first.
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Route>) -> RouteTable {
        routes.sort_by(|a, b| {
            b.host
                .rank()
                .cmp(&a.host.rank())
                .then(b.prefix.len().cmp(&a.prefix.len()))
                .then(a.index.cmp(&b.index))
        });
        RouteTable { routes }
    }

    /// One route for any host and path, to the given group: the command-line mode.
    pub fn single(group: usize) -> RouteTable {
        RouteTable::new(vec![Route {
            host: HostMatch::Any,
            prefix: "/".into(),
            rewrite: Rewrite::Keep,
            group,
            index: 0,
            fold_case: false,
        }])
    }

    /// Finds the route for `host` (the Host value, port allowed) and `target`, which must be
    /// the output of [`normalize`].
    pub fn find(&self, host: &[u8], target: &[u8]) -> Result<&Route, RouteError> {
        let mut host = strip_port(host);
        // `admin.example.` is the fully qualified spelling of `admin.example`.
        while let [rest @ .., b'.'] = host {
            host = rest;
        }
        // A reg-name may be percent-encoded (RFC 3986 §3.2.2), but no host pattern is, and a
        // backend that decodes it would see a name the routes never compared.
        if host.contains(&b'%') {
            return Err(RouteError::AmbiguousHost);
        }
        // `OPTIONS *` is about the server as a whole: the host's catch-all route serves it.
        let path = if target == b"*" {
            b"/"
        } else {
            path_of(target)
        };
        self.routes
            .iter()
            .find(|r| r.host.matches(host) && prefix_matches(r, path))
            .ok_or(RouteError::NoRoute)
    }
}

/// Writes the normalised form of an origin-form `target` to `out`: the path with
/// percent-encoded unreserved characters decoded (and other escapes upper-cased) and slash
/// runs collapsed, then the query unchanged. `*` stays `*`. Dot-segments and the ambiguous
/// spellings of the module header are refused.
pub fn normalize(target: &[u8], out: &mut Vec<u8>) -> Result<(), RouteError> {
    let path_end = target
        .iter()
        .position(|&b| b == b'?')
        .unwrap_or(target.len());
    let start = out.len();
    let path = &target[..path_end];
    let mut i = 0;
    while i < path.len() {
        let mut b = path[i];
        i += 1;
        if b == b'\\' || b == b';' {
            return Err(RouteError::AmbiguousPath);
        }
        if b == b'%' {
            let (Some(h), Some(l)) = (
                path.get(i).copied().and_then(hex),
                path.get(i + 1).copied().and_then(hex),
            ) else {
                return Err(RouteError::AmbiguousPath);
            };
            let decoded = h * 16 + l;
            if is_ambiguous_escape(decoded) {
                return Err(RouteError::AmbiguousPath);
            }
            if is_unreserved(decoded) {
                b = decoded;
            } else {
                out.push(b'%');
                out.push(path[i].to_ascii_uppercase());
                out.push(path[i + 1].to_ascii_uppercase());
                i += 2;
                continue;
            }
            i += 2;
        }
        if b == b'/' && out.len() > start && out[out.len() - 1] == b'/' {
            continue;
        }
        out.push(b);
    }
    let normalized = &out[start..];
    if normalized
        .split(|&c| c == b'/')
        .any(|seg| seg == b"." || seg == b"..")
    {
        return Err(RouteError::AmbiguousPath);
    }
    out.extend_from_slice(&target[path_end..]);
    Ok(())
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Escapes that backends decode differently (see the module header): `/`, `\`, `%`, `;`
/// and control characters.
fn is_ambiguous_escape(b: u8) -> bool {
    matches!(b, b'/' | b'\\' | b'%' | b';') || b.is_ascii_control()
}

/// RFC 3986 §2.3: decoding these never changes what a URI identifies.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Writes the target to forward for `route` into `out`: the (normalised) target with the
/// route's prefix replaced if it has a rewrite, and the query unchanged.
pub fn rewrite_target(route: &Route, target: &[u8], out: &mut Vec<u8>) {
    let Rewrite::Replace(new_prefix) = &route.rewrite else {
        out.extend_from_slice(target);
        return;
    };
    let matched = matched_len(route, target);
    let rest = &target[matched..];
    let new_prefix = new_prefix.as_bytes();
    if new_prefix.is_empty() || (new_prefix == b"/" && rest.first() == Some(&b'/')) {
        // Strip: what remains must still be an origin-form path.
        if rest.first() != Some(&b'/') {
            out.push(b'/');
        }
    } else {
        out.extend_from_slice(new_prefix);
        if new_prefix.last() == Some(&b'/') && rest.first() == Some(&b'/') {
            out.extend_from_slice(&rest[1..]);
            return;
        }
        if new_prefix.last() != Some(&b'/') && !rest.is_empty() && !matches!(rest[0], b'/' | b'?') {
            out.push(b'/');
        }
    }
    out.extend_from_slice(rest);
}

fn strip_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        // IP-literal: the port follows the closing bracket.
        return match host.iter().position(|&b| b == b']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(i) => &host[..i],
        None => host,
    }
}

fn path_of(target: &[u8]) -> &[u8] {
    let end = target
        .iter()
        .position(|&b| b == b'?')
        .unwrap_or(target.len());
    &target[..end]
}

/// The number of bytes of `target` covered by the route's prefix, or 0 when it does not
/// match.
fn matched_len(route: &Route, target: &[u8]) -> usize {
    let prefix = route.prefix.as_bytes();
    let Some(start) = target.get(..prefix.len()) else {
        return 0;
    };
    let same = if route.fold_case {
        start.eq_ignore_ascii_case(prefix)
    } else {
        start == prefix
    };
    if same {
        prefix.len()
    } else {
        0
    }
}

fn prefix_matches(route: &Route, path: &[u8]) -> bool {
    let n = matched_len(route, path);
    if n == 0 {
        return false;
    }
    route.prefix.ends_with('/') || n == path.len() || path[n] == b'/'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: &str, prefix: &str, group: usize, index: usize) -> Route {
        Route {
            host: HostMatch::parse(host).unwrap(),
            prefix: prefix.into(),
            rewrite: Rewrite::Keep,
            group,
            index,
            fold_case: false,
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            route("*", "/", 0, 0),
            route("*", "/api", 1, 1),
            route("*", "/api/v2/", 2, 2),
            route("*.example.com", "/", 3, 3),
            route("shop.example.com", "/", 4, 4),
            route("*.eu.example.com", "/", 5, 5),
        ])
    }

    fn group(t: &RouteTable, host: &str, target: &str) -> Result<usize, RouteError> {
        let mut norm = Vec::new();
        normalize(target.as_bytes(), &mut norm)?;
        t.find(host.as_bytes(), &norm).map(|r| r.group)
    }

    fn norm(target: &str) -> Result<String, RouteError> {
        let mut out = Vec::new();
        normalize(target.as_bytes(), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn normalization() {
        assert_eq!(norm("/a//b///c?x=//"), Ok("/a/b/c?x=//".into()));
        assert_eq!(norm("/%61dmin"), Ok("/admin".into()));
        assert_eq!(norm("/a%7e"), Ok("/a~".into()));
        assert_eq!(norm("/a%3fb%23c%20"), Ok("/a%3Fb%23c%20".into()));
        assert_eq!(norm("/a?x=%2f;%25\\"), Ok("/a?x=%2f;%25\\".into()));
        assert_eq!(norm("*"), Ok("*".into()));
        assert_eq!(norm("/a%zz"), Err(RouteError::AmbiguousPath));
        assert_eq!(norm("/a%2"), Err(RouteError::AmbiguousPath));
        for bad in [
            "/public/../admin",
            "/./admin",
            "/a/..",
            "/%2e%2e/admin",
            "/%2E/x",
            "/a/.%2e",
        ] {
            assert_eq!(norm(bad), Err(RouteError::AmbiguousPath), "{bad}");
        }
        // Spellings backends read differently: encoded slash, backslash, percent (double
        // encoding), control characters, and path parameters.
        for bad in [
            "/admin%2fx",
            "/admin%2F..",
            "/%2Fadmin",
            "/admin%5cx",
            "/admin\\x",
            "/%2561dmin",
            "/%25",
            "/admin%00.html",
            "/admin%0a",
            "/admin%7F",
            "/admin;x",
            "/;x/admin",
            "/admin%3bx",
            "/admin%3Bx",
        ] {
            assert_eq!(norm(bad), Err(RouteError::AmbiguousPath), "{bad}");
        }
        assert_eq!(norm("/a..b/.c"), Ok("/a..b/.c".into()));
        assert_eq!(norm("/q?x=/../"), Ok("/q?x=/../".into()));
    }

    #[test]
    fn longest_prefix_wins_and_respects_segments() {
        let t = table();
        assert_eq!(group(&t, "other.org", "/"), Ok(0));
        assert_eq!(group(&t, "other.org", "/api"), Ok(1));
        assert_eq!(group(&t, "other.org", "/api?x=1"), Ok(1));
        assert_eq!(group(&t, "other.org", "/api/users"), Ok(1));
        assert_eq!(group(&t, "other.org", "/apis"), Ok(0));
        assert_eq!(group(&t, "other.org", "/api/v2/x"), Ok(2));
        assert_eq!(group(&t, "other.org", "/api/v2"), Ok(1));
        assert_eq!(group(&t, "other.org:8080", "//api//v2/x"), Ok(2));
        assert_eq!(group(&t, "other.org", "*"), Ok(0));
    }

    #[test]
    fn hosts_exact_then_longest_wildcard_then_any() {
        let t = table();
        assert_eq!(group(&t, "shop.example.com", "/api"), Ok(4));
        assert_eq!(group(&t, "SHOP.Example.COM:443", "/"), Ok(4));
        assert_eq!(group(&t, "a.example.com", "/api"), Ok(3));
        assert_eq!(group(&t, "x.eu.example.com", "/"), Ok(5));
        assert_eq!(group(&t, "example.com", "/api"), Ok(1));
        assert_eq!(group(&t, "[::1]:80", "/api"), Ok(1));
    }

    #[test]
    fn protected_prefixes_ignore_case_open_ones_do_not() {
        let mut admin = route("*", "/admin", 1, 1);
        admin.fold_case = true;
        let t = RouteTable::new(vec![route("*", "/", 0, 0), admin, route("*", "/api", 2, 2)]);
        for p in ["/admin", "/ADMIN", "/Admin/x", "/aDmIn?q"] {
            assert_eq!(group(&t, "h", p), Ok(1), "{p}");
        }
        assert_eq!(group(&t, "h", "/ADMINS"), Ok(0));
        assert_eq!(group(&t, "h", "/api"), Ok(2));
        assert_eq!(group(&t, "h", "/API"), Ok(0));
    }

    #[test]
    fn trailing_dots_and_encoded_hosts() {
        let t = table();
        assert_eq!(group(&t, "shop.example.com.", "/"), Ok(4));
        assert_eq!(group(&t, "Shop.Example.Com.:8080", "/"), Ok(4));
        assert_eq!(group(&t, "shop.example.com..", "/"), Ok(4));
        assert_eq!(group(&t, "a.example.com.", "/"), Ok(3));
        assert_eq!(
            group(&t, "%73hop.example.com", "/").err(),
            Some(RouteError::AmbiguousHost)
        );
    }

    #[test]
    fn no_route_and_ambiguous_paths() {
        let t = RouteTable::new(vec![route("a.test", "/", 0, 0)]);
        assert_eq!(group(&t, "b.test", "/").err(), Some(RouteError::NoRoute));
        let t = table();
        assert_eq!(group(&t, "h", "/%61pi/x"), Ok(1));
        assert_eq!(
            group(&t, "h", "/x/../api").err(),
            Some(RouteError::AmbiguousPath)
        );
    }

    fn rewritten(prefix: &str, to: &str, target: &str) -> String {
        let r = Route {
            host: HostMatch::Any,
            prefix: prefix.into(),
            rewrite: Rewrite::Replace(to.into()),
            group: 0,
            index: 0,
            fold_case: false,
        };
        let mut out = Vec::new();
        rewrite_target(&r, target.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn prefix_strip_and_replace() {
        let mut folded = Route {
            host: HostMatch::Any,
            prefix: "/admin".into(),
            rewrite: Rewrite::Replace("".into()),
            group: 0,
            index: 0,
            fold_case: true,
        };
        let mut out = Vec::new();
        rewrite_target(&folded, b"/ADMIN/x", &mut out);
        assert_eq!(out, b"/x");
        folded.rewrite = Rewrite::Replace("/in".into());
        out.clear();
        rewrite_target(&folded, b"/Admin?q", &mut out);
        assert_eq!(out, b"/in?q");
        assert_eq!(rewritten("/api", "", "/api/users?x=1"), "/users?x=1");
        assert_eq!(rewritten("/api", "", "/api"), "/");
        assert_eq!(rewritten("/api", "", "/api?x"), "/?x");
        assert_eq!(rewritten("/api/", "", "/api/users"), "/users");
        assert_eq!(rewritten("/api", "/v2", "/api/users"), "/v2/users");
        assert_eq!(rewritten("/api", "/v2/", "/api/users"), "/v2/users");
        assert_eq!(rewritten("/api/", "/v2/", "/api/users"), "/v2/users");
        assert_eq!(rewritten("/api", "/v2", "/api"), "/v2");
        assert_eq!(rewritten("/api", "/", "/api/x"), "/x");
        let keep = route("*", "/api", 0, 0);
        let mut out = Vec::new();
        rewrite_target(&keep, b"/api/x", &mut out);
        assert_eq!(out, b"/api/x");
    }

    #[test]
    fn host_patterns() {
        assert_eq!(HostMatch::parse("*"), Ok(HostMatch::Any));
        assert_eq!(
            HostMatch::parse("*.Example.com"),
            Ok(HostMatch::Suffix(".example.com".into()))
        );
        assert!(HostMatch::parse("a.*.com").is_err());
        assert!(HostMatch::parse("a.com:80").is_err());
    }
}
