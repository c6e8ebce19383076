"""Terminal progress for long CLI operations (rich), fed by sampling ``Progress``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from agent.engine.progress import Progress


@contextmanager
def shown(progress: Progress, label: str, enabled: bool) -> Iterator[None]:
    """Show a bar for ``progress`` on stderr while the body runs (if ``enabled``)."""
    if not enabled:
        yield
        return
    from rich.console import Console  # imported only when a bar is shown: ~40 ms
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as RichProgress

    console = Console(stderr=True)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TextColumn("{task.fields[files]}"), TimeRemainingColumn())
    stop = threading.Event()
    with RichProgress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=None, files="")

        def refresh() -> None:
            while not stop.wait(0.2):
                snap = progress.snapshot()
                total = snap["bytes_total"] if snap["totals_known"] else None
                files = f"{snap['files_done']}/{snap['files_total'] or '?'} files"
                bar.update(task, completed=snap["bytes_done"], total=total, files=files,
                           description=f"{label} ({snap['phase']})")

        thread = threading.Thread(target=refresh, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
