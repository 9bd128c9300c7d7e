"""Another project's SR model as an ONNX graph, described from the graph alone (no memsr description beside it):
an .onnx file without a sidecar, or a foreign checkpoint (foreign/) exported to ONNX in memory.

What the runtime and the profiler both need from it is found here, once: the image input's layout, channels and
fixed size, the scale (from shape inference at a probe size), and the exact halo (``receptive_field.radius``).
A graph that is not an image SR model (not one 4-D image in and out, an output that is no whole multiple of
the input, another channel count out than in) is refused in one line naming the file.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import onnx

from ..errors import MemsrError
from .receptive_field import Radius, radius

# probe size for shape inference: unequal sides (an H/W mix-up shows), divisible by the downsampling factors of
# the models in use (Real-ESRGAN's pixel unshuffle by 4)
PROBE = (32, 48)
ARCH_KEY, RANGE_KEY = "memsr.foreign.arch", "memsr.foreign.value_range"


def load(path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError and friends
        raise MemsrError(f"not a readable ONNX model ({e.__class__.__name__}: {e})", path) from None


def _image_input(model: onnx.ModelProto):
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise MemsrError(f"expected one image input, found {len(inputs)}")
    return inputs[0]


def input_layout(model: onnx.ModelProto) -> tuple[bool, int, tuple[int, int] | None]:
    """(channels last, channel count, fixed (H, W) or None) of the model's image input. The channel count is
    the model's own where it states one (1 for Y-only or grey models, 4 for RGBA), else 3."""
    dims = _image_input(model).type.tensor_type.shape.dim
    if len(dims) != 4:
        raise MemsrError(f"expected a 4-D image input, got rank {len(dims)}")
    val = lambda d: d.dim_value if d.HasField("dim_value") else None
    small = lambda d: val(d) in (1, 2, 3, 4)
    nhwc = small(dims[3]) and not small(dims[1])
    c_dim, (h_dim, w_dim) = (dims[3], (dims[1], dims[2])) if nhwc else (dims[1], (dims[2], dims[3]))
    fixed = (val(h_dim), val(w_dim)) if val(h_dim) and val(w_dim) else None
    return nhwc, val(c_dim) or 3, fixed


def at_size(model: onnx.ModelProto, height: int, width: int, batch: int = 1) -> onnx.ModelProto:
    """A copy of ``model`` whose image input is fixed at batch x height x width (for shape inference)."""
    m = copy.deepcopy(model)
    nhwc, channels, fixed = input_layout(m)
    if fixed is not None and fixed != (height, width):
        raise MemsrError(f"the ONNX model has a fixed input shape {fixed[1]}x{fixed[0]} (W x H); profile it at "
                         f"its own size (--resolution {fixed[1]}x{fixed[0]}), not {width}x{height}")
    dims = _image_input(m).type.tensor_type.shape.dim
    want = [batch, height, width, channels] if nhwc else [batch, channels, height, width]
    for d, v in zip(dims, want):
        if d.HasField("dim_value") and d.dim_value != v:
            raise MemsrError(f"the ONNX model has a fixed input shape {[x.dim_value for x in dims]}; "
                             f"cannot profile it at {height}x{width}")
        d.Clear()
        d.dim_value = v
    for out in m.graph.output:  # stale symbolic output dims would clash with the inferred ones
        for d in out.type.tensor_type.shape.dim:
            d.Clear()
    del m.graph.value_info[:]
    return m


@dataclass
class ForeignGraph:
    model: onnx.ModelProto
    path: str
    arch: str                       # "ONNX" for a plain .onnx file, else the checkpoint's family
    scale: int
    channels: int                   # input (= output) channels: 3 RGB, 1 Y-only, 4 RGBA
    nhwc: bool
    fixed: tuple[int, int] | None   # (H, W) of a fixed-shape model
    radius: Radius
    value_range: float = 1.0        # the model's images are in [0, value_range]

    @property
    def halo(self) -> int | None:
        """The exact halo the tile plan can use: a finite radius on a graph that does not downsample."""
        return self.radius.halo if self.radius.finite and self.radius.align == 1 else None

    @property
    def weight_bytes(self) -> int:
        """Bytes of the graph's floating-point initializers (its weights; shape constants left out)."""
        floats = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.BFLOAT16: 2,
                  onnx.TensorProto.DOUBLE: 8}
        return sum(math.prod(t.dims) * floats[t.data_type] for t in self.model.graph.initializer
                   if t.data_type in floats)

    @property
    def halo_note(self) -> str:
        """Why ``halo`` is None ("" when it is not)."""
        if self.halo is not None:
            return ""
        return self.radius.reason or (f"the graph downsamples (tiles must align to {self.radius.align} px, which "
                                      "the tile plan does not)")


def _output_shape(model: onnx.ModelProto, h: int, w: int, path) -> list[int | None]:
    from .onnx_shapes import infer
    try:
        inferred = infer(at_size(model, h, w), strict=True)[0]
    except MemsrError as e:
        raise MemsrError(str(e), path) from None
    except Exception as e:
        raise MemsrError(f"ONNX shape inference failed at {w}x{h} ({e.__class__.__name__}: "
                         f"{str(e).splitlines()[0][:200]})", path) from None
    if len(inferred.graph.output) != 1:
        raise MemsrError(f"expected one image output, found {len(inferred.graph.output)}: not an image SR model",
                         path)
    return [d.dim_value if d.HasField("dim_value") else None
            for d in inferred.graph.output[0].type.tensor_type.shape.dim]


def describe(model: onnx.ModelProto, path, arch: str = "ONNX", value_range: float | None = None) -> ForeignGraph:
    """The graph's scale, channels, layout, fixed size and halo; refused in one line when it is no image SR
    model. ``value_range``: the model's image units (default: the graph's own metadata, else [0, 1])."""
    try:
        nhwc, channels, fixed = input_layout(model)
    except MemsrError as e:
        raise MemsrError(f"{e}: not an image SR model", path) from None
    h0, w0 = fixed or PROBE
    out = _output_shape(model, h0, w0, path)
    if len(out) != 4:
        raise MemsrError(f"the output has rank {len(out)}, not a 4-D image: not an image SR model", path)
    oc, oh, ow = (out[3], out[1], out[2]) if nhwc else (out[1], out[2], out[3])
    if oh is None or ow is None:
        raise MemsrError(f"the output's size at a {w0}x{h0} input cannot be inferred from the graph", path)
    if oh % h0 or ow % w0 or oh // h0 != ow // w0:
        raise MemsrError(f"a {w0}x{h0} input gives a {ow}x{oh} output, no whole scale of it: not an image SR "
                         "model", path)
    scale = oh // h0
    if scale < 2:
        raise MemsrError(f"output is x{scale} of the input: not a super-resolution model", path)
    if oc is not None and oc != channels:
        raise MemsrError(f"takes {channels} channels and gives {oc}: not an image SR model memsr can run", path)
    meta = {p.key: p.value for p in model.metadata_props}
    if value_range is None:
        value_range = float(meta.get(RANGE_KEY, 1.0))
    try:
        r = radius(model)
    except MemsrError as e:
        raise MemsrError(str(e), path) from None
    return ForeignGraph(model, str(path), meta.get(ARCH_KEY, arch), int(scale), int(channels), nhwc, fixed, r,
                        float(value_range))


def is_foreign_onnx(path) -> bool:
    """An .onnx file without the sidecar of a memsr artefact beside it."""
    from .sidecar import sidecar_path
    p = Path(str(path))
    return p.suffix.lower() == ".onnx" and not sidecar_path(p).exists()


def checkpoint_graph(path, state: dict | None = None) -> onnx.ModelProto:
    """A foreign checkpoint's network (foreign/) exported to ONNX in memory, its family and value range kept in
    the graph's metadata (so a cached copy describes itself). ``state``: its state dict, if read already."""
    from ..foreign.checkpoint import read_checkpoint
    from .onnx_graph import model_to_onnx
    found = read_checkpoint(path, state)
    try:
        model = model_to_onnx(found.module, channels=found.in_channels)
    except Exception as e:  # torch's exporter raises many kinds for networks it cannot trace
        first = (str(e).strip().splitlines() or [e.__class__.__name__])[0][:200]
        raise MemsrError(f"its {found.arch} network could not be exported to ONNX ({first})", path) from None
    for k, v in ((ARCH_KEY, found.arch), (RANGE_KEY, found.value_range)):
        entry = model.metadata_props.add()
        entry.key, entry.value = k, str(v)
    return model


def foreign_state(path) -> dict | None:
    """The state dict of a checkpoint (checkpoint.is_checkpoint) of a family foreign/ reads, or, with spandrel
    installed, of anything but EDSR and memsr's own weights; None for any other file (EDSR checkpoints become
    memsr teachers)."""
    import re
    from importlib.util import find_spec

    from ..foreign.checkpoint import family_of, spandrel_detects
    from .checkpoint import MEMSR_KEYS, is_checkpoint, read_state_dict
    from .edsr_checkpoint import is_edsr
    if not is_checkpoint(path) or not Path(str(path)).is_file():
        return None
    state = read_state_dict(path)[0]
    if family_of(state) is not None:
        return state
    if find_spec("spandrel") is None or all(re.match(MEMSR_KEYS, k) for k in state):
        return None
    # SwinIR, HAT, DAT (BasicSR's conv_first / upsample / conv_last) and RCAN (EDSR-PyTorch's head / body / tail)
    # share key names with EDSR: a state dict is EDSR's when every key is, or when spandrel sees nothing else in
    # it (EDSR's reader then names its first bad key)
    edsr = is_edsr(state) and (is_edsr(state, every=True) or not spandrel_detects(state))
    return None if edsr else state
