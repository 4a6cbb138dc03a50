"""Expiring links to artifacts of the local store: HMAC-SHA256 over the key and the expiry.

A link is ``/artifacts/{key}?expires={unix seconds}&sig={hex}``; the dashboard that serves
it calls :func:`verify` before reading the file. The secret is ``CODECLAB_LINK_SECRET`` or
a random one written once to ``$CODECLAB_HOME/link-secret`` (mode 0600).
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import time
from hashlib import sha256
from pathlib import Path
from urllib.parse import quote

DEFAULT_TTL = 7 * 24 * 3600
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class LinkError(ValueError):
    """A link that is tampered with, expired, or names a key outside the store."""


def parse_ttl(value: int | float | str) -> int:
    """Seconds from ``3600``, ``"3600"``, ``"90m"``, ``"12h"`` or ``"7d"``; must be positive."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = int(value)
    else:
        match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", str(value).lower())
        if not match:
            raise ValueError(f"a link lifetime is seconds or e.g. '7d', '12h', got {value!r}")
        seconds = int(match[1]) * _UNITS[match[2] or "s"]
    if seconds <= 0:
        raise ValueError(f"a link lifetime must be positive, got {value!r}")
    return seconds


def check_key(key: str) -> str:
    """``key`` if it names a file inside a store: relative, no ``..``, no empty parts."""
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or "\x00" in key
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise LinkError(f"artifact key {key!r} escapes the store")
    return key


def sign(key: str, expires: int, secret: bytes) -> str:
    check_key(key)
    message = f"{key}\n{int(expires)}".encode()
    return hmac.new(secret, message, sha256).hexdigest()


def verify(key: str, expires: int | str, sig: str, secret: bytes, now: float | None = None) -> None:
    """Raise :class:`LinkError` unless ``sig`` signs ``key`` until ``expires`` (not yet past)."""
    check_key(key)
    try:
        expires = int(expires)
    except (TypeError, ValueError):
        raise LinkError("the link's expiry is not a number") from None
    expected = sign(key, expires, secret)
    if not hmac.compare_digest(expected.encode(), str(sig).encode()):
        raise LinkError("the link's signature does not match: it was altered")
    if (time.time() if now is None else now) >= expires:
        raise LinkError("the link has expired")


def local_url(key: str, ttl: int, secret: bytes, now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + ttl)
    return f"/artifacts/{quote(key)}?expires={expires}&sig={sign(key, expires, secret)}"


def load_secret(home: Path, configured: str | None = None) -> bytes:
    """The configured secret, else the one in ``home/link-secret``, created once (0600)."""
    if configured:
        return configured.encode()
    path = Path(home) / "link-secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip().encode()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip().encode()
