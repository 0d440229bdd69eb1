"""Preflight: resources checked against the live Slurm cluster before anything is
submitted (``chiltepin site check`` and every ``Workflow`` start).

The cluster (tests/infra/slurm.sh) has accounting (slurmdbd, accounts, users, QOS) and
partitions with limits; ``tests/sites/testcluster-limits.yaml`` has executors that fit
and one executor per rule that breaks it. Each check is run against the real daemons.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from helpers.cli import one_line_error
from helpers.cli import run as cli
from helpers.infra import SITES

from chiltepin.errors import PreflightError
from chiltepin.schedulers.slurm import SlurmSnapshot, _gpus, slurm_seconds

PROFILE = str(SITES / "testcluster-limits.yaml")

#: executor -> (key at fault, words of the message, values the hint must list)
BROKEN = {
    "no_partition": ("partition", "'nosuch' does not exist", ["compute", "debug", "short"]),
    "down": ("partition", "'maint' is DOWN", ["compute", "short"]),
    "walltime": ("walltime", "above partition 'short' MaxTime 00:05:00", ["at most 00:05:00"]),
    "nodes": ("nodes_per_block", "more than partition 'short' allows (1)", ["at most 1"]),
    "cores": ("cores_per_node", "cores_per_node 8", ["its nodes have 4 CPUs"]),
    "gpus": ("gpus_per_node", "gpus_per_node 1", ["its nodes have 0 GPUs"]),
    "memory": ("mem_per_node", "mem_per_node 3", ["its nodes have 2 GB of memory"]),
    "no_account": ("account", "account 'nosuch' does not exist", ["chiltepin", "science"]),
    "other_account": ("account", "is not associated with account 'other'", ["science"]),
    "no_qos": ("queue", "QOS 'nosuch' does not exist", ["high", "normal"]),
    "other_qos": ("queue", "may not use QOS 'restricted'", ["high", "normal"]),
}


def test_slurm_time_limits_parse():
    assert slurm_seconds("00:05:00") == 300
    assert slurm_seconds("7-00:00:00") == 7 * 86400
    assert slurm_seconds("1-02:03:04") == 93784
    assert slurm_seconds("30") == 1800
    assert slurm_seconds("05:30") == 330
    assert slurm_seconds("UNLIMITED") is None
    assert _gpus("gpu:4") == 4
    assert _gpus("gpu:a100:2(S:0-1),gpu:v100:1") == 3
    assert _gpus("(null)") == 0


@pytest.fixture
def env(slurm):
    """The CLI's environment: the cluster's SLURM_CONF and the test profiles."""
    SlurmSnapshot.forget()
    return {**os.environ, "CHILTEPIN_SITE_PATH": str(SITES)}


def check(env, *executors: str, json_out: bool = True):
    args = [a for e in executors for a in ("--executor", e)]
    out = cli(
        "site",
        "check",
        "testcluster-limits",
        *args,
        *(["--json"] if json_out else []),
        env=env,
        timeout=120,
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


def test_executors_that_fit_pass(env):
    out = check(env, "fits", "short_ok")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] is True
    assert {n: e["ok"] for n, e in report["executors"].items()} == {"fits": True, "short_ok": True}


@pytest.mark.parametrize("executor", sorted(BROKEN))
def test_each_rule_fails_for_real(env, executor):
    key, words, valid = BROKEN[executor]
    out = check(env, executor)
    assert out.returncode == 2, (out.stdout, out.stderr)
    problems = json.loads(out.stdout)["executors"][executor]["problems"]
    assert [p["key"] for p in problems] == [key], problems
    (problem,) = problems
    assert words in problem["message"]
    assert problem["file"] == PROFILE and isinstance(problem["line"], int)
    for value in valid:
        assert value in problem["hint"], problem


def test_text_output_is_one_error_line_per_problem(env):
    out = check(env, "fits", "walltime", "other_qos", json_out=False)
    assert out.returncode == 2
    assert out.stdout.strip() == "fits: ok"
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"chiltepin: error: {PROFILE}:")
    assert "executor 'walltime': key 'walltime'" in lines[0]
    assert "executor 'other_qos': key 'queue'" in lines[1]
    assert "(hint: the scheduler reports: high, normal)" in lines[1]


def test_the_check_follows_the_live_partition_state(env):
    """The same executor passes once its partition is brought up, and fails again when
    it goes down: the check asks the scheduler, not the profile."""
    scontrol = ["scontrol", "update", "PartitionName=maint"]
    subprocess.run([*scontrol, "State=UP"], check=True, capture_output=True, timeout=30)
    try:
        up = check(env, "down")
    finally:
        subprocess.run([*scontrol, "State=DOWN"], check=True, capture_output=True, timeout=30)
    assert up.returncode == 0, up.stderr
    assert check(env, "down").returncode == 2


def test_workflow_start_refuses_before_submitting(env, monkeypatch, run_dir):
    """A Workflow on a misfit executor raises before any job or process starts (the
    ``slurm`` fixture fails the test if a job is left)."""
    from chiltepin import Workflow

    monkeypatch.setenv("CHILTEPIN_SITE_PATH", str(SITES))
    workflow = Workflow(
        site="testcluster-limits", include=["walltime", "other_account"], run_dir=run_dir
    )
    with pytest.raises(PreflightError) as info:
        workflow.start()
    assert workflow.dfk is None
    assert len(info.value.problems) == 2
    assert "key 'walltime'" in str(info.value) and "1 more" in str(info.value)
    assert not run_dir.exists()


def test_preflight_false_skips_the_automatic_check(env, monkeypatch, tmp_path, run_dir):
    """``preflight: false`` (here in the defaults of a profile layered over the test
    one) lets the workflow start; ``site check`` still checks on demand."""
    from chiltepin import Workflow

    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "testcluster-limits.yaml").write_text("merge: true\ndefaults:\n  preflight: false\n")
    monkeypatch.setenv("CHILTEPIN_SITE_PATH", os.pathsep.join([str(SITES), str(layer)]))
    with Workflow(site="testcluster-limits", include=["walltime"], run_dir=run_dir) as dfk:
        assert "walltime" in dfk.executors
    env = {**env, "CHILTEPIN_SITE_PATH": os.environ["CHILTEPIN_SITE_PATH"]}
    assert check(env, "walltime").returncode == 2


def test_no_scheduler_commands_is_one_error(env, tmp_path):
    """Off the cluster (no scontrol on PATH) the check says so, exit 1."""
    bare = {**env, "PATH": str(tmp_path)}
    out = cli("site", "check", "testcluster-limits", "--executor", "fits", env=bare)
    line = one_line_error(out, code=1)
    assert "'scontrol' is not on PATH" in line
