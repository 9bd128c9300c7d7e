"""Whole-process peak RSS of an upscaling job, by cause: the one prediction model behind ``--max-memory`` (the
runtime plans a job within it and refuses one that cannot fit) and memsr-profile's process figure.

    peak RSS = floor        Python, numpy, libvips, the runtime's libraries and threads, measured at rest per
                            backend (``FLOOR``), plus the model's weights in the copies the runtime keeps
             + pixels       the input's row cache (or the decoded image), the output bands in flight and the
                            encoder's rows (``pixel_bytes``)
             + activations  one call's windows on this backend, the runtime's own workspace included
                            (``formats.runtime_memory.window_bytes_per_pixel``: ONNX Runtime's session with its arena,
                            LiteRT's interpreter plan, PyTorch's eager walk; another project's ONNX graph:
                            ``foreign_window_bytes``, the liveness walk of its graph at the window's size)

A user reads ``--max-memory 300M`` as "this process stays near 300 MB", so the budget is this sum, not the
activations alone (which let a 300M budget on LiteRT peak at 423 MB, and ``--tile 0`` run a 12 MP photo in
5 GB without a word).
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np

from ..errors import MemsrError
from ..imageio.decode import CHUNK_BYTES

MiB = 2 ** 20
# Peak RSS of ``memsr-upscale`` on a 64x48 JPEG -> PNG with the bundled x2 student, whose pixels and activations
# are under 4 MiB (benchmarks/budget_bench.py; x86-64 Linux, 2 cores, Python 3, onnxruntime 1.32, ai-edge-litert
# 2.3, torch 2.13 CPU): the interpreter, numpy, libvips, the runtime's libraries and its thread pool.
FLOOR = {"onnxruntime": 92 * MiB, "litert": 70 * MiB, "torch": 326 * MiB}
FLOOR_OTHER = 100 * MiB   # ncnn / Core ML: not measured here, taken near ONNX Runtime's
# Another project's model on ONNX Runtime also holds the onnx package and the graph it was described from
# (measured: 64x48 -> x2 with a 64-channel Compact and a small ESRGAN, cached exports: 116-118 MiB peak RSS
# against 95 for the bundled student); a checkpoint exported in this process (its first run) holds torch and
# its ONNX exporter too (455-460 MiB on the same runs with an empty cache).
FLOOR_FOREIGN_EXTRA = 20 * MiB
FLOOR_FOREIGN_EXPORTED = 460 * MiB
# The weights' bytes are held about three times: the arrays read from the file, the runtime's graph copy and
# its packed (blocked) copy.
WEIGHT_COPIES = 3
# Bytes libvips holds while it encodes sequentially (its line buffers and the encoder's own), in output rows;
# measured roughly: 13856 px wide RGB JPEG out, about 56 MB above the process at rest, flat in height.
VIPS_ROWS_HELD = 1400
# Another project's graph on the runtime's ONNX Runtime session (arena on), against the ORT walk of its graph at
# the window's size (``formats.onnx_liveness``), from peak RSS of memsr-upscale --tile T on a 1280x960 PNG, x2,
# 2 threads, minus the floor and pixel terms: a 64-channel 16-conv Compact held 1.7-2.1x the walk plus ~7 MiB
# (tiles 64-512), a 2-block ESRGAN (32 channels, growth 16) 3.0-3.3x plus ~12 MiB. What the walk leaves out: ORT's
# NCHWc reorders and channel padding, its own node order (formats.runtime_memory: one call with the arena off holds
# 1.6-1.8x on such graphs), and the arena, which grows in powers of two and keeps its peak for the next call.
FOREIGN_ORT_MARGIN = 3.4
FOREIGN_ORT_SCRATCH = 12 * MiB
BANDS_IN_FLIGHT = 3   # one being computed, one queued for the encoder, one in the PNG feed
# PyTorch's layer-wise streaming loop (runtime/stream.py) holds more than the fused rule it follows
# (``budget.peak_bytes_stream``): out-of-place ReLU and concatenation, oneDNN's layout copies.
TORCH_STREAM_FACTOR = 3


@dataclass
class Frame:
    """What the pixel terms need to know of an input: its size and layout, and whether it is decoded in rows
    (``imageio``'s ``ImageReader`` has these fields too)."""
    height: int
    width: int
    channels: int = 3
    dtype: object = np.uint8
    streamed: bool = True

    @property
    def nbytes(self) -> int:
        return self.height * self.width * self.channels * np.dtype(self.dtype).itemsize

    @property
    def decode_bytes(self) -> int:
        return 2 * self.nbytes   # as ImageReader's: the decoder's buffer and the oriented copy


def pixel_bytes(reader, fmt: str | None, shape, channels: int, dtype, window_rows: int,
                band_rows: int | None = None) -> dict[str, int]:
    """Bytes the job holds for its pixels, by cause (``reader``: an ``ImageReader`` or a ``Frame``).

    Streamed input: the row cache (a window, the rows kept above it, the chunks decoded ahead); otherwise what
    its decoder holds for the whole image (``decode_bytes``: RAW and HEIC price their libraries' buffers).
    Streamed output: the bands in flight and libvips' rows; WebP, BMP and HEIC: the whole output (libwebp,
    Pillow and libheif encode from one picture). ``fmt`` None: an in-memory job (``upscale_array``), whose
    input is the caller's array and whose output is assembled whole."""
    in_row = reader.width * reader.channels * np.dtype(reader.dtype).itemsize
    out_row = shape[1] * channels * np.dtype(dtype).itemsize
    s = shape[0] // reader.height
    band_rows = min(window_rows if band_rows is None else band_rows, reader.height)
    need = {}
    if fmt is None:
        need["input array"] = reader.nbytes
    elif reader.streamed:
        # the cache (twice while it is rebuilt), three chunks in flight, libvips' rows (measured: ~40 MB at
        # 6928 px wide RGB, so about 2000 rows' worth)
        need["input rows"] = ((min(window_rows, reader.height) + 16) * in_row * 2 + 3 * CHUNK_BYTES
                              + min(2000, reader.height) * in_row)
    else:
        need["decoded input"] = reader.decode_bytes
    in_flight = min(BANDS_IN_FLIGHT, math.ceil(reader.height / max(band_rows, 1)))
    need["bands"] = in_flight * band_rows * s * out_row
    if fmt is None:
        need["output image"] = shape[0] * out_row
    elif fmt in ("WEBP", "BMP"):
        # measured roughly: a 144 MP x2 WebP took 1.6 GB above the process at rest (libvips' copy, libwebp's
        # ARGB and YUV pictures); Pillow's BMP: our copy, its image, its encoder buffer
        need["whole output"] = shape[0] * shape[1] * (12 if fmt == "WEBP" else 10)
    elif fmt == "HEIF":
        from ..imageio.heif import HEIF_ENCODE_BYTES
        need["whole output"] = shape[0] * shape[1] * HEIF_ENCODE_BYTES[np.dtype(dtype).itemsize]
    else:
        need["encoder rows"] = min(VIPS_ROWS_HELD, shape[0]) * out_row
    return need


def foreign_window_bytes(graph, height: int, width: int, batch: int = 1) -> int:
    """Bytes one call of another project's ONNX graph (``formats.foreign_graph.ForeignGraph``) holds on the
    runtime's session for a ``batch`` of ``height x width`` windows: the ORT liveness walk of its graph at that
    size (ConvTranspose column buffers included; the walk is not proportional to pixels for every graph, so it is
    walked at the window's own size), scaled by ``FOREIGN_ORT_MARGIN`` for what the walk leaves out (ORT's NCHWc
    reorders and channel padding, its own node order, the arena's growth), plus its scratch and the tile loop's
    float copies: the gathered RGB windows and the previous call's output (as ``analytic.measured_prediction``).
    A Y-only model also holds the windows in YCbCr and its chroma upscaled by a float64 bicubic."""
    from ..formats.liveness import walk
    from ..formats.onnx_liveness import ORT_WALK, graph_of
    peak = walk(graph_of(graph.model, height, width, batch), 4, keep_inputs=True, **ORT_WALK).peak_bytes
    n, s = batch * height * width, graph.scale
    copies = (3 + 3 * s * s) * n * 4
    if graph.channels == 1:
        # YCbCr windows (float32); per chroma plane the bicubic's float64 passes (its input, the first axis's
        # result and the gathered rows it sums, then the full plane); the YCbCr output and its RGB (float32)
        copies += 3 * n * 4 + (3 * s + 2 * s * s) * n * 8 + 2 * 3 * s * s * n * 4
    return math.ceil(peak * FOREIGN_ORT_MARGIN) + FOREIGN_ORT_SCRATCH + copies


@dataclass
class Runtime:
    """What the prediction needs to know of the backend that runs a model: its name, the model's description,
    the bytes of an activation, (PyTorch) the module whose eager walk prices a window, and (another project's
    model) its ONNX graph, walked at each window's size."""
    name: str
    desc: object
    dtype_bytes: int = 4
    module: object = None
    fixed_shape: tuple[int, int] | None = None
    layered_stream: bool = False      # PyTorch plain nets: runtime/stream.py's rolling buffers
    graph: object = None              # formats.foreign_graph.ForeignGraph of another project's model
    halo_used: int | None = None      # a --halo given in place of the exact one (the windows it makes)
    _per_pixel: int | None = field(default=None, repr=False, compare=False)
    _windows: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, backend, halo: int | None = None) -> "Runtime":
        plain = getattr(backend, "plain", None)
        graph = getattr(backend, "graph", None) if backend.desc.kind == "foreign" else None
        return cls(backend.name, backend.desc, backend.caps.dtype_bytes,
                   plain or getattr(backend, "model", None), backend.caps.fixed_shape, plain is not None,
                   graph, halo)

    @property
    def halo(self) -> int:
        return int(self.desc.receptive_radius if self.halo_used is None else self.halo_used)

    @property
    def scale(self) -> int:
        return int(self.desc.scale)

    def weight_bytes(self) -> int:
        if self.graph is not None:
            return int(self.graph.weight_bytes)
        return int(getattr(self.desc, "params", 0) or 0) * 4

    def floor(self) -> int:
        base = FLOOR.get(self.name, FLOOR_OTHER)
        if self.graph is not None:
            # torch loaded: a checkpoint exported in this process (its first run; later ones read the cached
            # graph)
            base = FLOOR_FOREIGN_EXPORTED if "torch" in sys.modules else base + FLOOR_FOREIGN_EXTRA
        return base + WEIGHT_COPIES * self.weight_bytes()

    def window_bytes(self, height: int, width: int, batch: int = 1) -> int:
        """Activation bytes of one call on ``batch`` windows of ``height x width`` LR pixels."""
        if self.graph is None:
            return self.per_pixel() * height * width * batch
        key = (int(height), int(width), int(batch))
        if key not in self._windows:   # kept: a plan's search asks for the same sizes again
            self._windows[key] = foreign_window_bytes(self.graph, *key)
        return self._windows[key]

    def per_pixel(self) -> int:
        """Activation bytes per LR window pixel (kept: PyTorch's is a traced walk, and plans ask many times)."""
        if self._per_pixel is None:
            self._per_pixel = self._window_bytes_per_pixel()
        return self._per_pixel

    def _window_bytes_per_pixel(self) -> int:
        if not self.desc.layer_widths:
            raise MemsrError("--max-memory needs the model's layer widths, which this sidecar/model does not give",
                             getattr(self.desc, "path", None))
        from ..formats.runtime_memory import window_bytes_per_pixel
        return int(window_bytes_per_pixel(self.desc, self.name, self.dtype_bytes, self.module))


@dataclass
class Plan:
    """A job's mode and sizes with its predicted peak RSS by cause."""
    mode: str                      # tile / stream / whole
    tile: int | None = None        # LR core pixels (tile mode)
    rows: int | None = None        # LR rows per strip (stream mode)
    batch: int = 1
    parts: dict = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(sum(self.parts.values()))

    def describe(self) -> str:
        return {"tile": f"--tile {self.tile}", "stream": f"--mode stream --rows {self.rows}",
                "whole": "--tile 0"}[self.mode]


def predict(rt: Runtime, frame, mode: str, tile: int | None = None, rows: int | None = None, batch: int = 1,
            fmt: str | None = "PNG", out_channels: int | None = None, out_dtype=None) -> Plan:
    """Predicted peak RSS of upscaling ``frame`` (LR) on ``rt`` in ``mode``: ``tile`` core pixels (tile),
    ``rows`` per strip (stream) or the whole image at once (whole). ``fmt``: the output's format (None: an
    in-memory job)."""
    h, w, s, halo = frame.height, frame.width, rt.scale, rt.halo
    out_channels = frame.channels if out_channels is None else out_channels
    out_dtype = frame.dtype if out_dtype is None else out_dtype
    if mode == "whole":
        win, band, act = (h, w), h, rt.window_bytes(h, w)
    elif mode == "tile":
        if rt.fixed_shape:
            win = tuple(rt.fixed_shape)
            core = max(min(rt.fixed_shape) - 2 * halo, 1)
        else:
            core = max(int(tile), 1)
            win = (min(h, core + 2 * halo), min(w, core + 2 * halo))
        band, act = min(core, h), rt.window_bytes(win[0], win[1], max(int(batch), 1))
    elif mode == "stream":
        rows = max(int(rows), 1)
        band = min(rows, h)
        if rt.layered_stream:
            from ..formats import memory_budget as budget
            win = (min(h, rows + 4), w)
            act = TORCH_STREAM_FACTOR * budget.peak_bytes_stream(rt.desc, w, min(rows, h), rt.dtype_bytes)
        else:
            win = (min(h, rows + 2 * halo), w)
            act = rt.window_bytes(win[0], w)
    else:
        raise MemsrError(f"unknown mode {mode!r}; expected tile, stream or whole")
    parts = {"process floor": rt.floor()}
    parts.update(pixel_bytes(frame, fmt, (h * s, w * s), out_channels, out_dtype, win[0], band))
    parts["activations"] = int(act)
    return Plan(mode, tile=core if mode == "tile" else None, rows=rows if mode == "stream" else None,
                batch=max(int(batch), 1) if mode == "tile" else 1, parts=parts)


def mb(n: int) -> str:
    return f"{n / MiB:.0f} MiB"


def check_floor(rt: Runtime, budget_bytes: int) -> None:
    """Refuse a budget below what the process holds before its first pixel."""
    floor = rt.floor()
    if int(budget_bytes) < floor:
        why = ("; torch is loaded (a checkpoint's first run exports it with torch; later runs read the cached "
               "export, with a floor of about " + mb(FLOOR[rt.name] + FLOOR_FOREIGN_EXTRA
                                                     + WEIGHT_COPIES * rt.weight_bytes()) + ")"
               if rt.graph is not None and "torch" in sys.modules and rt.name in FLOOR else "")
        raise MemsrError(f"budget too small: --max-memory {mb(int(budget_bytes))} is below this process's floor of "
                         f"about {mb(floor)} on {rt.name} (Python, libraries, runtime and model at rest){why}")


def largest_within(fits_at, hi: int) -> int:
    """The largest n in [1, hi] with ``fits_at(n)`` (monotone: true up to some n, false after), or 0."""
    if hi < 1 or not fits_at(1):
        return 0
    lo = 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits_at(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def plan_within(rt: Runtime, frame, budget_bytes: int, mode: str = "tile", tile: int | None = None,
                rows: int | None = None, batch: int | None = None, default_tile: int = 256,
                default_rows: int | None = None, fmt: str | None = "PNG", out_channels: int | None = None,
                out_dtype=None, flags: str | None = None, auto_batch=None) -> Plan:
    """The plan for ``frame`` whose predicted peak RSS stays within ``budget_bytes``.

    Sizes given (``tile``, ``rows``, ``batch``; ``tile=0``: the whole image) are kept when they fit and refused
    in one line naming them and ``--max-memory`` when they do not. Sizes not given: the default when it fits
    (a budget is a ceiling, and larger windows than the default buy little speed), else the largest that fits;
    ``auto_batch(tile)``: the batch wanted for small tiles, lowered until it fits. A budget below the process's
    floor is refused saying the floor. The mode is the caller's (default tile): exact tiles are both the leanest
    (full-width strips and whole images only hold more) and, at the default size, the fastest, so the budget
    never switches a job to them."""
    kw = dict(fmt=fmt, out_channels=out_channels, out_dtype=out_dtype)
    budget_bytes = int(budget_bytes)
    check_floor(rt, budget_bytes)
    given = f"--max-memory {mb(budget_bytes)}"

    def refuse(plan: Plan, what: str) -> MemsrError:
        parts = ", ".join(f"{k} {mb(v)}" for k, v in plan.parts.items() if v)
        return MemsrError(f"{what} cannot fit {given}: predicted peak {mb(plan.total)} ({parts})")

    if mode == "whole" or (mode == "tile" and tile == 0):
        plan = predict(rt, frame, "whole", **kw)
        if plan.total > budget_bytes:
            raise refuse(plan, flags or "--tile 0 (the whole image at once)")
        return plan
    if mode == "stream":
        def at(r):
            return predict(rt, frame, "stream", rows=r, **kw)
        if rows is not None:
            plan = at(rows)
            if plan.total > budget_bytes:
                raise refuse(plan, flags or f"--mode stream --rows {rows}")
            return plan
        want = min(default_rows or frame.height, frame.height)
        if at(want).total <= budget_bytes:
            return at(want)
        r = largest_within(lambda n: at(n).total <= budget_bytes, want)
        if r < 1:
            raise refuse(at(1), flags or "--mode stream (one-row strips)")
        return at(r)

    def at_tile(t, b=1):
        return predict(rt, frame, "tile", tile=t, batch=b, **kw)
    if rt.fixed_shape:
        plan = at_tile(None, batch or 1)
        if plan.total > budget_bytes:
            fh, fw = rt.fixed_shape
            raise refuse(plan, flags or f"the artefact's fixed {fw}x{fh} input")
        return plan
    if tile is not None:
        plan = at_tile(tile, batch or 1)
        if plan.total > budget_bytes:
            raise refuse(plan, flags or f"--tile {tile}" + (f" --batch {batch}" if batch else ""))
        return plan
    cap = max(frame.height, frame.width)
    want = min(default_tile, cap)
    if at_tile(want, batch or 1).total > budget_bytes:
        want = largest_within(lambda n: at_tile(n, batch or 1).total <= budget_bytes, want)
        if want < 1:
            raise refuse(at_tile(1, batch or 1), flags or "a 1-pixel tile")
    b = batch or 1
    if batch is None and auto_batch is not None:
        b = largest_within(lambda n: at_tile(want, n).total <= budget_bytes, auto_batch(want)) or 1
    return at_tile(want, b)


def first_that_fits(runtimes: list[Runtime], frame, budget_bytes: int, default_tile: int = 256, **kw
                    ) -> tuple[Runtime, Plan]:
    """Of ``runtimes`` (in order of preference), the first whose plan for ``frame`` keeps ``default_tile`` (or
    the explicit sizes of ``kw``) within the budget; else the one with the largest tile; the first one's
    refusal when none fits at all."""
    best, first_error = None, None
    for rt in runtimes:
        try:
            plan = plan_within(rt, frame, budget_bytes, default_tile=default_tile, **kw)
        except MemsrError as e:
            first_error = first_error or e
            continue
        if plan.mode != "tile" or plan.tile >= min(default_tile, max(frame.height, frame.width)):
            return rt, plan
        if best is None or plan.tile > best[1].tile:
            best = (rt, plan)
    if best is None:
        raise first_error
    return best
