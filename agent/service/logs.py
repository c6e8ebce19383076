"""The service's logs: ``logs/service.log`` rotating by size, and stderr for the service manager.

The level and rotation come from ``[service]``; every record passes the
process-wide ``SecretFilter`` first, so a passphrase or token that reaches a
message is written as ``<redacted>``.
"""

from __future__ import annotations

import logging
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

from agent.service.config import ServiceSettings
from agent.service.secrets import SECRETS

SERVICE_LOG = "service.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(logs: Path, settings: ServiceSettings) -> None:
    """Send the ``cairn`` loggers to the rotating service log and stderr."""
    root = logging.getLogger("cairn")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    logs.mkdir(parents=True, exist_ok=True)
    file_handler = RotatingFileHandler(logs / SERVICE_LOG, maxBytes=settings.log_max_bytes,
                                       backupCount=settings.log_backups, encoding="utf-8")
    stderr = logging.StreamHandler(sys.stderr)
    for handler in (file_handler, stderr):
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.addFilter(SECRETS)
        root.addHandler(handler)
    apply_level(settings)


def apply_level(settings: ServiceSettings) -> None:
    logging.getLogger("cairn").setLevel(settings.log_level.upper())
