"""The test cluster's compute nodes are separate hosts, and the network settings that
reach them (``address``/``interface``, ``worker_port_range``), for real.

tests/infra/slurm.sh runs each node's slurmd, and so every job, in its own network, UTS
and mount namespace: hostname ``nodeK``, a private ``/tmp``, and only the login node's
bridge address (``$CHILTEPIN_SLURM_LOGIN_ADDR`` on ``$CHILTEPIN_SLURM_BRIDGE``) to reach
this machine. A second cluster started and stopped here (its own state dir and port)
shows that ``stop`` leaves no namespace, veth or bridge behind.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from helpers import slurm_tasks as ss
from helpers.cli import run as chiltepin_cli
from helpers.infra import SHARED_TMP, require
from helpers.processes import listening_on

from chiltepin import Workflow
from chiltepin.errors import ConfigError

NODES = {"node1", "node2", "node3", "node4"}
SLURM_SH = Path(__file__).resolve().parent / "infra" / "slurm.sh"


def _srun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["srun", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def test_each_node_is_its_own_host_with_a_private_tmp(slurm, tmp_path):
    mark = f"chiltepin-mark-{uuid.uuid4().hex}"
    shared = tmp_path / "shared"
    shared.mkdir()
    script = (
        f'touch /tmp/{mark}-"$(hostname)" && touch {shared}/"$(hostname)" && '
        f'echo "$(hostname) $(ls /tmp | grep -c {mark}) $(ip -br -4 addr | grep -c UP)"'
    )
    out = _srun("-N4", "--ntasks-per-node=1", "bash", "-c", script)
    assert out.returncode == 0, out.stderr
    seen = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert set(seen) == NODES, out.stdout
    # Each node sees only its own mark in /tmp and has one interface up besides loopback.
    assert set(seen.values()) == {"1 1"}, seen
    assert not list(Path("/tmp").glob(f"{mark}*")), "a node's /tmp is not the login node's"
    assert {p.name for p in shared.iterdir()} == NODES, "the run directory is shared"


def test_nodes_reach_only_the_login_nodes_bridge(slurm):
    login = os.environ["CHILTEPIN_SLURM_LOGIN_ADDR"]
    other = next(a for a in _host_addresses() if a != login and not a.startswith("127."))
    # bash's /dev/tcp: connect to slurmctld's port on each address of the login node.
    port = _ctld_port()
    probe = (
        f"for a in {login} {other} 127.0.0.1; do "
        f'timeout 3 bash -c "exec 3<>/dev/tcp/$a/{port}" 2>/dev/null '
        "&& echo $a ok || echo $a no; done"
    )
    out = _srun("-N1", "bash", "-c", probe)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [login, "ok", other, "no", "127.0.0.1", "no"], out.stdout


def test_interchange_listens_only_on_the_interface_and_port_range(slurm, tmp_path):
    login, bridge = os.environ["CHILTEPIN_SLURM_LOGIN_ADDR"], os.environ["CHILTEPIN_SLURM_BRIDGE"]
    low, high = 50500, 50540
    config = {
        "compute": {
            "provider": "slurm",
            "partition": "compute",
            "exclusive": False,
            "cores_per_node": 4,
            "max_workers_per_node": 1,
            "walltime": "00:10:00",
            "interface": bridge,
            "worker_port_range": [low, high],
        }
    }
    with Workflow(config=config, include=["compute"], run_dir=tmp_path / "run") as dfk:
        where = ss.placement(executor="compute").result(timeout=180)
        bound = listening_on(dfk.executors["compute"].interchange_proc.pid)
    assert where["node"] in NODES, where
    assert bound, "the interchange listens for workers"
    for address in bound:
        host, _, port = address.rpartition(":")
        assert host == login and low <= int(port) <= high, bound


# --- a bad interface: one error, naming file, executor and key ------------------------


def test_missing_interface_is_one_error_naming_file_executor_and_key(tmp_path):
    config = tmp_path / "resources.yaml"
    config.write_text("compute:\n  provider: slurm\n  interface: nope0\n")
    with pytest.raises(ConfigError) as caught:
        Workflow(config=str(config), run_dir=tmp_path / "run").start()
    message = str(caught.value)
    assert message.startswith(f"{config}: executor 'compute': key 'interface': "), message
    assert "interface 'nope0' does not exist on this host" in message, message
    for name in _interface_names():
        assert name in message.split("interfaces here: ")[1], message


def test_missing_interface_in_a_profile_names_its_line(tmp_path, monkeypatch):
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "far.yaml").write_text(
        "name: far\nscheduler: slurm\ndefaults:\n  walltime: '00:05:00'\n"
        "  interface: nope0\nexecutors:\n  compute:\n    partition: compute\n"
        "  pinned:\n    address: 192.0.2.7\n"
    )
    monkeypatch.setenv("CHILTEPIN_SITE_PATH", str(sites))
    with pytest.raises(
        ConfigError,
        match=r"far.yaml:5: site 'far' executor 'compute': key "
        r"'interface': interface 'nope0' does not exist .*hint: interfaces here: ",
    ):
        Workflow(site="far", include=["compute"], run_dir=tmp_path / "run").start()
    # An executor's own address replaces the defaults' interface.
    from chiltepin.sites import load_site

    pinned = load_site("far").resolve("pinned")[0]
    assert (pinned.address, pinned.interface) == ("192.0.2.7", None)


def test_missing_exchange_interface_exits_2_from_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    service = tmp_path / "counter.yaml"
    service.write_text(
        "name: counter\nagent: helpers.agent_services:Counter\nsite: local\n"
        "exchange: {kind: embedded, interface: nope0}\n"
    )
    out = chiltepin_cli("agent", "serve", str(service), timeout=300)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{service}: key 'exchange.interface'" in lines[0], lines
    assert "interface 'nope0' does not exist on this host" in lines[0], lines


def test_address_and_interface_exclude_each_other():
    from chiltepin.config.resources import load_resources

    with pytest.raises(ConfigError, match="key 'interface': give 'address' or 'interface'"):
        load_resources({"x": {"provider": "slurm", "address": "10.0.0.1", "interface": "ib0"}})
    with pytest.raises(ConfigError, match=r"key 'worker_port_range': \[9, 8\] is empty"):
        load_resources({"x": {"provider": "slurm", "worker_port_range": [9, 8]}})


# --- stop leaves nothing --------------------------------------------------------------


def test_stop_removes_every_namespace_veth_and_bridge(slurm_cluster):
    """A second cluster (its own state dir and port) next to the session's: started,
    checked, stopped; then none of its namespaces, veths or bridge exist."""
    port = 7417
    require(not _port_in_use(port), f"a free port {port} for a second test cluster")
    # munged wants every directory above its socket searchable by all (tmp_path is 0700).
    state = Path(tempfile.mkdtemp(prefix="chiltepin-slurm-second-", dir=SHARED_TMP))
    state.chmod(0o755)
    env = {**os.environ, "CHILTEPIN_SLURM_STATE": str(state), "CHILTEPIN_SLURM_PORT": str(port)}

    def sh(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SLURM_SH), command], env=env, capture_output=True, text=True, timeout=300
        )

    try:
        started = sh("start")
        assert started.returncode == 0, started.stderr
        made = _network_names(port)
        assert len(made["netns"]) == 4 and len(made["links"]) == 5, made  # 4 veths + bridge
        assert sh("status").returncode == 0
    finally:
        stopped = sh("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert _network_names(port) == {"netns": [], "links": []}
    assert sh("status").returncode == 1
    shutil.rmtree(state)
    assert slurm_cluster.is_running(), "the session's cluster is untouched"


# --- helpers --------------------------------------------------------------------------


def _interface_names() -> list[str]:
    return [name for _index, name in socket.if_nameindex()]


def _host_addresses() -> list[str]:
    out = subprocess.run(["ip", "-br", "-4", "addr"], capture_output=True, text=True).stdout
    return [word.split("/")[0] for line in out.splitlines() for word in line.split()[2:]]


def _ctld_port() -> int:
    conf = Path(os.environ["SLURM_CONF"]).read_text()
    return int(next(line for line in conf.splitlines() if line.startswith("SlurmctldPort="))[14:])


def _port_in_use(port: int) -> bool:
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    return any(line.split()[3].endswith(f":{port}") for line in out.splitlines())


def _network_names(port: int) -> dict[str, list[str]]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = [line.split(": ")[1].split("@")[0] for line in links.splitlines()]
    return {
        "netns": [n.split()[0] for n in netns.splitlines() if n.startswith(f"chiltepin{port}-")],
        "links": [n for n in names if n.startswith(f"ch{port}")],
    }
