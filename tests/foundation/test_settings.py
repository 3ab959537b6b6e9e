"""Settings: each default is written once (in the service's config), and ``offline`` reaches services
through their config objects, never by rewriting the kernel's environment."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, List

import pytest

from colabmagic.services.aria2.daemon import Aria2Config, options_for
from colabmagic.services.drive.config import DriveConfig
from colabmagic.services.vnc import VncConfig


@pytest.mark.parametrize("magics,config,renamed,listed", [
    ("VncMagics", VncConfig, {"start_timeout": "timeout"}, "Current: 180.0"),
    ("DriveMagics", DriveConfig, {}, "Current: 120.0"),
    ("Aria2Magics", Aria2Config, {}, "Current: 5"),
])
def test_a_setting_left_alone_is_the_services_default(ip: Any, magics: str, config: type, renamed: dict,
                                                      listed: str) -> None:
    instance = ip.magics_manager.registry[magics]
    fields = {f.name: f.default for f in dataclasses.fields(config)}
    checked = 0
    for trait in instance.trait_names(config=True):
        name = renamed.get(trait, trait)
        if name in fields and trait != "offline":
            value = getattr(instance, trait)
            assert (tuple(value) if isinstance(value, list) else value) == fields[name], (magics, trait)
            checked += 1
    assert checked >= 5
    # %config shows the same value the service would use.
    assert listed in ip.cell(f"%config {magics}").stdout


def test_vnc_steps_wait_as_long_as_the_setting_says() -> None:
    # The magic said 180 s and the service 120 s; now there is one number.
    assert VncConfig().timeout == 180.0


def test_offline_setting_reaches_services_without_touching_the_environment(
        ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from colabmagic.system import environment

    monkeypatch.delenv("COLABMAGIC_OFFLINE")
    contacted: List[str] = []
    monkeypatch.setattr(environment, "apt_reachable", lambda *a, **k: contacted.append("apt") or True)
    ip.cell("%config ColabMagicsBase.offline = True")
    doctor = str(ip.cell("%colabmagic doctor").value)
    assert "offline mode: apt archives not contacted" in doctor and not contacted
    assert "COLABMAGIC_OFFLINE" not in os.environ  # the kernel's (and its daemons') environment is the user's
    settings = ip.magics_manager.registry["Aria2Magics"].settings()
    assert ("enable-dht", "false") in options_for(settings, 6800)
    assert ip.magics_manager.registry["DriveMagics"].drive_config().offline
    ip.cell("%config ColabMagicsBase.offline = False")
    online = ip.magics_manager.registry["Aria2Magics"].settings()
    assert ("enable-dht", "true") in options_for(online, 6800)
