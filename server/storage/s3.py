"""BlobStore on an S3-compatible object store, through boto3.

Key layout (see docs/storage.md)::

    <prefix>/<namespace>/<kind>/<name>            live objects
    <prefix>/<namespace>/trash/<kind>/<name>      trashed; metadata cairn-trashed-at = Unix time

A put spools the body to a temporary file (memory up to ``spool_bytes``) while
hashing it; only verified bytes are sent, in a single PUT, which S3 makes
visible atomically. ``If-None-Match: *`` makes the PUT refuse to overwrite;
endpoints that do not implement it get an existence check instead (the bytes
are identical by construction, so the remaining race is harmless).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from server.storage.base import (
    KINDS,
    NAME_RE,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    check_address,
    check_namespace,
)
from server.storage.checks import check_age, check_range, copy_verified

TRASHED_AT = "cairn-trashed-at"  # S3 user metadata keys are lowercase
SPOOL_BYTES = 8 << 20
DELETE_BATCH = 1000  # S3's DeleteObjects limit
NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
EXISTS = {"412", "PreconditionFailed"}
UNSUPPORTED = {"501", "NotImplemented"}
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5},
                       max_pool_connections=64)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def _s3_errors(what: str) -> Iterator[None]:
    """Turn a boto3/botocore failure into a StorageError sentence."""
    try:
        yield
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        raise StorageError(f"S3 storage failed while {what}: {_code(exc)} {message}".rstrip()
                           + ".") from exc
    except BotoCoreError as exc:
        raise StorageError(f"S3 storage failed while {what}: {exc}.") from exc


class S3BlobStore:
    """BlobStore in one bucket under a key prefix. The bucket must exist.

    ``client`` replaces the boto3 client built from ``endpoint_url``; ``clock``
    stamps trash times; ``page_size`` is the listing page size (tests lower it
    to exercise pagination).
    """

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None = None,
                 client: Any = None, *, clock: Callable[[], float] = time.time,
                 spool_bytes: int = SPOOL_BYTES, page_size: int = 1000) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"Invalid S3 bucket name {bucket!r}.")
        self.bucket = bucket
        prefix = prefix.strip("/")
        self._prefix = f"{prefix}/" if prefix else ""
        self._client = client or boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, config=CLIENT_CONFIG)
        self._clock = clock
        self._spool_bytes = spool_bytes
        self._page_size = page_size
        self._conditional_put = True

    def __repr__(self) -> str:
        return f"S3BlobStore({self.bucket!r}, {self._prefix.rstrip('/')!r})"

    # --- writing -------------------------------------------------------------

    def put(self, namespace: str, kind: str, name: str, body: BinaryIO) -> int:
        """Verify the body's SHA-256 while spooling it, then PUT it unless it exists."""
        check_address(namespace, kind, name)
        key = self._key(namespace, kind, name)
        with tempfile.SpooledTemporaryFile(max_size=self._spool_bytes) as spool:
            size = copy_verified(body, spool, kind, name)  # type: ignore[arg-type]
            with _s3_errors(f"storing {kind}/{name}"):
                existing = self._head(key)
                if existing is not None:
                    return int(existing["ContentLength"])
                self._put_new(key, spool, size)  # type: ignore[arg-type]
        return size

    def trash(self, namespace: str, kind: str, name: str) -> None:
        """Copy the object under the trash prefix with the trash time, then delete it."""
        check_address(namespace, kind, name)
        live = self._key(namespace, kind, name)
        with _s3_errors(f"moving {kind}/{name} to the trash"):
            if self._head(live) is None:
                return
            self._client.copy_object(
                Bucket=self.bucket, Key=self._trash_key(namespace, kind, name),
                CopySource={"Bucket": self.bucket, "Key": live},
                Metadata={TRASHED_AT: repr(float(self._clock()))}, MetadataDirective="REPLACE")
            self._client.delete_object(Bucket=self.bucket, Key=live)

    def restore_from_trash(self, namespace: str, kind: str, name: str) -> None:
        """Copy the trashed object back under its live key, then drop the trash copy."""
        check_address(namespace, kind, name)
        live = self._key(namespace, kind, name)
        trashed = self._trash_key(namespace, kind, name)
        with _s3_errors(f"restoring {kind}/{name} from the trash"):
            if self._head(live) is not None:
                return
            if self._head(trashed) is None:
                raise ObjectNotFound(f"{kind}/{name} is neither stored nor in the trash.")
            self._client.copy_object(
                Bucket=self.bucket, Key=live, CopySource={"Bucket": self.bucket, "Key": trashed},
                Metadata={}, MetadataDirective="REPLACE")
            self._client.delete_object(Bucket=self.bucket, Key=trashed)

    def purge_trash(self, namespace: str, older_than_s: float) -> int:
        """Delete objects trashed at least older_than_s seconds ago; return how many."""
        check_namespace(namespace)
        check_age(older_than_s)
        cutoff = self._clock() - older_than_s
        with _s3_errors("purging the trash"):
            doomed = [obj["Key"] for obj in self._objects(f"{self._prefix}{namespace}/trash/")
                      if self._trashed_at(obj) <= cutoff]
            self._delete_keys(doomed)
        return len(doomed)

    def delete_namespace(self, namespace: str) -> None:
        """Delete every key of the namespace, trash included, in batches."""
        check_namespace(namespace)
        with _s3_errors(f"deleting namespace {namespace}"):
            batch: list[str] = []
            for obj in self._objects(f"{self._prefix}{namespace}/"):
                batch.append(obj["Key"])
                if len(batch) == DELETE_BATCH:
                    self._delete_keys(batch)
                    batch = []
            self._delete_keys(batch)

    # --- reading -------------------------------------------------------------

    def get(self, namespace: str, kind: str, name: str,
            offset: int = 0, length: int | None = None) -> bytes:
        """Read an object or a byte range of it (one ranged GET)."""
        check_address(namespace, kind, name)
        check_range(offset, length)
        if length == 0:
            self.size(namespace, kind, name)
            return b""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(namespace, kind, name)}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            args["Range"] = f"bytes={offset}-{end}"
        with _s3_errors(f"reading {kind}/{name}"):
            try:
                return self._client.get_object(**args)["Body"].read()
            except ClientError as exc:
                if _code(exc) in NOT_FOUND:
                    raise ObjectNotFound(f"{kind}/{name} is not stored.") from None
                if _code(exc) != "InvalidRange":
                    raise
        self.size(namespace, kind, name)  # offset at or past the end: exists, or not found
        return b""

    def size(self, namespace: str, kind: str, name: str) -> int:
        """Size of a live object in bytes (one HEAD)."""
        check_address(namespace, kind, name)
        with _s3_errors(f"reading the size of {kind}/{name}"):
            head = self._head(self._key(namespace, kind, name))
        if head is None:
            raise ObjectNotFound(f"{kind}/{name} is not stored.")
        return int(head["ContentLength"])

    def list(self, namespace: str, kind: str) -> Iterator[ObjectInfo]:
        """Every live object of a kind (arguments are checked before iteration starts)."""
        check_address(namespace, kind, "0" * 64)
        return self._iter_kind(namespace, kind)

    def namespace_bytes(self, namespace: str) -> int:
        """Bytes stored by the live objects of a namespace (one paginated listing)."""
        check_namespace(namespace)
        base = f"{self._prefix}{namespace}/"
        total = 0
        with _s3_errors(f"measuring namespace {namespace}"):
            for obj in self._objects(base):
                kind, _, name = obj["Key"][len(base):].partition("/")
                if kind in KINDS and NAME_RE.match(name):
                    total += int(obj["Size"])
        return total

    # --- internals -------------------------------------------------------------

    def _key(self, namespace: str, kind: str, name: str) -> str:
        return f"{self._prefix}{namespace}/{kind}/{name}"

    def _trash_key(self, namespace: str, kind: str, name: str) -> str:
        return f"{self._prefix}{namespace}/trash/{kind}/{name}"

    def _iter_kind(self, namespace: str, kind: str) -> Iterator[ObjectInfo]:
        base = f"{self._prefix}{namespace}/{kind}/"
        with _s3_errors(f"listing {kind} objects"):
            for obj in self._objects(base):
                name = obj["Key"][len(base):]
                if NAME_RE.match(name):
                    yield ObjectInfo(kind, name, int(obj["Size"]))

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        """Every object under prefix, following pagination."""
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix,
                                   PaginationConfig={"PageSize": self._page_size})
        for page in pages:
            yield from page.get("Contents", [])

    def _head(self, key: str) -> dict[str, Any] | None:
        """HEAD of key, or None when it does not exist."""
        try:
            return self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in NOT_FOUND:
                return None
            raise

    def _put_new(self, key: str, body: BinaryIO, size: int) -> None:
        """PUT key unless it exists; fall back to a plain PUT where If-None-Match is unknown."""
        while True:
            body.seek(0)
            args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": body,
                                    "ContentLength": size}
            if self._conditional_put:
                args["IfNoneMatch"] = "*"
            try:
                self._client.put_object(**args)
                return
            except ClientError as exc:
                code = _code(exc)
                if code in EXISTS:
                    return  # stored concurrently: same verified bytes
                if code == "ConditionalRequestConflict" and self._head(key) is not None:
                    return
                if not (self._conditional_put and code in UNSUPPORTED):
                    raise
                self._conditional_put = False

    def _trashed_at(self, obj: dict[str, Any]) -> float:
        """Trash time of a listed trash object: its metadata, else its LastModified."""
        head = self._head(obj["Key"])
        if head is None:
            return float("inf")  # gone meanwhile: nothing to purge
        try:
            return float(head.get("Metadata", {})[TRASHED_AT])
        except (KeyError, ValueError):
            return obj["LastModified"].timestamp()

    def _delete_keys(self, keys: list[str]) -> None:
        """Delete keys with DeleteObjects, DELETE_BATCH at a time; raise if any failed."""
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start:start + DELETE_BATCH]
            response = self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise StorageError(f"S3 refused to delete {len(errors)} of {len(batch)} objects "
                                   f"(first: {first.get('Key')}: {first.get('Code')} "
                                   f"{first.get('Message', '')}).")
