"""The provider registry is the one list: what the user is offered is what the service layer runs."""

from __future__ import annotations

import pytest

from colabmagic.services import tunnel_registry, tunnels


@pytest.mark.parametrize("entry", tunnel_registry.ENTRIES, ids=lambda e: e.name)
def test_every_listed_provider_is_offered_and_runs_what_it_lists(ip, entry: tunnel_registry.ProviderEntry) -> None:
    # The service layer imports the provider and checks its protocols from the same entry.
    assert tunnels.provider(entry.name).protos == entry.protos
    # --via help in both magics and the default-provider setting name it.
    for magic in ("%tunnel?", "%vnc?"):
        assert entry.name in ip.cell(magic).stdout.replace("\n", " ")
    assert entry.name in ip.cell("%config TunnelMagics").stdout
    # Its agent's path setting exists and is what the service receives for that provider.
    if entry.agent is not None:
        ip.cell(f"%config {entry.agent.config_name} = '/opt/{entry.agent.command}'")
        settings = ip.magics_manager.registry["TunnelMagics"].tunnel_settings()
        assert settings.binary(entry.name) == f"/opt/{entry.agent.command}"


def test_an_unknown_provider_names_the_registered_ones(ip) -> None:
    bad = ip.cell("%tunnel 8080 --via nosuch", check=False)
    assert "unknown tunnel provider 'nosuch'" in bad.output
    assert all(name in bad.output for name in tunnel_registry.PROVIDERS)
