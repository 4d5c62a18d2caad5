#!/usr/bin/env bash
# The one command that runs chatvault's whole test suite on a fresh machine
# (CI runs it through .ci/run):
#   1. installs missing tools (scripts/tools.sh)
#   2. starts PostgreSQL + Kafka (scripts/stack.sh up; they stay up afterwards)
#   3. cargo build --workspace --bins --tests
#   4. cargo fmt --check and cargo clippy --workspace --all-targets -- -D warnings
#   5. cargo test --workspace with CHATVAULT_TEST_STACK=1
# A lint failure does not stop the tests; the script fails when either failed.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh -p chatvault-tests).
#
# Before the tests it stops the services of `task runAll` (scripts/services.sh
# stop) so they cannot hold the ports the tests use; CHATVAULT_KEEP_SERVICES=1
# keeps them. Before and after, it ends leftover chatvault processes started
# from this repo's target/ by an earlier, interrupted test run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf 'test: %s\n' "$*"; }
die() { printf 'test: ERROR: %s\n' "$*" >&2; exit 1; }

[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
[ -x /usr/local/go/bin/go ] && export PATH="$PATH:/usr/local/go/bin"
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust with rustup)"

# proc_live PID: exists and is not a zombie.
proc_live() {
    local st
    st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [ -n "$st" ] && [ "$st" != "Z" ]
}

# kill_strays: end chatvault-* processes run from $ROOT/target/<profile>/ that
# services.sh does not track (orphans of an interrupted test run).
kill_strays() {
    local tracked=" " f pid arg0 strays=()
    for f in "$ROOT"/.state/run/*.pid; do
        [ -f "$f" ] && tracked+="$(cat "$f" 2>/dev/null) "
    done
    for f in /proc/[0-9]*/cmdline; do
        pid="${f#/proc/}"; pid="${pid%/cmdline}"
        [ "$pid" = "$$" ] && continue
        arg0=""
        IFS= read -r -d '' arg0 <"$f" 2>/dev/null || true
        case "$arg0" in
            "$ROOT"/target/debug/chatvault-*|"$ROOT"/target/release/chatvault-*) ;;
            *) continue ;;
        esac
        [[ "$tracked" == *" $pid "* ]] && continue
        strays+=("$pid")
    done
    [ "${#strays[@]}" -gt 0 ] || return 0
    log "ending ${#strays[@]} leftover chatvault process(es): ${strays[*]}"
    kill -TERM "${strays[@]}" 2>/dev/null || true
    local i
    for ((i = 0; i < 40; i++)); do
        local alive=0
        for pid in "${strays[@]}"; do
            if proc_live "$pid"; then alive=1; fi
        done
        [ "$alive" -eq 0 ] && return 0
        sleep 0.25
    done
    kill -KILL "${strays[@]}" 2>/dev/null || true
}

log "1/5 tools"
CHATVAULT_TOOLS_BROWSER=1 bash scripts/tools.sh
GOBIN_DIR="$(go env GOPATH)/bin"
export PATH="$GOBIN_DIR:$PATH"

if [ "${CHATVAULT_KEEP_SERVICES:-0}" != "1" ]; then
    bash scripts/services.sh stop >/dev/null || true
fi
kill_strays
trap kill_strays EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "2/5 stack (PostgreSQL + Kafka)"
bash scripts/stack.sh up

export CHATVAULT_TEST_STACK=1
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

log "3/5 cargo build --workspace --bins --tests"
cargo build --workspace --bins --tests

log "4/5 cargo fmt --check, cargo clippy -D warnings"
lint_status=0
cargo fmt --version >/dev/null 2>&1 || die "rustfmt is missing: rustup component add rustfmt"
cargo clippy --version >/dev/null 2>&1 || die "clippy is missing: rustup component add clippy"
cargo fmt --all -- --check >/dev/null || { log "cargo fmt --check: files are not formatted (run cargo fmt)"; cargo fmt --all -- --check | head -40 || true; lint_status=1; }
cargo clippy --workspace --all-targets -- -D warnings || { log "cargo clippy found warnings"; lint_status=1; }

# Each test creates a database of its own (test_<uuid>) and leaves it for inspection; the
# ones of earlier runs go now (those still in use stay), or thousands of them pile up (and a PostgreSQL crash
# recovery then syncs every one of their files).
PG_STORAGE_PASSWORD_FILE="$ROOT/.state/secrets/postgres-storage"
if [ -r "$PG_STORAGE_PASSWORD_FILE" ] && command -v psql >/dev/null 2>&1; then
    leftovers="$(PGPASSWORD="$(cat "$PG_STORAGE_PASSWORD_FILE")" psql -h 127.0.0.1 -U storage -d storage -At \
        -c "SELECT datname FROM pg_database WHERE datname ~ '^test_[0-9a-f]{32}$'" 2>/dev/null || true)"
    dropped=0
    for database in $leftovers; do
        PGPASSWORD="$(cat "$PG_STORAGE_PASSWORD_FILE")" psql -h 127.0.0.1 -U storage -d storage -q \
            -c "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 && dropped=$((dropped + 1))
    done
    [ "$dropped" -eq 0 ] || log "dropped $dropped test database(s) of earlier runs"
fi

log "5/5 cargo test --workspace (CHATVAULT_TEST_STACK=1)"
status=0
cargo test --workspace --no-fail-fast "$@" || status=$?
if [ "$status" -eq 0 ]; then
    log "all tests passed"
else
    log "cargo test failed (exit $status)"
fi
if [ "$lint_status" -ne 0 ]; then
    log "lints failed (cargo fmt --check or cargo clippy -D warnings; see above)"
    [ "$status" -ne 0 ] || status=1
fi
exit "$status"
