"""colabmagic's sshd config on OpenSSH 10 (PerSourcePenalties), in a Debian 13 root file system.

Opt-in: set COLABMAGIC_TEST_TRIXIE_ROOT to a Debian 13 ("trixie") root with openssh-server
(``make matrix`` does: tests/matrix/run.sh runs this file against its trixie root, after the
inside tests installed openssh-server there). sshd from that root runs with colabmagic's
config on a free loopback port (a chroot shares this machine's loopback);
the real ssh client here makes 20 failed logins from 127.0.0.1, and the
owner must still log in. The same run without colabmagic's PerSourcePenalties
line must lock the owner out: the setting is what makes the difference.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from colabmagic.services import sshd
from colabmagic.system import probes

ROOT = os.environ.get("COLABMAGIC_TEST_TRIXIE_ROOT", "")
pytestmark = pytest.mark.skipif(not (ROOT and Path(ROOT, "usr/sbin/sshd").exists()),
                                reason="set COLABMAGIC_TEST_TRIXIE_ROOT to a Debian 13 root with openssh-server")


def _in_root(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["chroot", ROOT, *argv], capture_output=True, text=True, timeout=60, **kw)


@pytest.fixture
def mounted() -> Iterator[Path]:
    root = Path(ROOT)
    done: List[str] = []
    try:
        for src, dst, args in (("proc", "proc", ["-t", "proc"]), ("/dev", "dev", ["--rbind"])):
            target = root / dst
            if not os.path.ismount(target):
                subprocess.run(["mount", *args, src, str(target)], check=True)
                done.append(str(target))
        (root / "run" / "sshd").mkdir(parents=True, exist_ok=True)
        yield root
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-R", "-l", target], capture_output=True)


def _config(folder: str, port: int, penalties_line: bool) -> str:
    version = sshd.parse_version(_in_root("/usr/sbin/sshd", "-V").stderr)
    assert version is not None and version >= (10, 0), version
    key = sshd.HostKey(Path(f"{folder}/host_key"), "ssh-ed25519", "AAAA", "SHA256:x")
    text = sshd.render_config(port, "root", key, False, {}, True, version)
    # Our paths, inside the root: the settings under test are the hardening lines.
    text = re.sub(r"^PidFile .*$", f"PidFile {folder}/sshd.pid", text, flags=re.M)
    text = re.sub(r"^AuthorizedKeysFile .*$", f"AuthorizedKeysFile {folder}/authorized_keys", text, flags=re.M)
    if not penalties_line:
        text = text.replace("PerSourcePenalties no\n", "")
    return text


def _logins(root: Path, tmp_path: Path, penalties_line: bool) -> bool:
    """20 failed logins from 127.0.0.1, then whether the owner gets in."""
    folder = "/root/cm-sshd"  # not below /tmp: StrictModes refuses keys below a world-writable folder
    inside = root / folder.lstrip("/")
    subprocess.run(["rm", "-rf", str(inside)], check=True)
    inside.mkdir(parents=True, mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(inside / "host_key")], check=True)
    owner, stranger = tmp_path / f"owner{penalties_line}", tmp_path / f"stranger{penalties_line}"
    for key in (owner, stranger):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (inside / "authorized_keys").write_text(Path(f"{owner}.pub").read_text())
    os.chmod(inside / "authorized_keys", 0o600)
    port = probes.free_port()
    (inside / "sshd_config").write_text(_config(folder, port, penalties_line))
    checked = _in_root("/usr/sbin/sshd", "-T", "-f", f"{folder}/sshd_config")
    assert checked.returncode == 0, checked.stderr
    settings = set(checked.stdout.splitlines())
    assert {"maxauthtries 3", "logingracetime 30", "maxstartups 60:30:100"} <= settings
    assert ("persourcepenalties no" in settings) is penalties_line
    log = open(tmp_path / f"sshd{penalties_line}.log", "wb")
    proc = subprocess.Popen(["chroot", ROOT, "/usr/sbin/sshd", "-D", "-e", "-f", f"{folder}/sshd_config"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        assert probes.wait_for(lambda: probes.banner(port, b"SSH-"), 30)
        base = ["ssh", "-p", str(port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10"]
        for _ in range(20):
            subprocess.run(base + ["-i", str(stranger), "root@127.0.0.1", "true"], capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        time.sleep(0.5)  # not a timing assertion: lets sshd record the last failure before the owner comes
        r = subprocess.run(base + ["-i", str(owner), "root@127.0.0.1", "echo owner-in"], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        return r.returncode == 0 and r.stdout.strip() == "owner-in"
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=10)
        log.close()


def test_owner_still_logs_in_after_20_failed_logins_on_openssh_10(mounted: Path, tmp_path: Path) -> None:
    assert _logins(mounted, tmp_path, penalties_line=True), (tmp_path / "sshdTrue.log").read_text()[-2000:]
    # Without our line, OpenSSH 10's default penalties lock the owner out: the setting is what matters.
    assert not _logins(mounted, tmp_path, penalties_line=False)
