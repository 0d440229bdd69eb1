"""Assemble a Parsl Config from validated resources (imports Parsl)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from parsl.config import Config

from chiltepin.config.blocks import retry_handler
from chiltepin.config.executors import build_executor
from chiltepin.config.schema import AnyResource, RemoteResource, Resource
from chiltepin.containers.base import Where
from chiltepin.monitoring import monitoring_hub

WorkerPrefix = Callable[[str, Resource], "str | None"]


def build_parsl_config(
    resources: Mapping[str, AnyResource],
    *,
    run_dir: str,
    worker_prefix: WorkerPrefix | None = None,
    client: Any = None,
    origins: Mapping[str, Where] | None = None,
) -> Config:
    """One executor per resource; Config-wide retries are the largest asked for.

    ``client`` (a ``globus_compute_sdk.Client``) is used by endpoint resources;
    ``origins`` (per executor) name where its settings came from in errors."""
    from chiltepin._parsl_lean import as_driver

    monitored = any(isinstance(r, Resource) and r.monitoring for r in resources.values())
    remote = any(isinstance(r, RemoteResource) for r in resources.values())
    as_driver(*(["sqlalchemy"] if monitored else []), *(["globus_compute_sdk"] if remote else []))
    executors = []
    for name, res in resources.items():
        prefix = worker_prefix(name, res) if worker_prefix and isinstance(res, Resource) else None
        where = (origins or {}).get(name)
        executors.append(
            build_executor(
                name, res, worker_prefix=prefix, client=client, run_dir=run_dir, where=where
            )
        )
    retries = max((r.retries for r in resources.values() if isinstance(r, Resource)), default=0)
    return Config(
        executors=executors,
        monitoring=monitoring_hub(run_dir) if monitored else None,
        run_dir=run_dir,
        retries=retries,
        retry_handler=retry_handler,
        strategy_period=1,
        usage_tracking=0,
        initialize_logging=True,
    )
