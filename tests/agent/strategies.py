"""Shared hypothesis settings and strategies for the property tests of the pure stages."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from agent.codec.envelope import ObjectType

#: Modest example counts and no per-example deadline: this runs on a shared 2-core box.
props = settings(max_examples=100, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
few = settings(props, max_examples=25)

#: Cheap Argon2id parameters for unit tests of key files (the CLI uses the real defaults).
FAST_KDF = {"algorithm": "argon2id", "memory_kib": 64, "iterations": 1, "lanes": 1}

object_types = st.sampled_from(list(ObjectType))
blob_ids = st.binary(min_size=32, max_size=32)
#: IDs with trailing NUL bytes, which byte-string containers like numpy's "S" dtype strip.
nul_tailed_ids = st.binary(min_size=0, max_size=32).map(lambda b: b.ljust(32, b"\0"))


def random_bytes(size: int, seed: int = 0) -> bytes:
    """Deterministic incompressible bytes."""
    return random.Random(seed).randbytes(size)


@st.composite
def payloads(draw: st.DrawFn, max_size: int = 256 * 1024) -> bytes:
    """Compressible text, incompressible noise, or a mix of both."""
    size = draw(st.integers(0, max_size))
    kind = draw(st.sampled_from(["zeros", "text", "noise", "mixed"]))
    if kind == "zeros":
        return bytes(size)
    if kind == "text":
        return (b"the quick brown fox jumps over the lazy dog " * (size // 44 + 1))[:size]
    noise = random_bytes(size, draw(st.integers(0, 2**32)))
    if kind == "noise":
        return noise
    return noise[: size // 2] + bytes(size - size // 2)
