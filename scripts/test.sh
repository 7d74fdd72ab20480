#!/usr/bin/env bash
# Runs corelay's whole test suite: codec unit tests, shard substrate tests and the black-box
# integration tests (real sockets on 127.0.0.1, real backends started by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
# glommio registers its I/O memory with io_uring, which counts against RLIMIT_MEMLOCK.
ulimit -l unlimited 2>/dev/null || true
exec cargo test --workspace --locked "$@"
