"""Schedulers as classes: the registry, each class's keys, Parsl provider and launchers, and
a fourth scheduler registered in a test (adding a scheduler is one class)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
from parsl.executors import HighThroughputExecutor, MPIExecutor
from parsl.launchers import MpiExecLauncher, SimpleLauncher, SingleNodeLauncher, SrunLauncher
from parsl.providers import LocalProvider, PBSProProvider, SlurmProvider

from chiltepin import schedulers
from chiltepin.config import load_resources, resource_json_schema
from chiltepin.config.executors import build_executor
from chiltepin.config.providers import build_launcher, build_provider
from chiltepin.config.schema import inapplicable
from chiltepin.endpoint import generate as gen
from chiltepin.errors import ConfigError, ConfigWarning
from chiltepin.schedulers import (
    SCHEDULERS,
    LocalhostScheduler,
    PBSProScheduler,
    Scheduler,
    Setting,
    SlurmScheduler,
    get_scheduler,
)
from chiltepin.sites.schema import profile_json_schema


def one(settings: dict):
    return load_resources({"r": settings})["r"]


def test_registry_is_keyed_by_the_yaml_name():
    assert list(SCHEDULERS) == ["localhost", "slurm", "pbspro"]
    assert SCHEDULERS["slurm"] is SlurmScheduler
    assert isinstance(get_scheduler("pbspro"), PBSProScheduler)
    with pytest.raises(ConfigError, match="unknown scheduler 'slrum'.*did you mean 'slurm'"):
        get_scheduler("slrum")
    assert one({"provider": "slurm"}).scheduler.name == "slurm"


def test_json_schemas_list_the_registry():
    enum = resource_json_schema()["$defs"]["Resource"]["properties"]["provider"]["enum"]
    assert enum == list(SCHEDULERS)
    assert profile_json_schema()["properties"]["scheduler"]["enum"] == list(SCHEDULERS)


def test_keys_each_scheduler_takes():
    local, slurm, pbs = (get_scheduler(n) for n in SCHEDULERS)
    for key in ("partition", "exclusive", "walltime", "account", "queue"):
        assert not local.applies(key)
    assert slurm.applies("partition") and slurm.applies("gres") and slurm.applies("walltime")
    assert not pbs.applies("partition") and pbs.applies("queue") and pbs.applies("gpus_per_node")
    for sched in (local, slurm, pbs):  # keys no scheduler owns apply everywhere
        assert sched.applies("nodes_per_block") and sched.applies("environment")
    assert schedulers.schedulers_taking("walltime") == ["slurm", "pbspro"]
    assert inapplicable("mem_per_node", "pbspro", False) == (
        "'mem_per_node' is not used by provider 'pbspro'",
        "it applies to provider slurm",
    )
    assert inapplicable("max_mpi_apps", "slurm", True) is None


def test_provider_classes_kwargs_and_launchers():
    res = one({"provider": "slurm", "partition": "p", "queue": "q", "exclusive": False})
    assert (res.scheduler.provider_class, res.scheduler.htex_launcher) == (
        "SlurmProvider",
        "SrunLauncher",
    )
    settings = {s.key: s for s in res.scheduler.settings(res)}
    assert settings["qos"] == Setting("qos", "q", "queue")  # YAML 'queue' is Slurm's QOS
    assert settings["exclusive"].value is False and settings["exclusive"].option is None
    provider = build_provider(res)
    assert isinstance(provider, SlurmProvider) and provider.qos == "q"
    assert isinstance(build_launcher(res), SrunLauncher)

    pbs = one({"provider": "pbspro", "gpus_per_node": 2})
    provider = build_provider(pbs)
    assert isinstance(provider, PBSProProvider) and isinstance(provider.launcher, MpiExecLauncher)
    assert provider.select_options == "ngpus=2" and provider.cpus_per_node == 1

    local = one({})
    assert isinstance(build_provider(local), LocalProvider)
    assert isinstance(build_launcher(local), SingleNodeLauncher)
    for name in SCHEDULERS:
        assert isinstance(build_launcher(one({"provider": name, "mpi": True})), SimpleLauncher)


def test_mpi_launcher_default_and_executor_address():
    assert one({"provider": "slurm", "mpi": True}).launcher_for_mpi == "srun"
    assert one({"provider": "pbspro", "mpi": True}).launcher_for_mpi == "mpiexec"
    assert one({"mpi": True}).launcher_for_mpi == "mpiexec"
    assert one({"provider": "pbspro", "mpi": True, "mpi_launcher": "aprun"}).launcher_for_mpi == (
        "aprun"
    )
    assert LocalhostScheduler().executor_options() == {"address": "127.0.0.1"}
    assert SlurmScheduler().executor_options() == {}
    local = build_executor("l", one({}))
    assert isinstance(local, HighThroughputExecutor) and local.address == "127.0.0.1"


def test_endpoint_options_come_from_the_scheduler():
    local, slurm, pbs = (get_scheduler(n) for n in SCHEDULERS)
    assert local.endpoint_options([]) == {}
    assert "partition" not in pbs.endpoint_options([one({"provider": "pbspro"})])
    opts = slurm.endpoint_options([one({"provider": "slurm", "partition": "p"})])
    assert list(opts) == ["partition", "account", "queue", "walltime", "nodes_per_block"]
    assert opts["partition"]["enum"] == ["p", ""]


def test_the_scheduler_classes_are_the_only_place_naming_providers():
    """No provider-name literals or comparisons outside chiltepin/schedulers."""
    root = Path(schedulers.__file__).parents[1]
    pattern = re.compile(r"\"(slurm|pbspro)\"|(provider|scheduler) [!=]= ")
    offenders = [
        f"{path}:{n}: {line.strip()}"
        for path in root.rglob("*.py")
        if "schedulers" not in path.parts
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == [], offenders


# ------------------------------------------------------- adding a scheduler is one class


class FluxScheduler(Scheduler):
    """A made-up fourth scheduler: one class, registered, and everything works with it."""

    name: ClassVar[str] = "fakeflux"
    provider_class: ClassVar[str] = "LocalProvider"
    htex_launcher: ClassVar[str] = "SingleNodeLauncher"
    default_mpi_launcher: ClassVar[str] = "srun"
    keys: ClassVar[frozenset[str]] = frozenset({"queue", "walltime"})

    def settings(self, res):
        return [Setting("nodes_per_block", res.nodes_per_block, "nodes_per_block")]

    def endpoint_options(self, executors):
        return {"nodes_per_block": {"type": "integer", "minimum": 1}}


@pytest.fixture
def fakeflux():
    schedulers.register(FluxScheduler)
    try:
        yield FluxScheduler
    finally:
        del SCHEDULERS[FluxScheduler.name]


def test_a_fourth_scheduler_is_one_class(fakeflux, tmp_path, monkeypatch):
    # The schema accepts it and applies its key rules.
    res = one({"provider": "fakeflux", "queue": "q", "nodes_per_block": 2})
    assert res.queue == "q" and res.scheduler.name == "fakeflux"
    with pytest.warns(ConfigWarning, match="'partition' is not used by provider 'fakeflux'"):
        one({"provider": "fakeflux", "partition": "p"})
    with pytest.warns(ConfigWarning) as caught:
        one({"provider": "localhost", "queue": "q"})
    assert "it applies to provider slurm or pbspro or fakeflux" in str(caught[0].message)
    assert (
        "fakeflux" in resource_json_schema()["$defs"]["Resource"]["properties"]["provider"]["enum"]
    )
    # Parsl objects.
    mpi = build_executor("m", one({"provider": "fakeflux", "mpi": True}))
    assert isinstance(mpi, MPIExecutor) and mpi.mpi_launcher == "srun"
    assert isinstance(mpi.provider, LocalProvider) and mpi.provider.nodes_per_block == 1
    htex = build_executor("h", one({"provider": "fakeflux", "nodes_per_block": 3}))
    assert htex.provider.nodes_per_block == 3 and isinstance(
        htex.provider.launcher, SingleNodeLauncher
    )
    # A site profile with it: site defaults reach its executors where they apply.
    (tmp_path / "ff.yaml").write_text(
        "scheduler: fakeflux\ndefaults:\n  walltime: '00:20:00'\n  partition: p\n"
        "executors:\n  c: {nodes_per_block: 2}\n"
    )
    monkeypatch.setenv("CHILTEPIN_SITE_PATH", str(tmp_path))
    from chiltepin.sites import load_site

    site_res = load_site("ff").resources(["c"])["c"]
    assert (site_res.provider, site_res.walltime, site_res.partition) == (
        "fakeflux",
        "00:20:00",
        None,
    )
    # The endpoint generator.
    plan = gen.EndpointPlan(name="ff", site="s", executors={"c": res}, default_executor="c")
    template = gen.template(plan)
    assert "type: LocalProvider" in template
    assert "nodes_per_block: {{ nodes_per_block | default(2, true) }}" in template
    props = gen.schema(plan)["properties"]
    assert props["nodes_per_block"] == {"type": "integer", "minimum": 1}


def test_unknown_provider_lists_the_registry():
    with pytest.raises(ConfigError, match="key 'provider'.*'localhost', 'slurm' or 'pbspro'"):
        one({"provider": "sge"})


def test_schedulers_import_no_parsl():
    code = (
        "import chiltepin.schedulers, chiltepin.config.schema, sys; print('parsl' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert json.loads(out.stdout.strip().lower()) is False, out.stderr
