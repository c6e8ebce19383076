"""A BlobStore wrapper that fails chosen calls, for retry and resume tests.

    store = FaultyBlobStore(FilesystemBlobStore(root))
    store.fail("put", times=2)                   # the next two puts raise StorageError
    store.fail("get", skip=3, times=None)        # every get after the third fails
    store.fail("put", fraction=0.3, times=None)  # about 30 % of puts fail (seeded)
    store.fail("put", after=True)                # the put is stored, then the call fails

``after=True`` models a lost response: the inner call completed, the caller
sees an error, and a retry must be idempotent. A failing ``put`` before the
inner call still consumes the body, as a dropped upload would. Each fault can
be limited to calls whose arguments satisfy ``when``. Thread-safe.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from server.storage.base import BlobStore, ObjectInfo, StorageError

METHODS = frozenset({"put", "get", "size", "list", "trash", "restore_from_trash",
                     "purge_trash", "delete_namespace", "namespace_bytes"})


def injected_error(method: str) -> Exception:
    """The default error a fault raises."""
    return StorageError(f"Injected fault in {method}.")


@dataclass
class Fault:
    """One rule: which calls of a method fail, how often, and with what."""

    method: str
    skip: int = 0                     # let this many matching calls through first
    times: int | None = 1             # fail this many calls, None: without end
    fraction: float = 1.0             # probability that an eligible call fails
    after: bool = False               # run the inner call first, then fail
    when: Callable[..., bool] | None = None  # predicate over the call's arguments
    error: Callable[[str], Exception] = injected_error
    seen: int = 0
    fired: int = 0

    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times


class FaultyBlobStore:
    """Wraps a BlobStore; calls go through unchanged unless a Fault picks them."""

    def __init__(self, inner: BlobStore, *, seed: int = 0) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self._faults: list[Fault] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def fail(self, method: str, **options: Any) -> Fault:
        """Add a fault for method (options: the fields of Fault); return it."""
        if method not in METHODS:
            raise ValueError(f"Unknown BlobStore method {method!r}.")
        fault = Fault(method, **options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault; calls go straight through again."""
        with self._lock:
            self._faults.clear()

    def _pick(self, method: str, args: tuple[Any, ...]) -> Fault | None:
        """Count the call and return the fault that fires for it, if any."""
        with self._lock:
            self.calls[method] += 1
            for fault in self._faults:
                if fault.method != method or fault.exhausted():
                    continue
                if fault.when is not None and not fault.when(*args):
                    continue
                fault.seen += 1
                if fault.seen <= fault.skip or self._random.random() >= fault.fraction:
                    continue
                fault.fired += 1
                self.injected[method] += 1
                return fault
        return None

    def _call(self, method: str, *args: Any) -> Any:
        fault = self._pick(method, args)
        if fault is None:
            return getattr(self.inner, method)(*args)
        if fault.after:
            result = getattr(self.inner, method)(*args)
            if method == "list":
                list(result)
        elif method == "put":
            body: BinaryIO = args[3]
            while body.read(1 << 20):
                pass
        raise fault.error(method)

    def put(self, namespace: str, kind: str, name: str, body: BinaryIO) -> int:
        return self._call("put", namespace, kind, name, body)

    def get(self, namespace: str, kind: str, name: str,
            offset: int = 0, length: int | None = None) -> bytes:
        return self._call("get", namespace, kind, name, offset, length)

    def size(self, namespace: str, kind: str, name: str) -> int:
        return self._call("size", namespace, kind, name)

    def list(self, namespace: str, kind: str) -> Iterator[ObjectInfo]:
        return self._call("list", namespace, kind)

    def trash(self, namespace: str, kind: str, name: str) -> None:
        self._call("trash", namespace, kind, name)

    def restore_from_trash(self, namespace: str, kind: str, name: str) -> None:
        self._call("restore_from_trash", namespace, kind, name)

    def purge_trash(self, namespace: str, older_than_s: float) -> int:
        return self._call("purge_trash", namespace, older_than_s)

    def delete_namespace(self, namespace: str) -> None:
        self._call("delete_namespace", namespace)

    def namespace_bytes(self, namespace: str) -> int:
        return self._call("namespace_bytes", namespace)
