#!/usr/bin/env bash
# corelay's bench suite: every scenario against corelay, the hyper baseline, nginx, HAProxy
# and the origin reached directly, side by side. See docs/benchmarks.md.
#
#   scripts/bench.sh                  full suite (3 runs per cell; ~10 min on 2 cores)
#   scripts/bench.sh --quick          one short pass of every scenario (~1 min; no assertions)
#   scripts/bench.sh [driver flags] [-- extra corelay flags]
#
# Driver flags (target/release/driver --help): --runs N, --duration S,
# --scenarios small64,small1000,big100k,big1m,slow,upload,transfer,sweep,cores,
# --proxies corelay,hyper,nginx,haproxy,direct, --proxy-cpus LIST, --load-cpus LIST,
# --out DIR (default target/bench), --corelay-bin PATH.
# Everything after `--` is passed to every corelay process (e.g. `-- --relay ring`).
#
# Installs wrk, nginx-light and haproxy with apt-get when they are missing, builds the
# release binaries, raises the fd and memlock limits as far as allowed, and runs the driver.
# Results: target/bench/{results.md,summary.csv,runs.csv,plot.svg,driver.log}.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

case "${1:-}" in
    -h | --help)
        sed -n '2,18s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
esac

say() { printf 'bench: %s\n' "$*"; }

# --- tools ------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || missing+=(haproxy)
command -v taskset >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
    sudo=""
    [[ $(id -u) == 0 ]] || sudo="sudo"
    say "installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    # Debian starts the services it installs; the bench starts its own instances.
    $sudo systemctl stop nginx haproxy >/dev/null 2>&1 || true
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
exec target/release/driver "$@"
