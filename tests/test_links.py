"""HMAC-signed expiring links of the local artifact store."""

from __future__ import annotations

import os
import stat
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from codeclab.config import Settings
from codeclab.store import links
from codeclab.store.artifacts import LocalArtifactStore
from codeclab.store.factory import open_artifact_store

SECRET = b"s" * 32


def test_sign_and_verify():
    sig = links.sign("decoders/e1_decoder.py", 2000, SECRET)
    links.verify("decoders/e1_decoder.py", 2000, sig, SECRET, now=1999)
    links.verify("decoders/e1_decoder.py", "2000", sig, SECRET, now=1000)


@pytest.mark.parametrize(
    ("key", "expires", "change"),
    [
        ("decoders/e2_decoder.py", 2000, "key"),
        ("decoders/e1_decoder.py", 2001, "expiry"),
        ("decoders/e1_decoder.py", 2000, "signature"),
        ("decoders/e1_decoder.py", 2000, "secret"),
    ],
)
def test_tampered_links_are_refused(key, expires, change):
    sig = links.sign("decoders/e1_decoder.py", 2000, SECRET)
    if change == "signature":
        sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    secret = b"other" if change == "secret" else SECRET
    with pytest.raises(links.LinkError, match="altered"):
        links.verify(key, expires, sig, secret, now=1000)


def test_expired_link_is_refused():
    sig = links.sign("packages/e1.zip", 2000, SECRET)
    with pytest.raises(links.LinkError, match="expired"):
        links.verify("packages/e1.zip", 2000, sig, SECRET, now=2000)


@pytest.mark.parametrize("key", ["../link-secret", "/etc/passwd", "a/../../b", "a//b", "", "a\\b"])
def test_keys_that_escape_are_refused(key):
    with pytest.raises(links.LinkError, match="escapes"):
        links.sign(key, 2000, SECRET)
    with pytest.raises(links.LinkError, match="escapes"):
        links.verify(key, 2000, "0" * 64, SECRET, now=0)


def test_ttl_parsing():
    assert links.parse_ttl("7d") == 7 * 86400
    assert links.parse_ttl("12h") == 43200
    assert links.parse_ttl("90") == 90 and links.parse_ttl(30) == 30
    for bad in ("soon", "0", "-5", "3y"):
        with pytest.raises(ValueError):
            links.parse_ttl(bad)


def test_secret_generated_once_with_mode_0600(tmp_path):
    first = links.load_secret(tmp_path)
    assert len(first) == 64
    assert stat.S_IMODE(os.stat(tmp_path / "link-secret").st_mode) == 0o600
    assert links.load_secret(tmp_path) == first
    assert links.load_secret(tmp_path, "configured") == b"configured"


def test_local_store_link_verifies(home, monkeypatch):
    monkeypatch.setenv("CODECLAB_LINK_TTL", "2h")
    store = open_artifact_store(Settings())
    assert isinstance(store, LocalArtifactStore)
    store.put_bytes("reconstructed/e1.mp4", b"video")
    link = store.link("reconstructed/e1.mp4")
    parts = urlsplit(link)
    assert parts.path == "/artifacts/reconstructed/e1.mp4"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    secret = (home / "link-secret").read_text().strip().encode()
    links.verify(
        unquote(parts.path.removeprefix("/artifacts/")), query["expires"], query["sig"], secret
    )
    with pytest.raises(links.LinkError, match="expired"):
        links.verify(
            "reconstructed/e1.mp4",
            query["expires"],
            query["sig"],
            secret,
            now=int(query["expires"]) + 1,
        )
    assert store.location("reconstructed/e1.mp4") == str(home / "artifacts/reconstructed/e1.mp4")


def test_configured_secret_signs(home, monkeypatch):
    monkeypatch.setenv("CODECLAB_LINK_SECRET", "from-the-environment")
    store = open_artifact_store(Settings())
    store.put_bytes("packages/e1.zip", b"zip")
    query = parse_qs(urlsplit(store.link("packages/e1.zip", ttl=60)).query)
    links.verify("packages/e1.zip", query["expires"][0], query["sig"][0], b"from-the-environment")
    assert not (home / "link-secret").exists()
