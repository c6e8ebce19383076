"""The archive passphrase for unattended runs, and keeping secrets out of logs.

The service never prompts. Each set's passphrase comes from, in order: the
set's ``passphrase_file``, ``service.passphrase_file``, or ``CAIRN_PASSPHRASE``
as given to ``cairn run`` when it started. A passphrase file must be a regular
file readable only by the service's user (POSIX mode 0600 or 0400, owned by
that user or root); its content, without the trailing newline, is the
passphrase.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

from agent.errors import UsageError


def read_passphrase_file(path: Path) -> str:
    """The passphrase in ``path``, refusing a file other users could read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise UsageError(f"Cannot open the passphrase file {path}: {exc.strerror}.") from exc
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"The passphrase file {path} is not a regular file.")
        if os.name != "nt":
            if st.st_mode & 0o077:
                raise UsageError(f"The passphrase file {path} is readable by other users; "
                                 f"run `chmod 600 {path}`.")
            if st.st_uid not in (os.getuid(), 0):
                raise UsageError(f"The passphrase file {path} belongs to another user.")
        data = f.read(64 * 1024)
    value = data.decode("utf-8", errors="strict").rstrip("\r\n")
    if not value:
        raise UsageError(f"The passphrase file {path} is empty.")
    return value


class SecretFilter(logging.Filter):
    """Replaces every known secret in log records with ``<redacted>``."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        if len(secret) >= 4:
            with self._lock:
                self._secrets.add(secret)

    def scrub(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, "<redacted>")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.scrub(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if clean != message:
            record.msg, record.args = clean, None
        return True


#: One filter per process: every handler the service installs uses it.
SECRETS = SecretFilter()
