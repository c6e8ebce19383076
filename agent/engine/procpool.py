"""Small files on worker processes: read, hash, skip known, compress, encrypt.

Many small files are bound by per-file Python work, which threads serialize on
the GIL; worker processes run it on every core. Each worker gets the archive
keys and a read-only snapshot of the known blob IDs once, at start; it returns,
per batch, each file's blob IDs (or why it could not be read) and the sealed
blobs it did not know. The parent's ``PackSink`` drops the few duplicates two
workers both sealed. Large files stay on threads (zstd releases the GIL there,
and their sealed chunks would otherwise cross a pipe in bulk).

The pool uses the ``forkserver`` start method where it exists (``spawn``
elsewhere): it is created while other threads run, when fork is unsafe.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from agent.archive.index_cache import KnownIds
from agent.chunk.chunker import MIN_SIZE, Chunker
from agent.codec.envelope import ObjectType, seal
from agent.codec.keys import ArchiveKeys

FileOutcome = tuple[list[bytes], int, str | None]  # blob IDs, bytes read, error
SealedBlob = tuple[bytes, bytes, int]  # ID, sealed bytes, plaintext length

_keys: ArchiveKeys | None = None
_known: KnownIds | None = None
_seen: set[bytes] = set()


def start_pool(keys: ArchiveKeys, known_raw: bytes, workers: int) -> ProcessPoolExecutor:
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_init,
                               initargs=(keys.master, known_raw))


def _init(master: bytes, known_raw: bytes) -> None:
    global _keys, _known
    _keys = ArchiveKeys.from_master(master)
    _known = KnownIds(known_raw)


def seal_files(paths: list[str]) -> tuple[list[FileOutcome], list[SealedBlob]]:
    """Read and seal a batch of small files (runs in a worker process)."""
    keys, known = _keys, _known
    if keys is None or known is None:
        raise RuntimeError("seal_files runs only in a pool started by start_pool")
    outcomes: list[FileOutcome] = []
    blobs: list[SealedBlob] = []
    for path in paths:
        try:
            with open(path, "rb", buffering=0) as f:
                data = f.read()
        except OSError as exc:
            outcomes.append(([], 0, f"{path}: {exc.strerror or exc}"))
            continue
        chunks = [data] if len(data) < MIN_SIZE else Chunker(keys.chunker_seed).chunks_of(data)
        ids = []
        for chunk in chunks:
            if not chunk:
                continue
            blob_id = keys.blob_id(chunk)
            if blob_id not in _seen and blob_id not in known:
                _seen.add(blob_id)
                blobs.append((blob_id, seal(keys, ObjectType.DATA, blob_id, chunk), len(chunk)))
            ids.append(blob_id)
        outcomes.append((ids, len(data), None))
    return outcomes, blobs
