#!/usr/bin/env bash
# corelay's bench suite: every scenario against corelay, the hyper baseline, nginx, HAProxy
# and the origin reached directly, side by side. See docs/benchmarks.md.
#
#   scripts/bench.sh                  full suite (3 runs per cell; ~10 min on 2 cores)
#   scripts/bench.sh --quick          one short pass of every scenario (~1 min; no assertions)
#   scripts/bench.sh [driver flags] [-- extra corelay flags]
#
# Driver flags (<target dir>/release/driver --help): --runs N, --duration S,
# --scenarios small64,small1000,big100k,big1m,slow,upload,transfer,sweep,cores,
# --proxies corelay,hyper,nginx,haproxy,direct, --proxy-cpus LIST, --load-cpus LIST,
# --out DIR (default target/bench), --corelay-bin PATH, --slow-conns N.
# Everything after `--` is passed to every corelay process (e.g. `-- --relay ring`).
#
# Installs wrk, nginx-light, haproxy and linux-perf with apt-get when they are missing,
# mounts tracefs for perf's syscall counts, builds the release binaries, raises the fd and
# memlock limits as far as allowed, and runs the driver.
# Results: target/bench/{results.md,summary.csv,runs.csv,plot.svg,driver.log}.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

case "${1:-}" in
    -h | --help)
        sed -n '2,19s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
esac

say() { printf 'bench: %s\n' "$*"; }

# --- tools ------------------------------------------------------------------
sudo=""
[[ $(id -u) == 0 ]] || sudo="sudo"
# A perf that runs: Debian's /usr/bin/perf may be a wrapper that only finds the
# perf_X.Y matching the running kernel; the driver also tries /usr/bin/perf_* itself.
have_perf() {
    local p
    for p in $(command -v perf) /usr/bin/perf_*; do
        [[ -x $p ]] && "$p" --version >/dev/null 2>&1 && return 0
    done
    return 1
}
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || missing+=(haproxy)
command -v taskset >/dev/null || missing+=(util-linux)
updated=""
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    $sudo apt-get update -qq
    updated=1
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    # Debian starts the services it installs; the bench starts its own instances.
    $sudo systemctl stop nginx haproxy >/dev/null 2>&1 || true
fi
# perf only feeds the syscalls/req column (– without it), so failing to get it is no error.
if ! have_perf; then
    say "installing linux-perf (syscalls/req)"
    [[ -n $updated ]] || $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq linux-perf >/dev/null ||
        say "could not install linux-perf; syscalls/req will show –"
fi
# perf's syscall tracepoints live in tracefs (the driver tries this too).
if [[ ! -d /sys/kernel/tracing/events/syscalls && ! -d /sys/kernel/debug/tracing/events/syscalls ]]; then
    $sudo mount -t tracefs nodev /sys/kernel/tracing >/dev/null 2>&1 ||
        $sudo mount -t debugfs nodev /sys/kernel/debug >/dev/null 2>&1 || true
fi
export PATH="$PATH:/usr/sbin:/sbin"

# --- limits -----------------------------------------------------------------
# 10,000 slow connections need ~20,000 fds in a proxy (client + backend socket each).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# glommio registers its I/O memory with io_uring, which counts against RLIMIT_MEMLOCK.
ulimit -l unlimited 2>/dev/null || ulimit -l "$(ulimit -Hl)" 2>/dev/null || true
say "fd limit $(ulimit -n), memlock limit $(ulimit -l) KiB, $(nproc) CPUs"

# --- build and run ----------------------------------------------------------
say "building release binaries"
cargo build --release --workspace
source scripts/target-dir.sh
exec "$target_dir/release/driver" "$@"
