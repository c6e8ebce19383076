"""A backup history used by several prune tests, and what the default policy does to it."""

from __future__ import annotations

import random

from tests.prune.conftest import History, at

NOW = at("2027-06-15 12:00")
BIG = random.Random(7).randbytes(300_000)

# label, time, changes, excludes
STEPS = [
    ("s1", "2025-03-01 10:00", {"keep.txt": "K", "a.txt": "a1", "notes.txt": "N"}, ()),
    ("s2", "2025-03-20 10:00", {"a.txt": "a2", "notes.txt": None}, ()),
    ("s3", "2025-05-10 10:00", {"a.txt": "a3"}, ()),
    ("s4", "2026-11-02 08:00", {"a.txt": "a4", "big.bin": BIG}, ()),
    ("s5", "2026-11-05 08:00", {"big.bin": None}, ()),
    ("s6", "2026-11-09 01:00", {"secret.log": "L1"}, ()),
    ("s7", "2027-05-01 03:00", {"secret.log": "L2", "a.txt": "a5",
                                "scratch/tmp1": "T1", "scratch/tmp2": "T2"}, ()),
    ("s8", "2027-05-01 09:00", {"scratch": None}, ("*.log",)),  # secret.log newly excluded
    ("s9", "2027-06-13 10:10", {"a.txt": "a6"}, ("*.log",)),
    ("s10", "2027-06-13 10:40", {"a.txt": "a7"}, ("*.log",)),
    ("s11", "2027-06-15 06:00", {"a.txt": "a8"}, ("*.log",)),
    ("s12", "2027-06-15 11:00", {"new.txt": "fresh"}, ("*.log",)),
]
# By the default policy at NOW: s1 (March 2025 has s2), s4 (ISO week 2026-W45 has s5),
# s7 (2027-05-01 has s8) and s9 (hour 2027-06-13 10:00 has s10) go.
FORGOTTEN = {"s1", "s4", "s7", "s9"}
CARRIED = {  # path -> (content, deleted at: the time of the next snapshot)
    "notes.txt": (b"N", "2025-03-20 10:00"),
    "big.bin": (BIG, "2026-11-05 08:00"),
    "secret.log": (b"L2", "2027-05-01 09:00"),
    "scratch/tmp1": (b"T1", "2027-05-01 09:00"),
    "scratch/tmp2": (b"T2", "2027-05-01 09:00"),
}


def make(history: History, steps=STEPS) -> None:
    for label, when, changes, excludes in steps:
        history.write(changes)
        history.backup(label, at(when), excludes)
