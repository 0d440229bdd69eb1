"""Parsl executors for validated resources (imports Parsl)."""

from __future__ import annotations

from typing import Any

from parsl.executors.base import ParslExecutor

from chiltepin.config.network import executor_network
from chiltepin.config.providers import build_provider
from chiltepin.config.schema import AnyResource, RemoteResource
from chiltepin.containers.base import Where

#: How long (ms) the interchange and the executor's result thread wait on their sockets
#: before looking around again. Parsl's default (10) wakes an idle workflow 100 times a
#: second in each of two processes, which costs every idle agent about 1.5 CPU seconds a
#: minute. Messages wake them at once whatever the period, so a longer one costs no task
#: latency; it only bounds how late an idle executor notices its shutdown.
POLL_PERIOD_MS = 100


def build_executor(
    name: str,
    res: AnyResource,
    *,
    worker_prefix: str | None = None,
    client: Any = None,
    run_dir: str | None = None,
    where: Where | None = None,
) -> ParslExecutor:
    """Build the Parsl executor labelled ``name``.

    ``worker_prefix`` is a command (e.g. a container runtime invocation) that the
    worker pool command is appended to, so that workers start inside it. ``client`` is a
    ``globus_compute_sdk.Client`` for endpoint resources (default: one from the login).
    ``run_dir``: the workflow's run directory; its ledger records the executor's jobs and
    interchange, which a watchdog stops if this process dies (:mod:`chiltepin.watchdog`).
    ``where`` names the executor's settings in errors (an interface not on this host).
    """
    if isinstance(res, RemoteResource):
        return _globus_compute(name, res, client)
    from parsl.executors import HighThroughputExecutor, MPIExecutor

    from chiltepin.config.blocks import BlockWatch
    from chiltepin.containers.wiring import worker_launch_cmd
    from chiltepin.watchdog import Ledger, launch_command

    where = where or Where(executor=name)
    network = {
        **res.scheduler.executor_options(),
        **executor_network(res, lambda message, key, hint: where.key_error(message, key, hint)),
    }
    provider = build_provider(res)
    if hasattr(provider, "chiltepin_ledger"):
        provider.chiltepin_ledger = Ledger(run_dir) if run_dir else None
        provider.chiltepin_executor = name
        provider.chiltepin_status_period = res.heartbeat_threshold
    common: dict[str, Any] = {
        "label": name,
        "provider": provider,
        "launch_cmd": worker_launch_cmd(worker_prefix),
        "heartbeat_period": res.heartbeat_period,
        "heartbeat_threshold": res.heartbeat_threshold,
        "block_error_handler": BlockWatch(res),
        "encrypted": res.encrypted,
        "poll_period": POLL_PERIOD_MS,
    }
    if res.mpi:
        executor: Any = MPIExecutor(
            max_workers_per_block=res.max_mpi_apps,
            mpi_launcher=res.launcher_for_mpi,
            **common,
            **network,
        )
    else:
        executor = HighThroughputExecutor(
            cores_per_worker=res.cores_per_worker,
            max_workers_per_node=res.max_workers_per_node,
            **common,
            **network,
        )
    if run_dir:
        # Set after construction: MPIExecutor's signature types this argument as a str
        # (HTEX's as a sequence, which is what Popen gets) and its type checker refuses
        # the sequence.
        executor.interchange_launch_cmd = launch_command(run_dir)
    return executor


def _globus_compute(name: str, res: RemoteResource, client: Any = None) -> ParslExecutor:
    from globus_compute_sdk import Executor
    from parsl.executors import GlobusComputeExecutor

    from chiltepin.endpoint_ids import resolve_endpoint_id
    from chiltepin.globus_auth import ensure_logged_in

    endpoint_id = resolve_endpoint_id(res.endpoint)
    if client is None:  # a caller's own client carries its own authorization
        ensure_logged_in(f"executor '{name}' (Globus Compute endpoint {endpoint_id})")
    return GlobusComputeExecutor(
        executor=Executor(
            endpoint_id=endpoint_id, client=client, user_endpoint_config=res.user_endpoint_config
        ),
        label=name,
    )
