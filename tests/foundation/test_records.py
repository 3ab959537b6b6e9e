"""Typed service records (services/records.py): each service writes its facts as plain JSON and reads
them back by attribute, from this version's records and from those the previous version wrote.

PREVIOUS holds, literally, the ``Service.info`` dicts the previous version (main at 8ad8045, before the
records were typed) wrote, with what its readers took from them. A daemon started by that version
is still read right after an upgrade; where this version writes the same dict, the service's
fingerprint is the same, so the daemon is reused and not restarted.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Dict, List, Tuple, Type

import pytest

from colabmagic.services.aria2.daemon import Aria2Record
from colabmagic.services.aria2.placement import StageRecord
from colabmagic.services.drive.records import BackgroundRecord, MountRecord
from colabmagic.services.jupyter import JupyterRecord
from colabmagic.services.records import Listing, Record
from colabmagic.services.sshd import SshdRecord
from colabmagic.services.tunnels.base import PublicAddress, TunnelConfig, TunnelRecord
from colabmagic.services.tunnels.cloudflared import NamedFacts, QuickFacts
from colabmagic.services.tunnels.frp import FrpFacts
from colabmagic.services.tunnels.ngrok import NgrokFacts
from colabmagic.services.vnc.components import Exposure, SessionRecord, WebRecord, XServerRecord

SSHD = {"group": "ssh", "address": "127.0.0.1:2222", "port": 2222, "user": "root", "password_login": False,
        "config_sha256": "ab" * 32, "host_key": "SHA256:abc", "runtime_dirs": ["/run/colabmagic/sshd-keys"],
        "on_stop": "colabmagic.services.sshd:restore_password"}
JUPYTER = {"group": "tunnel", "address": "127.0.0.1:8899", "port": 8899, "root_dir": "/content"}
ARIA2 = {"group": "aria2", "address": "127.0.0.1:6800", "port": 6800, "dir": "/content/downloads",
         "config": "0123456789abcdef", "offline": True, "bittorrent": False}
MOUNT = {"group": "drive", "address": "127.0.0.1:40111", "rc_port": 40111, "mountpoint": "/content/drive",
         "remote": "Google Drive:colab"}
BACKGROUND = {"group": "drive", "kind": "drive-background", "interval": 300.0, "mountpoint": "/content/drive",
              "track": "runs", "address": "/content/drive"}
# The desktop's steps, as exposed through a tunnel (update_info added tunnel, public_url and public).
XSERVER = {"group": "vnc", "step": 1, "role": "VNC server", "server": "tigervnc", "display": ":1",
           "address": "127.0.0.1:5901", "port": 5901, "geometry": "1280x800", "depth": 24,
           "tunnel": "vnc", "public_url": "tcp.example:4000", "public": "tcp.example:4000"}
SESSION = {"group": "vnc", "step": 2, "role": "XFCE session", "display": ":1", "gpu": False, "drawn_pid": 4242}
WEB = {"group": "vnc", "step": 3, "role": "noVNC web client", "address": "127.0.0.1:6080", "web_port": 6080,
       "vnc_port": 5901, "tunnel": "vnc", "public_url": "https://a.example/vnc.html", "public": "https://a.example/vnc.html"}

PREVIOUS: List[Tuple[Type[Record], Dict[str, Any], Dict[str, Any]]] = [
    (SshdRecord, SSHD, {"port": 2222, "user": "root", "password_login": False,
                        "runtime_dirs": ("/run/colabmagic/sshd-keys",)}),
    (JupyterRecord, JUPYTER, {"port": 8899, "root_dir": "/content"}),
    (Aria2Record, ARIA2, {"port": 6800, "dir": "/content/downloads", "offline": True, "bittorrent": False}),
    (MountRecord, MOUNT, {"rc_port": 40111, "mountpoint": "/content/drive"}),
    (BackgroundRecord, BACKGROUND, {"interval": 300.0, "mountpoint": "/content/drive", "track": "runs"}),
    (XServerRecord, XSERVER, {"display": ":1", "port": 5901, "geometry": "1280x800", "depth": 24,
                              "server": "tigervnc", "tunnel": "vnc", "public_url": "tcp.example:4000"}),
    (SessionRecord, SESSION, {"drawn_pid": 4242, "display": ":1"}),
    (WebRecord, WEB, {"web_port": 6080, "vnc_port": 5901, "tunnel": "vnc",
                      "public_url": "https://a.example/vnc.html"}),
]


@pytest.mark.parametrize("cls,info,expected", PREVIOUS, ids=[c.__name__ for c, _, _ in PREVIOUS])
def test_a_record_the_previous_version_wrote_reads_the_same(cls: Type[Record], info: Dict[str, Any],
                                                            expected: Dict[str, Any]) -> None:
    record = cls.from_info(json.loads(json.dumps(info)))
    assert {name: getattr(record, name) for name in expected} == expected
    assert Listing.from_info(info).address == info.get("address", "")
    assert Listing.from_info(info).group == info["group"]


@pytest.mark.parametrize("record,previous", [
    (SshdRecord(port=2222, user="root", config_sha256="ab" * 32, host_key="SHA256:abc",
                runtime_dirs=("/run/colabmagic/sshd-keys",), on_stop="colabmagic.services.sshd:restore_password"),
     SSHD),
    (JupyterRecord(port=8899, root_dir="/content"), JUPYTER),
    (Aria2Record(port=6800, dir="/content/downloads", config="0123456789abcdef", offline=True, bittorrent=False),
     ARIA2),
    (MountRecord(rc_port=40111, mountpoint="/content/drive", remote="Google Drive:colab"), MOUNT),
    (BackgroundRecord(interval=300.0, mountpoint="/content/drive", track="runs"), BACKGROUND),
    # A tunnel agent's own facts, beside its TunnelRecord: a quick tunnel keeps its public URL.
    (QuickFacts(metrics_port=41000), {"metrics_port": 41000}),
    (NamedFacts(metrics_port=41000, named_hostname="app.example.com", tunnel_id="t-1", token_digest="d" * 16),
     {"metrics_port": 41000, "named_hostname": "app.example.com", "tunnel_id": "t-1", "token_digest": "d" * 16}),
    (NgrokFacts(web_port=4040, config_file="/h/tunnels/web.ngrok.yml", config_digest="e" * 16),
     {"web_port": 4040, "config_file": "/h/tunnels/web.ngrok.yml", "config_digest": "e" * 16}),
    (FrpFacts(admin_port=7400, config_file="/h/tunnels/web.frpc.toml", config_digest="f" * 16),
     {"admin_port": 7400, "config_file": "/h/tunnels/web.frpc.toml", "config_digest": "f" * 16}),
], ids=["sshd", "jupyter", "aria2", "drive-mount", "drive-background", "cloudflared-quick", "cloudflared-named",
        "ngrok", "frp"])
def test_an_upgrade_keeps_these_daemons_running(record: Record, previous: Dict[str, Any]) -> None:
    """The same dict as before: the fingerprint matches, so the running daemon is reused as it is."""
    assert record.to_info() == previous


def test_a_missing_key_or_a_wrong_value_reads_as_the_default() -> None:
    for cls in (SshdRecord, JupyterRecord, Aria2Record, MountRecord, BackgroundRecord, XServerRecord,
                SessionRecord, WebRecord, Exposure, StageRecord, Listing, QuickFacts, NamedFacts, NgrokFacts,
                FrpFacts, TunnelRecord):
        assert cls.from_info({}) == cls()
    older = dict(ARIA2)
    del older["bittorrent"], older["offline"]  # an older version wrote neither
    assert Aria2Record.from_info(older) == Aria2Record(port=6800, dir="/content/downloads",
                                                       config="0123456789abcdef", offline=False, bittorrent=True)
    odd = XServerRecord.from_info({"port": "5902", "depth": None, "display": 1, "tunnel": None, "geometry": []})
    assert (odd.port, odd.depth, odd.display, odd.tunnel, odd.geometry) == (5902, 24, "", None, "")
    assert SshdRecord.from_info({"password_login": 1, "runtime_dirs": "/run/x"}) == SshdRecord()


def test_records_write_plain_json_and_read_back_whole() -> None:
    records: List[Record] = [
        SshdRecord(port=2222, user="ubuntu", password_login=True, runtime_dirs=("/run/a", "/run/b")),
        XServerRecord(server="turbovnc", display=":3", port=5903, geometry="1920x1080", depth=32,
                      tunnel="vnc", public_url="https://x.example"),
        SessionRecord(display=":3", gpu=True, drawn_pid=17),
        BackgroundRecord(interval=60.0, mountpoint="/m", track="sub"),
        StageRecord(target="/content/drive/x", state="error", error="disk full"),
    ]
    for record in records:
        text = json.dumps(record.to_info())
        assert type(record).from_info(json.loads(text)) == record


def test_clearing_an_exposure_writes_nulls_over_the_old_one() -> None:
    """A re-run without --via clears the tunnel: Exposure() writes both keys, so no old URL stays listed."""
    info = dict(WEB)
    info.update(Exposure().to_info())
    assert WebRecord.from_info(info).public_url is None and Listing.from_info(info).public() == ""
    assert WebRecord.from_info(info).web_port == 6080


def test_the_status_table_reads_a_tunnel_record_public_address() -> None:
    config = TunnelConfig(name="web", local_port=8000, proto="http")
    record = TunnelRecord.for_config(config, "cloudflared").with_address(
        PublicAddress("a.trycloudflare.com", 443, "https://a.trycloudflare.com"), agent_pid=10)
    assert Listing.from_info(record.to_info()).public() == "https://a.trycloudflare.com"
    tcp = TunnelRecord.for_config(config, "frp").with_address(PublicAddress("relay.example", 7001), agent_pid=11)
    listing = Listing.from_info(tcp.to_info())
    assert (listing.public(), listing.address, listing.group) == ("relay.example:7001", "127.0.0.1:8000", "tunnel")


# Tunnel records, literally as the previous TunnelRecord.to_info (hand-written, main at f4ead65) wrote
# them. A plain tunnel once its public address is known:
TUNNEL = {"kind": "tunnel", "group": "tunnel", "tunnel": "web", "provider": "cloudflared", "local_port": 8000,
          "proto": "http", "options": {}, "binary": None, "address": "127.0.0.1:8000",
          "public_host": "a.trycloudflare.com", "public_port": 443, "public_url": "https://a.trycloudflare.com",
          "agent_pid": 4242, "stop_with": []}
# %tunnel ssh --via ssh --relay ...: ssh_access completed after the launch (add_facts), relay and
# relay_login_key written by the ssh provider's own spec, the address read from the agent's log.
SSH_ACCESS = {"user": "root", "host_alias": "colabmagic", "folder": "/content", "host_key_alias": "colabmagic-ab12",
              "known_hosts_line": "colabmagic-ab12 ssh-ed25519 AAAAC3Nza", "fingerprint": "SHA256:abc"}
SSH_TUNNEL = {"kind": "tunnel", "group": "tunnel", "tunnel": "ssh", "provider": "ssh", "local_port": 2222,
              "proto": "tcp", "options": {"relay": "u@relay.example:22", "relay_host_key": "ssh-ed25519 AAAAhost"},
              "binary": "/usr/bin/ssh", "address": "127.0.0.1:2222", "public_host": "relay.example",
              "public_port": 41022, "public_url": None, "agent_pid": 5151, "stop_with": [],
              "ssh_access": SSH_ACCESS, "relay": "u@relay.example:22",
              "relay_login_key": "ssh-ed25519 AAAAkey colabmagic-relay"}
# What the previous launch() put in the ServiceSpec (so in the agent's fingerprint) for that ssh tunnel:
# the provider's spec.info, then the record of the config, with the first facts of ssh_access.
SSH_LAUNCH = {"relay": "u@relay.example:22", "relay_login_key": "ssh-ed25519 AAAAkey colabmagic-relay",
              "kind": "tunnel", "group": "tunnel", "tunnel": "ssh", "provider": "ssh", "local_port": 2222,
              "proto": "tcp", "options": {"relay": "u@relay.example:22", "relay_host_key": "ssh-ed25519 AAAAhost"},
              "binary": "/usr/bin/ssh", "address": "127.0.0.1:2222", "public_host": None, "public_port": None,
              "public_url": None, "agent_pid": None, "stop_with": [],
              "ssh_access": {"user": "root", "host_alias": "colabmagic", "folder": "/content"}}


def test_a_tunnel_record_the_previous_version_wrote_reads_and_writes_back_the_same() -> None:
    web = TunnelRecord.read(json.loads(json.dumps(TUNNEL)), "web")
    assert web == TunnelRecord(tunnel="web", provider="cloudflared", local_port=8000, proto="http",
                               address=PublicAddress("a.trycloudflare.com", 443, "https://a.trycloudflare.com"),
                               agent_pid=4242)
    assert web.to_info() == TUNNEL
    ssh = TunnelRecord.read(json.loads(json.dumps(SSH_TUNNEL)), "ssh")
    assert ssh == TunnelRecord(tunnel="ssh", provider="ssh", local_port=2222, proto="tcp",
                               options={"relay": "u@relay.example:22", "relay_host_key": "ssh-ed25519 AAAAhost"},
                               binary="/usr/bin/ssh", ssh_access=SSH_ACCESS,
                               address=PublicAddress("relay.example", 41022, None), agent_pid=5151,
                               relay="u@relay.example:22", relay_login_key="ssh-ed25519 AAAAkey colabmagic-relay")
    assert ssh.to_info() == SSH_TUNNEL
    assert ssh.config() == TunnelConfig(name="ssh", local_port=2222, proto="tcp", options=ssh.options,
                                        binary="/usr/bin/ssh", end_to_end=True)
    # The keys the status table and stop-by-group read, as before.
    listing = Listing.from_info(ssh.to_info())
    assert (listing.group, listing.kind, listing.address, listing.public()) == (
        "tunnel", "tunnel", "127.0.0.1:2222", "relay.example:41022")


def test_a_tunnel_launched_by_the_previous_version_keeps_its_fingerprint() -> None:
    """launch() writes the dict it wrote before: a running agent is reused after an upgrade, not restarted."""
    config = TunnelConfig(name="ssh", local_port=2222, proto="tcp", binary="/usr/bin/ssh", end_to_end=True,
                          options={"relay": "u@relay.example:22", "relay_host_key": "ssh-ed25519 AAAAhost"})
    provider_info = {"relay": "u@relay.example:22", "relay_login_key": "ssh-ed25519 AAAAkey colabmagic-relay"}
    info = dict(provider_info)
    info.update(TunnelRecord.for_config(config, "ssh", ssh_access={"user": "root", "host_alias": "colabmagic",
                                                                   "folder": "/content"}).to_info())
    assert info == SSH_LAUNCH
    plain = TunnelRecord.for_config(TunnelConfig(name="web", local_port=8000, proto="http"), "cloudflared")
    assert plain.to_info() == {**TUNNEL, "public_host": None, "public_port": None, "public_url": None,
                               "agent_pid": None}
    assert "ssh_access" not in plain.to_info() and "relay" not in plain.to_info()


@pytest.mark.parametrize("facts", [
    QuickFacts(metrics_port=41000),
    NamedFacts(metrics_port=41000, named_hostname="app.example.com", tunnel_id="t-1", token_digest="d" * 16),
    NgrokFacts(web_port=4040, config_file="/h/tunnels/web.ngrok.yml", config_digest="e" * 16),
    FrpFacts(admin_port=7400, config_file="/h/tunnels/web.frpc.toml", config_digest="f" * 16),
], ids=["cloudflared-quick", "cloudflared-named", "ngrok", "frp"])
def test_a_provider_facts_survive_the_tunnel_record_writes(facts: Record) -> None:
    """The provider's facts and the TunnelRecord share one dict: launch() lays the record over the
    provider's spec.info, and each later write (the address, add_facts) merges the record's keys in
    (Service.update_info). No key of one is a key of the other, so neither write loses the facts."""
    assert not set(facts.to_info()) & set(TUNNEL)
    config = TunnelConfig(name="web", local_port=8000, proto="http")
    info = dict(facts.to_info())
    info.update(TunnelRecord.for_config(config, "cloudflared").to_info())  # launch()
    record = TunnelRecord.read(info, "web")
    assert record is not None
    info.update(record.with_address(PublicAddress("a.example", 443, "https://a.example"), 77).to_info())
    info.update(replace(_tunnel(info), stop_with=("jupyter",)).to_info())  # add_facts
    assert type(facts).from_info(info) == facts
    assert _tunnel(info) == replace(record, address=PublicAddress("a.example", 443, "https://a.example"),
                                              agent_pid=77, stop_with=("jupyter",))


def test_a_tunnel_record_with_a_wrong_value_reads_the_default_and_another_kind_reads_none() -> None:
    assert TunnelRecord.read(SSHD) is None and TunnelRecord.read({}) is None
    assert TunnelRecord.read({**TUNNEL, "kind": "drive-background"}) is None
    assert TunnelRecord.read({"kind": "tunnel"}, "web") == TunnelRecord(tunnel="web")
    assert TunnelRecord.read({**TUNNEL, "tunnel": ""}, "named") == replace(_tunnel(TUNNEL), tunnel="named")
    odd = TunnelRecord.read({**SSH_TUNNEL, "local_port": "2223", "provider": 7, "options": ["relay"],
                             "binary": 1, "ssh_access": "root", "stop_with": "jupyter", "public_host": 5,
                             "public_port": "x", "public_url": ["u"], "agent_pid": True, "relay": {},
                             "relay_login_key": 0})
    assert odd == TunnelRecord(tunnel="ssh", local_port=2223, proto="tcp")
    # one bad entry spoils the mapping: ssh_access is None (a plain tunnel), not half a login
    assert _tunnel({**SSH_TUNNEL, "ssh_access": {**SSH_ACCESS, "user": None}}).ssh_access is None


def _tunnel(info: Dict[str, Any]) -> TunnelRecord:
    record = TunnelRecord.read(info)
    assert record is not None
    return record
