"""What /proc says about a process: identity, group, environment, zombies, and who holds a port.

A process is identified by pid + start time + command line. A pid alone is
not enough: after a reboot or a long uptime the same pid can belong to an
unrelated program, which colabmagic must neither adopt nor kill.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Dict, Iterator, List, Optional, Tuple


def _read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _stat_fields(pid: int) -> Optional[List[str]]:
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace")
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    head, _, rest = text.rpartition(")")
    if not head:
        return None
    return [head.split(" ", 1)[0], head.split("(", 1)[1]] + rest.split()


def state(pid: int) -> Optional[str]:
    """One-letter process state (R, S, Z, ...) or None if no such process."""
    fields = _stat_fields(pid)
    return fields[2] if fields else None


def ppid(pid: int) -> Optional[int]:
    fields = _stat_fields(pid)
    return int(fields[3]) if fields else None


def pgid(pid: int) -> Optional[int]:
    fields = _stat_fields(pid)
    return int(fields[4]) if fields else None


def start_time(pid: int) -> Optional[int]:
    """Start time in clock ticks after boot (/proc/PID/stat field 22)."""
    fields = _stat_fields(pid)
    return int(fields[21]) if fields else None


def cmdline(pid: int) -> Tuple[str, ...]:
    raw = _read(f"/proc/{pid}/cmdline")
    if not raw:
        return ()
    return tuple(part.decode("utf-8", "replace") for part in raw.rstrip(b"\0").split(b"\0"))


def environ(pid: int) -> Dict[str, str]:
    raw = _read(f"/proc/{pid}/environ")
    if not raw:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def is_running(pid: int) -> bool:
    """True for a live (not zombie) process."""
    st = state(pid)
    return st is not None and st not in ("Z", "X")


@dataclass(frozen=True)
class ProcessIdentity:
    """pid + start time + command line: what makes a process ours and no one else's."""

    pid: int
    start_time: int
    cmdline: Tuple[str, ...]
    # A daemon may rewrite its title (sshd does) or re-exec through a wrapper, so for a
    # supervised daemon the keeper records its process group instead of trusting the
    # command line: pid + start time + group is just as unique.
    pgid: Optional[int] = None

    @classmethod
    def of(cls, pid: int) -> Optional[ProcessIdentity]:
        started = start_time(pid)
        if started is None or not is_running(pid):
            return None
        return cls(pid, started, cmdline(pid))

    def alive(self) -> bool:
        """The same process is still running (not a zombie, not a reused pid)."""
        if not is_running(self.pid) or start_time(self.pid) != self.start_time:
            return False
        if self.pgid is not None and pgid(self.pid) != self.pgid:
            return False
        return not self.cmdline or cmdline(self.pid) == self.cmdline

    def to_dict(self) -> dict:
        data = asdict(self)
        data["cmdline"] = list(self.cmdline)
        return data

    @classmethod
    def from_dict(cls, data: Optional[dict]) -> Optional[ProcessIdentity]:
        if not data:
            return None
        group = data.get("pgid")
        return cls(int(data["pid"]), int(data["start_time"]), tuple(data.get("cmdline") or ()),
                   int(group) if group is not None else None)


def processes_with_env(key: str, value: str) -> List[int]:
    """Live processes whose environment holds ``key=value`` (our per-start service token)."""
    found = []
    me = os.getpid()
    for pid in pids():
        if pid == me or not is_running(pid):
            continue
        if environ(pid).get(key) == value:
            found.append(pid)
    return found


def open_files(pid: int) -> List[Tuple[str, str]]:
    """(fd number, path) of every file ``pid`` holds open (from /proc/PID/fd; sockets and pipes left out)."""
    folder = f"/proc/{pid}/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        try:
            target = os.readlink(os.path.join(folder, name))
        except OSError:
            continue  # closed meanwhile
        if target.startswith("/"):
            found.append((name, target))
    return found


def open_paths(pid: int) -> List[str]:
    """The paths of the files ``pid`` holds open."""
    return [path for _fd, path in open_files(pid)]


def zombies_of(parent: int) -> List[int]:
    """Zombie children of ``parent`` (a leak check for tests and ``%colabmagic doctor``)."""
    return [pid for pid in pids() if state(pid) == "Z" and ppid(pid) == parent]


def _listening_inodes(port: int) -> Dict[int, str]:
    """Socket inode -> local address for TCP sockets listening on ``port``."""
    inodes: Dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        raw = _read(table)
        # A busy machine has thousands of lines (TIME_WAIT): only those naming the port are parsed.
        needle = f":{port:04X} ".encode()
        if not raw or needle not in raw:
            continue
        for line in raw.decode().splitlines()[1:]:
            if needle.decode() not in line:
                continue
            parts = line.split()
            if len(parts) < 10 or parts[3] != "0A":  # 0A = LISTEN
                continue
            addr, _, hexport = parts[1].rpartition(":")
            if int(hexport, 16) == port:
                inodes[int(parts[9])] = addr
    return inodes


def _hexaddr_to_ip(addr: str) -> str:
    raw = bytes.fromhex(addr)
    if len(raw) == 4:
        return ".".join(str(b) for b in raw[::-1])
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
    import ipaddress

    return str(ipaddress.IPv6Address(b"".join(words)))


def listeners() -> List[Tuple[str, int, int]]:
    """Every listening TCP socket as (ip, port, inode)."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        raw = _read(table)
        if not raw:
            continue
        for line in raw.decode().splitlines()[1:]:
            parts = line.split()
            if len(parts) < 10 or parts[3] != "0A":
                continue
            addr, _, hexport = parts[1].rpartition(":")
            out.append((_hexaddr_to_ip(addr), int(hexport, 16), int(parts[9])))
    return out


def socket_owners() -> Dict[int, int]:
    """Socket inode -> pid, for every process we can read."""
    owners: Dict[int, int] = {}
    for pid in pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owners.setdefault(int(target[8:-1]), pid)
    return owners


def _bindable(port: int) -> bool:
    """True when nothing listens on TCP ``port``: the fast answer, without reading /proc/net/tcp.

    With SO_REUSEADDR (and not SO_REUSEPORT) Linux refuses a bind only where a socket
    listens on the port (or one bound without SO_REUSEADDR holds it), never for TIME_WAIT
    connections, of which a busy machine's /proc/net/tcp has thousands. A refused bind
    is not proof of a listener: the caller then reads /proc.
    """
    import socket

    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((address, port))
        except OSError:
            return False
    return True


def port_holder(port: int) -> Optional[Tuple[int, Tuple[str, ...]]]:
    """(pid, command line) of the process listening on TCP ``port``, if any is visible."""
    if _bindable(port):
        return None
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    owners = socket_owners()
    for inode in inodes:
        if inode in owners:
            pid = owners[inode]
            return pid, cmdline(pid)
    return (0, ("an unknown process",))
