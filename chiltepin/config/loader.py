"""Read YAML documents and turn validation failures into one clear ConfigError."""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, BinaryIO, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from chiltepin.errors import ConfigError, did_you_mean, shown
from chiltepin.names import NAME_HINT, NAME_PATTERN

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


#: The largest file any loader reads (configs, profiles, service files, options, ...).
MAX_FILE_BYTES = 1 << 20
#: A YAML document may hold at most this many values once aliases are expanded ...
MAX_YAML_NODES = 100_000
#: ... nested at most this deep.
MAX_YAML_DEPTH = 64


def read_text_file(path: str | Path, what: str = "file", *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a regular file, or one ConfigError naming it.

    Directories, FIFOs and devices are refused without blocking, as are files larger
    than ``max_bytes`` and bytes that are not UTF-8. ``what`` names the file in errors
    (e.g. "credentials file"); nothing of its content is ever echoed.
    """
    from chiltepin._files import NotRegularFile, open_regular, read_at_most

    source = str(path)
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        raise ConfigError(f"{what} not found", source=source, hint="check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} is a directory", source=source, hint="name a file") from None
    except NotRegularFile:
        raise ConfigError(
            f"{what} is not a regular file (a FIFO, socket or device)",
            source=source,
            hint="name a file",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}", source=source) from None
    except ValueError:  # a NUL byte in the path
        raise ConfigError(f"invalid {what} name", source=shown(source)) from None
    try:
        data = read_at_most(fd, max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}", source=source) from None
    finally:
        os.close(fd)
    return decode_text(data, source, what, max_bytes=max_bytes)


def read_text_stream(stream: BinaryIO, source: str, what: str = "input") -> str:
    """Like :func:`read_text_file`, for an open binary stream such as stdin."""
    try:
        data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}", source=source) from None
    return decode_text(data, source, what)


def decode_text(data: bytes, source: str, what: str, *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """``data`` as text, if it is at most ``max_bytes`` of UTF-8 (a BOM is dropped)."""
    if len(data) > max_bytes:
        raise ConfigError(
            f"{what} is too large (more than {max_bytes // 1024} KiB)",
            source=source,
            hint="configuration files are small; check that this is the right file",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})",
            source=source,
            hint="save it as UTF-8",
        ) from None


def read_json(path: str | Path, what: str = "file") -> Any:
    """A JSON file's data (read by :func:`read_text_file`), or one ConfigError."""
    return parse_json(read_text_file(path, what), str(path), what)


def parse_json(text: str, source: str, what: str = "file") -> Any:
    """JSON ``text`` (from ``source``) with unique keys, or one ConfigError."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key, value in pairs:
            if key in data:
                raise ConfigError(
                    f"{what} repeats key {shown(key)}",
                    source=source,
                    hint="JSON object keys must be unique; remove one of them",
                )
            data[key] = value
        return data

    try:
        return json.loads(text, object_pairs_hook=unique)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg}", source=source, line=exc.lineno) from None
    except RecursionError:
        raise ConfigError(f"{what} is nested too deeply", source=source) from None
    except ConfigError:
        raise
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise ConfigError(f"invalid JSON: {exc}", source=source) from None


def read_yaml(path: str | Path, what: str = "file") -> tuple[Any, LineMap]:
    """Parse a YAML file; return its data and the line of every mapping key."""
    return parse_yaml(read_text_file(path, what), str(path))


def parse_yaml(text: str, source: str) -> tuple[Any, LineMap]:
    """Parse ``text`` once: safe tags only, unique keys, bounded alias expansion and depth."""
    loader = None
    try:
        loader = _Loader(text, source)  # checks for unprintable characters
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _measure(node, source, loader.aliases)
        lines: LineMap = {}
        _collect_lines(node, (), lines, loader, set())
        return loader.construct_document(node), lines
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"YAML syntax error: {problem}",
            source=source,
            line=mark.line + 1 if mark else None,
            hint="check indentation and quoting near that line",
        ) from None
    except ConfigError:
        raise
    except (ValueError, OverflowError) as exc:  # e.g. a date like 2020-13-45
        raise ConfigError(
            f"invalid value: {exc}", source=source, hint="quote it to make it a string"
        ) from None
    finally:
        if loader is not None:
            loader.dispose()


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that counts aliases and refuses deep nesting while composing."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source
        self.aliases = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise ConfigError(
                    f"YAML is nested more than {MAX_YAML_DEPTH} levels deep",
                    source=self.source,
                    line=self.peek_event().start_mark.line + 1,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _measure(root: yaml.Node, source: str, aliases: int) -> None:
    """Refuse documents whose aliases expand past the budget, or that refer to themselves."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if not done:
            if key in size:
                continue
            if key in active:
                raise ConfigError(
                    "YAML alias refers to the value that contains it",
                    source=source,
                    line=node.start_mark.line + 1,
                    hint="remove the recursive alias",
                )
            active.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in size)
            continue
        active.discard(key)
        children = _children(node)
        size[key] = 1 + sum(size[id(c)] for c in children)
        depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
        if size[key] > MAX_YAML_NODES:
            what = "aliases (*name) expand it to" if aliases else "it has"
            raise ConfigError(
                f"YAML document is too large: {what} more than {MAX_YAML_NODES} values",
                source=source,
                line=node.start_mark.line + 1,
                hint="configuration files are small; do not nest large aliases",
            )
        if depth[key] > MAX_YAML_DEPTH:
            raise ConfigError(
                f"YAML is nested more than {MAX_YAML_DEPTH} levels deep (through aliases)",
                source=source,
                line=node.start_mark.line + 1,
            )


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _collect_lines(
    node: yaml.Node, path: Path_, lines: LineMap, loader: _Loader, checked: set[int]
) -> None:
    """Record each key's line; refuse a mapping that repeats a key (at any depth)."""
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            if isinstance(item, (yaml.MappingNode, yaml.SequenceNode)) and id(item) not in checked:
                _collect_lines(item, path, {}, loader, checked)
        return
    if not isinstance(node, yaml.MappingNode):
        return
    first = id(node) not in checked
    checked.add(id(node))
    seen: dict[Any, int] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if first and key_node.tag != _MERGE_TAG and isinstance(key_node, yaml.ScalarNode):
            value = loader.construct_object(key_node)
            try:
                earlier = seen.get(value)
                seen.setdefault(value, line)
            except TypeError:  # unhashable: PyYAML reports it when constructing
                earlier = None
            if earlier is not None:
                raise ConfigError(
                    f"duplicate key (first at line {earlier})",
                    source=loader.source,
                    line=line,
                    key=".".join((*path, str(value))),
                    hint="YAML keys must be unique; remove or merge one of them",
                )
        key = (*path, str(key_node.value))
        lines[key] = line
        _collect_lines(value_node, key, lines, loader, checked)


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
    errors = exc.errors()
    err, loc, union_members, group = _pick_error(model, errors)
    hint = None
    ctx = err.get("ctx") or {}
    cause = ctx.get("error")
    value = shown(err.get("input"))
    if union_members:
        # Every member of a union refused the value at the union itself (e.g. 5 for
        # "false or a mapping"): say what the union takes.
        message = f"expected {' or '.join(union_members)}, got {_type_name(err['input'])} {value}"
    elif cause is not None and hasattr(cause, "key"):
        message, hint = cause.message, cause.hint
        loc = (*loc, cause.key)
    elif err["type"] == "extra_forbidden":
        fields = _fields_at(model, loc[:-1])
        message = "unknown key"
        hint = did_you_mean(loc[-1], fields) or f"valid keys: {', '.join(sorted(fields))}"
    elif err["type"] == "missing":
        message = "required key is missing"
    elif err["type"] == "literal_error":
        message = f"must be one of {ctx.get('expected')}, got {value}"
    elif err["type"] in ("greater_than", "greater_than_equal", "less_than_equal"):
        bound = next(
            f"{op} {ctx[k]}" for k, op in (("gt", ">"), ("ge", ">="), ("le", "<=")) if k in ctx
        )
        message = f"must be {bound}, got {value}"
    elif err["type"] == "string_pattern_mismatch" and ctx.get("pattern") == NAME_PATTERN:
        message = f"invalid name {value}"
        hint = NAME_HINT
    elif err["type"] == "string_pattern_mismatch":
        message = f"{value} contains characters this value may not have"
        hint = _allowed_characters(ctx.get("pattern", ""))
    elif err["type"] == "string_too_short":
        message = "must not be empty"
    elif err["type"] == "string_too_long":
        message = f"must be at most {ctx.get('max_length')} characters, got {value}"
    elif err["type"].endswith("_type") or err["type"] in ("model_type", "dict_type"):
        expected = err["type"].removesuffix("_type").replace("model", "mapping")
        message = f"expected {expected}, got {_type_name(err['input'])} {value}"
    else:
        message = err["msg"].removeprefix("Value error, ")
    more = len(errors) - group
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    full = (*path, *loc)
    source, line = origin.locate(full)
    entry, key, kind = where(full)
    return ConfigError(
        message, source=source, entry=entry, entry_kind=kind, key=key, line=line, hint=hint
    )


def _pick_error(model: type[BaseModel], errors: list[Any]) -> tuple[Any, Path_, list[str], int]:
    """The error to report, its key path (without pydantic's union member tags), the
    members of the union that refused the value outright, and how many errors it stands for.

    Pydantic reports one error per member of a union (``container: false | {...}``); the
    relevant one is the member that accepted the value's type and found a problem inside
    it (``container: {imgae: x}`` -> unknown key 'imgae').
    """
    first = errors[0]
    loc, unions = _clean_loc(model, first["loc"])
    if not unions:
        return first, loc, [], 1
    at, _ = unions[0]
    siblings = []
    for err in errors:
        err_loc, err_unions = _clean_loc(model, err["loc"])
        if err_unions and err_unions[0][0] == at and err_loc[:at] == loc[:at]:
            siblings.append((err, err_loc, err_unions[0][1]))
    inside = [s for s in siblings if len(s[1]) > at or s[0]["type"] == "missing"]
    if inside:
        err, err_loc, _ = inside[0]
        return err, err_loc, [], len(siblings)
    members = [_describe_type(member) for _, _, member in siblings]
    return first, loc[:at], list(dict.fromkeys(members)), len(siblings)


def _clean_loc(model: type[BaseModel], raw: tuple[Any, ...]) -> tuple[Path_, list[tuple[int, Any]]]:
    """``raw`` without union member tags and validator names; and, for each union passed,
    (position in the cleaned path, the member the error belongs to)."""
    annotation: Any = model
    out: list[str] = []
    unions: list[tuple[int, Any]] = []
    for part in (str(p) for p in raw):
        if part.startswith("function-"):
            continue
        members = _union_members(annotation)
        if members:
            chosen = next((m for m in members if _member_tag(m) == part), None)
            unions.append((len(out), chosen))
            annotation = chosen
            continue
        if part == "[key]":  # a mapping's key itself is invalid
            continue
        annotation = _child_annotation(annotation, part)
        out.append(part)
    return tuple(out), unions


def _unwrap(annotation: Any) -> Any:
    """``X`` from ``Annotated[X, ...]`` and from ``X | None``."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return annotation


def _union_members(annotation: Any) -> list[Any]:
    annotation = _unwrap(annotation)
    if get_origin(annotation) in (Union, UnionType):
        return [a for a in get_args(annotation) if a is not type(None)]
    return []


def _member_tag(member: Any) -> str:
    """The name pydantic gives a union member in an error's location."""
    member = _unwrap(member)
    if isinstance(member, type) and issubclass(member, BaseModel):
        return member.__name__
    if get_origin(member) is Literal:
        return f"literal[{','.join(repr(a) for a in get_args(member))}]"
    origin = get_origin(member)
    if origin is not None:
        args = ",".join(getattr(a, "__name__", str(a)).lower() for a in get_args(member))
        return f"{origin.__name__}[{args}]"
    return getattr(member, "__name__", str(member))


def _describe_type(member: Any) -> str:
    member = _unwrap(member)
    if get_origin(member) is Literal:
        return " or ".join(json.dumps(a) for a in get_args(member))
    if (isinstance(member, type) and issubclass(member, BaseModel)) or get_origin(member) is dict:
        return "a mapping"
    origin = get_origin(member) or member
    return _TYPE_NAMES.get(origin, getattr(origin, "__name__", str(origin)))


def _child_annotation(annotation: Any, part: str) -> Any:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        info = annotation.model_fields.get(part)
        return info.annotation if info is not None else None
    origin = get_origin(annotation)
    if origin is dict:
        return get_args(annotation)[1]
    if origin in (list, tuple):
        args = get_args(annotation)
        return args[0] if args else None
    return None


def _fields_at(model: type[BaseModel], loc: Path_) -> list[str]:
    annotation: Any = model
    for part in loc:
        annotation = _child_annotation(annotation, part)
    members = _union_members(annotation) or [annotation]
    for member in members:
        member = _unwrap(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            return list(member.model_fields)
    return []


def _allowed_characters(pattern: str) -> str | None:
    """A hint read off a one-character-class pattern such as ``^[A-Za-z0-9_.:-]+$``."""
    match = re.fullmatch(r"\^\[(.+)\][+*]\$", pattern)
    if not match:
        return f"it must match {pattern}" if pattern else None
    body = match.group(1)
    words = []
    for span, word in (("A-Za-z", "letters"), ("0-9", "digits")):
        if span in body:
            words.append(word)
            body = body.replace(span, "")
    chars = re.sub(r"\\(.)", r"\1", body)
    others = " ".join(dict.fromkeys(chars))
    hint = f"use {', '.join(words)}{' and ' + others if others else ''} only"
    if not any(c in chars for c in " '\"$"):
        hint += "; no spaces, quotes or '$'"
    return hint


_TYPE_NAMES: dict[Any, str] = {
    list: "a list",
    tuple: "a list",
    dict: "a mapping",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "nothing",
}


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)
