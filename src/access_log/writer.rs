//! The access log's writer thread: the only place that makes a blocking write(2) for it.
//!
//! A plain thread, not a shard task, because file writes block (io_uring could do them, but
//! stderr may be a pipe or a terminal, and one writer for all shards keeps each buffer's lines
//! contiguous in the file without any cross-shard ordering). It writes each buffer as it
//! arrives, returns it emptied to the shard that filled it, and exits when every shard's
//! sender is gone and the queue is drained.
//!
//! Reopening (SIGUSR1, as nginx): [`Sink::reopen`](super::Sink::reopen) only raises a flag;
//! this thread acts on it between two buffers, so a buffer (whole lines only) is written
//! entirely to the old file or entirely to the new one, and nothing is lost or torn. While
//! idle it looks at the flag every [`REOPEN_POLL`], so `logrotate`'s `postrotate` finds the
//! new file created promptly even when no request comes.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Batch, Shared};

/// How long the idle writer waits before looking at the reopen flag again: a new file
/// appears within this long of the signal; an idle writer wakes only a few times a second.
pub(super) const REOPEN_POLL: Duration = Duration::from_millis(200);

/// Where the writer writes.
pub(super) enum Output {
    Stderr,
    /// The path is kept to reopen it.
    File(File, PathBuf),
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
            .map(|f| Output::File(f, path.to_path_buf()))
            .map_err(|e| io::Error::new(e.kind(), format!("access log {}: {e}", path.display())))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            // Holds stderr's lock for the whole buffer, so `log` records from other threads
            // land between buffers, never inside a line.
            Output::Stderr => io::stderr().lock().write_all(buf),
            Output::File(f, _) => f.write_all(buf),
        }
    }

    /// Opens the path again (the old file was moved away, or deleted): from now on lines go
    /// to the file now at that path. On failure the old file is kept, so lines still land
    /// somewhere, and the error is logged.
    fn reopen(&mut self) {
        let Output::File(_, path) = self else { return };
        match Output::open(path) {
            Ok(new) => {
                log::info!("access log: reopened {}", path.display());
                *self = new;
            }
            Err(e) => log::warn!("{e}; still writing to the file opened before"),
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
            loop {
                let batch = rx.recv_timeout(REOPEN_POLL);
                if shared.reopen.swap(false, Ordering::Relaxed) {
                    output.reopen();
                }
                let mut batch = match batch {
                    Ok(batch) => batch,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                };
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
