#!/usr/bin/env bash
# Start (or stop) a private Docker engine for the container tests, and make the
# `debian:bookworm-slim` base image locally (no registry can be pulled from here).
#
#   bash scripts/docker-engine.sh start    # install, start dockerd, build the base image
#   bash scripts/docker-engine.sh stop     # stop the dockerd this script started (by its pidfile)
#   bash scripts/docker-engine.sh status   # exit 0 when the engine answers
#   bash scripts/docker-engine.sh env      # print the export lines the tests need
#
# Idempotent: a running engine and an existing base image are reused. Exits non-zero with
# one clear line when the engine cannot start; the docker tests then skip and say why.
set -euo pipefail

STATE_DIR="${QUANTGATE_DOCKER_DIR:-/tmp/quantgate-docker}"
SOCK="$STATE_DIR/docker.sock"
PIDFILE="$STATE_DIR/dockerd.pid"
LOG="$STATE_DIR/dockerd.log"
BASE_TAG="debian:bookworm-slim"
# The apt-installed client (20.10) ships with buildx support for BuildKit; prefer it.
DOCKER_BIN="/usr/bin/docker"

say() { printf 'docker-engine: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

docker_cli() {
    local bin="$DOCKER_BIN"
    [[ -x "$bin" ]] || bin="$(command -v docker || true)"
    [[ -n "$bin" ]] || die "no docker client found"
    DOCKER_HOST="unix://$SOCK" "$bin" "$@"
}

engine_up() { [[ -S "$SOCK" ]] && docker_cli info >/dev/null 2>&1; }

install_packages() {
    local need=()
    command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
    [[ ${#need[@]} -eq 0 ]] && return 0
    [[ "$(id -u)" == 0 ]] || die "need root to apt-get install ${need[*]}"
    command -v apt-get >/dev/null 2>&1 || die "no apt-get on this machine; install ${need[*]} yourself"
    say "installing ${need[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
        || die "apt-get install ${need[*]} failed"
}

start_engine() {
    if engine_up; then
        say "engine already running (socket $SOCK)"
        return 0
    fi
    mkdir -p "$STATE_DIR/data" "$STATE_DIR/exec"
    # A stale pidfile from an engine that died would make dockerd refuse to start.
    if [[ -f "$PIDFILE" ]] && ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        rm -f "$PIDFILE"
    fi
    say "starting dockerd (data root $STATE_DIR/data, log $LOG)"
    setsid dockerd --storage-driver=overlay2 \
        --data-root="$STATE_DIR/data" --exec-root="$STATE_DIR/exec" \
        --pidfile="$PIDFILE" --host="unix://$SOCK" \
        >"$LOG" 2>&1 </dev/null &
    local bg=$! i
    for i in $(seq 1 60); do
        engine_up && { say "engine up after ${i} check(s)"; return 0; }
        # dockerd exits quickly when it cannot run here (no overlayfs, no privileges, ...).
        kill -0 "$bg" 2>/dev/null || break
        sleep 0.5
    done
    say "dockerd did not answer; last lines of $LOG:"
    tail -n 15 "$LOG" >&2 || true
    die "the Docker engine could not start on this machine"
}

apt_mirror() {
    # The first Debian URI the machine's own apt sources name (deb822 or one-line format).
    local uri
    uri="$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)"
    if [[ -z "$uri" ]]; then
        uri="$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '{for (i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' \
            | grep -v -- '-security' | head -n1 || true)"
    fi
    printf '%s' "${uri:-http://deb.debian.org/debian}"
}

build_base() {
    if docker_cli image inspect "$BASE_TAG" >/dev/null 2>&1; then
        say "base image $BASE_TAG already present"
        return 0
    fi
    local rootfs="$STATE_DIR/rootfs" mirror
    mirror="$(apt_mirror)"
    say "building $BASE_TAG by debootstrap from $mirror (about 30 s)"
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$STATE_DIR/debootstrap.log" 2>&1 \
        || { tail -n 15 "$STATE_DIR/debootstrap.log" >&2; die "debootstrap failed"; }
    # Outgoing HTTPS may pass a proxy whose certificate the build must trust.
    mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/usr/local/share/ca-certificates"
    [[ -f /etc/ssl/certs/ca-certificates.crt ]] \
        && cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
        cp -r /usr/local/share/ca-certificates/. "$rootfs/usr/local/share/ca-certificates/"
    fi
    # Make it lean the way the official slim image is: no docs, man pages or locales from
    # dpkg, no apt caches kept after an install.
    mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d" "$rootfs/etc/apt/apt.conf.d"
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
CFG
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
    find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
    rm -rf "$rootfs/usr/share/man/"* "$rootfs/usr/share/info/"* "$rootfs/usr/share/locale/"* \
        "$rootfs/var/cache/apt/"*.bin "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
    tar -C "$rootfs" -c . | docker_cli import \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'CMD ["bash"]' - "$BASE_TAG" >/dev/null \
        || die "docker import of the base image failed"
    rm -rf "$rootfs"
    docker_cli image inspect "$BASE_TAG" >/dev/null 2>&1 || die "base image missing after import"
    say "base image $BASE_TAG ready"
}

stop_engine() {
    if [[ ! -f "$PIDFILE" ]]; then
        say "no pidfile at $PIDFILE; nothing to stop"
        return 0
    fi
    local pid
    pid="$(cat "$PIDFILE")"
    if kill -0 "$pid" 2>/dev/null; then
        say "stopping dockerd (pid $pid)"
        kill -TERM "$pid"
        local i
        for i in $(seq 1 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -0 "$pid" 2>/dev/null && { say "dockerd still alive; sending KILL"; kill -KILL "$pid"; }
    fi
    rm -f "$PIDFILE"
    say "stopped"
}

case "${1:-start}" in
    start)
        install_packages
        was_up=0
        engine_up && was_up=1
        start_engine
        # An engine without its base image is of no use to the tests: stop the one we started
        # (the caller only stops what a successful start reported) and say why.
        if ! (build_base); then
            [[ $was_up == 1 ]] || stop_engine
            die "no $BASE_TAG base image; the engine was stopped"
        fi
        say "ready: export DOCKER_HOST=unix://$SOCK"
        ;;
    stop) stop_engine ;;
    status)
        if engine_up; then say "running (unix://$SOCK)"; else say "not running"; exit 1; fi
        ;;
    env)
        printf 'export DOCKER_HOST=unix://%s\n' "$SOCK"
        [[ -x "$DOCKER_BIN" ]] && printf 'export QUANTGATE_DOCKER=%s\n' "$DOCKER_BIN"
        ;;
    *) die "usage: $0 start|stop|status|env" ;;
esac
