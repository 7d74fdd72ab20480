//! Health checks end to end: passive ejection of a backend that accepts and never answers,
//! active checks taking out a backend whose health path answers 503 and bringing it back when
//! it recovers, a group whose backends are all down, and one probe per interval however many
//! cores run.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Backend, Client, Corelay};

/// Transitions are logged at info level; the tests read them from corelay's stderr.
fn info_logs() {
    std::env::set_var("RUST_LOG", "info");
}

/// A backend that accepts connections and never answers (nor closes them).
fn hanging_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    addr
}

/// A backend whose body names it, and whose `/healthz` answers 200 while `healthy` is set,
/// 503 otherwise; counts health requests.
fn named_backend(
    name: &'static str,
    healthy: Arc<AtomicBool>,
    probes: Arc<AtomicUsize>,
) -> Backend {
    Backend::http(move |req| {
        if req.target == "/healthz" {
            probes.fetch_add(1, Ordering::SeqCst);
            if healthy.load(Ordering::SeqCst) {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
            } else {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nsick".to_vec()
            }
        } else {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                name.len()
            )
            .into_bytes()
        }
    })
}

fn get(c: &Corelay) -> (u16, String) {
    let mut client = Client::connect(c.addr);
    let r = client.roundtrip(b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    (r.status, r.body_str())
}

fn wait_for_log(c: &Corelay, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.stderr().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no log line with {needle:?}; stderr:\n{}",
            c.stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn config_file(name: &str, body: &str) -> String {
    let dir = std::env::temp_dir().join(format!("corelay-health-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, body).unwrap();
    file.to_str().unwrap().to_string()
}

fn health_config(name: &str, backends: &[SocketAddr]) -> String {
    let list: Vec<String> = backends.iter().map(|b| format!("\"{b}\"")).collect();
    config_file(
        name,
        &format!(
            "[groups.app]\nbackends = [{}]\n\
             health_check = {{ path = \"/healthz\", interval = \"100ms\", timeout = \"100ms\", rise = 2, fall = 2 }}\n\n\
             [[routes]]\ngroup = \"app\"\n",
            list.join(", ")
        ),
    )
}

#[test]
fn a_backend_that_never_answers_is_skipped_after_max_fails_then_tried_again() {
    info_logs();
    let hang = hanging_backend();
    let ok = Backend::http(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB".to_vec());
    let c = Corelay::start(
        &[hang, ok.addr],
        &[
            "--backend-response-timeout",
            "300ms",
            "--max-fails",
            "2",
            "--fail-timeout",
            "2s",
        ],
    );
    // Round robin: the hanging backend gets every other request until its second timeout.
    let first: Vec<u16> = (0..4).map(|_| get(&c).0).collect();
    assert_eq!(first, vec![504, 200, 504, 200]);
    wait_for_log(
        &c,
        &format!("backend {hang}: skipped for 2s after 2 failures in a row"),
    );
    // Skipped now: every request goes to the other backend.
    for _ in 0..10 {
        assert_eq!(get(&c), (200, "B".to_string()));
    }
    // After fail_timeout it is tried again (and times out again).
    thread::sleep(Duration::from_millis(2100));
    let again: Vec<u16> = (0..2).map(|_| get(&c).0).collect();
    assert!(
        again.contains(&504),
        "not tried again after fail_timeout: {again:?}"
    );
}

#[test]
fn a_backend_failing_its_health_check_gets_no_traffic_until_it_recovers() {
    info_logs();
    let a_healthy = Arc::new(AtomicBool::new(false));
    let a = named_backend("A", a_healthy.clone(), Default::default());
    let b = named_backend("B", Arc::new(AtomicBool::new(true)), Default::default());
    let c = Corelay::start_with_metrics(
        &[],
        &[
            "--config",
            &health_config("recover.toml", &[a.addr, b.addr]),
        ],
    );
    let up = |addr: SocketAddr| {
        let text = common::scrape_metrics(c.metrics_addr.unwrap());
        let labels = format!("group=\"app\",backend=\"{addr}\"");
        common::metric_samples(&text, "corelay_backend_up")
            .into_iter()
            .find(|(l, _)| *l == labels)
            .map(|(_, v)| v)
    };
    wait_for_log(
        &c,
        &format!(
            "backend {} of group app: down after 2 checks in a row (last: answered 503)",
            a.addr
        ),
    );
    assert_eq!((up(a.addr), up(b.addr)), (Some(0.0), Some(1.0)));
    // A still answers requests with 200, but it is out: all go to B.
    for _ in 0..10 {
        assert_eq!(get(&c), (200, "B".to_string()));
    }
    a_healthy.store(true, Ordering::SeqCst);
    wait_for_log(
        &c,
        &format!(
            "backend {} of group app: up after 2 checks in a row (last: answered 200)",
            a.addr
        ),
    );
    assert_eq!(up(a.addr), Some(1.0));
    let bodies: Vec<String> = (0..4).map(|_| get(&c).1).collect();
    assert!(
        bodies.contains(&"A".to_string()),
        "A got no traffic after recovering: {bodies:?}"
    );
    assert!(!c
        .stderr()
        .contains(&format!("backend {} of group app: down", b.addr)));
}

#[test]
fn a_group_whose_backends_are_all_down_still_tries_them() {
    info_logs();
    let a = named_backend("A", Arc::new(AtomicBool::new(false)), Default::default());
    let b = named_backend("B", Arc::new(AtomicBool::new(false)), Default::default());
    let c = Corelay::start(
        &[],
        &[
            "--config",
            &health_config("alldown.toml", &[a.addr, b.addr]),
        ],
    );
    wait_for_log(&c, &format!("backend {} of group app: down", a.addr));
    wait_for_log(&c, &format!("backend {} of group app: down", b.addr));
    let seen: Mutex<Vec<String>> = Mutex::new(Vec::new());
    for _ in 0..4 {
        let (status, body) = get(&c);
        assert_eq!(status, 200);
        seen.lock().unwrap().push(body);
    }
    assert_eq!(seen.lock().unwrap().len(), 4);
}

#[test]
fn each_backend_gets_one_probe_per_interval_however_many_cores_run() {
    let probes = Arc::new(AtomicUsize::new(0));
    let a = named_backend("A", Arc::new(AtomicBool::new(true)), probes.clone());
    let c = Corelay::start(
        &[],
        &[
            "--cores",
            "2",
            "--config",
            &health_config("cores.toml", &[a.addr]),
        ],
    );
    assert_eq!(c.shards.len(), 2);
    thread::sleep(Duration::from_millis(300));
    let start = probes.load(Ordering::SeqCst);
    let t0 = Instant::now();
    thread::sleep(Duration::from_millis(1000));
    let n = probes.load(Ordering::SeqCst) - start;
    let elapsed = t0.elapsed().as_millis() as usize;
    // One prober: about one probe per 100 ms (fewer on a loaded machine, never more); a
    // prober on each of the two shards would make it twice that.
    assert!(n >= 1, "no probe in {elapsed} ms");
    assert!(
        n <= elapsed / 100 + 2,
        "{n} probes in {elapsed} ms at a 100 ms interval"
    );
}
