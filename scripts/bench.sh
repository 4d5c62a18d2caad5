#!/usr/bin/env bash
# Runs chatvault's benchmarks (`task bench`). Each figure is printed as a ratio to a limit
# measured in the same run on this machine, and appended as a JSON line to the results
# file; at the end one table lists every row of the performance table (README,
# "Performance"): work, figure, limit, ratio, target, met / not met (or not run).
# Release builds; the local stack must be up (this script starts it).
#
#   scripts/bench.sh                  every row at the size of the performance table (long)
#   scripts/bench.sh --small          every row at a small size: minutes, proves that all of
#                                     it runs; its ratios are indicative only
#   scripts/bench.sh import [--format json|html] [--messages N]   (1,000,000 JSON, 200,000 HTML)
#   scripts/bench.sh media [--media-bytes B]                      (2GB: import with 20% media)
#   scripts/bench.sh files [--bytes 1GiB] [--uploads 100] [--upload-bytes 1MiB]
#   scripts/bench.sh backup [--messages N]                        (CSV/Parquet backup, restore)
#   scripts/bench.sh summary          print the table of the last run again
#
# The results file is bench/out/results.jsonl (CHATVAULT_BENCH_RESULTS names another); it is
# emptied at the start of every run. Exports are cached in bench/out/ (`rm -r bench/out` frees
# them). The storage nodes and dd work in $TMPDIR (default /tmp): that is the disk measured.
# CHATVAULT_BENCH_BUILD=0 skips the release build when the binaries are built already.
# pyarrow (the Parquet limit) comes from .state/python, installed here when missing
# (CHATVAULT_PYTHON names another Python that has it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf 'bench: %s\n' "$*"; }
die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }

[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
# A failed check prints its message, not a backtrace (panics still print theirs).
export RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE:-0}"
RESULTS="${CHATVAULT_BENCH_RESULTS:-$ROOT/bench/out/results.jsonl}"
export CHATVAULT_BENCH_RESULTS="$RESULTS"
BENCH="$ROOT/target/release/chatvault-bench"
FILES="$ROOT/target/release/files"

MODE="${1:-all}"
case "$MODE" in
    all|--small|import|media|files|backup) ;;
    summary)
        [ -x "$BENCH" ] || die "$BENCH is not built (cargo build --release -p chatvault-bench)"
        exec "$BENCH" summary
        ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown benchmark '$MODE' (all, --small, import, media, files, backup, summary; see --help)" ;;
esac

# ensure_pyarrow: a Python that imports pyarrow, as CHATVAULT_PYTHON for the backup benchmark.
# scripts/tools.sh sets up .state/python with it; should that not have happened, the venv is
# made here with the version tools.sh pins.
ensure_pyarrow() {
    local python="${CHATVAULT_PYTHON:-$ROOT/.state/python/bin/python}" version
    if ! "$python" -c 'import pyarrow' >/dev/null 2>&1; then
        [ -z "${CHATVAULT_PYTHON:-}" ] || die "CHATVAULT_PYTHON=$CHATVAULT_PYTHON cannot import pyarrow"
        version="$(sed -n 's/^PYARROW_VERSION="\([^"]*\)".*/\1/p' scripts/tools.sh)"
        [ -n "$version" ] || die "no PYARROW_VERSION in scripts/tools.sh"
        command -v python3 >/dev/null 2>&1 || die "python3 is missing (scripts/tools.sh installs it)"
        log "installing pyarrow $version into .state/python"
        python3 -m venv "$ROOT/.state/python" || die "python3 -m venv .state/python failed (Debian: apt-get install python3-venv)"
        "$python" -m pip install --quiet --disable-pip-version-check "pyarrow==$version" || die "pip install pyarrow==$version failed"
        "$python" -c 'import pyarrow' || die "pyarrow is not importable from $python"
    fi
    export CHATVAULT_PYTHON="$python"
}

bash scripts/tools.sh >/dev/null
case "$MODE" in all|--small|backup) ensure_pyarrow ;; esac
bash scripts/stack.sh up
if [ "${CHATVAULT_BENCH_BUILD:-1}" != "0" ]; then
    log "cargo build --release --workspace --bins"
    cargo build --release --workspace --bins
fi
[ -x "$BENCH" ] && [ -x "$FILES" ] || die "release binaries missing: cargo build --release --workspace --bins"

mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"

FAILED=()
# run NAME COMMAND...: runs one benchmark; a failure is reported and the next one still runs.
run() {
    local name="$1"
    shift
    log "── $name: ${*#"$ROOT/"}"
    if ! "$@"; then
        log "FAILED: $name (its rows are missing from the table)"
        FAILED+=("$name")
    fi
    echo
}

case "$MODE" in
    all)
        run "JSON import" "$BENCH" import --format json
        run "HTML import" "$BENCH" import --format html
        run "import with media" "$BENCH" media
        run "files" "$FILES"
        run "backup" "$BENCH" backup
        ;;
    --small)
        run "JSON import" "$BENCH" import --format json --messages 20000
        run "HTML import" "$BENCH" import --format html --messages 20000
        run "import with media" "$BENCH" media --media-bytes 100MB
        run "files" "$FILES" --bytes 64MiB
        run "backup" "$BENCH" backup --messages 20000
        ;;
    files)
        shift
        run "files" "$FILES" "$@"
        ;;
    *)
        run "$MODE" "$BENCH" "$@"
        ;;
esac

cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
memory="$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD 2>/dev/null || commit="$commit (with local changes)"
disk="$(df -h --output=source,fstype "${TMPDIR:-/tmp}" 2>/dev/null | tail -n1 | tr -s ' ')"
echo "════════════════════════════════════════════════════════════════════════"
echo "chatvault $commit, $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores (${cpu:-unknown CPU}), $memory RAM; nodes and dd on ${disk:-?} (${TMPDIR:-/tmp})"
echo
"$BENCH" summary
if [ "${#FAILED[@]}" -gt 0 ]; then
    die "failed: ${FAILED[*]}"
fi
