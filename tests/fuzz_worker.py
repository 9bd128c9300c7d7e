"""Child process of test_fuzz_decode: decodes the given files one by one and reports each on stdout.

A line per case, flushed at once, so the parent can tell which case hung or crashed the interpreter:
    START i / OK i <shape> / ERR i <message> / FLAGGED i <decoder warning> / BAD i <exception type>: <message>
"""
from __future__ import annotations

import logging
import sys
import warnings

from memsr_deploy.errors import MemsrError
from memsr_deploy.imageio import read_picture


class _Keep(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record.getMessage())


def main(paths: list[str]) -> None:
    vips_log = _Keep()
    logging.getLogger("pyvips").addHandler(vips_log)
    logging.getLogger("pyvips").propagate = False
    for i, path in enumerate(paths):
        print(f"START {i}", flush=True)
        vips_log.records.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                pixels = read_picture(path).pixels
            except MemsrError as e:
                msg = str(e)
                print(f"{'ERR' if len(msg.splitlines()) == 1 else 'BAD'} {i} {msg.splitlines()[0]}", flush=True)
                continue
            except Exception as e:  # noqa: BLE001 - anything but MemsrError is a failure the parent reports
                print(f"BAD {i} {e.__class__.__name__}: {str(e).splitlines()[:1]}", flush=True)
                continue
        flagged = [m for m in vips_log.records if "only the first" not in m]
        flagged += [str(w.message) for w in caught if "only the first" not in str(w.message)]
        if flagged:
            print(f"FLAGGED {i} {flagged[0]!r}", flush=True)
        else:
            print(f"OK {i} {pixels.shape}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
