#!/usr/bin/env bash
# The one command a new user runs: installs the tools, starts PostgreSQL + Kafka,
# builds everything optimised (target/release), starts all chatvault services
# (task runAll), imports the bundled sample Telegram export and lists the chats.
#   CHATVAULT_PROFILE=debug scripts/run-all.sh   debug binaries instead (target/debug:
#                                                quicker to compile, several times slower)
# Afterwards: `task logs`, `task stop`, `task stack:down` (whatever the profile).
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

# Optimised binaries unless the caller asks for another profile; task runAll and
# services.sh (start, login, node registration) read the same variable.
export CHATVAULT_PROFILE="${CHATVAULT_PROFILE:-release}"
case "$CHATVAULT_PROFILE" in
    release)   CLI="$ROOT/target/release/chatvault" ;;
    debug|dev) CLI="$ROOT/target/debug/chatvault" ;;
    *)         die "CHATVAULT_PROFILE is release or debug, not '$CHATVAULT_PROFILE'" ;;
esac

log "task runAll ($CHATVAULT_PROFILE build; stack, build, services)"
task runAll
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

log "the web front door: open http://127.0.0.1:8080/ and log in (the first admin is 'admin', its password is in .state/secrets/admin-password)"
log "done. Services keep running ($CHATVAULT_PROFILE build, $(dirname "$CLI")): 'task logs' to follow them, 'task stop' to stop them, 'task stack:down' for Kafka/PostgreSQL."
log "the CLI of this build: $CLI"
