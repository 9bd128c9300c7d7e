"""Facts about the machine the runtime runs on, for records that must say where a figure was measured."""
from __future__ import annotations

import platform
from pathlib import Path


def _cpuinfo(field: str) -> str | None:
    """The first value of ``field`` in Linux's /proc/cpuinfo, or None where that cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str | None:
    """The CPU's model name as Linux reports it, or None where that cannot be read."""
    return _cpuinfo("model name")


def machine() -> str:
    """'<cores> x <CPU model>', the line a benchmark's record names its machine by."""
    import os
    return f"{os.cpu_count()} x {cpu_model() or platform.processor() or platform.machine()}"


def int8_dot_saturates() -> bool:
    """Whether ONNX Runtime's uint8 x int8 convolution can overflow on this CPU: an x86 CPU without VNNI multiplies
    through pmaddubsw, which adds two u8 * s8 products into a saturating int16, so large activations against
    large weights come out wrong (seen here: 16 dB from the fp32 output on an AVX2-only EPYC). uint8 weights take
    ORT's other kernel there, with the same values. VNNI (vpdpbusd) and ARM's dot products do not saturate."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    flags = _cpuinfo("flags")
    # unknown x86: the exact kernel costs speed, never correctness
    return flags is None or not set(flags.split()) & {"avx512_vnni", "avx_vnni", "avx_vnni_int8"}
