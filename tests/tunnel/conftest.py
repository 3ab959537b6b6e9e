"""Fixtures for %tunnel tests (the relay, client key, ssh login and ``safe_home`` are in tests/conftest.py).

Most tests keep pytest's ``$COLABMAGIC_HOME`` below /tmp, where sshd's
StrictModes would refuse authorized_keys, so they exercise the copy under
/run; ``safe_home`` puts the home under root's own cache folder instead,
as the default /var/lib/colabmagic is.
"""

from __future__ import annotations

from typing import Callable, Optional

import pytest

from colabmagic.demo import relay as demo_relay
from colabmagic.system import probes


def _relay_args(r: demo_relay.Relay, remote_port: Optional[int] = None) -> str:
    port = remote_port or probes.free_port()
    return (f"--via ssh --relay {r.relay} --relay-host-key '{r.host_key}' "
            f"--relay-key-file {r.client_key} --remote-port {port}")


@pytest.fixture
def relay_args() -> Callable[..., str]:
    """``relay_args(relay, remote_port=None)``: the ssh-provider options for a relay."""
    return _relay_args
