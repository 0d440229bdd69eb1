"""Parsl executors for validated resources (imports Parsl)."""

from __future__ import annotations

from parsl.executors.base import ParslExecutor

from chiltepin.config.providers import build_provider
from chiltepin.config.schema import AnyResource, RemoteResource


def build_executor(
    name: str, res: AnyResource, *, worker_prefix: str | None = None
) -> ParslExecutor:
    """Build the Parsl executor labelled ``name``.

    ``worker_prefix`` is a command (e.g. a container runtime invocation) that the
    worker pool command is appended to, so that workers start inside it.
    """
    if isinstance(res, RemoteResource):
        return _globus_compute(name, res)
    from parsl.executors import HighThroughputExecutor, MPIExecutor
    from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD

    launch_cmd = f"{worker_prefix} {DEFAULT_LAUNCH_CMD}" if worker_prefix else None
    provider = build_provider(res)
    if res.mpi:
        return MPIExecutor(
            label=name,
            provider=provider,
            max_workers_per_block=res.max_mpi_apps,
            mpi_launcher=res.launcher_for_mpi,
            launch_cmd=launch_cmd,
        )
    return HighThroughputExecutor(
        label=name,
        provider=provider,
        cores_per_worker=res.cores_per_worker,
        max_workers_per_node=res.max_workers_per_node,
        launch_cmd=launch_cmd,
        **res.scheduler.executor_options(),
    )


def _globus_compute(name: str, res: RemoteResource) -> ParslExecutor:
    from globus_compute_sdk import Executor
    from parsl.executors import GlobusComputeExecutor

    from chiltepin.endpoint_ids import resolve_endpoint_id
    from chiltepin.globus_auth import ensure_logged_in

    endpoint_id = resolve_endpoint_id(res.endpoint)
    ensure_logged_in(f"resource '{name}' (Globus Compute endpoint {endpoint_id})")
    return GlobusComputeExecutor(
        executor=Executor(endpoint_id=endpoint_id, user_endpoint_config=res.user_endpoint_config),
        label=name,
    )
