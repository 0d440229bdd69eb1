"""Exchange kinds as classes, exchange values checked the same way on every input path, and
agent service state files that are corrupt.

No exchange server runs here: bad input must be refused before anything connects, and a
new kind (a test class on Academy's in-process exchange) works everywhere once registered.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import uuid
from pathlib import Path

import pytest
from academy.exchange import LocalExchangeFactory
from helpers.cli import one_line_error
from helpers.cli import run as chiltepin_cli

from chiltepin.agents.exchange import (
    KINDS,
    ExchangeKind,
    build_factory,
    exchange_label,
    exchange_settings,
    get_kind,
    mask_url,
    parse_exchange_url,
    register_kind,
)
from chiltepin.agents.exchange.base import check_url
from chiltepin.cli.main import main
from chiltepin.config.schema import ExchangeSettings
from chiltepin.errors import ConfigError

SECRET = "hunter2"


# --- the registry --------------------------------------------------------------------------------


def test_the_built_in_kinds_and_what_each_takes():
    assert list(KINDS) == ["embedded", "http", "redis", "hosted"]
    assert {name: set(kind.keys) for name, kind in KINDS.items()} == {
        "embedded": {"host", "port", "insecure", "interface"},
        "http": {"url", "token_file", "ca_file", "insecure"},
        "redis": {"host", "port", "password_file", "tls", "ca_file", "insecure"},
        "hosted": {"url"},
    }
    assert [name for name, kind in KINDS.items() if kind.owned] == ["embedded"]
    assert get_kind("hosted").service_refusal() is not None
    assert get_kind("embedded").service_refusal() is None  # for the life of the service
    assert get_kind("embedded").site_refusal("s") is not None
    assert get_kind("redis").site_refusal("s") is None
    with pytest.raises(ConfigError, match=r"unknown exchange kind 'redsi'.*did you mean 'redis'"):
        get_kind("redsi")
    # The settings' own check reads the classes: keys, and the list of kinds.
    with pytest.raises(ConfigError, match=r"key 'host': 'host' is not used by exchange kind"):
        exchange_settings({"kind": "http", "url": "http://h:1", "host": "h"})
    with pytest.raises(ConfigError, match=r"must be one of 'embedded', .*did you mean 'redis'"):
        exchange_settings({"kind": "redsi"})


class LoopKind(ExchangeKind):
    """A test kind: Academy's in-process exchange, named by ``loop://NAME`` URLs."""

    name = "loop"
    keys = frozenset({"url"})
    schemes = ("loop",)

    def check(self, settings):
        check_url(settings.url or "", self.schemes, example="loop://here")

    def from_url(self, url, parts):
        return {"kind": self.name, "url": url}

    def factory_class(self):
        return LocalExchangeFactory

    def factory_arguments(self, settings, url):
        return (), {}

    def site_refusal(self, site):
        return f"site '{site}' uses a loop exchange, only in this process", "use --exchange"


@pytest.fixture
def loop_kind():
    register_kind(LoopKind)
    yield KINDS["loop"]
    del KINDS["loop"]


def test_a_new_kind_is_one_class_in_one_place(loop_kind, capsys):
    """Registered, the class alone makes settings, URLs, labels, factories and the CLI
    know it."""
    settings = exchange_settings({"kind": "loop", "url": "loop://here"})
    assert isinstance(settings, ExchangeSettings) and get_kind("loop") is loop_kind
    with pytest.raises(ConfigError, match="'port' is not used by exchange kind 'loop'"):
        exchange_settings({"kind": "loop", "url": "loop://here", "port": 1})
    with pytest.raises(ConfigError, match=r"url 'http://here' must start with loop://"):
        exchange_settings({"kind": "loop", "url": "http://here"})
    assert parse_exchange_url("loop://here") == settings
    assert exchange_label(settings) == "loop://here"
    assert isinstance(build_factory(settings), LocalExchangeFactory)

    from chiltepin.sites.schema import profile_json_schema

    kinds = profile_json_schema()["$defs"]["ExchangeSettings"]["properties"]["kind"]["enum"]
    assert kinds == ["embedded", "http", "redis", "hosted", "loop"]

    # Discovery on it, through the CLI: URL -> settings -> factory -> a client -> no agents.
    assert main(["agent", "list", "--exchange", "loop://here"]) == 0
    out = capsys.readouterr()
    assert "agents on loop://here (every chiltepin agent):\n  none" in out.out, out
    assert main(["agent", "list", "--exchange", "ftp://here"]) == 2
    assert "or loop://..." in capsys.readouterr().err


def test_open_exchange_runs_the_server_a_kind_asks_for(loop_kind):
    import asyncio

    from chiltepin.agents.exchange import open_exchange

    factory, close = asyncio.run(open_exchange({"kind": "loop", "url": "loop://x"}))
    assert isinstance(factory, LocalExchangeFactory) and close is None


# --- URLs ----------------------------------------------------------------------------------------

GOOD_URLS = [
    ("http://h:8700", {"kind": "http", "url": "http://h:8700"}, "http://h:8700"),
    ("https://exchange.example/", {"kind": "http", "url": "https://exchange.example"}, None),
    ("HTTP://h:1", {"kind": "http", "url": "HTTP://h:1"}, None),
    ("http://[::1]:8700/x", {"kind": "http", "url": "http://[::1]:8700/x"}, None),
    (
        f"http://me:{SECRET}@h:8700",
        {"kind": "http", "url": f"http://me:{SECRET}@h:8700"},
        "http://me:***@h:8700",
    ),
    ("redis://h", {"kind": "redis", "host": "h"}, "redis://h:6379"),
    ("redis://10.0.0.5:6380", {"kind": "redis", "host": "10.0.0.5", "port": 6380}, None),
    ("redis://[::1]:6379", {"kind": "redis", "host": "::1", "port": 6379}, None),
    ("redis://h:65535", {"kind": "redis", "host": "h", "port": 65535}, None),
]


@pytest.mark.parametrize(("url", "settings", "label"), GOOD_URLS)
def test_exchange_urls(url, settings, label):
    parsed = parse_exchange_url(url)
    assert parsed == ExchangeSettings.model_validate(settings)
    assert parsed.model_dump(exclude_unset=True) == settings
    if label is not None:
        assert exchange_label(parsed) == label


BAD_URLS = [
    ("ftp://host:1", "is not an exchange URL (hint: use http://HOST:PORT"),
    ("", "--exchange '' is not an exchange URL"),
    ("h:8700", "is not an exchange URL"),
    ("http://h:0", "port must be between 1 and 65535, got 0"),
    ("http://h:70000", "port must be between 1 and 65535, got 70000"),
    ("redis://h:0", "port must be between 1 and 65535, got 0"),
    ("redis://h:70000", "port must be between 1 and 65535, got 70000"),
    ("redis://h:-1", "has an invalid port '-1'"),
    ("http://h:abc", "has an invalid port 'abc'"),
    ("http://", "'http://' has no host"),
    ("redis://:6379", "has no host"),
    ("http:/h:1", "must start with http:// or https://"),
    ("http://a b:1", "contains whitespace or control characters"),
    ("http://h:1/\tx", "contains whitespace or control characters"),
    ("redis://h;touch x:1", "contains whitespace"),
    ("redis://h;id:1", "has an invalid host 'h;id'"),
    ("http://$(id):1", "has an invalid host '$(id)'"),
    ("http://h`id`/", "has an invalid host"),
    ("http://[::1]x:1", "has an invalid host '[::1]x:1'"),
    ("http://a:b:c", "has an invalid host 'a:b:c'"),
    ("http://[::1", "is not an exchange URL"),
    (f"redis://me:{SECRET}@h:1", "'redis://me:***@h:1': a Redis exchange URL takes no user"),
    (f"http://me:{SECRET}@h:0", "'http://me:***@h:0': port must be between 1 and 65535"),
    (f"http://{SECRET}@h x", "'http://***@h x' contains whitespace"),
]


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
def test_bad_exchange_urls_through_the_console_script(tmp_path, url, message):
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    line = one_line_error(chiltepin_cli("agent", "list", "--exchange", url, env=env))
    assert "key '--exchange'" in line and message in line, line
    assert SECRET not in line
    with pytest.raises(ConfigError, match="--exchange"):
        parse_exchange_url(url)  # the same from Python


def test_every_command_with_exchange_takes_the_same_rules(tmp_path):
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    for argv in (
        ["call", str(uuid.UUID(int=1)), "ping"],
        ["shutdown", str(uuid.UUID(int=1))],
    ):
        line = one_line_error(chiltepin_cli("agent", *argv, "--exchange", "redis://h:0", env=env))
        assert "port must be between 1 and 65535, got 0" in line


# --- settings: every input path --------------------------------------------------------------

BAD_SETTINGS = [
    ({"kind": "redis", "port": 0}, "port", "port must be between 1 and 65535, got 0"),
    ({"kind": "redis", "port": 70000}, "port", "between 1 and 65535, got 70000"),
    ({"kind": "redis", "port": True}, "port", "expected int"),
    ({"kind": "embedded", "port": 70000}, "port", "between 0 and 65535, got 70000"),
    ({"kind": "embedded", "port": -1}, "port", "between 0 and 65535, got -1"),
    ({"kind": "redis", "host": "h;id"}, "host", "'h;id' is not a host name or IP address"),
    ({"kind": "redis", "host": "a b"}, "host", "is not a host name"),
    ({"kind": "embedded", "host": "$(id)"}, "host", "is not a host name"),
    ({"kind": "redis", "host": ""}, "host", "is not a host name"),
    ({"kind": "http"}, "url", "exchange kind 'http' needs a url"),
    ({"kind": "http", "url": "ftp://h"}, "url", "must start with http:// or https://"),
    ({"kind": "http", "url": "http://"}, "url", "has no host"),
    ({"kind": "http", "url": "http://h:0"}, "url", "port must be between 1 and 65535"),
    ({"kind": "http", "url": "http://h\n:1"}, "url", "whitespace or control characters"),
    ({"kind": "http", "url": "http://[::1"}, "url", "is not a URL: Invalid IPv6 URL"),
    ({"kind": "hosted", "url": "exchange.example"}, "url", "must start with https://"),
    (
        {"kind": "http", "url": f"https://me:{SECRET}@h x"},
        "url",
        "url 'https://me:***@h x' contains whitespace",
    ),
]


@pytest.mark.parametrize(("settings", "key", "message"), BAD_SETTINGS)
def test_bad_settings_from_python(settings, key, message):
    """AgentSystem and open_exchange take mappings through exchange_settings."""
    with pytest.raises(ConfigError) as caught:
        exchange_settings(settings)
    text = str(caught.value)
    assert f"key '{key}'" in text and message in text and SECRET not in text, text
    assert "\n" not in text


def test_good_settings():
    assert exchange_settings({"kind": "embedded", "port": 0}).port == 0
    assert exchange_settings({"kind": "embedded", "host": "0.0.0.0", "port": 65535}).port == 65535
    assert exchange_settings({"kind": "redis", "host": "::1", "port": 1}).host == "::1"
    assert exchange_settings({"kind": "hosted"}).url is None


def _site(tmp_path: Path, exchange: str) -> dict:
    sites = tmp_path / "sites"
    sites.mkdir(exist_ok=True)
    (sites / "xsite.yaml").write_text(
        f"name: xsite\nscheduler: localhost\nexchange:\n{exchange}executors:\n  a: {{}}\n"
    )
    return {
        **os.environ,
        "CHILTEPIN_SITE_PATH": str(sites),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("  kind: redis\n  port: 70000\n", ":5: section 'exchange': key 'port': port must be"),
        ("  kind: redis\n  port: 0\n", "key 'port': port must be between 1 and 65535, got 0"),
        ("  kind: redis\n  host: 'h;rm -rf x'\n", "key 'host': 'h;rm -rf x' is not a host"),
        (f"  kind: http\n  url: 'http://me:{SECRET}@h:0'\n", "key 'url': url 'http://me:***@h:0'"),
    ],
)
def test_bad_exchange_in_a_site_profile(tmp_path, block, message):
    env = _site(tmp_path, block)
    for argv in (["site", "show", "xsite"], ["agent", "list", "--site", "xsite"]):
        line = one_line_error(chiltepin_cli(*argv, env=env))
        assert "xsite.yaml" in line and message in line and SECRET not in line, line


def test_a_site_exchange_a_shell_cannot_reach(tmp_path):
    env = _site(tmp_path, "  kind: hosted\n")
    line = one_line_error(chiltepin_cli("agent", "list", "--site", "xsite", env=env))
    assert "site 'xsite' uses the hosted exchange, which needs a Globus login" in line


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("  kind: redis\n  port: 70000\n", ":5: key 'exchange.port': port must be between 1"),
        ("  kind: embedded\n  port: 65536\n", "key 'exchange.port': port must be between 0"),
        ("  kind: redis\n  host: 'h$(id)'\n", "key 'exchange.host': 'h$(id)' is not a host"),
        (f"  kind: http\n  url: 'http://me:{SECRET}@h:0'\n", "url 'http://me:***@h:0'"),
    ],
)
def test_bad_exchange_in_a_service_file(tmp_path, block, message):
    config = tmp_path / "svc.yaml"
    config.write_text(f"name: x\nagent: helpers.agent_services:Counter\nexchange:\n{block}")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    line = one_line_error(chiltepin_cli("agent", "unit", str(config), env=env))
    assert str(config) in line and message in line and SECRET not in line, line


# --- masking -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("http://h:1", "http://h:1"),
        (f"http://me:{SECRET}@h:1/x", "http://me:***@h:1/x"),
        (f"https://{SECRET}@h", "https://***@h"),
        (
            f"at redis://:{SECRET}@h:1 and http://u:{SECRET}@g",
            "at redis://:***@h:1 and http://u:***@g",
        ),
        ("mail me@example.org", "mail me@example.org"),
        ("http://h/path@x", "http://h/path@x"),
    ],
)
def test_mask_url(text, masked):
    assert mask_url(text) == masked


def test_credentials_are_masked_in_labels_and_connection_errors(tmp_path):
    url = f"http://me:{SECRET}@127.0.0.1:9"  # the discard port: nothing listens
    assert exchange_label(parse_exchange_url(url)) == "http://me:***@127.0.0.1:9"
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    line = one_line_error(chiltepin_cli("agent", "list", "--exchange", url, env=env), 1)
    assert "cannot reach the exchange http://me:***@127.0.0.1:9" in line and SECRET not in line


# --- state files -------------------------------------------------------------------------------


def _state(name: str, **changes) -> dict:
    state = {
        "name": name,
        "agent_id": str(uuid.UUID(int=5)),
        "agent": "m:C",
        "agent_class": "m.C",
        "actions": ["ping"],
        "exchange": {"kind": "redis", "host": "127.0.0.1", "port": 1},
        "exchange_url": None,
        "registration": {},
        "pid": 2**22 + 7,  # above the default pid_max: never a running process
        "pid_created": 0.0,
        "host": "another-host",
        "config": "/srv/svc.yaml",
        "python_path": [],
        "status": "running",
        "started": "",
    }
    state.update(changes)
    return state


def _json(name: str, **changes) -> bytes:
    return json.dumps(_state(name, **changes)).encode()


CORRUPT = [
    ("empty", b"", "it is empty"),
    ("blank", b"  \n", "it is empty"),
    ("half", _json("half")[:40], "it is not valid JSON"),
    ("latin", b'{"name": "caf\xe9"}', "it is not UTF-8 text"),
    ("alist", b"[1, 2]", "it holds a list, not a JSON object"),
    ("anull", b"null", "it holds null, not a JSON object"),
    ("few", b'{"name": "few"}', "it lacks 'agent_id'"),
    ("pidstr", _json("pidstr", pid="12"), "'pid' must be an integer, got a string"),
    ("pidbool", _json("pidbool", pid=True), "'pid' must be an integer, got a boolean"),
    ("pidneg", _json("pidneg", pid=-1), "'pid' must be positive"),
    ("acts", _json("acts", actions="ping"), "'actions' must be a list"),
    ("acts2", _json("acts2", actions=[1]), "'actions' must be a list of strings"),
    ("uid", _json("uid", agent_id="nope"), "'agent_id' is not a UUID"),
    ("moved", _json("somebody"), "it names service 'somebody', not 'moved'"),
    ("exch", _json("exch", exchange={"kind": "redis", "port": 0}), "'exchange.port' is not"),
    ("exkind", _json("exkind", exchange={"kind": "nope"}), "'exchange.kind' is not valid"),
    (
        "exurl",
        _json("exurl", exchange={"kind": "http", "url": f"http://u:{SECRET}@h:0"}),
        "url 'http://u:***@h:0'",
    ),
    ("exurl2", _json("exurl2", exchange_url="http://h x"), "'exchange_url' is not valid"),
    ("big", b" " * (1 << 20) + b"{}", "it is larger than 1 MiB"),
    ("adir", None, "it is a directory, not a file"),
]


@pytest.fixture
def state_home(tmp_path):
    home = tmp_path / "state"
    agents = home / "chiltepin" / "agents"
    agents.mkdir(parents=True, mode=0o700)
    return agents, {**os.environ, "XDG_STATE_HOME": str(home)}


def _plant(agents: Path, name: str, content: bytes | None) -> Path:
    path = agents / f"{name}.json"
    if content is None:
        path.mkdir()
        (path / "inside").write_text("x")  # not even an empty directory
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize(("name", "content", "reason"), CORRUPT)
def test_a_corrupt_state_file_through_list_call_and_shutdown(state_home, name, content, reason):
    agents, env = state_home
    path = _plant(agents, name, content)
    (agents / "good.json").write_bytes(_json("good"))

    listed = chiltepin_cli("agent", "list", env=env)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:]}
    assert rows == {name: "corrupt", "good": "running"}, listed.stdout
    warning = listed.stderr.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("chiltepin: warning: "), warning
    assert str(path) in warning[0] and reason in warning[0] and SECRET not in warning[0]
    as_json = json.loads(chiltepin_cli("agent", "list", "--json", env=env).stdout)
    statuses = {r["name"]: r["status"] for r in as_json["services"]}
    assert statuses == {name: "corrupt", "good": "running on another-host"}

    line = one_line_error(chiltepin_cli("agent", "call", name, "ping", env=env))
    assert f"{path}: corrupt state file of agent service '{name}': " in line and reason in line
    assert f"chiltepin agent shutdown {name}" in line and "remove the file" in line
    assert SECRET not in line

    if content is None:  # a directory with something in it is not ours to delete
        line = one_line_error(chiltepin_cli("agent", "shutdown", name, env=env))
        assert "cannot remove it" in line and path.exists()
        return
    done = chiltepin_cli("agent", "shutdown", name, env=env)
    assert done.returncode == 0, done.stderr
    assert f"agent service '{name}' was not running" in done.stdout and "removed it" in done.stdout
    assert not path.exists() and (agents / "good.json").exists()


def test_a_corrupt_state_file_of_a_running_service_is_kept(state_home):
    """A serve of that name holds its lock: shutdown does not remove what it cannot stop."""
    agents, env = state_home
    path = _plant(agents, "busy", b"{")
    lock = agents / "busy.lock"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        line = one_line_error(chiltepin_cli("agent", "shutdown", "busy", env=env))
        assert "a serve process of that name still runs here" in line and str(lock) in line
        assert path.exists()
    done = chiltepin_cli("agent", "shutdown", "busy", env=env)  # its process has gone
    assert done.returncode == 0 and not path.exists(), done.stderr


def test_other_targets_skip_corrupt_files(state_home):
    agents, env = state_home
    _plant(agents, "broken", b"{")
    line = one_line_error(chiltepin_cli("agent", "call", str(uuid.UUID(int=9)), "ping", env=env))
    assert "no agent service here runs agent" in line


def test_state_files_are_written_whole_and_private(state_home, monkeypatch):
    from chiltepin.agents.serve.state import ServiceState, read_state, write_state

    agents, env = state_home
    monkeypatch.setenv("XDG_STATE_HOME", env["XDG_STATE_HOME"])
    state = ServiceState.from_dict(_state("svc"))
    path = write_state(state)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_state("svc") == state
    broken = ServiceState.from_dict(_state("svc", python_path=[object()]))
    with pytest.raises(TypeError):
        write_state(broken)  # fails half way through writing
    assert read_state("svc") == state  # the old file, whole
    assert sorted(p.name for p in agents.iterdir()) == ["svc.json"]  # no temporary left
