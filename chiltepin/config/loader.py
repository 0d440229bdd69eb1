"""Read YAML documents and turn validation failures into one clear ConfigError."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from chiltepin.errors import ConfigError, did_you_mean

LineMap = dict[tuple[str, ...], int]


def read_yaml(path: str | Path) -> tuple[Any, LineMap]:
    """Parse a YAML file; return its data and the line of every mapping key."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError("file not found", source=str(path), hint="check the path") from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", source=str(path)) from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> tuple[Any, LineMap]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"YAML syntax error: {problem}",
            source=source,
            line=mark.line + 1 if mark else None,
            hint="check indentation and quoting near that line",
        ) from None
    lines: LineMap = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return data, lines


def _collect_lines(node: yaml.Node, path: tuple[str, ...], lines: LineMap) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, str(key_node.value))
            lines[key] = key_node.start_mark.line + 1
            _collect_lines(value_node, key, lines)


def require_mapping(data: Any, source: str, what: str, entry: str | None = None) -> Mapping:
    if data is None:
        raise ConfigError(
            f"{what} is empty", source=source, entry=entry, hint="add at least one entry"
        )
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{what} must be a mapping of names to settings, got {type(data).__name__}",
            source=source,
            entry=entry,
        )
    return data


def validate_model(
    model: type[BaseModel],
    data: Any,
    *,
    source: str,
    entry: str,
    path: tuple[str, ...] = (),
    lines: LineMap | None = None,
) -> Any:
    """Validate ``data`` against ``model``; raise a ConfigError for the first problem."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"settings must be a mapping, got {_type_name(data)}",
            source=source,
            entry=entry,
            line=(lines or {}).get(path),
        )
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise _to_config_error(exc, model, source, entry, path, lines or {}) from None


def _to_config_error(
    exc: ValidationError,
    model: type[BaseModel],
    source: str,
    entry: str,
    path: tuple[str, ...],
    lines: LineMap,
) -> ConfigError:
    err = exc.errors()[0]
    loc = tuple(str(p) for p in err["loc"])
    key = ".".join(loc) if loc else None
    hint = None
    ctx = err.get("ctx") or {}
    cause = ctx.get("error")
    if cause is not None and hasattr(cause, "key"):
        key, message, hint = cause.key, cause.message, cause.hint
        loc = (cause.key,)
    elif err["type"] == "extra_forbidden":
        fields = _fields_at(model, loc[:-1])
        message = "unknown key"
        hint = did_you_mean(loc[-1], fields) or f"valid keys: {', '.join(sorted(fields))}"
    elif err["type"] == "missing":
        message = "required key is missing"
    elif err["type"] == "literal_error":
        message = f"must be one of {ctx.get('expected')}, got {err['input']!r}"
    elif err["type"] in ("greater_than", "greater_than_equal"):
        bound = "> " + str(ctx.get("gt")) if "gt" in ctx else ">= " + str(ctx.get("ge"))
        message = f"must be {bound}, got {err['input']!r}"
    elif err["type"] == "string_pattern_mismatch":
        message = f"{err['input']!r} contains characters a scheduler value may not have"
        hint = "use letters, digits and . , : = + - _ only; no spaces, quotes or '$'"
    elif err["type"] == "string_too_short":
        message = "must not be empty"
    elif err["type"].endswith("_type") or err["type"] in ("model_type", "dict_type"):
        expected = err["type"].removesuffix("_type").replace("model", "mapping")
        message = f"expected {expected}, got {_type_name(err['input'])} {err['input']!r}"
    else:
        message = err["msg"].removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''} in this entry)"
    line = lines.get((*path, *loc)) or lines.get((*path, *loc[:1])) or lines.get(path)
    return ConfigError(message, source=source, entry=entry, key=key, line=line, hint=hint)


def _fields_at(model: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        for arg in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
                break
    return list(getattr(current, "model_fields", {}))


def _type_name(value: Any) -> str:
    return {
        list: "a list",
        dict: "a mapping",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)
