//! Routes and backend groups from a config file: host (exact and wildcard), longest prefix,
//! prefix strip and replace, 404 for unmatched requests, path normalisation, and the
//! `least_requests` policy.

mod common;
use common::*;

use std::thread;
use std::time::{Duration, Instant};

fn get_host(host: &str, target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

/// One backend per group, each answering 200 with its group's name.
struct Fixture {
    cr: Corelay,
    backends: Vec<(&'static str, Backend)>,
    _cfg: TempConfig,
}

const GROUPS: &[&str] = &[
    "exact", "wild", "deep", "api", "v2", "strip", "replace", "public",
];

const ROUTES: &str = r#"
[[routes]]
host = "shop.example.com"
group = "exact"

[[routes]]
host = "*.example.com"
group = "wild"

[[routes]]
host = "*.eu.example.com"
group = "deep"

[[routes]]
host = "api.test"
path = "/api"
group = "api"

[[routes]]
host = "api.test"
path = "/api/v2/"
group = "v2"

[[routes]]
host = "api.test"
path = "/strip"
group = "strip"
strip_prefix = true

[[routes]]
host = "api.test"
path = "/old"
group = "replace"
replace_prefix = "/new/v1"

[[routes]]
path = "/public"
group = "public"
"#;

impl Fixture {
    fn start() -> Fixture {
        let backends: Vec<(&'static str, Backend)> = GROUPS
            .iter()
            .map(|&g| (g, Backend::ok(g.as_bytes())))
            .collect();
        let mut text = String::from("listen = \"127.0.0.1:0\"\ncores = 1\n");
        for (g, b) in &backends {
            text.push_str(&format!("\n[groups.{g}]\nbackends = [\"{}\"]\n", b.addr));
        }
        text.push_str(ROUTES);
        let cfg = TempConfig::new("routes.toml", &text);
        let cr = Corelay::start_with_config(&cfg.path, &[]);
        Fixture {
            cr,
            backends,
            _cfg: cfg,
        }
    }

    fn backend(&self, group: &str) -> &Backend {
        &self.backends.iter().find(|(g, _)| *g == group).unwrap().1
    }

    fn total_requests(&self) -> usize {
        self.backends.iter().map(|(_, b)| b.requests().len()).sum()
    }

    /// Sends `GET target` for `host` on a new connection; expects 200 from `group`'s backend,
    /// which must have received exactly `forwarded_line`.
    fn expect_routed(&self, host: &str, target: &str, group: &str, forwarded_line: &str) {
        let before = self.backend(group).requests().len();
        let r = Client::connect(self.cr.addr).roundtrip(&get_host(host, target));
        assert_eq!(
            (r.status, r.body_str().as_str()),
            (200, group),
            "Host {host} {target}: {}",
            r.status_line
        );
        let reqs = self.backend(group).requests();
        assert_eq!(reqs.len(), before + 1, "Host {host} {target}");
        let got = reqs.last().unwrap();
        assert_eq!(got.request_line, forwarded_line, "Host {host} {target}");
        assert_eq!(got.header("host"), Some(host), "Host is forwarded as sent");
    }

    /// Sends `GET target` for `host`; expects `status` from corelay and no backend request.
    fn expect_refused(&self, host: &str, target: &str, status: u16) {
        let before = self.total_requests();
        let r = Client::connect(self.cr.addr).roundtrip(&get_host(host, target));
        assert_eq!(r.status, status, "Host {host} {target}: {}", r.status_line);
        assert_eq!(
            self.total_requests(),
            before,
            "Host {host} {target} reached a backend"
        );
    }
}

#[test]
fn host_exact_and_wildcard() {
    let f = Fixture::start();
    f.expect_routed("shop.example.com", "/cart", "exact", "GET /cart HTTP/1.1");
    // Case-insensitive, and the port is not part of the match.
    f.expect_routed("SHOP.Example.COM:8080", "/", "exact", "GET / HTTP/1.1");
    f.expect_routed("a.example.com", "/x?y=1", "wild", "GET /x?y=1 HTTP/1.1");
    f.expect_routed("a.b.example.com", "/", "wild", "GET / HTTP/1.1");
    // The longer wildcard is more specific.
    f.expect_routed("fr.eu.example.com", "/p", "deep", "GET /p HTTP/1.1");
    // `*.example.com` does not match example.com itself, nor a mere suffix of a label.
    f.expect_refused("example.com", "/", 404);
    f.expect_refused("badexample.com", "/", 404);
    // The any-host route serves its prefix on every host, below host-specific ones.
    f.expect_routed(
        "elsewhere.test",
        "/public/a",
        "public",
        "GET /public/a HTTP/1.1",
    );
    f.expect_routed(
        "shop.example.com",
        "/public/a",
        "exact",
        "GET /public/a HTTP/1.1",
    );
    // Absolute-form: the target's authority replaces Host (RFC 9112 §3.2.2), for the route
    // and for the backend alike.
    let r = Client::connect(f.cr.addr)
        .roundtrip(b"GET http://shop.example.com/abs HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
    assert_eq!((r.status, r.body_str().as_str()), (200, "exact"));
    let got = f.backend("exact").requests().last().unwrap().clone();
    assert_eq!(got.request_line, "GET /abs HTTP/1.1");
    assert_eq!(got.header_all("host"), vec!["shop.example.com"]);
}

#[test]
fn longest_prefix_wins() {
    let f = Fixture::start();
    f.expect_routed("api.test", "/api", "api", "GET /api HTTP/1.1");
    f.expect_routed(
        "api.test",
        "/api/users?id=7",
        "api",
        "GET /api/users?id=7 HTTP/1.1",
    );
    f.expect_routed("api.test", "/api?q", "api", "GET /api?q HTTP/1.1");
    f.expect_routed(
        "api.test",
        "/api/v2/items",
        "v2",
        "GET /api/v2/items HTTP/1.1",
    );
    // "/api/v2/" ends in '/': /api/v2 itself is the shorter /api route's.
    f.expect_routed("api.test", "/api/v2", "api", "GET /api/v2 HTTP/1.1");
    f.expect_routed("api.test", "/api/v2x", "api", "GET /api/v2x HTTP/1.1");
    // A prefix matches at a segment boundary only.
    f.expect_refused("api.test", "/apis", 404);
    f.expect_routed("api.test", "/public", "public", "GET /public HTTP/1.1");
}

#[test]
fn strip_and_replace_prefix_rewrite_the_request_line() {
    let f = Fixture::start();
    f.expect_routed(
        "api.test",
        "/strip/a/b?x=1",
        "strip",
        "GET /a/b?x=1 HTTP/1.1",
    );
    f.expect_routed("api.test", "/strip", "strip", "GET / HTTP/1.1");
    f.expect_routed("api.test", "/strip/", "strip", "GET / HTTP/1.1");
    f.expect_routed("api.test", "/strip?q=2", "strip", "GET /?q=2 HTTP/1.1");
    f.expect_routed(
        "api.test",
        "/old/x/y",
        "replace",
        "GET /new/v1/x/y HTTP/1.1",
    );
    f.expect_routed("api.test", "/old", "replace", "GET /new/v1 HTTP/1.1");
    f.expect_routed("api.test", "/old?z", "replace", "GET /new/v1?z HTTP/1.1");
    // The prefix is matched at a segment boundary, so /oldies is not rewritten (no route).
    f.expect_refused("api.test", "/oldies", 404);
    // Absolute-form targets are routed and rewritten by their path too.
    f.expect_routed(
        "api.test",
        "http://api.test/strip/abs",
        "strip",
        "GET /abs HTTP/1.1",
    );
}

#[test]
fn request_matching_no_route_gets_404_and_reaches_no_backend() {
    let f = Fixture::start();
    for (host, target) in [
        ("nowhere.test", "/"),
        ("nowhere.test", "/api"),
        ("api.test", "/"),
        ("api.test", "/other/api"),
        ("example.com", "/x"),
    ] {
        let mut c = Client::connect(f.cr.addr);
        let r = c.roundtrip(&get_host(host, target));
        assert_eq!(r.status, 404, "Host {host} {target}: {}", r.status_line);
        assert!(
            r.has("content-length"),
            "404 without framing: {:?}",
            r.headers
        );
    }
    // A keep-alive client: the 404 comes, whatever the connection does after it.
    let mut c = Client::connect(f.cr.addr);
    c.send(&get_host("nowhere.test", "/ka"));
    assert_eq!(c.read_response().unwrap().status, 404);
    let Fixture {
        mut cr, backends, ..
    } = f;
    cr.kill();
    for (g, b) in &backends {
        b.settle();
        assert_eq!(b.connections(), 0, "backend of group {g} was contacted");
    }
}

#[test]
fn normalised_path_is_routed_and_dot_segments_get_400() {
    let f = Fixture::start();
    // %61 is 'a': /%61pi is /api, and that is what the backend gets.
    f.expect_routed("api.test", "/%61pi", "api", "GET /api HTTP/1.1");
    f.expect_routed(
        "api.test",
        "/%61pi/%75sers",
        "api",
        "GET /api/users HTTP/1.1",
    );
    f.expect_routed("api.test", "//api//x", "api", "GET /api/x HTTP/1.1");
    f.expect_routed("api.test", "/%73trip/q", "strip", "GET /q HTTP/1.1");
    // Reserved escapes stay encoded (normalised to upper case).
    f.expect_routed("api.test", "/api/a%3fb", "api", "GET /api/a%3Fb HTTP/1.1");
    // An encoded slash is refused: a backend that decodes it before routing reads another path.
    f.expect_refused("api.test", "/api/a%2fb", 400);
    // Dot-segments are refused, plain or encoded, before any route is looked at.
    f.expect_refused("api.test", "/public/../admin", 400);
    f.expect_refused("api.test", "/public/%2e%2e/admin", 400);
    f.expect_refused("api.test", "/api/./x", 400);
    f.expect_refused("elsewhere.test", "/public/..", 400);
    f.expect_refused("api.test", "/api/%zz", 400);
}

/// Two backends, one holding its requests: with `least_requests`, while it holds one every
/// new request goes to the other (round-robin would send it every second one).
#[test]
fn least_requests_sends_work_away_from_a_slow_backend() {
    let release = Gate::new();
    let held = release.clone();
    let slow = Backend::http(move |_| {
        assert!(held.wait(Duration::from_secs(30)), "never released");
        ok_response(b"slow")
    });
    let fast = Backend::ok(b"fast");
    // The slow backend first, so that the rotation's tie-break favours it.
    let cfg = TempConfig::new(
        "least.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\ncores = 1\n\n[groups.pool]\nbackends = [\"{}\", \"{}\"]\nbalance = \"least_requests\"\n\n[[routes]]\ngroup = \"pool\"\n",
            slow.addr, fast.addr
        ),
    );
    let cr = Corelay::start_with_config(&cfg.path, &[]);
    // Requests on their own connections until one is held by the slow backend (with both
    // idle the tie-break picks either; each that goes to the fast one comes straight back).
    let mut held_clients = Vec::new();
    for i in 0..4 {
        let addr = cr.addr;
        held_clients.push(thread::spawn(move || {
            Client::connect(addr).roundtrip(&get(&format!("/hold{i}")))
        }));
        let deadline = Instant::now() + Duration::from_secs(10);
        while slow.requests().is_empty()
            && !held_clients.last().unwrap().is_finished()
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(5));
        }
        if !slow.requests().is_empty() {
            break;
        }
    }
    slow.wait_requests(1, Duration::from_secs(10));
    // One request in flight there, none at the fast one: every request goes to the fast one.
    let mut c = Client::connect(cr.addr);
    for j in 0..20 {
        let r = c.roundtrip(&get(&format!("/r{j}")));
        assert_eq!(
            (r.status, r.body_str().as_str()),
            (200, "fast"),
            "request {j}: least_requests picked the busy backend"
        );
    }
    assert_eq!(slow.requests().len(), 1);
    release.open();
    for h in held_clients {
        assert_eq!(h.join().expect("client thread").status, 200);
    }
    slow.assert_no_panics();
}
