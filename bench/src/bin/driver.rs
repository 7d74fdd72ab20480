//! `driver`: runs every bench scenario against every proxy, side by side, and writes the
//! results (Markdown table, CSV, SVG plot). `scripts/bench.sh` builds and runs it.
//!
//! Proxies: corelay, the hyper baseline (`hyper_proxy`), nginx, HAProxy, and the origin
//! reached directly (the ceiling). Every proxy is pinned with `taskset` to the same proxy
//! CPUs (default: cpu 0) with one core / worker / thread per CPU; the origin and the load
//! generator (wrk or `loadgen`) share the load CPUs (default: the others).
//!
//! Each scenario runs `--runs` times; a run starts a fresh proxy process (so peak RSS is the
//! run's own), warms it up, measures, and stops it. Runs are interleaved across proxies
//! (run 1 of every proxy, then run 2, ...) so slow drifts of a shared machine hit all alike.
//! Figures are medians over runs; the spread is (max - min) / median of requests/s.
//!
//! Per run: requests/s, p50/p99/p99.9 latency, proxy CPU µs per request (utime+stime of the
//! proxy's whole process tree from /proc/<pid>/stat, before and after the measured window),
//! syscalls per request (`perf stat` over the syscall tracepoints, the proxy's process tree,
//! the measured window; see [`Perf`]), rescheduling IPIs per request on the proxy CPUs (the
//! `RES:` row of /proc/interrupts), peak RSS (VmHWM summed over the process tree), idle RSS
//! (VmRSS after start), errors, non-2xx, and how busy the proxy and load CPUs were
//! (/proc/stat). The slow scenario also reports a steady-state rate (see `steady_window`).
//!
//! Arguments after `--` are passed to every corelay process (e.g. `-- --relay ring`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "driver",
    about = "Runs corelay's bench suite against every proxy"
)]
struct Args {
    /// One short pass of every scenario (1 run, 1 s windows, fewer slow connections).
    #[arg(long)]
    quick: bool,
    /// Runs per scenario and proxy (figures are medians) [default: 3, quick: 1].
    #[arg(long)]
    runs: Option<usize>,
    /// Measured seconds per wrk/loadgen window [default: 3, quick: 1].
    #[arg(long)]
    duration: Option<u64>,
    /// Scenarios to run (comma-separated): small64,small1000,big100k,big1m,slow,upload,
    /// transfer,sweep,cores [default: all].
    #[arg(long)]
    scenarios: Option<String>,
    /// Proxies to run (comma-separated): corelay,hyper,nginx,haproxy,direct [default: all].
    #[arg(long)]
    proxies: Option<String>,
    /// CPUs the proxies run on (one core/worker/thread each).
    #[arg(long, default_value = "0")]
    proxy_cpus: String,
    /// CPUs for the origin and the load generator [default: the other online CPUs].
    #[arg(long)]
    load_cpus: Option<String>,
    /// Output directory for results.md, summary.csv, runs.csv, plot.svg and logs.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// First TCP port used (origin; the proxies take the next ones).
    #[arg(long, default_value_t = 19100)]
    base_port: u16,
    /// Directory with the release binaries [default: this binary's directory].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The corelay binary [default: corelay in --bin-dir].
    #[arg(long)]
    corelay_bin: Option<PathBuf>,
    /// Connections of the slow scenario, for every proxy [default: corelay and direct
    /// 10,000; hyper, nginx and HAProxy min(10,000, (fd limit - 200) / 2), as they hold two
    /// sockets per request; quick: 2,000].
    #[arg(long)]
    slow_conns: Option<usize>,
    /// Extra flags for every corelay process.
    #[arg(last = true)]
    corelay_args: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Proxy {
    Corelay,
    Hyper,
    Nginx,
    Haproxy,
    Direct,
}

impl Proxy {
    const ALL: [Proxy; 5] = [
        Proxy::Corelay,
        Proxy::Hyper,
        Proxy::Nginx,
        Proxy::Haproxy,
        Proxy::Direct,
    ];
    fn name(self) -> &'static str {
        match self {
            Proxy::Corelay => "corelay",
            Proxy::Hyper => "hyper",
            Proxy::Nginx => "nginx",
            Proxy::Haproxy => "haproxy",
            Proxy::Direct => "direct",
        }
    }
    fn color(self) -> &'static str {
        match self {
            Proxy::Corelay => "#d6604d",
            Proxy::Hyper => "#4393c3",
            Proxy::Nginx => "#5aae61",
            Proxy::Haproxy => "#9970ab",
            Proxy::Direct => "#999999",
        }
    }
}

#[derive(Clone, Debug)]
enum Tool {
    Wrk,
    Loadgen {
        method: &'static str,
        body: usize,
        requests: Option<u64>,
    },
}

#[derive(Clone, Debug)]
struct Scenario {
    /// Scenario group: small, big, slow, upload, transfer, sweep, cores.
    name: String,
    /// Variant within the group (e.g. `64c`, `bs=16KiB ring=256`, `cores=2`).
    variant: String,
    path: String,
    conns: usize,
    /// Per-proxy connection counts that differ from `conns` (slow scenario).
    proxy_conns: Vec<(Proxy, usize)>,
    /// loadgen's `--steady-from/--steady-to` window in seconds (slow scenario).
    steady: Option<(f64, f64)>,
    tool: Tool,
    /// Measured window (loadgen: stop starting requests after this).
    secs: f64,
    proxies: Vec<Proxy>,
    /// Cores (workers/threads) each proxy gets, and the CPU list.
    cores: usize,
    proxy_cpus: String,
    load_cpus: String,
    /// Extra corelay flags for this scenario.
    corelay_extra: Vec<String>,
    warmup: bool,
}

impl Scenario {
    /// Connections for proxy `p`.
    fn conns_for(&self, p: Proxy) -> usize {
        self.proxy_conns
            .iter()
            .find(|(q, _)| *q == p)
            .map_or(self.conns, |(_, n)| *n)
    }
    fn key(&self) -> String {
        if self.variant.is_empty() {
            self.name.clone()
        } else {
            format!("{} {}", self.name, self.variant)
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Sample {
    requests: f64,
    rps: f64,
    elapsed_s: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    errors: f64,
    non2xx: f64,
    cpu_us_per_req: f64,
    /// Syscalls of the proxy's process tree per request (None: not measured).
    syscalls_per_req: Option<f64>,
    /// Rescheduling IPIs on the proxy CPUs per request (None: not measured).
    ipis_per_req: Option<f64>,
    /// loadgen's steady-state rate (slow scenario).
    steady_rps: Option<f64>,
    rss_idle_mib: f64,
    rss_peak_mib: f64,
    proxy_busy_pct: f64,
    load_busy_pct: f64,
    ok: bool,
}

struct Ctx {
    args: Args,
    bin: PathBuf,
    out: PathBuf,
    origin: SocketAddr,
    nofile: u64,
    wrk_script: PathBuf,
    log: std::fs::File,
    /// Syscall counting; None when perf is unavailable (`perf_off` says why).
    perf: Option<Perf>,
    perf_off: Option<String>,
    /// Runs whose syscall count failed (the first reason is logged).
    perf_failures: usize,
}

fn main() {
    let args = Args::parse();
    let bin = args.bin_dir.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .expect("current exe")
            .parent()
            .expect("exe dir")
            .to_path_buf()
    });
    std::fs::create_dir_all(&args.out).expect("create --out");
    let out = std::fs::canonicalize(&args.out).expect("--out path");
    let nofile = raise_nofile();
    let online = online_cpus();
    let proxy_cpus = parse_cpu_list(&args.proxy_cpus);
    let load_cpus = match &args.load_cpus {
        Some(l) => parse_cpu_list(l),
        None => {
            let rest: Vec<usize> = online
                .iter()
                .copied()
                .filter(|c| !proxy_cpus.contains(c))
                .collect();
            if rest.is_empty() {
                online.clone()
            } else {
                rest
            }
        }
    };
    let load_list = cpu_list_str(&load_cpus);
    let quick = args.quick;
    let runs = args.runs.unwrap_or(if quick { 1 } else { 3 });
    let secs = args.duration.unwrap_or(if quick { 1 } else { 3 }) as f64;

    let mut proxies: Vec<Proxy> = match &args.proxies {
        Some(p) => p
            .split(',')
            .filter_map(|n| Proxy::ALL.iter().copied().find(|x| x.name() == n.trim()))
            .collect(),
        None => Proxy::ALL.to_vec(),
    };
    for (p, tool) in [(Proxy::Nginx, "nginx"), (Proxy::Haproxy, "haproxy")] {
        if proxies.contains(&p) && which(tool).is_none() {
            eprintln!("driver: {tool} not found; skipping it (scripts/bench.sh installs it)");
            proxies.retain(|x| *x != p);
        }
    }
    if which("wrk").is_none() {
        eprintln!("driver: wrk not found (scripts/bench.sh installs it)");
        std::process::exit(1);
    }
    let wanted: Option<Vec<String>> = args
        .scenarios
        .as_ref()
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    let want = |n: &str| wanted.as_ref().is_none_or(|w| w.iter().any(|x| x == n));

    let wrk_script = out.join("stats.lua");
    std::fs::write(&wrk_script, WRK_LUA).expect("write wrk script");
    let log = std::fs::File::create(out.join("driver.log")).expect("driver.log");

    // The origin: one executor per load CPU, pinned there, for the whole suite.
    let origin_addr: SocketAddr = format!("127.0.0.1:{}", args.base_port).parse().unwrap();
    let mut origin = spawn_logged(
        &out.join("origin.log"),
        Command::new("taskset")
            .arg("-c")
            .arg(&load_list)
            .arg(bin.join("origin"))
            .args(["--listen", &origin_addr.to_string(), "--cores"])
            .arg(load_cpus.len().to_string())
            .args(["--small-size", "38"]),
    );
    if !wait_http(origin_addr, Duration::from_secs(10)) {
        eprintln!(
            "driver: origin did not start (see {}/origin.log)",
            out.display()
        );
        origin.kill().ok();
        std::process::exit(1);
    }
    let (perf, perf_off) = match Perf::setup(&out, &load_list) {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(e)),
    };
    let ctx_args = args.clone();
    let mut ctx = Ctx {
        args: ctx_args,
        bin,
        out: out.clone(),
        origin: origin_addr,
        nofile,
        wrk_script,
        log,
        perf,
        perf_off,
        perf_failures: 0,
    };
    match (&ctx.perf, ctx.perf_off.clone()) {
        (Some(p), _) => {
            let line = format!(
                "driver: counting syscalls with {} (syscalls:sys_enter_* tracepoints)",
                p.bin.display()
            );
            logln(&mut ctx, &line);
        }
        (None, Some(why)) => logln(
            &mut ctx,
            &format!("driver: syscalls/req not measured (shown as –): {why}"),
        ),
        _ => {}
    }

    // hyper, nginx and HAProxy hold a client and a backend socket per slow request, so the
    // fd limit caps them; corelay (io_uring direct descriptors, outside the fd table) and
    // the origin reached directly (one socket per connection in each process) run 10,000.
    let capped = 10_000.min(((nofile.saturating_sub(200)) / 2) as usize);
    let (slow_conns, slow_capped) = match args.slow_conns {
        Some(n) => (n, n),
        None if quick => (2000, 2000),
        None => (10_000, capped),
    };
    let pcpus = cpu_list_str(&proxy_cpus);
    let base = |name: &str, variant: &str, path: &str, conns: usize, tool: Tool| Scenario {
        name: name.into(),
        variant: variant.into(),
        path: path.into(),
        conns,
        proxy_conns: Vec::new(),
        steady: None,
        tool,
        secs,
        proxies: proxies.clone(),
        cores: proxy_cpus.len(),
        proxy_cpus: pcpus.clone(),
        load_cpus: load_list.clone(),
        corelay_extra: Vec::new(),
        warmup: true,
    };
    let mut scenarios = Vec::new();
    if want("small64") {
        scenarios.push(base("small", "64c", "/small", 64, Tool::Wrk));
    }
    if want("small1000") {
        scenarios.push(base("small", "1000c", "/small", 1000, Tool::Wrk));
    }
    if want("big100k") {
        scenarios.push(base("big", "100KiB", "/big/102400", 64, Tool::Wrk));
    }
    if want("big1m") {
        scenarios.push(base("big", "1MiB", "/big/1048576", 64, Tool::Wrk));
    }
    if want("upload") {
        scenarios.push(base(
            "upload",
            "1MiB",
            "/echo",
            16,
            Tool::Loadgen {
                method: "POST",
                body: 1 << 20,
                requests: None,
            },
        ));
    }
    if want("slow") {
        let (ms, window) = if quick { (1000, 0.5) } else { (3000, 4.0) };
        let capped_here: Vec<&str> = [Proxy::Hyper, Proxy::Nginx, Proxy::Haproxy]
            .into_iter()
            .filter(|p| proxies.contains(p))
            .map(Proxy::name)
            .collect();
        let variant = if slow_capped == slow_conns || capped_here.is_empty() {
            format!("{ms}ms {slow_conns}c")
        } else {
            format!(
                "{ms}ms {slow_conns}c ({} {slow_capped}c)",
                capped_here.join("/")
            )
        };
        let mut s = base(
            "slow",
            &variant,
            &format!("/slow/{ms}"),
            slow_conns,
            Tool::Loadgen {
                method: "GET",
                body: 0,
                requests: None,
            },
        );
        s.proxy_conns = [Proxy::Hyper, Proxy::Nginx, Proxy::Haproxy]
            .into_iter()
            .map(|p| (p, slow_capped))
            .collect();
        s.secs = window;
        s.warmup = false;
        s.steady = Some(steady_window(ms as f64 / 1000.0));
        scenarios.push(s);
    }
    if want("transfer") {
        let s = base(
            "transfer",
            "50MiB",
            "/big/52428800",
            1,
            Tool::Loadgen {
                method: "GET",
                body: 0,
                requests: Some(1),
            },
        );
        // The warm-up (0.5 s of back-to-back downloads) fills the pools and page cache.
        scenarios.push(s);
    }
    if want("sweep") && proxies.contains(&Proxy::Corelay) {
        let grid: &[(&str, &str)] = if quick {
            &[("16KiB", "256"), ("64KiB", "16")]
        } else {
            &[
                ("4KiB", "16"),
                ("4KiB", "256"),
                ("16KiB", "16"),
                ("16KiB", "256"),
                ("64KiB", "16"),
                ("64KiB", "256"),
            ]
        };
        for (bs, ring) in grid {
            let mut s = base(
                "sweep",
                &format!("big 1MiB bs={bs} ring={ring}"),
                "/big/1048576",
                64,
                Tool::Wrk,
            );
            s.proxies = vec![Proxy::Corelay];
            s.secs = secs.min(2.0);
            s.corelay_extra = vec![
                "--buffer-size".into(),
                bs.to_string(),
                "--buffer-ring-size".into(),
                ring.to_string(),
            ];
            scenarios.push(s);
        }
    }
    if want("cores") {
        // 1 core is the small 64c row; here 2..N. Where the proxy needs every CPU, the load
        // shares the last one with it (marked "shared" in the table).
        for n in 2..=online.len() {
            let pc: Vec<usize> = online[..n].to_vec();
            let rest: Vec<usize> = online[n..].to_vec();
            let (lc, variant) = if rest.is_empty() {
                (
                    vec![online[online.len() - 1]],
                    format!("small 64c cores={n} (load shares cpu)"),
                )
            } else {
                (rest, format!("small 64c cores={n}"))
            };
            let mut s = base("cores", &variant, "/small", 64, Tool::Wrk);
            s.proxies.retain(|p| *p != Proxy::Direct);
            s.cores = n;
            s.proxy_cpus = cpu_list_str(&pc);
            s.load_cpus = cpu_list_str(&lc);
            s.secs = secs.min(2.0);
            scenarios.push(s);
        }
    }

    let head = format!(
            "driver: {} scenario(s), {runs} run(s) each, proxies on cpu {pcpus}, load+origin on cpu {load_list}, RLIMIT_NOFILE {nofile}, extra corelay flags {:?}",
            scenarios.len(),
            ctx.args.corelay_args
        );
    logln(&mut ctx, &head);
    let t0 = Instant::now();
    let mut results: Vec<(Scenario, Proxy, usize, Sample)> = Vec::new();
    for sc in &scenarios {
        for run in 0..runs {
            for &p in &sc.proxies {
                let s = run_one(&mut ctx, sc, p, run);
                let opt = |v: Option<f64>, unit: &str| match v {
                    Some(v) => format!(" {v:.3} {unit}"),
                    None => String::new(),
                };
                logln(
                    &mut ctx,
                    &format!(
                        "  {:<34} {:<8} run {} {:>10.1} req/s p99 {:>8.2} ms cpu {:>7.1} µs/req{}{}{} rss {:>6.1} MiB err {} non2xx {}{}",
                        sc.key(), p.name(), run + 1, s.rps, s.p99_us / 1000.0,
                        s.cpu_us_per_req,
                        opt(s.syscalls_per_req, "sys/req"),
                        opt(s.ipis_per_req, "IPI/req"),
                        s.steady_rps.map(|v| format!(" steady {v:.1} req/s")).unwrap_or_default(),
                        s.rss_peak_mib, s.errors, s.non2xx,
                        if s.ok { "" } else { "  FAILED" }
                    ),
                );
                results.push((sc.clone(), p, run, s));
            }
        }
    }
    origin.kill().ok();
    origin.wait().ok();
    if let Some(p) = ctx.perf.take() {
        p.shutdown();
    }
    if ctx.perf_failures > 1 {
        let line = format!(
            "driver: syscall counting failed in {} run(s) (the first reason is logged above)",
            ctx.perf_failures
        );
        logln(&mut ctx, &line);
    }
    let total = t0.elapsed().as_secs_f64();
    logln(&mut ctx, &format!("driver: suite took {total:.0} s"));
    report(&ctx, &scenarios, &results, runs, total);
}

/// The slow scenario's steady-state window, for responses that take `l` seconds.
///
/// loadgen starts every connection's first request at t = 0, so no request can complete
/// before t = l; each completion immediately starts that connection's next request, which
/// can't complete before t = 2l. So [l, 2l) holds exactly the first round's completions
/// (and only those): every connection completes once in it if the proxy got all of them
/// through within l, and the rate over it, completions / l, is N / l at most (3,333 req/s
/// for 10,000 × 3 s), the closed loop's steady-state rate. It leaves out the empty first
/// period [0, l) that completed / time-to-last-completion counts (and the tail cut short
/// by the deadline); a window running to the last completion would instead count two
/// rounds over 1 to 1.5 periods and double the figure.
fn steady_window(l: f64) -> (f64, f64) {
    (l, 2.0 * l)
}

/// One run of one scenario against one proxy.
fn run_one(ctx: &mut Ctx, sc: &Scenario, p: Proxy, run: usize) -> Sample {
    let port = ctx.args.base_port + 1 + Proxy::ALL.iter().position(|x| *x == p).unwrap() as u16;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut proc = match p {
        Proxy::Direct => None,
        _ => match start_proxy(ctx, sc, p, addr, run) {
            Some(c) => Some(c),
            None => {
                return Sample::default();
            }
        },
    };
    let target = if p == Proxy::Direct { ctx.origin } else { addr };
    let pid = proc.as_ref().map(|c| c.id());
    let mut sample = Sample::default();
    if let Some(pid) = pid {
        sample.rss_idle_mib = tree_status_kib(pid, "VmRSS:") as f64 / 1024.0;
    }
    let conns = sc.conns_for(p);
    if sc.warmup {
        let wconns = conns.min(256).to_string();
        let mut cmd = Command::new("taskset");
        cmd.arg("-c")
            .arg(&sc.load_cpus)
            .arg(ctx.bin.join("loadgen"));
        cmd.args([
            "--addr",
            &target.to_string(),
            "--path",
            &sc.path,
            "-c",
            &wconns,
            "-d",
            "0.5",
        ]);
        if let Tool::Loadgen { method, body, .. } = &sc.tool {
            cmd.args(["--method", method, "--body-size", &body.to_string()]);
        }
        run_capture(cmd);
    }
    // Syscalls: a perf per run over the proxy's threads, started now (after the warm-up),
    // switched on right before the window and off right after it (see `Perf`).
    let tids_before = pid.map(tree_tids).unwrap_or_default();
    let started_perf = match (pid, &ctx.perf) {
        (Some(_), Some(perf)) => Some(
            perf.start(&tids_before, &sc.proxy_cpus, &sc.load_cpus)
                .and_then(|mut r| r.enable().map(|()| r)),
        ),
        _ => None,
    };
    let perf_run = match started_perf {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            perf_failed(ctx, sc, p, &e);
            None
        }
        None => None,
    };
    let proxy_cpus = parse_cpu_list(&sc.proxy_cpus);
    let ipis0 = res_ipis();
    let ticks0 = pid.map(tree_ticks).unwrap_or(0);
    let cpu0 = proc_stat();
    let started = Instant::now();
    let parsed = match &sc.tool {
        Tool::Wrk => {
            let mut cmd = Command::new("taskset");
            let threads = sc.load_cpus.split(',').count().max(1).min(conns);
            cmd.arg("-c")
                .arg(&sc.load_cpus)
                .arg("wrk")
                .arg(format!("-t{threads}"))
                .arg(format!("-c{conns}"))
                .arg(format!("-d{}s", sc.secs.max(1.0) as u64))
                .arg("--timeout")
                .arg("10s")
                .arg("-s")
                .arg(&ctx.wrk_script)
                .arg(format!("http://{target}{}", sc.path));
            let out = run_capture(cmd);
            parse_kv(&out, "WRKSTATS")
        }
        Tool::Loadgen {
            method,
            body,
            requests,
        } => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c")
                .arg(&sc.load_cpus)
                .arg(ctx.bin.join("loadgen"));
            cmd.args(["--addr", &target.to_string(), "--path", &sc.path]);
            cmd.args(["-c", &conns.to_string(), "-d", &sc.secs.to_string()]);
            cmd.args(["--method", method, "--body-size", &body.to_string()]);
            if let Some(n) = requests {
                cmd.args(["-n", &n.to_string()]);
            }
            if let Some((a, b)) = sc.steady {
                cmd.args([
                    "--steady-from",
                    &a.to_string(),
                    "--steady-to",
                    &b.to_string(),
                ]);
            }
            let out = run_capture(cmd);
            if sc.steady.is_some() {
                if let Some(per_s) = out
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix("done_per_s="))
                {
                    let line = format!(
                        "    {} {} run {}: completions per second {per_s}",
                        sc.key(),
                        p.name(),
                        run + 1
                    );
                    log_only(ctx, &line);
                }
            }
            parse_kv(&out, "loadgen:")
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let cpu1 = proc_stat();
    let ticks1 = pid.map(tree_ticks).unwrap_or(0);
    let ipis1 = res_ipis();
    let syscalls = perf_run.map(PerfRun::finish);
    let tids_after = match (pid, &syscalls) {
        (Some(pid), Some(Ok(_))) => tree_tids(pid),
        _ => Vec::new(),
    };
    if let Some(pid) = pid {
        sample.rss_peak_mib = tree_status_kib(pid, "VmHWM:") as f64 / 1024.0;
    }
    let get = |k: &str| parsed.get(k).copied().unwrap_or(0.0);
    sample.requests = get("requests");
    sample.rps = get("rps");
    sample.elapsed_s = get("elapsed_s");
    sample.p50_us = get("p50_us");
    sample.p99_us = get("p99_us");
    sample.p999_us = get("p999_us");
    sample.errors = get("errors") + get("connect_errors");
    sample.non2xx = get("non2xx");
    sample.steady_rps = parsed.get("steady_rps").copied();
    sample.ok = !parsed.is_empty() && sample.requests > 0.0;
    let tck = clk_tck();
    if pid.is_some() && sample.requests > 0.0 {
        let cpu_s = (ticks1 - ticks0) as f64 / tck;
        sample.cpu_us_per_req = cpu_s * 1e6 / sample.requests;
        sample.proxy_busy_pct = 100.0 * cpu_s / wall;
        if let (Some(a), Some(b)) = (&ipis0, &ipis1) {
            let n: u64 = proxy_cpus
                .iter()
                .filter_map(|c| Some(b.get(c)?.saturating_sub(*a.get(c)?)))
                .sum();
            sample.ipis_per_req = Some(n as f64 / sample.requests);
        }
    }
    match syscalls {
        Some(Ok(counts)) if sample.requests > 0.0 => {
            let total: u64 = counts.iter().map(|(_, n)| n).sum();
            sample.syscalls_per_req = Some(total as f64 / sample.requests);
            let mut top = counts.clone();
            top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let list: Vec<String> = top
                .iter()
                .take(5)
                .filter(|(_, n)| *n > 0)
                .map(|(name, n)| {
                    format!(
                        "{name} {:.2}/req ({:.0}%)",
                        *n as f64 / sample.requests,
                        100.0 * *n as f64 / total.max(1) as f64
                    )
                })
                .collect();
            let new_threads = tids_after
                .iter()
                .filter(|t| !tids_before.contains(t))
                .count();
            let line = format!(
                "    {} {} run {}: {total} syscalls, {:.2}/req; top: {}{}",
                sc.key(),
                p.name(),
                run + 1,
                total as f64 / sample.requests,
                list.join(", "),
                if new_threads > 0 {
                    format!(" ({new_threads} thread(s) started during the window: not counted)")
                } else {
                    String::new()
                }
            );
            log_only(ctx, &line);
        }
        Some(Ok(_)) | None => {}
        Some(Err(e)) => perf_failed(ctx, sc, p, &e),
    }
    sample.load_busy_pct = busy_pct(&cpu0, &cpu1, &parse_cpu_list(&sc.load_cpus));
    if let Some(c) = proc.take() {
        stop(c);
    }
    sample
}

/// Starts a proxy pinned to the scenario's proxy CPUs and waits until it answers.
fn start_proxy(
    ctx: &mut Ctx,
    sc: &Scenario,
    p: Proxy,
    addr: SocketAddr,
    run: usize,
) -> Option<Child> {
    let dir = ctx.out.join("proxies").join(p.name());
    std::fs::create_dir_all(&dir).ok();
    let backend = ctx.origin.to_string();
    let n = sc.cores.to_string();
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg(&sc.proxy_cpus);
    match p {
        Proxy::Corelay => {
            cmd.arg(
                ctx.args
                    .corelay_bin
                    .clone()
                    .unwrap_or_else(|| ctx.bin.join("corelay")),
            );
            cmd.args(["--listen", &addr.to_string(), "--backend", &backend]);
            cmd.args(["--cpus", &sc.proxy_cpus]);
            cmd.args(&sc.corelay_extra);
            cmd.args(&ctx.args.corelay_args);
        }
        Proxy::Hyper => {
            cmd.arg(ctx.bin.join("hyper_proxy"));
            cmd.args([
                "--listen",
                &addr.to_string(),
                "--backend",
                &backend,
                "--threads",
                &n,
            ]);
        }
        Proxy::Nginx => {
            let conf = dir.join("nginx.conf");
            std::fs::write(
                &conf,
                nginx_conf(&dir, sc.cores, addr, ctx.origin, ctx.nofile),
            )
            .ok()?;
            cmd.arg("nginx").arg("-p").arg(&dir).arg("-c").arg(&conf);
        }
        Proxy::Haproxy => {
            let conf = dir.join("haproxy.cfg");
            std::fs::write(&conf, haproxy_conf(sc.cores, addr, ctx.origin, ctx.nofile)).ok()?;
            cmd.arg("haproxy").arg("-db").arg("-f").arg(&conf);
        }
        Proxy::Direct => return None,
    }
    if !port_free(addr) {
        logln(
            ctx,
            &format!("driver: {addr} is taken; cannot start {}", p.name()),
        );
        return None;
    }
    let logf = dir.join(format!(
        "{}-{}.log",
        sc.key().replace([' ', '/', '='], "_"),
        run + 1
    ));
    let mut child = spawn_logged(&logf, &mut cmd);
    if !wait_http(addr, Duration::from_secs(15)) {
        logln(
            ctx,
            &format!(
                "driver: {} did not come up (see {})",
                p.name(),
                logf.display()
            ),
        );
        child.kill().ok();
        child.wait().ok();
        return None;
    }
    Some(child)
}

fn stop(mut c: Child) {
    let pid = c.id();
    let tree = tree_pids(pid);
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        if let Ok(Some(_)) = c.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in tree {
        unsafe { libc::kill(p as i32, libc::SIGKILL) };
    }
    c.wait().ok();
}

fn nginx_conf(
    dir: &Path,
    workers: usize,
    listen: SocketAddr,
    origin: SocketAddr,
    nofile: u64,
) -> String {
    let d = dir.display();
    let wc = nofile.saturating_sub(100).max(1024);
    format!(
        r#"# Generated by corelay's bench driver. Upstream keep-alive, default buffering.
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections {wc};
}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    # Keep client connections open for the whole run (wrk reconnects are not the point).
    keepalive_requests 1000000;
    client_max_body_size 0;
    upstream origin {{
        server {origin};
        keepalive 1024;
        keepalive_requests 1000000;
    }}
    server {{
        listen {listen} backlog=4096{reuseport};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"#,
        reuseport = if workers > 1 { " reuseport" } else { "" },
    )
}

fn haproxy_conf(threads: usize, listen: SocketAddr, origin: SocketAddr, nofile: u64) -> String {
    // Each proxied connection holds two sockets.
    let maxconn = nofile.saturating_sub(200) / 2;
    format!(
        r#"# Generated by corelay's bench driver. http mode, keep-alive to the server.
global
    nbthread {threads}
    maxconn {maxconn}
defaults
    mode http
    maxconn {maxconn}
    option http-keep-alive
    option forwardfor
    http-reuse safe
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend fe
    bind {listen}
    default_backend be
backend be
    server origin {origin}
"#
    )
}

const WRK_LUA: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "WRKSTATS requests=%d elapsed_s=%.4f rps=%.1f p50_us=%d p99_us=%d p999_us=%d errors=%d non2xx=%d bytes=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect + e.read + e.write + e.timeout, e.status, summary.bytes))
end
"#;

// ---------------------------------------------------------------------------------------
// Reporting

struct Agg {
    med: Sample,
    spread_pct: f64,
    n: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn aggregate(samples: &[&Sample]) -> Agg {
    let ok: Vec<&Sample> = samples.iter().copied().filter(|s| s.ok).collect();
    let m = |f: fn(&Sample) -> f64| median(ok.iter().map(|s| f(s)).collect());
    // Median over the runs that have the figure; None when none has it.
    let mo = |f: fn(&Sample) -> Option<f64>| {
        let v: Vec<f64> = ok.iter().filter_map(|s| f(s)).collect();
        (!v.is_empty()).then(|| median(v))
    };
    let med = Sample {
        requests: m(|s| s.requests),
        rps: m(|s| s.rps),
        elapsed_s: m(|s| s.elapsed_s),
        p50_us: m(|s| s.p50_us),
        p99_us: m(|s| s.p99_us),
        p999_us: m(|s| s.p999_us),
        // Errors are summed over runs: one failing run must show.
        errors: samples.iter().map(|s| s.errors).sum(),
        non2xx: samples.iter().map(|s| s.non2xx).sum(),
        cpu_us_per_req: m(|s| s.cpu_us_per_req),
        syscalls_per_req: mo(|s| s.syscalls_per_req),
        ipis_per_req: mo(|s| s.ipis_per_req),
        steady_rps: mo(|s| s.steady_rps),
        rss_idle_mib: m(|s| s.rss_idle_mib),
        rss_peak_mib: m(|s| s.rss_peak_mib),
        proxy_busy_pct: m(|s| s.proxy_busy_pct),
        load_busy_pct: m(|s| s.load_busy_pct),
        ok: !ok.is_empty(),
    };
    let rps: Vec<f64> = ok.iter().map(|s| s.rps).collect();
    let spread_pct = if rps.len() > 1 && med.rps > 0.0 {
        let max = rps.iter().cloned().fold(f64::MIN, f64::max);
        let min = rps.iter().cloned().fold(f64::MAX, f64::min);
        100.0 * (max - min) / med.rps
    } else {
        0.0
    };
    Agg {
        med,
        spread_pct,
        n: ok.len(),
    }
}

fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 && a > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

fn fmt_ms(us: f64) -> String {
    let ms = us / 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

/// A per-request count: 3 significant digits or so; `–` when not measured.
fn fmt_per_req(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) if x >= 10.0 => format!("{x:.1}"),
        Some(x) if x >= 1.0 => format!("{x:.2}"),
        Some(x) => format!("{x:.3}"),
    }
}

/// A CSV cell for an optional figure (empty when not measured).
fn csv_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.4}")).unwrap_or_default()
}

fn fmt_num(x: f64) -> String {
    if x >= 1000.0 {
        let s = format!("{:.0}", x);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if x >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn report(
    ctx: &Ctx,
    scenarios: &[Scenario],
    results: &[(Scenario, Proxy, usize, Sample)],
    runs: usize,
    total_s: f64,
) {
    // Raw runs.
    let mut csv = String::from(
        "scenario,proxy,run,ok,conns,requests,rps,steady_rps,elapsed_s,p50_us,p99_us,p999_us,errors,non2xx,cpu_us_per_req,syscalls_per_req,ipis_per_req,rss_idle_mib,rss_peak_mib,proxy_busy_pct,load_busy_pct\n",
    );
    for (sc, p, run, s) in results {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{:.1},{},{:.4},{},{},{},{},{},{:.2},{},{},{:.1},{:.1},{:.1},{:.1}",
            sc.key(),
            p.name(),
            run + 1,
            s.ok,
            sc.conns_for(*p),
            s.requests,
            s.rps,
            csv_opt(s.steady_rps),
            s.elapsed_s,
            s.p50_us,
            s.p99_us,
            s.p999_us,
            s.errors,
            s.non2xx,
            s.cpu_us_per_req,
            csv_opt(s.syscalls_per_req),
            csv_opt(s.ipis_per_req),
            s.rss_idle_mib,
            s.rss_peak_mib,
            s.proxy_busy_pct,
            s.load_busy_pct
        );
    }
    std::fs::write(ctx.out.join("runs.csv"), csv).ok();

    // Medians per (scenario, proxy).
    let mut aggs: BTreeMap<(String, Proxy), Agg> = BTreeMap::new();
    for sc in scenarios {
        for &p in &sc.proxies {
            let ss: Vec<&Sample> = results
                .iter()
                .filter(|(s, q, _, _)| s.key() == sc.key() && *q == p)
                .map(|(_, _, _, s)| s)
                .collect();
            aggs.insert((sc.key(), p), aggregate(&ss));
        }
    }
    let get = |k: &str, p: Proxy| aggs.get(&(k.to_string(), p)).filter(|a| a.med.ok);

    let mut sum = String::from(
        "scenario,proxy,runs_ok,conns,rps,steady_rps,rps_spread_pct,p50_us,p99_us,p999_us,cpu_us_per_req,syscalls_per_req,ipis_per_req,rss_idle_mib,rss_peak_mib,errors,non2xx,proxy_busy_pct,load_busy_pct,rps_x_hyper,rps_x_nginx,p99_x_hyper,p99_x_nginx,cpu_x_hyper,cpu_x_nginx,rss_x_hyper,rss_x_nginx,elapsed_s\n",
    );
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Medians of {runs} run(s) per cell; spread = (max − min) / median of req/s. Proxies on cpu {}, \
         origin + load generator on cpu {}. Suite time {total_s:.0} s.\n",
        ctx.args.proxy_cpus,
        scenarios.first().map(|s| s.load_cpus.clone()).unwrap_or_default()
    );
    let _ = writeln!(
        md,
        "syscalls/req: `perf stat -e 'syscalls:sys_enter_*'` over the proxy's process tree during the \
         measured window only, in the same runs as CPU µs/req (counting adds a little kernel time to \
         each of the proxy's syscalls, which CPU µs/req includes){}. IPIs/req: rescheduling \
         interrupts (`RES:` in /proc/interrupts) on cpu {} during the window, of every task on that \
         CPU, not only the proxy's. – = not measured.\n",
        match &ctx.perf_off {
            Some(why) => format!("; **not measured in this run**: {why}"),
            None => String::new(),
        },
        ctx.args.proxy_cpus,
    );
    let _ = writeln!(
        md,
        "| scenario | proxy | req/s | spread | p50 ms | p99 ms | p99.9 ms | CPU µs/req | syscalls/req | IPIs/req | peak RSS MiB | errors | non-2xx | load CPU % | req/s ×hyper | req/s ×nginx | CPU ×hyper | CPU ×nginx | p99 ×hyper | p99 ×nginx | RSS ×hyper | RSS ×nginx |"
    );
    let _ = writeln!(
        md,
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for sc in scenarios {
        let k = sc.key();
        let h = get(&k, Proxy::Hyper).map(|a| &a.med);
        let n = get(&k, Proxy::Nginx).map(|a| &a.med);
        for &p in &sc.proxies {
            let Some(a) = aggs.get(&(k.clone(), p)) else {
                continue;
            };
            let s = &a.med;
            let proxied = p != Proxy::Direct;
            let opt = |v: f64| if proxied { v } else { 0.0 };
            let r = |f: fn(&Sample) -> f64, other: Option<&Sample>| {
                if proxied || f(s) != s.cpu_us_per_req {
                    ratio(f(s), other.map(f))
                } else {
                    "–".into()
                }
            };
            let _ = writeln!(
                sum,
                "{},{},{},{},{:.1},{},{:.1},{},{},{},{:.2},{},{},{:.1},{:.1},{},{},{:.1},{:.1},{},{},{},{},{},{},{},{},{:.4}",
                k, p.name(), a.n, sc.conns_for(p), s.rps, csv_opt(s.steady_rps), a.spread_pct,
                s.p50_us, s.p99_us, s.p999_us,
                opt(s.cpu_us_per_req),
                csv_opt(s.syscalls_per_req.filter(|_| proxied)),
                csv_opt(s.ipis_per_req.filter(|_| proxied)),
                opt(s.rss_idle_mib), opt(s.rss_peak_mib), s.errors, s.non2xx,
                opt(s.proxy_busy_pct), s.load_busy_pct,
                ratio(s.rps, h.map(|x| x.rps)), ratio(s.rps, n.map(|x| x.rps)),
                ratio(s.p99_us, h.map(|x| x.p99_us)), ratio(s.p99_us, n.map(|x| x.p99_us)),
                ratio(opt(s.cpu_us_per_req), h.map(|x| x.cpu_us_per_req)),
                ratio(opt(s.cpu_us_per_req), n.map(|x| x.cpu_us_per_req)),
                ratio(opt(s.rss_peak_mib), h.map(|x| x.rss_peak_mib)),
                ratio(opt(s.rss_peak_mib), n.map(|x| x.rss_peak_mib)),
                s.elapsed_s,
            );
            let _ = r;
            if !s.ok {
                let _ = writeln!(
                    md,
                    "| {k} | {} | FAILED | | | | | | | | | {} | {} | | | | | | | | | |",
                    p.name(),
                    s.errors,
                    s.non2xx
                );
                continue;
            }
            let dash = |v: String| if proxied { v } else { "–".into() };
            let _ = writeln!(
                md,
                "| {k} | {} | {} | {:.0}% | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
                if p == Proxy::Corelay { "**corelay**" } else { p.name() },
                fmt_num(s.rps),
                a.spread_pct,
                fmt_ms(s.p50_us),
                fmt_ms(s.p99_us),
                fmt_ms(s.p999_us),
                dash(format!("{:.1}", s.cpu_us_per_req)),
                dash(fmt_per_req(s.syscalls_per_req)),
                dash(fmt_per_req(s.ipis_per_req)),
                dash(format!("{:.1}", s.rss_peak_mib)),
                s.errors,
                s.non2xx,
                s.load_busy_pct,
                ratio(s.rps, h.map(|x| x.rps)),
                ratio(s.rps, n.map(|x| x.rps)),
                dash(ratio(s.cpu_us_per_req, h.map(|x| x.cpu_us_per_req))),
                dash(ratio(s.cpu_us_per_req, n.map(|x| x.cpu_us_per_req))),
                ratio(s.p99_us, h.map(|x| x.p99_us)),
                ratio(s.p99_us, n.map(|x| x.p99_us)),
                dash(ratio(s.rss_peak_mib, h.map(|x| x.rss_peak_mib))),
                dash(ratio(s.rss_peak_mib, n.map(|x| x.rss_peak_mib))),
            );
        }
    }
    std::fs::write(ctx.out.join("summary.csv"), sum).ok();

    // Slow: RSS above idle; transfer: time vs direct.
    let mut extra = String::new();
    for sc in scenarios.iter().filter(|s| s.name == "slow") {
        let (a, b) = sc.steady.unwrap_or((0.0, 0.0));
        let _ = writeln!(
            extra,
            "\n**{}**: peak RSS above idle (VmHWM − VmRSS right after start); req/s = completed / \
             time to the last completion, steady req/s = completions {a:.0}–{b:.0} s after the start \
             / {:.0} s (the first round's completions; N / {a:.0} s at most)\n",
            sc.key(),
            b - a
        );
        let _ = writeln!(
            extra,
            "| proxy | conns | req/s | steady req/s | idle RSS MiB | peak RSS MiB | above idle MiB | errors |"
        );
        let _ = writeln!(extra, "|---|--:|--:|--:|--:|--:|--:|--:|");
        for &p in &sc.proxies {
            if let Some(a) = get(&sc.key(), p) {
                let s = &a.med;
                let mib = |v: f64| {
                    if p == Proxy::Direct {
                        "–".to_string()
                    } else {
                        format!("{v:.1}")
                    }
                };
                let _ = writeln!(
                    extra,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    p.name(),
                    sc.conns_for(p),
                    fmt_num(s.rps),
                    s.steady_rps.map_or("–".into(), fmt_num),
                    mib(s.rss_idle_mib),
                    mib(s.rss_peak_mib),
                    mib(s.rss_peak_mib - s.rss_idle_mib),
                    s.errors
                );
            }
        }
    }
    for sc in scenarios.iter().filter(|s| s.name == "transfer") {
        let d = get(&sc.key(), Proxy::Direct).map(|a| a.med.elapsed_s);
        let _ = writeln!(extra, "\n**{}**: time for one download\n", sc.key());
        let _ = writeln!(
            extra,
            "| proxy | time ms | MiB/s | × direct | proxy CPU ms |"
        );
        let _ = writeln!(extra, "|---|--:|--:|--:|--:|");
        for &p in &sc.proxies {
            if let Some(a) = get(&sc.key(), p) {
                let s = &a.med;
                let _ = writeln!(
                    extra,
                    "| {} | {:.1} | {:.0} | {} | {} |",
                    p.name(),
                    s.elapsed_s * 1000.0,
                    50.0 / s.elapsed_s,
                    ratio(s.elapsed_s, d),
                    if p == Proxy::Direct {
                        "–".into()
                    } else {
                        format!("{:.1}", s.cpu_us_per_req / 1000.0)
                    }
                );
            }
        }
    }

    // Targets (issue 4), evaluated on corelay's medians.
    let mut t = String::from(
        "\n### Targets (recorded, not asserted)\n\n| target | value | verdict |\n|---|---|---|\n",
    );
    let verdict = |ok: bool| if ok { "met" } else { "**MISSED**" };
    for k in ["small 64c", "small 1000c"] {
        if let (Some(c), Some(h), Some(n)) = (
            get(k, Proxy::Corelay),
            get(k, Proxy::Hyper),
            get(k, Proxy::Nginx),
        ) {
            let (c, h, n) = (&c.med, &h.med, &n.med);
            let rows = [
                (
                    format!("{k}: CPU/req ≤ 0.5× hyper"),
                    c.cpu_us_per_req / h.cpu_us_per_req,
                    0.5,
                    true,
                ),
                (
                    format!("{k}: CPU/req ≤ 0.8× nginx"),
                    c.cpu_us_per_req / n.cpu_us_per_req,
                    0.8,
                    true,
                ),
                (
                    format!("{k}: req/s ≥ 1.5× hyper"),
                    c.rps / h.rps,
                    1.5,
                    false,
                ),
                (
                    format!("{k}: req/s ≥ 1.0× nginx"),
                    c.rps / n.rps,
                    1.0,
                    false,
                ),
                (
                    format!("{k}: p99 ≤ 1.0× nginx"),
                    c.p99_us / n.p99_us,
                    1.0,
                    true,
                ),
            ];
            for (name, v, lim, le) in rows {
                let _ = writeln!(
                    t,
                    "| {name} | {v:.2}× | {} |",
                    verdict(if le { v <= lim } else { v >= lim })
                );
            }
        }
    }
    for sc in scenarios.iter().filter(|s| s.name == "slow") {
        if let Some(c) = get(&sc.key(), Proxy::Corelay) {
            let s = &c.med;
            let above = s.rss_peak_mib - s.rss_idle_mib;
            let conns = sc.conns_for(Proxy::Corelay);
            let full = conns >= 10_000 && sc.path == "/slow/3000";
            let na = "n/a (not the full 10,000 × 3 s setup; see note)";
            let _ = writeln!(
                t,
                "| slow: ≥ 3,200 req/s with 10,000 × 3 s ({} × {}) | {:.0} req/s | {} |",
                conns,
                sc.path,
                s.rps,
                if full { verdict(s.rps >= 3200.0) } else { na }
            );
            if let Some(steady) = s.steady_rps {
                let _ = writeln!(
                    t,
                    "| slow: steady ≥ 3,200 req/s with 10,000 × 3 s ({} × {}) | {:.0} req/s | {} |",
                    conns,
                    sc.path,
                    steady,
                    if full { verdict(steady >= 3200.0) } else { na }
                );
            }
            let _ = writeln!(
                t,
                "| slow: no errors | {} errors, {} non-2xx | {} |",
                s.errors,
                s.non2xx,
                verdict(s.errors == 0.0 && s.non2xx == 0.0)
            );
            let _ = writeln!(
                t,
                "| slow: RSS ≤ idle + 32 MiB | +{above:.1} MiB | {} |",
                verdict(above <= 32.0)
            );
        }
    }
    for k in ["big 100KiB", "big 1MiB"] {
        if let (Some(c), Some(n)) = (get(k, Proxy::Corelay), get(k, Proxy::Nginx)) {
            let v = c.med.rps / n.med.rps;
            let _ = writeln!(
                t,
                "| {k}: req/s ≥ nginx | {v:.2}× | {} |",
                verdict(v >= 1.0)
            );
        }
    }
    // big 100KiB: CPU per request against the best of the other proxies.
    if let Some(c) = get("big 100KiB", Proxy::Corelay) {
        let best = [Proxy::Nginx, Proxy::Haproxy, Proxy::Hyper]
            .into_iter()
            .filter_map(|p| get("big 100KiB", p).map(|a| (p, a.med.cpu_us_per_req)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((p, cpu)) = best {
            let v = c.med.cpu_us_per_req / cpu;
            let _ = writeln!(
                t,
                "| big 100KiB: CPU/req ≤ 0.8× the best other ({p:?} {cpu:.1} µs) | {v:.2}× | {} |",
                verdict(v <= 0.8)
            );
        }
    }
    // Rescheduling IPIs on the proxy CPU, the engine's other target.
    let ipis: Vec<f64> = aggs
        .iter()
        .filter(|((k, p), _)| {
            *p == Proxy::Corelay && !k.starts_with("cores") && !k.starts_with("transfer")
        })
        .filter_map(|(_, a)| a.med.ipis_per_req)
        .collect();
    if let Some(worst) = ipis.iter().cloned().reduce(f64::max) {
        let _ = writeln!(
            t,
            "| IPIs/req ≤ 0.05 (worst one-shard scenario but transfer) | {worst:.3} | {} |",
            verdict(worst <= 0.05)
        );
    }
    for sc in scenarios.iter().filter(|s| s.name == "transfer") {
        let k = sc.key();
        if let (Some(c), Some(d)) = (get(&k, Proxy::Corelay), get(&k, Proxy::Direct)) {
            let v = c.med.elapsed_s / d.med.elapsed_s;
            let _ = writeln!(
                t,
                "| transfer 50 MiB: ≤ 1.2× direct time | {v:.2}× ({:.0} ms vs {:.0} ms) | {} |",
                c.med.elapsed_s * 1e3,
                d.med.elapsed_s * 1e3,
                verdict(v <= 1.2)
            );
        }
        if let (Some(c), Some(n)) = (get(&k, Proxy::Corelay), get(&k, Proxy::Nginx)) {
            let v = n.med.elapsed_s / c.med.elapsed_s;
            let _ = writeln!(
                t,
                "| transfer 50 MiB: throughput ≥ nginx | {v:.2}× | {} |",
                verdict(v >= 1.0)
            );
        }
    }

    let all = format!("{md}{extra}{t}");
    std::fs::write(ctx.out.join("results.md"), &all).ok();
    println!("\n{all}");
    let svg = plot(scenarios, &aggs);
    std::fs::write(ctx.out.join("plot.svg"), svg).ok();
    println!(
        "driver: wrote {0}/results.md, {0}/summary.csv, {0}/runs.csv, {0}/plot.svg",
        ctx.out.display()
    );
}

/// Three panels of grouped bars (req/s, CPU µs/req, p99), each scenario normalised to hyper = 1,
/// with the absolute value printed on each bar.
fn plot(scenarios: &[Scenario], aggs: &BTreeMap<(String, Proxy), Agg>) -> String {
    let keys: Vec<String> = scenarios
        .iter()
        .filter(|s| {
            matches!(
                s.name.as_str(),
                "small" | "big" | "upload" | "slow" | "transfer"
            )
        })
        .map(|s| s.key())
        .collect();
    let proxies = Proxy::ALL;
    type Metric = (&'static str, fn(&Sample) -> f64, bool, fn(f64) -> String);
    let metrics: [Metric; 3] = [
        (
            "requests/s (transfer: 1/time) — higher is better",
            |s| if s.rps > 0.0 { s.rps } else { 0.0 },
            true,
            fmt_num,
        ),
        (
            "proxy CPU µs per request — lower is better",
            |s| s.cpu_us_per_req,
            false,
            |v| format!("{v:.1}"),
        ),
        (
            "p99 latency ms — lower is better",
            |s| s.p99_us / 1000.0,
            true,
            |v| {
                if v >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                }
            },
        ),
    ];
    let (w, ph, top, left) = (1100.0, 230.0, 40.0, 60.0);
    let group_w = (w - left - 20.0) / keys.len().max(1) as f64;
    let bar_w = (group_w - 16.0) / proxies.len() as f64;
    let h = top + metrics.len() as f64 * (ph + 70.0) + 30.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="{left}" y="20" font-size="15" font-weight="bold">corelay bench: each scenario normalised to hyper = 1 (absolute values on the bars; medians)</text>
"#
    );
    let mut lx = left;
    for p in proxies {
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="28" width="10" height="10" fill="{}"/><text x="{}" y="37">{}</text>"#,
            p.color(),
            lx + 14.0,
            p.name()
        );
        lx += 90.0;
    }
    for (mi, (title, f, include_direct, fmt)) in metrics.iter().enumerate() {
        let y0 = top + 30.0 + mi as f64 * (ph + 70.0);
        let norm: Vec<Vec<Option<(f64, f64)>>> = keys
            .iter()
            .map(|k| {
                let base = aggs
                    .get(&(k.clone(), Proxy::Hyper))
                    .map(|a| f(&a.med))
                    .filter(|v| *v > 0.0);
                proxies
                    .iter()
                    .map(|&p| {
                        if p == Proxy::Direct && !include_direct {
                            return None;
                        }
                        let a = aggs.get(&(k.clone(), p)).filter(|a| a.med.ok)?;
                        let mut v = f(&a.med);
                        if k.starts_with("transfer") && mi == 0 {
                            v = 1.0 / a.med.elapsed_s.max(1e-9);
                        }
                        let b = if k.starts_with("transfer") && mi == 0 {
                            aggs.get(&(k.clone(), Proxy::Hyper))
                                .map(|a| 1.0 / a.med.elapsed_s.max(1e-9))
                        } else {
                            base
                        };
                        if v <= 0.0 {
                            return None;
                        }
                        Some((v / b.unwrap_or(v), v))
                    })
                    .collect()
            })
            .collect();
        let maxn = norm
            .iter()
            .flatten()
            .flatten()
            .map(|x| x.0)
            .fold(1.0, f64::max)
            .min(6.0)
            * 1.1;
        let _ = write!(
            s,
            r#"<text x="{left}" y="{}" font-size="13" font-weight="bold">{title}</text>"#,
            y0 - 8.0
        );
        let base_y = y0 + ph;
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{base_y}" x2="{}" y2="{base_y}" stroke="#333"/>"##,
            w - 20.0
        );
        let one = base_y - ph / maxn;
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{one}" x2="{}" y2="{one}" stroke="#888" stroke-dasharray="4 3"/><text x="{}" y="{}" text-anchor="end">1× hyper</text>"##,
            w - 20.0,
            left - 4.0,
            one + 4.0
        );
        for (gi, k) in keys.iter().enumerate() {
            let gx = left + gi as f64 * group_w + 8.0;
            for (pi, p) in proxies.iter().enumerate() {
                let Some((n, v)) = norm[gi][pi] else { continue };
                let bh = (n.min(maxn) / maxn) * ph;
                let x = gx + pi as f64 * bar_w;
                let _ = write!(
                    s,
                    r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{}"/>"#,
                    base_y - bh,
                    bar_w - 2.0,
                    p.color()
                );
                let tx = x + bar_w / 2.0;
                let ty = base_y - bh - 3.0;
                let _ = write!(
                    s,
                    r#"<text x="{tx:.1}" y="{ty:.1}" font-size="8" text-anchor="start" transform="rotate(-60 {tx:.1} {ty:.1})">{}</text>"#,
                    fmt(v)
                );
            }
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                gx + group_w / 2.0 - 8.0,
                base_y + 14.0,
                k
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

// ---------------------------------------------------------------------------------------
// Syscalls (perf) and rescheduling IPIs

/// Counts the proxy's syscalls with `perf stat` over the `syscalls:sys_enter_*` tracepoints.
///
/// Every proxy run gets its own `perf stat -e 'syscalls:sys_enter_*' -x,`, pinned to the
/// load CPUs, started after the warm-up with its counters off (`-D -1`) and switched on and
/// off through a control fifo right around the measured window (the CPU ticks' window), so
/// only the window is counted. The sum of all counters / requests is syscalls/req; the top
/// five go to driver.log.
///
/// The counters are per CPU, on the proxy CPUs (`-C`), with a tracepoint filter on the
/// proxy's thread ids (`--filter 'common_pid == T || ...'`), not per task (`-p`): a per-task
/// counter is switched out and in with its task on every context switch, and with ~360 of
/// them that cost nginx small 64c ~+60 % CPU µs/req here (~17 -> ~29 µs, interleaved runs),
/// where the per-CPU filtered counters measured within the noise (13.5/17.8/13.0 µs vs
/// 17.8/13.3/13.9 µs off; same syscall count, 5.07/req). So counting happens in the same
/// runs as the CPU figure, not in extra runs: what remains is the tracepoint's cost on each
/// syscall (build the record, test the filter, bump a counter), which the CPU µs/req column
/// includes. The proxy's threads are listed when its perf starts; threads it starts later
/// are not counted (the run's log line says so if that happened). Every proxy is pinned to
/// the proxy CPUs, so its syscalls happen there.
///
/// Closing the last perf event of a tracepoint waits for an RCU grace period
/// (`tracepoint_synchronize_unregister`), ~40 ms on this VM, so a lone perf over the ~360
/// sys_enter tracepoints takes ~14 s to exit. A holder perf attached to an idle `sleep`
/// (`--no-inherit`) keeps them all registered for the whole suite, so a run's perf exits in
/// milliseconds. The price: while a syscall tracepoint is registered every task on the
/// machine enters syscalls through the tracing slow path, for the whole suite, so every row
/// (direct included) pays it alike.
struct Perf {
    bin: PathBuf,
    dir: PathBuf,
    holder: PerfRun,
    sleeper: Child,
}

/// One `perf stat` with a control fifo (`--control fifo:ctl,ack`).
struct PerfRun {
    child: Option<Child>,
    ctl: std::fs::File,
    ack: std::fs::File,
    out: PathBuf,
    log: PathBuf,
}

const PERF_EVENTS: &str = "syscalls:sys_enter_*";

/// What a `perf stat` counts.
enum PerfTarget {
    /// The holder: one idle process, per-task counters, no inheritance.
    Holder(u32),
    /// A run: per-CPU counters on the proxy CPUs, filtered to the proxy's threads.
    Threads { tids: Vec<u32>, cpus: String },
}

impl Perf {
    /// Finds perf, makes sure tracefs is mounted, and starts the holder.
    fn setup(out: &Path, load_cpus: &str) -> Result<Perf, String> {
        let bin = find_perf()?;
        ensure_tracefs()?;
        let dir = out.join("perf");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut cmd = Command::new("taskset");
        cmd.arg("-c")
            .arg(load_cpus)
            .args(["sleep", "infinity"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let mut sleeper = cmd
            .spawn()
            .map_err(|e| format!("cannot start sleep: {e}"))?;
        let mut perf = Perf {
            bin,
            dir,
            holder: PerfRun::dummy(),
            sleeper,
        };
        let holder = perf
            .spawn("holder", PerfTarget::Holder(perf.sleeper.id()), load_cpus)
            .and_then(|mut h| {
                h.ack_wait("enable", Duration::from_secs(60))?;
                Ok(h)
            });
        match holder {
            Ok(h) => {
                perf.holder = h;
                Ok(perf)
            }
            Err(e) => {
                sleeper = perf.sleeper;
                sleeper.kill().ok();
                sleeper.wait().ok();
                Err(e)
            }
        }
    }

    /// Starts a run's perf: the threads `tids` on `cpus` (counters off until `enable`).
    fn start(&self, tids: &[u32], cpus: &str, load_cpus: &str) -> Result<PerfRun, String> {
        let target = PerfTarget::Threads {
            tids: tids.to_vec(),
            cpus: cpus.to_string(),
        };
        self.spawn("run", target, load_cpus)
    }

    /// Spawns `perf stat` (counters off) on `target`, pinned to `load_cpus`.
    fn spawn(&self, name: &str, target: PerfTarget, load_cpus: &str) -> Result<PerfRun, String> {
        let holder = matches!(target, PerfTarget::Holder(_));
        let ctl_path = self.dir.join(format!("{name}.ctl"));
        let ack_path = self.dir.join(format!("{name}.ack"));
        let ctl = fifo(&ctl_path)?;
        let ack = fifo(&ack_path)?;
        let out = if holder {
            PathBuf::from("/dev/null")
        } else {
            self.dir.join(format!("{name}.csv"))
        };
        let log = self.dir.join(format!("{name}.log"));
        if !holder {
            std::fs::remove_file(&out).ok();
        }
        let mut cmd = Command::new("taskset");
        cmd.arg("-c").arg(load_cpus).arg(&self.bin).args([
            "stat",
            "-e",
            PERF_EVENTS,
            "-x,",
            "-D",
            "-1",
        ]);
        match target {
            PerfTarget::Holder(pid) => {
                cmd.args(["--no-inherit", "-p", &pid.to_string()]);
            }
            PerfTarget::Threads { tids, cpus } => {
                // The filter applies to every event of the glob before it.
                let filter = tids
                    .iter()
                    .map(|t| format!("common_pid == {t}"))
                    .collect::<Vec<_>>()
                    .join(" || ");
                cmd.arg("--filter").arg(filter).arg("-C").arg(cpus);
            }
        }
        cmd.arg("-o").arg(&out);
        cmd.arg("--control").arg(format!(
            "fifo:{},{}",
            ctl_path.display(),
            ack_path.display()
        ));
        let logf = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(logf);
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        Ok(PerfRun {
            child: Some(child),
            ctl,
            ack,
            out,
            log,
        })
    }

    /// Stops the holder without waiting for its ~14 s teardown (it exits on its own once
    /// its `sleep` is gone; the kernel finishes the teardown after the driver exits).
    fn shutdown(mut self) {
        self.sleeper.kill().ok();
        self.sleeper.wait().ok();
        if let Some(c) = self.holder.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
        }
    }
}

impl PerfRun {
    fn dummy() -> PerfRun {
        let null = || std::fs::File::open("/dev/null").expect("/dev/null");
        PerfRun {
            child: None,
            ctl: null(),
            ack: null(),
            out: PathBuf::new(),
            log: PathBuf::new(),
        }
    }

    /// Switches the counters on; returns once perf acknowledged (it is attached by then).
    fn enable(&mut self) -> Result<(), String> {
        self.ack_wait("enable", Duration::from_secs(30))
    }

    /// Sends a control command and waits for perf's `ack`.
    fn ack_wait(&mut self, cmd: &str, limit: Duration) -> Result<(), String> {
        self.ctl
            .write_all(format!("{cmd}\n").as_bytes())
            .map_err(|e| format!("perf control fifo: {e}"))?;
        let t = Instant::now();
        let mut got = Vec::new();
        loop {
            let mut pfd = libc::pollfd {
                fd: self.ack.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            if unsafe { libc::poll(&mut pfd, 1, 100) } > 0 {
                let mut buf = [0u8; 64];
                if let Ok(n) = self.ack.read(&mut buf) {
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(3).any(|w| w == b"ack") {
                        return Ok(());
                    }
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    return Err(format!("perf exited ({st}): {}", self.log_head()));
                }
            }
            if t.elapsed() > limit {
                return Err(format!(
                    "perf did not acknowledge `{cmd}` within {} s: {}",
                    limit.as_secs(),
                    self.log_head()
                ));
            }
        }
    }

    /// Switches the counters off, stops perf and returns (syscall, count) per tracepoint.
    fn finish(mut self) -> Result<Vec<(String, u64)>, String> {
        let disabled = self.ack_wait("disable", Duration::from_secs(10));
        let Some(mut c) = self.child.take() else {
            return Err("perf is not running".into());
        };
        unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
        if !wait_timeout(&mut c, Duration::from_secs(20)) {
            c.kill().ok();
            wait_timeout(&mut c, Duration::from_secs(20));
            return Err(format!(
                "perf did not exit within 20 s of SIGINT: {}",
                self.log_head()
            ));
        }
        disabled?;
        let text = std::fs::read_to_string(&self.out)
            .map_err(|e| format!("{}: {e}", self.out.display()))?;
        let counts = parse_perf_csv(&text);
        if counts.is_empty() {
            return Err(format!(
                "no counts in {}: {}",
                self.out.display(),
                self.log_head()
            ));
        }
        Ok(counts)
    }

    /// The first lines of perf's stderr, for error messages.
    fn log_head(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let head: Vec<&str> = s
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Events "))
            .take(3)
            .collect();
        if head.is_empty() {
            "(no output)".into()
        } else {
            head.join(" / ")
        }
    }
}

impl Drop for PerfRun {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            wait_timeout(&mut c, Duration::from_secs(20));
        }
    }
}

/// `perf stat -x,` lines: `count,unit,event,...`; uncounted events (`<not counted>`) are 0.
fn parse_perf_csv(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let event = f.get(2)?.trim();
            let name = event.strip_prefix("syscalls:sys_enter_")?;
            let n = f[0].trim().parse::<u64>().unwrap_or(0);
            Some((name.to_string(), n))
        })
        .collect()
}

/// A fresh fifo at `path`, opened read-write and non-blocking (never blocks on open).
fn fifo(path: &Path) -> Result<std::fs::File, String> {
    std::fs::remove_file(path).ok();
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("bad path {}", path.display()))?;
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(format!(
            "mkfifo {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A perf binary that runs: `perf` on PATH, else Debian's versioned `/usr/bin/perf_X.Y`
/// (its `/usr/bin/perf` may be a wrapper that only runs the one matching the kernel).
fn find_perf() -> Result<PathBuf, String> {
    let mut cands: Vec<PathBuf> = which("perf").into_iter().collect();
    let mut versioned: Vec<PathBuf> = std::fs::read_dir("/usr/bin")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("perf_"))
                })
                .collect()
        })
        .unwrap_or_default();
    versioned.sort();
    cands.extend(versioned.into_iter().rev());
    if cands.is_empty() {
        return Err("perf not found (scripts/bench.sh installs linux-perf)".into());
    }
    let mut why = Vec::new();
    for c in cands {
        match Command::new(&c)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
        {
            Ok(o) if o.status.success() => return Ok(c),
            Ok(o) => why.push(format!(
                "{}: {}",
                c.display(),
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .next()
                    .unwrap_or("failed")
            )),
            Err(e) => why.push(format!("{}: {e}", c.display())),
        }
    }
    Err(format!("no working perf ({})", why.join("; ")))
}

/// Makes sure a tracefs with the syscall events is mounted, mounting one if needed.
fn ensure_tracefs() -> Result<(), String> {
    let have = || {
        [
            "/sys/kernel/tracing/events/syscalls",
            "/sys/kernel/debug/tracing/events/syscalls",
        ]
        .iter()
        .any(|p| Path::new(p).is_dir())
    };
    if have() {
        return Ok(());
    }
    let mut why = Vec::new();
    for (fs, at) in [
        ("tracefs", "/sys/kernel/tracing"),
        ("debugfs", "/sys/kernel/debug"),
    ] {
        let o = Command::new("mount")
            .args(["-t", fs, "nodev", at])
            .stdin(Stdio::null())
            .output();
        if have() {
            return Ok(());
        }
        why.push(match o {
            Ok(o) => format!(
                "mount -t {fs} nodev {at}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => format!("mount: {e}"),
        });
    }
    Err(format!(
        "no tracefs with events/syscalls ({})",
        why.join("; ")
    ))
}

/// Logs why a run's syscall count failed: the first time in full, later ones only counted.
fn perf_failed(ctx: &mut Ctx, sc: &Scenario, p: Proxy, why: &str) {
    ctx.perf_failures += 1;
    if ctx.perf_failures == 1 {
        let line = format!(
            "driver: syscall count failed for {} {} (shown as –): {why}",
            sc.key(),
            p.name()
        );
        logln(ctx, &line);
    }
}

/// Rescheduling interrupts per CPU: /proc/interrupts' `RES:` row (x86), or the row
/// described as "Rescheduling interrupts" (arm64's `IPI0:`). None if there is none.
fn res_ipis() -> Option<BTreeMap<usize, u64>> {
    let s = std::fs::read_to_string("/proc/interrupts").ok()?;
    let mut lines = s.lines();
    let cpus: Vec<usize> = lines
        .next()?
        .split_whitespace()
        .filter_map(|c| c.strip_prefix("CPU")?.parse().ok())
        .collect();
    let row = lines.find(|l| {
        let l = l.trim_start();
        l.starts_with("RES:") || l.contains("Rescheduling interrupts")
    })?;
    let counts = row.split_whitespace().skip(1);
    Some(
        cpus.iter()
            .zip(counts)
            .filter_map(|(c, n)| Some((*c, n.parse().ok()?)))
            .collect(),
    )
}

/// Kills the child when the driver dies, so no perf or holder outlives an interrupted suite.
fn die_with_parent(cmd: &mut Command) {
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Waits up to `limit` for `c` to exit; whether it did.
fn wait_timeout(c: &mut Child, limit: Duration) -> bool {
    let t = Instant::now();
    loop {
        if let Ok(Some(_)) = c.try_wait() {
            return true;
        }
        if t.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------
// Processes and /proc

fn logln(ctx: &mut Ctx, line: &str) {
    println!("{line}");
    let _ = writeln!(ctx.log, "{line}");
}

/// driver.log only (details that would clutter the console).
fn log_only(ctx: &mut Ctx, line: &str) {
    let _ = writeln!(ctx.log, "{line}");
}

fn spawn_logged(path: &Path, cmd: &mut Command) -> Child {
    let f = std::fs::File::create(path).expect("log file");
    let f2 = f.try_clone().expect("log file");
    cmd.stdin(Stdio::null())
        .stdout(f)
        .stderr(f2)
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("driver: cannot start {cmd:?}: {e}");
            std::process::exit(1);
        })
}

fn run_capture(mut cmd: Command) -> String {
    match cmd.stdin(Stdio::null()).output() {
        Ok(o) => {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s
        }
        Err(e) => format!("spawn failed: {e}"),
    }
}

/// Parses the last line starting with `tag` as `key=value` pairs.
fn parse_kv(out: &str, tag: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    if let Some(line) = out.lines().rev().find(|l| l.starts_with(tag)) {
        for kv in line[tag.len()..].split_whitespace() {
            if let Some((k, v)) = kv.split_once('=') {
                if let Ok(x) = v.parse() {
                    m.insert(k.to_string(), x);
                }
            }
        }
    } else {
        eprintln!("driver: no {tag} line in load output:\n{}", out.trim_end());
    }
    m
}

/// Whether nothing listens on `addr`. (A bind test would also trip over TIME_WAIT
/// leftovers of an earlier run, which the proxies' own SO_REUSEADDR binds don't mind.)
fn port_free(addr: SocketAddr) -> bool {
    TcpListener::bind(addr).is_ok()
        || TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err()
}

/// Waits until `GET /small` through `addr` answers 200.
fn wait_http(addr: SocketAddr, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).ok();
            if s.write_all(b"GET /small HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                .is_ok()
            {
                let mut buf = [0u8; 64];
                let mut n = 0;
                while n < 12 {
                    match s.read(&mut buf[n..]) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                }
                if n >= 12 && &buf[9..12] == b"200" {
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// `pid` and all its descendants.
fn tree_pids(pid: u32) -> Vec<u32> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
                if let Some(f) = stat_fields(&stat) {
                    if let Some(pp) = f.get(1).and_then(|x| x.parse().ok()) {
                        parent.push((p, pp));
                    }
                }
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i];
        for &(c, pp) in &parent {
            if pp == cur && !out.contains(&c) {
                out.push(c);
            }
        }
        i += 1;
    }
    out
}

/// Thread ids of `pid` and all its descendants.
fn tree_tids(pid: u32) -> Vec<u32> {
    let mut v: Vec<u32> = tree_pids(pid)
        .iter()
        .flat_map(|p| {
            std::fs::read_dir(format!("/proc/{p}/task"))
                .map(|rd| {
                    rd.flatten()
                        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
                        .collect::<Vec<u32>>()
                })
                .unwrap_or_default()
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Fields after the `(comm)` of /proc/<pid>/stat: [0] = state, [1] = ppid, ... [11] = utime.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let close = stat.rfind(')')?;
    Some(stat[close + 1..].split_whitespace().collect())
}

fn tree_ticks(pid: u32) -> u64 {
    tree_pids(pid)
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| {
            let f = stat_fields(&s)?;
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

fn tree_status_kib(pid: u32, key: &str) -> u64 {
    tree_pids(pid)
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines().find(|l| l.starts_with(key)).and_then(|l| {
                l[key.len()..]
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        })
        .sum()
}

fn clk_tck() -> f64 {
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// Per-CPU (busy, total) jiffies from /proc/stat.
fn proc_stat() -> BTreeMap<usize, (u64, u64)> {
    let mut m = BTreeMap::new();
    if let Ok(s) = std::fs::read_to_string("/proc/stat") {
        for l in s.lines() {
            let Some(rest) = l.strip_prefix("cpu") else {
                continue;
            };
            let mut it = rest.split_whitespace();
            let Some(Ok(cpu)) = it.next().map(|c| c.parse::<usize>()) else {
                continue;
            };
            let v: Vec<u64> = it.filter_map(|x| x.parse().ok()).collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            m.insert(cpu, (total - idle, total));
        }
    }
    m
}

fn busy_pct(
    a: &BTreeMap<usize, (u64, u64)>,
    b: &BTreeMap<usize, (u64, u64)>,
    cpus: &[usize],
) -> f64 {
    let (mut busy, mut total) = (0u64, 0u64);
    for c in cpus {
        if let (Some(x), Some(y)) = (a.get(c), b.get(c)) {
            busy += y.0.saturating_sub(x.0);
            total += y.1.saturating_sub(x.1);
        }
    }
    if total == 0 {
        0.0
    } else {
        100.0 * busy as f64 / total as f64
    }
}

fn online_cpus() -> Vec<usize> {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map(|s| parse_cpu_list(s.trim()))
        .unwrap_or_else(|_| vec![0])
}

fn parse_cpu_list(s: &str) -> Vec<usize> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    v.extend(a..=b);
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    v.push(a);
                }
            }
        }
    }
    v
}

fn cpu_list_str(v: &[usize]) -> String {
    v.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// Raises RLIMIT_NOFILE's soft limit to the hard limit (children inherit it); returns it.
fn raise_nofile() -> u64 {
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        // Try for 65536 (works as root with CAP_SYS_RESOURCE), else settle for the hard limit.
        let want = libc::rlimit {
            rlim_cur: 65536.max(lim.rlim_cur),
            rlim_max: 65536.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
            return want.rlim_cur;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}
