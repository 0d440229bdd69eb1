"""Globus Compute endpoints generated from site profiles.

An endpoint directory (under ``$GLOBUS_COMPUTE_USER_DIR`` or ``~/.globus_compute``) is
written from a site profile and checked with globus-compute-endpoint's own config loader
and template renderer before it is reported as configured:

- :func:`configure` writes ``config.yaml``, ``user_config_template.yaml.j2``,
  ``user_config_schema.json`` and ``user_environment.yaml``;
- :func:`render` shows the engine configuration a user's options produce;
- :mod:`chiltepin.endpoint.manage` wraps ``globus-compute-endpoint`` list/start/stop/
  delete/login/logout with one-line errors.

Everything up to registering with Globus's web services runs offline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chiltepin.endpoint.validate import render
    from chiltepin.endpoint.writer import ConfigureResult, configure

__all__ = ["ConfigureResult", "configure", "render"]


def __getattr__(name: str) -> Any:
    # Lazy: globus_compute_endpoint is heavy; importing the package must stay cheap.
    if name in ("configure", "ConfigureResult"):
        from chiltepin.endpoint import writer

        return getattr(writer, name)
    if name == "render":
        from chiltepin.endpoint.validate import render

        return render
    raise AttributeError(name)
