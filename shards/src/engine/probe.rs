//! Building a shard's ring, and the kernel floor: every io_uring feature the engine uses is
//! checked at start, and a missing one ends corelay with one line naming it, the kernel that
//! has it, and the usual causes.

use std::cell::{Cell, RefCell};
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use io_uring::{opcode, types, IoUring, Probe};

use super::bufs::{Bufs, RingGauges};
use super::conn::nodelay_sqe;
use super::wheel::Wheel;
use super::{Engine, EngineConfig, EngineStats, Inner, Ops, MAX_RING_BUFFERS};

/// The oldest kernel the engine runs on, and why: `setsockopt` on a direct descriptor
/// (`SOCKET_URING_OP_SETSOCKOPT`) arrived in 6.7; everything else is older (DEFER_TASKRUN 6.1,
/// direct `SOCKET` and provided-buffer rings 5.19, registered ring fds 5.18).
pub struct KernelFloor;

impl KernelFloor {
    pub const VERSION: &'static str = "6.7";
}

const CAUSES: &str = "if the kernel is new enough, io_uring may be disabled \
    (sysctl kernel.io_uring_disabled) or blocked by a container seccomp profile";

/// Checks, on the calling thread, that an engine with `config` can be built here: one line
/// saying what is missing otherwise. Run once before the shards start.
pub fn probe(config: &EngineConfig) -> Result<(), String> {
    let gauges = Arc::new(RingGauges::default());
    build(config, gauges, Arc::default())
        .map(drop)
        .map_err(|e| e.to_string())
}

fn missing(what: &str, since: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("io_uring: {what} is not available (needs Linux {since}+); {CAUSES}"),
    )
}

/// The fixed-file table size: the configured one, or the `RLIMIT_NOFILE` soft limit (which
/// `shards::raise_nofile_limit` lifts to the hard one at start). The kernel refuses tables
/// larger than the limit.
fn table_size(config: &EngineConfig) -> u32 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit into a valid struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    let limit = rl.rlim_cur.min(1 << 20) as u32;
    if config.files > 0 {
        config.files.min(limit)
    } else {
        limit
    }
}

pub(crate) fn build(
    config: &EngineConfig,
    gauges: Arc<RingGauges>,
    stats: Arc<EngineStats>,
) -> io::Result<Engine> {
    if config.relay_buffers == 0
        || config.relay_buffers > MAX_RING_BUFFERS
        || config.relay_buffer_size == 0
        || config.relay_buffer_size > u32::MAX as usize
        || config.head_buffers == 0
        || config.head_buffers > 1 << 15
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "engine: bad buffer count or size",
        ));
    }
    let files = table_size(config);
    // Room for every connection's receive and send, and the relay's operations; the kernel
    // keeps overflowing completions, so this bounds batching, not correctness.
    let entries: u32 = 4096;
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        // One refused SQE must not hold back the rest of the turn's batch.
        .setup_submit_all()
        .setup_cqsize(entries * 4)
        .build(entries)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOSYS) => missing("io_uring itself", "5.1"),
            Some(libc::EINVAL) => missing("IORING_SETUP_DEFER_TASKRUN", "6.1"),
            Some(libc::EPERM) => io::Error::new(
                e.kind(),
                format!("io_uring is not permitted here: {CAUSES}"),
            ),
            Some(libc::ENOMEM) => io::Error::new(
                e.kind(),
                "io_uring: cannot create a ring: out of locked memory (raise RLIMIT_MEMLOCK: \
                 ulimit -l, or LimitMEMLOCK=infinity)",
            ),
            _ => io::Error::new(e.kind(), format!("io_uring setup failed: {e}")),
        })?;
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|_| missing("IORING_REGISTER_PROBE", "5.6"))?;
    for (code, name, since) in [
        (opcode::Accept::CODE, "ACCEPT", "5.5"),
        (opcode::Recv::CODE, "RECV", "5.6"),
        (opcode::Send::CODE, "SEND", "5.6"),
        (opcode::Connect::CODE, "CONNECT", "5.5"),
        (opcode::Socket::CODE, "SOCKET", "5.19"),
        (opcode::Shutdown::CODE, "SHUTDOWN", "5.11"),
        (opcode::Close::CODE, "CLOSE", "5.6"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL", "5.5"),
        (opcode::Timeout::CODE, "TIMEOUT", "5.4"),
        (opcode::WriteFixed::CODE, "WRITE_FIXED", "5.1"),
        (opcode::UringCmd16::CODE, "URING_CMD", "5.19"),
    ] {
        if !probe.is_supported(code) {
            return Err(missing(&format!("operation {name}"), since));
        }
    }
    let ring_index = register_ring_fd(&ring)?;
    ring.submitter().register_files_sparse(files).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("io_uring: a fixed-file table of {files} entries: {e}"),
        )
    })?;
    stats.files_total.store(files as u64, Relaxed);
    let bufs = Bufs::new(
        &ring,
        config.head_buffers,
        config.relay_buffers,
        config.relay_buffer_size,
        gauges,
        stats.clone(),
    )?;
    // SAFETY: plain eventfd creation.
    let eventfd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if eventfd < 0 {
        return Err(io::Error::last_os_error());
    }
    if let Err(e) = ring.submitter().register_eventfd(eventfd) {
        // SAFETY: we own it.
        unsafe { libc::close(eventfd) };
        return Err(e);
    }
    let mut ring = ring;
    check_setsockopt(&mut ring)?;
    Ok(Engine::from_inner(Inner {
        ring: RefCell::new(ring),
        ring_index,
        ops: RefCell::new(Ops {
            slots: Vec::new(),
            free: Vec::new(),
            in_flight: 0,
        }),
        bufs,
        wheel: RefCell::new(Wheel::new(Instant::now())),
        eventfd,
        driver: Cell::new(None),
        kicked: Cell::new(false),
        now: Cell::new(Instant::now()),
        park_timer: Cell::new(None),
        park_ts: RefCell::new(types::Timespec::new()),
        files_capacity: files,
        files_open: Cell::new(0),
        stats,
        closed: Cell::new(false),
        relay_queues: RefCell::new(Vec::new()),
    }))
}

/// `IORING_REGISTER_RING_FDS`: later enters pass the index, saving the kernel an fd lookup.
fn register_ring_fd(ring: &IoUring) -> io::Result<i32> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct RsrcUpdate {
        offset: u32,
        resv: u32,
        data: u64,
    }
    const IORING_REGISTER_RING_FDS: u32 = 20;
    let mut up = RsrcUpdate {
        offset: u32::MAX,
        resv: 0,
        data: ring.as_raw_fd() as u64,
    };
    // SAFETY: register call with one valid rsrc_update.
    let r = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring.as_raw_fd(),
            IORING_REGISTER_RING_FDS,
            &mut up as *mut RsrcUpdate,
            1u32,
        )
    };
    if r < 0 {
        return Err(missing("IORING_REGISTER_RING_FDS", "5.18"));
    }
    Ok(up.offset as i32)
}

/// Creates a direct socket and sets TCP_NODELAY on it through the ring, as every connection
/// will: this is the newest feature the engine needs.
fn check_setsockopt(ring: &mut IoUring) -> io::Result<()> {
    let sqe = opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
        .file_index(Some(types::DestinationSlot::auto_target()))
        .build()
        .user_data(1);
    let res = submit_one(ring, sqe)?;
    if res < 0 {
        return Err(missing("SOCKET into a direct descriptor", "5.19"));
    }
    let fd = res as u32;
    let res = submit_one(ring, nodelay_sqe(fd).user_data(2))?;
    let _ = submit_one(
        ring,
        opcode::Close::new(types::Fixed(fd)).build().user_data(3),
    );
    if res < 0 {
        return Err(missing(
            "setsockopt on a direct descriptor (SOCKET_URING_OP_SETSOCKOPT)",
            KernelFloor::VERSION,
        ));
    }
    Ok(())
}

fn submit_one(ring: &mut IoUring, sqe: io_uring::squeue::Entry) -> io::Result<i32> {
    // SAFETY: the SQE points at nothing, or at statics.
    unsafe { ring.submission().push(&sqe) }
        .map_err(|_| io::Error::other("submission queue full"))?;
    ring.submit_and_wait(1)?;
    let cqe = ring
        .completion()
        .next()
        .ok_or_else(|| io::Error::other("io_uring: no completion"))?;
    Ok(cqe.result())
}
