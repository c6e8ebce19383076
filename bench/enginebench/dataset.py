"""Build the benchmark's real data set from PyPI downloads, cached under bench/.data/.

A data set is several releases of large source trees (sdists, extracted) plus two
versions of a binary wheel, kept as the .whl file and extracted. Downloads are
cached in `<data>/downloads/`; an extracted set is reused while its recorded spec
matches, so a second run downloads and extracts nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import BenchError

# Wheels are fetched for one fixed platform so every machine benchmarks the same bytes.
WHEEL_PLATFORM_ARGS = (
    "--only-binary", ":all:",
    "--platform", "manylinux_2_28_x86_64",
    "--platform", "manylinux2014_x86_64",
    "--python-version", "3.11",
)


@dataclass(frozen=True)
class Item:
    """One PyPI release in a data set: an sdist (extracted) or a wheel (kept and extracted)."""

    project: str
    version: str
    kind: str  # "sdist" or "wheel"


def _sdist(project: str, version: str) -> Item:
    return Item(project, version, "sdist")


def _wheel(project: str, version: str) -> Item:
    return Item(project, version, "wheel")


SETS: dict[str, tuple[Item, ...]] = {
    # ~150 MB, ~16k files: two Django releases, sympy, two lxml wheels.
    "small": (
        _sdist("Django", "5.0.14"), _sdist("Django", "5.2.8"), _sdist("sympy", "1.13.3"),
        _wheel("lxml", "5.3.0"), _wheel("lxml", "5.4.0"),
    ),
    # ~1 GB, ~36k files: four Django releases, two sympy releases, two PySide6 wheels.
    "full": (
        _sdist("Django", "4.2.26"), _sdist("Django", "5.0.14"), _sdist("Django", "5.1.14"),
        _sdist("Django", "5.2.8"), _sdist("sympy", "1.12.1"), _sdist("sympy", "1.13.3"),
        _wheel("PySide6-Essentials", "6.8.3"), _wheel("PySide6-Essentials", "6.9.3"),
    ),
}


def normalize(name: str) -> str:
    """PEP 503-style name as it appears in file names: lower case, runs of -_. as '_'."""
    return re.sub(r"[-_.]+", "_", name).lower()


def find_download(downloads: Path, item: Item) -> Path | None:
    """Return the cached archive for `item`, whatever case pip gave its file name."""
    suffix = "-" if item.kind == "wheel" else ".tar.gz"
    wanted = f"{normalize(item.project)}-{item.version}{suffix}"
    if not downloads.is_dir():
        return None
    for path in sorted(downloads.iterdir()):
        name, _, rest = path.name.partition("-")
        if f"{normalize(name)}-{rest}".lower().startswith(wanted):
            if item.kind == "wheel" and not path.name.endswith(".whl"):
                continue
            return path
    return None


def download(downloads: Path, item: Item) -> Path:
    """Fetch `item` into `downloads` with pip unless it is already there."""
    cached = find_download(downloads, item)
    if cached is not None:
        return cached
    downloads.mkdir(parents=True, exist_ok=True)
    kind_args = ("--no-binary", ":all:") if item.kind == "sdist" else WHEEL_PLATFORM_ARGS
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--no-deps", *kind_args, "-d", str(downloads), f"{item.project}=={item.version}"]
    print(f"[bench] downloading {item.project} {item.version} ({item.kind}) from PyPI",
          file=sys.stderr, flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = find_download(downloads, item)
    if done.returncode != 0 or found is None:
        detail = (done.stderr.strip().splitlines() or ["pip printed nothing"])[-1]
        raise BenchError(f"Could not download {item.project}=={item.version} with pip: {detail}")
    return found


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # Python < 3.11.4; the archives come from PyPI over HTTPS
            tar.extractall(dest)


def _add_item(root: Path, archive: Path, item: Item) -> None:
    if item.kind == "sdist":
        _extract_tar(archive, root / "src")
        return
    wheels = root / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    shutil.copy2(archive, wheels / archive.name)
    with zipfile.ZipFile(archive) as wheel:
        wheel.extractall(root / "wheels-extracted" / f"{normalize(item.project)}-{item.version}")


def ensure_dataset(data_dir: Path, size: str) -> Path:
    """Return the folder holding data set `size`, downloading and extracting it if needed."""
    items = SETS[size]
    spec = json.dumps([asdict(item) for item in items], sort_keys=True)
    root = data_dir / size
    spec_file = data_dir / f"{size}.spec.json"
    if root.is_dir() and spec_file.is_file() and spec_file.read_text() == spec:
        return root
    archives = [download(data_dir / "downloads", item) for item in items]
    partial = data_dir / f"{size}.partial"
    for stale in (partial, root):
        if stale.exists():
            shutil.rmtree(stale)
    print(f"[bench] extracting the {size} data set into {root}", file=sys.stderr, flush=True)
    for archive, item in zip(archives, items, strict=True):
        _add_item(partial, archive, item)
    partial.rename(root)
    spec_file.write_text(spec)
    return root
