"""list/start/stop/delete/login/logout over ``globus-compute-endpoint``, with one-line errors.

Commands that may reach Globus's web services run ``globus-compute-endpoint`` from this
toolkit's environment as a subprocess; what it prints on failure (often a traceback) is
reduced to one line. ``list`` reads the endpoint directories locally.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chiltepin.endpoint import generate as gen
from chiltepin.endpoint.errors import EndpointError, one_line
from chiltepin.endpoint_ids import endpoints_dir
from chiltepin.globus_auth import CLIENT_ID_ENV, CLIENT_SECRET_ENV
from chiltepin.names import check_name

COMPUTE_DIR_ENV = "GLOBUS_COMPUTE_USER_DIR"

#: Exception names in globus-compute-endpoint output that mean Globus was not reached.
_NETWORK_ERRORS = ("GlobusConnectionError", "NetworkError", "ConnectionError", "GlobusTimeoutError")


@dataclass
class EndpointInfo:
    name: str
    path: Path
    status: str  # Initialized (never registered), Running, Stopped, Disconnected
    endpoint_id: str | None
    site: str | None
    executors: list[str]


def gce_command() -> str:
    """The globus-compute-endpoint script of this toolkit's environment."""
    local = Path(sys.prefix) / "bin" / "globus-compute-endpoint"
    return str(local) if local.exists() else "globus-compute-endpoint"


def endpoint_dir(name: str) -> Path:
    """The directory of a configured endpoint given by name or registered UUID."""
    base = endpoints_dir()
    if not _is_uuid(name):
        check_name("endpoint", name)
        path = base / name
        if not (path / "config.yaml").is_file():
            known = ", ".join(e.name for e in list_endpoints()) or "none"
            raise EndpointError(
                f"no endpoint '{name}' in {base} (configured: {known}); "
                "create it with: chiltepin endpoint configure NAME --site SITE"
            )
        return path
    for info in list_endpoints():
        if info.endpoint_id == name:
            return info.path
    raise EndpointError(f"no endpoint registered as {name} in {base}")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def list_endpoints() -> list[EndpointInfo]:
    """Endpoints in the compute directory, with status as globus-compute-endpoint sees it."""
    base = endpoints_dir()
    if not base.is_dir():
        return []
    from globus_compute_endpoint.endpoint.endpoint import Endpoint

    statuses = Endpoint.get_endpoints(base)
    out = []
    for name in sorted(statuses):
        path = base / name
        manifest = manifest_of(path)
        out.append(
            EndpointInfo(
                name=name,
                path=path,
                status=statuses[name].get("status", "?"),
                endpoint_id=statuses[name].get("id"),
                site=manifest.get("site"),
                executors=list(manifest.get("executors", [])),
            )
        )
    return out


def manifest_of(path: Path) -> dict:
    """The endpoint directory's manifest ({} if it is missing or unreadable)."""
    from chiltepin._files import read_own_json

    try:
        data = read_own_json(path / gen.MANIFEST)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    # A manifest damaged by hand keeps only the values of the shape the toolkit wrote.
    executors = data.get("executors")
    data["executors"] = (
        [e for e in executors if isinstance(e, str)] if isinstance(executors, list) else []
    )
    if not isinstance(data.get("site"), str):
        data.pop("site", None)
    if not isinstance(data.get("multi_user"), bool):
        data.pop("multi_user", None)
    return data


def has_credentials() -> bool:
    """Client credentials in the environment, or a stored login that needs no renewal
    by hand (checked locally by the Globus SDK; no network)."""
    from chiltepin.globus_auth import login_required

    return not login_required()


@contextmanager
def using_dir(config_dir: str | Path | None) -> Iterator[None]:
    """Treat ``config_dir`` as the endpoints directory (``$GLOBUS_COMPUTE_USER_DIR``) for
    the duration, as ``globus-compute-endpoint -c DIR`` does; None changes nothing.

    Sets the variable for this process while active (so not for concurrent threads).
    """
    if config_dir is None:
        yield
        return
    old = os.environ.get(COMPUTE_DIR_ENV)
    os.environ[COMPUTE_DIR_ENV] = os.path.abspath(config_dir)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(COMPUTE_DIR_ENV, None)
        else:
            os.environ[COMPUTE_DIR_ENV] = old


def link_login(base: Path) -> None:
    """Let endpoints under ``base`` use the login stored in ``~/.globus_compute``.

    ``chiltepin login`` stores tokens there; globus-compute-endpoint looks for them in
    the endpoints directory. A symbolic link keeps the two in step (token refreshes
    included). Nothing is done if ``base`` is the default or already has a token store.
    """
    default = Path.home() / ".globus_compute" / "storage.db"
    target = Path(base).absolute() / "storage.db"
    if target == default or target.exists() or target.is_symlink() or not default.is_file():
        return
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        target.symlink_to(default)
    except OSError as exc:
        raise EndpointError(f"cannot link the Globus login into {base}: {exc.strerror}") from None


def read_credentials(path: str | Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (a systemd EnvironmentFile) with the Globus client credentials."""
    from chiltepin.config.loader import read_text_file

    text = read_text_file(path, "credentials file")
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key in (CLIENT_ID_ENV, CLIENT_SECRET_ENV):
            values[key] = value.strip().strip("'\"")
    if len(values) != 2 or not all(values.values()):
        raise EndpointError(
            f"credentials file {path} must set {CLIENT_ID_ENV} and {CLIENT_SECRET_ENV}"
        )
    return values


def start(
    name: str,
    *,
    foreground: bool = False,
    endpoint_uuid: str | None = None,
    credentials: str | Path | None = None,
    timeout: float | None = None,
) -> str:
    """Validate endpoint ``name``, check credentials, then start it (detached by default).

    The first step that needs Globus's web services is registration; when they cannot be
    reached this raises EndpointError with one line saying so.
    """
    path = endpoint_dir(name)
    if endpoint_uuid is not None and not _is_uuid(endpoint_uuid):
        raise EndpointError(f"--endpoint-uuid {endpoint_uuid!r} is not a UUID")
    from chiltepin.endpoint.validate import validate_dir

    manifest = manifest_of(path)
    validate_dir(path, manifest.get("executors", []))
    if credentials is not None:
        os.environ.update(read_credentials(credentials))
    if not has_credentials():
        raise EndpointError(
            "not logged in to Globus: run `chiltepin endpoint login` on a terminal, or set "
            f"{CLIENT_ID_ENV} and {CLIENT_SECRET_ENV} (client credentials) for services"
        )
    args = ["start", path.name]
    if endpoint_uuid:
        args += ["--endpoint-uuid", endpoint_uuid]
    if foreground:
        # A service manager runs this: output goes to its log, the exit status is GCE's.
        return _run(args, what=f"endpoint '{path.name}'", capture=False)
    return _run([*args, "--detach"], what=f"endpoint '{path.name}'", timeout=timeout)


def stop(name: str, *, timeout: float | None = None) -> str:
    path = endpoint_dir(name)
    return _run(["stop", path.name], what=f"endpoint '{path.name}'", timeout=timeout)


def delete(name: str, *, force: bool = False, timeout: float | None = None) -> str:
    """Delete the endpoint locally and, if it was ever registered, from Globus."""
    path = endpoint_dir(name)
    args = ["delete", path.name, "--yes"] + (["--force"] if force else [])
    out = _run(args, what=f"endpoint '{path.name}'", timeout=timeout)
    if path.exists():
        raise EndpointError(
            f"endpoint '{path.name}' was not deleted: {one_line(out) if out else 'unknown reason'}"
        )
    return out


def login(*, force: bool = False) -> str:
    """Log in to Globus Compute, Transfer and Academy (interactive; see chiltepin.globus_auth)."""
    from chiltepin.globus_auth import login as globus_login

    globus_login(force=force)
    return "logged in to Globus (Compute, Transfer, Academy exchange)"


def logout(*, force: bool = False) -> str:
    """Revoke the stored Globus tokens; refused while endpoints run unless ``force``."""
    from chiltepin.globus_auth import logout as globus_logout

    running = [e.name for e in list_endpoints() if e.status == "Running"]
    if running and not force:
        raise EndpointError(
            f"endpoints are running ({', '.join(running)}): they need the login; "
            "stop them first, or log out anyway with --force"
        )
    globus_logout()
    return "logged out of Globus"


def _run(args: list[str], *, what: str, capture: bool = True, timeout: float | None = None) -> str:
    cmd = [gce_command(), *args]
    env = {**os.environ, COMPUTE_DIR_ENV: str(endpoints_dir())}
    try:
        proc = subprocess.run(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL if capture else None,
            capture_output=capture,
            text=True,
            check=False,
            timeout=timeout,
        )
    except OSError as exc:
        raise EndpointError(f"cannot run {cmd[0]}: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise EndpointError(
            f"{what}: globus-compute-endpoint {args[0]} did not finish within {timeout:g} s"
        ) from None
    out = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0:
        raise EndpointError(f"{what}: {summarize_failure(out, proc.returncode)}")
    return out.strip()


def summarize_failure(output: str, returncode: int) -> str:
    """One line from globus-compute-endpoint's failure output (which may be a traceback)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    if any(name in output for name in _NETWORK_ERRORS) or "Network failure" in output:
        return (
            "cannot reach Globus's web services (the endpoint must register with Globus "
            f"to start; check network access to *.globus.org) [{_last_error(lines)}]"
        )
    if "Please authenticate with Globus" in output or "Aborted!" in lines[-1:]:
        return "Globus login required: run `chiltepin endpoint login` on a terminal"
    for line in reversed(lines):
        if line.startswith("Error:"):
            return one_line(line[len("Error:") :].strip())
    return _last_error(lines) or f"globus-compute-endpoint exited with status {returncode}"


def _last_error(lines: list[str]) -> str:
    """The last ``package.Exception: message`` line of a traceback, else the last line."""
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b.*:", line):
            return one_line(line)
    return one_line(lines[-1]) if lines else ""
