"""Run an iterator in a background thread, a few items ahead of its consumer.

Used to overlap the stages of an upscaling job: decoding the next rows, computing a band and encoding the last
one run at once (numpy, the inference runtimes and libvips release the GIL while they work).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

_DONE = object()


def ahead(items: Iterable, depth: int = 2) -> Iterator:
    """Yield ``items`` in order, produced by a worker thread at most ``depth`` items ahead. An exception in
    the worker is raised in the consumer; a consumer that stops early stops (and closes) the worker."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        it = iter(items)
        try:
            for item in it:
                if not put((True, item)):
                    return
            put((True, _DONE))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            put((False, e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="memsr-ahead", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        worker.join()
