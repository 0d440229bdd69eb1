"""Read YAML documents and turn validation failures into one clear ConfigError."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from chiltepin.errors import ConfigError, did_you_mean

Path_ = tuple[str, ...]
LineMap = dict[Path_, int]


@dataclass
class Origin:
    """Where each value of a document came from: key path -> (file, line)."""

    source: str
    places: dict[Path_, tuple[str, int | None]] = field(default_factory=dict)

    @classmethod
    def of_file(cls, source: str, lines: LineMap) -> Origin:
        return cls(source, {path: (source, line) for path, line in lines.items()})

    def locate(self, path: Path_) -> tuple[str, int | None]:
        """The file and line of ``path``, or of its nearest enclosing key."""
        for end in range(len(path), 0, -1):
            place = self.places.get(path[:end])
            if place:
                return place
        return self.source, None


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


def _collect_lines(node: yaml.Node, path: Path_, lines: LineMap) -> None:
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


Describe = Callable[[Path_], tuple[str | None, str | None, str]]


def validate_model(
    model: type[BaseModel],
    data: Any,
    *,
    origin: Origin,
    path: Path_ = (),
    entry: str | None = None,
    entry_kind: str = "entry",
    describe: Describe | None = None,
) -> Any:
    """Validate ``data`` (found at ``path`` of a document) against ``model``.

    The first problem becomes a ConfigError naming file, line, entry and key. ``describe``
    maps an error's full key path to (entry, key, entry_kind); by default the entry is
    ``entry`` and the key is the path below ``path``.
    """

    def where(full: Path_) -> tuple[str | None, str | None, str]:
        if describe:
            return describe(full)
        rel = full[len(path) :]
        return entry, ".".join(rel) or None, entry_kind

    if not isinstance(data, Mapping):
        source, line = origin.locate(path)
        name, _, kind = where(path)
        raise ConfigError(
            f"settings must be a mapping, got {_type_name(data)}",
            source=source,
            entry=name,
            entry_kind=kind,
            line=line,
        )
    ignored: list[Any] = []  # keys the model dropped (see Resource._lenient)
    try:
        result = model.model_validate(dict(data), context={"ignored": ignored})
    except ValidationError as exc:
        raise _to_config_error(exc, model, origin, path, where) from None
    for item in ignored:
        full = (*path, item.key)
        source, line = origin.locate(full)
        name, _, kind = where(full)
        warnings.warn(
            item.warning(source=source, line=line, entry=name, entry_kind=kind), stacklevel=2
        )
    return result


def _to_config_error(
    exc: ValidationError,
    model: type[BaseModel],
    origin: Origin,
    path: Path_,
    where: Callable[[Path_], tuple[str | None, str | None, str]],
) -> ConfigError:
    err = exc.errors()[0]
    loc = tuple(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    hint = None
    ctx = err.get("ctx") or {}
    cause = ctx.get("error")
    if cause is not None and hasattr(cause, "key"):
        message, hint = cause.message, cause.hint
        loc = (*loc, cause.key)
    elif err["type"] == "extra_forbidden":
        fields = _fields_at(model, loc[:-1])
        message = "unknown key"
        hint = did_you_mean(loc[-1], fields) or f"valid keys: {', '.join(sorted(fields))}"
    elif err["type"] == "missing":
        message = "required key is missing"
    elif err["type"] == "literal_error":
        message = f"must be one of {ctx.get('expected')}, got {err['input']!r}"
    elif err["type"] in ("greater_than", "greater_than_equal", "less_than_equal"):
        bound = next(
            f"{op} {ctx[k]}" for k, op in (("gt", ">"), ("ge", ">="), ("le", "<=")) if k in ctx
        )
        message = f"must be {bound}, got {err['input']!r}"
    elif err["type"] == "string_pattern_mismatch":
        message = f"{err['input']!r} contains characters this value may not have"
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
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    full = (*path, *loc)
    source, line = origin.locate(full)
    entry, key, kind = where(full)
    return ConfigError(
        message, source=source, entry=entry, entry_kind=kind, key=key, line=line, hint=hint
    )


def _fields_at(model: type[BaseModel], loc: Path_) -> list[str]:
    current: Any = model
    skip_key = False
    for part in loc:
        if skip_key:  # a name inside a mapping such as executors: {name: ...}
            skip_key = False
            continue
        field_info = getattr(current, "model_fields", {}).get(part)
        if field_info is None:
            return []
        skip_key = getattr(field_info.annotation, "__origin__", None) is dict
        current = _model_in(field_info.annotation) or current
    return list(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    """The BaseModel class inside an annotation (X, X | None, dict[str, X])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found:
            return found
    return None


def _type_name(value: Any) -> str:
    names = {
        list: "a list",
        dict: "a mapping",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "nothing",
    }
    return names.get(type(value), type(value).__name__)
