#!/usr/bin/env bash
# Installs the developer tools chatvault's scripts need, only when missing:
#   kcat, curl, jq           Debian packages (apt-get)
#   chromium, chromedriver   Debian packages chromium and chromium-driver, only with
#                            CHATVAULT_TOOLS_BROWSER=1 (scripts/test.sh: the web pages are
#                            tested in headless Chromium through WebDriver)
#   cmake, g++, make,        Debian packages; needed to build rdkafka (cmake-build)
#   pkg-config, zlib1g-dev
#   grpcurl, task, helm      go install (pinned versions below) into $(go env GOPATH)/bin
#   pyarrow, duckdb          pip, into the virtual environment .state/python (the backup
#                            interop tests and benchmark read and write Parquet with them)
#   moto[server]             pip, same venv: an S3 server for the backup-to-bucket tests
#                            (python -m moto.server -p PORT)
#
# Go binaries land in $(go env GOPATH)/bin, which is often not on PATH: scripts
# that need them add it themselves; the hint is printed at the end.
set -euo pipefail

GRPCURL_VERSION="v1.9.4"   # github.com/fullstorydev/grpcurl
TASK_VERSION="v3.54.0"     # github.com/go-task/task/v3
HELM_VERSION="v3.22.0"     # helm.sh/helm/v3: lint and render the Kubernetes chart (deploy/helm)
PYARROW_VERSION="26.0.1"
DUCKDB_VERSION="2.0.0"
MOTO_VERSION="5.2.5"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ORIG_PATH="$PATH"

log() { printf 'tools: %s\n' "$*"; }
die() { printf 'tools: ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) to run: $*"; fi
}

APT_UPDATED=0
apt_update_once() {
    [ "$APT_UPDATED" -eq 1 ] && return 0
    log "apt-get update"
    apt_run update || die "apt-get update failed"
    APT_UPDATED=1
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

# apt_install PKG...: 'apt-get update' only when a package has no candidate in
# the current lists, or when the first install attempt fails (stale lists).
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install manually: $*"
    local p
    for p in "$@"; do
        if ! has_candidate "$p"; then apt_update_once; break; fi
    done
    log "apt-get install -y $*"
    if ! apt_run install -y "$@"; then
        [ "$APT_UPDATED" -eq 1 ] && die "apt-get install $* failed"
        apt_update_once
        apt_run install -y "$@" \
            || die "apt-get install $* failed"
    fi
}

deb_installed() {
    local st
    st="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)"
    [ "$st" = "install ok installed" ]
}

# ---- Debian packages --------------------------------------------------------
missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v flock >/dev/null 2>&1 || missing+=(util-linux)
if command -v dpkg-query >/dev/null 2>&1 && ! deb_installed zlib1g-dev; then missing+=(zlib1g-dev); fi
if [ "${CHATVAULT_TOOLS_BROWSER:-0}" = "1" ]; then
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
fi
kcat_version="$(kcat -V 2>&1 || true)"
kcat_version="$(sed -n 's/^Version \([^ ]*\).*/\1/p' <<<"$kcat_version")"
log "kcat: ${kcat_version:-?} ($(command -v kcat))"

# ---- Go tools ---------------------------------------------------------------
if ! command -v go >/dev/null 2>&1; then
    [ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
    log "go not found; installing Debian's golang-go"
    apt_install golang-go
fi
GOBIN_DIR="$(go env GOPATH)/bin"
export PATH="$GOBIN_DIR:$PATH"

# go_tool NAME PACKAGE MODULE VERSION [LDFLAGS]: install when the binary is
# missing or was built from another module version (read with 'go version -m').
go_tool() {
    local name="$1" pkg="$2" mod="$3" version="$4" ldflags="${5:-}" have=""
    if [ -x "$GOBIN_DIR/$name" ]; then
        have="$(go version -m "$GOBIN_DIR/$name" 2>/dev/null | awk -v m="$mod" '$1 == "mod" && $2 == m { print $3 }')"
    fi
    if [ "$have" = "$version" ]; then
        log "$name $version: $GOBIN_DIR/$name"
        return 0
    fi
    log "$name: go install $pkg@$version (a few minutes the first time)"
    # Build from / so that no go.mod in the current folder is involved.
    (cd / && go install ${ldflags:+-ldflags "$ldflags"} "$pkg@$version") \
        || die "go install $pkg@$version failed"
    log "$name $version: $GOBIN_DIR/$name"
}

# grpcurl's release builds stamp main.version; do the same so --version is useful.
go_tool grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl github.com/fullstorydev/grpcurl \
    "$GRPCURL_VERSION" "-X main.version=$GRPCURL_VERSION"
go_tool task github.com/go-task/task/v3/cmd/task github.com/go-task/task/v3 "$TASK_VERSION"
# helm stamps its version the same way (helm version).
go_tool helm helm.sh/helm/v3/cmd/helm helm.sh/helm/v3 "$HELM_VERSION" "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"

# Python with pyarrow, duckdb and moto in .state/python (own venv: no system packages touched).
PY_ENV="$ROOT/.state/python"
py_ready() {
    [ -x "$PY_ENV/bin/python" ] && "$PY_ENV/bin/python" - "$PYARROW_VERSION" "$DUCKDB_VERSION" "$MOTO_VERSION" <<'PY' 2>/dev/null
import sys, pyarrow, duckdb, moto, moto.server
have = (pyarrow.__version__, duckdb.__version__, moto.__version__)
sys.exit(0 if have == tuple(sys.argv[1:4]) else 1)
PY
}
if py_ready; then
    log "python: pyarrow $PYARROW_VERSION, duckdb $DUCKDB_VERSION, moto $MOTO_VERSION in $PY_ENV"
else
    command -v python3 >/dev/null 2>&1 || apt_install python3
    if ! python3 -m venv "$PY_ENV" >/dev/null 2>&1; then
        apt_install python3-venv
        python3 -m venv "$PY_ENV" || die "python3 -m venv failed"
    fi
    log "python: pip install pyarrow==$PYARROW_VERSION duckdb==$DUCKDB_VERSION moto[server]==$MOTO_VERSION into $PY_ENV"
    "$PY_ENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "pyarrow==$PYARROW_VERSION" "duckdb==$DUCKDB_VERSION" "moto[server]==$MOTO_VERSION" || die "pip install failed"
    py_ready || die "pyarrow/duckdb/moto not importable from $PY_ENV"
fi

case ":$ORIG_PATH:" in
    *":$GOBIN_DIR:"*) ;;
    *) log "hint: export PATH=\"$GOBIN_DIR:\$PATH\"   (grpcurl, task and helm live there)" ;;
esac
log "all tools present (repo: $ROOT)"
