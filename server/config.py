"""Server configuration as frozen values, resolved once at the CLI edge.

Where the server keeps its state, in order of precedence: the ``--data``,
``--db`` and ``--storage`` flags, then ``CAIRN_SERVER_DATA``,
``CAIRN_SERVER_DB`` and ``CAIRN_SERVER_STORAGE``, then the defaults:

- data folder: the platform's per-user data folder for ``cairn-server``
  (``~/.local/share/cairn-server`` on Linux);
- database: SQLite at ``DATA/cairn.sqlite3``;
- storage: the filesystem store in ``DATA/storage``.

The S3 endpoint for ``s3://`` storage comes from ``CAIRN_S3_ENDPOINT`` or
``AWS_ENDPOINT_URL`` (unset: AWS itself); credentials follow boto3's usual
lookup (``AWS_ACCESS_KEY_ID``…).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from server.errors import BadRequest

DEFAULT_PORT = 8443
DEFAULT_MAX_OBJECT_BYTES = 1 << 30  # the largest object (pack) an agent may upload
DEFAULT_PURGE_INTERVAL_S = 3600.0


@dataclass(frozen=True)
class Locations:
    """Where metadata and objects live."""

    data_dir: Path
    db_url: str
    storage_url: str
    s3_endpoint: str | None

    @property
    def tmp_dir(self) -> Path:
        """Folder for upload spool files (on the data disk, not in /tmp)."""
        return self.data_dir / "tmp"


@dataclass(frozen=True)
class ServeOptions:
    """How ``cairn-server serve`` listens."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure_http: bool = False
    purge_interval_s: float = DEFAULT_PURGE_INTERVAL_S
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES

    def check(self) -> None:
        """Refuse unsafe or incomplete listening options with a sentence."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise BadRequest("Give both --tls-cert and --tls-key, or neither.")
        for path in (self.tls_cert, self.tls_key):
            if path is not None and not path.is_file():
                raise BadRequest(f"TLS file {path} does not exist.")
        if self.tls_cert is None and not self.insecure_http and not is_loopback(self.host):
            raise BadRequest(
                f"Refusing to serve plain HTTP on {self.host}, which is not a loopback "
                "address: give --tls-cert and --tls-key, or --insecure-http if a TLS proxy "
                "in front of this server terminates TLS.")
        if not 0 <= self.port <= 65535:
            raise BadRequest(f"Port {self.port} is not between 0 and 65535.")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_locations(data: str | None, db: str | None, storage: str | None,
                      env: Mapping[str, str]) -> Locations:
    """Flags first, then environment, then defaults (see module docstring)."""
    data = data or env.get("CAIRN_SERVER_DATA")
    data_dir = Path(data).expanduser() if data else platformdirs.user_data_path("cairn-server")
    db_url = db or env.get("CAIRN_SERVER_DB") or f"sqlite:///{data_dir / 'cairn.sqlite3'}"
    storage_url = storage or env.get("CAIRN_SERVER_STORAGE") or str(data_dir / "storage")
    endpoint = env.get("CAIRN_S3_ENDPOINT") or env.get("AWS_ENDPOINT_URL") or None
    return Locations(data_dir.absolute(), db_url, storage_url, endpoint)
