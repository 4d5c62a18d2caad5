#!/usr/bin/env bash
# Runs the chatvault services in the background from target/debug
# (CHATVAULT_PROFILE=release: target/release).
#
#   scripts/services.sh start    start every service not already running
#   scripts/services.sh stop     SIGTERM, up to 15 s, then SIGKILL
#   scripts/services.sh status   running / stopped per service, its /healthz code and any stuck
#                                projection with its last error (exit 1 if any is stopped or unhealthy)
#   scripts/services.sh wait     poll http://127.0.0.1:<http_port>/healthz until 200 (60 s)
#   scripts/services.sh login    log the chatvault CLI in as the first admin
#   scripts/services.sh secrets  generate the installation's secrets when missing (what start
#                                does first); CHATVAULT_STATE_DIR names another state folder
#
# Logs: .state/logs/<name>.log, pids: .state/run/<name>.pid.
#
# Secrets: the first start of an installation generates, once, with a CSPRNG:
#   .state/secrets/jwt-secret      the signing secret every service gets as CHATVAULT_JWT_SECRET
#   .state/secrets/admin-password  the password of the first admin `admin` (CHATVAULT_USERS_BOOTSTRAP_ADMIN),
#                                  printed once when it is generated
# (folder 0700, files 0600); later starts reuse them. An operator may set CHATVAULT_JWT_SECRET
# and/or CHATVAULT_USERS_BOOTSTRAP_ADMIN (username:password:email) instead; then the
# corresponding file is neither created nor read.
# Each service reads CHATVAULT_<SERVICE>_GRPC_ADDR / _HTTP_ADDR with defaults equal
# to the ports below, so they are not set here (except for storage nodes).
set -euo pipefail

# One line per service instance: "name:binary:http_port[:EXTRA_ENV=value ...]".
#   name       unique; used for the log/pid file names
#   binary     file under target/<profile>/
#   http_port  serves GET /healthz (used by 'wait')
#   extra env  optional, space-separated KEY=VALUE pairs (values may contain ':';
#              @STATE@ is replaced by the absolute .state path)
# Names "storage-node-<i>" automatically get CHATVAULT_NODE_ID=<i>,
# CHATVAULT_NODE_DATA_DIR=.state/nodes/<i>, CHATVAULT_STORAGE_NODE_GRPC_ADDR=127.0.0.1:<50100+i>
# and CHATVAULT_STORAGE_NODE_HTTP_ADDR=127.0.0.1:<http_port> (see instance_env).
# Ports: ingest 50051/8081, storage 50052/8082, users 50053/8083, audit 50054/8084,
# backup 50055/8085, web 50056/8080 (the browser's port), bot 50057/8086, bot workers
# 50057+i/8086+i, storage nodes 50101../8101.. .
# The Telegram bot's storage workers (CHATVAULT_BOT_WORKERS of them, default 2) start only
# when CHATVAULT_BOT_TOKEN is set; without it the bot service answers its link API alone.
# Services start in this order and stop in reverse order.
SERVICES=(
    "ingest:chatvault-ingest:8081"
    "storage:chatvault-storage:8082"
    "users:chatvault-users:8083"
    "audit:chatvault-audit:8084"
    "backup:chatvault-backup:8085:CHATVAULT_BACKUP_DIR=@STATE@/backups"
    "web:chatvault-web:8080"
    "bot:chatvault-bot:8086"
    "storage-node-1:chatvault-storage-node:8101"
    "storage-node-2:chatvault-storage-node:8102"
    "storage-node-3:chatvault-storage-node:8103"
    "storage-node-4:chatvault-storage-node:8104"
    "storage-node-5:chatvault-storage-node:8105"
    "storage-node-6:chatvault-storage-node:8106"
)

if [ -n "${CHATVAULT_BOT_TOKEN:-}" ]; then
    for ((worker = 1; worker <= ${CHATVAULT_BOT_WORKERS:-2}; worker++)); do
        SERVICES+=("bot-worker-$worker:chatvault-bot-worker:$((8086 + worker))")
    done
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${CHATVAULT_STATE_DIR:-$ROOT/.state}"
LOG_DIR="$STATE/logs"
RUN_DIR="$STATE/run"
PROFILE="${CHATVAULT_PROFILE:-debug}"
case "$PROFILE" in
    debug|dev) BIN_DIR="$ROOT/target/debug" ;;
    release)   BIN_DIR="$ROOT/target/release" ;;
    *)         BIN_DIR="$ROOT/target/$PROFILE" ;;
esac
STOP_GRACE_SECONDS="${CHATVAULT_STOP_GRACE_SECONDS:-15}"
WAIT_TIMEOUT_SECONDS="${CHATVAULT_WAIT_TIMEOUT_SECONDS:-60}"
SECRETS_DIR="$STATE/secrets"
JWT_SECRET_FILE="$SECRETS_DIR/jwt-secret"
BOT_TOKEN_KEY_FILE="$SECRETS_DIR/bot-token-key"
ADMIN_PASSWORD_FILE="$SECRETS_DIR/admin-password"
# The first admin when the operator does not name one in CHATVAULT_USERS_BOOTSTRAP_ADMIN.
DEFAULT_ADMIN_USERNAME="admin"
DEFAULT_ADMIN_EMAIL="admin@localhost"

log() { printf 'services: %s\n' "$*"; }
die() { printf 'services: ERROR: %s\n' "$*" >&2; exit 1; }

# parse ENTRY -> sets NAME BINARY HTTP_PORT EXTRA
parse() {
    IFS=':' read -r NAME BINARY HTTP_PORT EXTRA <<<"$1"
    [ -n "$NAME" ] && [ -n "$BINARY" ] && [[ "$HTTP_PORT" =~ ^[0-9]+$ ]] \
        || die "bad SERVICES entry '$1' (want name:binary:http_port[:ENV=val ...])"
}

# instance_env: prints KEY=VALUE lines for the current NAME/HTTP_PORT/EXTRA.
instance_env() {
    if [[ "$NAME" =~ ^storage-node-([0-9]+)$ ]]; then
        local i="${BASH_REMATCH[1]}"
        echo "CHATVAULT_NODE_ID=$i"
        echo "CHATVAULT_NODE_DATA_DIR=$STATE/nodes/$i"
        echo "CHATVAULT_STORAGE_NODE_GRPC_ADDR=127.0.0.1:$((50100 + i))"
        echo "CHATVAULT_STORAGE_NODE_HTTP_ADDR=127.0.0.1:$HTTP_PORT"
    fi
    if [[ "$NAME" =~ ^bot-worker-([0-9]+)$ ]]; then
        local i="${BASH_REMATCH[1]}"
        echo "CHATVAULT_BOT_WORKER_GRPC_ADDR=127.0.0.1:$((50057 + i))"
        echo "CHATVAULT_BOT_WORKER_HTTP_ADDR=127.0.0.1:$HTTP_PORT"
    fi
    local kv
    for kv in ${EXTRA:-}; do
        echo "${kv//@STATE@/$STATE}"
    done
}

# random_base64 BYTES: prints BYTES random bytes as one line of base64 (CSPRNG).
random_base64() {
    if command -v openssl >/dev/null 2>&1; then
        openssl rand -base64 "$1" | tr -d '\n'
    else
        head -c "$1" /dev/urandom | base64 -w0
    fi
}

# random_password: prints 96 random bits as four dash-separated groups of hex digits, which
# always passes the users service's password policy (two kinds of characters, >= 10).
random_password() {
    local hex
    if command -v openssl >/dev/null 2>&1; then
        hex="$(openssl rand -hex 12)"
    else
        hex="$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    fi
    [ "${#hex}" -eq 24 ] || die "could not read 12 random bytes"
    echo "${hex:0:6}-${hex:6:6}-${hex:12:6}-${hex:18:6}"
}

# create_secret_file FILE GENERATOR: writes the generator's output to FILE (0600) unless it
# exists; returns 0 when this call created it. The link makes two concurrent starts agree
# on one value: only one hard link wins, the other start reads the winner's file.
create_secret_file() {
    local file="$1" generator="$2" tmp value
    [ -s "$file" ] && return 1
    value="$("$generator")" || die "generating $file failed"
    [ -n "$value" ] || die "generating $file gave nothing"
    tmp="$(umask 077; mktemp "$file.XXXXXX")"
    printf '%s\n' "$value" >"$tmp"
    chmod 600 "$tmp"
    if ln "$tmp" "$file" 2>/dev/null; then
        rm -f "$tmp"
        return 0
    fi
    rm -f "$tmp"
    return 1
}

# secrets_folder: creates .state/secrets (0700) and tightens it if it exists.
secrets_folder() {
    (umask 077; mkdir -p "$SECRETS_DIR")
    chmod 700 "$SECRETS_DIR"
}

# ensure_secrets: generates the signing secret and the first admin's password on the first
# start, prints the password that once, and sets JWT_SECRET and BOOTSTRAP_ADMIN.
ensure_secrets() {
    if [ -n "${CHATVAULT_JWT_SECRET:-}" ]; then
        JWT_SECRET="$CHATVAULT_JWT_SECRET"
    else
        secrets_folder
        if create_secret_file "$JWT_SECRET_FILE" "random_base64_48"; then
            log "generated the installation's signing secret in .state/secrets/jwt-secret (keep it; every service needs it)"
        fi
        JWT_SECRET="$(head -n1 "$JWT_SECRET_FILE")"
        [ -n "$JWT_SECRET" ] || die ".state/secrets/jwt-secret is empty; delete it and start again to generate one"
    fi
    if [ -n "${CHATVAULT_USERS_BOOTSTRAP_ADMIN:-}" ]; then
        BOOTSTRAP_ADMIN="$CHATVAULT_USERS_BOOTSTRAP_ADMIN"
    else
        secrets_folder
        if create_secret_file "$ADMIN_PASSWORD_FILE" "random_password"; then
            printf '\n'
            log "first admin of this installation: username '$DEFAULT_ADMIN_USERNAME', password '$(head -n1 "$ADMIN_PASSWORD_FILE")'"
            log "this password is shown only now; it is kept in .state/secrets/admin-password (mode 0600)"
            printf '\n'
        fi
        [ -s "$ADMIN_PASSWORD_FILE" ] || die ".state/secrets/admin-password is empty; delete it and start again to generate one"
        BOOTSTRAP_ADMIN="$DEFAULT_ADMIN_USERNAME:$(head -n1 "$ADMIN_PASSWORD_FILE"):$DEFAULT_ADMIN_EMAIL"
    fi
}

random_base64_48() { random_base64 48; }
random_base64_32() { random_base64 32; }

# ensure_bot_token_key: the AES-256 key sealing Google refresh tokens at rest
# (CHATVAULT_BOT_TOKEN_KEY), generated once into .state/secrets/bot-token-key.
ensure_bot_token_key() {
    [ -z "${CHATVAULT_BOT_TOKEN_KEY:-}" ] || return 0
    secrets_folder
    if create_secret_file "$BOT_TOKEN_KEY_FILE" "random_base64_32"; then
        log "generated the bot's token-sealing key in .state/secrets/bot-token-key (keep it: it opens the stored Drive grants)"
    fi
    export CHATVAULT_BOT_TOKEN_KEY="$(head -n1 "$BOT_TOKEN_KEY_FILE")"
}

# database_url_env NAME: exports CHATVAULT_<NAME>_DATABASE_URL for a service with a database
# (storage, users, audit, backup, web, bot; the bot's workers share the bot's) with its role's
# password from .state/secrets/postgres-<role> (made by scripts/stack.sh up), unless the
# operator set the variable.
database_url_env() {
    local name="$1" variable file database
    case "$name" in
        storage|users|audit|backup|web|bot) database="$name"; variable="CHATVAULT_${name^^}_DATABASE_URL" ;;
        bot-worker-*) database="bot"; variable="CHATVAULT_BOT_WORKER_DATABASE_URL" ;;
        *) return 0 ;;
    esac
    [ -z "${!variable:-}" ] || return 0
    file="$STATE/secrets/postgres-$database"
    [ -s "$file" ] || die "$file is missing: run scripts/stack.sh up first (it sets each role's password)"
    export "$variable=postgres://$database:$(head -n1 "$file")@127.0.0.1:5432/$database"
}

# admin_credentials: sets ADMIN_USER and ADMIN_PASSWORD of the first admin, from
# CHATVAULT_USERS_BOOTSTRAP_ADMIN or .state/secrets/admin-password; never generates.
admin_credentials() {
    local rest
    if [ -n "${CHATVAULT_USERS_BOOTSTRAP_ADMIN:-}" ]; then
        ADMIN_USER="${CHATVAULT_USERS_BOOTSTRAP_ADMIN%%:*}"
        rest="${CHATVAULT_USERS_BOOTSTRAP_ADMIN#*:}"
        ADMIN_PASSWORD="${rest%:*}"
    else
        [ -r "$ADMIN_PASSWORD_FILE" ] || die "no .state/secrets/admin-password yet: run scripts/services.sh start first"
        ADMIN_USER="$DEFAULT_ADMIN_USERNAME"
        ADMIN_PASSWORD="$(head -n1 "$ADMIN_PASSWORD_FILE")"
    fi
}

# admin_login: logs the chatvault CLI in as the first admin (session in $XDG_CONFIG_HOME,
# or ~/.config); the password goes through the environment, not the command line, so other
# users of the machine cannot read it in `ps`.
admin_login() {
    local cli="$BIN_DIR/chatvault"
    [ -x "$cli" ] || die "$cli not found; build it first (cargo build --bins)"
    admin_credentials
    if ! CHATVAULT_PASSWORD="$ADMIN_PASSWORD" "$cli" login --username "$ADMIN_USER" >/dev/null; then
        die "log-in as the first admin '$ADMIN_USER' failed. An installation made before generated passwords keeps its old admin password: log in with it, run 'chatvault passwd' and set the one in .state/secrets/admin-password (or set CHATVAULT_USERS_BOOTSTRAP_ADMIN)"
    fi
    log "logged in as the first admin '$ADMIN_USER'"
}

# proc_live PID: true while the process exists and is not a zombie (PID 1 may
# take a while to reap orphans here).
proc_live() {
    local st
    st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [ -n "$st" ] && [ "$st" != "Z" ]
}

pid_file() { echo "$RUN_DIR/$1.pid"; }

# running NAME BINARY: prints the pid when the recorded process is alive and is
# that binary (by argv[0]; survives a rebuild that replaced the file).
running() {
    local f pid arg0
    f="$(pid_file "$1")"
    [ -f "$f" ] || return 1
    pid="$(cat "$f" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] || return 1
    arg0=""
    IFS= read -r -d '' arg0 <"/proc/$pid/cmdline" 2>/dev/null || true
    [ "$(basename -- "$arg0")" = "$2" ] || return 1
    echo "$pid"
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

cmd_start() {
    local entry pid bin started=0
    mkdir -p "$LOG_DIR" "$RUN_DIR"
    ensure_secrets
    for entry in "${SERVICES[@]}"; do
        parse "$entry"
        if pid="$(running "$NAME" "$BINARY")"; then
            log "$NAME already running (pid $pid)"
            continue
        fi
        rm -f "$(pid_file "$NAME")"
        bin="$BIN_DIR/$BINARY"
        [ -x "$bin" ] || die "$NAME: $bin not found; build it first (cargo build --bins$([ "$PROFILE" = release ] && echo ' --release'))"
        if port_open "$HTTP_PORT"; then
            die "$NAME: port $HTTP_PORT is already in use by a process not started by services.sh"
        fi
        local envs=()
        mapfile -t envs < <(instance_env)
        local kv
        for kv in "${envs[@]}"; do
            if [[ "$kv" == CHATVAULT_NODE_DATA_DIR=* ]]; then mkdir -p "${kv#*=}"; fi
        done
        printf '\n===== services.sh: starting %s at %s =====\n' "$NAME" "$(date -Is)" >>"$LOG_DIR/$NAME.log"
        (
            cd "$ROOT"
            # Secrets go through the environment (readable only by this user in
            # /proc/<pid>/environ), never through a command line anyone can list.
            export CHATVAULT_JWT_SECRET="$JWT_SECRET"
            if [ "$NAME" = "users" ]; then export CHATVAULT_USERS_BOOTSTRAP_ADMIN="$BOOTSTRAP_ADMIN"; fi
            case "$NAME" in bot|bot-worker-*) ensure_bot_token_key ;; esac
            database_url_env "$NAME"
            exec setsid env RUST_LOG="${RUST_LOG:-info}" RUST_BACKTRACE="${RUST_BACKTRACE:-1}" \
                ${envs[@]+"${envs[@]}"} "$bin" </dev/null >>"$LOG_DIR/$NAME.log" 2>&1
        ) &
        echo $! >"$(pid_file "$NAME")"
        log "$NAME started (pid $!, http 127.0.0.1:$HTTP_PORT, log .state/logs/$NAME.log)"
        started=$((started + 1))
    done
    log "start: $started started, $((${#SERVICES[@]} - started)) already running"
}

cmd_stop() {
    # SIGTERM to all (reverse start order), then wait for all together up to
    # STOP_GRACE_SECONDS, then SIGKILL whatever is left.
    local i pid names=() pids=() left
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
        parse "${SERVICES[$i]}"
        if pid="$(running "$NAME" "$BINARY")"; then
            kill -TERM "$pid" 2>/dev/null || true
            names+=("$NAME"); pids+=("$pid")
        else
            rm -f "$(pid_file "$NAME")"
            log "$NAME not running"
        fi
    done
    local deadline=$((SECONDS + STOP_GRACE_SECONDS))
    while :; do
        left=0
        for pid in ${pids[@]+"${pids[@]}"}; do proc_live "$pid" && left=$((left + 1)); done
        [ "$left" -eq 0 ] && break
        [ "$SECONDS" -ge "$deadline" ] && break
        sleep 0.25
    done
    for i in ${pids[@]+"${!pids[@]}"}; do
        pid="${pids[$i]}"
        if proc_live "$pid"; then
            log "${names[$i]} (pid $pid) still running after ${STOP_GRACE_SECONDS}s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for i in ${pids[@]+"${!pids[@]}"}; do
        pid="${pids[$i]}"
        local j
        for ((j = 0; j < 40; j++)); do proc_live "$pid" || break; sleep 0.25; done
        proc_live "$pid" && die "${names[$i]} (pid $pid) survived SIGKILL"
        rm -f "$(pid_file "${names[$i]}")"
        log "${names[$i]} stopped (pid $pid)"
    done
}

cmd_status() {
    local entry pid ok=0 health body stuck
    for entry in "${SERVICES[@]}"; do
        parse "$entry"
        if pid="$(running "$NAME" "$BINARY")"; then
            body="$(curl -s -m 2 -w '\n%{http_code}' "http://127.0.0.1:$HTTP_PORT/healthz" || true)"
            health="${body##*$'\n'}"
            body="${body%$'\n'*}"
            log "$NAME: running (pid $pid, /healthz ${health:-000})"
            if [ "$health" != "200" ]; then
                ok=1
                # A stuck projection names itself and its last error in the body.
                if command -v jq >/dev/null 2>&1 && stuck="$(jq -r '.projections // {} | to_entries[] | select(.value.failing_since != null) | "  projection \(.key): failing since \(.value.failing_since) (\(.value.failed_attempts) attempts): \(.value.last_error)"' <<<"$body" 2>/dev/null)" && [ -n "$stuck" ]; then
                    printf '%s\n' "$stuck"
                fi
            fi
        else
            log "$NAME: stopped"
            ok=1
        fi
    done
    return "$ok"
}

cmd_wait() {
    command -v curl >/dev/null 2>&1 || die "curl missing (run scripts/tools.sh)"
    local deadline=$((SECONDS + WAIT_TIMEOUT_SECONDS)) entry code failed=0
    for entry in "${SERVICES[@]}"; do
        parse "$entry"
        while :; do
            code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/healthz" || true)"
            if [ "$code" = "200" ]; then
                log "$NAME healthy (http://127.0.0.1:$HTTP_PORT/healthz)"
                break
            fi
            if ! running "$NAME" "$BINARY" >/dev/null; then
                code="exited"
            elif [ "$SECONDS" -lt "$deadline" ]; then
                sleep 0.5
                continue
            fi
            if [ "$code" = "exited" ]; then
                printf 'services: ERROR: %s exited; last lines of .state/logs/%s.log:\n' "$NAME" "$NAME" >&2
            else
                printf 'services: ERROR: %s not healthy within %ss (last answer: %s); last lines of .state/logs/%s.log:\n' \
                    "$NAME" "$WAIT_TIMEOUT_SECONDS" "${code:-none}" "$NAME" >&2
            fi
            tail -n 40 "$LOG_DIR/$NAME.log" >&2 2>/dev/null || true
            failed=1
            break
        done
    done
    [ "$failed" -eq 0 ] || die "some services are not healthy"
    log "all ${#SERVICES[@]} services healthy"
    register_storage_nodes
}

# register_storage_nodes: registers every storage-node-<i> with storage (harmless when
# already registered), so uploads can place parts on them.
register_storage_nodes() {
    local entry cli="$BIN_DIR/chatvault"
    # Registering nodes needs the admin role: log in as the first admin with a session of
    # its own (not the user's ~/.config/chatvault).
    export XDG_CONFIG_HOME="$STATE/admin-cli"
    admin_login >/dev/null
    for entry in "${SERVICES[@]}"; do
        parse "$entry"
        [[ "$NAME" =~ ^storage-node-([0-9]+)$ ]] || continue
        "$cli" nodes add "127.0.0.1:$((50100 + BASH_REMATCH[1]))" | sed 's/^/services: /' \
            || die "registering $NAME failed"
    done
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    secrets) ensure_secrets; log "secrets ready in $SECRETS_DIR" ;;
    wait) cmd_wait ;;
    login) admin_login ;;
    *) echo "usage: $0 start|stop|status|wait|login|secrets" >&2; exit 2 ;;
esac
