//! The access log's writer thread: the only place that makes a blocking write(2) for it.
//!
//! A plain thread, not a shard task, because file writes block (io_uring could do them, but
//! stderr may be a pipe or a terminal, and one writer for all shards keeps each buffer's lines
//! contiguous in the file without any cross-shard ordering). It writes each buffer as it
//! arrives, returns it emptied to the shard that filled it, and exits when every shard's
//! sender is gone and the queue is drained.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{Batch, Shared};

/// Where the writer writes.
pub(super) enum Output {
    Stderr,
    File(File),
}

impl Output {
    /// Opens `path` for appending, creating it if missing (mode 0644 via the umask, as
    /// nginx). O_APPEND makes each write land at the current end even if another process
    /// (logrotate's copytruncate) truncates the file.
    pub(super) fn open(path: &Path) -> io::Result<Output> {
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map(Output::File)
            .map_err(|e| io::Error::new(e.kind(), format!("access log {}: {e}", path.display())))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            // Holds stderr's lock for the whole buffer, so `log` records from other threads
            // land between buffers, never inside a line.
            Output::Stderr => io::stderr().lock().write_all(buf),
            Output::File(f) => f.write_all(buf),
        }
    }
}

pub(super) fn spawn(
    rx: Receiver<Batch>,
    mut output: Output,
    returns: Vec<SyncSender<Vec<u8>>>,
    shared: Arc<Shared>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || {
            // Warn when writing starts failing and when it recovers, not per buffer.
            let mut failing = false;
            while let Ok(mut batch) = rx.recv() {
                match output.write_all(&batch.buf) {
                    Ok(()) => {
                        shared.writes.fetch_add(1, Ordering::Relaxed);
                        if failing {
                            log::warn!("access log: writing again");
                            failing = false;
                        }
                    }
                    Err(e) => {
                        shared.add_dropped(batch.shard, batch.lines);
                        if !failing {
                            log::warn!("access log: write failed, dropping lines: {e}");
                            failing = true;
                        }
                    }
                }
                batch.buf.clear();
                // Never full (see `Sink::open`); if the shard is gone, the buffer is freed.
                let _ = returns[batch.shard].try_send(batch.buf);
            }
        })
}
