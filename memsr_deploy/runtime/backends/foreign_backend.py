"""Another project's SR model on ONNX Runtime: an .onnx file without a memsr sidecar, or a foreign checkpoint
(Compact, ESRGAN, SPAN, whatever spandrel reads) exported to ONNX once and kept in the user's cache folder.

Everything about the model comes from its graph (``formats.foreign_graph``): scale, layout, fixed size, and the
exact halo. A graph with no finite receptive radius (global pooling, attention over the image, downsampling)
runs whole images exactly; its tiles need a halo given, and are then approximate (``approximate`` says why).

An RGBA model (four channels) takes the photo's alpha as its fourth channel (opaque, 1.0, for a photo without
alpha) and gives the output's alpha; it is kept where the photo had alpha (``runtime.bands.Converter``).

A Y-only model (one input channel: FSRCNN, ESPCN) runs as its papers run it: on Y of BT.601 YCbCr, with Cb and
Cr upscaled by MATLAB's bicubic (``data.resize``) and the three converted back to RGB. The bicubic reads two
pixels on each side, so the halo is at least 2 and tiles stay exact.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from ...errors import MemsrError
from ...formats.foreign_graph import ForeignGraph, checkpoint_graph, describe, foreign_state, is_foreign_onnx, load
from ...formats.model_file import ModelDescription
from .base import Backend, Capabilities, runtime_failure
from .onnx_backend import session

BICUBIC_HALO = 2   # MATLAB's bicubic kernel reaches two LR pixels to each side when upscaling


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "?"


def cache_path(sha256: str) -> Path:
    """Where a checkpoint's exported graph is kept: by the file's content and the exporter that wrote it."""
    from .fastest import cache_file
    from ...formats.onnx_graph import OPSET
    return cache_file().parent / "foreign" / (f"{sha256[:32]}-memsr{_version('memsr')}-torch{_version('torch')}"
                                              f"-opset{OPSET}.onnx")


def open_foreign(path) -> tuple[ForeignGraph, str] | None:
    """(the described graph, the file's sha256) of an .onnx file without a sidecar or a foreign checkpoint;
    None for any other file. A checkpoint's export is cached (best effort: a cache that cannot be written only
    means exporting again next time). ``path``: best a checkpoint.CheckpointFile, which the caller hands on
    to the EDSR importer when this returns None, so the file is read and hashed once."""
    from ...formats.checkpoint import checkpoint_file, file_sha256, is_checkpoint
    p = Path(str(path))
    if is_foreign_onnx(p):
        if not p.is_file():
            raise MemsrError("ONNX model not found", p)
        return describe(load(p), p), file_sha256(p)
    if not is_checkpoint(p) or not p.is_file():
        return None
    ckpt = checkpoint_file(path)
    sha = file_sha256(ckpt)
    cached = cache_path(sha)
    if cached.is_file():   # only foreign checkpoints are cached: the file is one
        try:
            return describe(load(cached), p), sha
        except MemsrError:
            pass   # a damaged cache entry: export again
    state = foreign_state(ckpt)
    if state is None:
        return None
    from ...outputs.atomic import write_bytes
    from .quiet import quiet
    with quiet():
        model = checkpoint_graph(ckpt, state)
    try:
        write_bytes(cached, model.SerializeToString())
    except OSError:
        pass
    return describe(model, p), sha


class ForeignOnnxBackend(Backend):
    name = "onnxruntime"

    def __init__(self, graph: ForeignGraph, sha256: str, threads: int | None = None):
        self.graph, self.source = graph, graph.path
        if graph.channels not in (1, 3, 4):
            raise MemsrError(f"a {graph.channels}-channel model: memsr-upscale runs RGB, RGBA and Y-only models "
                             "(memsr-profile takes this one)", self.source)
        self.y_only = graph.channels == 1
        # why its tiles cannot be exact (None: they are): the tile loop then needs a halo given (pipeline.py)
        self.approximate = None if graph.halo is not None else graph.halo_note
        use = graph.halo if graph.halo is not None else 0
        if self.y_only:
            use = max(use, BICUBIC_HALO)
        self.session = session(graph.model.SerializeToString(), threads, self.source)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        batch = inp.shape[0]
        self.caps = Capabilities(scale=graph.scale, halo=use, fixed_shape=graph.fixed,
                                 max_batch=batch if isinstance(batch, int) and batch > 0 else None,
                                 channels=4 if graph.channels == 4 else 3)
        params = sum(int(np.prod(t.dims)) for t in graph.model.graph.initializer)
        self.desc = ModelDescription(kind="foreign", scale=graph.scale, arch={"foreign": graph.arch},
                                     receptive_radius=use, layer_widths=[], layer_acts=[], params=params,
                                     weights_sha256=sha256, path=self.source)

    def _net(self, x: np.ndarray) -> np.ndarray:
        g = self.graph
        x = x * np.float32(g.value_range) if g.value_range != 1.0 else x
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1) if g.nhwc else x, dtype=np.float32)
        try:
            (y,) = self.session.run(None, {self.input_name: x})[:1]
        except Exception as e:  # ORT's own exception classes
            raise runtime_failure(e, "ONNX Runtime", self.source) from None
        y = y.transpose(0, 3, 1, 2) if g.nhwc else y
        return y / np.float32(g.value_range) if g.value_range != 1.0 else y

    def run(self, x: np.ndarray) -> np.ndarray:
        if not self.y_only:
            return self.check_output(x, self._net(x))
        from ...data.resize import imresize
        from ...quality.metrics import rgb_to_ycbcr, ycbcr_to_rgb
        s = self.caps.scale
        ycc = rgb_to_ycbcr(np.asarray(x, np.float32), axis=1)
        y = self._net(ycc[:, :1])
        want = (x.shape[0], 1, x.shape[2] * s, x.shape[3] * s)
        if tuple(y.shape) != want:
            raise MemsrError(f"model output has shape {tuple(y.shape)}, expected {want} for x{s}", self.source)
        chroma = np.stack([imresize(c.transpose(1, 2, 0), s).transpose(2, 0, 1) for c in ycc[:, 1:]])
        return ycbcr_to_rgb(np.concatenate([y, chroma.astype(np.float32)], axis=1), axis=1)
