"""``python -m memsr_deploy.profiler.peak_rss CMD...``: run CMD, then print its peak RSS in bytes (the kernel's
high-water mark for that process and the children it waited for), exiting with CMD's status.

Measured from this small process on purpose: Linux folds the RSS high-water mark of the address space a child
leaves at exec into the child's own (``ru_maxrss``), and a child forked from a large process (a test runner
with torch loaded, a benchmark with backends open) would report the parent's size. Here the parent is a bare
interpreter of a few MB, below anything measured.
"""
from __future__ import annotations

import os
import subprocess
import sys


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m memsr_deploy.profiler.peak_rss CMD [ARG...]", file=sys.stderr)
        return 2
    child = subprocess.Popen(argv)
    _, status, usage = os.wait4(child.pid, 0)
    print(usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024))  # bytes on macOS, KiB on Linux
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
