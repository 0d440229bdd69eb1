"""Move and delete data with Globus Transfer, from Python or as workflow tasks.

``transfer`` and ``delete`` submit a Globus Transfer task and wait for it;
``transfer_task`` and ``delete_task`` are the same as :func:`~chiltepin.tasks.python_task`
tasks, so they take ``executor=`` and ``inputs=`` and return a future::

    from chiltepin.data import transfer_task, delete_task

    staged = transfer_task("my-laptop", "hpc-scratch", "/data/in.dat", "/scratch/in.dat",
                           executor="local")
    result = process("/scratch/in.dat", executor="compute", inputs=[staged])
    delete_task("hpc-scratch", "/scratch/in.dat", executor="local", inputs=[result])

Endpoints (collections) are given by UUID or display name. Each call returns True when
the Globus task succeeded and False when it failed or was still running at ``timeout``.
Without ``client``, the Globus login made by ``chiltepin login`` is used; nothing here
ever prompts for a login. Anything that stops a task from being submitted (no login, an
unknown collection, Globus unreachable or refusing the request) is one
:class:`~chiltepin.errors.TransferError` line (a ``RuntimeError``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chiltepin.errors import ConfigError, TransferError
from chiltepin.tasks import python_task

if TYPE_CHECKING:
    from globus_sdk import DeleteData, TransferClient, TransferData

__all__ = [
    "build_delete_data",
    "build_transfer_data",
    "delete",
    "delete_task",
    "transfer",
    "transfer_task",
]


def transfer(
    src_ep: str,
    dst_ep: str,
    src_path: str,
    dst_path: str,
    timeout: int = 3600,
    polling_interval: int = 30,
    client: TransferClient | None = None,
    recursive: bool = False,
) -> bool:
    """Copy ``src_path`` on ``src_ep`` to ``dst_path`` on ``dst_ep`` and wait (at most
    ``timeout`` seconds, checking every ``polling_interval``) for Globus to finish."""
    _check_wait(timeout, polling_interval)
    client = client or _client()
    data = build_transfer_data(
        _collection(client, src_ep, "source"),
        _collection(client, dst_ep, "destination"),
        src_path,
        dst_path,
        recursive=recursive,
    )
    return _submit_and_wait(client, client.submit_transfer, data, timeout, polling_interval)


def delete(
    src_ep: str,
    src_path: str,
    timeout: int = 3600,
    polling_interval: int = 30,
    client: TransferClient | None = None,
    recursive: bool = False,
) -> bool:
    """Delete ``src_path`` on ``src_ep`` and wait (at most ``timeout`` seconds) for it."""
    _check_wait(timeout, polling_interval)
    client = client or _client()
    data = build_delete_data(_collection(client, src_ep, "source"), src_path, recursive=recursive)
    return _submit_and_wait(client, client.submit_delete, data, timeout, polling_interval)


#: :func:`transfer` as a task: it also takes ``executor=`` and ``inputs=`` and returns a
#: future of the result.
transfer_task = python_task(transfer)
#: :func:`delete` as a task (see :data:`transfer_task`).
delete_task = python_task(delete)


def build_transfer_data(
    src_id: str, dst_id: str, src_path: str, dst_path: str, *, recursive: bool = False
) -> TransferData:
    """The Transfer request document for one file or directory."""
    import globus_sdk

    _check_path(src_path, "src_path")
    _check_path(dst_path, "dst_path")
    data = globus_sdk.TransferData(src_id, dst_id, label=f"chiltepin transfer {src_path}")
    data.add_item(src_path, dst_path, recursive=recursive)
    return data


def build_delete_data(endpoint_id: str, path: str, *, recursive: bool = False) -> DeleteData:
    """The Delete request document for one file or directory."""
    import globus_sdk

    _check_path(path, "src_path")
    data = globus_sdk.DeleteData(endpoint_id, recursive=recursive, label=f"chiltepin delete {path}")
    data.add_item(path)
    return data


def _check_path(path: Any, what: str) -> None:
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{what} must be a non-empty path, got {path!r}", key=what)


def _check_wait(timeout: Any, polling_interval: Any) -> None:
    for key, value in (("timeout", timeout), ("polling_interval", polling_interval)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key} must be a whole number of seconds >= 1, got {value!r}")


def _client() -> TransferClient:
    """A Transfer client on the stored login; TransferError instead of a login prompt."""
    from chiltepin.globus_auth import LOGIN_HINT, clients, login_required

    if login_required(transfer=True):
        raise TransferError(f"Globus Transfer needs a Globus login: {LOGIN_HINT}")
    return clients()["transfer"]


def _collection(client: TransferClient, ref: Any, role: str) -> str:
    """The UUID of the collection given by UUID or display name."""
    from chiltepin.endpoint_ids import is_uuid

    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"{role} endpoint must be a UUID or display name, got {ref!r}")
    if is_uuid(ref):
        return ref
    found = _call(
        lambda: [
            c["id"]
            for c in client.endpoint_search(ref, filter_non_functional=False)
            if c["display_name"] == ref
        ],
        f"finding the {role} endpoint '{ref}'",
    )
    if not found:
        raise TransferError(f"{role} endpoint '{ref}' could not be found in Globus Transfer")
    if len(found) > 1:
        raise TransferError(
            f"{role} endpoint '{ref}' names {len(found)} collections; give its UUID"
        )
    return found[0]


def _submit_and_wait(
    client: TransferClient, submit: Any, data: Any, timeout: int, polling_interval: int
) -> bool:
    what = f"Globus {data['DATA_TYPE'].lower()} task"
    task_id = _call(lambda: submit(data)["task_id"], f"submitting the {what}")
    if not _call(
        lambda: client.task_wait(task_id, timeout=timeout, polling_interval=polling_interval),
        f"waiting for {what} {task_id}",
    ):
        return False
    return _call(lambda: client.get_task(task_id)["status"], what) == "SUCCEEDED"


def _call(fn: Any, doing: str) -> Any:
    """Run one Globus request; its failure becomes one TransferError line."""
    import globus_sdk

    from chiltepin.endpoint.errors import one_line

    try:
        return fn()
    except globus_sdk.GlobusConnectionError as exc:
        raise TransferError(
            f"{doing}: cannot reach Globus Transfer's web service ({one_line(exc)})"
        ) from None
    except globus_sdk.TransferAPIError as exc:
        if exc.info.consent_required:
            raise TransferError(
                f"{doing}: Globus needs more consent for this collection: run "
                "`chiltepin login --force` on a terminal"
            ) from None
        reason = f"{exc.http_status} {exc.code}: {one_line(exc.message)}"
        raise TransferError(f"{doing}: {reason}") from None
    except globus_sdk.GlobusError as exc:
        raise TransferError(f"{doing}: {one_line(exc)}") from None
