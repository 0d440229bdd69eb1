"""Parsl executors for validated resources (imports Parsl)."""

from __future__ import annotations

from typing import Any

from parsl.executors.base import ParslExecutor

from chiltepin.config.providers import build_provider
from chiltepin.config.schema import AnyResource, RemoteResource

#: How long (ms) the interchange and the executor's result thread wait on their sockets
#: before looking around again. Parsl's default (10) wakes an idle workflow 100 times a
#: second in each of two processes, which costs every idle agent about 1.5 CPU seconds a
#: minute. Messages wake them at once whatever the period, so a longer one costs no task
#: latency; it only bounds how late an idle executor notices its shutdown.
POLL_PERIOD_MS = 100


def build_executor(
    name: str, res: AnyResource, *, worker_prefix: str | None = None, client: Any = None
) -> ParslExecutor:
    """Build the Parsl executor labelled ``name``.

    ``worker_prefix`` is a command (e.g. a container runtime invocation) that the
    worker pool command is appended to, so that workers start inside it. ``client`` is a
    ``globus_compute_sdk.Client`` for endpoint resources (default: one from the login).
    """
    if isinstance(res, RemoteResource):
        return _globus_compute(name, res, client)
    from parsl.executors import HighThroughputExecutor, MPIExecutor

    from chiltepin.containers.wiring import worker_launch_cmd

    launch_cmd = worker_launch_cmd(worker_prefix)
    provider = build_provider(res)
    if res.mpi:
        return MPIExecutor(
            label=name,
            provider=provider,
            max_workers_per_block=res.max_mpi_apps,
            mpi_launcher=res.launcher_for_mpi,
            launch_cmd=launch_cmd,
            poll_period=POLL_PERIOD_MS,
        )
    return HighThroughputExecutor(
        label=name,
        provider=provider,
        cores_per_worker=res.cores_per_worker,
        max_workers_per_node=res.max_workers_per_node,
        launch_cmd=launch_cmd,
        poll_period=POLL_PERIOD_MS,
        **res.scheduler.executor_options(),
    )


def _globus_compute(name: str, res: RemoteResource, client: Any = None) -> ParslExecutor:
    from globus_compute_sdk import Executor
    from parsl.executors import GlobusComputeExecutor

    from chiltepin.endpoint_ids import resolve_endpoint_id
    from chiltepin.globus_auth import ensure_logged_in

    endpoint_id = resolve_endpoint_id(res.endpoint)
    if client is None:  # a caller's own client carries its own authorization
        ensure_logged_in(f"resource '{name}' (Globus Compute endpoint {endpoint_id})")
    return GlobusComputeExecutor(
        executor=Executor(
            endpoint_id=endpoint_id, client=client, user_endpoint_config=res.user_endpoint_config
        ),
        label=name,
    )
