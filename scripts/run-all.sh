#!/usr/bin/env bash
# The one command a new user runs: installs the tools, starts PostgreSQL + Kafka,
# builds everything, starts all chatvault services (task runAll), imports the
# bundled sample Telegram export and lists the chats.
#   CHATVAULT_PROFILE=release scripts/run-all.sh   for an optimized build
# Afterwards: `task logs`, `task stop`, `task stack:down`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf 'run-all: %s\n' "$*"; }
die() { printf 'run-all: ERROR: %s\n' "$*" >&2; exit 1; }

[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
[ -x /usr/local/go/bin/go ] && export PATH="$PATH:/usr/local/go/bin"

log "installing tools"
bash scripts/tools.sh
GOBIN_DIR="$(go env GOPATH)/bin"
export PATH="$GOBIN_DIR:$PATH"
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust with rustup)"

log "task runAll (stack, build, services)"
task runAll

case "${CHATVAULT_PROFILE:-debug}" in
    release) CLI="$ROOT/target/release/chatvault" ;;
    *)       CLI="$ROOT/target/debug/chatvault" ;;
esac
[ -x "$CLI" ] || die "$CLI not built"

# Every call needs a token: log in as the installation's first admin, whose password
# services.sh generated into .state/secrets/admin-password on the first start.
log "logging in as the first admin: scripts/services.sh login"
bash scripts/services.sh login

SAMPLE="fixtures/sample-export/result.json"
log "importing the sample export: chatvault import $SAMPLE"
SUMMARY="$("$CLI" import --json "$SAMPLE")"
echo "$SUMMARY"
# The consistency token makes the queries below wait until storage has applied the import.
TOKEN="$(jq -r .consistency_token <<<"$SUMMARY")"

log "chats in the archive: chatvault chats --after <token>"
"$CLI" chats --after "$TOKEN"

log "its first messages: chatvault messages 1234567890 --limit 5"
"$CLI" messages 1234567890 --limit 5 --after "$TOKEN"

log "done. Services keep running: 'task logs' to follow them, 'task stop' to stop them, 'task stack:down' for Kafka/PostgreSQL."
