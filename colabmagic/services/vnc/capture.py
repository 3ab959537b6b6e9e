"""Capture a VNC desktop to a PNG over RFB, as any VNC client would: authenticate, read the framebuffer.

Run as a script in its own process (``python capture.py HOST PORT OUT.png``)
with the password on stdin, never on the command line: vncdotool's Twisted
reactor cannot be restarted once stopped, so a fresh process per capture
keeps the kernel clean and lets the caller bound the wait. It uses only the
standard library and vncdotool, and is started by path, so it needs no
package import. Exit status: 0 captured, 2 usage, 3 vncdotool missing,
4 authentication refused, 5 any other failure (message on stderr).
"""

from __future__ import annotations

import sys
import warnings


def main(argv: list) -> int:
    if len(argv) != 4:
        print("usage: capture.py HOST PORT OUT.png  (password on stdin)", file=sys.stderr)
        return 2
    host, port, out = argv[1], int(argv[2]), argv[3]
    password = sys.stdin.readline().rstrip("\n")
    warnings.simplefilter("ignore")  # vncdotool's single-DES use warns on newer cryptography
    try:
        from vncdotool import api
    except ImportError as exc:
        print(f"vncdotool is not installed ({exc}); pip install vncdotool", file=sys.stderr)
        return 3
    try:
        client = api.connect(f"{host}::{port}", password=password or None, timeout=30)
        client.captureScreen(out)
        # Only after a capture: a refused connection is already closed, and disconnecting it
        # would wait for a close that never comes.
        client.disconnect()
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
        print(text, file=sys.stderr)
        lowered = text.lower()
        return 4 if ("auth" in lowered or "password" in lowered) else 5
    finally:
        try:
            api.shutdown()
        except Exception:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
