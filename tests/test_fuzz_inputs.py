"""Malformed input of every kind: exit 2, one line, no traceback, no hang, nothing written.

A fixed-seed generator makes a few hundred malformed documents per loader (resource
configurations, site profiles, agent service files, endpoint render options). Each goes
through the CLI's ``main()`` in this process, and a sample of them through the real
console script. Then one table per input kind feeds the classes of input that once broke
the loaders (bytes that are not UTF-8, a directory, a 2 MiB file, an alias bomb, repeated
keys, hostile names, a FIFO) through the console script.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import random
import shutil
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.cli import run

from chiltepin.cli.main import main
from chiltepin.config.loader import MAX_FILE_BYTES

SEED = 20261202
DOCS_PER_KIND = 200
CONSOLE_SAMPLE_EVERY = 25  # every 25th document also runs through the console script
MAX_ERROR_CHARS = 2500  # an error line never echoes a large value whole

# --- what the documents are made of ---------------------------------------------------------

HOSTILE_NAMES: list[Any] = [
    "a b",
    "../x",
    "a/b",
    "..",
    ".hidden",
    "-dash",
    "a..b",
    "{{ x }}",
    "c#}{{x}}",
    "{% raw %}",
    "x\ny",
    "x\n",
    "",
    "$(id)",
    "a;b",
    "é",
    "x" * 65,
    "y" * 200_000,
    7,
    True,
]
INTS: list[Any] = [0, -1, "2", 1.5, True, [], {}]
# ("" is not here: for account, queue and partition it means none, as in chiltepin 0.1.x.)
TOKENS: list[Any] = ["a b", "$(id)", "a;b", "`id`", "a'b", 'a"b', "a\nb", "x\n", 5, [], {}]
WALLTIMES: list[Any] = ["1h", "", "01:60:00", "01:00:00\n", "01:00", 3600, []]
BIG_BAD = "z" * 300_000 + " "  # invalid (a space) and far too long to echo

RESOURCES = {
    "compute": {
        "provider": "slurm",
        "partition": "compute",
        "account": "proj",
        "queue": "normal",
        "nodes_per_block": 2,
        "max_blocks": 4,
        "walltime": "01:00:00",
        "environment": ["module load gcc"],
        "retries": 1,
    },
    "mpi": {"provider": "slurm", "mpi": True, "max_mpi_apps": 2, "partition": "compute"},
    "small": {"provider": "localhost", "max_workers_per_node": 2, "cores_per_worker": 1.0},
    "remote": {"endpoint": "2f0a8ac8-2a4e-4a4b-9a8a-0d1c6a0d5f4e", "account": "proj"},
}
RESOURCE_BAD = {
    ("compute", "provider"): ["slrum", "", 3, None],
    ("compute", "partition"): TOKENS + [BIG_BAD],
    ("compute", "account"): TOKENS,
    ("compute", "queue"): TOKENS,
    ("compute", "nodes_per_block"): [*INTS, None],
    ("compute", "max_blocks"): [*INTS, None],
    ("compute", "walltime"): [*WALLTIMES, None],
    ("compute", "environment"): ["module load x", [1], [[]], {}, None],
    ("compute", "retries"): [-1, "1", 1.5, None],
    ("compute", "gres"): TOKENS,
    ("mpi", "mpi"): ["yes", 1, None, []],
    ("mpi", "max_mpi_apps"): INTS,
    ("small", "cores_per_worker"): [0, -1.0, "x", None, []],
    ("small", "max_workers_per_node"): INTS,
    ("remote", "account"): TOKENS,
    ("remote", "walltime"): WALLTIMES,
    ("remote", "executor"): HOSTILE_NAMES[:-2],
    ("remote", "endpoint"): ["", 5, None],
}

SITE = {
    "description": "fuzz",
    "scheduler": "slurm",
    "defaults": {"account": "proj", "walltime": "00:30:00", "environment": ["module load x"]},
    "container": {"runtime": "podman", "image": "localhost/fz:1"},
    "exchange": {"kind": "redis", "host": "127.0.0.1", "port": 6379},
    "executors": {
        "compute": {"partition": "compute", "nodes_per_block": 1},
        "service": {"partition": "service", "container": False},
        "gpu": {"partition": "gpu", "container": {"gpus": True}},
    },
}
SITE_BAD = {
    ("scheduler",): ["slrum", 3, "", None],
    ("description",): [5, [], {}],
    ("merge",): ["yes", 1],
    ("name",): ["other", *HOSTILE_NAMES[:-2]],
    ("hostnames",): ["host*", [1]],
    ("defaults",): [5, "x", []],
    ("defaults", "account"): TOKENS,
    ("defaults", "walltime"): WALLTIMES,
    ("defaults", "environment"): ["x", [1]],
    ("defaults", "provider"): ["slurm"],  # not a site default
    ("container",): [5, "podman", []],
    ("container", "runtime"): ["dockr", 3, ""],
    ("container", "image"): ["", 3, []],
    ("exchange", "kind"): ["nope", 3],
    ("exchange", "port"): [-1, 70000, "x", 1.5],
    ("executors",): [{}, [], 5],
    ("executors", "compute"): [5, "x", []],
    ("executors", "compute", "partition"): TOKENS + [BIG_BAD],
    ("executors", "compute", "nodes_per_block"): INTS,
    ("executors", "service", "container"): [True, 5, "no", []],
    ("executors", "gpu", "container", "gpus"): ["yes", 1],
    ("executors", "gpu", "container", "runtime"): ["dockr"],
}

SERVICE = {
    "name": "fz",
    "agent": "helpers.agent_services:Counter",
    "description": "fuzz",
    "args": [1],
    "kwargs": {"label": "x"},
    "agent_workflow_config": {"compute": {"provider": "localhost", "max_workers_per_node": 1}},
    "agent_workflow_include": ["compute"],
    "agent_workflow_run_dir": "runs/fz",
    "exchange": {"kind": "redis", "host": "127.0.0.1", "port": 6379},
    "environment": {"FZ_A": "1"},
}
SERVICE_BAD = {
    ("name",): HOSTILE_NAMES,
    ("agent",): [
        "no_such_module_fz:Thing",
        "helpers.agent_services:Nope",
        "helpers.agent_services.Counter",
        "a:b:c",
        "",
        5,
    ],
    ("args",): [[1, 2, 3], "x", 5, {}],
    ("kwargs",): [{"bogus": 1}, [], "x"],
    ("site",): ["nosuch", "../x", 5],
    ("agent_workflow_config",): ["no_such_file.yaml", ".", 5, [], {"bad name": {}}],
    ("agent_workflow_config", "compute", "max_workers_per_node"): INTS,
    ("agent_workflow_config", "compute", "provider"): ["slrum"],
    ("agent_workflow_include",): [["nope"], [5], 5, {}],
    ("agent_workflow_run_dir",): [5, []],
    ("exchange",): [5, "redis"],
    ("exchange", "kind"): ["hosted", "nope"],
    ("exchange", "port"): [-1, 70000, "x"],
    ("environment",): [{"1BAD": "x"}, {"A": 1}, ["A=1"], {"A B": "x"}, {"A\n": "x"}],
    ("description",): [5, []],
}

OPTIONS = {
    "executor": "compute",
    "partition": "compute",
    "account": "proj",
    "queue": "normal",
    "walltime": "00:10:00",
    "nodes_per_block": 1,
    "max_blocks": 1,
    "max_workers_per_node": 1,
    "worker_init": "echo hi",
}
OPTIONS_BAD = {
    ("executor",): ["gpu", "../x", "", 5, None],
    ("partition",): ["debug", 5],
    ("account",): TOKENS,
    ("queue",): TOKENS,
    ("walltime",): [*WALLTIMES, None],
    ("nodes_per_block",): [0, -1, "1", 1.5, True, None, []],
    ("max_blocks",): [0, -1, "1", 1.5, True, None, []],
    ("max_workers_per_node",): [0, "1", 1.5, None],
    ("worker_init",): [5, [], None, {}],
}


# --- the generator --------------------------------------------------------------------------


def _set(doc: Any, path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        doc = doc[part]
    doc[path[-1]] = value


def _mappings(doc: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(doc, dict):
        yield path
        for key, value in doc.items():
            yield from _mappings(value, (*path, key))


def _typo(rng: random.Random, word: str, known: set[str]) -> str:
    while True:
        chars = list(word)
        i = rng.randrange(len(chars))
        how = rng.choice(("swap", "drop", "double", "replace"))
        if how == "swap" and i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif how == "drop" and len(chars) > 2:
            del chars[i]
        elif how == "double":
            chars.insert(i, chars[i])
        else:
            chars[i] = rng.choice("qxzjk")
        candidate = "".join(chars)
        if candidate not in known:
            return candidate


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True)


def bomb(indent: str = "") -> str:
    """Billion laughs: nine levels of nine aliases each (9**9 strings once expanded)."""
    lines = [f"{indent}l0: &l0 [{', '.join(['lol'] * 9)}]\n"]
    for i in range(1, 9):
        lines.append(f"{indent}l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n")
    return "".join(lines)


BOMB = bomb()
CONTROL_CHARS = ["\x07", "\x00", "\x1b", "\x7f"]
YAML_TEXT_DEFECTS = (
    "non-utf8",
    "duplicate",
    "unclosed-flow",
    "unclosed-quote",
    "tab",
    "control-char",
    "python-tag",
    "local-tag",
    "bomb",
    "deep",
    "recursive-alias",
    "two-documents",
    "not-a-mapping",
)


def _yaml_text_defect(rng: random.Random, text: str) -> bytes:
    lines = text.splitlines(keepends=True)
    at = rng.randrange(len(lines) + 1)
    defect = rng.choice(YAML_TEXT_DEFECTS)

    def insert(snippet: str) -> str:
        return "".join([*lines[:at], snippet, *lines[at:]])

    if defect == "non-utf8":
        raw = text.encode()
        cut = rng.randrange(len(raw) + 1)
        bad = rng.choice([b"\xff", b"\xfe\xfe", b"\xc3\x28", b"\x80", b"\xed\xa0\x80"])
        return raw[:cut] + bad + raw[cut:]
    if defect == "duplicate":
        keyed = [i for i, line in enumerate(lines) if ":" in line and line.lstrip()[:1] not in "-'"]
        i = rng.choice(keyed)
        return "".join(
            [*lines[: i + 1], lines[i].split(":")[0] + ": 1\n", *lines[i + 1 :]]
        ).encode()
    if defect == "unclosed-flow":
        return insert("zz: [a, b\n").encode()
    if defect == "unclosed-quote":
        return insert('zz: "no end\n').encode()
    if defect == "tab":
        return insert("\tzz: 1\n").encode()
    if defect == "control-char":
        return insert(f"zz: a{rng.choice(CONTROL_CHARS)}b\n").encode()
    if defect == "python-tag":
        return insert('zz: !!python/object/apply:os.system ["touch PWNED"]\n').encode()
    if defect == "local-tag":
        return insert("zz: !custom x\n").encode()
    if defect == "bomb":
        return (text + BOMB).encode()
    if defect == "deep":
        depth = rng.randrange(65, 400)
        return (text + "zz: " + "[" * depth + "]" * depth + "\n").encode()
    if defect == "recursive-alias":
        return (text + "zz: &r [*r]\n").encode()
    if defect == "two-documents":
        return (text + "---\nzz: 1\n").encode()
    return rng.choice(["", "# nothing\n", "~\n", "- a\n- b\n", "just text\n", "5\n"]).encode()


def _data_defect(
    rng: random.Random,
    base: dict,
    bad: dict[tuple[str, ...], list[Any]],
    known_keys: Callable[[tuple[str, ...]], set[str] | None],
    rename: Callable[[dict, Any], None] | None,
) -> Any:
    doc = copy.deepcopy(base)
    choices = ["value", "value", "value", "unknown-key"] + (["name"] if rename else [])
    how = rng.choice(choices)
    if how == "value":
        path = rng.choice(sorted(bad))
        _set(doc, path, copy.deepcopy(rng.choice(bad[path])))
    elif how == "unknown-key":
        paths = [p for p in _mappings(doc) if known_keys(p) is not None and p != ("executors",)]
        path = rng.choice(paths)
        target = doc
        for part in path:
            target = target[part]
        known = known_keys(path) or set()
        word = rng.choice(sorted(known))
        target[_typo(rng, word, known)] = target.pop(word, 1) if word in target else 1
    else:
        assert rename is not None
        rename(doc, rng.choice(HOSTILE_NAMES))
    return doc


def _fields(model: Any) -> set[str]:
    return set(model.model_fields)


def resource_keys(path: tuple[str, ...]) -> set[str] | None:
    from chiltepin.config.schema import Resource

    if len(path) == 1 and path[0] != "remote":  # remote endpoints pass unknown keys on
        return _fields(Resource)
    return None


def site_keys(path: tuple[str, ...]) -> set[str] | None:
    from chiltepin.config.schema import ContainerSettings, ExchangeSettings
    from chiltepin.sites.schema import ExecutorSpec, SiteDefaults, SiteProfile

    return {
        (): _fields(SiteProfile),
        ("defaults",): _fields(SiteDefaults),
        ("container",): _fields(ContainerSettings),
        ("exchange",): _fields(ExchangeSettings),
    }.get(
        path,
        _fields(ExecutorSpec)
        if len(path) == 2 and path[0] == "executors"
        else _fields(ContainerSettings)
        if len(path) == 3 and path[2] == "container"
        else None,
    )


def service_keys(path: tuple[str, ...]) -> set[str] | None:
    from chiltepin.agents.serve.config import ServiceConfig
    from chiltepin.config.schema import ExchangeSettings, Resource

    return {
        (): _fields(ServiceConfig),
        ("exchange",): _fields(ExchangeSettings),
        ("agent_workflow_config", "compute"): _fields(Resource),
    }.get(path)


def options_keys(path: tuple[str, ...]) -> set[str] | None:
    return set(OPTIONS) if path == () else None


def _rename_resource(doc: dict, name: Any) -> None:
    doc[name] = doc.pop("small")


def _rename_executor(doc: dict, name: Any) -> None:
    doc["executors"][name] = doc["executors"].pop("compute")


def _rename_service(doc: dict, name: Any) -> None:
    doc["name"] = name


def _rename_option_executor(doc: dict, name: Any) -> None:
    doc["executor"] = name


@dataclass
class Kind:
    """One loader: its valid base document, how it is mutated, how the CLI reads it."""

    name: str
    base: dict
    bad: dict[tuple[str, ...], list[Any]]
    known_keys: Callable[[tuple[str, ...]], set[str] | None]
    rename: Callable[[dict, Any], None]
    file_name: str
    argv: Callable[[Path, Path], list[str]]  # (document, work dir) -> chiltepin arguments
    json: bool = False

    def text(self, doc: Any) -> str:
        return json.dumps(doc) if self.json else _dump(doc)

    def documents(self, count: int, seed: int) -> list[bytes]:
        rng = random.Random(f"{seed}-{self.name}")
        seen: set[bytes] = set()
        docs: list[bytes] = []
        for _ in range(count * 20):
            if len(docs) == count:
                break
            if rng.random() < 0.35:
                data = (
                    _json_text_defect(rng, self.text(self.base))
                    if self.json
                    else _yaml_text_defect(rng, self.text(self.base))
                )
            else:
                doc = _data_defect(rng, self.base, self.bad, self.known_keys, self.rename)
                data = self.text(doc).encode()
            if data not in seen:
                seen.add(data)
                docs.append(data)
        return docs


def _json_text_defect(rng: random.Random, text: str) -> bytes:
    defect = rng.choice(
        ("non-utf8", "truncated", "trailing-comma", "single-quotes", "duplicate", "deep", "other")
    )
    if defect == "non-utf8":
        raw = text.encode()
        cut = rng.randrange(len(raw) + 1)
        return raw[:cut] + rng.choice([b"\xff", b"\xc3\x28", b"\x80"]) + raw[cut:]
    if defect == "truncated":
        return text[: rng.randrange(len(text) - 1)].encode()
    if defect == "trailing-comma":
        return (text[:-1] + ", }").encode()
    if defect == "single-quotes":
        return text.replace('"', "'").encode()
    if defect == "duplicate":
        key = rng.choice(sorted(OPTIONS))
        return (text[:-1] + f', "{key}": {json.dumps(OPTIONS[key])}}}').encode()
    if defect == "deep":
        depth = rng.choice([5, 50, 5000, 200_000])
        return ('{"worker_init": ' + "[" * depth + "]" * depth + "}").encode()
    return rng.choice(["", "[]", "null", "5", '"x"', "[1, 2]", "{", "NaN", "1" * 5000]).encode()


KINDS = [
    Kind(
        "resources",
        RESOURCES,
        RESOURCE_BAD,
        resource_keys,
        _rename_resource,
        "resources.yaml",
        lambda doc, work: ["config", "validate", str(doc)],
    ),
    Kind(
        "site",
        SITE,
        SITE_BAD,
        site_keys,
        _rename_executor,
        "fz.yaml",
        lambda doc, work: ["site", "validate", str(doc)],
    ),
    Kind(
        "service",
        SERVICE,
        SERVICE_BAD,
        service_keys,
        _rename_service,
        "service.yaml",
        lambda doc, work: ["agent", "unit", str(doc), "-o", str(work / "units")],
    ),
    Kind(
        "options",
        OPTIONS,
        OPTIONS_BAD,
        options_keys,
        _rename_option_executor,
        "options.json",
        lambda doc, work: ["endpoint", "render", "tc", "-o", str(doc)],
        json=True,
    ),
]
KIND_BY_NAME = {k.name: k for k in KINDS}


# --- running the CLI ------------------------------------------------------------------------


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging."""

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_in_process(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with deadline(20), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def run_console(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    proc = run(*argv, cwd=cwd, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under ``roots``: (size, mtime)."""
    found = {}
    for root in roots:
        if not root.exists():
            continue
        for path in [root, *root.rglob("*")]:
            info = path.lstat()
            found[str(path)] = (info.st_size, info.st_mtime_ns)
    return found


def assert_one_line_error(code: int, out: str, err: str, what: str) -> None:
    assert code == 2, f"{what}: exit {code}\nstdout: {out[:500]}\nstderr: {err[:2000]}"
    lines = err.splitlines()
    assert len(lines) == 1, f"{what}: {len(lines)} stderr lines:\n{err[:3000]}"
    assert lines[0].startswith("chiltepin: error: "), f"{what}: {lines[0][:500]}"
    assert "Traceback" not in err, what
    assert len(lines[0]) < MAX_ERROR_CHARS, f"{what}: {len(lines[0])} characters of error"
    assert out == "", f"{what}: printed {out[:300]!r}"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A work directory, private state/config homes, and an endpoint 'tc' to render."""
    from chiltepin.endpoint.writer import configure

    root = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GLOBUS_COMPUTE_USER_DIR", str(root / "gc"))
        mp.setenv("XDG_STATE_HOME", str(root / "state"))
        mp.delenv("CHILTEPIN_SITE_PATH", raising=False)
        configure("tc", "testcluster", "compute")
        work = root / "work"
        work.mkdir()
        mp.chdir(work)
        yield root


def _watched(root: Path) -> list[Path]:
    return [root / "gc", root / "state", root / "work"]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_base_documents_are_valid(workspace, kind):
    """The generator's starting points pass: what fails below fails by its defect."""
    work = workspace / "work"
    doc = work / kind.file_name
    doc.write_text(kind.text(kind.base))
    try:
        code, out, err = run_in_process(kind.argv(doc, work))
    finally:
        doc.unlink()
        shutil.rmtree(work / "units", ignore_errors=True)
    assert code == 0, err


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_generated_malformed_documents(workspace, kind):
    work = workspace / "work"
    docs = kind.documents(DOCS_PER_KIND, SEED)
    assert len(docs) >= DOCS_PER_KIND * 0.9, f"generator made only {len(docs)} distinct documents"
    doc = work / kind.file_name
    sample: list[tuple[int, list[str], Path]] = []
    for i, data in enumerate(docs):
        doc.write_bytes(data)
        before = snapshot(*_watched(workspace))
        code, out, err = run_in_process(kind.argv(doc, work))
        assert_one_line_error(code, out, err, f"{kind.name} #{i}: {data[:300]!r}")
        assert snapshot(*_watched(workspace)) == before, f"{kind.name} #{i} wrote something"
        if i % CONSOLE_SAMPLE_EVERY == 0:
            copy_path = work / f"sample-{i}-{kind.file_name}"
            copy_path.write_bytes(data)
            sample.append((i, kind.argv(copy_path, work), copy_path))
    doc.unlink()
    # A sample through the real console script (what users run), a few at a time.
    before = snapshot(*_watched(workspace))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda s: run_console(s[1], work), sample))
    for (i, _, _), (code, out, err) in zip(sample, results, strict=True):
        assert_one_line_error(code, out, err, f"{kind.name} #{i} (console script)")
    assert snapshot(*_watched(workspace)) == before
    for _, _, path in sample:
        path.unlink()
    assert not (work / "PWNED").exists()


# --- one table per input kind, through the console script ---------------------------------

BIG = MAX_FILE_BYTES * 2


def _make(path: Path, how: str, kind: Kind) -> None:
    text = kind.text(kind.base)
    if how == "non-utf8":
        path.write_bytes(text.encode()[:10] + b"\xff\xfe" + text.encode()[10:])
    elif how == "directory":
        path.mkdir()
    elif how == "2mib":
        pad = "x" * BIG
        path.write_text(
            text[:-1] + f', "worker_init": "{pad}"}}' if kind.json else text + f"# {pad}\n"
        )
    elif how == "fifo":
        os.mkfifo(path)
    else:
        path.write_text(how)


TABLE_CLASSES = [
    ("non-utf8", "not UTF-8 text (byte 0xff at offset 10)"),
    ("directory", "is a directory"),
    ("2mib", "too large"),
    ("fifo", "is not a regular file"),
]
KIND_CLASSES = {
    "resources": [
        (BOMB, "aliases (*name) expand it to more than"),
        (
            "compute:\n  partition: a\n  partition: b\n",
            ":3: key 'compute.partition': duplicate key (first at line 2)",
        ),
        ("compute:\n  provider: slurm\ncompute: {}\n", ":3: key 'compute': duplicate key"),
        ("../x: {}\n", "invalid executor name '../x'"),
        ("'a b': {}\n", "invalid executor name 'a b'"),
        ("'{{x}}': {}\n", "invalid executor name '{{x}}'"),
        ("x: !!python/object/apply:os.system [touch PWNED]\n", "could not determine a constructor"),
    ],
    "site": [
        ("executors:\n" + bomb("  "), "aliases (*name) expand it to more than"),
        (
            "executors:\n  compute:\n    partition: a\n    partition: b\n",
            ":4: key 'executors.compute.partition': duplicate key (first at line 3)",
        ),
        ('executors:\n  "c\'#}{{x}}": {}\n', "invalid executor name"),
        ("executors:\n  ../x: {}\n", "executor '../x': invalid executor name"),
        ("executors:\n  c:\n    container: {imgae: x}\n", "'container.imgae': unknown key"),
    ],
    "service": [
        ("name: x\nagent: a:B\nkwargs:\n" + bomb("  "), "aliases (*name) expand it to more than"),
        ("name: x\nagent: a:B\nkwargs: {a: 1, a: 2}\n", "key 'kwargs.a': duplicate key"),
        ("name: ../x\nagent: helpers.agent_services:Counter\n", "invalid service name '../x'"),
        ("name: '{{x}}'\nagent: helpers.agent_services:Counter\n", "invalid service name"),
    ],
    "options": [
        ('{"worker_init": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('{"account": "a", "account": "b"}', "repeats key 'account'"),
        ('{"executor": "../x"}', "option 'executor' is invalid"),
        ('{"account": "proj\\n"}', "option 'account' is invalid"),
    ],
}
TABLE = [
    pytest.param(kind, how, expected, id=f"{kind}-{how if len(how) < 12 else i}")
    for kind in KIND_BY_NAME
    for i, (how, expected) in enumerate(TABLE_CLASSES + KIND_CLASSES[kind])
]


@pytest.mark.parametrize(("kind_name", "how", "expected"), TABLE)
def test_input_classes_through_the_console_script(workspace, tmp_path, kind_name, how, expected):
    kind = KIND_BY_NAME[kind_name]
    path = tmp_path / kind.file_name
    _make(path, how, kind)
    before = snapshot(*_watched(workspace))
    code, out, err = run_console(kind.argv(path, tmp_path), tmp_path)
    assert_one_line_error(code, out, err, f"{kind_name} {how[:40]!r}")
    assert expected in err, err
    assert str(path) in err or "endpoint 'tc'" in err, err  # the file is named
    assert snapshot(*_watched(workspace)) == before
    assert not (tmp_path / "units").exists() and not (tmp_path / "PWNED").exists()
