"""The agent's error tree. Every error a user can cause is a sentence and an exit code.

    CairnError                      exit 1
    ├── UsageError                  exit 2   bad arguments or configuration
    ├── ArchiveError                exit 4   the destination is not a usable archive
    │   ├── NotAnArchive
    │   ├── NewerFormat             written by a newer Cairn
    │   └── WrongPassphrase         exit 5
    ├── IntegrityError              exit 6   ciphertext, hash or structure does not verify
    ├── DestinationError            exit 7   the destination cannot be read or written
    │   └── DestinationFull         exit 8   no space left
    ├── SnapshotNotFound            exit 9
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


class SnapshotNotFound(CairnError):
    exit_code = 9


class Interrupted(CairnError):
    exit_code = 130


#: Exit code when a snapshot was written but some files could not be read.
EXIT_PARTIAL = 3
