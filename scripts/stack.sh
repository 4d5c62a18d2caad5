#!/usr/bin/env bash
# chatvault local stack: PostgreSQL on 127.0.0.1:5432 and a single-node KRaft
# Apache Kafka 4.4.0 on 127.0.0.1:9092, without Docker.
#
#   scripts/stack.sh up       start what is not running (idempotent; fast when up)
#   scripts/stack.sh down     stop what this script started
#   scripts/stack.sh status   print state; exit 0 when Kafka and PostgreSQL are up
#   scripts/stack.sh reset    down, wipe Kafka data + chatvault databases +
#                             .state/nodes, then up
#
# All state lives in <repo>/.state (gitignored):
#   .state/kafka/libs               Kafka jars resolved by Maven (scripts/kafka/pom.xml)
#   .state/kafka/data               KRaft log dirs (formatted once)
#   .state/kafka/server.properties  generated broker config
#   .state/kafka/cluster.id         KRaft cluster id (generated once)
#   .state/logs/kafka.log           broker stdout/stderr
#   .state/run/kafka.pid            pid of the broker we started
#   .state/run/postgres.started     marker: this script started the PostgreSQL cluster
#   .state/secrets/postgres-<role>  the password of each chatvault role (generated once, 0600)
#   .state/run/postgres.created     marker: this script installed PostgreSQL or created
#                                   the cluster, so it may configure it (max_connections)
#
# A PostgreSQL cluster this script did not create is never reconfigured or restarted:
# what chatvault needs goes on its own roles (db-init/: synchronous_commit per role).
#
# Environment knobs (all optional):
#   KAFKA_START_TIMEOUT  seconds to wait for the broker (default 90)
#   KAFKA_HEAP_OPTS      JVM heap options (default "-Xms256m -Xmx768m")
#   PG_START_TIMEOUT     seconds to wait for PostgreSQL (default 60)
#   CHATVAULT_PG_ADMIN_URL  superuser URL used for db-init when the server on
#                        5432 is not the local Debian cluster (e.g. Docker's:
#                        postgres://postgres:postgres@127.0.0.1:5432/postgres)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.state"
KAFKA_DIR="$STATE/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_CLUSTER_ID_FILE="$KAFKA_DIR/cluster.id"
KAFKA_POM="$ROOT/scripts/kafka/pom.xml"
KAFKA_LOG4J="$ROOT/scripts/kafka/log4j2.properties"
LOG_DIR="$STATE/logs"
RUN_DIR="$STATE/run"
KAFKA_LOG="$LOG_DIR/kafka.log"
KAFKA_PID="$RUN_DIR/kafka.pid"
PG_STARTED="$RUN_DIR/postgres.started"
PG_CREATED="$RUN_DIR/postgres.created"
SECRETS_DIR="$STATE/secrets"
NODES_DIR="$STATE/nodes"
DB_INIT_DIR="$ROOT/db-init"

KAFKA_HOST=127.0.0.1
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
PG_HOST=127.0.0.1
PG_PORT=5432
# The per-service databases created by db-init/ (role = database = password).
CHATVAULT_DBS=(storage users audit backup web bot)
# max_connections for a cluster this script manages (Debian's default is 100;
# 5 services + 6 storage nodes with connection pools + tests need more).
PG_MAX_CONNECTIONS=300

KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
PG_START_TIMEOUT="${PG_START_TIMEOUT:-60}"

log() { printf 'stack: %s\n' "$*"; }
die() { printf 'stack: ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers ---

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) to run: $*"; fi
}

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@")
    elif command -v sudo >/dev/null 2>&1; then (cd / && sudo -u postgres "$@")
    else die "need root (or sudo) to run as postgres: $*"; fi
}

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# apt_run ARGS...: apt-get quietly; its output is shown only when it fails.
apt_run() {
    local out rc=0
    out="$(mktemp)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@" >"$out" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || tail -n 20 "$out" >&2
    rm -f "$out"
    return "$rc"
}

# has_candidate PKG: the current apt lists know an installable version of PKG.
# (No 'apt-cache | grep -q': with pipefail an early grep exit fails the pipe.)
has_candidate() {
    local out
    out="$(apt-cache policy "$1" 2>/dev/null || true)"
    [[ "$out" =~ Candidate:\ [^\(] ]]
}

# apt_install PKG...: install Debian packages; 'apt-get update' only when a
# package has no install candidate yet or the first install attempt fails.
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install manually: $*"
    local need_update=0 p
    for p in "$@"; do
        if ! has_candidate "$p"; then need_update=1; fi
    done
    if [ "$need_update" -eq 1 ]; then
        log "apt-get update"
        apt_run update || die "apt-get update failed"
    fi
    log "apt-get install -y $*"
    if ! apt_run install -y "$@"; then
        [ "$need_update" -eq 1 ] && die "apt-get install $* failed"
        log "apt-get install failed; retrying after apt-get update"
        apt_run update || die "apt-get update failed"
        apt_run install -y "$@" \
            || die "apt-get install $* failed"
    fi
}

ensure_kcat() {
    command -v kcat >/dev/null 2>&1 || apt_install kcat
}

# proc_live PID: true while the process exists and is not a zombie (PID 1 may
# take a while to reap orphans here).
proc_live() {
    local st
    st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [ -n "$st" ] && [ "$st" != "Z" ]
}

# pid_alive PIDFILE PATTERN: true when the pid in PIDFILE runs and its command
# line contains PATTERN (guards against a recycled pid).
pid_alive() {
    local f="$1" pat="$2" pid
    [ -f "$f" ] || return 1
    pid="$(cat "$f" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    local cmdline
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *"$pat"* ]]
}

# ------------------------------------------------------------- PostgreSQL ---

# Highest PostgreSQL major version whose server is installed (Debian layout).
pg_version() {
    local d v best=""
    for d in /usr/lib/postgresql/*/bin/postgres; do
        [ -x "$d" ] || continue
        v="${d#/usr/lib/postgresql/}"; v="${v%%/*}"
        if [ -z "$best" ] || [ "$(printf '%s\n%s\n' "$best" "$v" | sort -V | tail -n1)" = "$v" ]; then best="$v"; fi
    done
    [ -n "$best" ] && echo "$best"
}

pg_ready() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2 >/dev/null 2>&1
    else
        port_open "$PG_HOST" "$PG_PORT"
    fi
}

pg_wait() {
    local deadline=$((SECONDS + PG_START_TIMEOUT))
    until pg_ready; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            local v; v="$(pg_version || true)"
            [ -n "$v" ] && tail -n 30 "/var/log/postgresql/postgresql-$v-main.log" >&2 2>/dev/null || true
            die "postgresql did not accept connections on $PG_HOST:$PG_PORT within ${PG_START_TIMEOUT}s"
        fi
        sleep 0.5
    done
}

# True when the server on PG_PORT is a local Debian cluster reachable over its
# Unix socket as the postgres OS user (peer authentication).
pg_local_socket() {
    id postgres >/dev/null 2>&1 && [ -S "/var/run/postgresql/.s.PGSQL.$PG_PORT" ]
}

# Runs psql as superuser with the given arguments (stdin passes through).
pg_super_psql() {
    if [ -n "${CHATVAULT_PG_ADMIN_URL:-}" ]; then
        psql "$CHATVAULT_PG_ADMIN_URL" -X -q -v ON_ERROR_STOP=1 "$@"
    elif pg_local_socket; then
        as_postgres psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -p "$PG_PORT" "$@"
    else
        # Docker's postgres:15 with the password from docker-compose.kafka.yml.
        PGPASSWORD=postgres psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -X -q -v ON_ERROR_STOP=1 "$@"
    fi
}

pg_install() {
    if [ -z "$(pg_version || true)" ]; then
        log "postgresql not installed; installing Debian's postgresql"
        apt_install postgresql
        [ -n "$(pg_version || true)" ] || die "postgresql installed but no server under /usr/lib/postgresql"
        # The package's main cluster exists because of this install: it is ours to tune.
        mkdir -p "$RUN_DIR"
        pg_version >"$PG_CREATED"
    fi
    command -v psql >/dev/null 2>&1 || apt_install postgresql-client
}

pg_start_local() {
    local v; v="$(pg_version)"
    if [ ! -d "/etc/postgresql/$v/main" ]; then
        log "creating postgresql $v cluster 'main' on port $PG_PORT"
        as_root pg_createcluster --port "$PG_PORT" "$v" main >/dev/null \
            || die "pg_createcluster $v main failed"
        mkdir -p "$RUN_DIR"
        echo "$v" >"$PG_CREATED"
    fi
    local port
    port="$(as_root pg_conftool -s "$v" main show port 2>/dev/null || echo "$PG_PORT")"
    [ "$port" = "$PG_PORT" ] \
        || die "postgresql cluster $v/main is configured for port $port, expected $PG_PORT (edit /etc/postgresql/$v/main/postgresql.conf)"
    if as_root pg_ctlcluster "$v" main status >/dev/null 2>&1; then
        # e.g. the package's postinst started it right after our apt-get install
        log "postgresql $v/main is already running; waiting for it"
    else
        log "starting postgresql $v/main (pg_ctlcluster $v main start)"
        # 9>&-: the postmaster must not inherit the stack.sh lock.
        as_root pg_ctlcluster "$v" main start 9>&- \
            || { tail -n 30 "/var/log/postgresql/postgresql-$v-main.log" >&2 2>/dev/null || true;
                 die "pg_ctlcluster $v main start failed"; }
    fi
    mkdir -p "$RUN_DIR"
    echo "$v" >"$PG_STARTED"
    pg_wait
}

# Tuning of the cluster: only one this script installed or created (marker
# $PG_CREATED). Any other cluster is left exactly as it is; when it allows too few
# connections for the services and the tests, say so.
pg_tune_local() {
    local v mc
    mc="$(pg_super_psql -d postgres -At -c 'SHOW max_connections')"
    [ "$mc" -lt "$PG_MAX_CONNECTIONS" ] || return 0
    v="$(cat "$PG_CREATED" 2>/dev/null || true)"
    if [ -z "$v" ] || [ -n "${CHATVAULT_PG_ADMIN_URL:-}" ] || ! pg_local_socket; then
        log "postgresql: max_connections is $mc (chatvault's services and tests want $PG_MAX_CONNECTIONS); this cluster was not created by stack.sh, so it is left as it is: raise it yourself if connections run out"
        return 0
    fi
    pg_super_psql -d postgres -c "ALTER SYSTEM SET max_connections = $PG_MAX_CONNECTIONS" >/dev/null
    log "postgresql: max_connections $mc -> $PG_MAX_CONNECTIONS on the cluster stack.sh created (restarting $v/main)"
    as_root pg_ctlcluster "$v" main restart 9>&- || die "pg_ctlcluster $v main restart failed"
    pg_wait
}

pg_apply_init() {
    local f n=0
    shopt -s nullglob
    for f in "$DB_INIT_DIR"/*.sql; do
        pg_super_psql -d postgres -f - <"$f" >/dev/null || die "db-init: $(basename "$f") failed"
        n=$((n + 1))
    done
    shopt -u nullglob
    log "postgresql: applied $n db-init file(s); databases: ${CHATVAULT_DBS[*]}"
}

# pg_role_passwords: gives each chatvault role a password of its own, generated once into
# .state/secrets/postgres-<role> (0600, folder 0700) and set on every `up`, so no role keeps
# a password anyone could guess. services.sh and the tests read the files.
pg_role_passwords() {
    local r file password
    (umask 077; mkdir -p "$SECRETS_DIR")
    chmod 700 "$SECRETS_DIR"
    for r in "${CHATVAULT_DBS[@]}"; do
        file="$SECRETS_DIR/postgres-$r"
        if [ ! -s "$file" ]; then
            # Hex: safe inside a postgres:// URL without escaping.
            password="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
            [ "${#password}" -eq 48 ] || die "could not read 24 random bytes for the $r role"
            (umask 077; printf '%s\n' "$password" >"$file.tmp") && mv "$file.tmp" "$file"
            log "postgresql: generated the $r role's password into .state/secrets/postgres-$r"
        fi
        password="$(head -n1 "$file")"
        printf "ALTER ROLE %s PASSWORD :'password';\n" "$r" | pg_super_psql -d postgres -v password="$password" -f - >/dev/null \
            || die "setting the $r role's password failed"
    done
}

pg_up() {
    if pg_ready; then
        log "postgresql already up on $PG_HOST:$PG_PORT"
    else
        if port_open "$PG_HOST" "$PG_PORT"; then
            log "something listens on $PG_HOST:$PG_PORT; waiting for it to accept connections"
        else
            pg_install
            pg_start_local
        fi
        pg_wait
        log "postgresql up on $PG_HOST:$PG_PORT"
    fi
    command -v psql >/dev/null 2>&1 || pg_install
    pg_tune_local
    pg_apply_init
    pg_role_passwords
}

pg_down() {
    if [ -f "$PG_STARTED" ]; then
        local v; v="$(cat "$PG_STARTED")"
        [ -n "$v" ] || v="$(pg_version)"
        if as_root pg_ctlcluster "$v" main status >/dev/null 2>&1; then
            log "stopping postgresql $v/main"
            as_root pg_ctlcluster "$v" main stop -m fast || die "pg_ctlcluster $v main stop failed"
            log "postgresql stopped"
        else
            log "postgresql $v/main not running"
        fi
        rm -f "$PG_STARTED"
    elif pg_ready; then
        log "postgresql on $PG_HOST:$PG_PORT was not started by stack.sh; leaving it running"
    else
        log "postgresql not running"
    fi
}

pg_drop_chatvault_dbs() {
    local d list
    for d in "${CHATVAULT_DBS[@]}"; do
        log "postgresql: dropping database $d"
        pg_super_psql -d postgres -c "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)" >/dev/null
    done
    # Leftover per-test databases (test_<uuid>) created by the test suite.
    list="$(pg_super_psql -d postgres -At -c "SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%'")"
    if [ -n "$list" ]; then
        log "postgresql: dropping $(echo "$list" | wc -l) leftover test_* database(s)"
        while IFS= read -r d; do
            [ -n "$d" ] && pg_super_psql -d postgres -c "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)" >/dev/null
        done <<<"$list"
    fi
}

# ------------------------------------------------------------------ Kafka ---

kafka_ready() {
    command -v kcat >/dev/null 2>&1 || return 1
    timeout 10 kcat -b "$KAFKA_HOST:$KAFKA_PORT" -L -m 3 >/dev/null 2>&1
}

ensure_java() {
    command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
    local major
    major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
    [ -n "$major" ] && [ "${major%%.*}" -ge 17 ] 2>/dev/null \
        || die "Kafka 4.4 needs Java 17+, found '${major:-unknown}' ($(command -v java))"
}

kafka_libs() {
    local stamp_file="$KAFKA_LIBS/.pom.sha256" want have=""
    want="$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)"
    [ -f "$stamp_file" ] && have="$(cat "$stamp_file")"
    if [ -d "$KAFKA_LIBS" ] && [ "$want" = "$have" ] && [ -f "$KAFKA_LIBS/kafka_2.13-4.4.0.jar" ]; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || apt_install maven
    log "kafka: resolving Apache Kafka 4.4.0 jars with Maven into .state/kafka/libs"
    local tmp="$KAFKA_DIR/libs.tmp"
    rm -rf "$tmp"
    mkdir -p "$KAFKA_DIR"
    if ! mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies \
            -DoutputDirectory="$tmp" -DincludeScope=runtime >"$LOG_DIR/kafka-maven.log" 2>&1; then
        tail -n 30 "$LOG_DIR/kafka-maven.log" >&2
        die "kafka: maven could not resolve the Kafka jars (log: .state/logs/kafka-maven.log)"
    fi
    [ -f "$tmp/kafka_2.13-4.4.0.jar" ] || die "kafka: kafka_2.13-4.4.0.jar missing after Maven resolution"
    echo "$want" >"$tmp/.pom.sha256"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    log "kafka: $(ls "$KAFKA_LIBS"/*.jar | wc -l) jars in .state/kafka/libs"
}

kafka_java() {
    java -Dlog4j2.configurationFile="$KAFKA_LOG4J" -cp "$KAFKA_LIBS/*" "$@"
}

kafka_write_props() {
    local tmp="$KAFKA_PROPS.tmp"
    cat >"$tmp" <<EOF
# Generated by scripts/stack.sh -- do not edit (rewritten on every 'up').
# Single combined KRaft node (broker + controller) for local development and tests.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
delete.topic.enable=true
# One broker: every internal topic must have replication factor 1, otherwise
# consumer groups and transactions never become available.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=3
num.io.threads=4
log.retention.hours=168
log.segment.bytes=268435456
EOF
    if [ -f "$KAFKA_PROPS" ] && cmp -s "$tmp" "$KAFKA_PROPS"; then
        rm -f "$tmp"
    else
        mv "$tmp" "$KAFKA_PROPS"
    fi
}

kafka_format() {
    [ -f "$KAFKA_DATA/meta.properties" ] && return 0
    local cid
    if [ -s "$KAFKA_CLUSTER_ID_FILE" ]; then
        cid="$(cat "$KAFKA_CLUSTER_ID_FILE")"
    else
        cid="$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1 | tr -d '[:space:]')"
        [[ "$cid" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "kafka: could not generate a cluster id (got '$cid')"
        echo "$cid" >"$KAFKA_CLUSTER_ID_FILE"
    fi
    log "kafka: formatting KRaft storage in .state/kafka/data (cluster id $cid)"
    mkdir -p "$KAFKA_DATA"
    if ! kafka_java kafka.tools.StorageTool format --standalone -t "$cid" -c "$KAFKA_PROPS" \
            >>"$KAFKA_LOG" 2>&1; then
        tail -n 20 "$KAFKA_LOG" >&2
        die "kafka: storage format failed"
    fi
}

kafka_start() {
    log "kafka: starting Apache Kafka 4.4.0 (log: .state/logs/kafka.log)"
    printf '\n===== stack.sh: starting kafka at %s =====\n' "$(date -Is)" >>"$KAFKA_LOG"
    local heap
    read -r -a heap <<<"$KAFKA_HEAP_OPTS"
    # setsid: own session, so the broker survives the shell/job that started it.
    (
        cd "$KAFKA_DIR"
        exec 9>&-   # do not hand the stack.sh lock to the broker
        exec setsid nohup java "${heap[@]}" \
            -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
            -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
            -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
            -Dkafka.logs.dir="$LOG_DIR" \
            -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
            </dev/null >>"$KAFKA_LOG" 2>&1
    ) &
    echo $! >"$KAFKA_PID"
}

kafka_wait() {
    local deadline=$((SECONDS + KAFKA_START_TIMEOUT)) pid
    pid="$(cat "$KAFKA_PID")"
    until kafka_ready; do
        if ! pid_alive "$KAFKA_PID" kafka.Kafka; then
            echo "----- last lines of .state/logs/kafka.log -----" >&2
            tail -n 40 "$KAFKA_LOG" >&2
            rm -f "$KAFKA_PID"
            die "kafka: broker process $pid exited during startup (see .state/logs/kafka.log)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "----- last lines of .state/logs/kafka.log -----" >&2
            tail -n 40 "$KAFKA_LOG" >&2
            die "kafka: broker (pid $pid) did not accept clients on $KAFKA_HOST:$KAFKA_PORT within ${KAFKA_START_TIMEOUT}s"
        fi
        sleep 1
    done
}

kafka_up() {
    ensure_kcat
    if pid_alive "$KAFKA_PID" kafka.Kafka; then
        if kafka_ready; then
            log "kafka already up on $KAFKA_HOST:$KAFKA_PORT (pid $(cat "$KAFKA_PID"))"
            return 0
        fi
        log "kafka: broker pid $(cat "$KAFKA_PID") is starting; waiting"
        kafka_wait
        log "kafka up on $KAFKA_HOST:$KAFKA_PORT (pid $(cat "$KAFKA_PID"))"
        return 0
    fi
    rm -f "$KAFKA_PID"
    if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
        local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
        until kafka_ready; do
            [ "$SECONDS" -lt "$deadline" ] \
                || die "kafka: something listens on $KAFKA_HOST:$KAFKA_PORT but does not answer Kafka metadata requests"
            sleep 1
        done
        log "kafka: using the existing broker on $KAFKA_HOST:$KAFKA_PORT (not started by stack.sh)"
        return 0
    fi
    if port_open "$KAFKA_HOST" "$KAFKA_CONTROLLER_PORT"; then
        die "kafka: port $KAFKA_CONTROLLER_PORT (KRaft controller) is taken by another process"
    fi
    ensure_java
    kafka_libs
    kafka_write_props
    kafka_format
    kafka_start
    kafka_wait
    log "kafka up on $KAFKA_HOST:$KAFKA_PORT (pid $(cat "$KAFKA_PID"))"
}

kafka_down() {
    if pid_alive "$KAFKA_PID" kafka.Kafka; then
        local pid i
        pid="$(cat "$KAFKA_PID")"
        log "kafka: stopping broker (pid $pid, SIGTERM)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 60; i++)); do
            proc_live "$pid" || break
            sleep 0.5
        done
        if proc_live "$pid"; then
            log "kafka: broker still running after 30s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 20; i++)); do proc_live "$pid" || break; sleep 0.25; done
        fi
        rm -f "$KAFKA_PID"
        log "kafka stopped"
    else
        rm -f "$KAFKA_PID"
        if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
            log "kafka on $KAFKA_HOST:$KAFKA_PORT was not started by stack.sh; leaving it running"
        else
            log "kafka not running"
        fi
    fi
}

# The services' fixed gRPC ports (ingest..bot workers 50051-50060, storage nodes 50101-50199) lie in
# Linux's ephemeral range (32768-60999): the kernel may hand one to an outgoing connection
# (a service's PostgreSQL connection, say), and the service that owns it then cannot bind.
# Reserving them keeps them free; best effort (needs root, and a writable sysctl).
CHATVAULT_RESERVED_PORTS="50051-50060,50101-50199"
reserve_service_ports() {
    local file=/proc/sys/net/ipv4/ip_local_reserved_ports current
    [ -r "$file" ] || return 0
    current="$(cat "$file")"
    case ",$current," in *",$CHATVAULT_RESERVED_PORTS,"*) return 0 ;; esac
    local wanted="$CHATVAULT_RESERVED_PORTS"
    [ -n "$current" ] && wanted="$current,$CHATVAULT_RESERVED_PORTS"
    if as_root sh -c "echo '$wanted' > $file" 2>/dev/null; then
        log "reserved the services' ports $CHATVAULT_RESERVED_PORTS (net.ipv4.ip_local_reserved_ports)"
    else
        log "WARNING: could not reserve ports $CHATVAULT_RESERVED_PORTS; a service may find its port taken by an outgoing connection"
    fi
}

# --------------------------------------------------------------- commands ---

cmd_up() {
    local t0=$SECONDS
    reserve_service_ports
    pg_up
    kafka_up
    log "stack up in $((SECONDS - t0))s (postgresql $PG_HOST:$PG_PORT, kafka $KAFKA_HOST:$KAFKA_PORT)"
}

cmd_down() {
    kafka_down
    pg_down
}

cmd_status() {
    local ok=0 t
    if kafka_ready; then
        if pid_alive "$KAFKA_PID" kafka.Kafka; then
            log "kafka: up on $KAFKA_HOST:$KAFKA_PORT (pid $(cat "$KAFKA_PID"), started by stack.sh)"
        else
            log "kafka: up on $KAFKA_HOST:$KAFKA_PORT (external)"
        fi
    elif ! command -v kcat >/dev/null 2>&1 && port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
        log "kafka: port $KAFKA_PORT open (kcat missing, cannot verify; run scripts/tools.sh)"
        ok=1
    else
        log "kafka: DOWN"
        ok=1
    fi
    if pg_ready; then
        if [ -f "$PG_STARTED" ]; then
            log "postgresql: up on $PG_HOST:$PG_PORT (started by stack.sh)"
        else
            log "postgresql: up on $PG_HOST:$PG_PORT"
        fi
    else
        log "postgresql: DOWN"
        ok=1
    fi
    local gobin=""
    command -v go >/dev/null 2>&1 && gobin="$(go env GOPATH 2>/dev/null)/bin"
    for t in kcat grpcurl task psql java; do
        if command -v "$t" >/dev/null 2>&1; then
            log "tool $t: $(command -v "$t")"
        elif [ -n "$gobin" ] && [ -x "$gobin/$t" ]; then
            log "tool $t: $gobin/$t (add $gobin to PATH)"
        else
            log "tool $t: missing (run scripts/tools.sh)"
        fi
    done
    return "$ok"
}

cmd_reset() {
    cmd_down
    if [ -d "$KAFKA_DATA" ]; then
        log "kafka: deleting .state/kafka/data (jars kept)"
        rm -rf "$KAFKA_DATA"
    fi
    if [ -d "$NODES_DIR" ]; then
        log "deleting .state/nodes (storage node data)"
        rm -rf "$NODES_DIR"
    fi
    if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
        log "WARNING: an external Kafka on $KAFKA_HOST:$KAFKA_PORT keeps its topics; reset it yourself"
    fi
    pg_up_quiet_drop
    cmd_up
}

# Bring PostgreSQL up and drop the chatvault databases (cmd_up re-creates them).
pg_up_quiet_drop() {
    if ! pg_ready; then
        if port_open "$PG_HOST" "$PG_PORT"; then pg_wait; else pg_install; pg_start_local; fi
    fi
    pg_drop_chatvault_dbs
}

main() {
    local cmd="${1:-}"
    case "$cmd" in
        up|down|status|reset) ;;
        *) echo "usage: $0 up|down|status|reset" >&2; exit 2 ;;
    esac
    mkdir -p "$STATE" "$LOG_DIR" "$RUN_DIR" "$KAFKA_DIR"
    # One stack.sh at a time (e.g. tests and run-all started together).
    exec 9>"$RUN_DIR/stack.lock"
    if ! flock -w 300 9; then die "another scripts/stack.sh holds .state/run/stack.lock"; fi
    "cmd_$cmd"
}

main "$@"
