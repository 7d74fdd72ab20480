//! SIGUSR1 reopens the access log, as nginx does: after logrotate moves the file away, new
//! lines go to a new file at the configured path, and no line is lost or split between the
//! two files, even while requests are in flight during the move and the signal.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const SIGUSR1: i32 = 10;
const WAIT: Duration = Duration::from_secs(10);

/// The targets of a log's lines; every line must be whole (it ends in a newline, is one
/// combined line from 127.0.0.1, and names its target once).
fn targets(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if text.is_empty() {
        return Vec::new();
    }
    assert!(text.ends_with('\n'), "partial last line in {path:?}");
    text.lines()
        .map(|l| {
            assert!(l.starts_with("127.0.0.1 - - ["), "not a whole line: {l:?}");
            assert!(l.contains(" request_time="), "not a whole line: {l:?}");
            let req = l.split('"').nth(1).expect("quoted request");
            let mut words = req.split(' ');
            assert_eq!(words.next(), Some("GET"), "{l:?}");
            words.next().expect("target").to_string()
        })
        .collect()
}

fn get_n(c: &mut Client, prefix: &str, n: usize) {
    let r = c.roundtrip(&get(&format!("/{prefix}/{n}")));
    assert_eq!(r.status, 200);
}

#[test]
fn sigusr1_reopens_the_moved_log_and_loses_nothing() {
    let dir = TempConfig::new("access.log", "");
    let path = dir.path.clone();
    let moved = path.with_extension("log.1");
    let be = Backend::ok(b"ok");
    let mut cr = Corelay::start(&[be.addr], &["--access-log", dir.path_str()]);
    let mut c = Client::connect(cr.addr);

    // Before: every line is in the file before it is moved.
    const BEFORE: usize = 50;
    for i in 0..BEFORE {
        get_n(&mut c, "before", i);
    }
    eventually(WAIT, "the first lines are written", || {
        targets(&path).len() == BEFORE
    });
    std::fs::rename(&path, &moved).unwrap();
    // Written after the move (the process still holds the old file): they land in the moved
    // file, as with nginx before its reopen.
    const MOVED: usize = 10;
    for i in 0..MOVED {
        get_n(&mut c, "moved", i);
    }
    eventually(WAIT, "lines go to the moved file until the signal", || {
        targets(&moved).len() == BEFORE + MOVED
    });
    assert!(
        !path.exists(),
        "nothing recreated the file before the signal"
    );

    // During: a second client keeps sending while the signal arrives; each of its lines
    // must be in exactly one of the two files, whole.
    let stop = Arc::new(AtomicBool::new(false));
    let during = {
        let (addr, stop) = (cr.addr, stop.clone());
        thread::spawn(move || {
            let mut c = Client::connect(addr);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) || n < 20 {
                get_n(&mut c, "during", n);
                n += 1;
            }
            n
        })
    };
    cr.signal(SIGUSR1);
    // Idle or not, the writer reopens promptly: the new file appears.
    eventually(WAIT, "SIGUSR1 creates the new file", || path.exists());
    stop.store(true, Ordering::Relaxed);
    let during_n = during.join().unwrap();

    // After: every line goes to the new file.
    const AFTER: usize = 40;
    for i in 0..AFTER {
        get_n(&mut c, "after", i);
    }
    drop(c);
    cr.signal(SIGTERM);
    let st = cr.wait_exit(WAIT).expect("exit after SIGTERM");
    assert!(st.success(), "{st:?}: {}", cr.stderr());

    let old = targets(&moved);
    let new = targets(&path);
    let count = |v: &[String], p: &str| v.iter().filter(|t| t.starts_with(p)).count();
    assert_eq!(count(&old, "/before/"), BEFORE);
    assert_eq!(count(&old, "/moved/"), MOVED);
    assert_eq!(count(&new, "/before/") + count(&new, "/moved/"), 0);
    assert_eq!(
        count(&new, "/after/"),
        AFTER,
        "every later line in the new file"
    );
    assert_eq!(count(&old, "/after/"), 0);
    assert_eq!(
        count(&old, "/during/") + count(&new, "/during/"),
        during_n,
        "no line lost while reopening"
    );
    assert_eq!(old.len() + new.len(), BEFORE + MOVED + during_n + AFTER);
    let all: BTreeSet<&String> = old.iter().chain(&new).collect();
    assert_eq!(all.len(), old.len() + new.len(), "no line written twice");
    assert!(!cr.stderr().contains("access log"), "{}", cr.stderr());
}

#[test]
fn sigusr1_with_the_log_on_stderr_or_off_is_harmless() {
    let be = Backend::ok(b"ok");
    for dest in ["stderr", "off"] {
        let mut cr = Corelay::start(&[be.addr], &["--access-log", dest]);
        cr.signal(SIGUSR1);
        let mut c = Client::connect(cr.addr);
        assert_eq!(c.roundtrip(&get("/x")).status, 200, "{dest}");
        drop(c);
        cr.signal(SIGTERM);
        let st = cr.wait_exit(WAIT).expect("exit after SIGTERM");
        assert!(st.success(), "{dest}: {st:?}: {}", cr.stderr());
        let logged = cr.stderr().matches("\"GET /x HTTP/1.1\" 200").count();
        assert_eq!(logged, usize::from(dest == "stderr"), "{dest}");
    }
}
