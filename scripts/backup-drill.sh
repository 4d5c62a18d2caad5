#!/usr/bin/env bash
# A restore drill on the local platform (`task backup:drill`). DESTRUCTIVE: it wipes the
# local stack (`task stack:reset`: Kafka, the chatvault databases, the storage nodes' data).
#   1. starts everything (scripts/run-all.sh: imports the sample export), stores two files
#   2. records what the archive answers: chats, every message, a search, authors, files
#   3. backs up as CSV and Parquet with the files' bytes
#   4. stops the services, wipes the stack, starts everything again (empty)
#   5. restores the backup, records the answers again and compares them byte for byte,
#      downloads the files and compares their SHA-256; restores again and checks that
#      nothing is restored twice
# Exits non-zero on any difference. Backups live in .state/backups, which the wipe keeps.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf 'drill: %s\n' "$*"; }
die() { printf 'drill: ERROR: %s\n' "$*" >&2; exit 1; }
[ "${1:-}" = "--yes" ] || [ "${CHATVAULT_DRILL_YES:-}" = "1" ] \
    || die "this wipes the local stack and every archived chat; run with --yes"

export PATH="$HOME/.cargo/bin:$(go env GOPATH 2>/dev/null || echo /root/go)/bin:$PATH"
# The same binaries run-all.sh builds and starts: optimised unless CHATVAULT_PROFILE=debug.
export CHATVAULT_PROFILE="${CHATVAULT_PROFILE:-release}"
case "$CHATVAULT_PROFILE" in
    release) CLI="$ROOT/target/release/chatvault" ;;
    *)       CLI="$ROOT/target/debug/chatvault" ;;
esac
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# The first admin's password lives in .state/secrets (kept by the wipe), so the wiped
# platform creates the same admin again.
login() { bash scripts/services.sh login >/dev/null; }

# answers DIR [TOKEN]: writes every answer of the archive as JSON files into DIR.
answers() {
    local dir="$1" after=()
    [ -n "${2:-}" ] && after=(--after "$2")
    mkdir -p "$dir"
    "$CLI" chats --json "${after[@]}" >"$dir/chats.json"
    local chat
    for chat in $(jq -r '.[].chat_id' "$dir/chats.json"); do
        "$CLI" messages "$chat" --json --limit 100000 >"$dir/messages-$chat.json"
        "$CLI" authors top "$chat" --json >"$dir/authors-$chat.json"
    done
    "$CLI" messages 1234567890 --json --search "hello" >"$dir/search.json"
    "$CLI" files ls --date "$(date -u +%F)" --json | jq 'sort_by(.id)' >"$dir/files.json"
    local id
    for id in $(jq -r '.[].id' "$dir/files.json"); do
        "$CLI" files get "$id" -o "$dir/file-$id" --json >/dev/null
        sha256sum "$dir/file-$id" | cut -d' ' -f1 >"$dir/file-$id.sha256"
        rm -f "$dir/file-$id"
    done
}

log "1/5 everything up, sample imported"
bash scripts/run-all.sh >/dev/null
login
head -c 3000000 /dev/urandom >"$WORK/random.bin"
echo "drill note $(date -u)" >"$WORK/note.txt"
"$CLI" files put "$WORK/random.bin" "$WORK/note.txt" --json >/dev/null

log "2/5 recording the archive's answers"
answers "$WORK/before"

log "3/5 backup create --format both --with-files"
BACKUP="$("$CLI" backup create --format both --with-files --json)"
BACKUP_ID="$(jq -r .id <<<"$BACKUP")"
log "backup $BACKUP_ID: $(jq -c '[.tables[] | {(.name): .rows}] | add' <<<"$BACKUP")"
"$CLI" backup verify "$BACKUP_ID" >/dev/null

log "4/5 wiping: services stopped, task stack:reset, services started on the empty stack"
bash scripts/services.sh stop >/dev/null
task stack:reset >/dev/null
bash scripts/services.sh start >/dev/null
bash scripts/services.sh wait >/dev/null
login
[ "$(jq length <<<"$("$CLI" chats --json)")" = "0" ] || die "the wiped platform still lists chats"

log "5/5 backup restore $BACKUP_ID"
RESTORED="$("$CLI" backup restore "$BACKUP_ID" --json)"
log "restored: $(jq -c '[.tables[] | {(.name): [.restored, .already_present]}] | add' <<<"$RESTORED")"
answers "$WORK/after" "$(jq -r .consistency_token <<<"$RESTORED")"
if ! diff -r "$WORK/before" "$WORK/after" >"$WORK/diff.txt"; then
    head -50 "$WORK/diff.txt" >&2
    die "the restored platform answers differently"
fi
AGAIN="$("$CLI" backup restore "$BACKUP_ID" --json)"
[ "$(jq '[.tables[].restored] | add' <<<"$AGAIN")" = "0" ] || die "a second restore restored rows again: $AGAIN"
log "OK: $(ls "$WORK/before" | wc -l) answers identical after wipe and restore; a second restore changed nothing"
