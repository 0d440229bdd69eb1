"""Which address workers (and agents) on other hosts reach this host at.

A resource, a site profile's ``defaults`` or an embedded exchange names either an
``address`` (literal) or an ``interface`` (e.g. ``ib0``), whose IPv4 address is looked up
on the submitting host with Parsl's ``address_by_interface``. An interface that does not
exist here is one ConfigError listing those that do. Imports no Parsl until an interface
is looked up.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from chiltepin.errors import ConfigError

#: Builds the ConfigError for a key: (message, key, hint) -> error.
ErrorFor = Callable[[str, str, str], ConfigError]


def interface_names() -> list[str]:
    """The network interfaces of this host, in the kernel's order."""
    try:
        return [name for _index, name in socket.if_nameindex()]
    except OSError:
        return []


def interface_addresses() -> dict[str, str]:
    """Each interface of this host that has an IPv4 address, with that address."""
    from parsl.addresses import address_by_interface

    found = {}
    for name in interface_names():
        try:
            found[name] = address_by_interface(name)
        except OSError:  # no IPv4 address
            continue
    return found


def interface_address(name: str, error: ErrorFor, key: str = "interface") -> str:
    """The IPv4 address of interface ``name`` on this host (raises ``error(...)``)."""
    here = interface_names()
    host = socket.gethostname()
    if name not in here:
        raise error(
            f"interface {name!r} does not exist on this host ({host})",
            key,
            f"interfaces here: {', '.join(here) or 'none'}",
        )
    from parsl.addresses import address_by_interface

    try:
        return address_by_interface(name)
    except OSError:
        raise error(
            f"interface {name!r} has no IPv4 address on this host ({host})",
            key,
            "name an interface that has one, or give 'address'",
        ) from None


def executor_network(res: Any, error: ErrorFor) -> dict[str, Any]:
    """High-throughput executor keywords for ``res``'s ``address``/``interface`` and
    ``worker_port_range``: the interchange binds that address (not every interface) and
    workers are handed only it."""
    options: dict[str, Any] = {}
    if res.interface is not None:
        options["address"] = interface_address(res.interface, error)
    elif res.address is not None:
        options["address"] = res.address
    if res.worker_port_range is not None:
        low, high = res.worker_port_range
        options["worker_port_range"] = (low, high)
    return options
