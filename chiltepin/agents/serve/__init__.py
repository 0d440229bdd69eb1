"""Agents as long-lived services, without a manager (``chiltepin agent serve`` & co.).

- :mod:`.config`: the service file (agent class, workflow, exchange), checked up front;
- :mod:`.runner`: ``serve``: run one agent with Academy's ``Runtime`` until stopped;
- :mod:`.state`: state files of running services (``$XDG_STATE_HOME/chiltepin/agents``);
- :mod:`.unit`: a systemd user unit that keeps a service up;
- :mod:`.control`: launch in the background, list, call actions, shut down.

Importing this package imports neither Parsl nor Academy.
"""

from chiltepin.agents.serve.config import AgentService, ServiceConfig, load_service
from chiltepin.agents.serve.state import ServiceState, all_states, read_state, state_dir

__all__ = [
    "AgentService",
    "ServiceConfig",
    "ServiceState",
    "all_states",
    "load_service",
    "read_state",
    "state_dir",
]
