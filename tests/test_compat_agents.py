"""chiltepin 0.1.x's Python API for workflows and agents, on one implementation.

0.1.7 renamed ``AgentSystem`` to ``AgentRuntime`` and ``ChiltepinManager`` to ``Manager``
(modules ``chiltepin.agent_runtime`` and ``chiltepin.manager``); both spellings are the
same classes. ``Workflow`` behaves as 0.1.x's: ``start()`` twice is an error,
``cleanup(suppress_exceptions=...)``, a failed cleanup keeps ``dfk``, the log file
handler goes away at cleanup.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import guide_agents as G
import pytest
from academy.exchange import LocalExchangeFactory
from academy.handle import Handle
from helpers import tasks as ts

import chiltepin
from chiltepin import Workflow
from chiltepin.config.schema import ExchangeSettings
from chiltepin.errors import ConfigError, ServiceError

# --- names --------------------------------------------------------------------------------


def test_both_spellings_are_one_implementation():
    from chiltepin import (
        AgentRuntime,
        AgentSystem,
        ChiltepinManager,
        Manager,
        agent_action,
        agent_loop,
        agents,
        chiltepin_agent,
    )
    from chiltepin.agent_runtime import AgentRuntime as RuntimeFromModule
    from chiltepin.manager import Manager as ManagerFromModule

    assert AgentRuntime is AgentSystem is RuntimeFromModule is agents.AgentSystem
    assert Manager is ChiltepinManager is ManagerFromModule is agents.ChiltepinManager
    assert chiltepin_agent is agents.chiltepin_agent
    assert (agent_action, agent_loop) == (agents.agent_action, agents.agent_loop)
    assert {"Manager", "AgentRuntime", "chiltepin_agent"} <= set(dir(chiltepin))
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        chiltepin.Nothing  # noqa: B018


def test_imports_stay_lazy_and_submodules_are_attributes():
    code = (
        "import sys, chiltepin\n"
        "heavy = ('parsl', 'academy', 'pydantic', 'globus_compute_sdk')\n"
        "assert not [m for m in heavy if m in sys.modules], sorted(sys.modules)\n"
        "import chiltepin.manager, chiltepin.agent_runtime\n"
        "assert 'academy' not in sys.modules and 'parsl' not in sys.modules\n"
        "assert 'chiltepin.tasks' not in sys.modules\n"
        "assert callable(chiltepin.tasks.python_task)\n"
        "assert chiltepin.manager.Manager is chiltepin.Manager\n"
        "assert 'parsl' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- AgentRuntime(exchange_address=..., auth_method=...) ----------------------------------------


@pytest.mark.parametrize(
    ("address", "auth", "expected"),
    [
        (None, None, ExchangeSettings(kind="embedded")),  # ours: offline by default
        ("http://127.0.0.1:8700", None, ExchangeSettings(kind="http", url="http://127.0.0.1:8700")),
        (
            "redis://127.0.0.1:6380",
            None,
            ExchangeSettings(kind="redis", host="127.0.0.1", port=6380),
        ),
        (None, "globus", ExchangeSettings(kind="hosted")),
        (
            "https://exchange.example.org/v1",
            "globus",
            ExchangeSettings(kind="hosted", url="https://exchange.example.org/v1"),
        ),
    ],
)
def test_exchange_address_and_auth_method_map_onto_exchange_kinds(address, auth, expected):
    runtime = chiltepin.AgentRuntime(Workflow(), ["local"], address, auth)
    assert runtime.exchange == expected
    assert (runtime.exchange_address, runtime.auth_method) == (address, auth)
    assert runtime.executors is None  # made by manager()


def test_exchange_address_mistakes_are_config_errors():
    with pytest.raises(ConfigError, match="key 'exchange_address'.*'ftp://x' is not an exchange"):
        chiltepin.AgentRuntime(Workflow(), ["local"], exchange_address="ftp://x")
    with pytest.raises(ConfigError, match="auth_method 'token' is not supported"):
        chiltepin.AgentRuntime(Workflow(), ["local"], auth_method="token")
    with pytest.raises(ConfigError, match="either exchange or exchange_address"):
        chiltepin.AgentRuntime(
            Workflow(), ["local"], exchange_address="http://h:1", exchange={"kind": "redis"}
        )
    with pytest.raises(ConfigError, match="key 'url'"):
        chiltepin.AgentRuntime(Workflow(), exchange_address="not a url", auth_method="globus")


async def test_executors_are_the_managers_parsl_executors(tmp_path, no_leftovers):
    workflow = Workflow(include=["local"], run_dir=tmp_path / "r")
    workflow.start()
    try:
        runtime = chiltepin.AgentRuntime(workflow=workflow, executor_names=["local"])
        async with await runtime.manager() as manager:
            assert isinstance(manager, chiltepin.Manager)
            assert list(runtime.executors) == ["local"]
            assert runtime.executors["local"].executors == ["local"]
            assert manager.executor_names == ["event_loop", "local"]
    finally:
        workflow.cleanup()


# --- Manager.launch as 0.1.x calls it ----------------------------------------------------------


async def test_launch_takes_args_by_position_and_passes_no_hidden_keyword(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # The agent runs in this process (Academy's event-loop executor), its workflow too.
    async with await chiltepin.Manager.from_exchange_factory(LocalExchangeFactory()) as manager:
        # TypedAgent.__init__(values) would reject any extra keyword.
        model = await manager.launch(G.TypedAgent, ([1.0, 3.0],), agent_workflow_include=["local"])
        assert isinstance(model, Handle)
        assert await model.mean(executor="local") == 2.0
        info = await model.agent_workflow_info()
        assert info["executors"] == ["local"] and info["running"]
        assert info["run_dir"].startswith(str(tmp_path / "runinfo" / "agents" / "TypedAgent"))


# --- Workflow ---------------------------------------------------------------------------------


def test_start_twice_is_refused_and_client_is_kept(tmp_path, no_leftovers):
    client = object()  # stands for a globus_compute_sdk.Client
    wf = Workflow(include=["local"], run_dir=tmp_path / "r", client=client)
    assert wf.client is client
    dfk = wf.start()
    try:
        with pytest.raises(RuntimeError, match=r"already started. Call cleanup\(\) first"):
            wf.start()
        assert wf.dfk is dfk
    finally:
        wf.cleanup()
    assert wf.dfk is None


def _file_handlers(path) -> list[logging.FileHandler]:
    return [
        h
        for h in logging.getLogger("parsl").handlers
        if isinstance(h, logging.FileHandler) and h.baseFilename == str(path)
    ]


def test_the_log_file_handler_is_removed_at_cleanup(tmp_path, no_leftovers):
    log = tmp_path / "wf.log"
    for _ in range(2):  # a long-running program runs many workflows
        with Workflow(include=["local"], run_dir=tmp_path / "r", log_file=log):
            (handler,) = _file_handlers(log)
            assert ts.add(1, 2).result(timeout=60) == 3
        assert _file_handlers(log) == []
        assert handler.stream is None  # closed, not only detached
    assert "DataFlowKernel" in log.read_text()


def _failing_cleanup(monkeypatch, dfk) -> None:
    """Make ``dfk.cleanup`` fail after really cleaning up (nothing is left running)."""
    real = dfk.cleanup

    def cleanup() -> None:
        real()
        raise OSError("disk full")

    monkeypatch.setattr(dfk, "cleanup", cleanup)


def test_a_failed_cleanup_keeps_dfk_and_chains_the_cause(tmp_path, monkeypatch, no_leftovers):
    wf = Workflow(include=["local"], run_dir=tmp_path / "r", log_file=tmp_path / "wf.log")
    dfk = wf.start()
    _failing_cleanup(monkeypatch, dfk)
    with pytest.raises(ServiceError, match="workflow cleanup failed: OSError: disk full") as info:
        wf.cleanup()
    assert isinstance(info.value.__cause__, OSError)
    assert wf.dfk is dfk  # kept for inspection
    assert _file_handlers(tmp_path / "wf.log") == []  # the other steps still ran
    with pytest.raises(RuntimeError, match="already started"):
        wf.start()
    wf.cleanup()  # a retry finishes what is left
    assert wf.dfk is None
    with Workflow(include=["local"], run_dir=tmp_path / "next"):  # Parsl is free again
        assert ts.add(2, 2).result(timeout=60) == 4


def test_cleanup_can_suppress_its_exceptions(tmp_path, monkeypatch, caplog, no_leftovers):
    wf = Workflow(include=["local"], run_dir=tmp_path / "r")
    dfk = wf.start()
    _failing_cleanup(monkeypatch, dfk)
    with caplog.at_level(logging.WARNING, logger="chiltepin.workflow"):
        wf.cleanup(suppress_exceptions=True)
    assert "workflow cleanup failed (suppressed): OSError: disk full" in caplog.text
    assert wf.dfk is dfk
    wf.cleanup()
    assert wf.dfk is None


def test_a_cleanup_failure_never_hides_the_users_exception(tmp_path, monkeypatch, no_leftovers):
    wf = Workflow(include=["local"], run_dir=tmp_path / "r")
    with pytest.raises(KeyError, match="user error"):
        with wf as dfk:
            _failing_cleanup(monkeypatch, dfk)
            raise KeyError("user error")
    assert wf.dfk is dfk
    wf.cleanup()
