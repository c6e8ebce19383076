"""An open archive: its keys, its destination and its local index cache."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path

from agent.archive.cache_db import IN_MEMORY
from agent.archive.index_cache import BlobLocation, IndexCache
from agent.archive.index_file import IndexContent, decode_index, encode_index
from agent.codec.envelope import NO_ID, ObjectType, open_blob, open_sealed, seal
from agent.codec.keys import ArchiveKeys, checked_key_file, make_key_file, unwrap_key_file
from agent.dest.base import Destination
from agent.errors import (
    ArchiveError,
    CacheNotWritable,
    IntegrityError,
    NotAnArchive,
    SnapshotNotFound,
    WrongPassphrase,
)
from agent.model.snapshot import Snapshot
from agent.model.tree import decode_tree
from agent.pack.format import PackEntry, decode_header, header_length

MAX_SNAPSHOT_SIZE = 64 * 1024 * 1024
CREATION_WAIT_S = 30.0  # for another process creating the same new archive
READ_GAP = 256 * 1024  # trees: bytes of a pack read and skipped rather than a second read
READ_SPAN = 32 * 1024 * 1024  # trees: the most read at once from a pack
REBUILD_PACKS_PER_INDEX = 2000  # packs listed in each index file rebuild_index writes


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Repository:
    """Reads and writes archive objects; all crypto goes through the envelope."""

    def __init__(self, dest: Destination, keys: ArchiveKeys, cache_root: Path) -> None:
        self.dest = dest
        self.keys = keys
        self.cache_dir = cache_root / keys.archive_id
        # Writes to the local cache that failed (Cairn then went on without them).
        self.cache_problems: list[str] = []
        self.cache = self._open_cache(self.cache_dir / "index.sqlite")
        self._tree = lru_cache(maxsize=4096)(self._load_tree)
        # Snapshots the last listing left out because they could not be read, by name.
        self.unreadable_snapshots: dict[str, IntegrityError] = {}
        # Index files the last sync could not read, by name (their packs were indexed
        # from the packs' own headers instead).
        self.unreadable_index_files: dict[str, IntegrityError] = {}

    # --- creating and opening -------------------------------------------------

    @staticmethod
    def check_creatable(dest: Destination) -> None:
        """Refuse a destination that holds something but no archive (or an archive another
        run is creating right now)."""
        if _creation_claimed(dest):
            return  # ``create`` waits for it
        if not dest.is_empty():
            raise ArchiveError(
                f"{dest.description} is not empty and holds no Cairn archive; "
                "choose an empty folder or an existing archive."
            )

    @classmethod
    def create(cls, dest: Destination, passphrase: str, cache_root: Path) -> Repository:
        """A new archive in the empty ``dest``. If another process creates one there at
        the same moment (a backup set's first run and a manual backup), the one that
        claimed the folder first creates it and the other opens it."""
        if _creation_claimed(dest):
            return cls._open_once_created(dest, passphrase, cache_root)
        cls.check_creatable(dest)
        claim = getattr(dest, "claim_creation", None)  # local folders; servers create keys
        if claim is not None and not claim():
            return cls._open_once_created(dest, passphrase, cache_root)
        keys = ArchiveKeys.generate()
        key_file = make_key_file(keys, passphrase)
        dest.put_bytes("keys", sha256_hex(key_file), key_file)
        return cls(dest, keys, cache_root)

    @classmethod
    def _open_once_created(cls, dest: Destination, passphrase: str,
                           cache_root: Path) -> Repository:
        deadline = time.monotonic() + CREATION_WAIT_S
        while not dest.list("keys"):
            if time.monotonic() > deadline:
                raise ArchiveError(
                    f"{dest.description} holds an unfinished archive: its keys folder is "
                    "empty (a run creating it was stopped). Remove that keys folder and run "
                    "again.")
            time.sleep(0.05)  # the other process is deriving its key
        return cls.open(dest, passphrase, cache_root)

    @classmethod
    def open(cls, dest: Destination, passphrase: str, cache_root: Path) -> Repository:
        names = dest.list("keys")
        if not names:
            raise NotAnArchive(f"{dest.description} is not a Cairn archive (it has no key files).")
        damaged = []
        for name in sorted(names):  # the order agent.archive.unlock_early expects
            doc = checked_key_file(name, dest.read("keys", name))
            if doc is None:
                damaged.append(name[:12])
                continue
            keys = unwrap_key_file(doc, passphrase)
            if keys is not None:
                return cls(dest, keys, cache_root)
        if len(damaged) == len(names):
            which = f"key file ({damaged[0]}) is" if len(damaged) == 1 else \
                f"key files ({', '.join(damaged)}) are"
            raise IntegrityError(
                f"This archive's {which} damaged, so no passphrase can open the archive; put "
                "back the keys folder from a copy of the archive.")
        skipped = f" ({len(damaged)} damaged key file skipped: {', '.join(damaged)})" \
            if damaged else ""
        raise WrongPassphrase(f"Wrong passphrase: it opens none of this archive's keys{skipped}.")

    def add_passphrase(self, passphrase: str) -> str:
        """Write another key file for the same master key; returns its name."""
        key_file = make_key_file(self.keys, passphrase)
        name = sha256_hex(key_file)
        self.dest.put_bytes("keys", name, key_file)
        return name

    def remove_other_passphrase_keys(self, keep: str, old_passphrase: str) -> int:
        """Remove key files (other than ``keep``) that ``old_passphrase`` opens."""
        removed = 0
        for name in self.dest.list("keys"):
            if name == keep:
                continue
            doc = checked_key_file(name, self.dest.read("keys", name))
            if doc is not None and unwrap_key_file(doc, old_passphrase):
                self.dest.remove("keys", name)
                removed += 1
        return removed

    def close(self) -> None:
        self.cache.close()

    # --- index ------------------------------------------------------------------

    def _open_cache(self, path: Path) -> IndexCache:
        try:
            return IndexCache(path)
        except CacheNotWritable as exc:
            self.note_cache_problem(exc)
            return IndexCache(IN_MEMORY)

    def sync_index(self, *, strict: bool = False) -> None:
        """``_sync_index``; if the local cache cannot be written (a full disk), again with
        a cache in memory."""
        try:
            self._sync_index(strict)
        except CacheNotWritable as exc:
            if self.cache.path == IN_MEMORY:
                raise
            self.note_cache_problem(exc)
            self.cache.close()
            self.cache = IndexCache(IN_MEMORY)
            self._sync_index(strict)

    def _sync_index(self, strict: bool) -> None:
        """Bring the cache up to date with the destination's live index files.

        An index file is live when it is stored and no index file read so far
        supersedes it (compaction); the cache is rebuilt when one it used is gone
        or turns out superseded.

        A damaged index file (it fails its hash or its authentication) is named in
        ``unreadable_index_files`` and the packs no readable index file lists are
        indexed from their own headers, in this cache only: reads and backups go
        on. With ``strict`` (prune, which must see every index file) it raises."""
        remote = set(self.dest.list("index"))
        if self.cache.index_files() - remote:
            self._forget_index()
        self.unreadable_index_files = {}
        self._load_index_files(remote, strict)
        if self.cache.index_files() & self.cache.superseded():
            self._forget_index()
            self.unreadable_index_files = {}
            self._load_index_files(remote, strict)
        if self.unreadable_index_files:
            self.cache.add(None, self._unindexed_packs())

    def _forget_index(self) -> None:
        """Clear the index cache, and the trees read so far: a prune removed packs, and
        trees only they held must not be taken for present (by a backup that reuses a
        folder's unchanged tree)."""
        self.cache.clear()
        self._tree.cache_clear()

    def _load_index_files(self, remote: set[str], strict: bool) -> None:
        superseded = self.cache.superseded()
        for name in sorted(remote - self.cache.index_files() - superseded):
            if name in superseded:
                continue  # named by an index file read earlier in this loop
            try:
                content = self.read_index_file(name)
            except IntegrityError as exc:
                if strict:
                    raise
                self.unreadable_index_files[name] = exc
                continue
            superseded.update(content.superseded)
            self.cache.add(name, content.packs, content.superseded)

    def read_index_file(self, name: str) -> IndexContent:
        """One index file, verified against its name and authenticated."""
        sealed = self.dest.read("index", name)
        if sha256_hex(sealed) != name:
            raise IntegrityError(f"Index file {name[:12]} is damaged: its content does not "
                                 "match its name.")
        try:
            return decode_index(self.keys, sealed)
        except IntegrityError as exc:
            reason = str(exc)
            raise IntegrityError(f"Index file {name[:12]} cannot be read: "
                                 f"{reason[:1].lower()}{reason[1:]}") from exc

    def _unindexed_packs(self) -> dict[str, list[PackEntry]]:
        """The headers of the stored packs this cache does not know; a pack whose header
        fails is left out (never reuse a bad pack; check --read-data reports it)."""
        stored = self.dest.list("data")
        found: dict[str, list[PackEntry]] = {}
        for name in sorted(set(stored) - self.cache.pack_names()):
            try:
                found[name] = self.read_pack_header(name, stored[name])
            except IntegrityError:
                continue
        return found

    def adopt_unindexed_packs(self) -> int:
        """Index packs a killed run stored but never indexed, so their blobs are reused."""
        found = self._unindexed_packs()
        if found:
            self.write_index(IndexContent(packs=found))
        return len(found)

    def rebuild_index(self, progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
        """Replace every index file with new ones read from the packs' own headers (hold
        the exclusive lock). Returns (packs indexed, packs whose header is damaged).

        Only the last new index file supersedes the old ones, so a run killed midway
        leaves the old index live beside what it wrote; run it again to finish."""
        stored = self.dest.list("data")
        old = sorted(name for name in self.dest.list("index") if _is_object_name(name))
        self.cache.clear()
        group: dict[str, list[PackEntry]] = {}
        indexed = damaged = 0
        for done, name in enumerate(sorted(stored), start=1):
            try:
                group[name] = self.read_pack_header(name, stored[name])
                indexed += 1
            except IntegrityError:
                damaged += 1
            if len(group) == REBUILD_PACKS_PER_INDEX:
                self.write_index(IndexContent(packs=group))
                group = {}
            if progress:
                progress(done, len(stored))
        if group or old:
            self.write_index(IndexContent(packs=group, superseded=old))
        for name in old:
            self.dest.remove("index", name)
        self.unreadable_index_files = {}
        return indexed, damaged

    def write_index(self, content: IndexContent) -> str:
        sealed = encode_index(self.keys, content)
        name = sha256_hex(sealed)
        self.dest.put_bytes("index", name, sealed)
        try:
            self.cache.add(name, content.packs, content.superseded)
        except CacheNotWritable as exc:  # stored: the next sync reads the file again
            self.note_cache_problem(exc)
        return name

    def warnings(self) -> list[str]:
        """What this repository passed over so far, as sentences for the user."""
        return ([f"{e} It is left out; `cairn check` reports the damage."
                 for e in self.unreadable_snapshots.values()]
                + [f"{e} The packs it listed were read from their own headers; "
                   "`cairn rebuild-index` replaces the index."
                   for e in self.unreadable_index_files.values()]
                + [f"{p} Cairn went on without it: the archive holds everything it caches."
                   for p in self.cache_problems])

    def note_cache_problem(self, exc: CacheNotWritable) -> None:
        """Remember (once) that the local cache could not take a write the archive no
        longer needs it for; the caller's command reports it as a warning."""
        if str(exc) not in self.cache_problems:
            self.cache_problems.append(str(exc))

    def read_pack_header(self, pack: str, size: int) -> list[PackEntry]:
        tail_len = min(size, 64 * 1024)
        tail = self.dest.read("data", pack, size - tail_len, tail_len)
        length = header_length(tail, size)
        if length + 4 > len(tail):
            tail = self.dest.read("data", pack, size - length - 4, length + 4)
        return decode_header(self.keys, tail[len(tail) - 4 - length : len(tail) - 4], size)

    # --- blobs and trees ----------------------------------------------------------

    def locate(self, blob_id: bytes) -> BlobLocation:
        loc = self.cache.lookup(blob_id)
        if loc is None:
            raise IntegrityError(f"Blob {blob_id.hex()[:16]} is not in the archive's index.")
        return loc

    def read_blob(self, blob_id: bytes, loc: BlobLocation | None = None) -> bytes:
        loc = loc or self.locate(blob_id)
        sealed = self.dest.read("data", loc.pack, loc.offset, loc.length)
        if len(sealed) != loc.length:
            raise IntegrityError(f"Pack {loc.pack[:12]} is shorter than its index says.")
        return open_blob(self.keys, loc.type, blob_id, sealed, loc.raw_length)

    def _load_tree(self, tree_id: str) -> tuple[dict, ...]:
        return tuple(decode_tree(self.read_blob(bytes.fromhex(tree_id))))

    def tree(self, tree_id: str) -> tuple[dict, ...]:
        """A directory's nodes (cached; treat them as read-only)."""
        return self._tree(tree_id)

    def trees(self, tree_ids: Iterable[str],
              failed: dict[str, IntegrityError]) -> dict[str, tuple[dict, ...]]:
        """Many directories' nodes at once: one index query for all, and one read per pack
        for the blobs close together in it (a restore loads a whole level of folders
        this way, instead of one lookup and one read per folder). A tree that is
        missing or damaged goes to ``failed`` (tree ID → why) and the others load."""
        wanted = {bytes.fromhex(tree_id) for tree_id in tree_ids}
        found = self.cache.lookup_many(wanted)
        for blob_id in wanted - found.keys():
            failed[blob_id.hex()] = IntegrityError(
                f"Blob {blob_id.hex()[:16]} is not in the archive's index.")
        by_pack: dict[str, list[tuple[bytes, BlobLocation]]] = {}
        for blob_id, loc in found.items():
            by_pack.setdefault(loc.pack, []).append((blob_id, loc))
        out: dict[str, tuple[dict, ...]] = {}
        for pack, blobs in by_pack.items():
            blobs.sort(key=lambda item: item[1].offset)
            for start, end, run in _read_runs(blobs):
                span = self.dest.read("data", pack, start, end - start)
                with memoryview(span) as view:
                    for blob_id, loc in run:
                        try:
                            if loc.offset + loc.length > start + len(span):
                                raise IntegrityError(
                                    f"Pack {pack[:12]} is shorter than its index says.")
                            sealed = view[loc.offset - start : loc.offset - start + loc.length]
                            plain = open_blob(self.keys, loc.type, blob_id, sealed,
                                              loc.raw_length)
                            out[blob_id.hex()] = tuple(decode_tree(plain))
                        except IntegrityError as exc:
                            failed[blob_id.hex()] = exc
        return out

    # --- snapshots ------------------------------------------------------------------

    def save_snapshot(self, snap: Snapshot) -> str:
        sealed = seal(self.keys, ObjectType.SNAPSHOT, NO_ID, snap.encode())
        snap.id = sha256_hex(sealed)
        self.dest.put_bytes("snapshots", snap.id, sealed)
        return snap.id

    def load_snapshot(self, name: str) -> Snapshot:
        sealed = self._sealed_snapshot(name)
        if sha256_hex(sealed) != name:
            raise IntegrityError(f"Snapshot {name[:8]} is damaged: its content does not match "
                                 "its name.")
        try:
            plain = open_sealed(self.keys, ObjectType.SNAPSHOT, NO_ID, sealed, MAX_SNAPSHOT_SIZE)
        except IntegrityError as exc:
            reason = str(exc)
            raise IntegrityError(f"Snapshot {name[:8]} cannot be read: "
                                 f"{reason[:1].lower()}{reason[1:]}") from exc
        return Snapshot.decode(plain, name)

    @property
    def _keeps_snapshots(self) -> bool:
        """Snapshots are kept locally for a server, not for a local folder (``root``)."""
        return getattr(self.dest, "root", None) is None

    def _sealed_snapshot(self, name: str) -> bytes:
        """A snapshot object as stored; from a server, kept in the local cache (still
        sealed) once read, since snapshots never change: a backup or a listing then
        fetches only the snapshots new since the last run, not hundreds."""
        if not self._keeps_snapshots:
            return self.dest.read("snapshots", name)  # a local folder: nothing to save
        kept = self.cache_dir / "snapshots" / name
        try:
            sealed = kept.read_bytes()
            if sha256_hex(sealed) == name:
                return sealed
        except OSError:
            pass
        sealed = self.dest.read("snapshots", name)
        if sha256_hex(sealed) == name:  # only an intact copy is kept
            with contextlib.suppress(OSError):
                kept.parent.mkdir(parents=True, exist_ok=True)
                partial = kept.with_suffix(".tmp")
                partial.write_bytes(sealed)
                partial.replace(kept)
        return sealed

    def _forget_kept_snapshots(self, stored: Iterable[str]) -> None:
        """Drop local copies of snapshots no longer stored (pruned, forgotten)."""
        folder = self.cache_dir / "snapshots"
        if not self._keeps_snapshots or not folder.is_dir():
            return
        for gone in {p.name for p in folder.iterdir()} - set(stored):
            with contextlib.suppress(OSError):
                (folder / gone).unlink()

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot, newest first; raises ``IntegrityError`` if one cannot be read
        (for prune, which must know everything a snapshot keeps alive)."""
        snaps = self.readable_snapshots()
        for error in self.unreadable_snapshots.values():
            raise error
        return snaps

    def readable_snapshots(self) -> list[Snapshot]:
        """The snapshots that can be read, newest first.

        A damaged snapshot file (it fails its name or its authentication) is left
        out and named in ``unreadable_snapshots``, so that one bad file does not stop
        every backup and restore; ``cairn check`` reports it."""
        snaps, unreadable = [], {}
        stored = self.dest.list("snapshots")
        for name in stored:
            try:
                snaps.append(self.load_snapshot(name))
            except IntegrityError as exc:
                unreadable[name] = exc
        self.unreadable_snapshots = unreadable
        self._forget_kept_snapshots(stored)
        return sorted(snaps, key=lambda s: s.time, reverse=True)

    def find_snapshot(self, ref: str) -> Snapshot:
        """Resolve ``latest`` (the newest readable backup) or a unique ID prefix (at
        least 4 hex digits)."""
        snaps = self.readable_snapshots()
        if ref == "latest":
            backups = [s for s in snaps if not s.is_carry]
            if not backups:
                raise SnapshotNotFound("The archive has no snapshots yet." if not
                                       self.unreadable_snapshots else
                                       "The archive has no readable snapshot.")
            return backups[0]
        prefix = ref.lower() if len(ref) >= 4 else None
        matches = [s for s in snaps if prefix and s.id.startswith(prefix)]
        damaged = [error for name, error in self.unreadable_snapshots.items()
                   if prefix and name.startswith(prefix)]
        if len(matches) + len(damaged) == 1 and damaged:
            raise IntegrityError(f"{damaged[0]} `cairn check` reports the damage.")
        if len(matches) + len(damaged) != 1:
            what = "matches several snapshots" if matches or damaged else "matches no snapshot"
            raise SnapshotNotFound(f"{ref!r} {what}; see `cairn snapshots`.")
        return matches[0]


def _is_object_name(name: str) -> bool:
    return len(name) == 64 and not name.strip("0123456789abcdef")


def _creation_claimed(dest: Destination) -> bool:
    claimed = getattr(dest, "creation_claimed", None)
    return bool(claimed and claimed())


def _read_runs(blobs: list[tuple[bytes, BlobLocation]]
               ) -> Iterator[tuple[int, int, list[tuple[bytes, BlobLocation]]]]:
    """Blobs of one pack (sorted by offset) grouped into byte ranges worth one read each:
    a gap of more than READ_GAP bytes, or a range beyond READ_SPAN, starts a new one."""
    run: list[tuple[bytes, BlobLocation]] = []
    start = end = 0
    for item in blobs:
        loc = item[1]
        if run and (loc.offset - end > READ_GAP or loc.offset + loc.length - start > READ_SPAN):
            yield start, end, run
            run = []
        if not run:
            start = end = loc.offset
        run.append(item)
        end = max(end, loc.offset + loc.length)
    if run:
        yield start, end, run
