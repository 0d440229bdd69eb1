"""Parsl providers and launchers for a validated resource (imports Parsl)."""

from __future__ import annotations

from parsl.launchers import MpiExecLauncher, SimpleLauncher, SingleNodeLauncher, SrunLauncher
from parsl.launchers.base import Launcher
from parsl.providers import LocalProvider, PBSProProvider, SlurmProvider
from parsl.providers.base import ExecutionProvider

from chiltepin.config.schema import Resource


def build_launcher(res: Resource) -> Launcher:
    """Workers of MPI resources start once per block (the MPI launcher spreads ranks);
    high-throughput workers start on every node of a block."""
    if res.mpi:
        return SimpleLauncher()
    return {"localhost": SingleNodeLauncher, "slurm": SrunLauncher, "pbspro": MpiExecLauncher}[
        res.provider
    ]()


def build_provider(res: Resource) -> ExecutionProvider:
    worker_init = "\n".join(res.environment)
    blocks = dict(init_blocks=res.init_blocks, min_blocks=res.min_blocks, max_blocks=res.max_blocks)
    launcher = build_launcher(res)
    if res.provider == "localhost":
        return LocalProvider(
            nodes_per_block=1, launcher=launcher, worker_init=worker_init, **blocks
        )
    if res.provider == "slurm":
        return SlurmProvider(
            partition=res.partition,
            account=res.account,
            qos=res.queue,
            constraint=res.constraint,
            nodes_per_block=res.nodes_per_block,
            cores_per_node=res.cores_per_node,
            mem_per_node=res.mem_per_node,
            gpus_per_node=res.gpus_per_node,
            gres=res.gres,
            walltime=res.walltime,
            scheduler_options=res.scheduler_options or "",
            worker_init=worker_init,
            exclusive=res.exclusive,
            launcher=launcher,
            **blocks,
        )
    select = f"ngpus={res.gpus_per_node}" if res.gpus_per_node else ""
    return PBSProProvider(
        account=res.account,
        queue=res.queue,
        scheduler_options=res.scheduler_options or "",
        select_options=select,
        worker_init=worker_init,
        nodes_per_block=res.nodes_per_block,
        cpus_per_node=res.cores_per_node or 1,
        walltime=res.walltime,
        launcher=launcher,
        **blocks,
    )
