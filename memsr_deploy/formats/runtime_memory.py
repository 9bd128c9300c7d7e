"""How each runtime holds activation memory, as settings of the liveness walk (and a workspace model).

* ``ideal``: ops that can run in place do (ReLU, residual adds, scaling), no workspace. This is the rule in
  ``budget.py`` and what deployment runtimes achieve: ONNX Runtime on CPU (arena and mem-pattern off, default
  graph optimisations) measured within 0.1% of it on plain and residual nets.
* ``onnxruntime``: same walk as ``ideal`` (measured, see above) for one call with the arena off, at widths that
  are multiples of 16, plus the column buffer of each ConvTranspose (``formats.onnx_liveness._col_buffer``). The runtime's
  own session (arena on, and odd widths padded or run outside the blocked layout) holds more: its budget uses
  ``ort_runtime_bytes_per_pixel``, a measured bound.
  Not priced: ORT's NCHWc layout transformer (``ORT_ENABLE_ALL``) pads channel counts to 16 and inserts
  ReorderInput / ReorderOutput copies around ops without a blocked kernel (PRelu, DepthToSpace, ...). On nets of
  narrow or non-multiple-of-16 widths with such ops the measured run holds more than the walk (960x540, one
  thread: FSRCNN 1.36x, Compact 1.58x, RFDN 1.78x) and, with that one transformer left out
  (``measure.explain_ort_gap``), 1.00x, 1.09x and 1.19x. memsr's students (widths of 16 and 32, one reorder
  before the shuffle) and ESPCN do not pay it. Second cause, Compact's: ORT runs the ``Resize`` of the input
  before the body (its own topological order), so the upsampled image lives throughout while the walk follows
  the file's order; Compact x4 at 960x540 with the transformer off measured 1.37x the file-order walk and 1.00x
  the walk with the Resize moved first. (A reverse-DFS emulation of ORT's order fixed Compact but put the
  teacher's anchor first as well, 0.65x its measurement, so the walk keeps the file's order.) Third cause, the
  allocation planner's buffer reuse: a dead tensor whose buffer the planner gives to a later tensor of the same
  (symbolic) shape stays allocated until that one is made. The plain and residual nets here do not pay it (they
  measure 1.00x); in a transformer it holds one layer's attention scores and their softmax (windows x heads x
  N x N) through the MLP into the next layer's attention: SwinIR-light at 960x540 measured 2.61x the walk,
  1.00x with reuse and the transformer off (RFDN: 1.19x with the transformer off, 1.00x with reuse off as
  well). Not modelled: the walk stays the graph's liveness, what any runtime has to hold.
* ``torch``: PyTorch eager on CPU. Nothing runs in place (``F.relu``, ``x + y`` and ``res_scale * y`` each make a
  new tensor), and every fp32 conv goes through oneDNN (mkldnn), which works in a blocked channel layout
  (``aBcd16b`` on AVX-512, ``aBcd8b`` on AVX2): found with ``ONEDNN_VERBOSE=1`` and checked by measurement.
  For a conv ``Cin -> Cout`` on ``n`` pixels, with ``pad(c)`` = c rounded up to the block:
    - the NCHW input is reordered into a blocked copy (``pad(Cin) * n``) unless ``Cin`` < block (the first conv
      reads NCHW directly);
    - the output is computed into a blocked buffer (``pad(Cout) * n``) and then reordered into the NCHW result;
      the blocked input copy is freed before that reorder.
  So on top of its input and output the conv holds ``max(in_b + out_b, out_b + out) - out`` elements, which
  fits single-conv measurements (3..256 channels, 0.01-4 MP) within 1%.
* LiteRT (``ai_edge_litert`` with its default XNNPACK delegate) is measured but not modelled: on plain nets it
  held 2.2-2.7x the ideal walk plus I/O copies (about 0.55 extra map per layer), so the measured figure is
  reported next to a lower bound. Without XNNPACK the builtin CONV_2D adds an im2col buffer of 9*Cin channels.
"""
from __future__ import annotations

import functools
import math

from .liveness import IDEAL, Graph, Node
from .onnx_liveness import ORT_WALK

BACKENDS = ("ideal", "onnxruntime", "torch")

# What the runtime's ONNX Runtime session holds per LR pixel, against the padded walk of
# ``ort_runtime_bytes_per_pixel`` (RSS growth of repeated calls, arena on, 2 AVX-512 cores): the bundled x2
# student (widths 14..49) 1.12x on 446 px windows and 1.58x whole at 12 MP (the arena grows in powers of two);
# uniform 48 0.82x, uniform 32 0.91x, uniform 16 0.56x. The budget takes the largest.
ORT_RUNTIME_MARGIN = 1.6
ORT_CHANNEL_BLOCK = 16


def round_up(channels: int, block: int) -> int:
    """A channel count padded to the kernel's channel block."""
    return -(-int(channels) // block) * block


@functools.lru_cache(maxsize=1)
def onednn_block() -> int:
    """oneDNN's channel block for fp32 convs on this CPU: 16 with AVX-512, else 8."""
    try:
        import torch
        cap = str(torch.backends.cpu.get_cpu_capability()).upper()
    except Exception:
        cap = ""
    return 16 if "AVX512" in cap else 8


def torch_cpu_conv_workspace(node: Node, graph: Graph) -> int:
    """Elements of oneDNN's layout copies while a conv runs (see the module docstring)."""
    if node.op != "conv" or not node.inputs:
        return 0
    block = onednn_block()
    inp, out = graph.shapes[node.inputs[0]], graph.shapes[node.outputs[0]]
    cin, cout = inp[1], out[1]
    n_in = inp[0] * math.prod(inp[2:])
    n_out = out[0] * math.prod(out[2:])
    in_b = round_up(cin, block) * n_in if cin >= block else 0
    out_b = round_up(cout, block) * n_out
    return max(in_b + out_b, out_b + cout * n_out) - cout * n_out


def walk_settings(backend: str) -> dict:
    """Keyword arguments of ``liveness.walk`` that model ``backend``."""
    if backend == "ideal":
        return dict(IDEAL)
    if backend == "onnxruntime":
        return dict(ORT_WALK)
    if backend == "torch":
        return {"inplace": False, "workspace": torch_cpu_conv_workspace}
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")


def window_bytes_per_pixel(desc, runtime: str, dtype_bytes: int = 4, module=None) -> int:
    """Peak activation bytes per LR pixel of one window (batch 1) on ``runtime``: what the runtime's memory
    budget divides by. Every map of these nets has a size proportional to the window's pixels, so one walk
    at a small size gives the exact per-pixel figure.

    * ``onnxruntime``: the runtime's session (arena on) on a plain net: see ``ort_runtime_bytes_per_pixel``.
    * ``coreml``, ``ideal`` and teachers on ONNX Runtime: the budget rule (``budget.per_pixel_channels``), which
      one ONNX Runtime call with the arena off follows within 0.1% at widths that are multiples of 16.
    * ``torch``: the PyTorch eager walk (no in-place ops, oneDNN layout copies) of ``module``'s traced graph.
    * ``litert``: not modelled by a walk (see above), so bounded from above: every feature map alive at once
      (the interpreter plans tensors for the whole graph; measured 2.2-2.7x the ideal walk on plain nets, this
      bound is 3-4x) plus the float input tensor and the output copy ``get_tensor`` returns.
    """
    from . import memory_budget as budget
    if runtime == "torch" and module is not None:
        from .liveness import walk
        from .torch_liveness import trace
        side = 16
        w = walk(trace(module, side, side, 1), dtype_bytes, keep_inputs=False, **walk_settings("torch"))
        return -(-w.peak_bytes // (side * side))
    if runtime == "onnxruntime" and desc.is_plain:
        return ort_runtime_bytes_per_pixel(desc, dtype_bytes)
    if runtime == "litert" and desc.is_plain:
        e, out = budget.map_elements(desc), 3 * desc.scale ** 2
        copies = sum(e[i + 1] for i, f in enumerate(desc.shuffles) if f > 1)
        return (sum(e) + copies) * dtype_bytes + (3 + out) * 4
    return budget.per_pixel_channels(desc) * dtype_bytes


def ort_runtime_bytes_per_pixel(desc, dtype_bytes: int = 4) -> int:
    """Bytes per LR window pixel that the runtime's ONNX Runtime session holds for a plain net.

    ORT's x86 convs work on channel blocks: widths that are multiples of 16 run in the blocked (NCHWc) layout,
    others as plain convs with reorders between the two layouts, so every map is counted at its padded width;
    plus the graph's input and its output with the output's reorder copy. The arena keeps what a call
    allocated, rounded up, for the next call. The walk is therefore scaled by the largest measured ratio
    (``ORT_RUNTIME_MARGIN``): a bound, conservative by up to 3x for narrow aligned nets."""
    from .memory_budget import chain, peak_pair
    padded = [3] + [round_up(cout, ORT_CHANNEL_BLOCK) * r * r for _, cout, r, _ in chain(desc)]
    pair = peak_pair(padded, desc.shuffles)
    return math.ceil((pair + 3 + 2 * 3 * desc.scale ** 2) * dtype_bytes * ORT_RUNTIME_MARGIN)
