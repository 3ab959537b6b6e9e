"""The user's frp server in tests: the frps stand-in on free loopback ports, token auth, TLS required.

``FrpsServer(folder).start()``; ``restart()`` stops it and starts it again on
the same ports (the server going away under a running frpc).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from pathlib import Path
from typing import Optional

from colabmagic.system import probes

FRPS = str(Path(__file__).resolve().parent / "frps")


class FrpsServer:
    def __init__(self, folder: Path):
        self.token = "frp-" + secrets.token_hex(12)
        self.port, self.vhost_port = probes.free_port(), probes.free_port()
        self.server = f"127.0.0.1:{self.port}"
        self.config = folder / "frps.toml"
        self.log = folder / "frps.log"
        self.config.write_text(
            f'bindAddr = "127.0.0.1"\nbindPort = {self.port}\nvhostHTTPPort = {self.vhost_port}\n'
            f'proxyBindAddr = "127.0.0.1"\nauth.method = "token"\nauth.token = "{self.token}"\n'
            "transport.tls.force = true\n"
        )
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([FRPS, "-c", str(self.config)], stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        assert probes.wait_for(lambda: probes.port_open(self.port), 20), self.log.read_text()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()
