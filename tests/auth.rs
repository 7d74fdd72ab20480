//! Per-route authorization from a config file: bearer tokens, API keys and basic users.
//! Missing credential: 401 with the route's `WWW-Authenticate`; wrong: 403; right: forwarded
//! without the credential (unless the route keeps it). Refused requests reach no backend.

mod common;
use common::*;

struct Fixture {
    cr: Corelay,
    backend: Backend,
    _cfg: TempConfig,
}

impl Fixture {
    /// One default group behind `routes` (TOML `[[routes]]` tables).
    fn start(routes: &str) -> Fixture {
        let backend = Backend::ok(b"ok");
        let cfg = TempConfig::new(
            "auth.toml",
            &format!(
                "listen = \"127.0.0.1:0\"\ncores = 1\nbackends = [\"{}\"]\n{routes}",
                backend.addr
            ),
        );
        let cr = Corelay::start_with_config(&cfg.path, &[]);
        Fixture {
            cr,
            backend,
            _cfg: cfg,
        }
    }

    /// `GET path` with `headers` (full lines without CRLF) on a new connection.
    fn send(&self, path: &str, headers: &[&str]) -> Response {
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: auth.test\r\nX-Trace: t1\r\n");
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        Client::connect(self.cr.addr).roundtrip(req.as_bytes())
    }

    /// Expects `status` from corelay itself: the backend gets no request.
    fn refused(&self, path: &str, headers: &[&str], status: u16) -> Response {
        let before = self.backend.requests().len();
        let r = self.send(path, headers);
        assert_eq!(r.status, status, "{path} {headers:?}: {}", r.status_line);
        assert_eq!(
            self.backend.requests().len(),
            before,
            "{path} {headers:?} reached the backend"
        );
        r
    }

    /// Expects 401 with exactly `challenge` as its (only) `WWW-Authenticate`.
    fn unauthorized(&self, path: &str, headers: &[&str], challenge: &str) {
        let r = self.refused(path, headers, 401);
        assert_eq!(
            r.header_all("www-authenticate"),
            vec![challenge],
            "{path} {headers:?}"
        );
    }

    /// Expects 200 from the backend; returns the request it received.
    fn allowed(&self, path: &str, headers: &[&str]) -> Request {
        let before = self.backend.requests().len();
        let r = self.send(path, headers);
        assert_eq!(
            (r.status, r.body_str().as_str()),
            (200, "ok"),
            "{path} {headers:?}: {}",
            r.status_line
        );
        let reqs = self.backend.requests();
        assert_eq!(reqs.len(), before + 1);
        let got = reqs.last().unwrap().clone();
        assert_eq!(got.request_line, format!("GET {path} HTTP/1.1"));
        assert_eq!(got.header("x-trace"), Some("t1"), "other headers are kept");
        got
    }

    /// Nothing the backend received so far contains `secret`.
    fn assert_backend_never_saw(&self, secret: &str) {
        for (i, bytes) in self.backend.all_received().iter().enumerate() {
            assert!(
                !contains(bytes, secret.as_bytes()),
                "backend connection {i} received the credential {secret:?}:\n{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

#[test]
fn bearer_tokens() {
    let f = Fixture::start(
        r#"
[[routes]]
path = "/bearer"
group = "default"
auth = { type = "bearer", tokens = ["tok-one", "tok-two"] }

[[routes]]
path = "/bearer-keep"
group = "default"
keep_credentials = true
auth = { type = "bearer", realm = "kept", tokens = ["tok-one"] }
"#,
    );
    let challenge = "Bearer realm=\"corelay\"";
    // Missing, empty, or another scheme: 401 with the challenge.
    f.unauthorized("/bearer", &[], challenge);
    f.unauthorized("/bearer", &["Authorization: "], challenge);
    f.unauthorized("/bearer", &["Authorization: Basic dG9rLW9uZTp4"], challenge);
    f.unauthorized("/bearer-keep", &[], "Bearer realm=\"kept\"");
    // A token in another header is no credential.
    f.unauthorized("/bearer", &["X-Token: tok-one"], challenge);
    // Wrong tokens: 403, with no challenge.
    let r = f.refused("/bearer", &["Authorization: Bearer tok-three"], 403);
    assert!(!r.has("www-authenticate"), "{:?}", r.headers);
    f.refused("/bearer", &["Authorization: Bearer tok-on"], 403);
    f.refused("/bearer", &["Authorization: Bearer tok-one2"], 403);
    f.refused("/bearer", &["Authorization: Bearer TOK-ONE"], 403);
    // Malformed or repeated credentials: 400.
    f.refused("/bearer", &["Authorization: Bearer"], 400);
    f.refused("/bearer", &["Authorization: Bearer tok one"], 400);
    f.refused(
        "/bearer",
        &[
            "Authorization: Bearer tok-one",
            "Authorization: Bearer tok-one",
        ],
        400,
    );
    // Right: forwarded without Authorization. The scheme is case-insensitive.
    for h in [
        "Authorization: Bearer tok-one",
        "Authorization: bearer tok-two",
        "authorization: BEARER   tok-one",
    ] {
        let got = f.allowed("/bearer", &[h]);
        assert!(!got.has("authorization"), "{h}: {:?}", got.headers);
    }
    f.assert_backend_never_saw("tok-one");
    f.assert_backend_never_saw("tok-two");
    // keep_credentials: the backend gets the header as sent.
    let got = f.allowed("/bearer-keep", &["Authorization: Bearer tok-one"]);
    assert_eq!(got.header_all("authorization"), vec!["Bearer tok-one"]);
    f.backend.assert_no_panics();
}

#[test]
fn api_keys() {
    let f = Fixture::start(
        r#"
[[routes]]
path = "/key"
group = "default"
auth = { type = "api_key", header = "X-Api-Key", keys = ["key-123", "key-456"] }

[[routes]]
path = "/key-keep"
group = "default"
keep_credentials = true
auth = { type = "api_key", header = "X-Api-Key", keys = ["key-123"] }
"#,
    );
    let challenge = "ApiKey header=\"X-Api-Key\"";
    f.unauthorized("/key", &[], challenge);
    f.unauthorized("/key", &["X-Api-Key: "], challenge);
    // The key in Authorization is not the key header.
    f.unauthorized("/key", &["Authorization: Bearer key-123"], challenge);
    f.unauthorized("/key-keep", &[], challenge);
    let r = f.refused("/key", &["X-Api-Key: key-999"], 403);
    assert!(!r.has("www-authenticate"), "{:?}", r.headers);
    f.refused("/key", &["X-Api-Key: key-12"], 403);
    f.refused("/key", &["X-Api-Key: key-123", "X-Api-Key: key-123"], 400);
    // Right: the header name is case-insensitive; the key header is removed, and an
    // Authorization header, which is not this route's credential, passes through.
    let got = f.allowed("/key", &["x-api-key: key-123"]);
    assert!(!got.has("x-api-key"), "{:?}", got.headers);
    let got = f.allowed(
        "/key",
        &[
            "X-API-KEY: key-456",
            "Authorization: Bearer for-the-backend",
        ],
    );
    assert!(!got.has("x-api-key"), "{:?}", got.headers);
    assert_eq!(got.header("authorization"), Some("Bearer for-the-backend"));
    f.assert_backend_never_saw("key-123");
    f.assert_backend_never_saw("key-456");
    let got = f.allowed("/key-keep", &["X-Api-Key: key-123"]);
    assert_eq!(got.header_all("x-api-key"), vec!["key-123"]);
    f.backend.assert_no_panics();
}

#[test]
fn basic_users() {
    // The stored form as an operator makes it (Argon2id; about a second in a debug build).
    let hash = hash_password("s3cret pass");
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    let f = Fixture::start(&format!(
        r#"
[[routes]]
path = "/basic"
group = "default"
auth = {{ type = "basic", realm = "staff", users = {{ alice = '{hash}' }} }}

[[routes]]
path = "/basic-keep"
group = "default"
keep_credentials = true
auth = {{ type = "basic", users = {{ alice = '{hash}' }} }}

[[routes]]
path = "/open"
group = "default"
auth = {{ type = "none" }}
"#
    ));
    let basic = |user_pass: &str| format!("Authorization: Basic {}", base64(user_pass.as_bytes()));
    let challenge = "Basic realm=\"staff\", charset=\"UTF-8\"";
    f.unauthorized("/basic", &[], challenge);
    f.unauthorized("/basic", &["Authorization: Bearer abc"], challenge);
    f.unauthorized(
        "/basic-keep",
        &[],
        "Basic realm=\"corelay\", charset=\"UTF-8\"",
    );
    let r = f.refused("/basic", &[&basic("alice:wrong")], 403);
    assert!(!r.has("www-authenticate"), "{:?}", r.headers);
    f.refused("/basic", &[&basic("bob:s3cret pass")], 403);
    // Not base64, or no ':' in the decoded credentials: 400.
    f.refused("/basic", &["Authorization: Basic !!!"], 400);
    f.refused(
        "/basic",
        &[&format!("Authorization: Basic {}", base64(b"alice"))],
        400,
    );
    // Right, twice (the second from the verification cache).
    let good = basic("alice:s3cret pass");
    for _ in 0..2 {
        let got = f.allowed("/basic", &[&good]);
        assert!(!got.has("authorization"), "{:?}", got.headers);
    }
    f.assert_backend_never_saw(&base64(b"alice:s3cret pass"));
    f.assert_backend_never_saw("s3cret");
    let got = f.allowed("/basic-keep", &[&good]);
    assert_eq!(
        got.header_all("authorization"),
        vec![good.trim_start_matches("Authorization: ")]
    );
    // A route without authorization forwards Authorization untouched.
    let got = f.allowed("/open", &["Authorization: Bearer opaque"]);
    assert_eq!(got.header("authorization"), Some("Bearer opaque"));
    f.backend.assert_no_panics();
}

/// A 401 or 403 is a complete response on a connection the client can read to the end:
/// it has a Content-Length, and corelay closes afterwards (it never leaves a refused
/// request's connection hanging).
#[test]
fn refusals_are_well_framed() {
    let f = Fixture::start(
        r#"
[[routes]]
path = "/"
group = "default"
auth = { type = "bearer", tokens = ["t"] }
"#,
    );
    for (hdr, status) in [("X-None: 1", 401), ("Authorization: Bearer u", 403)] {
        let mut c = Client::connect(f.cr.addr);
        c.send(format!("GET / HTTP/1.1\r\nHost: a\r\n{hdr}\r\n\r\n").as_bytes());
        let r = c.read_response().expect("response");
        assert_eq!(r.status, status);
        assert!(r.has("content-length"), "{:?}", r.headers);
        // HEAD gets the same status, without a body.
        let mut c = Client::connect(f.cr.addr);
        c.send(format!("HEAD / HTTP/1.1\r\nHost: a\r\n{hdr}\r\n\r\n").as_bytes());
        let r = c.read_head_response().expect("response");
        assert_eq!(r.status, status);
        c.set_read_timeout(std::time::Duration::from_secs(5));
        c.expect_closed();
    }
    assert_eq!(f.backend.connections(), 0);
}

/// A cheap Argon2id hash (8 KiB, one pass): the budget test needs many verifications to be
/// fast, so that they all fall inside one refill period.
fn cheap_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let salt = SaltString::encode_b64(b"corelay-test-salt").unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

#[test]
fn the_basic_auth_verification_budget_gives_503_while_cached_users_pass() {
    let hash = cheap_hash("pw");
    let f = Fixture::start(&format!(
        r#"
[[routes]]
path = "/basic"
group = "default"
auth = {{ type = "basic", users = {{ ann = '{hash}' }} }}
"#
    ));
    let basic = |user_pass: &str| format!("Authorization: Basic {}", base64(user_pass.as_bytes()));
    // ann is verified once and cached.
    assert_eq!(f.send("/basic", &[&basic("ann:pw")]).status, 200);
    // A burst of wrong passwords (failures are never cached), all at once: the budget (a
    // burst of 10, refilled at 5 per second) runs out long before 40 of them are verified.
    let addr = f.cr.addr;
    let guesses: Vec<_> = (0..40)
        .map(|i| {
            let h = basic(&format!("ann:guess{i}"));
            std::thread::spawn(move || {
                let req = format!("GET /basic HTTP/1.1\r\nHost: auth.test\r\n{h}\r\n\r\n");
                Client::connect(addr).roundtrip(req.as_bytes())
            })
        })
        .collect();
    let answers: Vec<Response> = guesses.into_iter().map(|g| g.join().unwrap()).collect();
    let throttled: Vec<&Response> = answers.iter().filter(|r| r.status == 503).collect();
    assert!(
        answers.iter().all(|r| r.status == 403 || r.status == 503),
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(
        !throttled.is_empty(),
        "40 guesses at once were all verified"
    );
    for r in &throttled {
        assert_eq!(r.header("retry-after"), Some("1"), "{:?}", r.headers);
    }
    // The cached user still passes while the budget is spent.
    let r = f.send("/basic", &[&basic("ann:pw")]);
    assert_eq!(r.status, 200, "{}", r.status_line);
    // Only the two good requests reached the backend.
    assert_eq!(f.backend.requests().len(), 2);
}
