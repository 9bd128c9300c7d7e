"""Facts about the machine the runtime runs on, for records that must say where a figure was measured."""
from __future__ import annotations

from pathlib import Path


def cpu_model() -> str | None:
    """The CPU's model name as Linux reports it (/proc/cpuinfo), or None where that cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
