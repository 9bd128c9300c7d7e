"""An ONNX model's dataflow graph at a given input size, for the liveness walk (``liveness``): the profiler's
ONNX walk and the runtime's ``--max-memory`` plan of another project's model (``runtime.footprint``) both use it,
so it lives below both.

Nodes are taken in the file's order (ONNX requires topological order, and ONNX Runtime's sequential executor
runs them in that order). The graph input's H and W are fixed to the requested size and
``onnx.shape_inference`` (with data propagation, so Shape -> Concat -> Reshape chains resolve, and the shape
arithmetic it does not evaluate computed by ``onnx_shapes``) gives every tensor's shape. Only floating-point tensors count as activations: shape arithmetic (int64 vectors) and
constants are bytes, not maps.
"""
from __future__ import annotations

import math

import onnx
from onnx import TensorProto

from ..errors import MemsrError
from .foreign_graph import at_size
from .liveness import Graph, Node
from .onnx_shapes import infer

_ELEMENTWISE = {"Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "Add", "Sub", "Mul",
                "Div", "Neg", "Abs", "Sqrt", "Max", "Min"}
_VIEWS = {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"}
_FLOATS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE,
           TensorProto.INT8, TensorProto.UINT8}  # int8/uint8: quantised activations
_OP_NAMES = {"Conv": "conv", "Relu": "relu", "DepthToSpace": "pixel_shuffle", "FusedConv": "conv",
             "QLinearConv": "conv", "ConvInteger": "conv"}


def _col_buffer(node, weights: dict, shapes: dict) -> int:
    """Elements of ONNX Runtime's column buffer for a ConvTranspose: it multiplies the weights into a
    (Cout/group * kH * kW) x (H_in * W_in) matrix, then scatters it into the output (col2im). FSRCNN's
    9x9 transposed tail at 960x540 holds 3*81 input-sized maps there: 4.4x the rest of its walk."""
    w = weights.get(node.input[1])
    x = shapes.get(node.input[0])
    if w is None or x is None:
        return 0
    return int(w[1]) * int(w[2]) * int(w[3]) * math.prod(x[2:]) * x[0]   # w: (Cin, Cout/group, kH, kW)


def graph_of(model: onnx.ModelProto, height: int, width: int, batch: int = 1) -> Graph:
    """The model's graph with every activation shape resolved for a ``height x width`` input."""
    fixed = at_size(model, height, width, batch)
    try:
        inferred = infer(fixed, strict=True)[0]
    except Exception as e:
        raise MemsrError(f"ONNX shape inference failed at {height}x{width} ({e.__class__.__name__}: {e})") from None
    g = inferred.graph
    info = {v.name: v for v in [*g.input, *g.value_info, *g.output]}
    consts = {i.name for i in g.initializer}

    shapes: dict[str, tuple[int, ...]] = {}
    weights = {i.name: tuple(i.dims) for i in g.initializer}
    col_buffers: dict[str, int] = {}

    def activation(name: str) -> bool:
        if not name or name in consts or name not in info:
            return False
        t = info[name].type.tensor_type
        if t.elem_type not in _FLOATS:
            return False
        dims = t.shape.dim
        if any(not d.HasField("dim_value") for d in dims):
            raise MemsrError(f"ONNX tensor {name!r} has an unresolved shape at {height}x{width}")
        shapes[name] = tuple(int(d.dim_value) for d in dims)
        return True

    inputs = [i.name for i in g.input if i.name not in consts and activation(i.name)]
    nodes: list[Node] = []
    for k, n in enumerate(g.node):
        if n.op_type == "Constant":
            continue
        outs = [o for o in n.output if activation(o)]
        if not outs:
            continue  # shape arithmetic
        ins = [i for i in n.input if i in shapes]
        view = n.op_type in _VIEWS
        if n.op_type in _ELEMENTWISE:
            overwrite = ins
        elif n.op_type == "FusedConv" and len(n.input) > 3:
            overwrite = [n.input[3]]  # ORT accumulates a fused conv's sum input in place
        else:
            overwrite = []
        name = n.name or f"{n.op_type}_{k}"
        if n.op_type == "ConvTranspose":
            col_buffers[name] = _col_buffer(n, weights, shapes)
        nodes.append(Node(name, _OP_NAMES.get(n.op_type, n.op_type.lower()), ins, outs, overwrite, view))
    outputs = [o.name for o in g.output if o.name in shapes]
    return Graph(nodes, shapes, inputs, outputs, meta={"source": "onnx", "col_buffers": col_buffers})



def ort_workspace(node: Node, graph: Graph) -> int:
    """Elements of ONNX Runtime's transient buffers while ``node`` runs: a ConvTranspose's column buffer."""
    return graph.meta.get("col_buffers", {}).get(node.name, 0)


# ONNX Runtime's CPU walk (``liveness.walk`` keywords): elementwise ops in place, plus the column buffers
ORT_WALK = {"inplace": True, "workspace": ort_workspace}
