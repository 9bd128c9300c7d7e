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
    """Yields ``items`` in order, produced by a worker thread at most ``depth`` items ahead: items made or being
    made that the consumer has not taken yet, so with the one the consumer holds at most ``depth + 1`` are
    alive. (A queue of ``depth`` items lets the worker make one more meanwhile; in the upscaling pipeline the
    encoder takes each band long before the next is made, so the 100 MP x2 peak did not move: 395 against 397
    MB.) An exception in the worker is raised in the consumer. ``stop()`` (from any thread) ends both sides
    promptly: the consumer raises ``Stopped``, the worker stops after its current item."""

    def __init__(self, items: Iterable, depth: int = 2):
        self._q: queue.Queue = queue.Queue()
        self._room = threading.Semaphore(max(1, depth))   # taken before an item is made, given back when taken
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

    def _make_room(self) -> bool:
        while not self._stop.is_set():
            if self._room.acquire(timeout=_POLL):
                return True
        return False

    def _work(self) -> None:
        it = iter(self._items)
        try:
            while self._make_room():
                try:
                    item = next(it)
                except StopIteration:
                    self._put((True, _DONE))
                    return
                if not self._put((True, item)):
                    return
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
        self._room.release()
        return item

    def stop(self) -> None:
        """End the worker (after its current item) and wait for it."""
        self._stop.set()
        if self._worker is not threading.current_thread():
            self._worker.join()

    close = stop


def ahead(items: Iterable, depth: int = 2) -> Ahead:
    return Ahead(items, depth)
