#!/usr/bin/env bash
# Soak and fault run: corelay on every online core, in front of the bundled origin, under a
# bounded mix of well-behaved and misbehaving clients and backends for N minutes; then checks
# that nothing leaked.
#
#   scripts/soak.sh --minutes N     (CI runs --minutes 1)
#
# Load (bench/src/bin/loadgen.rs, one process per kind, all at once, on 127.0.0.1 only):
#   small      keep-alive GET /big/512, every body checked byte for byte
#   big        keep-alive GET /big/1048576, checked
#   upload     POST /echo with a 256 KiB body, the echo checked
#   slow       GET /slow/200/16384: a backend that takes 200 ms, checked
#   slowread   GET /big/262144 read 4 KiB at a time with 5 ms pauses, checked
#   idle       GET /big/4096 through a second origin that closes keep-alive connections idle
#              for 50 ms, with 0-100 ms pauses between requests (the stale-pool race), checked
#   abort      GET /big/4194304, the client hangs up after 64 KiB
#   abortup    POST /echo announcing 1 MiB, the client hangs up after 100,000 bytes
#   reset      GET /reset/1048576: the backend resets the connection mid-body
# The first fifth of the time (at most 60 s) is a warm-up run of the same mix.
#
# Checks (one "soak: FAIL ..." line each, exit 1 if any failed):
#   - every well-behaved request got a 2xx, byte-exact answer (no error, timeout, mismatch);
#     the faulty kinds were exercised (aborted / cut counts > 0) and never got a complete
#     answer the backend did not send;
#   - after each phase, through /metrics: open client connections 0, every relay buffer
#     free, no head buffer held, pooled backend connections 0, open descriptors and
#     operations in the kernel back to their count before any load, no tunnel open, and
#     every corelay_admission_* gauge (in flight, queued) at 0;
#   - corelay's RSS after the run is within 5 MiB of its RSS after the warm-up;
#   - corelay is still running.
# The load has no WebSocket clients, so the tunnel gauge checks only that none is counted.
#
# Environment: SOAK_KEEP=1 keeps the work directory (logs, config) for inspection.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
    echo "usage: $0 --minutes N   (N: whole minutes, 1 to 120)" >&2
    exit 2
}
minutes=""
while (($#)); do
    case "$1" in
        --minutes) minutes=${2:-}; shift 2 || usage ;;
        --minutes=*) minutes=${1#--minutes=}; shift ;;
        -h | --help) sed -n '2,35s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) usage ;;
    esac
done
[[ $minutes =~ ^[0-9]+$ ]] && ((minutes >= 1 && minutes <= 120)) || usage

say() { printf 'soak: %s\n' "$*"; }

command -v cargo >/dev/null || { say "cargo not found (install Rust from https://rustup.rs)" >&2; exit 1; }
# Everything else is bash, coreutils (timeout) and awk, present on any CI image; install
# them if a minimal image lacks them.
if ! command -v timeout >/dev/null || ! command -v awk >/dev/null; then
    if command -v apt-get >/dev/null; then
        sudo=""; ((EUID == 0)) || sudo=sudo
        $sudo apt-get update -qq && $sudo apt-get install -y -qq coreutils gawk
    else
        say "needs coreutils (timeout) and awk" >&2
        exit 1
    fi
fi
# The relay buffers are registered with io_uring, which counts against RLIMIT_MEMLOCK.
ulimit -l unlimited 2>/dev/null || true
ulimit -n 65536 2>/dev/null || true

total=$((minutes * 60))
warmup=$((total / 5))
((warmup > 60)) && warmup=60
main=$((total - warmup))
# Slack for a loadgen process beyond its own duration: requests in flight finish (their
# timeout is 30 s) before it exits.
slack=60
# How long gauges may take to return to their idle values after the load stops: pooled
# backend connections close after backend_idle_timeout (2 s below).
settle_max=30
rss_slack_kib=$((5 * 1024))

say "building release binaries"
cargo build --release --locked -q --bin corelay
cargo build --release --locked -q -p bench --bin origin --bin loadgen

work=$(mktemp -d "${TMPDIR:-/tmp}/corelay-soak.XXXXXX")
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${SOAK_KEEP:-} == 1 ]]; then say "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME PATTERN CMD...: starts CMD with output to $work/NAME.log and waits for PATTERN.
start() {
    local name=$1 pattern=$2 i
    shift 2
    "$@" >"$work/$name.log" 2>&1 &
    pids+=("$!")
    for ((i = 0; i < 300; i++)); do
        grep -q -- "$pattern" "$work/$name.log" 2>/dev/null && return 0
        if ! kill -0 "$!" 2>/dev/null; then break; fi
        sleep 0.1
    done
    say "$name did not start:" >&2
    tail -n 20 "$work/$name.log" >&2
    exit 1
}
addr_in() { awk -v p="$2" 'index($0, p) == 1 { a = $NF } END { print a }' "$1"; }

start origin '^origin: listening on' target/release/origin --listen 127.0.0.1:0 --cores 1
origin=$(addr_in "$work/origin.log" "origin: listening on")
start origin_idle '^origin: listening on' \
    target/release/origin --listen 127.0.0.1:0 --cores 1 --idle-close-ms 50
origin_idle=$(addr_in "$work/origin_idle.log" "origin: listening on")

cat >"$work/corelay.toml" <<EOF
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
backends = ["$origin"]
backend_idle_timeout = "2s"
[groups.idle]
backends = ["$origin_idle"]
[[routes]]
path = "/idle/"
group = "idle"
strip_prefix = true
[[routes]]
path = "/"
group = "default"
EOF
start corelay '^corelay: ready' env RUST_LOG="${SOAK_RUST_LOG:-warn}" target/release/corelay --config "$work/corelay.toml"
corelay_pid=${pids[-1]}
proxy=$(addr_in "$work/corelay.log" "corelay: shard")
metrics=$(addr_in "$work/corelay.log" "corelay: metrics on")
shards=$(grep -c '^corelay: shard' "$work/corelay.log")
say "corelay $proxy ($shards shards, metrics $metrics) -> origin $origin, idle-closing origin $origin_idle"

scrape() {
    local host=${metrics%:*} port=${metrics##*:}
    exec 3<>"/dev/tcp/$host/$port"
    printf 'GET /metrics HTTP/1.1\r\nHost: soak\r\n\r\n' >&3
    cat <&3 | tr -d '\r'
    exec 3<&-
}
# metric TEXT NAME: the sum of NAME over shards.
metric() { awk -v n="$2" '$1 ~ "^" n "[{]" { s += $2 } END { print s + 0 }' <<<"$1"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$corelay_pid/status"; }

baseline=$(scrape)
fds_idle=$(metric "$baseline" corelay_engine_descriptors_open)
ops_idle=$(metric "$baseline" corelay_engine_ops_in_flight)
buffers_total=$(metric "$baseline" corelay_relay_buffers_total)

# kind ARGS...: the loadgen arguments of each kind of client.
declare -A kinds=(
    [small]="--path /big/512 -c 8 --verify --expect-len 512"
    [big]="--path /big/1048576 -c 4 --verify --expect-len 1048576"
    [upload]="--method POST --path /echo --body-size 262144 -c 4 --verify --expect-len 262144"
    [slow]="--path /slow/200/16384 -c 8 --verify --expect-len 16384"
    [slowread]="--path /big/262144 -c 4 --read-chunk 4096 --read-pause-ms 5 --verify --expect-len 262144"
    [idle]="--path /idle/big/4096 -c 4 --think-ms 50 --verify --expect-len 4096"
    [abort]="--path /big/4194304 -c 4 --abort-after 65536"
    [abortup]="--method POST --path /echo --body-size 1048576 -c 2 --abort-upload-after 100000"
    [reset]="--path /reset/1048576 -c 2 --expect-cut"
)
well_behaved="small big upload slow slowread idle"
order="small big upload slow slowread idle abort abortup reset"

failures=()
fail() {
    failures+=("$*")
    say "FAIL $*"
}

# run_phase NAME SECONDS: every kind at once for SECONDS; results in $work/NAME.KIND.out.
run_phase() {
    local phase=$1 secs=$2 kind m lpids=()
    for kind in $order; do
        # shellcheck disable=SC2086 # the kind's arguments are words
        timeout $((secs + slack)) target/release/loadgen --addr "$proxy" -d "$secs" \
            --timeout 30 ${kinds[$kind]} >"$work/$phase.$kind.out" 2>&1 &
        lpids+=("$!")
    done
    if [[ $phase == main ]]; then
        # The same gauges under load, so that their return to idle values means something.
        sleep $((secs / 2))
        m=$(scrape)
        say "gauges under load (t=$((secs / 2))s):" \
            "connections_open=$(metric "$m" corelay_connections_open)" \
            "relay_buffers_free=$(metric "$m" corelay_relay_buffers_free)/$buffers_total" \
            "head_buffers_held=$(metric "$m" corelay_engine_head_buffers_held)" \
            "backend_idle_connections=$(metric "$m" corelay_backend_idle_connections)" \
            "descriptors_open=$(metric "$m" corelay_engine_descriptors_open)" \
            "rss=$(rss_kib) KiB"
    fi
    for kind in "${lpids[@]}"; do
        wait "$kind" || true
    done
}

# value PHASE KIND KEY: a key of that loadgen's last line ("" when it printed none).
value() {
    awk -v k="$3" '/^loadgen:/ { line = $0 }
        END { n = split(line, f, " "); for (i = 2; i <= n; i++) { split(f[i], kv, "=");
              if (kv[1] == k) print kv[2] } }' "$work/$1.$2.out"
}

# details PHASE KIND: the first answers loadgen reported as unexpected.
details() {
    grep -E '^loadgen: (status|error)' "$work/$1.$2.out" | head -n 3 | sed 's/^/      /' || true
}

check_results() {
    local phase=$1 kind key v req nfail
    for kind in $order; do
        req=$(value "$phase" "$kind" requests)
        if [[ -z $req ]]; then
            fail "$phase $kind: loadgen printed no result ($(tail -n 1 "$work/$phase.$kind.out"))"
            continue
        fi
        for key in requests errors timeouts connect_errors non2xx mismatches aborted cut; do
            v=$(value "$phase" "$kind" $key)
            total_by["$kind.$key"]=$(( ${total_by["$kind.$key"]:-0} + ${v:-0} ))
        done
        nfail=${#failures[@]}
        for key in errors connect_errors mismatches; do
            v=$(value "$phase" "$kind" $key)
            ((v == 0)) || fail "$phase $kind: $key=$v ($(value "$phase" "$kind" timeouts) timeouts)"
        done
        case " $well_behaved " in
            *" $kind "*)
                v=$(value "$phase" "$kind" non2xx)
                ((v == 0)) || fail "$phase $kind: non2xx=$v"
                ((req > 0)) || fail "$phase $kind: no request completed"
                ;;
        esac
        ((${#failures[@]} == nfail)) || details "$phase" "$kind"
    done
    v=$(value "$phase" abort aborted)
    ((v > 0)) || fail "$phase abort: no download was aborted"
    v=$(value "$phase" abortup aborted)
    ((v > 0)) || fail "$phase abortup: no upload was aborted"
    v=$(value "$phase" reset cut)
    ((v > 0)) || fail "$phase reset: no response was cut by a backend reset"
}

# settle PHASE: waits for the idle gauges, then checks them.
settle() {
    local phase=$1 i m open free held idle fds ops tunnels adm v
    for ((i = 0; i < settle_max * 2; i++)); do
        m=$(scrape)
        open=$(metric "$m" corelay_connections_open)
        free=$(metric "$m" corelay_relay_buffers_free)
        held=$(metric "$m" corelay_engine_head_buffers_held)
        idle=$(metric "$m" corelay_backend_idle_connections)
        fds=$(metric "$m" corelay_engine_descriptors_open)
        ops=$(metric "$m" corelay_engine_ops_in_flight)
        tunnels=$(metric "$m" corelay_tunnels_open)
        if ((open == 0 && free == buffers_total && held == 0 && idle == 0 && fds == fds_idle &&
            ops == ops_idle && tunnels == 0)); then
            break
        fi
        sleep 0.5
    done
    say "$phase gauges: connections_open=$open relay_buffers_free=$free/$buffers_total" \
        "head_buffers_held=$held backend_idle_connections=$idle" \
        "descriptors_open=$fds (before load: $fds_idle)" \
        "ops_in_flight=$ops (before load: $ops_idle) tunnels_open=$tunnels" \
        "backend_retries_total=$(metric "$m" corelay_backend_retries_total)"
    ((open == 0)) || fail "$phase: corelay_connections_open=$open after ${settle_max}s idle"
    ((free == buffers_total)) || fail "$phase: relay buffers free $free of $buffers_total"
    ((held == 0)) || fail "$phase: corelay_engine_head_buffers_held=$held"
    ((idle == 0)) || fail "$phase: corelay_backend_idle_connections=$idle"
    ((fds == fds_idle)) || fail "$phase: corelay_engine_descriptors_open=$fds, $fds_idle before load"
    # What stays in the kernel at rest is the listeners' accepts: an orphaned operation whose
    # completion never came would show here.
    ((ops == ops_idle)) || fail "$phase: corelay_engine_ops_in_flight=$ops, $ops_idle before load"
    ((tunnels == 0)) || fail "$phase: corelay_tunnels_open=$tunnels"
    adm=$(awk '$1 ~ /^corelay_admission_[a-z_]*[{]/ && $1 !~ /_total[{]/ { split($1, n, "{"); print n[1] }' <<<"$m" | sort -u)
    if [[ -z $adm ]]; then
        fail "$phase: no corelay_admission_* gauge in /metrics"
    fi
    for i in $adm; do
        v=$(metric "$m" "$i")
        ((v == 0)) || fail "$phase: $i=$v"
    done
    kill -0 "$corelay_pid" 2>/dev/null || fail "$phase: corelay exited ($(tail -n 3 "$work/corelay.log"))"
}

declare -A total_by=()
say "warm-up: ${warmup}s"
run_phase warmup "$warmup"
check_results warmup
settle warmup
rss_warm=$(rss_kib)
say "main run: ${main}s"
run_phase main "$main"
check_results main
settle main
rss_end=$(rss_kib)
delta=$((rss_end - rss_warm))
say "rss after warm-up ${rss_warm} KiB, after the run ${rss_end} KiB (${delta#-} KiB $( ((delta < 0)) && echo less || echo more))"
((${delta#-} <= rss_slack_kib)) || fail "rss grew from ${rss_warm} KiB to ${rss_end} KiB (limit ${rss_slack_kib} KiB)"

say "totals over ${total}s (warm-up + main), by kind:"
for kind in $order; do
    line="  $kind:"
    for key in requests errors timeouts connect_errors non2xx mismatches aborted cut; do
        line+=" $key=${total_by["$kind.$key"]:-0}"
    done
    echo "$line"
done
grep -iE 'panic|error' "$work/corelay.log" | head -n 5 | sed 's/^/  corelay log: /' || true

if ((${#failures[@]})); then
    say "${#failures[@]} check(s) failed"
    exit 1
fi
say "PASS"
