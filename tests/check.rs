//! `corelay check --config FILE`: every error of the file, each as `FILE:LINE: key 'k': what
//! is wrong`, with the nearest known key for a misspelt one; wrong types say what was
//! expected; what can be checked without starting (the access log's directory) is checked;
//! and a boolean the file turns on can be turned off on the command line.

mod common;
use common::*;

fn check(text: &str) -> (bool, Vec<String>, TempConfig) {
    let cfg = TempConfig::new("corelay.toml", text);
    let (st, out, err) = run_corelay_to_exit(&["check", "--config", cfg.path_str()]);
    if st.success() {
        assert_eq!(out, "config ok\n");
        assert_eq!(err, "");
    }
    let lines = err
        .lines()
        .map(|l| {
            l.strip_prefix(cfg.path_str())
                .unwrap_or_else(|| panic!("{l:?} does not start with the file's path"))
                .to_string()
        })
        .collect();
    (st.success(), lines, cfg)
}

#[test]
fn every_error_is_reported_with_its_line_and_a_suggestion() {
    let (ok, errors, _cfg) = check(
        r#"listen = "127.0.0.1:0"
client_heder_timeout = "5s"
proxy_protocol = "yes"
backlgo = 5
cores = 0
backends = ["127.0.0.1:9000"]

[groups.api]
backends = ["127.0.0.1:9001"]
balanse = "least_requests"

[[routes]]
group = "api"
pathh = "/x"
"#,
    );
    assert!(!ok);
    assert_eq!(
        errors,
        [
            ":2: key 'client_heder_timeout': unknown key (did you mean `client_header_timeout`?)",
            ":3: key 'proxy_protocol': expected true or false, not the string \"yes\"",
            ":4: key 'backlgo': unknown key (did you mean `backlog`?)",
            ":5: key 'cores': invalid value '0' for '--cores <N>': must be at least 1",
            ":10: key 'balanse': unknown key in group 'api' (did you mean `balance`?)",
            ":14: key 'pathh': unknown key in a route (did you mean `path`?)",
        ]
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    let (ok, errors, _cfg) = check(
        "backends = [\"127.0.0.1:9\"]\nproxy_protocol = 1\nbacklog = true\nlisten = [\"a\"]\n",
    );
    assert!(!ok);
    assert_eq!(
        errors,
        [
            ":2: key 'proxy_protocol': expected true or false, not the number 1",
            ":3: key 'backlog': expected a string or a number, not true",
            ":4: key 'listen': expected a string or a number, not a list",
        ]
    );
    // Not a word of clap's internals when the file is used to run, either.
    let cfg = TempConfig::new(
        "c.toml",
        "backends = [\"127.0.0.1:9\"]\nproxy_protocol = \"yes\"\n",
    );
    let (st, _, err) = run_corelay_to_exit(&["--config", cfg.path_str()]);
    assert_eq!(st.code(), Some(2));
    assert_eq!(
        err,
        format!(
            "error: {}:2: key 'proxy_protocol': expected true or false, not the string \"yes\"\n",
            cfg.path_str()
        )
    );
}

#[test]
fn check_finds_an_access_log_that_cannot_be_written() {
    let (ok, errors, _cfg) =
        check("backends = [\"127.0.0.1:9\"]\naccess_log = \"/nonexistent-corelay-dir/a.log\"\n");
    assert!(!ok);
    assert_eq!(
        errors,
        [":2: key 'access_log': --access-log /nonexistent-corelay-dir/a.log: directory /nonexistent-corelay-dir does not exist"]
    );
    // A directory as the log file.
    let (ok, errors, _cfg) = check("backends = [\"127.0.0.1:9\"]\naccess_log = \"/tmp\"\n");
    assert!(!ok);
    assert_eq!(
        errors,
        [":2: key 'access_log': --access-log /tmp: is a directory"]
    );
    // A writable directory: fine, and check creates nothing.
    let dir = TempConfig::new("placeholder", "");
    let log = dir.path.with_file_name("new.log");
    let (ok, errors, _cfg) = check(&format!(
        "backends = [\"127.0.0.1:9\"]\naccess_log = \"{}\"\naccess_log_format = \"json\"\n",
        log.display()
    ));
    assert!(ok, "{errors:?}");
    assert!(!log.exists());
}

#[test]
fn check_finds_unresolvable_backends_and_missing_groups() {
    let (ok, errors, _cfg) = check(
        "backends = [\"no-such-host.invalid:80\"]\n\n[[routes]]\npath = \"/\"\ngroup = \"nope\"\n",
    );
    assert!(!ok);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with(":1: key 'backends': backends 'no-such-host.invalid:80': "),
        "{errors:?}"
    );
    assert_eq!(errors[1], ":5: key 'group': no group named 'nope'");
}

#[test]
fn a_boolean_the_file_turns_on_can_be_turned_off_on_the_command_line() {
    let be = Backend::ok(b"plain");
    let cfg = TempConfig::new(
        "c.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\ncores = 1\nbackends = [\"{}\"]\nproxy_protocol = true\n",
            be.addr
        ),
    );
    // With the file's setting, a request without a PROXY header is closed unanswered.
    let cr = Corelay::start_with_config(&cfg.path, &[]);
    let mut c = Client::connect(cr.addr);
    c.send(&get("/"));
    c.expect_closed();
    drop(cr);
    // `--proxy-protocol=false` wins over the file.
    let cr = Corelay::start_with_config(&cfg.path, &["--proxy-protocol=false"]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/"));
    assert_eq!((r.status, r.body_str().as_str()), (200, "plain"));
    // And on the command line alone, the bare flag still means true.
    let (st, _, err) = run_corelay_to_exit(&["--proxy-protocol=maybe", "--backend", "127.0.0.1:9"]);
    assert_eq!(st.code(), Some(2));
    assert!(
        err.contains("--proxy-protocol") && err.contains("maybe"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
