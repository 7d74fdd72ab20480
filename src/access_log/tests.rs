//! Tests of the batching, dropping, recycling and shutdown behaviour, with hand-made channels
//! (a writer that is stuck, slow or gone) and with real sinks on files in a temp directory.
//! The exact line formats are tested in `format.rs`.

use super::format::tests::{bare_entry, check_json_line, example_entry, line};
use super::*;
use std::collections::HashSet;
use std::path::Path;

/// A shard log wired to channels the test holds: `rx` plays the writer, `give_back` returns
/// buffers to the shard.
struct Harness {
    // Declared first so it drops first: a dropped log then sees a gone writer instead of
    // waiting `FINAL_FLUSH_WAIT` on a queue nobody reads.
    rx: Receiver<Batch>,
    log: ShardLog,
    give_back: SyncSender<Vec<u8>>,
    shared: Arc<Shared>,
}

fn harness(format: Format, queue: usize) -> Harness {
    let shared = Arc::new(Shared::new(1));
    let (tx, rx) = mpsc::sync_channel(queue);
    let (give_back, returns) = mpsc::sync_channel(BUFFERS_PER_SHARD);
    let log = ShardLog::new(ShardLogWriter {
        index: 0,
        format,
        shared: shared.clone(),
        link: Some(Link { tx, returns }),
    });
    Harness {
        log,
        rx,
        give_back,
        shared,
    }
}

impl Harness {
    fn current_lines(&self) -> u64 {
        self.log.0.state.borrow().lines
    }
    fn current_len(&self) -> usize {
        self.log
            .0
            .state
            .borrow()
            .current
            .as_ref()
            .map_or(0, Vec::len)
    }
    fn allocated(&self) -> usize {
        self.log.0.state.borrow().allocated
    }
}

/// Lines a buffer takes before handing over, for a line of `len` bytes whose bound is `bound`.
fn lines_per_buffer(len: usize, bound: usize) -> usize {
    // A line goes in while the spare room is at least its bound.
    (BUFFER_CAPACITY - bound) / len + 1
}

fn check_batch(batch: &Batch, want_line: &str) {
    assert_eq!(batch.shard, 0);
    let text = std::str::from_utf8(&batch.buf).unwrap();
    assert!(text.ends_with('\n'), "a batch holds whole lines");
    assert_eq!(text.matches('\n').count() as u64, batch.lines);
    assert!(text.split_inclusive('\n').all(|l| l == want_line));
}

#[test]
fn lines_are_batched_until_the_buffer_is_full() {
    let h = harness(Format::Combined, BUFFERS_PER_SHARD);
    let e = example_entry();
    let want = line(Format::Combined, &e);
    let per_buffer = lines_per_buffer(want.len(), format::max_line_len(&Format::Combined, &e));
    assert!(per_buffer > 100, "{per_buffer}");

    for i in 0..per_buffer {
        h.log.log(&e);
        assert!(
            h.rx.try_recv().is_err(),
            "nothing is sent before the buffer is full ({i})"
        );
    }
    assert_eq!(h.current_lines(), per_buffer as u64);
    assert_eq!(h.current_len(), per_buffer * want.len());
    // The next line does not fit: the full buffer goes, the line starts a new one.
    h.log.log(&e);
    let batch = h.rx.try_recv().expect("handed over when full");
    assert_eq!(batch.lines, per_buffer as u64);
    assert!(batch.buf.len() > BUFFER_CAPACITY - format::max_line_len(&Format::Combined, &e));
    check_batch(&batch, &want);
    assert_eq!(h.current_lines(), 1);
    assert!(h.rx.try_recv().is_err());
    // A flush sends the partial buffer.
    h.log.flush();
    let batch = h.rx.try_recv().expect("flushed");
    assert_eq!(batch.lines, 1);
    check_batch(&batch, &want);
    // Flushing nothing sends nothing.
    h.log.flush();
    assert!(h.rx.try_recv().is_err());
    assert_eq!(h.log.dropped(), 0);
}

#[test]
fn big_lines_hand_over_early_and_never_grow_the_buffer() {
    let h = harness(Format::Json, BUFFERS_PER_SHARD);
    let target = vec![b'\x01'; 10_000];
    let big = Entry {
        target: &target,
        ..example_entry()
    };
    let small = example_entry();
    let mut sent = Vec::new();
    for i in 0..200 {
        h.log.log(if i % 3 == 0 { &big } else { &small });
        while let Ok(batch) = h.rx.try_recv() {
            // `log` debug-asserts the buffer never moved; check the capacity survived too.
            assert_eq!(batch.buf.capacity(), BUFFER_CAPACITY);
            assert!(batch.buf.len() <= BUFFER_CAPACITY);
            sent.push(batch.lines);
            let mut buf = batch.buf;
            let text = std::str::from_utf8(&buf).unwrap();
            text.split_inclusive('\n').for_each(|l| {
                check_json_line(l);
            });
            buf.clear();
            h.give_back.send(buf).unwrap();
        }
    }
    h.log.flush();
    while let Ok(batch) = h.rx.try_recv() {
        sent.push(batch.lines);
    }
    assert_eq!(sent.iter().sum::<u64>(), 200);
    assert!(sent.len() >= 3, "{sent:?}");
    assert_eq!(h.log.dropped(), 0);
}

#[test]
fn buffers_are_recycled_so_steady_state_allocates_nothing() {
    let h = harness(Format::Combined, BUFFERS_PER_SHARD);
    let e = example_entry();
    let mut seen = HashSet::new();
    let mut lines = 0;
    for _ in 0..100_000 {
        h.log.log(&e);
        // A prompt writer: every buffer comes straight back.
        while let Ok(batch) = h.rx.try_recv() {
            seen.insert(batch.buf.as_ptr() as usize);
            lines += batch.lines;
            let mut buf = batch.buf;
            buf.clear();
            h.give_back.send(buf).unwrap();
        }
    }
    h.log.flush();
    lines += h.rx.try_recv().unwrap().lines;
    assert_eq!(lines, 100_000);
    assert_eq!(h.log.dropped(), 0);
    // ~100 buffers' worth of lines went through two buffers: the one being filled and the
    // one coming back.
    assert!(h.allocated() <= 2, "{}", h.allocated());
    assert!(seen.len() <= 2, "{seen:?}");
}

#[test]
fn a_stuck_writer_makes_lines_dropped_not_queued() {
    let h = harness(Format::Combined, BUFFERS_PER_SHARD);
    let e = example_entry();
    let per_buffer = lines_per_buffer(
        line(Format::Combined, &e).len(),
        format::max_line_len(&Format::Combined, &e),
    ) as u64;
    let total = 10 * per_buffer;
    for _ in 0..total {
        h.log.log(&e);
    }
    // Nobody reads: the shard filled all its buffers, queued them, and dropped the rest.
    assert_eq!(h.allocated(), BUFFERS_PER_SHARD);
    let queued: Vec<Batch> = h.rx.try_iter().collect();
    assert_eq!(queued.len(), BUFFERS_PER_SHARD);
    let kept: u64 = queued.iter().map(|b| b.lines).sum();
    assert_eq!(kept, BUFFERS_PER_SHARD as u64 * per_buffer);
    assert_eq!(h.current_lines(), 0, "no buffer left to fill");
    assert_eq!(h.log.dropped(), total - kept);
    // Readable from another thread (what the metrics thread does).
    let shared = h.shared.clone();
    let seen = std::thread::spawn(move || shared.shards[0].dropped.load(Ordering::Relaxed))
        .join()
        .unwrap();
    assert_eq!(seen, total - kept);

    // The writer catches up and returns the buffers: logging works again, without allocating.
    for mut b in queued {
        b.buf.clear();
        h.give_back.send(b.buf).unwrap();
    }
    h.log.log(&e);
    assert_eq!(h.current_lines(), 1);
    assert_eq!(h.allocated(), BUFFERS_PER_SHARD);
    assert_eq!(h.log.dropped(), total - kept);
}

#[test]
fn a_full_queue_keeps_the_current_buffer_and_drops_new_lines() {
    // A queue shorter than the shard's buffers: the limit met is the queue (`Full`).
    let h = harness(Format::Json, 1);
    let e = bare_entry();
    let want = line(Format::Json, &e);
    let per_buffer = lines_per_buffer(want.len(), format::max_line_len(&Format::Json, &e)) as u64;
    let total = 3 * per_buffer;
    for _ in 0..total {
        h.log.log(&e);
    }
    assert_eq!(h.allocated(), 2);
    assert_eq!(
        h.current_lines(),
        per_buffer,
        "the second buffer is kept, full"
    );
    assert_eq!(h.log.dropped(), total - 2 * per_buffer);
    let first = h.rx.try_recv().unwrap();
    check_batch(&first, &want);
    // Room in the queue again: the kept buffer goes with the next line, intact.
    h.log.log(&e);
    let second = h.rx.try_recv().unwrap();
    assert_eq!(second.lines, per_buffer);
    check_batch(&second, &want);
    assert_eq!(h.current_lines(), 1);
    assert_eq!(
        first.lines + second.lines + h.current_lines() + h.log.dropped(),
        total + 1
    );
}

#[test]
fn a_gone_writer_counts_lines_as_dropped() {
    let Harness { log, rx, .. } = harness(Format::Combined, BUFFERS_PER_SHARD);
    drop(rx);
    let e = example_entry();
    for _ in 0..5_000 {
        log.log(&e);
    }
    log.flush();
    assert_eq!(log.dropped(), 5_000);
    // And it keeps a single buffer meanwhile.
    assert_eq!(log.0.state.borrow().allocated, 1);
}

#[test]
fn final_flush_waits_for_a_slow_writer() {
    let h = harness(Format::Combined, 1);
    let e = example_entry();
    let per_buffer = lines_per_buffer(
        line(Format::Combined, &e).len(),
        format::max_line_len(&Format::Combined, &e),
    ) as u64;
    // One buffer queued, a second one partly filled.
    for _ in 0..per_buffer + 10 {
        h.log.log(&e);
    }
    let Harness { log, rx, .. } = h;
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        rx.iter().map(|b| b.lines).sum::<u64>()
    });
    let start = Instant::now();
    log.flush();
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(log.dropped(), 0);
    drop(log);
    assert_eq!(reader.join().unwrap(), per_buffer + 10);
}

#[test]
fn final_flush_gives_up_on_a_stuck_writer() {
    let h = harness(Format::Combined, 1);
    let e = example_entry();
    let per_buffer = lines_per_buffer(
        line(Format::Combined, &e).len(),
        format::max_line_len(&Format::Combined, &e),
    ) as u64;
    for _ in 0..per_buffer + 10 {
        h.log.log(&e);
    }
    let start = Instant::now();
    h.log.flush();
    let waited = start.elapsed();
    assert!(
        waited >= FINAL_FLUSH_WAIT && waited < FINAL_FLUSH_WAIT * 3,
        "{waited:?}"
    );
    assert_eq!(h.log.dropped(), 10);
    assert_eq!(h.current_lines(), 0);
    // The queued buffer is intact.
    assert_eq!(h.rx.try_recv().unwrap().lines, per_buffer);
}

// --- Real sinks. ---

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        use std::sync::atomic::AtomicUsize;
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "corelay-access-log-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn file(&self) -> PathBuf {
        self.0.join("access.log")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'));
    text.split_inclusive('\n').map(String::from).collect()
}

#[test]
fn file_sink_batches_writes() {
    let dir = TempDir::new("batches");
    let path = dir.file();
    let sink = Sink::open(&Destination::File(path.clone()), Format::Combined, 1).unwrap();
    let e = example_entry();
    let want = line(Format::Combined, &e);
    let per_buffer = lines_per_buffer(want.len(), format::max_line_len(&Format::Combined, &e));
    const LINES: usize = 20_000;
    let writer = sink.shard_logger(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let log = ShardLog::new(writer);
            for i in 0..LINES {
                log.log(&e);
                // Line `k * per_buffer` is the one that hands buffer k over. Waiting for its
                // write keeps this test about batching: on a loaded machine the shard could
                // otherwise outrun the writer and (correctly) drop lines.
                if i > 0 && i % per_buffer == 0 {
                    let handed = (i / per_buffer) as u64;
                    while sink.writes() < handed {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            }
            log.flush();
        });
    });
    sink.finish();
    assert_eq!(sink.dropped(), 0);
    let lines = read_lines(&path);
    assert_eq!(lines.len(), LINES);
    assert!(lines.iter().all(|l| *l == want));
    // One write(2) per full buffer, plus the final partial one.
    let writes = sink.writes();
    assert_eq!(writes as usize, LINES.div_ceil(per_buffer), "{writes}");
    assert!(writes < (LINES / 100) as u64);
}

#[test]
fn file_is_appended_to_and_created() {
    let dir = TempDir::new("append");
    let path = dir.file();
    for round in 0..2 {
        let sink = Sink::open(&Destination::File(path.clone()), Format::Json, 2).unwrap();
        let (w0, w1) = (sink.shard_logger(0), sink.shard_logger(1));
        let t0 = std::thread::spawn(move || ShardLog::new(w0).log(&example_entry()));
        let t1 = std::thread::spawn(move || ShardLog::new(w1).log(&bare_entry()));
        t0.join().unwrap();
        t1.join().unwrap();
        // No explicit flush: dropping the last ShardLog delivers its lines.
        sink.finish();
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 2 * (round + 1));
        lines.iter().for_each(|l| {
            check_json_line(l);
        });
    }
}

#[test]
fn open_error_names_the_path() {
    let dir = TempDir::new("missing");
    let path = dir.0.join("no/such/dir/access.log");
    let err = match Sink::open(&Destination::File(path.clone()), Format::Combined, 1) {
        Err(e) => e,
        Ok(_) => panic!("opened {path:?}"),
    };
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    let msg = err.to_string();
    assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
    assert!(msg.starts_with("access log "), "{msg}");
}

#[test]
fn write_errors_count_as_dropped() {
    // Every write to /dev/full fails with ENOSPC.
    let full = Path::new("/dev/full");
    if !full.exists() {
        return;
    }
    let sink = Sink::open(&Destination::File(full.into()), Format::Combined, 1).unwrap();
    let writer = sink.shard_logger(0);
    std::thread::spawn(move || {
        let log = ShardLog::new(writer);
        for _ in 0..7 {
            log.log(&example_entry());
        }
    })
    .join()
    .unwrap();
    sink.finish();
    assert_eq!(sink.dropped(), 7);
    assert_eq!(sink.shard_dropped(0), 7);
}

#[test]
fn off_logs_nothing_and_costs_nothing() {
    let sink = Sink::open(&Destination::Off, Format::Combined, 2).unwrap();
    let log = ShardLog::new(sink.shard_logger(1));
    assert!(!log.enabled());
    log.log(&example_entry());
    log.flush();
    assert_eq!(log.0.state.borrow().allocated, 0);
    assert_eq!(log.dropped(), 0);
    drop(log);
    sink.finish();
    assert_eq!(sink.dropped(), 0);
}

#[test]
fn stderr_sink_opens_and_finishes() {
    let sink = Sink::open(&Destination::Stderr, Format::Combined, 1).unwrap();
    let log = ShardLog::new(sink.shard_logger(0));
    assert!(log.enabled());
    drop(log);
    sink.finish();
    assert_eq!(sink.writes(), 0);
}

#[test]
fn finish_waits_for_the_last_shard_handle() {
    let dir = TempDir::new("finish");
    let sink = Sink::open(&Destination::File(dir.file()), Format::Combined, 1).unwrap();
    let writer = sink.shard_logger(0);
    let shard = std::thread::spawn(move || {
        let log = ShardLog::new(writer);
        std::thread::sleep(Duration::from_millis(200));
        log.log(&example_entry());
    });
    let start = Instant::now();
    sink.finish();
    assert!(start.elapsed() >= Duration::from_millis(150));
    shard.join().unwrap();
    assert_eq!(read_lines(&dir.file()).len(), 1);
    // Finished: later handles are inert, and finishing again is harmless.
    sink.finish();
    assert!(!ShardLog::new(sink.shard_logger(0)).enabled());
}

#[test]
#[should_panic(expected = "called twice")]
fn one_logger_per_shard() {
    let sink = Sink::open(&Destination::Stderr, Format::Combined, 1).unwrap();
    let _a = sink.shard_logger(0);
    let _b = sink.shard_logger(0);
}

#[test]
fn sink_and_writer_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Sink>();
    send::<ShardLogWriter>();
}

#[test]
fn parse_settings() {
    assert_eq!("combined".parse(), Ok(Format::Combined));
    assert_eq!("json".parse(), Ok(Format::Json));
    assert!("JSON".parse::<Format>().unwrap_err().contains("\"JSON\""));
    assert_eq!(Destination::parse("off"), Destination::Off);
    assert_eq!(Destination::parse(""), Destination::Off);
    assert_eq!(Destination::parse("stderr"), Destination::Stderr);
    assert_eq!(
        Destination::parse("/var/log/corelay/access.log"),
        Destination::File("/var/log/corelay/access.log".into())
    );
}

/// Runs `f` on its own glommio executor thread (a shard).
fn on_shard<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn glommio_shards_flush_on_finish() {
    let dir = TempDir::new("glommio");
    let path = dir.file();
    const SHARDS: usize = 2;
    const PER_SHARD: usize = 500;
    let sink = Sink::open(&Destination::File(path.clone()), Format::Json, SHARDS).unwrap();
    let shards: Vec<_> = (0..SHARDS)
        .map(|i| {
            let writer = sink.shard_logger(i);
            std::thread::spawn(move || {
                on_shard(move || async move {
                    let log = ShardLog::new(writer);
                    log.spawn_flusher();
                    let target = format!("/shard/{i}");
                    for n in 0..PER_SHARD {
                        let target = format!("{target}/{n}");
                        log.log(&Entry {
                            target: target.as_bytes(),
                            time: SystemTime::now(),
                            ..example_entry()
                        });
                        if n % 100 == 0 {
                            glommio::yield_if_needed().await;
                        }
                    }
                    // The drain's end.
                    log.flush();
                    assert_eq!(log.dropped(), 0);
                })
            })
        })
        .collect();
    shards.into_iter().for_each(|s| s.join().unwrap());
    sink.finish();
    let lines = read_lines(&path);
    assert_eq!(lines.len(), SHARDS * PER_SHARD);
    let mut targets = HashSet::new();
    for l in &lines {
        let fields = check_json_line(l);
        let (_, target) = &fields[4];
        targets.insert(format!("{target:?}"));
    }
    assert_eq!(targets.len(), SHARDS * PER_SHARD, "every line once");
    assert_eq!(sink.dropped(), 0);
}

#[test]
fn glommio_flusher_delivers_a_quiet_shards_lines() {
    let dir = TempDir::new("flusher");
    let path = dir.file();
    let sink = Sink::open(&Destination::File(path.clone()), Format::Combined, 1).unwrap();
    let writer = sink.shard_logger(0);
    let p = path.clone();
    on_shard(move || async move {
        let log = ShardLog::new(writer);
        log.spawn_flusher();
        for _ in 0..3 {
            log.log(&example_entry());
        }
        // No flush: the periodic task hands the buffer over.
        let deadline = Instant::now() + Duration::from_secs(5);
        while read_lines(&p).len() < 3 {
            assert!(Instant::now() < deadline, "flusher never ran");
            glommio::timer::sleep(FLUSH_INTERVAL / 2).await;
        }
        // The task stops once the log is gone (it holds a weak reference only).
        let weak = Rc::downgrade(&log.0);
        drop(log);
        assert!(weak.upgrade().is_none());
        glommio::timer::sleep(FLUSH_INTERVAL * 2).await;
    });
    sink.finish();
    assert_eq!(read_lines(&path).len(), 3);
}
