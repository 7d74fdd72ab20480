//! Hot reload on SIGHUP: a group's backends switched under concurrent load with no failed
//! request, a keep-alive connection opened before the reload served by the new configuration
//! after it, a broken file keeping the running configuration, a removed route, a setting that
//! needs a restart, and pooled connections to a removed backend closed.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::{Backend, Client, Corelay};

const SIGHUP: i32 = 1;

fn named(name: &'static str) -> Backend {
    Backend::http(move |_| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
            name.len()
        )
        .into_bytes()
    })
}

struct File(std::path::PathBuf);

impl File {
    fn new(name: &str, body: &str) -> File {
        let dir = std::env::temp_dir().join(format!("corelay-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = File(dir.join(name));
        f.write(body);
        f
    }

    fn write(&self, body: &str) {
        // Written whole and renamed, so a reload never reads half a file.
        let tmp = self.0.with_extension("tmp");
        std::fs::write(&tmp, body).unwrap();
        std::fs::rename(&tmp, &self.0).unwrap();
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

fn group(backend: SocketAddr) -> String {
    format!("[groups.app]\nbackends = [\"{backend}\"]\n\n[[routes]]\ngroup = \"app\"\n")
}

fn wait_for_log(c: &Corelay, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.stderr().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "no log line with {needle:?}; stderr:\n{}",
            c.stderr()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

fn body(c: &mut Client, target: &str) -> (u16, String) {
    let r = c.roundtrip(format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    (r.status, r.body_str())
}

#[test]
fn switching_a_groups_backends_under_load_fails_no_request() {
    let (a, b) = (named("A"), named("B"));
    let file = File::new("switch.toml", &group(a.addr));
    let c = Corelay::start(&[], &["--config", file.path()]);
    let stop = Arc::new(AtomicBool::new(false));
    let saw_b = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, saw_b, addr) = (stop.clone(), saw_b.clone(), c.addr);
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let (status, who) = body(&mut client, "/x");
                    assert_eq!(status, 200, "request {n} failed during the reload");
                    assert!(who == "A" || who == "B", "{who}");
                    if who == "B" {
                        saw_b.fetch_add(1, Ordering::SeqCst);
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    file.write(&group(b.addr));
    c.signal(SIGHUP);
    wait_for_log(&c, "reload: configuration applied", 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while saw_b.load(Ordering::SeqCst) < 100 {
        assert!(Instant::now() < deadline, "the new backend got no traffic");
        thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::SeqCst);
    let total: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(
        total > saw_b.load(Ordering::SeqCst),
        "A served nothing before the reload"
    );
    // Once applied, new connections all go to B.
    let mut fresh = Client::connect(c.addr);
    for _ in 0..5 {
        assert_eq!(body(&mut fresh, "/x"), (200, "B".to_string()));
    }
}

#[test]
fn a_keep_alive_connection_from_before_the_reload_is_served_by_the_new_configuration() {
    let (a, b) = (named("A"), named("B"));
    let file = File::new("keepalive.toml", &group(a.addr));
    let c = Corelay::start(&[], &["--config", file.path()]);
    let mut client = Client::connect(c.addr);
    assert_eq!(body(&mut client, "/x"), (200, "A".to_string()));
    file.write(&group(b.addr));
    c.signal(SIGHUP);
    wait_for_log(&c, "reload: configuration applied", 1);
    assert_eq!(body(&mut client, "/x"), (200, "B".to_string()));
}

#[test]
fn a_broken_file_keeps_the_running_configuration() {
    let a = named("A");
    let file = File::new("broken.toml", &group(a.addr));
    let c = Corelay::start_with_metrics(&[], &["--config", file.path()]);
    file.write(&format!("{}client_header_timeot = \"5s\"\n", group(a.addr)));
    c.signal(SIGHUP);
    wait_for_log(&c, "reload refused, keeping the running configuration", 1);
    // The error names the file and its line.
    assert!(
        c.stderr().contains(&format!("{}:", file.path())),
        "{}",
        c.stderr()
    );
    let mut client = Client::connect(c.addr);
    assert_eq!(body(&mut client, "/x"), (200, "A".to_string()));
    assert!(!c.stderr().contains("configuration applied"));
    let text = common::scrape_metrics(c.metrics_addr.unwrap());
    let reloads = common::metric_samples(&text, "corelay_reloads_total");
    assert!(
        reloads.contains(&("result=\"refused\"".to_string(), 1.0)),
        "{reloads:?}"
    );
    assert!(
        reloads.contains(&("result=\"applied\"".to_string(), 0.0)),
        "{reloads:?}"
    );
}

#[test]
fn a_removed_route_is_gone_after_the_reload_and_a_restart_setting_is_kept() {
    let (a, b) = (named("A"), named("B"));
    let two = format!(
        "[groups.a]\nbackends = [\"{}\"]\n[groups.b]\nbackends = [\"{}\"]\n\n\
         [[routes]]\npath = \"/a\"\ngroup = \"a\"\n[[routes]]\npath = \"/b\"\ngroup = \"b\"\n",
        a.addr, b.addr
    );
    let file = File::new("routes.toml", &two);
    let c = Corelay::start(&[], &["--config", file.path()]);
    let mut client = Client::connect(c.addr);
    assert_eq!(body(&mut client, "/b").0, 200);
    let one = format!(
        "listen = \"127.0.0.1:1\"\nbacklog = 77\n[groups.a]\nbackends = [\"{}\"]\n\n[[routes]]\npath = \"/a\"\ngroup = \"a\"\n",
        a.addr
    );
    file.write(&one);
    c.signal(SIGHUP);
    wait_for_log(&c, "reload: configuration applied", 1);
    assert!(
        c.stderr()
            .contains("reload: 'backlog' changed but needs a restart; keeping the running value"),
        "{}",
        c.stderr()
    );
    // The command line's --listen (set by the harness) still overrides the file's.
    assert!(!c.stderr().contains("'listen' changed"), "{}", c.stderr());
    assert_eq!(body(&mut client, "/a"), (200, "A".to_string()));
    assert_eq!(body(&mut client, "/b").0, 404);
    // Still listening where it was.
    let mut again = Client::connect(c.addr);
    assert_eq!(body(&mut again, "/a").0, 200);
}

#[test]
fn pooled_connections_to_a_removed_backend_are_closed() {
    // A keep-alive backend that reports when corelay closes its connection.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let old = l.local_addr().unwrap();
    let (closed_tx, closed_rx) = mpsc::channel();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            let closed_tx = closed_tx.clone();
            thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let mut line = String::new();
                loop {
                    line.clear();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if line == "\r\n" => {
                            w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nold")
                                .unwrap();
                        }
                        Ok(_) => {}
                    }
                }
                let _ = closed_tx.send(());
            });
        }
    });
    let new = named("B");
    let file = File::new("pool.toml", &group(old));
    let c = Corelay::start(
        &[],
        &["--config", file.path(), "--backend-idle-timeout", "60s"],
    );
    let mut client = Client::connect(c.addr);
    assert_eq!(body(&mut client, "/x"), (200, "old".to_string()));
    // The backend connection is idle in the pool now.
    assert!(closed_rx.recv_timeout(Duration::from_millis(300)).is_err());
    file.write(&group(new.addr));
    c.signal(SIGHUP);
    wait_for_log(&c, "reload: configuration applied", 1);
    closed_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the pooled connection to the removed backend stayed open");
    assert_eq!(body(&mut client, "/x"), (200, "B".to_string()));
}
