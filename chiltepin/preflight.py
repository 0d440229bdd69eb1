"""Check resources against the live scheduler before anything is submitted.

The costly mistakes a schema cannot see (a partition that does not exist or is down, a
walltime above its limit, more nodes or cores than it has, an account or QOS the user may
not use) are found by asking the scheduler once (see ``Scheduler.preflight``); each
problem becomes one :class:`~chiltepin.errors.ConfigError` naming the profile file (and
line), the executor and the key, with the values the scheduler reported as its hint.

:func:`preflight` runs when a :class:`~chiltepin.Workflow` starts (and so when an
``AgentSystem`` or agent service starts its workflow); a resource with
``preflight: false`` (in the profile's ``defaults``, an executor, or a config entry) is
skipped. ``chiltepin site check`` runs :func:`check` on demand.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from chiltepin.errors import ConfigError, PreflightError, SchedulerUnavailable

if TYPE_CHECKING:
    from chiltepin.config.source import ResolvedResources

logger = logging.getLogger(__name__)


def check(
    resolved: ResolvedResources, names: Iterable[str] | None = None, *, skip_disabled: bool = False
) -> dict[str, list[ConfigError]]:
    """The problems of the executors ``names`` (default: all), by executor; an executor
    whose scheduler checks nothing (localhost, PBS Pro, endpoints) has none.

    ``skip_disabled``: leave out resources with ``preflight: false``. Raises
    SchedulerUnavailable when the scheduler cannot be asked.
    """
    from chiltepin.config.schema import Resource

    wanted = list(resolved.resources) if names is None else list(names)
    by_scheduler: dict[str, dict[str, Resource]] = {}
    for name in wanted:
        res = resolved.resources.get(name)
        if not isinstance(res, Resource) or (skip_disabled and not res.preflight):
            continue
        by_scheduler.setdefault(res.provider, {})[name] = res
    found: dict[str, list[ConfigError]] = {name: [] for name in wanted}
    for provider, resources in by_scheduler.items():
        from chiltepin.schedulers import get_scheduler

        scheduler = get_scheduler(provider)
        for name, problems in scheduler.preflight(resources).items():
            found[name] = [_error(resolved, name, p) for p in problems]
    return found


def preflight(resolved: ResolvedResources, names: Iterable[str]) -> None:
    """Raise PreflightError (every problem logged) if the executors ``names`` do not fit
    their scheduler. A scheduler that cannot be asked is logged and not checked."""
    try:
        found = check(resolved, names, skip_disabled=True)
    except SchedulerUnavailable as exc:
        logger.warning("preflight skipped: %s", exc)
        return
    problems = [p for errors in found.values() for p in errors]
    for problem in problems:
        logger.error("preflight: %s", problem)
    if problems:
        raise PreflightError(problems)


def _error(resolved: ResolvedResources, name: str, problem) -> ConfigError:  # noqa: ANN001
    """``problem`` of executor ``name`` as one located error."""
    where = resolved.provenance.get(name, {})
    _label, source, line = where.get(problem.key, (None, None, None))
    site = resolved.site
    if source is None:
        config = resolved.source.config
        source = config if isinstance(config, str) else None
        if site is not None and where:
            source = where.get("provider", (None, None, None))[1]
    hint = None
    if problem.valid:
        hint = "the scheduler reports: " + ", ".join(problem.valid)
    return ConfigError(
        problem.message,
        source=source,
        line=line,
        entry=name,
        entry_kind=f"site '{site}' executor" if site else "executor",
        key=problem.key,
        hint=hint,
    )
