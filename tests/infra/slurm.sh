#!/usr/bin/env bash
# Real, single-machine, multi-host Slurm test cluster for chiltepin's tests.
#
# Usage: tests/infra/slurm.sh {start|stop|status|env}
#
#   start   install packages if missing (Slurm, munge, Open MPI), make the network,
#           write the configuration, start munged, slurmctld and 4 compute nodes,
#           wait until every node is idle. Idempotent: returns quickly when the
#           cluster is already up and healthy.
#   stop    cancel every job, stop every daemon and process of the nodes, remove
#           every network namespace, veth and bridge start made. Idempotent.
#   status  exit 0 if the cluster is up and healthy, 1 otherwise.
#   env     print the variables clients need, for `eval "$(slurm.sh env)"`.
#
# Environment:
#   CHILTEPIN_SLURM_STATE   state directory (default /tmp/chiltepin-slurm);
#                           everything (config, munge, spool, logs) lives here.
#   CHILTEPIN_SLURM_PORT    slurmctld port (default 6817); node K listens on
#                           PORT+K. The network's names derive from it (below).
#   CHILTEPIN_SLURM_TIMEOUT seconds to wait for the nodes (default 60).
#
# The nodes are separate hosts, as on a real cluster. The machine itself is the
# login node: munged, slurmctld and every client run there. Compute node K
# (node1..node4, CPUs=4 each) runs its slurmd, and so every job step, in
#   - its own network namespace chiltepin<PORT>-nodeK: a veth pair (ch<PORT>vK on
#     the login side) to the bridge ch<PORT>br on the login node, address
#     SUBNET.(10+K)/24 (the login node's bridge address is SUBNET.1, where slurmctld
#     listens). Inside, the veth is named ch<PORT>br too: the cluster network has one
#     interface name on every host, as ib0 has on a real cluster, so a profile's
#     `interface:` also holds for agents that submit jobs from a node. SUBNET is a
#     /24 of 198.18.0.0/15 picked from PORT,
#     assigned only inside these namespaces. No default route, no forwarding, no
#     NAT: a node reaches the login node's bridge address and the other nodes, and
#     nothing else (not the login node's loopback, nor any other interface);
#   - its own UTS namespace (`hostname` is nodeK; /etc/hosts names every node);
#   - its own mount namespace with a private /tmp (a tmpfs: node-local scratch,
#     gone with the node). Everything else is shared like a parallel filesystem
#     (the checkout, the venv, /var/tmp, ...); this state directory is mounted
#     back at its path when it is under /tmp.
# Partitions service, compute (default) and debug share the nodes.
# Accounting (slurmdbd + MariaDB, accounts, users, QOS): tests/infra/slurm_accounting.sh.
# Partitions with limits, for the preflight tests: short (node[1-2], MaxTime 00:05:00,
# MaxNodes 1) and maint (node4, State=DOWN).
set -euo pipefail

STATE="${CHILTEPIN_SLURM_STATE:-/tmp/chiltepin-slurm}"
CTLD_PORT="${CHILTEPIN_SLURM_PORT:-6817}"
TIMEOUT="${CHILTEPIN_SLURM_TIMEOUT:-60}"
NNODES=4
NODE_CPUS=4
NODE_MEM=2048
CLUSTER=chiltepin

ETC="$STATE/etc"
RUN="$STATE/run"
LOG="$STATE/log"
MUNGE_DIR="$STATE/munge"
MUNGE_SOCKET="$MUNGE_DIR/munge.socket.2"
MUNGE_PID="$RUN/munged.pid"
CONF="$ETC/slurm.conf"
PROLOG="$ETC/task_prolog.sh"
CTLD_PID="$RUN/slurmctld.pid"
NODES="node[1-$NNODES]"
HOSTS="$ETC/hosts"
NODE_INIT="$ETC/host_init.sh"

# The network: names and addresses derive from the port, so that clusters with
# other ports do not clash.
NET_ID=$((CTLD_PORT % 512))
SUBNET="198.$((18 + NET_ID / 256)).$((NET_ID % 256))"
LOGIN_ADDR="$SUBNET.1"
LOGIN_NAME=login
BRIDGE="ch${CTLD_PORT}br"
NETNS_PREFIX="chiltepin${CTLD_PORT}-"

# shellcheck source=tests/infra/slurm_accounting.sh
source "$(dirname "${BASH_SOURCE[0]}")/slurm_accounting.sh"

log() { printf 'slurm.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

node_names() {
    local k
    for ((k = 1; k <= NNODES; k++)); do printf 'node%d\n' "$k"; done
}

slurmd_pidfile() { printf '%s/slurmd-%s.pid' "$RUN" "$1"; }
node_addr() { printf '%s.%d' "$SUBNET" "$((10 + ${1#node}))"; }
node_netns() { printf '%s%s' "$NETNS_PREFIX" "$1"; }
node_veth() { printf 'ch%sv%s' "$CTLD_PORT" "${1#node}"; }

# Client commands always talk to this cluster, whatever the caller's env says.
client() { SLURM_CONF="$CONF" "$@"; }

# ---------------------------------------------------------------- install ---
install_packages() {
    local missing=0 bin
    for bin in slurmctld slurmd sinfo srun sbatch squeue scancel scontrol \
               munged mpirun mpicc; do
        command -v "$bin" >/dev/null 2>&1 || missing=1
    done
    # slurmd's PMIx plugin serves `srun --mpi=pmix` (MpiDefault=pmix).
    [[ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/mpi_pmix.so ]] \
        || compgen -G '/usr/lib/*/slurm-wlm/mpi_pmix*.so' >/dev/null || missing=1
    ((missing)) || return 0

    # Open MPI must be installed before any slurmd starts, otherwise
    # `srun --mpi=pmix` hangs until slurmd is restarted: if daemons of this
    # state dir are running, they are restarted after the install.
    local pkgs=(slurmctld slurmd slurm-client munge openmpi-bin libopenmpi-dev)
    log "installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Other apt/dpkg runs (another test lane's, anyone's) hold the locks: wait for
    # them. `apt-get update` does not wait for the lists lock by itself.
    local apt=(flock -w 900 /var/tmp/chiltepin-apt.lock apt-get -qq -o DPkg::Lock::Timeout=300)
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        "${apt[@]}" update >/dev/null
        "${apt[@]}" install -y --no-install-recommends "${pkgs[@]}" >/dev/null
    elif ! "${apt[@]}" install -y --no-install-recommends "${pkgs[@]}" >/dev/null; then
        log "install failed with the current package lists: apt-get update, retrying"
        "${apt[@]}" update >/dev/null
        "${apt[@]}" install -y --no-install-recommends "${pkgs[@]}" >/dev/null
    fi
    for bin in slurmctld slurmd sinfo munged mpirun; do
        command -v "$bin" >/dev/null 2>&1 || die "install did not provide $bin"
    done
    stop_daemons
}

# ----------------------------------------------------------------- config ---
write_config() {
    mkdir -p "$ETC" "$RUN" "$LOG" "$MUNGE_DIR" "$STATE/state" "$STATE/spool"
    chmod 0755 "$STATE" "$ETC" "$RUN" "$LOG" "$MUNGE_DIR"
    chmod 0700 "$STATE/state"

    if [[ ! -s "$ETC/munge.key" ]]; then
        (umask 077 && head -c 1024 /dev/urandom >"$ETC/munge.key")
    fi
    chmod 0400 "$ETC/munge.key"

    local new="$CONF.new" k
    for k in $(node_names); do mkdir -p "$STATE/spool/$k"; done

    {
        cat <<EOF
# Generated by tests/infra/slurm.sh: do not edit, it is rewritten on start.
ClusterName=$CLUSTER
SlurmctldHost=$LOGIN_NAME($LOGIN_ADDR)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
CommunicationParameters=NoCtldInAddrAny
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
TaskProlog=$PROLOG
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=pmix
SwitchType=switch/none
$(accounting_slurm_conf)
JobCompType=jobcomp/none
MailProg=/bin/true
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool/%n
TmpFS=/tmp
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldTimeout=60
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=30
SchedulerType=sched/backfill
EOF
        for k in $(node_names); do
            printf 'NodeName=%s NodeHostname=%s NodeAddr=%s Port=%d CPUs=%d RealMemory=%d State=UNKNOWN\n' \
                "$k" "$k" "$(node_addr "$k")" "$((CTLD_PORT + ${k#node}))" "$NODE_CPUS" "$NODE_MEM"
        done
        local p def
        for p in service compute debug; do
            def=NO; [[ "$p" == compute ]] && def=YES
            printf 'PartitionName=%s Nodes=%s Default=%s DefaultTime=01:00:00 MaxTime=7-00:00:00 State=UP\n' \
                "$p" "$NODES" "$def"
        done
        # Partitions with limits (preflight tests).
        echo "PartitionName=short Nodes=node[1-2] Default=NO DefaultTime=00:05:00 MaxTime=00:05:00 MaxNodes=1 State=UP"
        echo "PartitionName=maint Nodes=node$NNODES Default=NO MaxTime=01:00:00 State=DOWN"
    } >"$new"

    cat >"$PROLOG.new" <<EOF
#!/bin/sh
# Slurm TaskProlog: "export NAME=VALUE" lines become task environment.
# Open MPI between nodes: TCP over the cluster network.
echo "export OMPI_MCA_btl=self,tcp"
echo "export OMPI_MCA_btl_tcp_if_include=$SUBNET.0/24"
echo "export OMPI_MCA_oob_tcp_if_include=$SUBNET.0/24"
echo "export OMPI_ALLOW_RUN_AS_ROOT=1"
echo "export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
EOF
    chmod 0755 "$PROLOG.new"

    {
        printf '# Generated by tests/infra/slurm.sh: the hosts of the cluster network.\n'
        printf '127.0.0.1 localhost\n%s %s\n' "$LOGIN_ADDR" "$LOGIN_NAME"
        for k in $(node_names); do printf '%s %s\n' "$(node_addr "$k")" "$k"; done
    } >"$HOSTS.new"

    # host_init.sh HOST COMMAND...: run in new UTS and mount namespaces (a node's
    # also in its network namespace): become HOST (hostname, /etc/hosts; a node also
    # gets a private /tmp with this state dir mounted back at its path), then exec
    # COMMAND. slurmctld runs as the login node so: it binds the address its host
    # name resolves to (CommunicationParameters=NoInAddrAny), the bridge's.
    local q
    q="$(printf '%q' "$STATE")"
    cat >"$NODE_INIT.new" <<EOF
#!/bin/bash
# Generated by tests/infra/slurm.sh: do not edit, it is rewritten on start.
set -euo pipefail
node="\$1"
shift
hostname "\$node"
mount --bind $(printf '%q' "$HOSTS") /etc/hosts
[[ "\$node" != $LOGIN_NAME ]] || exec "\$@"
exec 8<$q
mount -t tmpfs -o mode=1777,size=4g "tmp-\$node" /tmp
case $q in /tmp/*)
    mkdir -p $q
    # --no-canonicalize: bind the open directory, not the path (now under the tmpfs).
    mount --no-canonicalize --bind "/proc/\$\$/fd/8" $q
    ;;
esac
exec 8<&-
exec "\$@"
EOF
    chmod 0755 "$NODE_INIT.new"

    CONFIG_CHANGED=0
    local f
    for f in "$CONF" "$HOSTS" "$NODE_INIT"; do
        if ! cmp -s "$f.new" "$f"; then CONFIG_CHANGED=1; mv -f "$f.new" "$f"; else rm -f "$f.new"; fi
    done
    if ! cmp -s "$PROLOG.new" "$PROLOG"; then mv -f "$PROLOG.new" "$PROLOG"; else rm -f "$PROLOG.new"; fi
}

# -------------------------------------------------------------- processes ---
# proc_alive PID NAME: PID runs (not a zombie) and its command is NAME.
proc_alive() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ "$stat" == "$1 ($2) "* ]] || return 1
    stat="${stat#*) }"
    [[ "${stat:0:1}" != Z && "${stat:0:1}" != X ]]
}

# pidfile_pid PIDFILE: the pid written in PIDFILE (empty if none).
pidfile_pid() { { tr -dc '0-9' <"$1"; } 2>/dev/null || true; }

# pid_alive PIDFILE NAME: the pid in PIDFILE is running and its command is NAME.
pid_alive() {
    local pid
    pid="$(pidfile_pid "$1")"
    [[ -n "$pid" ]] && proc_alive "$pid" "$2"
}

# kill_wait NAME SECONDS PID...: TERM, wait up to SECONDS for the processes to
# exit (daemons remove their pid file before they are gone), then KILL.
kill_wait() {
    local name="$1" tenths=$(($2 * 10)) pid i left
    shift 2
    (($#)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    for ((i = 0; i < tenths; i++)); do
        left=()
        for pid in "$@"; do proc_alive "$pid" "$name" && left+=("$pid"); done
        ((${#left[@]})) || return 0
        sleep 0.1
    done
    log "$name (${left[*]}) ignored SIGTERM, killing"
    kill -KILL "${left[@]}" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        left=()
        for pid in "$@"; do proc_alive "$pid" "$name" && left+=("$pid"); done
        ((${#left[@]})) || return 0
        sleep 0.1
    done
}

# Processes whose environment carries this state dir's marker (slurmstepd
# children of our slurmd, daemons whose pid file was lost).
marked_pids() {
    local d pid envs
    local marker=$'\n'"CHILTEPIN_SLURM_DAEMON_STATE=$STATE"$'\n'
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        [[ "$pid" == "$$" || "$pid" == "${BASHPID:-}" ]] && continue
        # Unreadable entries (exited, other users, sandbox) are skipped.
        envs="$({ tr '\0' '\n' <"$d/environ"; } 2>/dev/null)" || continue
        if [[ $'\n'"$envs"$'\n' == *"$marker"* ]]; then
            printf '%s\n' "$pid"
        fi
    done
}

munged_ok() { pid_alive "$MUNGE_PID" munged && [[ -S "$MUNGE_SOCKET" ]]; }
ctld_ok() { pid_alive "$CTLD_PID" slurmctld; }
slurmd_ok() { pid_alive "$(slurmd_pidfile "$1")" slurmd; }

# Daemons carry a marker in their environment (see marked_pids) and must not
# inherit the lock on fd 9, or every later start/stop would wait for them.
daemon_env() {
    env CHILTEPIN_SLURM_DAEMON_STATE="$STATE" SLURM_CONF="$CONF" "$@" 9>&-
}

start_munged() {
    munged_ok && return 0
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock" "$MUNGE_PID"
    daemon_env munged \
        --key-file="$ETC/munge.key" \
        --socket="$MUNGE_SOCKET" \
        --pid-file="$MUNGE_PID" \
        --log-file="$LOG/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" \
        --num-threads=4 \
        || { tail -n 20 "$LOG/munged.log" >&2 || true; die "munged failed to start"; }
    local i
    for ((i = 0; i < 50; i++)); do munged_ok && break; sleep 0.1; done
    munged_ok || { tail -n 20 "$LOG/munged.log" >&2 || true; die "munged did not come up"; }
    chmod 0755 "$MUNGE_DIR"
}

start_slurmctld() {
    ctld_ok && return 0
    rm -f "$CTLD_PID"
    daemon_env unshare --uts --mount --propagation private -- \
        "$NODE_INIT" "$LOGIN_NAME" slurmctld -f "$CONF" \
        || { tail -n 30 "$LOG/slurmctld.log" >&2 || true; die "slurmctld failed to start"; }
}

start_slurmd() {
    local n="$1"
    slurmd_ok "$n" && return 0
    rm -f "$(slurmd_pidfile "$n")"
    daemon_env nsenter --net="/run/netns/$(node_netns "$n")" \
        unshare --uts --mount --propagation private -- \
        "$NODE_INIT" "$n" slurmd -f "$CONF" -N "$n" \
        || { tail -n 30 "$LOG/slurmd-$n.log" >&2 || true; die "slurmd $n failed to start"; }
}

# ---------------------------------------------------------------- network ---
# The bridge, and per node a network namespace and a veth pair (see the header).
bridge_ok() {
    [[ "$(ip -br -4 addr show dev "$BRIDGE" 2>/dev/null)" == *" $LOGIN_ADDR/24"* ]]
}

node_net_ok() {
    local ns
    ns="$(node_netns "$1")"
    [[ -e "/run/netns/$ns" ]] \
        && [[ "$(ip -n "$ns" -br -4 addr show dev "$BRIDGE" 2>/dev/null)" == *" $(node_addr "$1")/24"* ]] \
        && ip link show dev "$(node_veth "$1")" 2>/dev/null | grep -q "master $BRIDGE .*state UP"
}

net_ok() {
    bridge_ok || return 1
    local n
    for n in $(node_names); do node_net_ok "$n" || return 1; done
}

# The subnet must be ours alone: no address of it on any other interface.
check_subnet_free() {
    local other
    other="$(ip -br -4 addr show 2>/dev/null | awk -v net="$SUBNET." -v br="$BRIDGE" \
        '$1 != br { for (i = 3; i <= NF; i++) if (index($i, net) == 1) print $1 }')"
    [[ -z "$other" ]] || die "subnet $SUBNET.0/24 is already used by interface(s) $other (pick another CHILTEPIN_SLURM_PORT)"
}

net_up() {
    check_subnet_free
    if ! bridge_ok; then
        ip link del "$BRIDGE" 2>/dev/null || true
        ip link add "$BRIDGE" type bridge
        ip addr add "$LOGIN_ADDR/24" dev "$BRIDGE"
        ip link set "$BRIDGE" up
    fi
    local n ns veth
    for n in $(node_names); do
        node_net_ok "$n" && continue
        ns="$(node_netns "$n")"
        veth="$(node_veth "$n")"
        ip link del "$veth" 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
        ip netns add "$ns"
        ip link add "$veth" type veth peer name "${veth}p"
        ip link set "${veth}p" netns "$ns"
        ip -n "$ns" link set "${veth}p" name "$BRIDGE"
        ip -n "$ns" addr add "$(node_addr "$n")/24" dev "$BRIDGE"
        ip -n "$ns" link set lo up
        ip -n "$ns" link set "$BRIDGE" up
        ip link set "$veth" master "$BRIDGE" up
    done
    local i
    for ((i = 0; i < 50; i++)); do net_ok && return 0; sleep 0.1; done
    die "the cluster network did not come up"
}

# Every process still in a node's network namespace (jobs, slurmstepd).
netns_pids() {
    local n ns
    for n in $(node_names); do
        ns="$(node_netns "$n")"
        [[ -e "/run/netns/$ns" ]] && ip netns pids "$ns" 2>/dev/null
    done
    return 0
}

net_down() {
    local n ns veth
    for n in $(node_names); do
        ns="$(node_netns "$n")"
        veth="$(node_veth "$n")"
        ip link del "$veth" 2>/dev/null || true
        [[ -e "/run/netns/$ns" ]] && ip netns del "$ns"
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    return 0
}

# Names of what net_up makes that still exist (empty when none).
net_leftovers() {
    local n
    ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' \
        | grep -E "^(${BRIDGE}|ch${CTLD_PORT}v[0-9]+p?)$" || true
    for n in $(node_names); do
        [[ -e "/run/netns/$(node_netns "$n")" ]] && node_netns "$n" && echo
    done
    return 0
}

stop_daemons() {
    local n pid pids=()
    for n in $(node_names); do
        pid="$(pidfile_pid "$(slurmd_pidfile "$n")")"
        [[ -n "$pid" ]] && proc_alive "$pid" slurmd && pids+=("$pid")
    done
    # Without a slurmctld, slurmd sits out a 10 s registration timeout
    # before it handles SIGTERM: do not wait that long for it.
    local wait=10
    ctld_ok || wait=2
    kill_wait slurmd "$wait" "${pids[@]}"
    pid="$(pidfile_pid "$CTLD_PID")"
    [[ -n "$pid" ]] && proc_alive "$pid" slurmctld && kill_wait slurmctld 10 "$pid"
    stop_accounting
    pid="$(pidfile_pid "$MUNGE_PID")"
    [[ -n "$pid" ]] && proc_alive "$pid" munged && kill_wait munged 10 "$pid"
    # Anything else started from this state dir (slurmstepd, lost pid files) or
    # still running on a node (jobs).
    mapfile -t pids < <({ marked_pids; netns_pids; } | sort -un)
    if ((${#pids[@]})); then
        log "stopping leftover processes: ${pids[*]}"
        kill -TERM "${pids[@]}" 2>/dev/null || true
        sleep 1
        mapfile -t pids < <({ marked_pids; netns_pids; } | sort -un)
        ((${#pids[@]} == 0)) || kill -KILL "${pids[@]}" 2>/dev/null || true
        sleep 0.2
    fi
    for n in $(node_names); do rm -f "$(slurmd_pidfile "$n")"; done
    rm -f "$CTLD_PID" "$MUNGE_PID" "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
}

# ------------------------------------------------------------------ nodes ---
# "node STATE" per node, deduplicated (sinfo -N lists a node per partition).
node_states() {
    client sinfo -h -N -o '%N %T' 2>/dev/null | sort -u
}

nodes_all_idle() {
    local states
    states="$(node_states)" || return 1
    [[ "$(grep -c '' <<<"$states")" -eq "$NNODES" ]] || return 1
    ! grep -qv ' idle$' <<<"$states"
}

# Healthy: nodes respond and can run jobs (idle, or busy with jobs).
nodes_all_up() {
    local states
    states="$(node_states)" || return 1
    [[ "$(grep -c '' <<<"$states")" -eq "$NNODES" ]] || return 1
    ! grep -Ev ' (idle|mixed|allocated|completing)$' <<<"$states" | grep -q .
}

# nodes_registered_since TIME NODE...: each NODE's slurmd registered at or
# after TIME (YYYY-MM-DDTHH:MM:SS, as scontrol prints it).
nodes_registered_since() {
    local since="$1" n info t
    shift
    for n in "$@"; do
        info="$(client scontrol show node -o "$n" 2>/dev/null)" || return 1
        t="$(grep -o 'SlurmdStartTime=[^ ]*' <<<"$info")" || return 1
        t="${t#SlurmdStartTime=}"
        [[ "$t" =~ ^[0-9]{4}- && ! "$t" < "$since" ]] || return 1
    done
}

resume_bad_nodes() {
    local bad
    bad="$(node_states | grep -E ' (down|drain|drained|draining|fail|failing)' \
        | awk '{print $1}' | paste -sd, -)" || true
    [[ -n "$bad" ]] || return 0
    log "resuming nodes: $bad"
    client scontrol update NodeName="$bad" State=RESUME >/dev/null 2>&1 || true
}

daemons_ok() {
    net_ok && munged_ok && ctld_ok || return 1
    accounting_ok || return 1
    local n
    for n in $(node_names); do slurmd_ok "$n" || return 1; done
}

healthy() { daemons_ok && nodes_all_up; }

# -------------------------------------------------------------- commands ---
cmd_env() {
    printf 'export SLURM_CONF=%q\n' "$CONF"
    printf 'export CHILTEPIN_SLURM_STATE=%q\n' "$STATE"
    # The login node's side of the cluster network (what workers must connect to).
    printf 'export CHILTEPIN_SLURM_BRIDGE=%q\n' "$BRIDGE"
    printf 'export CHILTEPIN_SLURM_LOGIN_ADDR=%q\n' "$LOGIN_ADDR"
}

cmd_status() {
    if ! daemons_ok; then
        log "not running (state dir $STATE)"
        return 1
    fi
    if ! nodes_all_up; then
        log "daemons running but nodes not all up:"
        node_states >&2 || true
        return 1
    fi
    node_states
    return 0
}

cmd_start() {
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    flock -w 300 9 || die "could not lock $STATE/.lock"

    install_packages
    write_config

    if ((CONFIG_CHANGED == 0)) && daemons_ok; then
        resume_bad_nodes
        if nodes_all_up; then return 0; fi
    elif ((CONFIG_CHANGED)); then
        # Also the first start of a state dir: clears daemons of an old config.
        stop_daemons
    fi

    # Nodes whose network is gone or broken cannot be reached: restart them in a new one.
    net_ok || stop_daemons
    net_up
    start_munged
    start_accounting
    start_slurmctld
    # Nodes started now must register anew: slurmctld recovers saved node
    # states, so "idle" alone could be a stale state from a previous run.
    local n since fresh=()
    since="$(date +%Y-%m-%dT%H:%M:%S)"
    for n in $(node_names); do
        slurmd_ok "$n" || fresh+=("$n")
        start_slurmd "$n"
    done

    local deadline=$((SECONDS + TIMEOUT)) grace=$((SECONDS + 3))
    while ((SECONDS < deadline)); do
        if daemons_ok && nodes_all_up && nodes_registered_since "$since" "${fresh[@]}"; then
            return 0
        fi
        # A daemon that died is a failure: do not wait for the timeout.
        ((SECONDS >= grace)) && ! daemons_ok && break
        # Clients retry for seconds against a dead slurmctld: ask it only alive.
        ctld_ok && resume_bad_nodes
        sleep 0.2
    done

    if ! munged_ok; then
        log "munged is not running; tail of $LOG/munged.log:"
        tail -n 20 "$LOG/munged.log" >&2 2>/dev/null || true
    fi
    if ctld_ok; then
        log "nodes did not all become ready within ${TIMEOUT}s; node states:"
        node_states >&2 || true
        log "tail of $LOG/slurmctld.log:"
    else
        log "slurmctld is not running; tail of $LOG/slurmctld.log:"
    fi
    tail -n 30 "$LOG/slurmctld.log" >&2 2>/dev/null || true
    for n in $(node_names); do
        if ! slurmd_ok "$n"; then
            log "slurmd $n is not running; tail of $LOG/slurmd-$n.log:"
            tail -n 30 "$LOG/slurmd-$n.log" >&2 2>/dev/null || true
        fi
    done
    die "Slurm test cluster failed to start (state dir $STATE)"
}

cmd_stop() {
    [[ -d "$STATE" ]] || { net_down; return 0; }
    exec 9>"$STATE/.lock"
    flock -w 300 9 || die "could not lock $STATE/.lock"

    if ctld_ok && [[ -f "$CONF" ]]; then
        local jobs i
        jobs="$(client squeue -h -o '%i' 2>/dev/null || true)"
        if [[ -n "$jobs" ]]; then
            # shellcheck disable=SC2086
            client scancel $jobs 2>/dev/null || true
            for ((i = 0; i < 100; i++)); do
                jobs="$(client squeue -h -o '%i' 2>/dev/null || true)"
                [[ -z "$jobs" ]] && break
                sleep 0.1
            done
        fi
    fi
    stop_daemons
    net_down
    local left
    left="$(marked_pids)"
    [[ -z "$left" ]] || die "processes still running after stop: $left"
    left="$(net_leftovers)"
    [[ -z "$left" ]] || die "network left after stop: $left"
    return 0
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *)
        printf 'usage: %s {start|stop|status|env}\n' "$0" >&2
        exit 2
        ;;
esac
