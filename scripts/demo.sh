#!/usr/bin/env bash
# corelay's front door: build, start the bundled origin and corelay in front
# of it, and show what to try.
#
#   scripts/demo.sh           run until Ctrl-C / SIGTERM, then stop both
#   scripts/demo.sh --check   start, run the curl checks, print PASS/FAIL,
#                             stop, exit 0 only if every check passed (CI)
#
# Environment: DEMO_PORT (corelay, default 8080), ORIGIN_PORT (origin,
# default 9000), READY_TIMEOUT (seconds to wait for each process, default 30).
set -euo pipefail

# Runnable from any cwd: everything below is relative to the repo root.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode=run
case "${1:-}" in
    "") ;;
    --check) mode=check ;;
    -h | --help)
        sed -n '2,11s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *)
        echo "usage: $0 [--check]" >&2
        exit 2
        ;;
esac

host=127.0.0.1
demo_port=${DEMO_PORT:-8080}
origin_port=${ORIGIN_PORT:-9000}
ready_timeout=${READY_TIMEOUT:-30}
proxy="http://$host:$demo_port"

say() { printf 'demo: %s\n' "$*"; }

command -v cargo >/dev/null || { say "cargo not found (install Rust from https://rustup.rs)" >&2; exit 1; }
command -v curl >/dev/null || { say "curl not found; the demo uses it to talk to corelay" >&2; exit 1; }

# --- processes and cleanup ------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/corelay-demo.XXXXXX")
origin_log="$tmp/origin.log"
corelay_log="$tmp/corelay.log"
origin_pid=""
corelay_pid=""
follow_pid=""

# stop PID GRACE: SIGTERM, give it GRACE seconds (corelay drains in-flight
# requests), then SIGKILL.
stop() {
    local pid=$1 grace=$2 i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    trap - EXIT INT TERM
    stop "$follow_pid" 1
    # corelay first, so it never sees its backend vanish mid-request.
    stop "$corelay_pid" 10
    stop "$origin_pid" 5
    rm -rf "$tmp"
}
trap cleanup EXIT
# Exit (which runs cleanup) with the conventional 128+signal status.
trap 'echo; say "stopping"; exit 130' INT
trap 'say "stopping"; exit 143' TERM

show_log() {
    echo "---- $1 ----" >&2
    tail -n 20 "$2" >&2 || true
    echo "----" >&2
}

# wait_ready NAME PID LOG PATTERN: wait until LOG has a line matching PATTERN,
# failing early if the process exits.
wait_ready() {
    local name=$1 pid=$2 log=$3 pattern=$4 i
    for ((i = 0; i < ready_timeout * 10; i++)); do
        grep -q -- "$pattern" "$log" 2>/dev/null && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            say "$name exited before it was ready" >&2
            show_log "$name output" "$log"
            exit 1
        fi
        sleep 0.1
    done
    say "$name not ready after ${ready_timeout}s" >&2
    show_log "$name output" "$log"
    exit 1
}

# --- build and start --------------------------------------------------------

# Both servers bind with SO_REUSEPORT, so a second demo (or anything else
# listening there) would quietly share the port instead of failing: refuse.
for port in "$origin_port" "$demo_port"; do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
        say "something already listens on $host:$port; stop it or set DEMO_PORT / ORIGIN_PORT" >&2
        exit 1
    fi
done

say "building release binaries (the first build takes a few minutes)"
# One cargo call for both: two calls resolve the shared dependencies' features differently
# (bench's enable more), so the second would rebuild corelay.
cargo build --release -p corelay -p bench --bin corelay --bin origin
source scripts/target-dir.sh
bin="$target_dir/release"

say "starting origin on $host:$origin_port"
"$bin/origin" --listen "$host:$origin_port" --cores 1 >"$origin_log" 2>&1 &
origin_pid=$!
wait_ready origin "$origin_pid" "$origin_log" '^origin: listening on'
cat "$origin_log"

say "starting corelay on $host:$demo_port -> $host:$origin_port"
"$bin/corelay" --listen "$host:$demo_port" --backend "$host:$origin_port" --cores 1 \
    >"$corelay_log" 2>&1 &
corelay_pid=$!
wait_ready corelay "$corelay_pid" "$corelay_log" '^corelay: ready'
cat "$corelay_log"

# --- check mode -------------------------------------------------------------

if [[ $mode == check ]]; then
    failures=0
    # check NAME EXPECTED ACTUAL
    check() {
        if [[ $2 == "$3" ]]; then
            echo "PASS  $1"
        else
            echo "FAIL  $1: expected '$2', got '$3'"
            failures=$((failures + 1))
        fi
    }
    # curl prints the status code; the body goes to a file. Failures to
    # connect show up as status 000.
    fetch() { curl -s --max-time 10 -o "$1" -w '%{http_code}' "${@:2}" || true; }

    status=$(fetch "$tmp/small" "$proxy/small")
    check "GET /small status" 200 "$status"
    direct=$(curl -s --max-time 10 "http://$host:$origin_port/small" || true)
    check "GET /small body matches the origin's" "$direct" "$(cat "$tmp/small")"

    big=1048576
    status=$(fetch "$tmp/big" "$proxy/big/$big")
    check "GET /big/$big status" 200 "$status"
    check "GET /big/$big length" "$big" "$(wc -c <"$tmp/big" | tr -d ' ')"
    curl -s --max-time 10 -o "$tmp/big.direct" "http://$host:$origin_port/big/$big" || true
    if cmp -s "$tmp/big" "$tmp/big.direct"; then same=yes; else same=no; fi
    check "GET /big/$big content matches the origin's" yes "$same"

    head -c 100000 /dev/urandom >"$tmp/upload"
    status=$(fetch "$tmp/echoed" --data-binary "@$tmp/upload" "$proxy/echo")
    check "POST /echo status" 200 "$status"
    if cmp -s "$tmp/upload" "$tmp/echoed"; then same=yes; else same=no; fi
    check "POST /echo body round-trips" yes "$same"

    status=$(fetch /dev/null "$proxy/no-such-route")
    check "GET /no-such-route passes the origin's 404 through" 404 "$status"

    if ((failures == 0)); then
        echo "PASS: corelay front door works"
        exit 0
    fi
    echo "FAIL: $failures check(s) failed"
    show_log "corelay output" "$corelay_log"
    show_log "origin output" "$origin_log"
    exit 1
fi

# --- run mode ---------------------------------------------------------------

cat <<EOF

corelay is up: $proxy -> origin http://$host:$origin_port

Try:
  curl -i $proxy/small
  curl -s $proxy/big/1048576 | wc -c
  curl -s --data-binary 'hello corelay' $proxy/echo
  time curl -s $proxy/slow/500

Press Ctrl-C to stop.
EOF

# Keep showing what both processes log from now on.
tail -q -n 0 -f "$corelay_log" "$origin_log" &
follow_pid=$!

# Run until a signal arrives (the traps above) or one of the two exits.
# `wait` on a background sleep returns as soon as a trapped signal arrives.
while kill -0 "$origin_pid" 2>/dev/null && kill -0 "$corelay_pid" 2>/dev/null; do
    sleep 1 &
    wait $! || true
done
kill -0 "$origin_pid" 2>/dev/null || say "origin exited unexpectedly" >&2
kill -0 "$corelay_pid" 2>/dev/null || say "corelay exited unexpectedly" >&2
exit 1
