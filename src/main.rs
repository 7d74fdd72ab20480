//! The `corelay` binary: parse flags, start the shards, print where they listen, drain on
//! SIGTERM or SIGINT, reload the configuration on SIGHUP, and reopen the access log file on
//! SIGUSR1 (after logrotate moved it).

use std::io::Write;
use std::process::ExitCode;

use corelay::config::Action;

fn main() -> ExitCode {
    // Kept for SIGHUP: a reload reads the file again under the same flags.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let config = match corelay::config::parse_args(argv.clone()) {
        Ok(Action::Run(c)) => *c,
        Ok(Action::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(Action::Check(Ok(()))) => {
            println!("config ok");
            return ExitCode::SUCCESS;
        }
        Ok(Action::Check(Err(errors))) => {
            for e in errors {
                eprintln!("{e}");
            }
            return ExitCode::FAILURE;
        }
        Ok(Action::HashPassword) => return hash_password(),
        Err(line) => {
            eprintln!("{line}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();

    // Signals are blocked before any thread starts so that every thread inherits the mask
    // and only the signal thread below receives them.
    let signals = block_signals();

    // glommio pins an I/O arena per executor; where the limit is too low it only skips
    // registering it, so for glommio alone a failure here is a warning. The shard engine's
    // registered relay buffers are pinned too: if the limit cannot be raised and registering
    // them then fails, that is an error naming the limit (with CAP_IPC_LOCK nothing is charged
    // to the limit and registration succeeds anyway).
    let shards_n = config.cpus.len() as u64;
    let relay_memory = shards_n * config.buffer_ring_size as u64 * config.buffer_size as u64;
    let wanted = GLOMMIO_IO_MEMORY * shards_n + relay_memory;
    let memlock = shards::raise_memlock_limit(wanted).err();
    // Each shard's descriptor table is sized from this limit.
    shards::raise_nofile_limit();
    // The kernel floor: one engine built here, before any shard, so that a missing io_uring
    // feature is one line naming it rather than a failed shard.
    if let Err(e) = shards::probe(&corelay::engine_config(&config)) {
        match memlock {
            Some(m) if e.contains("RLIMIT_MEMLOCK") || e.contains("memory") => {
                eprintln!("error: {e}; {m}")
            }
            _ => eprintln!("error: {e}"),
        }
        return ExitCode::FAILURE;
    }
    if let Some(e) = memlock {
        // Registration worked regardless (e.g. CAP_IPC_LOCK): nothing to fix.
        log::debug!("{e}");
    }
    if config.relay_copy_below != corelay::config::retired_copy_below() {
        log::warn!("--relay-copy-below has no effect since the copy engine was removed");
    }
    let relay_line = format!(
        "corelay: relay memory {} ({} shard{} x {} buffers x {}), engine ring",
        mib(relay_memory),
        shards_n,
        if shards_n == 1 { "" } else { "s" },
        config.buffer_ring_size,
        kib(config.buffer_size as u64),
    );

    let running = match corelay::run(config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{relay_line}");
    if let Some(addr) = running.metrics_addr {
        let _ = writeln!(out, "corelay: metrics on {addr}");
    }
    let addr = running.server.local_addr();
    for shard in running.server.shards() {
        let _ = writeln!(
            out,
            "corelay: shard {} on cpu {} listening on {addr}",
            shard.index, shard.cpu
        );
    }
    let _ = writeln!(out, "corelay: ready");
    let _ = out.flush();
    drop(out);

    let handle = running.server.shutdown_handle();
    let reloader = running.reloader.clone();
    let access_log = running.access_log();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut draining = false;
            loop {
                match wait_for_signal(&signals) {
                    libc::SIGUSR1 => access_log.reopen(),
                    libc::SIGHUP if !draining => reload(&argv, &reloader),
                    libc::SIGHUP => {}
                    _ if !draining => {
                        log::warn!("shutting down: draining in-flight requests");
                        handle.trigger();
                        draining = true;
                    }
                    // A second SIGTERM or SIGINT means: stop now.
                    _ => std::process::exit(1),
                }
            }
        })
        .expect("spawn signal thread");

    match running.join() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn mib(bytes: u64) -> String {
    if bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    }
}

fn kib(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// glommio's default I/O memory per executor.
const GLOMMIO_IO_MEMORY: u64 = 10 << 20;

/// SIGHUP: reads the command line and `--config` file again, validated as `corelay check`
/// does; applies the result, or logs why not and keeps the running configuration.
fn reload(argv: &[std::ffi::OsString], reloader: &corelay::reload::Reloader) {
    match corelay::config::parse_args(argv.to_vec()) {
        Ok(corelay::config::Action::Run(config)) => {
            let restart = reloader.install(*config);
            for key in &restart {
                log::warn!(
                    "reload: '{key}' changed but needs a restart; keeping the running value"
                );
            }
            log::warn!("reload: configuration applied");
        }
        Ok(_) => log::error!("reload: not a configuration to run; keeping the running one"),
        Err(e) => {
            reloader.refused();
            log::error!(
                "reload refused, keeping the running configuration: {}",
                e.trim_start_matches("error: ")
            );
        }
    }
}

/// SIGTERM and SIGINT (drain and exit), SIGHUP (reload) and SIGUSR1 (reopen the access
/// log), all taken by the signal thread.
fn block_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-mask calls on a zeroed sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// The next of the blocked signals.
fn wait_for_signal(set: &libc::sigset_t) -> libc::c_int {
    let mut sig: libc::c_int = 0;
    // SAFETY: sigwait on a valid set; the signals are blocked in every thread.
    unsafe {
        libc::sigwait(set, &mut sig);
    }
    sig
}

/// `corelay hash-password`: one password on stdin, its stored form on stdout.
fn hash_password() -> ExitCode {
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err()
        || line.trim_end_matches(['\r', '\n']).is_empty()
    {
        eprintln!(
            "error: give the password on stdin, e.g. `echo -n secret | corelay hash-password`"
        );
        return ExitCode::from(2);
    }
    println!(
        "{}",
        corelay::auth::hash_password(line.trim_end_matches(['\r', '\n']))
    );
    ExitCode::SUCCESS
}
