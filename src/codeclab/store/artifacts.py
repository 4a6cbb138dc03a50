"""Artifact stores: a local directory (default) or an S3-compatible bucket, at the seed's keys.

Keys (DESIGN.md section 6): ``reconstructed/{id}.mp4``, ``decoders/{id}_decoder.py``,
``decoders/by-program/{sha256}.py``, ``bitstreams/{id}/{clip}_q{quality}.bin``,
``programs/{sha256}.py``, ``packages/{id}.zip``, ``transcodes/{id}.{fmt}``.
Both stores offer ``put_bytes``, ``put_file``, ``get_bytes``, ``exists``, ``location(key)``
(what a record stores: a local path or ``s3://bucket/prefix/key``), ``key_of(location)`` and
``link(key, ttl)`` (an expiring link). Local writes go to a temporary name (which names its
process, see :mod:`codeclab.scratch`), are flushed to disk and renamed into place, so a killed
campaign never leaves a half-written artifact behind a valid key; a full disk leaves none at
all and says so. A store with a :class:`Journal` notes each experiment's key before writing
it, so that a sweep after a kill finds what no record references (:mod:`codeclab.store.sweep`).
"""

from __future__ import annotations

import os
import re
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from codeclab import scratch
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


_EXPERIMENT_KEY = re.compile(
    r"(?:bitstreams/(?P<id>[0-9a-f-]{36})/[^/]+"
    r"|(?:reconstructed|packages|transcodes)/(?P<file>[0-9a-f-]{36})\.[a-z0-9]+"
    r"|decoders/(?P<decoder>[0-9a-f-]{36})_decoder\.py)"
)


def experiment_of(key: str) -> str | None:
    """The experiment a key belongs to alone (its bitstreams, video, decoder, package,
    transcodes); None for keys shared by content (programs, decoders by program) or unknown."""
    found = _EXPERIMENT_KEY.fullmatch(key)
    return found and (found["id"] or found["file"] or found["decoder"])


def journal_dir(home: Path) -> Path:
    """Where a data directory's processes note the keys they write: ``home/inflight``."""
    return Path(home) / "inflight"


class Journal:
    """The experiments' keys a process is writing, noted before each write, one file per
    process (``PID.STARTTIME.keys``) in ``directory``: after a kill the sweep reads the dead
    process's file and removes the keys of experiments no record references."""

    SUFFIX = ".keys"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def note(self, key: str) -> None:
        if experiment_of(key) is None:
            return  # keys shared by content are never swept
        try:
            with scratch.reported(self.directory):
                self.directory.mkdir(parents=True, exist_ok=True)
                with open(self.directory / f"{scratch.owner()}{self.SUFFIX}", "a") as out:
                    out.write(key + "\n")
        except OSError as exc:
            raise _write_failure(exc)(f"cannot write artifact {key}: {exc}") from exc


class ArtifactError(RuntimeError):
    """The artifact store cannot be reached or written, or a key would escape it."""


class ArtifactUnavailable(ArtifactError):
    """The artifact store cannot be reached now (endpoint down, a 5xx answer): it may come
    back, so a campaign waits for it (:mod:`codeclab.store.retry`); never a program's fault."""


def _write_failure(exc: OSError) -> type[ArtifactError]:
    """A full disk may be freed, so a campaign waits for it; other failures are errors."""
    return ArtifactUnavailable if scratch.is_full(exc) else ArtifactError


class ArtifactStore(Protocol):
    def put_bytes(self, key: str, data: bytes) -> str: ...
    def put_file(self, key: str, source: Path) -> str: ...
    def get_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def location(self, key: str) -> str: ...
    def key_of(self, location: str) -> str: ...
    def link(self, key: str, ttl: int | None = None) -> str: ...
    def delete(self, key: str) -> int | None: ...


class LocalArtifactStore:
    def __init__(
        self,
        root: Path,
        *,
        secret: bytes | None = None,
        link_ttl: int = links.DEFAULT_TTL,
        journal: Journal | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self._secret = secret
        self.link_ttl = link_ttl
        self.journal = journal

    def path(self, key: str) -> Path:
        """The file behind ``key``; refuses keys that would leave the store's directory."""
        return Path(self._file(key))

    def _file(self, key: str) -> str:
        """``key``'s path, normalised without touching the disk (``..`` and absolute keys
        cannot leave the root; the lab writes no links into its store): the dashboard asks
        this of dozens of keys a page, and resolving each cost a stat per path component."""
        target = os.path.normpath(os.path.join(self.root, key))
        if not target.startswith(self._prefix):
            raise ArtifactError(f"artifact key {key!r} escapes the store")
        return target

    @property
    def _prefix(self) -> str:
        return os.path.join(self.root, "")

    def location(self, key: str) -> str:
        return self._file(key)

    def key_of(self, location: str) -> str:
        path = os.path.normpath(os.path.join(self.root, location))
        if not path.startswith(self._prefix):
            raise ArtifactError(f"{location} is not in the artifact store {self.root}")
        return path[len(self._prefix) :].replace(os.sep, "/")

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write whole or not at all: a temporary file, flushed to disk, renamed into place.
        A full disk raises :class:`ArtifactUnavailable` (space may be freed) and leaves no
        partial file."""
        target = self.path(key)
        temporary = None
        if self.journal:
            self.journal.note(key)
        try:
            with scratch.reported(target.parent):
                target.parent.mkdir(parents=True, exist_ok=True)
                handle, temporary = scratch.make_file(target.parent)
                with os.fdopen(handle, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, target)
        except OSError as exc:
            if temporary is not None:
                temporary.unlink(missing_ok=True)
            raise _write_failure(exc)(f"cannot write artifact {key}: {exc}") from exc
        return str(target)

    def put_file(self, key: str, source: Path) -> str:
        return self.put_bytes(key, Path(source).read_bytes())

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"no artifact {key} in {self.root}") from None

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._file(key))

    def delete(self, key: str) -> int | None:
        """Remove ``key`` (a sweep's orphan) and its folder once empty; the bytes it held,
        None when there was none."""
        target = self.path(key)
        try:
            removed = scratch.remove(target)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ArtifactError(f"cannot remove artifact {key}: {exc}") from exc
        if target.parent != self.root:
            with suppress(OSError):
                target.parent.rmdir()
        return removed

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
