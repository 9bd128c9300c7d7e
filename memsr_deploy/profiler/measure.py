"""Measured peak memory: one fresh subprocess per run, peak read from outside the framework's allocator.

Each run is ``python -m memsr_deploy.profiler.measure_worker`` with a JSON job. The worker loads the model, runs a
tiny warm-up (so lazily loaded kernels, thread pools and the framework's one-off buffers are in the baseline),
resets the kernel's RSS high-water mark (``/proc/self/clear_refs`` <- 5), records the baseline RSS, makes the
input, runs once and reports ``VmHWM - baseline``. That difference counts the input (the caller holds it), every
activation and any backend workspace, and nothing the process had before.

Settings that make the number faithful (and are part of what is reported):
* ``MALLOC_MMAP_THRESHOLD_=65536`` in the worker's environment: every buffer of 64 KiB or more is its own mmap,
  returned to the kernel on free. Glibc's default threshold adapts upward (to 32 MiB) after frees, so freed
  mid-size maps would otherwise stay resident and the RSS would remember tensors that are dead.
* ONNX Runtime: ``enable_cpu_mem_arena=False`` (the arena keeps freed blocks, so the RSS would show the arena's
  growth policy, not liveness) and ``enable_mem_pattern=False`` (mem-pattern pre-allocates one block sized by a
  plan from an earlier run of the same shape; off, each tensor is allocated when made and freed after its last
  reader, which is the liveness being predicted). Outputs are kept as OrtValues (no numpy copy).
* One intra-op thread by default: per-thread scratch of the conv kernels is small but grows with threads.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, asdict

from ..errors import MemsrError
from ..formats.vocabulary import RUNTIME_BACKENDS

MMAP_THRESHOLD = 65536
BACKENDS = tuple(b for b in RUNTIME_BACKENDS if b != "auto")  # measured runtimes


@dataclass
class Measurement:
    backend: str
    height: int
    width: int
    peak_bytes: int        # VmHWM - baseline RSS
    baseline_bytes: int
    hwm_bytes: int
    seconds: float         # the measured forward pass only
    threads: int
    settings: dict

    def to_dict(self) -> dict:
        return asdict(self)


def _check_model(model, backend: str) -> None:
    """Fail here, in one line, rather than after a subprocess has imported a framework."""
    from pathlib import Path
    if backend == "torch":
        from ..formats.model_file import _registry_names, read_description
        if str(model) not in _registry_names():
            read_description(model)
    elif not Path(model).is_file():
        raise MemsrError(f"{backend} model file not found", model)


def measure_peak(model, backend: str, height: int, width: int, threads: int = 1, timeout: float = 1800,
                 tile: int = 0, dtype: str = "fp32", halo: int | None = None, scale: int | None = None,
                 disabled_optimizers: tuple[str, ...] = (), mem_reuse: bool = True) -> Measurement:
    """Run ``model`` (model stem/name for torch, .onnx / .tflite path otherwise) once in a fresh process.
    ``tile`` > 0: the whole image's tile loop (``runtime.tiled``); ONNX Runtime then needs the ``halo`` and
    ``scale`` (a model description's own are used on torch). ``disabled_optimizers``: ONNX Runtime graph
    transformers to leave out and ``mem_reuse=False`` its allocation planner's buffer reuse (diagnostics: see
    ``formats.runtime_memory``)."""
    if backend not in BACKENDS:
        raise MemsrError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if dtype != "fp32" and backend == "torch":
        raise MemsrError(f"measured PyTorch CPU runs are fp32 only (asked {dtype}); export an {dtype} artefact "
                         "and measure it with onnxruntime or litert")
    _check_model(model, backend)
    if tile > 0 and backend == "litert":
        raise MemsrError("tiled runs are measured on torch and onnxruntime, not litert", model)
    if tile > 0 and backend == "onnxruntime" and (halo is None or scale is None):
        raise MemsrError("a tiled ONNX Runtime measurement needs the model's halo and scale", model)
    job = {"model": str(model), "backend": backend, "height": int(height), "width": int(width),
           "threads": int(threads), "tile": int(tile), "halo": halo, "scale": scale,
           "disabled_optimizers": list(disabled_optimizers), "mem_reuse": bool(mem_reuse)}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD), OMP_NUM_THREADS=str(threads),
               PYTHONHASHSEED="0")
    try:
        proc = subprocess.run([sys.executable, "-m", "memsr_deploy.profiler.measure_worker", json.dumps(job)],
                              capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MemsrError(f"measurement of {height}x{width} on {backend} took over {timeout:.0f} s", model) from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit code {proc.returncode}"
        if proc.returncode < 0:
            why = f"killed by signal {-proc.returncode} (out of memory?)"
        raise MemsrError(f"measurement of {height}x{width} on {backend} failed: {why}", model)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return Measurement(backend=backend, height=height, width=width, peak_bytes=result["hwm"] - result["baseline"],
                       baseline_bytes=result["baseline"], hwm_bytes=result["hwm"], seconds=result["seconds"],
                       threads=threads, settings=result["settings"])


NCHWC_OFF = ("NchwcTransformer",)


def _verdict(ratio: float, before: float, tolerance: float) -> str:
    return "the cause" if abs(ratio - 1) <= tolerance else "part of the cause" \
        if abs(ratio - 1) < abs(before - 1) / 2 else "not the cause"


def explain_ort_gap(model, expected: int, measured: int, height: int, width: int, tolerance: float = 0.15,
                    **kwargs) -> str:
    """Why an ONNX Runtime measurement is more than ``tolerance`` off ``expected`` (the walk), or "" if it is not.

    The usual cause is ORT's NCHWc layout transformer (``ORT_ENABLE_ALL``): around ops that have no channel-blocked
    kernel (PRelu, DepthToSpace, ...) it inserts ReorderInput / ReorderOutput copies, and it pads channel counts
    to its block (16 on AVX-512), so a blocked and a plain copy of a map live together. The liveness walk prices
    the graph as written; this measures the run again with that transformer left out, to say whether it is the
    cause (measured: FSRCNN 1.36 -> 1.00, Compact 1.58 -> 1.09, RFDN 1.78 -> 1.19 at 960x540). Where that is not
    the whole cause it measures once more with the allocation planner's buffer reuse off as well: the planner
    gives a dead tensor's buffer to a later tensor of the same (symbolic) shape and keeps it allocated in between,
    so attention's score matrices stay held through a transformer layer's MLP into the next layer's attention
    (960x540: SwinIR-light 2.61 -> 2.66 -> 1.00, RFDN 1.71 -> 1.19 -> 1.00)."""
    ratio = measured / expected
    if abs(ratio - 1) <= tolerance:
        return ""
    off = measure_peak(model, "onnxruntime", height, width, disabled_optimizers=NCHWC_OFF, **kwargs).peak_bytes
    off_ratio = off / expected
    verdict = _verdict(off_ratio, ratio, tolerance)
    why = (f"measured {ratio:.2f}x the walk; {off_ratio:.2f}x with ORT's NCHWc layout transformer off "
           f"(its ReorderInput/ReorderOutput copies and channels padded to 16, not in the walk: {verdict})")
    if verdict == "the cause":
        return why
    bare = measure_peak(model, "onnxruntime", height, width, disabled_optimizers=NCHWC_OFF, mem_reuse=False,
                        **kwargs).peak_bytes / expected
    # judged against what was left with the transformer off, so that a reuse that changes nothing is no cause
    return (f"{why}; {bare:.2f}x with its buffer reuse off as well (a dead tensor's buffer kept for a later tensor "
            f"of the same shape, held in between, not in the walk: {_verdict(bare, off_ratio, tolerance)})")
