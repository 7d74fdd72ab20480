#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ (libFuzzer) for SECONDS each (default 20), one after
# the other, and fails if any target finds a crash, a failed property or a leak.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Each target starts from the committed seeds in fuzz/seeds/<target>/ (made from the unit
# tests by scripts/fuzz-seeds.py) and grows its own corpus in fuzz/corpus/<target>/, which is
# not committed. A crashing input is saved under fuzz/artifacts/<target>/; it belongs in the
# codec's unit tests before the fix (`cargo fuzz run <target> <file>` replays it).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]  (SECONDS: a positive number)" >&2
    exit 2
fi

# cargo-fuzz builds with -Zsanitizer=address and other -Z flags, which rustc accepts only on
# a nightly toolchain. RUSTC_BOOTSTRAP=1 makes the stable toolchain accept them too; it is
# set for this script's builds only, which go to fuzz/target, apart from the main build.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

cd fuzz
echo "== building the fuzz targets"
cargo fuzz build
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    log="target/fuzz-$t.log"
    echo "== $t: ${seconds}s"
    # -max_len: request heads reach 16 KiB at the default limit (64 KiB in the big-limits
    # mode, which longer inputs may still reach by mutation). -timeout: one input that takes
    # seconds is a hang worth reporting. Final stats give the executions for the record.
    if cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -max_len=20000 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
        echo "   ok: ${runs:-?} executions, corpus $(find "corpus/$t" -type f | wc -l) inputs"
    else
        echo "   FAILED: see fuzz/$log and fuzz/artifacts/$t/"
        grep -E 'panicked|ERROR|SUMMARY|artifact_prefix|Test unit written' "$log" | head -20 || true
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found failures in: ${failed[*]}" >&2
    exit 1
fi
echo "== fuzzing: all ${#targets[@]} targets ran ${seconds}s without a failure"
