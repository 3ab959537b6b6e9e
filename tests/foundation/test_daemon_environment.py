"""Daemons start with a minimal environment, never the kernel's; $COLABMAGIC_HOME must be the user's own folder."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from colabmagic.errors import UnsafeHomeError
from colabmagic.system import daemon_environment, paths, probes, procfs, supervisor

KERNEL = {
    "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
    "TZ": "UTC", "LD_LIBRARY_PATH": "/usr/lib64-nvidia", "CUDA_VISIBLE_DEVICES": "0",
    "NVIDIA_VISIBLE_DEVICES": "all", "TPU_NAME": "local", "XLA_FLAGS": "--xla_gpu",
    "COLAB_GPU": "1", "COLAB_JUPYTER_TOKEN": "colab-internal", "COLABMAGIC_HOME": "/var/lib/colabmagic",
    "FRP_TOKEN": "f", "NGROK_AUTHTOKEN": "n", "RELAY_SSH_KEY": "k", "AWS_SECRET_ACCESS_KEY": "a",
    "KAGGLE_USER_SECRETS_TOKEN": "t", "HF_TOKEN": "h", "DB_PASSWORD": "p", "OPENAI_API_KEY": "o",
    "GOOGLE_APPLICATION_CREDENTIALS": "/c.json", "CUDA_AUTH_KEY": "c", "MY_SETTING": "x",
    "https_proxy": "http://proxy:3128", "HTTP_PROXY": "http://user:pw@proxy:3128",
}


def test_minimal_keeps_session_variables_and_drops_every_secret() -> None:
    env = daemon_environment.minimal({"DISPLAY": ":5"}, source=KERNEL)
    assert set(env) == {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES",
                        "NVIDIA_VISIBLE_DEVICES", "TPU_NAME", "XLA_FLAGS", "COLAB_GPU", "COLABMAGIC_HOME",
                        "https_proxy", "DISPLAY"}
    assert env["HOME"] == "/root" and env["DISPLAY"] == ":5"
    assert daemon_environment.minimal(source={})["PATH"]  # always a PATH, even from an empty kernel


def test_a_daemon_and_its_children_carry_no_kernel_secret(cm_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    canaries = {"FRP_TOKEN": "canaryEnvFrp3", "NGROK_AUTHTOKEN": "canaryEnvNgrok4", "MY_SETTING": "canaryEnvPlain5"}
    for name, value in canaries.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    port = probes.free_port()
    # The daemon starts a child of its own, as sshd does for a login and XFCE for a terminal.
    code = ("import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
            "import http.server, socketserver\n"
            f"socketserver.TCPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()\n")
    spec = supervisor.ServiceSpec(name="envcheck", argv=[sys.executable, "-c", code], env={"SERVICE_SETTING": "1"})
    service = supervisor.start(spec, ready=lambda: probes.port_open(port))
    try:
        assert probes.wait_for(lambda: len(procfs.processes_with_env(supervisor.TOKEN_ENV, str(service.token))) >= 2, 20)
        pids = procfs.processes_with_env(supervisor.TOKEN_ENV, str(service.token))  # the daemon, its child
        keeper = service.keeper
        assert keeper is not None
        keeper_raw = Path(f"/proc/{keeper.pid}/environ").read_bytes()  # the keeper, shared by all services
        assert not [value for value in canaries.values() if value.encode() in keeper_raw]
        for pid in pids:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
            env = procfs.environ(pid)
            for name, value in canaries.items():
                assert value.encode() not in raw and name not in env, (pid, name)
            assert env["COLABMAGIC_HOME"] == str(cm_home) and env["CUDA_VISIBLE_DEVICES"] == "3"
        assert procfs.environ(int(service.pid or 0))["SERVICE_SETTING"] == "1"  # what the service asked for
    finally:
        service.stop()


def test_home_that_is_a_symlink_or_writable_by_others_is_refused(ip, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    if os.geteuid() == 0:
        shutil.chown(foreign, user="nobody")
    cases = [(link, "is a symlink"), (shared, "writable by other users"), (tmp_path / "file", "not a folder")]
    (tmp_path / "file").write_text("")
    if os.geteuid() == 0:
        cases.append((foreign, "belongs to uid"))
    for home, why in cases:
        monkeypatch.setenv("COLABMAGIC_HOME", str(home))
        with pytest.raises(UnsafeHomeError, match=why):
            paths.home()
        c = ip.cell("%colabmagic status", check=False)
        assert isinstance(c.error, UnsafeHomeError), c.output
        rendered = c.error._render_traceback_()
        assert len(rendered) == 1 and why in rendered[0] and "Traceback" not in c.output
    assert list(real.iterdir()) == [] and list(shared.iterdir()) == []  # nothing was written there
    assert oct(shared.stat().st_mode & 0o777) == "0o777"  # and nothing was "fixed" behind the user's back


def test_own_home_is_made_0700_and_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = tmp_path / "a" / "fresh"
    monkeypatch.setenv("COLABMAGIC_HOME", str(fresh))
    assert paths.home() == fresh and oct(fresh.stat().st_mode & 0o777) == "0o700"
    existing = tmp_path / "mine"
    existing.mkdir(mode=0o755)  # readable by others but writable only by us: fine, tightened to 0700
    monkeypatch.setenv("COLABMAGIC_HOME", str(existing))
    assert paths.subdir("logs").parent == existing and oct(existing.stat().st_mode & 0o777) == "0o700"
