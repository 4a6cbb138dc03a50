"""Local artifact store: files under one directory, at the seed's keys.

Keys (DESIGN.md section 6): ``reconstructed/{id}.mp4``, ``decoders/{id}_decoder.py``,
``bitstreams/{id}/{clip}_q{quality}.bin``, ``programs/{sha256}.py``, ``packages/{id}.zip``.
Writes go to a temporary name and are renamed into place, so a killed campaign never
leaves a half-written artifact behind a valid key.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class ArtifactError(RuntimeError):
    """The artifact store cannot be written, or a key would escape it."""


class LocalArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        """The file behind ``key``; refuses keys that would leave the store's directory."""
        target = (self.root / key).resolve()
        if not target.is_relative_to(self.root) or target == self.root:
            raise ArtifactError(f"artifact key {key!r} escapes the store")
        return target

    def put_bytes(self, key: str, data: bytes) -> str:
        target = self.path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        except OSError as exc:
            raise ArtifactError(f"cannot write artifact {key}: {exc}") from exc
        return str(target)

    def put_file(self, key: str, source: Path) -> str:
        return self.put_bytes(key, Path(source).read_bytes())

    def get_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()
