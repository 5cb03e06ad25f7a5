"""The ``s3`` artifact store: one object per artifact, ``<prefix>/objects/<sha256>``, in an S3-compatible bucket.

A put reads its source twice: once to learn the hash (which is the key), and
once to upload it, hashing again so a file that changed in between is
refused rather than stored under the wrong name. Objects already in the
bucket are not uploaded again. Small objects go up in one request; from
``multipart_threshold`` on, in parts of ``part_size`` bytes read one at a
time, so memory stays at one part whatever the size. A failed multipart
upload is aborted; one cut short by a crash is invisible (S3 shows only
completed uploads) until a bucket lifecycle rule removes its parts. A stream
that cannot seek is first spooled to a temporary file.

Every read verifies the SHA-256, like every cairn artifact store. Throttling
and transient errors are retried with exponential backoff and jitter by
botocore's ``standard`` retry mode (``max_attempts``); what still fails
becomes a ``StorageError`` that says what to do.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, cast

from cairn.artifacts import (
    VERIFY_UP_FRONT_BYTES,
    ArtifactInfo,
    ArtifactStore,
    Readable,
    ReadStream,
    Source,
    VerifyingReader,
    artifact_not_found,
    check_digest,
    check_prefix,
    hash_stream,
    open_source,
)
from cairn.errors import StorageError
from cairn_s3.config import S3Config

if TYPE_CHECKING:  # boto3-stubs[s3], installed by the types env only
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

__all__ = ["MAX_PARTS", "S3ArtifactStore", "S3StoreOpener"]

#: S3 refuses more parts than this in one upload.
MAX_PARTS = 10_000
_THROTTLED = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "TooManyRequestsException",
    "RequestThrottled",
    "ServiceUnavailable",
    "503",
    "429",
}
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AllAccessDisabled",
    "AccountProblem",
    "403",
}
_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}


def _iso(moment: _dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class S3ArtifactStore(ArtifactStore):
    """Artifacts in ``s3://bucket/<prefix>objects/``; see the module docstring for the guarantees."""

    name = "s3"

    def __init__(
        self,
        config: S3Config,
        *,
        access_key: str,
        secret_key: str,
        session_token: str | None = None,
    ) -> None:
        import boto3
        from botocore.config import Config as BotoConfig

        self.config = config
        self.bucket = config.bucket
        self.prefix = config.key_prefix + "objects/"
        self.location = f"s3://{self.bucket}/{self.prefix}"
        if config.endpoint_url:
            self.location += f" at {config.endpoint_url}"
        session = boto3.session.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
            region_name=config.region,
        )
        self.client = session.client(
            "s3",
            endpoint_url=config.endpoint_url,
            config=BotoConfig(
                retries={"mode": "standard", "total_max_attempts": config.max_attempts},
                # S3Config's validator admits only these three.
                s3={"addressing_style": cast(Literal["auto", "path", "virtual"], config.addressing_style)},
                connect_timeout=config.connect_timeout_s,
                read_timeout=config.read_timeout_s,
                # Only the checksums S3 itself requires: several S3-compatible services refuse the
                # newer defaults. Integrity does not depend on them: every read checks the SHA-256.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
        self._bucket_checked = False

    def __repr__(self) -> str:
        return f"S3ArtifactStore({self.location!r})"

    # -- errors -----------------------------------------------------------------------------

    def _error(self, exc: Exception, action: str) -> StorageError:
        """What a failed request means for the user, without echoing anything secret."""
        from botocore.exceptions import ClientError, ConnectionError, NoCredentialsError

        endpoint = self.config.endpoint_url or "AWS S3"
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return self._no_bucket()
            if code in _DENIED or status == 403:
                return StorageError(
                    f"access denied while {action} in s3://{self.bucket}/{self.config.key_prefix} ({code or status})",
                    hint=f"check that ${self.config.access_key_env} and ${self.config.secret_key_env} hold keys "
                    f"allowed to read, write, list and delete there (named by [artifacts.s3] access_key_env and "
                    "secret_key_env)",
                )
            if code in _THROTTLED or status in (429, 503):
                return StorageError(
                    f"{endpoint} kept throttling requests while {action} ({code or status}) "
                    f"after {self.config.max_attempts} attempts with backoff",
                    hint="try again later, or raise [artifacts.s3] max_attempts",
                )
            message = str(error.get("Message", "")).strip()
            return StorageError(f"S3 refused {action} ({code or status}{': ' + message if message else ''})")
        if isinstance(exc, ConnectionError):
            return StorageError(
                f"cannot reach {endpoint} while {action}: {type(exc).__name__}",
                hint="check [artifacts.s3] endpoint_url and the network",
            )
        if isinstance(exc, NoCredentialsError):
            return StorageError("no S3 credentials", hint="set access_key_env and secret_key_env")
        return StorageError(f"S3 failed while {action}: {type(exc).__name__}: {exc}")

    def _no_bucket(self) -> StorageError:
        where = f" at {self.config.endpoint_url}" if self.config.endpoint_url else ""
        return StorageError(
            f"the bucket {self.bucket!r} does not exist{where}",
            hint="create it (cairn never creates buckets), or fix [artifacts.s3] bucket and endpoint_url",
        )

    def _check_bucket(self) -> None:
        """Once per store: a missing bucket or wrong keys are reported as such, not as a missing object."""
        if self._bucket_checked:
            return
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404 or exc.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404"):
                raise self._no_bucket() from None
            raise self._error(exc, "opening the bucket") from None
        except BotoCoreError as exc:
            raise self._error(exc, "opening the bucket") from None
        self._bucket_checked = True

    @contextlib.contextmanager
    def _requests(self, action: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        self._check_bucket()
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, action) from None

    def _key(self, digest: str) -> str:
        return self.prefix + check_digest(digest)  # before it becomes part of a key

    # -- reading ----------------------------------------------------------------------------

    def _head(self, digest: str) -> ArtifactInfo | None:
        from botocore.exceptions import ClientError

        key = self._key(digest)
        with self._requests(f"looking up artifact {digest}"):
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) in _MISSING_KEY:
                    return None
                raise
        return ArtifactInfo(digest, int(head["ContentLength"]), _iso(head.get("LastModified")))

    def stat(self, digest: str) -> ArtifactInfo:
        info = self._head(digest)
        if info is None:
            raise artifact_not_found(digest, self.location)
        return info

    def has(self, digest: str) -> bool:
        return self._head(digest) is not None

    def open(self, digest: str) -> ReadStream:
        from botocore.exceptions import ClientError

        key = self._key(digest)
        with self._requests(f"reading artifact {digest}"):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) in _MISSING_KEY:
                    raise artifact_not_found(digest, self.location) from None
                raise
        size = int(response["ContentLength"])
        reader = VerifyingReader(response["Body"], digest, size, where=self.location)
        if size > VERIFY_UP_FRONT_BYTES:
            return _TranslatingReader(reader, self, f"reading artifact {digest}")
        with self._requests(f"reading artifact {digest}"), reader:
            data = reader.read()  # verified at its end, before anyone sees a byte
        return io.BytesIO(data)

    def list(self, *, prefix: str = "", after: str | None = None) -> Iterator[ArtifactInfo]:
        prefix = check_prefix(prefix)
        after = check_prefix(after) if after is not None else None
        return self._list(prefix, after)

    def _list(self, prefix: str, after: str | None) -> Iterator[ArtifactInfo]:
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix, "MaxKeys": 1000}
        if after:
            arguments["StartAfter"] = self.prefix + after
        while True:
            with self._requests("listing artifacts"):
                page = self.client.list_objects_v2(**arguments)
            for item in page.get("Contents", []):
                digest = item["Key"][len(self.prefix) :]
                if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
                    yield ArtifactInfo(digest, int(item["Size"]), _iso(item.get("LastModified")))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            arguments["ContinuationToken"] = token

    # -- writing ----------------------------------------------------------------------------

    def put(self, source: Source) -> ArtifactInfo:
        with open_source(source) as stream, _seekable(stream) as seekable:
            start = seekable.tell()
            digest, size = hash_stream(seekable)
            existing = self._head(digest)
            if existing is not None and existing.size == size:
                return existing  # already there: nothing to upload
            seekable.seek(start)
            if size < self.config.multipart_threshold:
                self._put_whole(seekable, digest, size)
            else:
                self._put_parts(seekable, digest, size)
        return self.stat(digest)

    def _changed(self) -> StorageError:
        return StorageError(
            "the source changed while it was being uploaded; nothing was kept",
            hint="put it again once nothing is writing to it",
        )

    def _put_whole(self, stream: Any, digest: str, size: int) -> None:
        data = stream.read(size + 1)
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            raise self._changed()
        with self._requests(f"uploading artifact {digest}"):
            self.client.put_object(Bucket=self.bucket, Key=self._key(digest), Body=data, ContentLength=size)

    def _put_parts(self, stream: Any, digest: str, size: int) -> None:
        key = self._key(digest)
        part_size = max(self.config.part_size, -(-size // MAX_PARTS))
        with self._requests(f"starting the upload of artifact {digest}"):
            upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            hasher = hashlib.sha256()
            parts: list[CompletedPartTypeDef] = []
            number = 0
            while True:
                chunk = stream.read(part_size)
                if not chunk:
                    break
                number += 1
                hasher.update(chunk)
                with self._requests(f"uploading part {number} of artifact {digest}"):
                    etag = self.client.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=number, Body=chunk
                    )["ETag"]
                parts.append({"ETag": etag, "PartNumber": number})
                del chunk
            if hasher.hexdigest() != digest:
                raise self._changed()
            with self._requests(f"completing the upload of artifact {digest}"):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: the original error is the one to report
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
            raise

    def delete(self, digest: str) -> bool:
        if self._head(digest) is None:
            return False
        with self._requests(f"deleting artifact {digest}"):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(digest))
        return True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


class _TranslatingReader(io.RawIOBase):
    """A streamed object whose network errors mid-read become ``StorageError`` like every other request's."""

    def __init__(self, inner: VerifyingReader, store: S3ArtifactStore, action: str) -> None:
        super().__init__()
        self._inner = inner
        self._store = store
        self._action = action

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        from botocore.exceptions import BotoCoreError

        try:
            return self._inner.readinto(buffer)
        except BotoCoreError as exc:
            raise self._store._error(exc, self._action) from None

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                super().close()


@contextlib.contextmanager
def _seekable(stream: Readable) -> Iterator[Any]:
    """``stream`` itself if it can seek back; else a temporary file holding its bytes (memory: one chunk)."""
    try:
        if stream.seekable():  # type: ignore[attr-defined]  # checked: AttributeError means it cannot
            stream.tell()  # type: ignore[attr-defined]  # as above
            yield stream
            return
    except (AttributeError, OSError):
        pass
    with tempfile.TemporaryFile(prefix="cairn-s3-") as spool:
        buffer = bytearray(1 << 20)
        readinto = getattr(stream, "readinto", None)
        while True:
            if readinto is not None:
                count = readinto(buffer) or 0
                chunk: bytes | memoryview = memoryview(buffer)[:count]
            else:
                chunk = stream.read(len(buffer)) or b""
                count = len(chunk)
            if not count:
                break
            spool.write(chunk)
        spool.seek(0)
        yield spool


class S3StoreOpener:
    """Opens an S3 store whose prefix is derived from a directory: the conformance suite's opener.

    Picklable (spawned processes use it); credentials come from the
    environment by the config's variable names, as in production.
    """

    def __init__(self, config: S3Config) -> None:
        self.config = config

    def __call__(self, directory: os.PathLike[str] | str) -> S3ArtifactStore:
        import attrs

        from cairn_s3.plugin import create_store

        namespace = hashlib.sha256(os.fsencode(os.fspath(directory))).hexdigest()[:16]
        prefix = f"{self.config.key_prefix}{namespace}"
        store: S3ArtifactStore = create_store(attrs.evolve(self.config, prefix=prefix))
        return store
