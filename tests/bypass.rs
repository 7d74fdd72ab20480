//! The route and auth bypass review, on the wire: `/admin` (and the host `admin.test`) behind
//! basic auth, `/` open, each served by a backend of its own that records what it received.
//! Every spelling a backend could read as the protected path is either refused by corelay
//! (and reaches no backend), or authorized exactly like `/admin` and forwarded in a spelling
//! that means what was authorized. Credentials reach neither the access log nor any backend,
//! on success and on every error path.

mod common;
use common::*;

use std::cell::Cell;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-Pa55";

struct Fixture {
    cr: Corelay,
    /// The `admin` group: `/admin` and the host `admin.test`.
    admin: Backend,
    /// The default group: `/`, open.
    public: Backend,
    /// Backends of the error-path routes, which must not see credentials either.
    faulty: Vec<Backend>,
    log: PathBuf,
    /// Requests the admin and the public backend should have received.
    forwarded: Cell<(usize, usize)>,
    _cfg: TempConfig,
}

fn basic_auth(user: &str, password: &str) -> String {
    format!(
        "Authorization: Basic {}",
        base64(format!("{user}:{password}").as_bytes())
    )
}

fn good() -> String {
    basic_auth(USER, PASSWORD)
}

impl Fixture {
    fn start() -> Fixture {
        let admin = Backend::ok(b"admin");
        let public = Backend::ok(b"public");
        // Accepts the request, then closes without an answer: 502.
        let closes = Backend::start(|mut conn| {
            let _ = conn.read_request();
        });
        // Accepts the request, then stays silent past backend_response_timeout: 504.
        let stalls = Backend::start(|mut conn| {
            let _ = conn.read_request();
            thread::sleep(Duration::from_secs(3));
        });
        let hash = hash_password(PASSWORD);
        let auth = format!(
            "[routes.auth]\ntype = \"basic\"\nrealm = \"admin\"\nusers = {{ {USER} = '{hash}' }}\n"
        );
        let cfg = TempConfig::new("bypass.toml", "");
        let log = cfg.path.parent().unwrap().join("access.log");
        let text = format!(
            "listen = \"127.0.0.1:0\"\ncores = 1\naccess_log = \"{log}\"\n\
             backend_response_timeout = \"500ms\"\nclient_max_body_size = 1000\n\
             backends = [\"{public}\"]\n\
             [groups.admin]\nbackends = [\"{admin}\"]\n\
             [groups.closes]\nbackends = [\"{closes}\"]\n\
             [groups.stalls]\nbackends = [\"{stalls}\"]\n\
             [[routes]]\npath = \"/admin\"\ngroup = \"admin\"\n{auth}\
             [[routes]]\npath = \"/admin/closes\"\ngroup = \"closes\"\n{auth}\
             [[routes]]\npath = \"/admin/stalls\"\ngroup = \"stalls\"\n{auth}\
             [[routes]]\nhost = \"admin.test\"\ngroup = \"admin\"\n{auth}\
             [[routes]]\npath = \"/\"\ngroup = \"default\"\n",
            log = log.display(),
            public = public.addr,
            admin = admin.addr,
            closes = closes.addr,
            stalls = stalls.addr,
        );
        std::fs::write(&cfg.path, text).unwrap();
        let cr = Corelay::start_with_config(&cfg.path, &[]);
        Fixture {
            cr,
            admin,
            public,
            faulty: vec![closes, stalls],
            log,
            forwarded: Cell::new((0, 0)),
            _cfg: cfg,
        }
    }

    /// Stops corelay, lets every backend finish, and checks that exactly the requests that
    /// were expected to be forwarded were: nothing refused arrived late.
    fn finish(mut self) {
        self.cr.kill();
        for b in self.backends() {
            b.settle();
            b.assert_no_panics();
        }
        let (admin, public) = self.forwarded.get();
        assert_eq!(self.admin.requests().len(), admin, "requests to admin");
        assert_eq!(self.public.requests().len(), public, "requests to public");
    }

    fn backends(&self) -> Vec<&Backend> {
        let mut all = vec![&self.admin, &self.public];
        all.extend(self.faulty.iter());
        all
    }

    fn requests_seen(&self) -> usize {
        self.backends().iter().map(|b| b.requests().len()).sum()
    }

    /// Sends `method target` with `host` and `headers` (full lines) on a new connection.
    fn send(&self, target: &str, host: &str, headers: &[&str]) -> Response {
        let mut req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n");
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        Client::connect(self.cr.addr).roundtrip(req.as_bytes())
    }

    /// corelay answers `status` itself; no backend gets anything.
    fn refused(&self, target: &str, host: &str, headers: &[&str], status: u16) {
        let before = self.requests_seen();
        let r = self.send(target, host, headers);
        assert_eq!(
            r.status, status,
            "{target} (Host {host}) {headers:?}: {}",
            r.status_line
        );
        // finish() checks again once every backend is quiescent.
        assert_eq!(
            self.requests_seen(),
            before,
            "{target} (Host {host}) reached a backend"
        );
    }

    /// Protected like `/admin`: 401 without credentials, 403 with a wrong password, and with
    /// the right ones the admin backend gets `expect_line` (and the Host `expect_host`),
    /// without the credentials.
    fn protected(&self, target: &str, host: &str, expect_line: &str, expect_host: &str) {
        self.refused(target, host, &[], 401);
        let wrong = basic_auth(USER, "wrong");
        self.refused(target, host, &[&wrong], 403);
        let before = self.admin.requests().len();
        let public_before = self.public.requests().len();
        let r = self.send(target, host, &[&good()]);
        assert_eq!(
            (r.status, r.body_str().as_str()),
            (200, "admin"),
            "{target} (Host {host}) with credentials: {}",
            r.status_line
        );
        let reqs = self.admin.requests();
        assert_eq!(reqs.len(), before + 1, "{target}: one request to admin");
        let got = &reqs[before];
        assert_eq!(got.request_line, expect_line, "{target} (Host {host})");
        assert_eq!(got.header_all("host"), vec![expect_host], "{target}");
        assert!(!got.has("authorization"), "{target}: credentials forwarded");
        assert_eq!(self.public.requests().len(), public_before);
        let (a, p) = self.forwarded.get();
        self.forwarded.set((a + 1, p));
    }

    /// Open: the public backend gets `expect_line` with Host `expect_host`.
    fn open(&self, target: &str, host: &str, expect_line: &str, expect_host: &str) {
        let before = self.public.requests().len();
        let admin_before = self.admin.requests().len();
        let r = self.send(target, host, &[]);
        assert_eq!(
            (r.status, r.body_str().as_str()),
            (200, "public"),
            "{target} (Host {host}): {}",
            r.status_line
        );
        let reqs = self.public.requests();
        assert_eq!(reqs.len(), before + 1);
        assert_eq!(reqs[before].request_line, expect_line, "{target}");
        assert_eq!(
            reqs[before].header_all("host"),
            vec![expect_host],
            "{target}"
        );
        assert_eq!(self.admin.requests().len(), admin_before);
        let (a, p) = self.forwarded.get();
        self.forwarded.set((a, p + 1));
    }

    /// The access log, once it holds at least `lines` lines.
    fn log_text(&self, lines: usize) -> String {
        let mut text = String::new();
        eventually(Duration::from_secs(10), "access log lines", || {
            text = std::fs::read_to_string(&self.log).unwrap_or_default();
            text.lines().count() >= lines
        });
        text
    }
}

/// What must appear nowhere: the header value, its base64, the password.
fn assert_no_credentials(what: &str, bytes: &[u8]) {
    let creds = base64(format!("{USER}:{PASSWORD}").as_bytes());
    let wrong = base64(format!("{USER}:wrong").as_bytes());
    for needle in [creds.as_str(), wrong.as_str(), PASSWORD, "Basic "] {
        assert!(
            !contains(bytes, needle.as_bytes()),
            "{what} contains {needle:?}:\n{}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert!(
        !contains(&bytes.to_ascii_lowercase(), b"authorization:"),
        "{what} has an Authorization field:\n{}",
        String::from_utf8_lossy(bytes)
    );
}

#[test]
fn path_spellings_of_a_protected_prefix() {
    let f = Fixture::start();
    // The plain path first: what every other spelling is compared with.
    f.protected(
        "/admin",
        "public.test",
        "GET /admin HTTP/1.1",
        "public.test",
    );
    f.open("/", "public.test", "GET / HTTP/1.1", "public.test");
    f.open(
        "/admins",
        "public.test",
        "GET /admins HTTP/1.1",
        "public.test",
    );
    // Slash runs and encoded unreserved characters: normalised, authorized, and forwarded in
    // the normalised form, the one that was authorized.
    f.protected(
        "//admin",
        "public.test",
        "GET /admin HTTP/1.1",
        "public.test",
    );
    f.protected(
        "/%61dmin",
        "public.test",
        "GET /admin HTTP/1.1",
        "public.test",
    );
    f.protected(
        "/%61%64min//x",
        "public.test",
        "GET /admin/x HTTP/1.1",
        "public.test",
    );
    // Case: the protected prefix ignores it, and the backend gets the path as sent.
    f.protected(
        "/ADMIN",
        "public.test",
        "GET /ADMIN HTTP/1.1",
        "public.test",
    );
    f.protected(
        "/Admin/x?q=1",
        "public.test",
        "GET /Admin/x?q=1 HTTP/1.1",
        "public.test",
    );
    f.protected(
        "/%41DMIN",
        "public.test",
        "GET /ADMIN HTTP/1.1",
        "public.test",
    );
    // Spellings backends read in more than one way: refused before any route is chosen.
    for target in [
        "/./admin",
        "/x/../admin",
        "/%2e/admin",
        "/%2561dmin",
        "/%252561dmin",
        "/admin%2f..",
        "/admin%2F..",
        "/admin%2fsecret",
        "/%2fadmin",
        "/admin%5csecret",
        "/admin;x",
        "/admin;jsessionid=1/x",
        "/;x/admin",
        "/admin%3bx",
        "/admin%00",
        "/admin%00.html",
        "/admin%0d%0a",
    ] {
        f.refused(target, "public.test", &[], 400);
        f.refused(target, "public.test", &[&good()], 400);
    }
    // A raw backslash is read as '/' by Windows stacks.
    f.refused("/admin\\x", "public.test", &[&good()], 400);
    f.refused("/\\admin", "public.test", &[], 400);
    // The query is not part of the path: it is forwarded untouched.
    f.open(
        "/?next=/admin%2f..;x",
        "public.test",
        "GET /?next=/admin%2f..;x HTTP/1.1",
        "public.test",
    );
    f.finish();
}

#[test]
fn host_spellings_of_a_protected_host() {
    let f = Fixture::start();
    f.protected("/", "admin.test", "GET / HTTP/1.1", "admin.test");
    f.protected("/x", "admin.test.", "GET /x HTTP/1.1", "admin.test.");
    f.protected("/x", "ADMIN.Test", "GET /x HTTP/1.1", "ADMIN.Test");
    f.protected(
        "/x",
        "admin.test:8080",
        "GET /x HTTP/1.1",
        "admin.test:8080",
    );
    f.protected("/x", "Admin.Test.:80", "GET /x HTTP/1.1", "Admin.Test.:80");
    f.protected("/x", "admin.test:", "GET /x HTTP/1.1", "admin.test:");
    f.open("/x", "other.test", "GET /x HTTP/1.1", "other.test");
    // A percent-encoded name: no route compares it, a backend might decode it.
    f.refused("/x", "%61dmin.test", &[], 400);
    f.refused("/x", "%61dmin.test", &[&good()], 400);
    // Host fields that could be read two ways are refused by the codec.
    f.refused("/x", "admin.test, other.test", &[], 400);
    f.refused("/x", "admin.test/x", &[], 400);
    let before = f.requests_seen();
    let r = Client::connect(f.cr.addr)
        .roundtrip(b"GET /x HTTP/1.1\r\nHost: other.test\r\nHost: admin.test\r\n\r\n");
    assert_eq!(r.status, 400);
    assert_eq!(f.requests_seen(), before);
    f.finish();
}

#[test]
fn absolute_form_decides_the_host_it_is_routed_and_forwarded_by() {
    let f = Fixture::start();
    // The authority replaces a disagreeing Host (RFC 9112 §3.2.2) for routing, for
    // authorization and in what the backend gets.
    f.protected(
        "http://other/admin",
        "public.test",
        "GET /admin HTTP/1.1",
        "other",
    );
    f.protected(
        "http://other.test//%61dmin",
        "admin.test",
        "GET /admin HTTP/1.1",
        "other.test",
    );
    f.protected(
        "http://admin.test/x",
        "other.test",
        "GET /x HTTP/1.1",
        "admin.test",
    );
    f.protected(
        "HTTP://ADMIN.test.:81/x",
        "other.test",
        "GET /x HTTP/1.1",
        "ADMIN.test.:81",
    );
    // A public authority with Host: admin.test is public, and the backend is told so: it
    // gets the authority as Host, never admin.test.
    f.open(
        "http://public.test/x",
        "admin.test",
        "GET /x HTTP/1.1",
        "public.test",
    );
    f.refused("http://other/admin%2fx", "public.test", &[], 400);
    f.refused("http://other/admin;x", "public.test", &[&good()], 400);
    f.refused("http://user@admin.test/x", "admin.test", &[&good()], 400);
    f.finish();
}

#[test]
fn credentials_reach_neither_the_log_nor_a_backend_on_any_path() {
    let f = Fixture::start();
    let mut lines = 0;
    let mut count = |r: Response, status: u16, what: &str| {
        assert_eq!(r.status, status, "{what}: {}", r.status_line);
        lines += 1;
    };
    let wrong = basic_auth(USER, "wrong");
    // 200: forwarded without the credential.
    count(f.send("/admin", "public.test", &[&good()]), 200, "allowed");
    // 401, 403: nothing forwarded.
    count(f.send("/admin", "public.test", &[]), 401, "missing");
    count(f.send("/admin", "public.test", &[&wrong]), 403, "wrong");
    count(
        f.send("/admin", "public.test", &["Authorization: Bearer x"]),
        401,
        "another scheme",
    );
    // 400 before routing, with credentials.
    count(
        f.send("/admin;x", "public.test", &[&good()]),
        400,
        "ambiguous",
    );
    // 502: the backend got the request and closed.
    count(
        f.send("/admin/closes", "public.test", &[&good()]),
        502,
        "closes",
    );
    // 504: the backend got the request and stayed silent.
    count(
        f.send("/admin/stalls", "public.test", &[&good()]),
        504,
        "stalls",
    );
    // 413 after authorization: a declared body over client_max_body_size.
    let mut c = Client::connect(f.cr.addr);
    let big = format!(
        "POST /admin HTTP/1.1\r\nHost: public.test\r\n{}\r\nContent-Length: 5000\r\n\r\n",
        good()
    );
    count(c.roundtrip(big.as_bytes()), 413, "too large");
    // 400 after authorization, once the head was forwarded: a malformed chunked body.
    let mut c = Client::connect(f.cr.addr);
    let bad_body = format!(
        "POST /admin HTTP/1.1\r\nHost: public.test\r\n{}\r\nTransfer-Encoding: chunked\r\n\r\n\
         zz\r\nhello\r\n0\r\n\r\n",
        good()
    );
    let r = c.roundtrip(bad_body.as_bytes());
    assert_eq!(
        r.status, 400,
        "malformed body after auth: {}",
        r.status_line
    );
    lines += 1;
    let log = f.log_text(lines);
    let mut f = f;
    f.cr.kill();
    // Every backend, every byte it received.
    for b in f.backends() {
        b.settle();
        for (i, bytes) in b.all_received().iter().enumerate() {
            assert_no_credentials(&format!("backend {} connection {i}", b.addr), bytes);
        }
    }
    // The allowed request, the 502 and the 504 did reach a backend, so the check above read
    // real requests.
    assert!(!f.admin.requests().is_empty());
    assert_eq!(f.faulty[0].requests().len(), 1);
    assert_eq!(f.faulty[1].requests().len(), 1);
    assert_no_credentials("access log", log.as_bytes());
    // The log names the user only where the password was checked and right.
    assert!(log.contains(&format!(" {USER} ")), "{log}");
    for l in log
        .lines()
        .filter(|l| l.contains("\" 401 ") || l.contains("\" 403 "))
    {
        assert!(!l.contains(USER), "user logged on a refusal: {l}");
    }
}
