//! The config file: `corelay check`, errors that name the line and key, the shipped example,
//! running from a file alone, and command-line flags overriding the file.

mod common;
use common::*;

fn example_path() -> String {
    format!("{}/docs/corelay.example.toml", env!("CARGO_MANIFEST_DIR"))
}

fn get_host(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

/// Runs `corelay check --config FILE` on `text` (written at `name`) and returns
/// (exit code, path, stdout, stderr).
fn check(name: &str, text: &str) -> (Option<i32>, TempConfig, String, String) {
    let cfg = TempConfig::new(name, text);
    let (st, out, err) = run_corelay_to_exit(&["check", "--config", cfg.path_str()]);
    (st.code(), cfg, out, err)
}

/// Asserts that `stderr` has a line `PATH:LINE: ...` that mentions `key`.
fn assert_error_line(stderr: &str, path: &str, line: usize, key: &str) {
    let prefix = format!("{path}:{line}:");
    assert!(
        stderr
            .lines()
            .any(|l| l.trim_start_matches("error: ").starts_with(&prefix) && l.contains(key)),
        "expected an error line starting with {prefix:?} naming {key:?}; stderr:\n{stderr}"
    );
}

/// A file with an error at `line` naming `key`: `check` exits 1 with `FILE:LINE:` and the key;
/// running with it exits non-zero with the same line, and never gets to `ready`.
fn assert_rejected(text: &str, line: usize, key: &str) {
    let (code, cfg, out, err) = check("bad.toml", text);
    assert_eq!(
        code,
        Some(1),
        "check exit code; stdout {out:?}; stderr:\n{err}"
    );
    assert!(!out.contains("config ok"), "stdout: {out:?}");
    assert_error_line(&err, cfg.path_str(), line, key);
    assert!(
        err.lines().all(|l| !l.trim().is_empty()),
        "blank lines in {err:?}"
    );

    let (st, out, err) =
        run_corelay_to_exit(&["--config", cfg.path_str(), "--listen", "127.0.0.1:0"]);
    assert!(
        !st.success(),
        "run with a bad config exited 0; stdout {out:?}"
    );
    assert!(!out.contains("corelay: ready"), "stdout: {out:?}");
    assert_error_line(&err, cfg.path_str(), line, key);
}

#[test]
fn example_config_passes_check() {
    let path = example_path();
    let (st, out, err) = run_corelay_to_exit(&["check", "--config", &path]);
    assert_eq!(st.code(), Some(0), "stdout {out:?}; stderr:\n{err}");
    assert_eq!(out, "config ok\n");
    assert_eq!(err, "");
}

/// Every flag of `corelay --help` has its key in the example (set, or commented out when it
/// has no default value).
#[test]
fn example_config_shows_every_flag() {
    let (st, help, _) = run_corelay_to_exit(&["--help"]);
    assert!(st.success());
    let example = std::fs::read_to_string(example_path()).unwrap();
    let keys: Vec<String> = example
        .lines()
        .map(|l| l.trim_start_matches('#').trim_start())
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim().to_string()))
        .collect();
    let mut flags = 0;
    for line in help.lines() {
        let Some(flag) = line.trim_start().strip_prefix("--") else {
            continue;
        };
        // `--flag <V>`, `--flag, ...` or `--flag[=<BOOL>]` (a boolean with an optional value).
        let flag = flag.split([' ', ',', '[']).next().unwrap();
        let key = match flag {
            "help" | "version" | "config" => continue,
            "backend" => "backends".to_string(),
            f => f.replace('-', "_"),
        };
        flags += 1;
        assert!(
            keys.contains(&key),
            "flag --{flag} has no key `{key} = ...` in docs/corelay.example.toml"
        );
    }
    assert!(flags >= 30, "only {flags} flags found in --help:\n{help}");
    for scheme in ["\"none\"", "\"bearer\"", "\"api_key\"", "\"basic\""] {
        assert!(
            example.contains(&format!("type = {scheme}")),
            "example has no route with auth type {scheme}"
        );
    }
    assert!(example.contains("\"least_requests\"") && example.contains("\"round_robin\""));
}

/// The example runs (with the address and core count overridden on the command line), its
/// basic-auth hash is that of the password it names, and `--backend` replaces its default
/// group.
#[test]
fn example_config_runs_and_its_basic_hash_matches() {
    let backend = Backend::ok(b"default group");
    let path = example_path();
    let backend_addr = backend.addr.to_string();
    let cr = Corelay::start_with_config(
        std::path::Path::new(&path),
        &[
            "--listen",
            "127.0.0.1:0",
            "--cores",
            "1",
            "--backend",
            &backend_addr,
        ],
    );
    // The catch-all route, to the default group that --backend replaced.
    let r = Client::connect(cr.addr).roundtrip(&get_host("anything.test", "/x"));
    assert_eq!((r.status, r.body_str().as_str()), (200, "default group"));
    assert_eq!(backend.requests()[0].request_line, "GET /x HTTP/1.1");

    // admin.example.com: basic, realm "admin", alice / change-me.
    let r = Client::connect(cr.addr).roundtrip(&get_host("admin.example.com", "/"));
    assert_eq!(r.status, 401, "{}", r.status_line);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"admin\", charset=\"UTF-8\"")
    );
    let req = |user_pass: &str| {
        format!(
            "GET / HTTP/1.1\r\nHost: admin.example.com\r\nAuthorization: Basic {}\r\n\r\n",
            base64(user_pass.as_bytes())
        )
        .into_bytes()
    };
    let r = Client::connect(cr.addr).roundtrip(&req("alice:wrong"));
    assert_eq!(r.status, 403, "{}", r.status_line);
    // The right password passes authorization; the admin group's backend (127.0.0.1:9301)
    // is normally not running, so that is a 502 — anything but 401/403.
    let r = Client::connect(cr.addr).roundtrip(&req("alice:change-me"));
    assert!(
        r.status != 401 && r.status != 403,
        "the example's hash does not match its documented password: {}",
        r.status_line
    );
    assert_eq!(backend.requests().len(), 1);
}

#[test]
fn unknown_keys_are_errors_naming_line_and_key() {
    // Top level, on line 4.
    assert_rejected(
        "# comment\nlisten = \"127.0.0.1:0\"\nbackends = [\"127.0.0.1:9000\"]\nlisten_adress = \"x\"\n",
        4,
        "listen_adress",
    );
    // In a group, on line 5.
    assert_rejected(
        "backends = [\"127.0.0.1:9000\"]\n\n[groups.api]\nbackends = [\"127.0.0.1:9001\"]\nweight = 3\n",
        5,
        "weight",
    );
    // In a route, on line 6.
    assert_rejected(
        "backends = [\"127.0.0.1:9000\"]\n\n[[routes]]\npath = \"/\"\ngroup = \"default\"\nstrip_prefx = true\n",
        6,
        "strip_prefx",
    );
}

#[test]
fn bad_addresses_are_errors_naming_line_and_key() {
    assert_rejected(
        "cores = 1\n\nlisten = \"localhost\"\nbackends = [\"127.0.0.1:9000\"]\n",
        3,
        "listen",
    );
    assert_rejected(
        "listen = \"127.0.0.1:0\"\nbackends = [\n  \"127.0.0.1:9000\",\n  \"127.0.0.1:notaport\",\n]\n",
        4,
        "backends",
    );
    assert_rejected(
        "backends = [\"127.0.0.1:9000\"]\n[groups.api]\nbackends = [\"nowhere\"]\n",
        3,
        "backends",
    );
    assert_rejected(
        "backends = [\"127.0.0.1:9000\"]\nmetrics_listen = \"127.0.0.1\"\n",
        2,
        "metrics_listen",
    );
}

#[test]
fn route_naming_a_missing_group_is_an_error_naming_line_and_key() {
    assert_rejected(
        "listen = \"127.0.0.1:0\"\n\n[groups.api]\nbackends = [\"127.0.0.1:9001\"]\n\n[[routes]]\npath = \"/api\"\ngroup = \"api\"\n\n[[routes]]\npath = \"/\"\ngroup = \"web\"\n",
        12,
        "group",
    );
    let (_, _, _, err) = check(
        "missing.toml",
        "backends = [\"127.0.0.1:9000\"]\n[[routes]]\ngroup = \"web\"\n",
    );
    assert!(
        err.contains("'web'"),
        "the error should name the group: {err}"
    );
}

/// Several errors: each on its own line, each with its line number.
#[test]
fn check_lists_every_error() {
    let (code, cfg, _, err) = check(
        "several.toml",
        "backends = [\"127.0.0.1:9000\"]\nclient_header_timeout = \"5x\"\ncores = 0\n[[routes]]\ngroup = \"nope\"\n",
    );
    assert_eq!(code, Some(1), "{err}");
    assert_error_line(&err, cfg.path_str(), 2, "client_header_timeout");
    assert_error_line(&err, cfg.path_str(), 3, "cores");
    assert_error_line(&err, cfg.path_str(), 5, "group");
}

/// `--config` alone: the file gives the address, the core count, groups and routes.
#[test]
fn runs_from_a_config_file_alone() {
    let a = Backend::ok(b"from file");
    let cfg = TempConfig::new(
        "alone.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\ncores = 1\nclient_max_body_size = \"1k\"\nbackends = [\"{}\"]\n",
            a.addr
        ),
    );
    let cr = Corelay::start_with_config(&cfg.path, &[]);
    assert_eq!(cr.shard_addrs.len(), 1, "cores = 1: {:?}", cr.startup_lines);
    assert_eq!(cr.addr.ip().to_string(), "127.0.0.1");
    let r = Client::connect(cr.addr).roundtrip(&get("/alone"));
    assert_eq!((r.status, r.body_str().as_str()), (200, "from file"));
    // The file's client_max_body_size applies.
    let r = Client::connect(cr.addr).roundtrip(&post("/big", &[b'x'; 2048]));
    assert_eq!(r.status, 413, "{}", r.status_line);
    assert_eq!(a.requests().len(), 1);
}

/// Flags on the command line win over the file's keys: `--listen` over `listen`, `--backend`
/// over the default group's `backends` (other groups stay), a size over a size.
#[test]
fn command_line_flags_override_the_file() {
    let from_file = Backend::ok(b"file backend");
    let from_cli = Backend::ok(b"cli backend");
    let other = Backend::ok(b"other group");
    let cfg = TempConfig::new(
        "override.toml",
        &format!(
            // 192.0.2.1 (TEST-NET-1) is not a local address: binding it would fail, so
            // corelay can only start if --listen replaced it.
            "listen = \"192.0.2.1:80\"\ncores = 1\nclient_max_body_size = \"1k\"\n\
             backends = [\"{}\"]\n\n[groups.other]\nbackends = [\"{}\"]\n\n\
             [[routes]]\npath = \"/other\"\ngroup = \"other\"\n\n\
             [[routes]]\npath = \"/\"\ngroup = \"default\"\n",
            from_file.addr, other.addr
        ),
    );
    let cli = from_cli.addr.to_string();
    let cr = Corelay::start_with_config(
        &cfg.path,
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &cli,
            "--client-max-body-size",
            "4k",
        ],
    );
    for i in 0..4 {
        let r = Client::connect(cr.addr).roundtrip(&get(&format!("/r{i}")));
        assert_eq!((r.status, r.body_str().as_str()), (200, "cli backend"));
    }
    let r = Client::connect(cr.addr).roundtrip(&get("/other/x"));
    assert_eq!((r.status, r.body_str().as_str()), (200, "other group"));
    // 2 KiB: over the file's 1k, under the command line's 4k.
    let r = Client::connect(cr.addr).roundtrip(&post("/upload", &[b'y'; 2048]));
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "cli backend"),
        "{}",
        r.status_line
    );
    let reqs = from_cli.requests();
    assert_eq!(reqs.len(), 5);
    assert_eq!(reqs[4].body.len(), 2048);
    drop(cr);
    from_file.settle();
    assert_eq!(
        from_file.connections(),
        0,
        "the file's backend was used although --backend replaced it"
    );
}

/// The file is read as a whole before the command line: a flag given twice (file and command
/// line) is not an error, and a bad value on the command line is reported as a flag error.
#[test]
fn bad_flag_value_on_the_command_line_is_reported_over_a_good_file() {
    let cfg = TempConfig::new(
        "good.toml",
        "listen = \"127.0.0.1:0\"\ncores = 1\nbackends = [\"127.0.0.1:9000\"]\nqueue_timeout = \"1s\"\n",
    );
    let (st, out, err) =
        run_corelay_to_exit(&["--config", cfg.path_str(), "--queue-timeout", "soon"]);
    assert!(!st.success(), "stdout {out:?}");
    assert!(err.contains("--queue-timeout"), "stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
}

/// `cores` and `cpus` choose the same thing: either on the command line must override the
/// other in the file (the flags conflict with each other only on the command line itself).
#[test]
fn command_line_cpus_overrides_file_cores_and_back() {
    let b = Backend::ok(b"ok");
    for (file_key, flag, value) in [
        ("cores = 1", "--cpus", "0"),
        ("cpus = \"0\"", "--cores", "1"),
    ] {
        let cfg = TempConfig::new(
            "cpus.toml",
            &format!(
                "listen = \"127.0.0.1:0\"\n{file_key}\nbackends = [\"{}\"]\n",
                b.addr
            ),
        );
        let (st, out, err) = run_corelay_to_exit(&["check", "--config", cfg.path_str()]);
        assert!(st.success(), "{file_key}: check: {out} {err}");
        let args: Vec<String> = vec![
            "--config".into(),
            cfg.path_str().into(),
            flag.into(),
            value.into(),
        ];
        // start_with_args panics with corelay's stderr if it does not get to `ready`.
        let cr = Corelay::start_with_args(&args);
        assert_eq!(
            cr.shards.len(),
            1,
            "{file_key} with {flag} {value}: {:?}",
            cr.startup_lines
        );
        assert_eq!(cr.shards[0].1, 0, "{:?}", cr.startup_lines);
        assert_eq!(Client::connect(cr.addr).roundtrip(&get("/")).status, 200);
    }
}

/// Errors found only when keys are combined still name a line of the file and the key (not
/// a command-line flag), like every other `check` error.
#[test]
fn errors_between_keys_name_line_and_key() {
    // Exclusive keys.
    let (code, cfg, _, err) = check(
        "both.toml",
        "listen = \"127.0.0.1:0\"\ncores = 1\ncpus = \"0\"\nbackends = [\"127.0.0.1:9000\"]\n",
    );
    assert_eq!(code, Some(1), "{err}");
    let p = cfg.path_str().to_string();
    assert!(
        err.lines().any(
            |l| (l.starts_with(&format!("{p}:2:")) && l.contains("cores"))
                || (l.starts_with(&format!("{p}:3:")) && l.contains("cpus"))
        ),
        "expected `{p}:2: key 'cores'...` or `{p}:3: key 'cpus'...`; stderr:\n{err}"
    );
    // A key checked against another one.
    let (code, cfg, _, err) = check(
        "buffers.toml",
        "listen = \"127.0.0.1:0\"\nbackends = [\"127.0.0.1:9000\"]\nmax_buffers_per_transfer = 512\n",
    );
    assert_eq!(code, Some(1), "{err}");
    assert_error_line(&err, cfg.path_str(), 3, "max_buffers_per_transfer");
}
