"""Parsl's worker-side programs start through chiltepin._parsl_lean: without the driver's
optional packages (globus_compute_sdk, sqlalchemy) while Parsl is imported, which task
code may still import, and a worker that becomes a driver gets them back."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

from chiltepin import Workflow
from chiltepin.tasks import python_task

LOCAL = {"compute": {"provider": "localhost", "max_workers_per_node": 1, "init_blocks": 1}}


@python_task
def driver_only_packages() -> dict:
    import sys

    loaded = sorted(
        {m.partition(".")[0] for m in sys.modules} & {"sqlalchemy", "globus_compute_sdk"}
    )
    import globus_compute_sdk
    import sqlalchemy

    return {
        "loaded before the task": loaded,
        "importable": [sqlalchemy.__name__, globus_compute_sdk.__name__],
    }


@python_task
def drive_a_monitored_workflow(run_dir: str) -> list[str]:
    """A worker that hosts a driver (as an agent's worker does)."""
    import sqlite3
    from pathlib import Path

    from chiltepin import Workflow
    from chiltepin.tasks import python_task

    @python_task
    def square(x: int) -> int:
        return x * x

    resources = {
        "inner": {"max_workers_per_node": 1, "init_blocks": 1, "monitoring": True},
    }
    with Workflow(resources, include=["inner"], run_dir=run_dir):
        assert square(3, executor="inner").result() == 9
    with sqlite3.connect(Path(run_dir) / "monitoring.db") as db:
        return [row[0] for row in db.execute("SELECT task_func_name FROM task")]


def pool_children(run_dir) -> dict[str, bool]:
    """The spawned children of the worker pool under ``run_dir`` (its multiprocessing
    manager and its workers): for each, whether it loaded the pool's program (zmq's
    library is mapped: the program imports zmq)."""
    import psutil

    pools = [
        p
        for p in psutil.process_iter(["cmdline"])
        if (p.info["cmdline"] or [])[1:4]
        == ["-m", "chiltepin._parsl_lean", "process_worker_pool.py"]
        and str(run_dir) in " ".join(p.info["cmdline"])
    ]
    assert len(pools) == 1, pools
    children = {}
    for child in pools[0].children():
        if "--multiprocessing-fork" not in child.cmdline():
            continue  # multiprocessing's resource tracker
        with open(f"/proc/{child.pid}/maps") as maps:
            children[str(child.pid)] = "zmq" in maps.read()
    return children


def test_workers_start_without_the_drivers_packages_and_tasks_still_import_them(tmp_path):
    with Workflow(LOCAL, run_dir=tmp_path / "run", include=["compute"]) as dfk:
        found = driver_only_packages(executor="compute").result(timeout=120)
        executor = dfk.executors["compute"]
        assert "chiltepin._parsl_lean" in executor.interchange_launch_cmd
        assert "chiltepin._parsl_lean process_worker_pool.py" in executor.launch_cmd
        children = pool_children(tmp_path / "run")
    assert found == {
        "loaded before the task": [],
        "importable": ["sqlalchemy", "globus_compute_sdk"],
    }
    # The pool's multiprocessing manager never loads the program; its one worker does.
    assert sorted(children.values()) == [False, True], children


def test_a_worker_can_drive_a_monitored_workflow(tmp_path):
    inner = tmp_path / "inner"
    with Workflow(LOCAL, run_dir=tmp_path / "run", include=["compute"]):
        tasks = drive_a_monitored_workflow(str(inner), executor="compute").result(timeout=180)
    assert tasks == ["square"]
    with sqlite3.connect(inner / "monitoring.db") as db:
        assert [row[0] for row in db.execute("SELECT task_func_name FROM task")] == ["square"]


def test_as_driver_gives_parsl_back_the_packages_it_found_missing():
    code = textwrap.dedent(
        """
        import sys
        from chiltepin import _parsl_lean as lean

        lean._program_code("interchange.py")
        import parsl.executors.globus_compute as gc
        import parsl.monitoring.monitoring as mon
        from parsl.executors import GlobusComputeExecutor

        before = (gc._globus_compute_enabled, mon._db_manager_excepts is None)
        lean.as_driver("globus_compute_sdk", "sqlalchemy")
        module = sys.modules[GlobusComputeExecutor.__module__]
        print(before, (module._globus_compute_enabled, mon._db_manager_excepts is None))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split("\n")[0] == "(False, False) (True, True)", done.stderr


def test_an_unknown_program_is_a_usage_error():
    done = subprocess.run(
        [sys.executable, "-m", "chiltepin._parsl_lean", "bash"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("usage: python -m chiltepin._parsl_lean"), done.stderr
    assert "Traceback" not in done.stderr
