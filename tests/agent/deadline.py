"""Run a call that might hang, for tests that must fail rather than hang with it."""

from __future__ import annotations

import threading
from collections.abc import Callable


def call_with_deadline(call: Callable[[], object], timeout: float) -> tuple[bool, object]:
    """Run ``call`` on a daemon thread for at most ``timeout`` seconds.

    Returns ``(True, what it returned or the exception it raised)``, or ``(False, None)``
    when it was still running at the deadline (its thread is left behind).
    """
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout)
    return (True, outcome[0]) if outcome else (False, None)
