"""Object storage for archives: one interface (``BlobStore``), two backends.

``open_blob_store(location)`` picks the backend from a location string:
a plain path or ``file://`` URL gives the filesystem store, ``s3://bucket/prefix``
the S3 store. See docs/storage.md.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from server.storage.base import (
    KINDS,
    BlobStore,
    ObjectCorrupt,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    check_address,
    check_namespace,
)

__all__ = [
    "KINDS",
    "BlobStore",
    "ObjectCorrupt",
    "ObjectInfo",
    "ObjectNotFound",
    "StorageError",
    "check_address",
    "check_namespace",
    "open_blob_store",
]


def open_blob_store(location: str, *, s3_endpoint: str | None = None) -> BlobStore:
    """Open the store at location: a folder path, ``file:///folder`` or ``s3://bucket/prefix``.

    ``s3_endpoint`` is the URL of an S3-compatible service (None: AWS). Raises
    ValueError with a sentence for a location that names neither.
    """
    if not location:
        raise ValueError("No storage location given: expected a folder, file:// or s3:// URL.")
    parsed = urlparse(location)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"Storage URL {location!r} names no bucket: use s3://BUCKET/PREFIX.")
        from server.storage.s3 import S3BlobStore

        return S3BlobStore(parsed.netloc, parsed.path.strip("/"), endpoint_url=s3_endpoint)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"Storage URL {location!r} names a remote host; use a local path.")
        return _filesystem(Path(unquote(parsed.path)))
    if len(parsed.scheme) > 1:  # one letter is a Windows drive, as in C:\\data
        raise ValueError(f"Unsupported storage location {location!r}: "
                         "expected a folder, file:// or s3:// URL.")
    return _filesystem(Path(location))


def _filesystem(root: Path) -> BlobStore:
    from server.storage.filesystem import FilesystemBlobStore

    return FilesystemBlobStore(root)
