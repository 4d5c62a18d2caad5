#!/usr/bin/env bash
# Runs the chatvault services in the background from target/debug
# (CHATVAULT_PROFILE=release: target/release).
#
#   scripts/services.sh start    start every service not already running
#   scripts/services.sh stop     SIGTERM, up to 15 s, then SIGKILL
#   scripts/services.sh status   running / stopped per service (exit 1 if any stopped)
#   scripts/services.sh wait     poll http://127.0.0.1:<http_port>/healthz until 200 (60 s)
#
# Logs: .state/logs/<name>.log, pids: .state/run/<name>.pid.
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
# backup 50055/8085, storage nodes 50101../8101.. .
# Services start in this order and stop in reverse order.
SERVICES=(
    "ingest:chatvault-ingest:8081"
    "storage:chatvault-storage:8082"
    "users:chatvault-users:8083:CHATVAULT_USERS_BOOTSTRAP_ADMIN=@ADMIN@"
    "audit:chatvault-audit:8084"
    "backup:chatvault-backup:8085:CHATVAULT_BACKUP_DIR=@STATE@/backups"
    "storage-node-1:chatvault-storage-node:8101"
    "storage-node-2:chatvault-storage-node:8102"
    "storage-node-3:chatvault-storage-node:8103"
    "storage-node-4:chatvault-storage-node:8104"
    "storage-node-5:chatvault-storage-node:8105"
    "storage-node-6:chatvault-storage-node:8106"
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.state"
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
# The first admin of a local install (username:password:email), created by the users
# service when no admin exists; services.sh logs in as it to register the storage nodes.
DEV_ADMIN="${CHATVAULT_DEV_ADMIN:-admin:chatvault-admin-1:admin@localhost}"

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
    local kv
    for kv in ${EXTRA:-}; do
        kv="${kv//@ADMIN@/$DEV_ADMIN}"
        echo "${kv//@STATE@/$STATE}"
    done
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
    local entry pid ok=0 health
    for entry in "${SERVICES[@]}"; do
        parse "$entry"
        if pid="$(running "$NAME" "$BINARY")"; then
            health="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/healthz" || true)"
            log "$NAME: running (pid $pid, /healthz ${health:-000})"
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
    local entry cli="$BIN_DIR/chatvault" admin_user admin_rest admin_password
    # Registering nodes needs the admin role: log in as the bootstrap admin with a session
    # of its own (not the user's ~/.config/chatvault).
    export XDG_CONFIG_HOME="$STATE/admin-cli"
    admin_user="${DEV_ADMIN%%:*}"; admin_rest="${DEV_ADMIN#*:}"; admin_password="${admin_rest%:*}"
    [ -x "$cli" ] || die "$cli not found; build it first (cargo build --bins)"
    "$cli" login --username "$admin_user" --password "$admin_password" >/dev/null || die "admin log-in failed"
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
    wait) cmd_wait ;;
    *) echo "usage: $0 start|stop|status|wait" >&2; exit 2 ;;
esac
