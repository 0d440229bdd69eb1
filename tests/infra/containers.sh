#!/usr/bin/env bash
# Container test infrastructure for chiltepin: podman (rootful, own config and
# store), a loopback OCI registry, and the runtime image from containers/Dockerfile.
#
# Usage: tests/infra/containers.sh COMMAND
#   setup           install missing tools (apt), write podman configs under the state dir
#   env             print `export ...` lines for eval (writes the configs, no apt)
#   build           debootstrap base image (cached) + podman build of the runtime image
#   registry-start  run docker-registry on 127.0.0.1:$CHILTEPIN_REGISTRY_PORT (idempotent)
#   registry-stop   stop it
#   push            tag and push the image to the local registry
#   ch-dir          convert the image to a Charliecloud directory (cached); prints its path
#   status          show what is installed, running and stored
#   teardown        stop the registry, remove all containers of this store (keeps images, caches)
#   purge           teardown + delete the podman store and registry data (keeps the
#                   debootstrap cache)
#
# Environment (all optional):
#   CHILTEPIN_CONTAINERS_STATE  state dir (configs, podman store, registry)  [/var/tmp/chiltepin-containers]
#   CHILTEPIN_REGISTRY_PORT     loopback registry port                       [5000]
#   CHILTEPIN_EXTRA_CA          CA bundle passed as build secret `extra_ca`  [/etc/ssl/certs/ca-certificates.crt]
#                               (set it empty to pass no secret)
#   CHILTEPIN_PIP_INDEX_URL     --build-arg PIP_INDEX_URL                    [unset: image default, PyPI]
#   CHILTEPIN_BUILD_ARGS        extra podman build arguments (word-split), e.g.
#                               "--build-arg WITH_MPI_DEV=1"                 [unset]
#   CHILTEPIN_DEBIAN_MIRROR     debootstrap mirror                           [http://deb.debian.org/debian]
#   CHILTEPIN_INSTALL_CHARLIECLOUD  0 to skip ch-run/ch-convert in setup     [1]
#   XDG_CACHE_HOME              debootstrap rootfs cache in $XDG_CACHE_HOME/chiltepin [~/.cache]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
STATE="${CHILTEPIN_CONTAINERS_STATE:-/var/tmp/chiltepin-containers}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/chiltepin"
REGISTRY_PORT="${CHILTEPIN_REGISTRY_PORT:-5000}"
EXTRA_CA="${CHILTEPIN_EXTRA_CA-/etc/ssl/certs/ca-certificates.crt}"
DEBIAN_MIRROR="${CHILTEPIN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
BASE_IMAGE="localhost/debian-base:$SUITE"
ROOTFS_TAR="$CACHE/debian-$SUITE-minbase-$(dpkg --print-architecture 2>/dev/null || uname -m).tar"

VERSION="$(sed -n 's/^__version__ *= *["'\'']\([^"'\'']*\)["'\''].*/\1/p' "$REPO/chiltepin/_version.py")"
[ -n "$VERSION" ] || { echo "containers.sh: cannot read version from chiltepin/_version.py" >&2; exit 1; }
IMAGE="ghcr.io/noaa-gsl/chiltepin:$VERSION"
REGISTRY="localhost:$REGISTRY_PORT"
REGISTRY_IMAGE="$REGISTRY/noaa-gsl/chiltepin:$VERSION"

export CONTAINERS_CONF="$STATE/containers.conf"
export CONTAINERS_STORAGE_CONF="$STATE/storage.conf"
export CONTAINERS_REGISTRIES_CONF="$STATE/registries.conf"

log() { echo "containers.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------- setup
# dpkg package -> wanted. Only missing ones are installed, after one apt-get update.
PACKAGES=(podman runc conmon catatonit uidmap fuse-overlayfs slirp4netns
          containernetworking-plugins golang-github-containers-common
          buildah skopeo docker-registry debootstrap)
CH_PACKAGES=(charliecloud-runtime charliecloud-builders squashfs-tools)

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

install_packages() {
    local want=("${PACKAGES[@]}") missing=() p
    [ "${CHILTEPIN_INSTALL_CHARLIECLOUD:-1}" = 0 ] || want+=("${CH_PACKAGES[@]}")
    for p in "${want[@]}"; do pkg_installed "$p" || missing+=("$p"); done
    [ "${#missing[@]}" -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}); run setup as root"
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # As in slurm.sh: wait for other apt runs (another test lane's, anyone's).
    local apt=(flock -w 900 /var/tmp/chiltepin-apt.lock apt-get -qq -o DPkg::Lock::Timeout=300)
    "${apt[@]}" update
    # Recommends are skipped: podman's pull in dbus-user-session/systemd bits.
    "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
}

# min(wanted, hard limit of this shell): asking for more than the hard limit makes
# every container fail with "setrlimit RLIMIT_NOFILE: Operation not permitted".
clamp_limit() {
    local want="$1" hard="$2"
    if [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ]; then echo "$want"; else echo "$hard"; fi
}

write_config() {
    mkdir -p "$STATE" "$STATE/run" "$STATE/storage" "$STATE/registry"
    # runroot/tmp_dir are meant to be tmpfs (cleared on boot). The state dir may
    # survive a reboot, so clear them when the boot id changes, or podman would
    # believe stale containers and mounts still exist.
    local boot_id=""
    boot_id="$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || true)"
    if [ -n "$boot_id" ] && [ -f "$STATE/boot_id" ] && [ "$(cat "$STATE/boot_id")" != "$boot_id" ]; then
        log "machine rebooted since last use: clearing $STATE/run"
        rm -rf "$STATE/run"
        mkdir -p "$STATE/run"
    fi
    [ -z "$boot_id" ] || echo "$boot_id" > "$STATE/boot_id"

    local nofile nproc
    nofile="$(clamp_limit 20000 "$(ulimit -Hn)")"
    nproc="$(clamp_limit 32768 "$(ulimit -Hu)")"
    write_if_changed "$CONTAINERS_CONF" <<EOF
# Written by tests/infra/containers.sh -- podman settings proven on Debian 12 without systemd.
[containers]
# The default nofile limit exceeds this machine's hard limit.
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
init_path = "/usr/libexec/podman/catatonit"

[engine]
# crun 1.8 fails here ("cgroups in hybrid mode not supported").
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$STATE/run/events.log"
tmp_dir = "$STATE/run/libpod"
EOF
    write_if_changed "$CONTAINERS_STORAGE_CONF" <<EOF
# Written by tests/infra/containers.sh
[storage]
driver = "overlay"
runroot = "$STATE/run/storage"
graphroot = "$STATE/storage"

[storage.options.overlay]
mountopt = "nodev"
EOF
    write_if_changed "$CONTAINERS_REGISTRIES_CONF" <<EOF
# Written by tests/infra/containers.sh -- only fully qualified names; the
# loopback registry speaks plain HTTP.
unqualified-search-registries = []

[[registry]]
location = "localhost:$REGISTRY_PORT"
insecure = true

[[registry]]
location = "127.0.0.1:$REGISTRY_PORT"
insecure = true
EOF
    write_if_changed "$STATE/registry/config.yml" <<EOF
# Written by tests/infra/containers.sh
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $STATE/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
EOF
}

write_if_changed() {  # stdin -> $1, untouched (mtime kept) when identical
    local tmp="$1.tmp.$$"
    cat > "$tmp"
    if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; fi
}

cmd_setup() {
    install_packages
    write_config
    command -v podman >/dev/null || die "podman not installed"
    podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}' >/dev/null \
        || die "podman info failed with $CONTAINERS_CONF"
    log "ready: state in $STATE"
}

cmd_env() {
    write_config
    printf 'export CONTAINERS_CONF=%q\n' "$CONTAINERS_CONF"
    printf 'export CONTAINERS_STORAGE_CONF=%q\n' "$CONTAINERS_STORAGE_CONF"
    printf 'export CONTAINERS_REGISTRIES_CONF=%q\n' "$CONTAINERS_REGISTRIES_CONF"
    printf 'export CHILTEPIN_CONTAINERS_STATE=%q\n' "$STATE"
    printf 'export CHILTEPIN_IMAGE=%q\n' "$IMAGE"
    printf 'export CHILTEPIN_REGISTRY_IMAGE=%q\n' "$REGISTRY_IMAGE"
    printf 'export CHILTEPIN_CH_DIR=%q\n' "$STATE/ch/chiltepin-$VERSION"
}

# ---------------------------------------------------------------------------- build
make_rootfs_tar() {
    [ -s "$ROOTFS_TAR" ] && [ -s "$ROOTFS_TAR.sha256" ] && return 0
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root (or put a rootfs tarball at $ROOTFS_TAR)"
    mkdir -p "$CACHE"
    local dir
    dir="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$dir' '$ROOTFS_TAR.tmp'" EXIT
    log "debootstrap --variant=minbase $SUITE (one-off, cached in $CACHE)"
    local t0=$SECONDS
    debootstrap --variant=minbase "$SUITE" "$dir" "$DEBIAN_MIRROR" > "$CACHE/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    # Same sources as the official debian:bookworm image (updates + security).
    rm -f "$dir/etc/apt/sources.list"
    cat > "$dir/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_MIRROR%/debian}/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/var/log/* \
           "$dir"/tmp/* "$dir"/var/tmp/* "$dir"/root/.bash_history
    echo localhost > "$dir/etc/hostname"; : > "$dir/etc/resolv.conf"
    tar --numeric-owner --xattrs -C "$dir" -cf "$ROOTFS_TAR.tmp" .
    rm -rf "$dir"
    trap - EXIT
    sha256sum "$ROOTFS_TAR.tmp" | cut -d' ' -f1 > "$ROOTFS_TAR.sha256"
    mv -f "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    log "base rootfs ready in $((SECONDS - t0))s: $ROOTFS_TAR"
}

import_base() {
    local want have
    want="$(cat "$ROOTFS_TAR.sha256")"
    have="$(podman image inspect --format '{{index .Labels "org.chiltepin.rootfs.sha256"}}' "$BASE_IMAGE" 2>/dev/null || true)"
    [ "$have" = "$want" ] && return 0
    log "importing $ROOTFS_TAR as $BASE_IMAGE"
    podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        --change "LABEL org.chiltepin.rootfs.sha256=$want" \
        "$ROOTFS_TAR" "$BASE_IMAGE" >/dev/null
}

cmd_build() {
    cmd_setup
    make_rootfs_tar
    import_base
    local def_from
    def_from="$(sed -n 's/^From: *//p' "$REPO/containers/chiltepin.def" 2>/dev/null || true)"
    [ -z "$def_from" ] || [ "$def_from" = "$IMAGE" ] \
        || log "WARNING: containers/chiltepin.def says 'From: $def_from', expected $IMAGE"
    local args=(--network host --isolation chroot --layers
                -f "$REPO/containers/Dockerfile"
                --ignorefile "$REPO/containers/Dockerfile.dockerignore"
                --build-arg "BASE_IMAGE=$BASE_IMAGE"
                --build-arg "CHILTEPIN_VERSION=$VERSION"
                --build-arg "VCS_REF=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)"
                # the commit's time, not now: one commit keeps building from the cache
                --build-arg "CREATED=$(git -C "$REPO" log -1 --format=%cI 2>/dev/null || true)"
                --build-arg "BASE_DIGEST=$(podman image inspect --format '{{.Digest}}' "$BASE_IMAGE")"
                -t "$IMAGE")
    if [ -n "$EXTRA_CA" ]; then
        [ -r "$EXTRA_CA" ] || die "CHILTEPIN_EXTRA_CA=$EXTRA_CA is not readable"
        args+=(--secret "id=extra_ca,src=$EXTRA_CA")
    fi
    [ -z "${CHILTEPIN_PIP_INDEX_URL:-}" ] || args+=(--build-arg "PIP_INDEX_URL=$CHILTEPIN_PIP_INDEX_URL")
    # shellcheck disable=SC2206
    [ -z "${CHILTEPIN_BUILD_ARGS:-}" ] || args+=($CHILTEPIN_BUILD_ARGS)
    log "podman build -> $IMAGE"
    local t0=$SECONDS
    # stdout of podman build is the build log; keep it on stderr so that
    # `$(containers.sh build)` style callers get only the image id.
    podman build "${args[@]}" "$REPO" >&2
    log "built $IMAGE in $((SECONDS - t0))s (whole command ${SECONDS}s)"
    # Drop superseded builds (untagged, childless); the current chain of
    # intermediate images -- the layer cache -- is kept.
    podman image prune -f >/dev/null
    podman image inspect --format '{{.Id}}' "$IMAGE"
}

# ------------------------------------------------------------------------- registry
registry_pid() {
    local f="$STATE/registry/registry.pid" pid
    [ -s "$f" ] || return 1
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null && grep -q docker-registry "/proc/$pid/cmdline" 2>/dev/null; then
        echo "$pid"; return 0
    fi
    rm -f "$f"; return 1
}

registry_answers() {
    python3 - "$REGISTRY_PORT" <<'EOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v2/", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
EOF
}

cmd_registry_start() {
    write_config
    command -v docker-registry >/dev/null || die "docker-registry not installed: run setup"
    if registry_pid >/dev/null; then
        registry_answers && { log "registry already running on 127.0.0.1:$REGISTRY_PORT"; return 0; }
    elif registry_answers; then
        die "something else answers on 127.0.0.1:$REGISTRY_PORT (not our registry)"
    fi
    mkdir -p "$STATE/registry/data"
    setsid docker-registry serve "$STATE/registry/config.yml" \
        < /dev/null >> "$STATE/registry/registry.log" 2>&1 &
    echo $! > "$STATE/registry/registry.pid"
    local i
    for i in $(seq 1 100); do
        registry_answers && { log "registry on 127.0.0.1:$REGISTRY_PORT (pid $!)"; return 0; }
        kill -0 $! 2>/dev/null || break
        sleep 0.1
    done
    tail -20 "$STATE/registry/registry.log" >&2
    cmd_registry_stop
    die "registry did not come up (log: $STATE/registry/registry.log)"
}

cmd_registry_stop() {
    local pid i
    pid="$(registry_pid)" || return 0
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$STATE/registry/registry.pid"
    log "registry stopped"
}

cmd_push() {
    write_config
    podman image exists "$IMAGE" || die "$IMAGE not in the store: run build first"
    registry_answers || die "registry not running on 127.0.0.1:$REGISTRY_PORT: run registry-start"
    podman tag "$IMAGE" "$REGISTRY_IMAGE"
    podman push --quiet --tls-verify=false "$REGISTRY_IMAGE" >&2
    log "pushed $REGISTRY_IMAGE"
    echo "$REGISTRY_IMAGE"
}

# --------------------------------------------------------------------- charliecloud
# Charliecloud directory image of $IMAGE (for `ch-run --set-env DIR -- CMD`),
# reconverted only when the podman image changed. Prints the directory.
cmd_ch_dir() {
    write_config
    command -v ch-convert >/dev/null || die "ch-convert not installed: run setup"
    podman image exists "$IMAGE" || die "$IMAGE not in the store: run build first"
    local id dir="$STATE/ch/chiltepin-$VERSION"
    id="$(podman image inspect --format '{{.Id}}' "$IMAGE")"
    if [ "$(cat "$dir/ch/chiltepin-image-id" 2>/dev/null)" = "$id" ]; then echo "$dir"; return 0; fi
    mkdir -p "$STATE/ch"
    rm -rf "$dir" "$dir.tmp"
    local t0=$SECONDS
    ch-convert -i podman -o dir "$IMAGE" "$dir.tmp" >&2
    echo "$id" > "$dir.tmp/ch/chiltepin-image-id"
    mv "$dir.tmp" "$dir"
    log "converted $IMAGE to $dir in $((SECONDS - t0))s"
    echo "$dir"
}

# ------------------------------------------------------------------------ teardown
cmd_teardown() {
    write_config
    cmd_registry_stop
    if command -v podman >/dev/null; then
        local ids
        ids="$(podman ps -aq)"
        # shellcheck disable=SC2086
        [ -z "$ids" ] || { podman rm -f -t 5 $ids >/dev/null; log "removed containers: $(echo $ids)"; }
    fi
}

cmd_purge() {
    cmd_teardown
    if command -v podman >/dev/null; then podman system reset --force >/dev/null 2>&1 || true; fi
    rm -rf "$STATE"
    log "removed $STATE (debootstrap cache kept in $CACHE)"
}

cmd_status() {
    write_config
    local p
    for p in podman buildah skopeo docker-registry debootstrap ch-run ch-convert; do
        printf '%-16s %s\n' "$p" "$(command -v "$p" || echo MISSING)"
    done
    printf '%-16s %s\n' state "$STATE" rootfs-cache "$( [ -s "$ROOTFS_TAR" ] && echo "$ROOTFS_TAR" || echo none)"
    if registry_pid >/dev/null; then printf '%-16s %s\n' registry "running (pid $(registry_pid), $REGISTRY)";
    else printf '%-16s %s\n' registry stopped; fi
    if command -v podman >/dev/null; then
        podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' 2>/dev/null | sed 's/^/image            /'
        podman ps -a --format '{{.ID}} {{.Image}} {{.Status}}' 2>/dev/null | sed 's/^/container        /'
    fi
}

case "${1:-}" in
    setup) cmd_setup ;;
    env) cmd_env ;;
    build) cmd_build ;;
    registry-start) cmd_registry_start ;;
    registry-stop) cmd_registry_stop ;;
    push) cmd_push ;;
    ch-dir) cmd_ch_dir ;;
    status) cmd_status ;;
    teardown) cmd_teardown ;;
    purge) cmd_purge ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
