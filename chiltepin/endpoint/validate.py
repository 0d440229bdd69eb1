"""Check an endpoint directory with globus-compute-endpoint's own loader and renderer.

The steps are those of ``globus-compute-endpoint render-user-config --endpoint NAME``
(config.yaml through ``get_config``, the template through ``render_config_user_template``
with the directory's ``user_config_schema.json``), followed by ``load_config_yaml`` on the
result, which builds the engine and its provider exactly as a user endpoint would.
Nothing here contacts Globus.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import shlex
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chiltepin.endpoint.errors import EndpointError, one_line


@contextmanager
def _quiet() -> Iterator[None]:
    """globus-compute-endpoint logs what it also raises; the raised error is reported."""
    gce = logging.getLogger("globus_compute_endpoint")
    level = gce.level
    gce.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        gce.setLevel(level)


def _parent_config(ep_dir: Path) -> Any:
    from click import ClickException
    from globus_compute_endpoint.endpoint.config import CoreEndpointConfig
    from globus_compute_endpoint.endpoint.config.utils import get_config

    try:
        with _quiet():
            config = get_config(ep_dir)
    except ClickException as exc:
        raise EndpointError(f"{ep_dir / 'config.yaml'}: {one_line(exc.message)}") from None
    except Exception as exc:  # the loader raises pydantic/ValueError/TypeError alike
        raise EndpointError(f"{ep_dir / 'config.yaml'}: {one_line(exc)}") from None
    if not isinstance(config, CoreEndpointConfig):
        raise EndpointError(
            f"{ep_dir / 'config.yaml'}: has an engine block; globus-compute-endpoint 4 "
            "wants it in user_config_template.yaml.j2"
        )
    return config


def render_dir(ep_dir: Path, options: Mapping[str, Any] | None = None) -> str:
    """The user endpoint configuration ``options`` produce (schema-checked, then loaded)."""
    from globus_compute_endpoint.endpoint.config.utils import (
        load_user_config_schema,
        load_user_config_template,
        render_config_user_template,
    )
    from globus_compute_endpoint.endpoint.endpoint import Endpoint
    from globus_compute_endpoint.endpoint.identity_mapper import MappedPosixIdentity
    from globus_compute_sdk.sdk.batch import create_user_runtime

    parent = _parent_config(ep_dir)
    template_path = Endpoint.user_config_template_path(ep_dir, parent)
    schema_path = Endpoint.user_config_schema_path(ep_dir, parent)
    try:
        template = load_user_config_template(template_path)
        schema = load_user_config_schema(schema_path) or {}
    except (OSError, ValueError) as exc:
        raise EndpointError(f"{ep_dir}: {one_line(exc)}") from None
    runtime = json.loads(json.dumps(asdict(create_user_runtime())))
    identity = MappedPosixIdentity(
        local_user_record=pwd.getpwuid(os.getuid()),
        matched_identity=uuid.UUID(int=0),
        globus_identity_candidates=[],
    )
    try:
        with _quiet():
            rendered = render_config_user_template(
                parent_config=parent,
                user_config_template=template,
                user_config_template_path=template_path,
                mapped_identity=identity,
                user_config_schema=schema,
                user_opts=dict(options or {}),
                user_runtime=runtime,
            )
    except Exception as exc:
        raise EndpointError(f"endpoint '{ep_dir.name}': {_describe_render_error(exc)}") from None
    load_engine_config(rendered, f"endpoint '{ep_dir.name}'")
    return rendered


def load_engine_config(rendered: str, what: str) -> Any:
    """``load_config_yaml`` on a rendered template: the UserEndpointConfig with its engine."""
    from click import ClickException
    from globus_compute_endpoint.endpoint.config import UserEndpointConfig
    from globus_compute_endpoint.endpoint.config.utils import load_config_yaml

    try:
        with _quiet():
            config = load_config_yaml(rendered)
    except ClickException as exc:
        raise EndpointError(
            f"{what}: rendered config is invalid: {one_line(exc.message)}"
        ) from None
    if not isinstance(config, UserEndpointConfig) or config.engine is None:
        raise EndpointError(f"{what}: rendered config has no engine block")
    check_engine_container(config.engine, what)
    return config


def check_engine_container(engine: Any, what: str) -> None:
    """Refuse container settings whose words globus-compute-endpoint's re-split and
    re-join of the launch command would change or run (a directory written by hand, or
    by an older chiltepin): see chiltepin.containers.base.ENGINE_SAFE."""
    from chiltepin.containers.base import ENGINE_SAFE
    from chiltepin.containers.oci import ENGINE_USER

    if not getattr(engine, "container_type", None):
        return
    options = engine.container_cmd_options or ""
    # chiltepin's own words: the user of podman/docker workers, the custom placeholder
    options = options.replace(ENGINE_USER, "").replace("{EXECUTOR_LAUNCH_CMD}", "")
    try:
        words = [*shlex.split(options), engine.container_uri or ""]
    except ValueError as exc:
        raise EndpointError(f"{what}: container_cmd_options: {one_line(exc)}") from None
    for word in words:
        if word and not ENGINE_SAFE.fullmatch(word):
            raise EndpointError(
                f"{what}: container setting {word[:80]!r} would not reach the worker "
                "command intact (globus-compute-endpoint re-splits it on spaces and runs "
                "it in a shell); reconfigure with safe container values"
            )


def validate_dir(ep_dir: Path, executors: Iterable[str]) -> dict[str, str]:
    """Render and load the template for the default options and for each executor.

    Returns executor -> engine class name (key ``""``: with no options at all).
    """
    engines = {}
    for executor in ["", *executors]:
        options = {"executor": executor} if executor else {}
        config = load_engine_config(render_dir(ep_dir, options), f"endpoint '{ep_dir.name}'")
        engines[executor] = type(config.engine).__name__
    return engines


def _describe_render_error(exc: Exception) -> str:
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - a dependency of globus-compute-endpoint
        jsonschema = None  # type: ignore[assignment]
    if jsonschema is not None and isinstance(exc, jsonschema.ValidationError):
        where = "/".join(str(p) for p in exc.absolute_path)
        return (
            f"option {where!r} is invalid: {one_line(exc.message)}"
            if where
            else (f"options are invalid: {one_line(exc.message)}")
        )
    if jsonschema is not None and isinstance(exc, jsonschema.SchemaError):
        return f"user_config_schema.json is not a valid JSON Schema: {one_line(exc.message)}"
    name = type(exc).__name__
    if name == "UndefinedError":
        return f"the template needs an option that was not given: {one_line(exc)}"
    return f"cannot render the template ({name}): {one_line(exc)}"
