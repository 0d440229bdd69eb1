"""``chiltepin image``: pull, list, locate and check the container images workers run in."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from chiltepin.cli.site_cmd import site_names


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("image", help="container images for workers (pull, list, path, check)")
    group.set_defaults(group_parser=group)
    cmds = group.add_subparsers(metavar="SUBCOMMAND")

    def common(p: argparse.ArgumentParser, image: bool = True) -> None:
        p.add_argument(
            "--site", help="site profile (default: the one matching this host)"
        ).completer = site_names  # type: ignore[attr-defined]
        p.add_argument(
            "--runtime",
            help="apptainer, singularity, podman, docker or charliecloud (default: the site's)",
        )
        p.add_argument("--cache-dir", help="image cache directory (default: the site's)")
        if image:
            p.add_argument("image", nargs="?", help="image reference (default: the site's)")

    pull = cmds.add_parser(
        "pull",
        help="pull the image into the site's cache or store (no-op if the digest is there)",
    )
    common(pull)
    pull.add_argument("--force", action="store_true", help="pull even if already present")
    pull.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    pull.set_defaults(handler=_pull)

    listing = cmds.add_parser("list", help="list images in the site's cache or store")
    common(listing, image=False)
    listing.add_argument(
        "--json", action="store_true", help="print JSON (keys listed in the README)"
    )
    listing.set_defaults(handler=_list)

    path = cmds.add_parser("path", help="print where the image is (what workers run)")
    common(path)
    path.set_defaults(handler=_path)

    check = cmds.add_parser(
        "check", help="validate the site's containers as a workflow would; print the commands"
    )
    check.add_argument("--site", help="site profile (default: the one matching this host)")
    check.add_argument("--executor", nargs="+", metavar="NAME", help="only these executors")
    check.set_defaults(handler=_check)


def _pull(args: argparse.Namespace) -> int:
    from chiltepin.cli import output
    from chiltepin.containers import PullError
    from chiltepin.containers.base import check_writable_dir, default_cache_dir

    status = 0
    for target in _targets(args):
        runtime, settings, where = target
        runtime.check_image_value(settings.image, where)
        if runtime.image_kind != "store":
            check_writable_dir(settings.cache_dir or default_cache_dir(), where)
        runtime.require(where)
        dest = runtime.image_path(settings.image, settings.cache_dir)
        place = "its store" if runtime.image_kind == "store" else dest
        output.info(f"chiltepin: {runtime.name}: {settings.image} -> {place}")
        progress = not (args.quiet or output.quiet())
        try:
            result = runtime.pull(
                settings.image, settings.cache_dir, progress=progress, force=args.force
            )
        except PullError as exc:
            print(f"chiltepin: error: {where}: {exc}", file=sys.stderr)
            status = 1
            continue
        state = (
            f"pulled in {result.seconds:.1f} s"
            if result.changed
            else "already present (same digest), nothing pulled"
        )
        print(f"{runtime.name}\t{result.image}\t{result.digest or '-'}\t{state}")
    return status


def _list(args: argparse.Namespace) -> int:
    from chiltepin.containers import PullError

    args.image = None
    groups = []
    seen: set[tuple[str, str | None]] = set()
    for runtime, settings, where in _targets(args):
        key = (runtime.name, None if runtime.image_kind == "store" else settings.cache_dir)
        if key in seen:
            continue
        seen.add(key)
        runtime.require(where)
        wanted = runtime.image_path(settings.image, settings.cache_dir)
        cache = None if runtime.image_kind == "store" else wanted.rsplit("/", 1)[0]
        if not args.json:
            print(f"# {runtime.name} {'store' if cache is None else f'cache {cache}'}")
        try:
            images = runtime.list_images(settings.cache_dir)
        except PullError as exc:
            print(f"chiltepin: error: {where}: {exc}", file=sys.stderr)
            return 1
        if args.json:
            rows = [
                {
                    "name": i.name,
                    "digest": i.digest,
                    "size": i.size,
                    "path": i.path,
                    "labels": dict(i.labels) if i.labels is not None else None,
                    "wanted": wanted in (i.name, i.path),
                }
                for i in images
            ]
            groups.append({"runtime": runtime.name, "cache_dir": cache, "images": rows})
            continue
        for info in images:
            mark = "*" if wanted in (info.name, info.path) else " "
            fields = [info.name, info.digest or "-", info.size or "-"]
            if info.path:
                fields.append(info.path)
            version = (info.labels or {}).get("org.opencontainers.image.version")
            if version:  # read from the image itself (singularity inspect)
                fields.append(f"version {version}")
            print(mark, "\t".join(fields))
    if args.json:
        from chiltepin.cli.output import print_json

        print_json(groups)
    return 0


def _path(args: argparse.Namespace) -> int:
    status = 0
    for runtime, settings, where in _targets(args):
        runtime.check_image_value(settings.image, where)
        path = runtime.image_path(settings.image, settings.cache_dir)
        print(path)
        if runtime.available() or runtime.image_kind != "store":
            if not runtime.has_image(settings.image, settings.cache_dir):
                print(
                    f"chiltepin: {path} is not there yet: run 'chiltepin image pull'",
                    file=sys.stderr,
                )
                status = 1
    return status


def _check(args: argparse.Namespace) -> int:
    import shlex

    from chiltepin.containers import Where
    from chiltepin.containers.wiring import checked_runtime

    site = _load_site(args.site)
    names = args.executor or site.executor_names
    unknown = [n for n in names if n not in site.executor_names]
    if unknown:
        from chiltepin.errors import ConfigError

        raise ConfigError(
            f"site '{site.name}' has no executor '{unknown[0]}'",
            hint=f"executors: {', '.join(site.executor_names)}",
        )
    for name in names:
        resource, provenance = site.resolve(name)
        settings = resource.container
        if settings is None:
            print(f"{name}: on the host (no container)")
            continue
        runtime = checked_runtime(resource, Where.of(site.name, name, provenance))
        kwargs: dict[str, Any] = {"run_dir": "RUN_DIR", "labels": {}}
        if resource.mpi:
            command = runtime.exec_command(settings, **kwargs)
            print(f"{name}: MPI ranks: $PARSL_MPI_PREFIX {shlex.join(command)} PROGRAM ...")
        else:
            command = runtime.worker_command(settings, workdir="WORKDIR", **kwargs)
            print(f"{name}: workers: {shlex.join(command)} process_worker_pool.py ...")
    return 0


# ---------------------------------------------------------------------- helpers
def _load_site(name: str | None) -> Any:
    from chiltepin.errors import ConfigError
    from chiltepin.sites import SiteRegistry

    registry = SiteRegistry()
    if name is None:
        name = registry.detect()
        if name is None:
            raise ConfigError(
                "no --site given and no site profile matches this host",
                hint="use --site NAME, or --runtime RUNTIME [IMAGE] without a site",
            )
    return registry.load(name)


def _targets(args: argparse.Namespace) -> list[tuple[Any, Any, Any]]:
    """(runtime, settings, where) for each distinct container of the site (or of the
    command-line options), with --runtime/--cache-dir/IMAGE applied."""
    from chiltepin.config.schema import ContainerSettings
    from chiltepin.containers import Where, get_runtime
    from chiltepin.containers.reference import DEFAULT_IMAGE
    from chiltepin.errors import ConfigError

    if args.runtime is not None:
        get_runtime(args.runtime, Where(option="--runtime"))
    overrides = {
        key: value
        for key, value in (
            ("runtime", args.runtime),
            ("cache_dir", args.cache_dir),
            ("image", getattr(args, "image", None)),
        )
        if value
    }
    found: list[tuple[Any, Any]] = []
    if args.site is None and args.runtime is not None:
        settings = ContainerSettings.model_construct(
            runtime=args.runtime,
            image=overrides.get("image", DEFAULT_IMAGE),
            cache_dir=args.cache_dir,
        )
        found.append((settings, Where(option=f"--runtime {args.runtime}")))
    else:
        site = _load_site(args.site)
        for name in site.executor_names:
            resource, provenance = site.resolve(name)
            if resource.container is not None:
                settings = resource.container.model_copy(update=overrides)
                found.append((settings, Where.of(site.name, name, provenance)))
        if not found:
            raise ConfigError(
                f"site '{site.name}' runs no executor in a container",
                hint="add a 'container:' block to the profile, or give --runtime",
            )
    targets = []
    seen: set[tuple[str, str, str | None]] = set()
    for settings, where in found:
        key = (settings.runtime, settings.image, settings.cache_dir)
        if key not in seen:
            seen.add(key)
            targets.append((get_runtime(settings.runtime, where), settings, where))
    return targets
