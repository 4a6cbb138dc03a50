"""Artifact stores: a local directory (default) or an S3-compatible bucket, at the seed's keys.

Keys (DESIGN.md section 6): ``reconstructed/{id}.mp4``, ``decoders/{id}_decoder.py``,
``decoders/by-program/{sha256}.py``, ``bitstreams/{id}/{clip}_q{quality}.bin``,
``programs/{sha256}.py``, ``packages/{id}.zip``, ``transcodes/{id}.{fmt}``.
Both stores offer ``put_bytes``, ``put_file``, ``get_bytes``, ``exists``, ``location(key)``
(what a record stores: a local path or ``s3://bucket/prefix/key``), ``key_of(location)`` and
``link(key, ttl)`` (an expiring link). Local writes go to a temporary name and are renamed
into place, so a killed campaign never leaves a half-written artifact behind a valid key.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from codeclab.store import links

if TYPE_CHECKING:
    from codeclab.record import ExperimentRecord


def bitstream_name(clip: str, quality: int) -> str:
    return f"{clip}_q{quality}.bin"


def bitstream_key(experiment_id: str, clip: str, quality: int) -> str:
    return f"bitstreams/{experiment_id}/{bitstream_name(clip, quality)}"


def decoder_key(experiment_id: str) -> str:
    return f"decoders/{experiment_id}_decoder.py"


def reconstructed_key(experiment_id: str) -> str:
    return f"reconstructed/{experiment_id}.mp4"


class ArtifactError(RuntimeError):
    """The artifact store cannot be reached or written, or a key would escape it."""


class ArtifactStore(Protocol):
    def put_bytes(self, key: str, data: bytes) -> str: ...
    def put_file(self, key: str, source: Path) -> str: ...
    def get_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def location(self, key: str) -> str: ...
    def key_of(self, location: str) -> str: ...
    def link(self, key: str, ttl: int | None = None) -> str: ...


class LocalArtifactStore:
    def __init__(
        self, root: Path, *, secret: bytes | None = None, link_ttl: int = links.DEFAULT_TTL
    ) -> None:
        self.root = Path(root).resolve()
        self._secret = secret
        self.link_ttl = link_ttl

    def path(self, key: str) -> Path:
        """The file behind ``key``; refuses keys that would leave the store's directory."""
        target = (self.root / key).resolve()
        if not target.is_relative_to(self.root) or target == self.root:
            raise ArtifactError(f"artifact key {key!r} escapes the store")
        return target

    def location(self, key: str) -> str:
        return str(self.path(key))

    def key_of(self, location: str) -> str:
        path = Path(location).resolve()
        if not path.is_relative_to(self.root):
            raise ArtifactError(f"{location} is not in the artifact store {self.root}")
        return path.relative_to(self.root).as_posix()

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
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"no artifact {key} in {self.root}") from None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def link(self, key: str, ttl: int | None = None) -> str:
        """``/artifacts/{key}?expires=...&sig=...``: an HMAC-signed link the dashboard checks."""
        self.path(key)
        if self._secret is None:
            self._secret = links.load_secret(self.root.parent)
        return links.local_url(key, ttl or self.link_ttl, self._secret)


def linked_record(record: ExperimentRecord, store: ArtifactStore) -> ExperimentRecord:
    """``record`` as ``--json`` shows it: S3 locations become presigned URLs; local paths stay."""
    if not hasattr(store, "presign_location"):
        return record

    def resolve(location: str | None) -> str | None:
        return store.presign_location(location) if location else location

    artifacts = record.artifacts
    return record.model_copy(
        update={
            "artifacts": artifacts.model_copy(
                update={
                    "reconstructed": resolve(artifacts.reconstructed),
                    "decoder": resolve(artifacts.decoder),
                    "program": resolve(artifacts.program),
                    "package": resolve(artifacts.package),
                    "bitstreams": [resolve(b) for b in artifacts.bitstreams],
                }
            )
        }
    )
