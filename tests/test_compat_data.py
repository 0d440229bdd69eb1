"""chiltepin.data on globus-sdk's TransferClient, up to the Globus boundary.

Globus Transfer's web service is unreachable here. The request documents are real
globus-sdk TransferData/DeleteData objects checked field by field; a real TransferClient
aimed at Globus fails with one line, fast; and the whole request sequence (search,
submit, wait) is checked against a stand-in for the service on loopback, which records
what globus-sdk sent.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from helpers.infra import heavy_imports

from chiltepin import data
from chiltepin.errors import ConfigError, TransferError

SRC = "11111111-1111-4111-8111-111111111111"
DST = "22222222-2222-4222-8222-222222222222"


def client(base_url: str | None = None):
    import globus_sdk

    from chiltepin.globus_auth import bounded

    extra = {"base_url": base_url} if base_url else {}
    return globus_sdk.TransferClient(
        authorizer=globus_sdk.AccessTokenAuthorizer("test-token"), **bounded(), **extra
    )


def test_import_is_light():
    assert heavy_imports("import chiltepin.data") == []


def test_transfer_and_delete_documents():
    import globus_sdk

    doc = data.build_transfer_data(SRC, DST, "/data/in", "/scratch/in", recursive=True)
    assert isinstance(doc, globus_sdk.TransferData)
    assert (doc["DATA_TYPE"], doc["source_endpoint"], doc["destination_endpoint"]) == (
        "transfer",
        SRC,
        DST,
    )
    assert [(i["source_path"], i["destination_path"], i["recursive"]) for i in doc["DATA"]] == [
        ("/data/in", "/scratch/in", True)
    ]
    doc = data.build_delete_data(SRC, "/scratch/in")
    assert isinstance(doc, globus_sdk.DeleteData)
    assert (doc["DATA_TYPE"], doc["endpoint"], doc["recursive"]) == ("delete", SRC, False)
    assert [i["path"] for i in doc["DATA"]] == ["/scratch/in"]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: data.transfer(SRC, DST, "", "/b", client=client()), "src_path must be"),
        (lambda: data.transfer(SRC, DST, "/a", "/b", timeout=0), "timeout must be"),
        (lambda: data.delete(SRC, "/a", polling_interval=1.5), "polling_interval must be"),
        (lambda: data.delete("", "/a", client=client()), "source endpoint must be"),
    ],
)
def test_bad_arguments_are_config_errors(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_without_login_one_line_and_no_prompt(gc_dir):
    started = time.monotonic()
    for call in (
        lambda: data.transfer("laptop", "hpc", "/a", "/b"),
        lambda: data.delete(SRC, "/a"),
    ):
        with pytest.raises(TransferError, match="needs a Globus login: run `chiltepin login`"):
            call()
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("source", ["my-laptop", SRC])
def test_real_client_fails_at_globus_boundary_with_one_line(source):
    started = time.monotonic()
    with pytest.raises(RuntimeError) as err:  # TransferError is a RuntimeError, as in 0.1.x
        data.transfer(source, DST, "/a", "/b", client=client())
    assert isinstance(err.value, TransferError)
    assert "cannot reach Globus Transfer's web service" in str(err.value)
    assert "\n" not in str(err.value)
    assert time.monotonic() - started < 60


class FakeTransfer:
    """A loopback stand-in for the Transfer API: records every request."""

    def __init__(self, status: str = "SUCCEEDED", search: list | None = None) -> None:
        self.requests: list[tuple[str, str, dict, dict | None]] = []
        self.status = status
        self.search = search if search is not None else []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, code: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                url = urlparse(self.path)
                fake.requests.append(("GET", url.path, parse_qs(url.query), None))
                if url.path == "/v0.10/endpoint_search":
                    self._reply(200, {"DATA": fake.search, "has_next_page": False})
                elif url.path == "/v0.10/submission_id":
                    self._reply(200, {"value": str(uuid.uuid4())})
                elif url.path.startswith("/v0.10/task/"):
                    self._reply(200, {"task_id": url.path.rsplit("/", 1)[1], "status": fake.status})
                else:
                    self._reply(404, {"code": "ClientError.NotFound", "message": "no"})

            def do_POST(self):
                url = urlparse(self.path)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(("POST", url.path, {}, body))
                if body.get("DATA") and body["DATA"][0].get("source_path") == "/denied":
                    self._reply(
                        403,
                        {"code": "PermissionDenied", "message": "no access to /denied"},
                    )
                    return
                self._reply(202, {"task_id": "task-1", "code": "Accepted"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def fake():
    service = FakeTransfer(
        search=[
            {"id": SRC, "display_name": "my-laptop"},
            {"id": str(uuid.uuid4()), "display_name": "my-laptop (old)"},
        ]
    )
    yield service
    service.close()


def test_transfer_searches_submits_and_waits(fake):
    ok = data.transfer(
        "my-laptop", DST, "/data/in", "/scratch/in", timeout=10, polling_interval=1,
        client=client(fake.url), recursive=True,
    )  # fmt: skip
    assert ok is True
    paths = [(m, p) for m, p, _, _ in fake.requests]
    assert paths == [
        ("GET", "/v0.10/endpoint_search"),  # DST is a UUID: not searched
        ("GET", "/v0.10/submission_id"),
        ("POST", "/v0.10/transfer"),
        ("GET", "/v0.10/task/task-1"),
        ("GET", "/v0.10/task/task-1"),
    ]
    assert fake.requests[0][2]["filter_fulltext"] == ["my-laptop"]
    body = fake.requests[2][3]
    assert (body["DATA_TYPE"], body["source_endpoint"], body["destination_endpoint"]) == (
        "transfer",
        SRC,
        DST,
    )
    assert body["DATA"] == [
        {
            "DATA_TYPE": "transfer_item",
            "source_path": "/data/in",
            "destination_path": "/scratch/in",
            "recursive": True,
        }
    ]


def test_delete_and_failed_task(fake):
    fake.status = "FAILED"
    assert (
        data.delete(SRC, "/scratch/in", timeout=5, polling_interval=1, client=client(fake.url))
        is False
    )
    body = fake.requests[1][3]
    assert (body["DATA_TYPE"], body["endpoint"], body["DATA"]) == (
        "delete",
        SRC,
        [{"DATA_TYPE": "delete_item", "path": "/scratch/in"}],
    )


def test_service_errors_are_one_line(fake):
    with pytest.raises(TransferError, match="destination endpoint 'hpc' could not be found"):
        data.transfer(SRC, "hpc", "/a", "/b", client=client(fake.url))
    with pytest.raises(TransferError) as err:
        data.transfer(SRC, DST, "/denied", "/b", client=client(fake.url))
    assert str(err.value) == (
        "submitting the Globus transfer task: 403 PermissionDenied: no access to /denied"
    )


def test_transfer_task_runs_in_a_workflow_and_fails_at_the_login(gc_dir, tmp_path):
    """The task version runs on a real executor; with no login, its future carries the
    same one-line TransferError (no prompt in the worker)."""
    from chiltepin import Workflow

    with Workflow(run_dir=tmp_path / "run"):
        future = data.transfer_task("laptop", "hpc", "/a", "/b", executor="local")
        err = future.exception(timeout=120)
        deleted = data.delete_task(SRC, "/a", executor="local")
        del_err = deleted.exception(timeout=120)
    assert isinstance(err, TransferError) and "needs a Globus login" in str(err)
    assert isinstance(del_err, TransferError)
