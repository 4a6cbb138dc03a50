"""Artifacts in an S3-compatible bucket (AWS S3, MinIO, R2, ...), at the same keys as locally.

``CODECLAB_ARTIFACTS_URL=s3://bucket/prefix`` selects it, ``CODECLAB_S3_ENDPOINT_URL`` points
it at a service other than AWS. Credentials come from boto3's usual chain (environment,
profile, instance role) and never appear in messages. Uploads use boto3's managed transfer:
multipart above ``multipart_threshold`` bytes. Nothing is kept locally. An endpoint that
cannot be reached (or answers 5xx, or throttles) raises :class:`ArtifactUnavailable`.
"""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import urlsplit

from codeclab.store import links
from codeclab.store.artifacts import ArtifactError, ArtifactUnavailable, Journal

DEFAULT_MULTIPART_THRESHOLD = 8 * 1024 * 1024


def _reason(exc: Exception) -> str:
    """A short cause without request details (URLs with signatures, keys)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code = error.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{code}: {error.get('Message', '')}".rstrip(": ")
    return type(exc).__name__


THROTTLED = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout"})


def _failure(exc: Exception) -> type[ArtifactError]:
    """:class:`ArtifactUnavailable` for an outage that may pass (the endpoint unreachable, a
    broken connection, a 5xx answer, throttling), else :class:`ArtifactError`."""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as Unreachable

    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = str(exc.response.get("Error", {}).get("Code", ""))
        outage = status >= 500 or code in THROTTLED
    else:
        outage = isinstance(exc, Unreachable | HTTPClientError)
    return ArtifactUnavailable if outage else ArtifactError


class S3ArtifactStore:
    journal: Journal | None = None  # notes experiments' keys before writing (the sweep's)

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        link_ttl: int = links.DEFAULT_TTL,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        client=None,
        check: bool = True,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ArtifactError(f"an S3 artifacts URL looks like s3://bucket/prefix, got {url!r}")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.endpoint_url = endpoint_url
        self.link_ttl = link_ttl
        self.client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(signature_version="s3v4", retries={"max_attempts": 3}),
        )
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=max(5 * 1024 * 1024, multipart_threshold),
        )
        if check:
            self._check_bucket()

    @property
    def where(self) -> str:
        at = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/") + at

    def _check_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise ArtifactError(f"the artifact bucket {self.bucket!r} does not exist") from None
            raise _failure(exc)(
                f"cannot use the artifact bucket {self.where}: {_reason(exc)}"
            ) from None
        except BotoCoreError as exc:
            raise _failure(exc)(
                f"cannot reach the artifact store {self.where}: {_reason(exc)}"
            ) from None

    def object_key(self, key: str) -> str:
        try:
            links.check_key(key)
        except links.LinkError as exc:
            raise ArtifactError(str(exc)) from None
        return f"{self.prefix}/{key}" if self.prefix else key

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def key_of(self, location: str) -> str:
        head = f"s3://{self.bucket}/" + (f"{self.prefix}/" if self.prefix else "")
        if not location.startswith(head):
            raise ArtifactError(f"{location} is not in the artifact store {self.where}")
        return location[len(head) :]

    def _call(self, what: str, key: str, function, *args, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return function(*args, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise ArtifactError(f"no artifact {key} in {self.where}") from None
            raise _failure(exc)(
                f"cannot {what} artifact {key} in {self.where}: {_reason(exc)}"
            ) from None
        except (BotoCoreError, OSError) as exc:
            raise _failure(exc)(
                f"cannot {what} artifact {key} in {self.where}: {_reason(exc)}"
            ) from None

    def put_bytes(self, key: str, data: bytes) -> str:
        name = self.object_key(key)
        if self.journal:
            self.journal.note(key)
        self._call(
            "write",
            key,
            self.client.upload_fileobj,
            io.BytesIO(data),
            self.bucket,
            name,
            Config=self.transfer,
        )
        return self.location(key)

    def put_file(self, key: str, source: Path) -> str:
        name = self.object_key(key)
        if self.journal:
            self.journal.note(key)
        self._call(
            "write",
            key,
            self.client.upload_file,
            str(source),
            self.bucket,
            name,
            Config=self.transfer,
        )
        return self.location(key)

    def get_bytes(self, key: str) -> bytes:
        buffer = io.BytesIO()
        name = self.object_key(key)
        self._call("read", key, self.client.download_fileobj, self.bucket, name, buffer)
        return buffer.getvalue()

    def exists(self, key: str) -> bool:
        try:
            self._call(
                "find", key, self.client.head_object, Bucket=self.bucket, Key=self.object_key(key)
            )
        except ArtifactError as exc:
            if str(exc).startswith("no artifact"):
                return False
            raise
        return True

    def delete(self, key: str) -> int | None:
        """Remove ``key`` (a sweep's orphan); the bytes it held, None when there was none."""
        name = self.object_key(key)
        try:
            head = self._call("find", key, self.client.head_object, Bucket=self.bucket, Key=name)
        except ArtifactError as exc:
            if str(exc).startswith("no artifact"):
                return None
            raise
        self._call("delete", key, self.client.delete_object, Bucket=self.bucket, Key=name)
        return int(head.get("ContentLength", 0))

    def link(self, key: str, ttl: int | None = None) -> str:
        """A presigned GET URL, valid ``ttl`` seconds (7 days by default; S3's maximum)."""
        return self._call(
            "link",
            key,
            self.client.generate_presigned_url,
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.object_key(key)},
            ExpiresIn=int(ttl or self.link_ttl),
        )

    def presign_location(self, location: str, ttl: int | None = None) -> str:
        """A presigned URL for a recorded ``s3://`` location (other values pass through)."""
        if not location.startswith("s3://"):
            return location
        return self.link(self.key_of(location), ttl)
