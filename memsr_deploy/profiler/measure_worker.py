"""Subprocess body of a measured run (see ``measure.py``): prints one JSON line {baseline, hwm, seconds, settings}.

Kept free of the profiler's other imports so the baseline holds only what the backend itself needs.
"""
from __future__ import annotations

import gc
import json
import sys
import time

WARMUP = 64  # LR px a side: a 16 px warm-up leaves ~8 MB of oneDNN one-off set-up to the first big run


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_hwm() -> bool:
    """Make VmHWM restart from the current RSS (Linux >= 4.0); False where not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _torch_runner(job):
    """The runtime's PyTorch backend; tiled runs go through the runtime's own tile loop (``runtime.tiled``)."""
    import numpy as np
    import torch
    from memsr_deploy.runtime.backends import open_backend

    backend = open_backend(model=job["model"], backend="torch", threads=job["threads"])
    tile = job["tile"]

    def run(h, w):
        x = np.random.rand(h, w, 3).astype(np.float32)
        if tile <= 0:
            return x, backend.run(np.ascontiguousarray(x.transpose(2, 0, 1))[None])
        from memsr_deploy.runtime.bands import Converter
        from memsr_deploy.imageio import Picture
        from memsr_deploy.runtime.tiled import TiledRunner
        s = backend.caps.scale
        y = np.empty((h * s, w * s, 3), np.float32)
        for band in TiledRunner(backend, tile, convert=Converter(clip=False)).bands(Picture(x)):
            y[band.lr_start * s:band.lr_stop * s] = band.pixels
        return x, y

    settings = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                "mkldnn": bool(torch.backends.mkldnn.is_available()), "inference_mode": True, "tile": tile,
                "runner": "memsr_deploy.runtime (torch backend, tiled.TiledRunner)"}
    return run, settings


def _tiled(backend_run, scale: int, halo: int, tile: int, channels: int, fixed=None):
    """``run(h, w)`` of a tiled job: the runtime's own tile loop (``runtime.tiled.TiledRunner``) over a session,
    holding the full float input photo and the full float output image, as memsr's tiled runtime does."""
    import numpy as np
    from memsr_deploy.imageio import Picture
    from memsr_deploy.runtime.backends.base import Capabilities
    from memsr_deploy.runtime.bands import Converter
    from memsr_deploy.runtime.tiled import TiledRunner

    class Session:   # the Backend interface TiledRunner calls: caps, source, run
        caps = Capabilities(scale=scale, halo=halo, fixed_shape=fixed)
        source = "measured session"

        @staticmethod
        def run(x):
            # a Y-only / grey model sees channel 0 of the RGB window (one window-sized copy, priced by
            # analytic.measured_prediction); its one output channel broadcasts into the RGB band
            return backend_run(np.ascontiguousarray(x[:, :channels]) if channels != 3 else x)

    def run(h, w):
        x = np.random.rand(h, w, 3).astype(np.float32)
        y = np.empty((h * scale, w * scale, 3), np.float32)
        for band in TiledRunner(Session, tile, convert=Converter(clip=False)).bands(Picture(x)):
            y[band.lr_start * scale:band.lr_stop * scale] = band.pixels
        return x, y
    return run


def _ort_runner(job):
    """A session made by the runtime's ONNX Runtime factory, arena off: one call's allocations are then the
    activations themselves (the runtime keeps its arena on, for reuse across calls). A tiled job runs the whole
    image's tile loop through that session (``_tiled``)."""
    import numpy as np
    import onnxruntime as ort
    from memsr_deploy.runtime.backends.onnx_backend import session

    sess = session(job["model"], job["threads"], job["model"], arena=False)
    if job.get("disabled_optimizers") or job.get("mem_reuse") is False:
        # a diagnostic run: the runtime's own session options, less the named graph transformers and, where
        # asked, the allocation planner's buffer reuse
        so = sess.get_session_options()
        so.enable_mem_reuse = job.get("mem_reuse") is not False
        sess = ort.InferenceSession(job["model"], so, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=job.get("disabled_optimizers") or [])
    name = sess.get_inputs()[0].name
    out_names = [o.name for o in sess.get_outputs()]
    fixed = sess.get_inputs()[0].shape
    channels = fixed[1] if isinstance(fixed[1], int) else 3

    def run(h, w):
        if isinstance(fixed[2], int) and isinstance(fixed[3], int):
            if h != WARMUP and [h, w] != fixed[2:4]:
                raise SystemExit(f"fixed-shape model takes {fixed[3]}x{fixed[2]}, asked {w}x{h}")
            h, w = fixed[2], fixed[3]
        x = np.random.rand(1, channels, h, w).astype(np.float32)
        xv = ort.OrtValue.ortvalue_from_numpy(x)
        return x, sess.run_with_ort_values(out_names, {name: xv})

    so = sess.get_session_options()
    settings = {"onnxruntime": ort.__version__, "enable_cpu_mem_arena": so.enable_cpu_mem_arena,
                "enable_mem_pattern": so.enable_mem_pattern,
                "graph_optimization_level": str(so.graph_optimization_level), "threads": job["threads"],
                "runner": "memsr_deploy.runtime.backends.onnx_backend.session", "tile": job["tile"],
                "disabled_optimizers": job.get("disabled_optimizers") or [], "mem_reuse": so.enable_mem_reuse}
    if job["tile"] > 0:
        settings.update(halo=job["halo"], runner=settings["runner"] + " in runtime.tiled.TiledRunner")
        run = _tiled(lambda x: sess.run(out_names, {name: x})[0], job["scale"], job["halo"], job["tile"],
                     channels)
    return run, settings


def _litert_runner(job):
    """Interpreters made by the runtime's LiteRT factory."""
    import numpy as np
    from memsr_deploy.runtime.backends.litert_backend import _interpreter

    def fresh():
        return _interpreter(job["threads"], job["model"], model_path=job["model"])

    probe = fresh()
    fixed = list(probe.get_input_details()[0]["shape_signature"])[1:3] != [-1, -1]
    # A fixed-shape model sizes its buffers for its one shape, and XNNPACK keeps its workspace across
    # interpreters: warming up would pre-pay the whole run. So it is built inside the measured run instead
    # (its packed weights then count too).
    state = {"interp": None if fixed else probe}
    del probe
    gc.collect()

    def run(h, w):
        if fixed and h == WARMUP:
            return None
        if state["interp"] is None:
            state["interp"] = fresh()
        interp = state["interp"]
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        shape = list(inp["shape"])
        if fixed and shape[1:3] != [h, w]:
            raise SystemExit(f"fixed-shape model takes {shape[2]}x{shape[1]}, asked {w}x{h}")
        if not fixed:
            shape = [1, h, w, 3]
            interp.resize_tensor_input(inp["index"], shape)
        interp.allocate_tensors()
        x = np.random.rand(*shape).astype(inp["dtype"]) if inp["dtype"] != np.uint8 else \
            np.random.randint(0, 256, shape, dtype=np.uint8)
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return x, interp.get_tensor(out["index"])

    settings = {"litert": "ai_edge_litert (default XNNPACK delegate)", "threads": job["threads"],
                "fixed_shape": fixed, "note": "fixed-shape models are built inside the measured run"}
    return run, settings


def main() -> int:
    job = json.loads(sys.argv[1])
    runner = {"torch": _torch_runner, "onnxruntime": _ort_runner, "litert": _litert_runner}[job["backend"]]
    run, settings = runner(job)
    keep = run(WARMUP, WARMUP)
    del keep
    gc.collect()
    settings["hwm_reset"] = _reset_hwm()
    baseline = _status_bytes("VmRSS")
    t0 = time.perf_counter()
    keep = run(job["height"], job["width"])
    seconds = time.perf_counter() - t0
    hwm = _status_bytes("VmHWM")
    del keep
    print(json.dumps({"baseline": baseline, "hwm": hwm, "seconds": seconds, "settings": settings}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
