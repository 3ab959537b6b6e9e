"""The only place that formats output: tables, cards and progress, as HTML and as text.

Value objects (Tunnel, VncDesktop, Download, SyncReport, ...) build their
``__repr__`` and ``_repr_html_`` from these helpers, so a notebook shows a
card and a terminal a few aligned lines. Nothing here imports IPython at
module level; the notebook progress bar imports IPython.display when used.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, List, Optional, Sequence, Tuple


def _escape(text: str) -> str:
    """``html.escape``, imported on first use (``%load_ext`` does not pay for html.entities)."""
    import html

    return html.escape(text)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


class Table:
    """Rows under a header; ``str()`` gives aligned text, ``_repr_html_`` a table."""

    def __init__(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str = "",
                 empty: str = "(none)"):
        self.columns = list(columns)
        self.rows = [[_cell(v) for v in row] for row in rows]
        self.title = title
        self.empty = empty

    def __len__(self) -> int:
        return len(self.rows)

    def text(self) -> str:
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            for i, value in enumerate(row):
                widths[i] = max(widths[i], len(value))
        lines = [self.title] if self.title else []
        lines.append("  ".join(c.ljust(w) for c, w in zip(self.columns, widths)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        if not self.rows:
            lines.append(self.empty)
        for row in self.rows:
            lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{_escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{_escape(v)}</td>" for v in row) + "</tr>"
            for row in self.rows
        )
        if not self.rows:
            body = f"<tr><td colspan='{len(self.columns)}'><i>{_escape(self.empty)}</i></td></tr>"
        title = f"<b>{_escape(self.title)}</b>" if self.title else ""
        return f"{title}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def card_text(title: str, fields: Sequence[Tuple[str, Any]], blocks: Sequence[Tuple[str, str]] = ()) -> str:
    """``title`` then ``key: value`` lines, then titled preformatted blocks."""
    width = max((len(k) for k, _ in fields), default=0)
    lines = [title] + [f"  {k.ljust(width)}  {_cell(v)}" for k, v in fields]
    for heading, block in blocks:
        lines.append(f"{heading}:")
        lines.extend(f"    {line}" for line in block.splitlines())
    return "\n".join(lines)


def card_html(title: str, fields: Sequence[Tuple[str, Any]], blocks: Sequence[Tuple[str, str]] = ()) -> str:
    rows = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{_escape(k)}</th>"
        f"<td style='text-align:left'><code>{_escape(_cell(v))}</code></td></tr>"
        for k, v in fields
    )
    parts = [f"<div><b>{_escape(title)}</b><table>{rows}</table>"]
    for heading, block in blocks:
        parts.append(f"<div>{_escape(heading)}:</div><pre>{_escape(block)}</pre>")
    parts.append("</div>")
    return "".join(parts)


def link_html(url: str, text: str) -> str:
    """A clickable link (a ``vscode://`` one opens VS Code on the user's machine)."""
    return f"<div><a href='{_escape(url)}'>{_escape(text)}</a> <code>{_escape(url)}</code></div>"


def bar_text(fraction: float, width: int = 20) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(round(fraction * width))
    return "[" + "#" * filled + "." * (width - filled) + f"] {fraction * 100:5.1f}%"


def bar_html(fraction: float, label: str = "") -> str:
    pct = min(max(fraction, 0.0), 1.0) * 100
    return (
        f"<div style='display:flex;align-items:center;gap:.5em'>"
        f"<progress value='{pct:.1f}' max='100' style='width:16em'></progress>"
        f"<span>{pct:5.1f}% {_escape(label)}</span></div>"
    )


def in_notebook() -> bool:
    """True in a Jupyter/Colab/VS Code kernel (a frontend that renders HTML)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class ProgressBar:
    """A progress callback ``bar(fraction, message)``: a live bar in a notebook, text lines elsewhere."""

    def __init__(self, title: str, stream: Any = None, notebook: Optional[bool] = None, min_interval: float = 1.0):
        self.title = title
        self.stream = stream or sys.stdout
        self.notebook = in_notebook() if notebook is None else notebook
        self.min_interval = min_interval
        self._handle: Any = None
        self._last = 0.0
        self._last_text = ""
        self.updates: List[Tuple[float, str]] = []

    def __call__(self, fraction: float, message: str = "") -> None:
        self.updates.append((fraction, message))
        now = time.monotonic()
        final = fraction >= 1.0
        if self.notebook:
            from IPython.display import HTML, display

            body = HTML(f"<b>{_escape(self.title)}</b>" + bar_html(fraction, message))
            if self._handle is None:
                self._handle = display(body, display_id=True)
            elif final or now - self._last >= 0.2:
                self._handle.update(body)
            else:
                return
        else:
            text = f"{self.title}: {bar_text(fraction)} {message}".rstrip()
            if text == self._last_text or (not final and now - self._last < self.min_interval):
                return
            self._last_text = text
            print(text, file=self.stream, flush=True)
        self._last = now


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def human_seconds(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


# --- texts of the tunnel layer's value objects ------------------------------------------------

QUICK_TUNNEL_NOTE = (
    "note: this is a cloudflared quick tunnel: its address changes with every new runtime and agent restart. "
    "For a fixed one, use a named tunnel: the secret CLOUDFLARE_TUNNEL_TOKEN and --hostname HOST "
    "(with --identity PATH to keep both)."
)


def is_quick_tunnel(tunnel: Any) -> bool:
    """A cloudflared quick tunnel (``*.trycloudflare.com``): its address changes with each start."""
    return tunnel.provider == "cloudflared" and (tunnel.public_host or "").endswith(".trycloudflare.com")


def ssh_instructions(tunnel: Any, fingerprint: str, password_shown: Optional[str] = None) -> str:
    """What to paste on the client for an ssh ``Tunnel``: known_hosts line, Host block, commands."""
    assert tunnel.ssh is not None
    alias = tunnel.ssh.host_alias
    lines = [
        f"SSH to this machine via {tunnel.provider}: {tunnel.public_host}:{tunnel.public_port} "
        f"(host key {fingerprint})",
        "",
        "1. Append to ~/.ssh/known_hosts (pins this machine's host key):",
        tunnel.known_hosts_line(),
        "",
        "2. Append to ~/.ssh/config:",
        tunnel.ssh_config().rstrip("\n"),
        "",
        f"Then: ssh {alias}",
        f"   VS Code: Remote-SSH: Connect to Host... -> {alias} (it reads the same ~/.ssh/config)",
        f"   VS Code in one click (after steps 1 and 2): {tunnel.vscode_url()}",
        f"   one line: {tunnel.ssh_command()}",
        f"   VNC (%vnc start) through it: ssh -L 5901:localhost:5901 -N {alias}",
        f"      one line: {tunnel.ssh_command('-L', '5901:localhost:5901', '-N')}",
    ]
    if tunnel.relay:
        user_host, _, relay_port = tunnel.relay.rpartition(":")
        lines += [
            "",
            f"The relay must let clients reach port {tunnel.public_port} (GatewayPorts yes or clientspecified "
            "in its sshd_config). If it keeps the default (no), go through the relay instead:",
            f"   ssh -J {user_host}:{relay_port} -o HostKeyAlias={tunnel.ssh.host_key_alias} "
            f"-p {tunnel.public_port} {tunnel.ssh.user}@localhost",
        ]
    if is_quick_tunnel(tunnel):
        lines += ["", QUICK_TUNNEL_NOTE]
    if password_shown:
        lines += ["", f"Password for {tunnel.ssh.user} (shown this once because you asked; "
                      f"key login still works): {password_shown}"]
    return "\n".join(lines)


def relay_login_key_note(tunnel: Any) -> Optional[str]:
    """The line asking the user to authorize colabmagic's own relay login key, if it has one."""
    if not tunnel.relay_login_key:
        return None
    return f"colabmagic logs in to the relay with its own key; authorize it there:\n{tunnel.relay_login_key}"
