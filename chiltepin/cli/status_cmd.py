"""``chiltepin status``: this user's running workflows and agent services."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    status = sub.add_parser(
        "status", help="this user's running workflows (blocks, tasks) and agent services"
    )
    status.add_argument(
        "--json", action="store_true", help="print JSON (keys listed in the README)"
    )
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from chiltepin.agents.serve.control import service_rows
    from chiltepin.runs import running_runs

    runs = running_runs()
    services = service_rows()
    by_pid: dict[Any, list[str]] = {}
    for run in runs:
        by_pid.setdefault((run.get("host"), run.get("pid")), []).append(run["run_dir"])
    for row in services:
        row["workflows"] = by_pid.get((row.get("host"), row.get("pid")), [])
    if args.json:
        from chiltepin.cli.output import print_json

        print_json({"workflows": [_run_json(r) for r in runs], "services": services})
        return 0
    if not runs and not services:
        print("no running workflows or agent services")
        return 0
    for run in runs:
        tasks = run.get("tasks") or {}
        groups = ("pending", "running", "done", "failed")
        counts = ", ".join(f"{tasks.get(k, 0)} {k}" for k in groups)
        print(f"workflow {run['run_dir']}")
        print(f"  site {run.get('site') or '-'}, pid {run.get('pid')}, tasks: {counts}")
        for label, executor in (run.get("executors") or {}).items():
            blocks = executor.get("blocks") or []
            if not blocks:
                print(f"  {label}: no blocks")
            for block in blocks:
                job = f" job {block['job_id']}" if block.get("job_id") else ""
                reason = f" ({block['reason']})" if block.get("reason") else ""
                number, state = block.get("block", "?"), block.get("state", "?")
                print(f"  {label}: block {number}{job} {state}{reason}")
        for agent in run.get("agents") or []:
            print(
                f"  agent {agent.get('agent_class')} {agent.get('agent_id')} on "
                f"{agent.get('executor')}: {agent.get('state')}, exchange {agent.get('exchange')}"
            )
    for row in services:
        print(
            f"agent service {row['name']}: {row['status']}, {row.get('agent_class') or '-'}, "
            f"exchange {row.get('exchange') or '-'}, pid {row.get('pid') or '-'}"
        )
    return 0


def _run_json(run: dict[str, Any]) -> dict[str, Any]:
    keys = ("run_dir", "run_id", "site", "pid", "host", "started", "updated", "executors", "tasks")
    return {**{key: run.get(key) for key in keys}, "agents": run.get("agents") or []}
