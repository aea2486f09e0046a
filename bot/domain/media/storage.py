"""Where stored media live: a local folder (the default) or any S3-compatible store through boto3."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

logger = logging.getLogger(__name__)
CHUNK = 64 * 1024


class StorageError(Exception):
    """The store could not take, give or delete a file (the caller retries or answers 503)."""


class MediaStore(Protocol):
    def put(self, key: str, data: IO[bytes], content_type: str) -> None: ...

    def open(self, key: str) -> tuple[Iterator[bytes], int]:
        """The file's bytes in chunks, and its size; FileNotFoundError when it is not there."""
        ...

    def delete(self, key: str) -> None: ...

    def presigned_url(self, key: str, content_type: str) -> str | None:
        """A short-lived URL the store serves itself, or None (lastmile streams the file)."""
        ...


class LocalMediaStore:
    """Files under one folder; written to a temporary name and renamed, so a reader never sees half a file."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise StorageError("a media key must stay inside the media folder")
        return path

    def put(self, key: str, data: IO[bytes], content_type: str) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
            with os.fdopen(fd, "wb") as out:
                while chunk := data.read(CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except OSError as exc:
            raise StorageError(f"local media store: {exc.strerror or exc.__class__.__name__}") from None

    def open(self, key: str) -> tuple[Iterator[bytes], int]:
        path = self._path(key)
        handle = path.open("rb")  # FileNotFoundError is the caller's "gone"
        size = os.fstat(handle.fileno()).st_size

        def chunks() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(CHUNK):
                    yield chunk

        return chunks(), size

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"local media store: {exc.strerror or exc.__class__.__name__}") from None

    def presigned_url(self, key: str, content_type: str) -> str | None:
        return None


class S3MediaStore:
    """An S3 bucket (AWS, MinIO, Ceph, R2... through `endpoint_url`), by boto3."""

    def __init__(self, settings: dict[str, Any], secrets: dict[str, Any]) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ModuleNotFoundError:  # pragma: no cover - depends on the installation
            raise StorageError("media.storage is s3 but boto3 is not installed (pip install 'lastmile[s3]')") from None
        self.bucket = str(settings["bucket"])
        self.prefix = str(settings.get("prefix") or "")
        self.presign = bool(settings.get("presign"))
        credentials = {}
        if secrets.get("media_s3_access_key_id"):
            credentials = {"aws_access_key_id": secrets["media_s3_access_key_id"],
                           "aws_secret_access_key": secrets.get("media_s3_secret_access_key") or ""}
        self.client = boto3.client(
            "s3", endpoint_url=settings.get("endpoint_url") or None, region_name=settings.get("region") or None,
            config=Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 3}), **credentials)

    def put(self, key: str, data: IO[bytes], content_type: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_fileobj(data, self.bucket, self.prefix + key, ExtraArgs={"ContentType": content_type})
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"s3 media store: {_s3_error(exc)}") from None

    def open(self, key: str) -> tuple[Iterator[bytes], int]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if _s3_error(exc) in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from None
            raise StorageError(f"s3 media store: {_s3_error(exc)}") from None
        except BotoCoreError as exc:
            raise StorageError(f"s3 media store: {exc.__class__.__name__}") from None
        body = answer["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(CHUNK)
            finally:
                body.close()

        return chunks(), int(answer["ContentLength"])

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"s3 media store: {_s3_error(exc)}") from None

    def presigned_url(self, key: str, content_type: str) -> str | None:
        if not self.presign:
            return None
        return self.client.generate_presigned_url(
            "get_object", ExpiresIn=300,
            Params={"Bucket": self.bucket, "Key": self.prefix + key, "ResponseContentType": content_type})


def _s3_error(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code") or exc.__class__.__name__)


def store_from_config(config: dict[str, Any]) -> MediaStore:
    settings = config["media"]
    if settings["storage"] == "s3":
        return S3MediaStore(settings["s3"], config["secrets"])
    return LocalMediaStore(settings["path"])
