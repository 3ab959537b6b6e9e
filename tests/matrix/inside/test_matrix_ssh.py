"""``%tunnel ssh --via ssh``: a login through a loopback relay with exactly the printed config.

sshd (colabmagic's and the relay's) and the ssh client are the release's own
OpenSSH, installed through colabmagic's installer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matrix_helpers import package_version
from runtimes import printed

from colabmagic.system import probes


def test_login_through_the_relay_with_the_printed_config(safe_home: Path, ip: Any, relay: Any, client_key: Path,
                                                         ssh_login: Any) -> None:
    pub = Path(f"{client_key}.pub").read_text().strip()
    c = ip.cell(f"%tunnel ssh --via ssh --relay {relay.relay} --relay-host-key '{relay.host_key}' "
                f"--relay-key-file {relay.client_key} --remote-port {probes.free_port()} --key '{pub}'")
    known_hosts_line, host_block = printed(c.stdout)
    r = ssh_login(known_hosts_line, host_block, client_key, "cat /etc/debian_version; id -un")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [Path("/etc/debian_version").read_text().strip(), "root"]
    assert package_version("openssh-server")  # the release's sshd, put in by colabmagic's installer
