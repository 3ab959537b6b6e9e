"""The download checks of binaries.py, on made-up release data (no network: nothing is downloaded)."""

from __future__ import annotations

import hashlib

import pytest

from colabmagic.services.tunnels import binaries


def test_checksum_mismatch_is_refused() -> None:
    data = b"pretend binary"
    binaries._verify(data, hashlib.sha256(data).hexdigest(), "x")
    with pytest.raises(ValueError, match="checksum mismatch"):
        binaries._verify(data + b"tampered", hashlib.sha256(data).hexdigest(), "x")


def test_published_sha256_is_found_in_the_asset_digest_or_the_release_notes() -> None:
    digest = "ab" * 32
    asset = {"name": "cloudflared-linux-amd64", "digest": f"sha256:{digest}"}
    assert binaries._asset_sha256({}, asset) == digest
    notes = {"body": f"SHA256 Checksums:\n```\ncloudflared-linux-amd64: {'cd' * 32}\n```"}
    assert binaries._asset_sha256(notes, {"name": "cloudflared-linux-amd64"}) == "cd" * 32
    assert binaries._asset_sha256(notes, {"name": "cloudflared-linux-arm64"}) is None
