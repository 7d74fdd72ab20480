//! `--access-log-format` templates (nginx-style `$variables`) end to end, the bytes field as
//! nginx's `$body_bytes_sent`, and an unknown variable as a config error naming it.

mod common;
use common::*;

use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn stop_and_read(cr: &mut Corelay, log: &TempConfig) -> String {
    cr.signal(SIGTERM);
    let st = cr.wait_exit(WAIT).expect("exit after SIGTERM");
    assert!(st.success(), "{st:?}: {}", cr.stderr());
    std::fs::read_to_string(&log.path).unwrap()
}

/// `0.004`-style seconds.
fn is_secs(s: &str) -> bool {
    let Some((a, b)) = s.split_once('.') else {
        return false;
    };
    !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) && b.len() == 3
}

#[test]
fn the_issues_template_gives_exact_lines() {
    const MIB: usize = 1 << 20;
    let be = Backend::http(|req| match req.target.as_str() {
        "/big" => ok_response(&vec![b'x'; MIB]),
        "/missing" => response(404, "Not Found", &[], b"nope"),
        _ => ok_response(b"ok"),
    });
    let log = TempConfig::new("access.log", "");
    let template = "$remote_addr \"$request\" $status $body_bytes_sent $request_time \
                    $upstream_addr $request_id";
    let mut cr = Corelay::start(
        &[be.addr],
        &[
            "--access-log",
            log.path_str(),
            "--access-log-format",
            template,
        ],
    );
    let mut c = Client::connect(cr.addr);
    let big = c.roundtrip(&get("/big"));
    assert_eq!((big.status, big.body.len()), (200, MIB));
    let missing = c.roundtrip(&get("/missing"));
    assert_eq!(missing.status, 404);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(b"GET /bad target HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 400);
    let text = stop_and_read(&mut cr, &log);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let upstream = be.addr.to_string();
    let check = |line: &str, request: &str, status: &str, bytes: usize, up: &str, id: &str| {
        let (head, tail) = line.rsplit_once("\" ").unwrap();
        assert_eq!(head, format!("127.0.0.1 \"{request}"), "{line}");
        let f: Vec<&str> = tail.split(' ').collect();
        assert_eq!(f.len(), 5, "{line}");
        assert_eq!(f[0], status, "{line}");
        // Body only, as nginx's $body_bytes_sent: exactly 1 MiB for the 1 MiB body.
        assert_eq!(f[1], bytes.to_string(), "{line}");
        assert!(is_secs(f[2]), "{line}");
        assert_eq!(f[3], up, "{line}");
        // The ID the client got back.
        assert_eq!(f[4], id, "{line}");
    };
    let id = |r: &Response| r.header("x-request-id").unwrap().to_string();
    check(
        lines[0],
        "GET /big HTTP/1.1",
        "200",
        MIB,
        &upstream,
        &id(&big),
    );
    check(
        lines[1],
        "GET /missing HTTP/1.1",
        "404",
        4,
        &upstream,
        &id(&missing),
    );
    check(
        lines[2],
        "GET /bad target HTTP/1.1",
        "400",
        r.body.len(),
        "-",
        &id(&r),
    );
}

#[test]
fn combined_and_json_count_body_bytes_only() {
    let be = Backend::ok(b"hello");
    for (format, want) in [("combined", "\" 200 5 \""), ("json", "\"bytes\":5,")] {
        let log = TempConfig::new("access.log", "");
        let mut cr = Corelay::start(
            &[be.addr],
            &[
                "--access-log",
                log.path_str(),
                "--access-log-format",
                format,
            ],
        );
        let mut c = Client::connect(cr.addr);
        assert_eq!(c.roundtrip(&get("/")).body, b"hello");
        drop(c);
        let text = stop_and_read(&mut cr, &log);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains(want), "{format}: {text}");
    }
}

#[test]
fn unknown_template_variable_is_a_config_error_naming_it() {
    let (st, out, err) = run_corelay_to_exit(&[
        "--backend",
        "127.0.0.1:9",
        "--access-log-format",
        "$remote_addr $stauts",
    ]);
    assert_eq!(st.code(), Some(2), "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--access-log-format"), "{err}");
    assert!(
        err.contains("unknown variable '$stauts' (did you mean `$status`?)"),
        "{err}"
    );
    // The same in a config file, with its line.
    let cfg = TempConfig::new(
        "c.toml",
        "backends = [\"127.0.0.1:9\"]\naccess_log_format = '$remote_addr $upstream_adr'\n",
    );
    let (st, _, err) = run_corelay_to_exit(&["check", "--config", cfg.path_str()]);
    assert!(!st.success());
    assert!(
        err.trim_end()
            .ends_with("unknown variable '$upstream_adr' (did you mean `$upstream_addr`?)"),
        "{err}"
    );
    assert!(
        err.starts_with(&format!("{}:2: key 'access_log_format': ", cfg.path_str())),
        "{err}"
    );
}
