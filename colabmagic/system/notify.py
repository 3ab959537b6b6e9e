"""Events: one line each in ``$COLABMAGIC_HOME/events.jsonl``, and a webhook POST when notifications are on.

``emit(kind, **fields)`` is called where something happens that nobody may
be watching: a background Drive sync failed or recovered, an aria2 download
completed or failed, a tunnel's public address changed, a supervised daemon
gave up restarting. The line is appended to ``events.jsonl`` (0600); the
kernel shows new lines after the next cell. With ``%config
ColabMagicsBase.notify = 'on'`` (``configure``), the webhook URL is read from
the secret store and kept as a 0600 secret file under the home, where the
daemons find it; each event is then POSTed to it as JSON with a ``Title``
header (so an ntfy topic URL works as it is) with a short timeout, off the
kernel's thread, never raising. No payload holds a secret: fields are plain
values, URLs lose their user, password and query, and every known secret
value (the stored secrets, and the environment's credential-like variables)
is masked before anything is written or sent.

Standard library only, and importable by path: the keeper (``python -I -S``)
and aria2's hooks, which cannot import colabmagic, load this file directly.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

URL_SECRET = "COLABMAGIC_NOTIFY_URL"
EVENTS_FILE = "events.jsonl"
MAX_EVENTS_BYTES = 1 << 20  # then the file moves to events.jsonl.1 (one old file kept)
TIMEOUT = 5.0  # seconds a POST may take
MASK = "********"
MIN_SECRET_LEN = 4  # shorter values are not masked (masking "1" everywhere would say nothing)
# The same pattern as daemon_environment.SECRET_LIKE (a test keeps them equal): a variable named like this
# holds a credential.
SECRET_LIKE = re.compile(r"TOKEN|SECRET|PASS(WORD|WD|PHRASE)?($|_)|(^|_)PWD$|KEY|CREDENTIAL|AUTH|COOKIE|SESSION_ID",
                         re.IGNORECASE)
OWN_MARKERS = ("COLABMAGIC_SERVICE_TOKEN",)  # random per start, not a credential
LOOPBACK = ("127.0.0.1", "::1", "localhost", "[::1]")

# What each event says in one line (the title of a notification, the line under the next cell).
TITLES = {
    "drive_sync_failed": "background Drive sync of {mountpoint} failed: {error}",
    "drive_sync_recovered": "background Drive sync of {mountpoint} works again ({files} files verified)",
    "aria2_download_complete": "aria2 download complete: {name}",
    "aria2_download_error": "aria2 download failed: {name}",
    "tunnel_address_changed": "tunnel {tunnel!r} ({provider}) has a new public address: {address}",
    "service_gave_up": "{service} stopped restarting after {restarts} restarts in {window:.0f}s; "
                       "see %colabmagic logs {service}",
}


def home(explicit: Optional[str] = None) -> str:
    """colabmagic's home, found as paths.home() finds it (without creating or checking it)."""
    if explicit:
        return str(explicit)
    env = os.environ.get("COLABMAGIC_HOME")
    if env:
        return env
    if os.geteuid() == 0:
        return "/var/lib/colabmagic"
    return os.path.join(os.path.expanduser("~"), ".local", "state", "colabmagic")


def events_path(home_dir: Optional[str] = None) -> str:
    return os.path.join(home(home_dir), EVENTS_FILE)


def _url_path(home_dir: Optional[str] = None) -> str:
    return os.path.join(home(home_dir), "secrets", URL_SECRET)


def notify_url(home_dir: Optional[str] = None) -> Optional[str]:
    """The webhook URL when notifications are on, else None."""
    try:
        with open(_url_path(home_dir)) as fh:
            url = fh.read().strip()
    except OSError:
        return None
    return url or None


def public_url(url: str) -> str:
    """``url`` without user, password, query or fragment: what may be shown of a download's source."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*://)(?:[^/@?#]*@)?([^/?#]*)([^?#]*)", str(url))
    if not match:
        return str(url).split("?", 1)[0].split("#", 1)[0]
    return "".join(match.groups())


def _known_secrets(home_dir: Optional[str]) -> List[str]:
    """Every secret value this process can know: the stored secrets, credential-like variables."""
    found: List[str] = []
    folder = os.path.join(home(home_dir), "secrets")
    try:
        names = os.listdir(folder)
    except OSError:
        names = []
    for name in names:
        try:
            with open(os.path.join(folder, name), errors="replace") as fh:
                found.append(fh.read(65536).strip())
        except OSError:
            continue
    for name, value in os.environ.items():
        if name not in OWN_MARKERS and SECRET_LIKE.search(name):
            found.append(value.strip())
    url = notify_url(home_dir)
    if url:  # the topic part of an ntfy URL is what makes it secret
        found.extend(part for part in re.split(r"[/?&=#]", url) if len(part) >= 8)
    return sorted({v for v in found if len(v) >= MIN_SECRET_LEN}, key=len, reverse=True)


def scrub(text: str, secrets: List[str]) -> str:
    for value in secrets:
        if value in text:
            text = text.replace(value, MASK)
    return text


def _plain(value: Any) -> Any:
    """A field as a JSON value: numbers, booleans, None and one-line strings (at most 500 characters)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in list(value)[:50]]
    text = str(value).replace("\r", " ").replace("\n", " ")
    if "://" in text:
        text = re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", lambda m: public_url(m.group(0)), text)
    return text[:500]


def title(kind: str, fields: Dict[str, Any]) -> str:
    template = TITLES.get(kind, kind.replace("_", " "))
    try:
        return template.format(**fields)
    except (KeyError, ValueError, IndexError):
        return kind.replace("_", " ")


def build(kind: str, fields: Dict[str, Any], home_dir: Optional[str] = None) -> Dict[str, Any]:
    """The event as written and sent: plain fields, a one-line message, every known secret masked."""
    plain = {str(k): _plain(v) for k, v in fields.items()}
    event: Dict[str, Any] = {
        "source": "colabmagic",
        "event": kind,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "unix": round(time.time(), 3),
        "message": title(kind, plain),
    }
    for key, value in plain.items():
        event.setdefault(key, value)
    event["pid"] = os.getpid()
    secrets = _known_secrets(home_dir)
    return json.loads(scrub(json.dumps(event), secrets)) if secrets else event


def _append(event: Dict[str, Any], home_dir: Optional[str]) -> None:
    path = events_path(home_dir)
    line = (json.dumps(event, sort_keys=True) + "\n").encode()
    try:
        if os.path.getsize(path) > MAX_EVENTS_BYTES:
            os.replace(path, path + ".1")
    except OSError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)  # one write: lines from several processes never interleave
    finally:
        os.close(fd)


def _offline() -> bool:
    return os.environ.get("COLABMAGIC_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _host_of(url: str) -> str:
    match = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/@?#]*@)?(\[[^\]]*\]|[^:/?#]*)", url)
    return match.group(1).lower() if match else ""


def post(url: str, event: Dict[str, Any], home_dir: Optional[str] = None, timeout: float = TIMEOUT) -> bool:
    """POST ``event`` as JSON to ``url``; True on a 2xx answer. Failures go to logs/notify.log, never raised.

    In offline mode only a loopback URL is contacted.
    """
    if _offline() and _host_of(url) not in LOOPBACK:
        _log(home_dir, f"{event.get('event')}: not sent (offline mode; only a loopback webhook is contacted)")
        return False
    try:
        import urllib.request

        body = json.dumps(event, sort_keys=True).encode()
        heading = str(event.get("message", "colabmagic")).encode("ascii", "replace").decode()[:200]
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Title": f"colabmagic: {heading}",
            "User-Agent": "colabmagic-notify",
        })
        # No proxy credentials or redirects to elsewhere matter here: one POST, short timeout.
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            ok = 200 <= answer.status < 300
        if not ok:
            _log(home_dir, f"{event.get('event')}: the webhook answered HTTP {answer.status}")
        return ok
    except Exception as exc:  # a notification must never break what it reports on
        reason = type(exc).__name__
        code = getattr(exc, "code", None)
        _log(home_dir, f"{event.get('event')}: not delivered ({reason}{f' HTTP {code}' if code else ''})")
        return False


def _log(home_dir: Optional[str], message: str) -> None:
    try:
        folder = os.path.join(home(home_dir), "logs")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(folder, "notify.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(f"[colabmagic {time.strftime('%Y-%m-%d %H:%M:%S')}] {message}\n")
    except OSError:
        pass


def emit(kind: str, *, home_dir: Optional[str] = None, wait: bool = False, **fields: Any) -> Dict[str, Any]:
    """Record event ``kind`` with ``fields`` and, when notifications are on, POST it.

    ``wait``: send before returning (a daemon, a hook about to exit); else a
    background thread sends it (the kernel never waits on a webhook).
    Never raises; returns the event as recorded.
    """
    try:
        event = build(kind, fields, home_dir)
    except Exception:
        event = {"source": "colabmagic", "event": kind, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "message": kind.replace("_", " "), "pid": os.getpid()}
    try:
        _append(event, home_dir)
    except OSError:
        pass
    url = notify_url(home_dir)
    if url:
        if wait:
            post(url, event, home_dir)
        else:
            threading.Thread(target=post, args=(url, event, home_dir), name="colabmagic-notify",
                             daemon=True).start()
    return event


def read_since(offset: int, home_dir: Optional[str] = None) -> Tuple[List[Dict[str, Any]], int]:
    """Events appended after byte ``offset``, and the new offset (from 0 again after the file moved)."""
    path = events_path(home_dir)
    try:
        size = os.path.getsize(path)
    except OSError:
        return [], 0
    if size < offset:
        offset = 0
    if size == offset:
        return [], offset
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(size - offset)
    end = data.rfind(b"\n") + 1  # a line still being written waits for the next look
    events = []
    for raw in data[:end].splitlines():
        try:
            events.append(json.loads(raw))
        except ValueError:
            continue
    return events, offset + end


def end_offset(home_dir: Optional[str] = None) -> int:
    try:
        return os.path.getsize(events_path(home_dir))
    except OSError:
        return 0


# --- the kernel side: %config ColabMagicsBase.notify --------------------------------------------------
SETTING = re.compile(r"^(on|off|[A-Za-z_][A-Za-z0-9_]{0,63})$")


def check_setting(value: str) -> str:
    """'on', 'off' or a secret's name; anything else (a URL, say) is refused without repeating it."""
    value = value.strip()
    if not SETTING.match(value):
        raise ValueError(
            "ColabMagicsBase.notify takes 'on', 'off' or the NAME of a secret holding the webhook URL, never "
            f"the URL itself (it is a secret): put it in Colab's or Kaggle's Secrets or the environment as "
            f"{URL_SECRET}, then %config ColabMagicsBase.notify = 'on'"
        )
    return value


def configure(setting: str) -> str:
    """Turn notifications on (looking the URL up in the secret store) or off; one line saying which."""
    from . import secrets

    setting = check_setting(setting)
    if setting == "off":
        try:
            os.unlink(_url_path())
        except FileNotFoundError:
            pass
        return "notifications off (events are still recorded in events.jsonl)"
    name = URL_SECRET if setting == "on" else setting
    found = secrets.get(name, prompt=False)
    if found is None:
        from ..errors import BadInputError

        why = secrets.hint(name)
        raise BadInputError(f"no secret {name} holding the webhook URL: set it in Colab's or Kaggle's Secrets or "
                            f"the environment" + (f" ({why})" if why else ""))
    url = found.reveal().strip()
    if not re.match(r"^https?://[^\s/?#]+", url) or any(c in url for c in "\r\n \t"):
        from ..errors import BadInputError

        raise BadInputError(f"the secret {name} does not hold an http(s) URL (its value is not shown)")
    secrets.store(URL_SECRET, url)
    return f"notifications on: events are POSTed to the URL in the secret {name} (kept as a 0600 secret file)"


if __name__ == "__main__":  # python -I notify.py KIND key=value ... (what a hook without Python code runs)
    emit(sys.argv[1], wait=True, **dict(a.split("=", 1) for a in sys.argv[2:] if "=" in a))
