"""SIGTERM (a cluster scheduler's notice) and SIGINT (Ctrl-C) during training: the loop finishes the step in
progress, writes a checkpoint at it and then stops with the usual status (143 / 130, errors.cli_errors), so that
the same command resumes exactly where the run stopped. A second signal stops at once (the last checkpoint on
disk stays good: checkpoints are written atomically)."""
from __future__ import annotations

import signal
import threading

from ..errors import Terminated


class DeferredStop:
    """While active (``with``), SIGTERM and SIGINT are recorded in ``signum`` instead of raising."""

    def __init__(self):
        self.signum = 0
        self._previous = {}

    def __enter__(self):
        # handlers can only be set from the main thread; elsewhere signals keep their behaviour
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                self._previous[s] = signal.signal(s, self._record)
        return self

    def __exit__(self, exc_type, exc, tb):
        for s, handler in self._previous.items():
            if handler is not None:
                signal.signal(s, handler)
        restored, self._previous = bool(self._previous), {}
        if exc_type is None and self.signum and restored:
            # arrived after the loop last looked (its checkpoint is on disk): not lost, delivered to the caller's
            # handler now
            signal.raise_signal(self.signum)
        return False

    def _record(self, signum, frame):
        if self.signum:  # asked twice: stop now
            raise stop_exception(signum, "stopped at once (second signal)")
        self.signum = signum


def stop_exception(signum: int, detail: str) -> BaseException:
    """The exception cli_errors turns into exit 130 (SIGINT) or 143 (SIGTERM), carrying ``detail``."""
    return KeyboardInterrupt(detail) if signum == signal.SIGINT else Terminated(signum, detail)
