"""``configure``: generate an endpoint directory, validate it, then write it.

Files are generated into a private staging directory beside the endpoint's, checked with
globus-compute-endpoint's own loader and renderer there, and only then moved into place
(a new endpoint by one rename, an existing one file by file). A failure at any step leaves
the existing directory as it was. Directories are 0700, files 0600. Re-running with the
same inputs changes nothing (``changed`` is False), so provisioning tools can rely on it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from chiltepin import names
from chiltepin.config.loader import read_text_file
from chiltepin.config.schema import EMAIL_RE, EndpointSettings, Resource
from chiltepin.containers import Where
from chiltepin.containers.wiring import checked_runtime
from chiltepin.endpoint import generate as gen
from chiltepin.endpoint.errors import EndpointError, one_line
from chiltepin.endpoint_ids import endpoints_dir
from chiltepin.errors import ConfigError, did_you_mean
from chiltepin.sites import load_site
from chiltepin.sites.paths import SITE_PATH_ENV

DIR_MODE = 0o700
FILE_MODE = 0o600


@dataclass
class ConfigureResult:
    name: str
    path: Path
    site: str
    executors: list[str]
    engines: dict[str, str]  # executor -> engine class, as loaded by globus-compute-endpoint
    changed: bool
    created: bool
    dry_run: bool
    files: list[str] = field(default_factory=list)  # files written (or that would be)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "site": self.site,
            "executors": self.executors,
            "engines": self.engines,
            "changed": self.changed,
            "created": self.created,
            "dry_run": self.dry_run,
            "files": self.files,
        }


def check_name(name: str) -> None:
    """globus-compute-endpoint's own rule for endpoint names (they become paths), and the
    toolkit's name rule (chiltepin.names)."""
    from globus_compute_endpoint.endpoint.endpoint import Endpoint

    try:
        Endpoint.validate_endpoint_name(name)
    except ValueError as exc:
        raise EndpointError(one_line(exc)) from None
    names.check_name("endpoint", name)
    import uuid

    try:
        uuid.UUID(name)
    except ValueError:
        return
    raise EndpointError(f"endpoint name '{name}' is a UUID; name endpoints with words")


def plan_endpoint(
    name: str,
    site_name: str,
    executor: str | None = None,
    *,
    multi_user: bool | None = None,
    contact_email: str | None = None,
    display_name: str | None = None,
    identity_mapping_path: str | None = None,
) -> gen.EndpointPlan:
    """Resolve the site profile into what the generated files depend on."""
    site = load_site(site_name)
    names = site.executor_names
    if executor is not None and executor not in names:
        hint = did_you_mean(executor, names) or f"site '{site.name}' defines: {', '.join(names)}"
        raise ConfigError(
            f"site '{site.name}' has no executor '{executor}'", key="executor", hint=hint
        )
    chosen = [executor] if executor else names
    resolved = {n: site.resolve(n) for n in chosen}
    resources = {n: res for n, (res, _provenance) in resolved.items()}
    default = executor or ("compute" if "compute" in chosen else chosen[0])
    settings = site.profile.endpoint or EndpointSettings()
    multi = settings.multi_user if multi_user is None else multi_user
    if contact_email is not None and not EMAIL_RE.match(contact_email):
        raise ConfigError(
            f"contact email {contact_email[:80]!r} is not an email address",
            key="contact_email",
            hint="give NAME@DOMAIN (the rule for endpoint.contact_email in a profile)",
        )
    email = contact_email or settings.contact_email
    if multi and not email:
        raise ConfigError(
            f"multi-user endpoint '{name}' needs a contact email",
            key="contact_email",
            hint="pass --contact-email ADDRESS or set endpoint.contact_email in the profile",
        )
    label = display_name or settings.display_name or "chiltepin {site} {executor}"
    try:
        label = label.format(site=site.name, executor=executor or "all", name=name)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"display name {label!r} has a bad placeholder: {exc}",
            key="display_name",
            hint="use {site}, {executor} and {name}",
        ) from None
    containers = {
        n: engine_container(res, Where.of(site.name, n, provenance))
        for n, (res, provenance) in resolved.items()
        if res.container is not None
    }
    return gen.EndpointPlan(
        name=name,
        site=site.name,
        executors=resources,
        default_executor=default,
        multi_user=multi,
        display_name=label,
        contact_email=email,
        identity_mapping_path=identity_mapping_path,
        containers=containers,
        environment=gen.default_environment(site.name, os.environ.get(SITE_PATH_ENV)),
    )


def engine_container(res: Resource, where: Where) -> dict[str, str]:
    """The engine's container settings for ``res``, after every check a workflow makes
    of that container (runtime command, image, cache, binds, options, env)."""
    return checked_runtime(res, where).engine_settings(res.container, where)


def configure(
    name: str,
    site: str,
    executor: str | None = None,
    *,
    multi_user: bool | None = None,
    contact_email: str | None = None,
    display_name: str | None = None,
    identity_mapping: str | Path | None = None,
    dry_run: bool = False,
    force: bool = False,
    compute_dir: str | Path | None = None,
) -> ConfigureResult:
    """Write (or, with ``dry_run``, only check) endpoint ``name`` from site profile ``site``.

    ``executor`` pins the endpoint to one executor of the profile; otherwise it serves
    all of them and users choose with the ``executor`` option. Raises ChiltepinError.
    """
    check_name(name)
    base = Path(compute_dir) if compute_dir else endpoints_dir()
    final = base / name
    mapping_text = _identity_mapping_text(identity_mapping, final)
    plan = plan_endpoint(
        name,
        site,
        executor,
        multi_user=multi_user,
        contact_email=contact_email,
        display_name=display_name,
    )
    _check_owner(final, force)
    with _staging(base, name) as stage:
        plan.identity_mapping_path = str(stage / gen.IDENTITY_MAPPING)
        files = gen.generate(plan)
        if plan.multi_user:
            files[gen.IDENTITY_MAPPING] = mapping_text
        for fname, text in files.items():
            _write(stage / fname, text)
        from chiltepin.endpoint.validate import validate_dir

        engines = validate_dir(stage, plan.executors)
        # Validated; now point config.yaml at where the mapping will live.
        plan.identity_mapping_path = str(final / gen.IDENTITY_MAPPING)
        files[gen.CONFIG] = gen.config_yaml(plan)
        _write(stage / gen.CONFIG, files[gen.CONFIG])
        created = not final.exists()
        changed_files = [f for f, text in files.items() if not _same(final / f, text)]
        dir_ok = not created and (final.stat().st_mode & 0o777) == DIR_MODE
        changed = bool(changed_files) or not dir_ok
        if not dry_run and changed:
            _install(stage, final, changed_files, created)
    return ConfigureResult(
        name=name,
        path=final,
        site=plan.site,
        executors=list(plan.executors),
        engines={k or "(default)": v for k, v in engines.items()},
        changed=changed,
        created=created,
        dry_run=dry_run,
        files=sorted(changed_files),
    )


def _identity_mapping_text(source: str | Path | None, final: Path) -> str:
    """An explicit mapping file, else the one already configured, else GCE's example."""
    if source is not None:
        return read_text_file(source, "identity mapping")
    existing = final / gen.IDENTITY_MAPPING
    if existing.is_file():
        return read_text_file(existing, "identity mapping")
    import globus_compute_endpoint.endpoint.endpoint as gce_endpoint

    example = Path(gce_endpoint.__file__).parent / "config" / "example_identity_mapping_config.json"
    return example.read_text()


def _check_owner(final: Path, force: bool) -> None:
    if not final.exists():
        return
    if not final.is_dir():
        raise EndpointError(f"{final} exists and is not a directory")
    if (final / gen.MANIFEST).is_file() or force:
        return
    if any(final.iterdir()):
        raise EndpointError(
            f"endpoint directory {final} was not made by chiltepin; "
            "pass --force to replace its configuration files (endpoint.json is kept)"
        )


@contextmanager
def _staging(base: Path, name: str) -> Iterator[Path]:
    old = os.umask(0o077)
    try:
        base.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{name}.chiltepin-", dir=base))
    except OSError as exc:
        raise EndpointError(f"cannot create endpoint files under {base}: {exc.strerror}") from None
    finally:
        os.umask(old)
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, FILE_MODE)


def _same(path: Path, text: str) -> bool:
    try:
        return path.read_text() == text and (path.stat().st_mode & 0o777) == FILE_MODE
    except (OSError, ValueError):  # missing, unreadable, or not UTF-8: it will be replaced
        return False


def _install(stage: Path, final: Path, changed: list[str], created: bool) -> None:
    try:
        if created:
            os.chmod(stage, DIR_MODE)
            os.rename(stage, final)
            stage.mkdir(mode=DIR_MODE)  # so the staging cleanup finds what it expects
            return
        os.chmod(final, DIR_MODE)
        for fname in changed:
            os.replace(stage / fname, final / fname)
    except OSError as exc:
        raise EndpointError(f"cannot write {final}: {exc.strerror}") from None
