"""A small stand-in for ``benchmark_model`` on this computer, run once per benchmark cell in its own process.

It takes the tool's flags (--graph, --num_threads, --warmup_runs, --num_runs, --input_layer(_shape),
--use_xnnpack, --report_peak_memory_footprint; plus --taskset MASK) and prints its results in the tool's own
words, so the device parser reads both. A fresh process per cell keeps each memory figure clean: memory freed by
an earlier, larger run would otherwise be reused without showing as a rise.

Memory: the tool reports absolute peak RSS of a small native process; here the process also holds Python,
numpy and LiteRT, so the "peak" printed is the rise of RSS over the process's baseline taken just before the
model is loaded (the model's own footprint, comparable across cells on this computer).
"""
from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np


def _flags(argv: list[str]) -> dict:
    flags = {}
    for a in argv:
        if not a.startswith("--") or "=" not in a:
            raise SystemExit(f"ERROR: unrecognised argument {a!r} (flags are --name=value)")
        k, v = a[2:].split("=", 1)
        flags[k] = v
    return flags


def _g(v: float) -> str:
    """A double as C++ streams it by default (6 significant digits, e.g. 2.95034e+06)."""
    return f"{v:g}"


def _stats_line(samples: list[int]) -> str:
    a = np.asarray(samples, dtype=np.float64)
    if len(a) == 0:
        return "count=0"
    if np.all(a == a[0]):
        return f"count={len(a)} curr={int(a[-1])}" + ("(all same)" if len(a) > 1 else "")
    return (f"count={len(a)} first={int(a[0])} curr={int(a[-1])} min={int(a.min())} max={int(a.max())} "
            f"avg={_g(a.mean())} std={int(round(a.std()))}")


class _PeakRss:
    """Samples this process's RSS every few milliseconds, like the tool's periodic monitor."""

    def __init__(self, interval_s: float = 0.005):
        import psutil
        self.proc, self.interval, self.peak = psutil.Process(), interval_s, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def rss(self) -> int:
        return self.proc.memory_info().rss

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.peak = self.rss()
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.rss())


def _cpus(mask: str) -> set[int]:
    bits = int(mask, 16)
    return {i for i in range(bits.bit_length()) if bits >> i & 1}


def main(argv=None) -> int:
    f = _flags(sys.argv[1:] if argv is None else argv)
    graph = f.get("graph")
    if not graph:
        print("ERROR: Please specify the name of your TF Lite input file with --graph")
        return 1
    threads = int(f.get("num_threads", "-1"))
    warmup, runs = int(f.get("warmup_runs", "1")), int(f.get("num_runs", "50"))
    if f.get("taskset"):
        cpus = _cpus(f["taskset"]) & os.sched_getaffinity(0)
        if not cpus:
            print(f"ERROR: taskset mask {f['taskset']} selects none of this computer's CPUs")
            return 1
        os.sched_setaffinity(0, cpus)
    from ai_edge_litert.interpreter import Interpreter

    print("INFO: STARTING! (memsr host worker: LiteRT Python interpreter)")
    print(f"INFO: Num threads: [{threads}]")
    print(f"INFO: Graph: [{graph}]")
    with _PeakRss() as mon:
        base = mon.rss()
        t0 = time.perf_counter_ns()
        try:
            interp = Interpreter(model_path=graph, num_threads=threads if threads > 0 else None)
            inp = interp.get_input_details()[0]
            if f.get("input_layer_shape"):
                shape = [int(v) for v in f["input_layer_shape"].split(",")]
                interp.resize_tensor_input(inp["index"], shape, strict=False)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            print(f"ERROR: {str(e).splitlines()[0] if str(e) else repr(e)}")
            print("ERROR: Benchmarking failed.")
            return 1
        init_us = (time.perf_counter_ns() - t0) // 1000
        init_mem = mon.rss() - base
        print(f"INFO: Loaded model {graph}")
        print(f"INFO: The input model file size (MB): {_g(os.path.getsize(graph) / 1e6)}")
        print(f"INFO: Initialized session in {_g(init_us / 1e3)}ms.")
        inp = interp.get_input_details()[0]
        rng = np.random.default_rng(0)
        dt = np.dtype(inp["dtype"])
        x = (rng.integers(0, 255, inp["shape"]) if dt.kind in "iu" else rng.random(inp["shape"])).astype(dt)

        def timed(n: int) -> list[int]:
            out = []
            for _ in range(n):
                interp.set_tensor(inp["index"], x)
                t = time.perf_counter_ns()
                interp.invoke()
                out.append((time.perf_counter_ns() - t) // 1000)
            return out

        try:
            print(f"INFO: Running benchmark for at least {warmup} iterations (warm-up).")
            w = timed(max(warmup, 1))
            print(f"INFO: {_stats_line(w)}\n")
            print(f"INFO: Running benchmark for at least {runs} iterations.")
            r = timed(max(runs, 1))
            print(f"INFO: {_stats_line(r)}\n")
        except (ValueError, RuntimeError) as e:
            print(f"ERROR: {str(e).splitlines()[0] if str(e) else repr(e)}")
            return 1
        overall_mem = mon.rss() - base
    mb = 1024 * 1024
    print(f"INFO: Inference timings in us: Init: {init_us}, First inference: {w[0]}, "
          f"Warmup (avg): {_g(float(np.mean(w)))}, Inference (avg): {_g(float(np.mean(r)))}")
    print("INFO: Note: host figures; memory is the rise over the Python process's baseline.")
    print(f"INFO: Memory footprint delta from the start of the tool (MB): init={_g(init_mem / mb)} "
          f"overall={_g(overall_mem / mb)}")
    if f.get("report_peak_memory_footprint", "false").lower() in ("1", "true"):
        print(f"INFO: Overall peak memory footprint (MB) via periodic monitoring: {_g((mon.peak - base) / mb)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
