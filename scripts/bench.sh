#!/usr/bin/env bash
# Runs chatvault's benchmarks (`task bench`). Each figure is printed as a ratio to a limit
# measured in the same run on this machine. Release builds; the local stack must be up
# (this script starts it).
#   scripts/bench.sh                 every benchmark
#   scripts/bench.sh import [--messages N]
#   scripts/bench.sh files           1 GiB upload and download (target/release/files)
#   scripts/bench.sh backup [--messages N]   CSV/Parquet backup and restore
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/tools.sh >/dev/null
bash scripts/stack.sh up
cargo build --release --workspace --bins
if [ "${1:-}" = "files" ]; then
    exec target/release/files
fi
if [ "$#" -gt 0 ]; then
    exec target/release/chatvault-bench "$@"
fi
target/release/chatvault-bench import
target/release/chatvault-bench backup
target/release/files
