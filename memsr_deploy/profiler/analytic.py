"""Predicted peak activation memory of a model for an input size, dtype, inference mode and backend.

A *subject* is what gets profiled: a memsr model file (or bundled name, or an in-memory module) whose graph
comes from tracing, or an ONNX file whose graph is read directly. Modes:

* ``whole``: one forward pass on the full LR input. Counts the input until its last reader and the output.
* ``tiled``: one window of the exact tile plan (``tile_plan``; window = core tile + 2*halo, clipped to the
  image); the plan's largest window is walked. The full input photo and output image are not counted.
* ``stream``: strips of R rows (plain models, and ONNX graphs that are plain chains: ``onnx_chain``):
  ``budget.peak_bytes_stream``, the runtime's rule, for any odd kernel.

``predict(...).peak_bytes`` is activation memory only; ``measured_prediction`` adds what a measured process
also holds (the input kept by the caller; in tiled mode the full input and output images and the window copy).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MemsrError
from ..formats import memory_budget as budget
from ..formats.runtime_memory import BACKENDS, walk_settings
from ..formats.liveness import Graph, NodeMemory, walk

MODES = ("whole", "tiled", "stream")


@dataclass
class Subject:
    """A profiled model: its name, a way to get its graph at any size, and what tiling needs to know."""
    name: str
    kind: str                  # teacher / plain / student / onnx
    scale: int
    halo: int | None           # receptive radius (None: unknown, no tiling)
    desc: object | None = None  # ModelDescription when known (needed for streaming)
    module: object | None = None
    onnx_model: object | None = None
    path: str | None = None
    artefact: str | None = None  # a .tflite file profiled through the model it was exported from
    halo_note: str = ""        # why halo is None (no finite receptive radius, or an op the graph walk lacks)
    fixed: tuple[int, int] | None = None   # (H, W) of a fixed-shape ONNX model: the one size it runs at
    links: list | None = None  # an ONNX plain chain's convs (onnx_chain.Link), for the strip rule
    stream_note: str = ""      # why an ONNX graph does not stream (the node that breaks the chain)

    def graph(self, height: int, width: int, batch: int = 1) -> Graph:
        if self.module is not None:
            from ..formats.torch_liveness import trace
            return trace(self.module, height, width, batch)
        from ..formats.onnx_liveness import graph_of
        return graph_of(self.onnx_model, height, width, batch)

    @property
    def is_teacher(self) -> bool:
        return self.kind == "teacher"


def load_subject(spec, name: str | None = None) -> Subject:
    """A model file stem / .json / .safetensors, a bundled name, an .onnx file, a checkpoint (EDSR: a memsr
    teacher; Compact, ESRGAN, SPAN: their exported graph), or an nn.Module."""
    import torch.nn as nn
    if isinstance(spec, nn.Module):
        from ..formats.model_file import describe
        desc = describe(spec)
        return Subject(name or type(spec).__name__, desc.kind, desc.scale, desc.receptive_radius, desc,
                       module=spec.eval())
    path = Path(str(spec))
    if path.suffix == ".onnx":
        return _onnx_subject(path, name)
    from ..formats.checkpoint import CheckpointFile, is_checkpoint, read_state_dict
    if is_checkpoint(path):
        from ..foreign.checkpoint import family_of
        spec = ckpt = spec if isinstance(spec, CheckpointFile) else CheckpointFile(path)   # read once
        if family_of(read_state_dict(ckpt)[0]) is not None:
            return _checkpoint_subject(path, name, ckpt)
    from ..formats.model_file import load_model
    if path.suffix == ".tflite":
        return _tflite_subject(path, name)
    module, desc = load_model(spec)
    return Subject(name or Path(desc.path or str(spec)).stem, desc.kind, desc.scale, desc.receptive_radius, desc,
                   module=module, path=desc.path)


def _onnx_subject(path: Path, name: str | None) -> Subject:
    from ..formats.foreign_graph import load
    if not path.exists():
        raise MemsrError("ONNX file not found", path)
    halo = None
    try:
        from ..formats.sidecar import read_sidecar
        halo = int(read_sidecar(path, check_file=False).halo)
    except MemsrError:
        pass   # no sidecar: the halo from the graph itself
    return _graph_subject(load(path), path, name or path.stem, halo)


def _checkpoint_subject(path: Path, name: str | None, ckpt=None) -> Subject:
    """Another project's checkpoint (foreign/): its network exported to ONNX in memory, profiled as that graph.
    ``ckpt``: the file as read already (checkpoint.CheckpointFile)."""
    from ..formats.foreign_graph import checkpoint_graph
    model = checkpoint_graph(ckpt if ckpt is not None else path)
    return _graph_subject(model, path, name, None)


def _graph_subject(model, path: Path, name: str | None, halo: int | None) -> Subject:
    from ..formats.foreign_graph import describe
    g = describe(model, path)
    note = ""
    if halo is None:
        halo, note = g.halo, g.halo_note
    if g.fixed is not None:
        halo, note = None, f"fixed input shape {g.fixed[1]}x{g.fixed[0]}: the model runs whole at that size only"
    from .onnx_chain import plain_chain
    links, why = plain_chain(model)
    return Subject(name or (path.stem if g.arch == "ONNX" else f"{path.stem} ({g.arch})"), "onnx", g.scale, halo,
                   None, onnx_model=model, path=str(path), halo_note=note, fixed=g.fixed, links=links,
                   stream_note=why)


def _tflite_subject(path: Path, name: str | None) -> Subject:
    """A .tflite artefact: its graph is the source model's (named by its sidecar); measured with LiteRT."""
    from ..formats.model_file import load_model
    from ..formats.sidecar import read_sidecar
    if not path.exists():
        raise MemsrError("TFLite file not found", path)
    sc = read_sidecar(path, check_file=False)
    source = (sc.source_model or {}).get("path")
    if not source:
        raise MemsrError("the sidecar does not name the source model the graph walk needs", sc.path)
    module, desc = load_model(source)
    return Subject(name or path.stem, desc.kind, desc.scale, desc.receptive_radius, desc, module=module,
                   path=desc.path, artefact=str(path))


@dataclass
class Prediction:
    model: str
    kind: str
    mode: str
    backend: str
    dtype: str
    height: int                 # LR input
    width: int
    scale: int
    peak_bytes: int
    peak_node: str
    nodes: list[NodeMemory] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    def to_dict(self, per_layer: bool = False) -> dict:
        d = {k: getattr(self, k) for k in ("model", "kind", "mode", "backend", "dtype", "height", "width", "scale",
                                           "peak_bytes", "peak_node")}
        d["details"] = self.details
        if per_layer:
            d["layers"] = [{"name": n.name, "op": n.op, "live_bytes": n.live_bytes, "new_bytes": n.new_bytes,
                            "workspace_bytes": n.workspace_bytes, "out_shape": list(n.out_shape)} for n in self.nodes]
        return d


def _check_size(height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise MemsrError(f"input size must be positive, got {width}x{height}")


def largest_window(subject: Subject, height: int, width: int, tile: int) -> tuple[int, int, int]:
    """(window rows, window cols, number of windows) of the exact tile plan."""
    from ..formats.tile_plan import plan_axis
    if subject.halo is None:
        raise MemsrError("tiling needs the model's receptive radius (keep the sidecar JSON beside the .onnx)",
                         subject.path)
    ys, xs = plan_axis(height, tile, subject.halo), plan_axis(width, tile, subject.halo)
    return ys[0].win, xs[0].win, len(ys) * len(xs)


def predict(subject: Subject, height: int, width: int, mode: str = "whole", dtype="fp32", backend: str = "ideal",
            tile: int = 512, rows: int = 16, keep_input: bool = False) -> Prediction:
    """Peak activation bytes of ``subject`` on a ``height x width`` LR input."""
    _check_size(height, width)
    if mode not in MODES:
        raise MemsrError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if backend not in BACKENDS:
        raise MemsrError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    d = budget.dtype_bytes(dtype)
    dname = dtype if isinstance(dtype, str) else f"{d}B"
    base = dict(model=subject.name, kind=subject.kind, mode=mode, backend=backend, dtype=dname, height=height,
                width=width, scale=subject.scale)
    if mode == "stream":
        return _predict_stream(subject, width, height, rows, d, base)
    if mode == "tiled":
        if tile < 1:
            raise MemsrError(f"tile must be at least 1 LR pixel, got {tile}")
        wy, wx, n = largest_window(subject, height, width, tile)
        w = walk(subject.graph(wy, wx), d, keep_inputs=keep_input, **walk_settings(backend))
        return Prediction(**base, peak_bytes=w.peak_bytes, peak_node=w.peak_node, nodes=w.nodes,
                          details={"tile": tile, "halo": subject.halo, "window": [wy, wx], "windows": n,
                                   "output_bytes": w.output_bytes})
    w = walk(subject.graph(height, width), d, keep_inputs=keep_input, **walk_settings(backend))
    return Prediction(**base, peak_bytes=w.peak_bytes, peak_node=w.peak_node, nodes=w.nodes,
                      details={"output_bytes": w.output_bytes, "input_bytes": w.input_bytes})


def stream_links(subject: Subject) -> list[tuple[int, int, int, int, int]] | None:
    """(C[i], C[i+1], r[i], f[i], kernel[i]) of every conv of a subject that streams; None if it does not."""
    if subject.desc is not None:
        return [(*c, 3) for c in budget.chain(subject.desc)] if subject.desc.is_plain else None
    if subject.links is not None:
        return [(k.cin, k.cout, k.r, k.f, k.kernel) for k in subject.links]
    return None


def why_no_stream(subject: Subject) -> str:
    if subject.desc is not None or subject.onnx_model is None:
        return f"streaming needs a plain model; {subject.name} is a {subject.kind}"
    return f"streaming needs a plain chain of convs and pointwise ops; {subject.stream_note}"


def _predict_stream(subject: Subject, width: int, height: int, rows: int, d: int, base: dict) -> Prediction:
    links = stream_links(subject)
    if links is None:
        raise MemsrError(why_no_stream(subject), subject.path)
    if base["backend"] != "ideal":
        raise MemsrError("the streaming prediction is the runtime's rule (backend 'ideal'); "
                         f"no {base['backend']} model of the streaming loop", subject.path)
    if rows < 1:
        raise MemsrError(f"strip rows must be at least 1, got {rows}")
    rows = min(rows, height)
    carries = sum((k - 1) * cin * r for cin, _, r, _, k in links) * width * d
    nodes = []
    for i, (cin, cout, r, f, k) in enumerate(links):
        h, w = rows * r, width * r   # the rows and width of the resolution this conv runs at
        out = h * cout * w * d
        nodes.append(NodeMemory(f"conv {i}" if i < len(links) - 1 else "tail", "conv",
                                carries + (h + k - 1) * cin * w * d + out, out, 0, (1, cout, h, w)))
        if f > 1:
            nodes.append(NodeMemory("pixel_shuffle", "pixel_shuffle", carries + 2 * out, out, 0,
                                    (1, cout // (f * f), h * f, w * f)))
    peak = budget.peak_bytes_stream_chain(links, width, rows, d)
    top = max(nodes, key=lambda n: n.live_bytes)
    if top.live_bytes != peak:
        raise AssertionError("per-layer stream breakdown disagrees with budget.peak_bytes_stream_chain")
    return Prediction(**base, peak_bytes=peak, peak_node=top.name, nodes=nodes,
                      details={"rows": rows, "carry_bytes": carries})


def input_channels(subject: Subject) -> int:
    """Channels of the model's image input: 1 for Y-only / grey ONNX models, 4 for RGBA, else 3."""
    if subject.onnx_model is None:
        return 3
    from ..formats.foreign_graph import input_layout
    return input_layout(subject.onnx_model)[1]


def measured_prediction(subject: Subject, height: int, width: int, backend: str, dtype="fp32", mode="whole",
                        tile: int = 512) -> int:
    """What a measured run of this backend should show: the activations plus the buffers the process holds."""
    budget.dtype_bytes(dtype)   # an unknown dtype fails here, in one line
    if backend == "litert":
        # Lower bound: the ideal walk, plus the interpreter's own input tensor and the output copy get_tensor
        # returns. LiteRT's XNNPACK delegate holds more (see backends.py); the gap is reported, not modelled.
        ideal = predict(subject, height, width, "whole", dtype, "ideal", keep_input=True)
        return ideal.peak_bytes + ideal.details["input_bytes"] + ideal.details["output_bytes"]
    if mode == "whole":
        return predict(subject, height, width, "whole", dtype, backend, keep_input=True).peak_bytes
    if mode == "tiled":
        # the runtime's tile loop (runtime.tiled): full input and output images, the window's walk, the
        # batch of windows gathered before the NCHW copy the walk starts from, and one band of output rows
        # (float32 throughout: the loop converts to float before the session, whatever the activation dtype)
        s, f = subject.scale, 4
        images = 3 * height * width * f + 3 * height * width * s * s * f
        window = predict(subject, height, width, "tiled", dtype, backend, tile=tile, keep_input=True)
        wy, wx = window.details["window"]
        # one band of output rows: the core rows of a row of tiles (tile_plan: ceil(H / ceil(H / tile))); and
        # where a row has several windows, the previous window's output, which the loop holds until the next
        # window's call returns (runtime.tiled: ``y``)
        core_rows = -(-height // -(-height // tile))
        band = core_rows * s * width * s * 3 * f
        if width > tile:
            band += window.details["output_bytes"]
        channels = input_channels(subject)
        # a model that is not RGB in gets channel 0 of the RGB batch, copied (measure_worker._tiled)
        narrow = channels * wy * wx * f if channels != 3 else 0
        return images + window.peak_bytes + 3 * wy * wx * f + band + narrow
    raise MemsrError(f"measuring {mode} mode is not supported (whole and tiled are)")
