"""Run an iterator in a background thread, a few items ahead of its consumer.

Used to overlap the stages of an upscaling job: decoding the next rows, computing a band and encoding the last
one run at once (numpy, the inference runtimes and libvips release the GIL while they work).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterable

_DONE = object()
_POLL = 0.05  # seconds between checks of the stop flag while waiting


class Stopped(Exception):
    """Raised in the consumer of an ``Ahead`` that was stopped from another thread."""


class Ahead:
    """Yields ``items`` in order, produced by a worker thread at most ``depth`` items ahead. An exception in
    the worker is raised in the consumer. ``stop()`` (from any thread) ends both sides promptly: the consumer
    raises ``Stopped``, the worker stops after its current item."""

    def __init__(self, items: Iterable, depth: int = 2):
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._items = items
        self._finished = False
        self._worker = threading.Thread(target=self._work, name="memsr-ahead", daemon=True)
        self._worker.start()

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(entry, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        it = iter(self._items)
        try:
            for item in it:
                if not self._put((True, item)):
                    return
            self._put((True, _DONE))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put((False, e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def __iter__(self):
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        while True:
            if self._stop.is_set():
                raise Stopped("stopped")
            try:
                ok, item = self._q.get(timeout=_POLL)
                break
            except queue.Empty:
                continue
        if not ok:
            self._finished = True
            raise item
        if item is _DONE:
            self._finished = True
            raise StopIteration
        return item

    def stop(self) -> None:
        """End the worker (after its current item) and wait for it."""
        self._stop.set()
        if self._worker is not threading.current_thread():
            self._worker.join()

    close = stop


def ahead(items: Iterable, depth: int = 2) -> Ahead:
    return Ahead(items, depth)
