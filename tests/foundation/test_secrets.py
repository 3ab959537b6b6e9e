"""Secrets: the lookup order, 0600 storage, and masking in every repr."""

from __future__ import annotations

import stat
import sys
import types

import pytest

from colabmagic.errors import BadInputError
from colabmagic.system import paths, secrets


@pytest.fixture
def colab_userdata(monkeypatch):
    """A stand-in for hosted Colab's ``google.colab.userdata`` (Secrets panel)."""
    store = {}

    class SecretNotFoundError(Exception):
        pass

    def get(name):
        if name not in store:
            raise SecretNotFoundError(name)
        return store[name]

    google = types.ModuleType("google")
    google.__path__ = []
    colab = types.ModuleType("google.colab")
    colab.__path__ = []
    userdata = types.ModuleType("google.colab.userdata")
    userdata.get = get
    userdata.SecretNotFoundError = SecretNotFoundError
    colab.userdata = userdata
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.userdata", userdata)
    return store


def test_lookup_order_explicit_env_colab_prompt(monkeypatch, colab_userdata):
    monkeypatch.setattr(secrets, "_can_prompt", lambda: True)
    monkeypatch.setattr(secrets.getpass, "getpass", lambda prompt: "typed-in")
    assert secrets.get("CM_TEST_TOKEN").reveal() == "typed-in"
    colab_userdata["CM_TEST_TOKEN"] = "from-colab"
    secrets.forget()  # a missing secret is asked for once per kernel: this is a new one
    got = secrets.get("CM_TEST_TOKEN")
    assert got.reveal() == "from-colab" and got.source == "colab-secrets"
    monkeypatch.setenv("CM_TEST_TOKEN", "from-env")
    assert secrets.get("CM_TEST_TOKEN").reveal() == "from-env"
    assert secrets.get("CM_TEST_TOKEN", explicit="explicit").reveal() == "explicit"


def test_no_prompt_without_a_frontend(monkeypatch):
    monkeypatch.delenv("CM_TEST_TOKEN", raising=False)
    monkeypatch.setattr(secrets, "_can_prompt", lambda: False)
    assert secrets.get("CM_TEST_TOKEN") is None


def test_secret_is_masked_everywhere():
    s = secrets.Secret("hunter2-canary")
    for shown in (repr(s), str(s), f"{s}", f"{s!r}", "%s" % s, repr([s]), repr({"k": s})):  # noqa: UP031
        assert "hunter2-canary" not in shown
    assert s.reveal() == "hunter2-canary"


def test_stored_secret_is_0600_and_rewrite_is_byte_identical(cm_home):
    path = secrets.store("RPC_SECRET", secrets.Secret("canary-value"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    mtime = path.stat().st_mtime_ns
    assert secrets.store("RPC_SECRET", "canary-value") == path
    assert path.stat().st_mtime_ns == mtime  # unchanged content is not rewritten
    assert secrets.load("RPC_SECRET").reveal() == "canary-value"


def test_generated_passwords_are_strong_and_distinct():
    a, b = secrets.generate_password(), secrets.generate_password()
    assert len(a.reveal()) >= 20 and a != b
    assert a.reveal().isalnum()


def test_bad_secret_names_refused():
    for bad in ["../x", "a b", "", "x;y", "-rf"]:
        with pytest.raises(BadInputError, match="not a secret name"):
            secrets.secret_path(bad)


def test_write_file_is_atomic_and_idempotent(tmp_path):
    target = tmp_path / "conf"
    assert paths.write_file(target, "a = 1\n", mode=0o644) is True
    assert paths.write_file(target, "a = 1\n", mode=0o644) is False
    assert target.read_text() == "a = 1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
