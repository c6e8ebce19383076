"""The opened server state: database (migrated) and blob store, shared by API and CLI."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import OperationalError

from server.config import Locations
from server.errors import BadRequest, ServiceUnavailable
from server.metadata.db import Database, migrate, redact
from server.storage import open_blob_store
from server.storage.base import BlobStore, StorageError

log = logging.getLogger("cairn.server")


@dataclass
class Runtime:
    locations: Locations
    db: Database
    store: BlobStore

    @classmethod
    def open(cls, locations: Locations) -> Runtime:
        """Create the data folder if needed, upgrade the schema, open the store."""
        try:
            locations.tmp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadRequest(f"Cannot create the data folder {locations.data_dir}: "
                             f"{exc.strerror or exc}.") from exc
        db = Database(locations.db_url)
        try:
            migrate(db)
        except OperationalError as exc:
            db.dispose()
            raise ServiceUnavailable(f"Cannot open the database {redact(db.url)}: "
                                     f"{_first_line(exc)}.") from exc
        try:
            store = open_blob_store(locations.storage_url, s3_endpoint=locations.s3_endpoint)
        except ValueError as exc:
            db.dispose()
            raise BadRequest(str(exc)) from exc
        except StorageError as exc:
            db.dispose()
            raise ServiceUnavailable(str(exc)) from exc
        return cls(locations, db, store)

    def close(self) -> None:
        self.db.dispose()


def _first_line(exc: OperationalError) -> str:
    return str(exc.orig or exc).strip().splitlines()[0].rstrip(".")
