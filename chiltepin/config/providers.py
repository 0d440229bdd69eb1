"""Parsl providers and launchers for a validated resource (imports Parsl when called).

The resource's scheduler class (:mod:`chiltepin.schedulers`) knows the Parsl classes and
their keyword arguments; these functions are the stable entry points.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chiltepin.config.schema import Resource

if TYPE_CHECKING:
    from parsl.launchers.base import Launcher
    from parsl.providers.base import ExecutionProvider


def build_launcher(res: Resource) -> Launcher:
    """Workers of MPI resources start once per block (the MPI launcher spreads ranks);
    high-throughput workers start on every node of a block."""
    return res.scheduler.build_launcher(res)


def build_provider(res: Resource) -> ExecutionProvider:
    """The Parsl execution provider of ``res``'s scheduler, with its launcher."""
    return res.scheduler.build_provider(res)
