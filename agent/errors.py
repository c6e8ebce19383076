"""The agent's error tree. Every error a user can cause is a sentence and an exit code.

    CairnError                      exit 1
    ├── UsageError                  exit 2   bad arguments or configuration
    ├── ArchiveError                exit 4   the destination is not a usable archive
    │   ├── NotAnArchive
    │   ├── NewerFormat             written by a newer Cairn
    │   ├── WrongPassphrase         exit 5
    │   └── KeyNotAvailable         exit 18  this device lacks the archive key (import it)
    ├── IntegrityError              exit 6   ciphertext, hash or structure does not verify
    ├── DestinationError            exit 7   the destination cannot be read or written
    │   ├── DestinationFull         exit 8   no space left
    │   │   └── QuotaExceeded       exit 8   the server's storage quota is used up
    │   ├── ServerRefused           exit 7   the Cairn server refused (its sentence)
    │   │   ├── RegistrationKeyInvalid   exit 10
    │   │   ├── WrongCredentials         exit 11  username or password wrong (or locked out)
    │   │   ├── LicenseCapReached        exit 12
    │   │   ├── DeviceLimitReached       exit 13  four active devices already
    │   │   ├── AgentTooOld              exit 14
    │   │   ├── DeviceNotAuthorized      exit 17  device or user deactivated, or token gone
    │   │   └── KeyPolicyRefused         exit 19  the organization requires another key level
    │   ├── ServerUnreachable       exit 15  network error, 5xx or 429 (retried first)
    │   └── CertificateNotTrusted   exit 16  TLS verification or certificate pin failed
    ├── SnapshotNotFound            exit 9
    ├── CacheNotWritable            exit 8   the agent home's cache cannot be written (full)
    └── Interrupted                 exit 130

Lower-layer errors (OSError, cryptography's InvalidTag, zstd errors) are caught at
the edge of the module that sees them and re-raised as one of these with
``raise ... from exc`` so the cause stays in the debug log.
"""

from __future__ import annotations


class CairnError(Exception):
    """Base class: `str(err)` is a sentence fit for the user."""

    exit_code = 1


class UsageError(CairnError):
    exit_code = 2


class ArchiveError(CairnError):
    exit_code = 4


class NotAnArchive(ArchiveError):
    pass


class NewerFormat(ArchiveError):
    pass


class WrongPassphrase(ArchiveError):
    exit_code = 5


class IntegrityError(CairnError):
    exit_code = 6


class DestinationError(CairnError):
    exit_code = 7


class DestinationFull(DestinationError):
    exit_code = 8


class CacheNotWritable(CairnError):
    """The agent home's cache (SQLite) cannot be written: its disk is full, or failing."""

    exit_code = 8


class KeyNotAvailable(ArchiveError):
    exit_code = 18


class QuotaExceeded(DestinationFull):
    pass


class ServerRefused(DestinationError):
    """The Cairn server answered with a problem document; ``str()`` is its sentence."""

    def __init__(self, message: str, *, status: int = 0):
        super().__init__(message)
        self.status = status


class RegistrationKeyInvalid(ServerRefused):
    exit_code = 10


class WrongCredentials(ServerRefused):
    exit_code = 11


class LicenseCapReached(ServerRefused):
    exit_code = 12


class DeviceLimitReached(ServerRefused):
    exit_code = 13


class AgentTooOld(ServerRefused):
    exit_code = 14


class DeviceNotAuthorized(ServerRefused):
    exit_code = 17


class KeyPolicyRefused(ServerRefused):
    exit_code = 19


class ServerUnreachable(DestinationError):
    """No usable answer (network error, 5xx, 429): worth retrying (see agent.dest.retry)."""

    exit_code = 15

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class CertificateNotTrusted(DestinationError):
    exit_code = 16


class SnapshotNotFound(CairnError):
    exit_code = 9


class PathNotInSnapshot(SnapshotNotFound):
    """A path asked for (``--include``, ``ls PATH``) that the snapshot does not hold."""


class Interrupted(CairnError):
    exit_code = 130


#: Exit code when a snapshot was written but some files could not be read.
EXIT_PARTIAL = 3
