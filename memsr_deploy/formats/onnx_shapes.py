"""Every tensor's shape in an ONNX graph whose input size is fixed, including shapes that depend on integer
arithmetic ``onnx.shape_inference`` does not evaluate. The graph-size walks all rely on this: the output's
scale (``foreign_graph``), the receptive radius's probes (``receptive_field``) and the liveness walk
(``onnx_liveness``).

With data propagation, onnx resolves Shape -> Gather -> Concat -> Reshape chains, but not every integer op.
torch's exporter writes "pad to a multiple of the window" (SwinIR) as Shape -> Add -> Div -> Mul -> Sub -> Concat
-> Pad; onnx gives up at the Div, so the Pad's output and every shape after it stay unknown. Here the small
integer tensors that known shapes and constants determine are computed with onnx's reference ops and put into
the graph as initializers, and inference runs again, until every shape is known or nothing new can be computed.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

# Elements: shape vectors and scalars. Larger integer tensors (index maps, masks) are left to inference, so
# that a size-dependent one is never built at a 100 MP input size.
SMALL = 64


def static_shapes(graph: onnx.GraphProto) -> dict[str, list[int]]:
    """name -> shape of every tensor whose shape inference fixed completely (scalars included)."""
    out = {}
    for v in [*graph.input, *graph.value_info, *graph.output]:
        t = v.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            out[v.name] = [d.dim_value for d in t.shape.dim]
    for t in graph.initializer:
        out[t.name] = list(t.dims)
    return out


def _small_int(v) -> bool:
    v = np.asarray(v)
    return v.dtype.kind in "iub" and v.size <= SMALL


def _evaluate(graph: onnx.GraphProto, shapes: dict, known: dict) -> dict:
    """Values of the small integer tensors computable from ``shapes``, constants and ``known``, not in
    ``known`` yet."""
    from onnx.reference import ReferenceEvaluator
    vals = dict(known)
    for t in graph.initializer:
        if t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) and math.prod(t.dims) <= SMALL:
            vals[t.name] = numpy_helper.to_array(t)
    new = {}
    for node in graph.node:
        outs = [o for o in node.output if o]
        if not outs or all(o in vals for o in outs):
            continue
        ins = [x for x in node.input if x]
        if node.op_type == "Constant":
            attr = next((a for a in node.attribute if a.name == "value"), None)
            if attr is not None and _small_int(numpy_helper.to_array(attr.t)):
                vals[outs[0]] = numpy_helper.to_array(attr.t)
            continue
        if node.op_type in ("Shape", "Size") and ins and ins[0] in shapes:
            dims = np.array(shapes[ins[0]], np.int64)
            a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
            res = [dims[a.get("start", 0):a.get("end")] if node.op_type == "Shape" else np.array(dims.prod())]
        elif node.domain in ("", "ai.onnx") and ins and all(x in vals for x in ins) and \
                all(o in shapes and math.prod(shapes[o]) <= SMALL for o in outs):
            try:
                res = ReferenceEvaluator(node).run(None, {x: vals[x] for x in ins})
            except Exception:  # noqa: BLE001 - a value this cannot compute is left to inference
                continue
        else:
            continue
        for o, r in zip(node.output, res):
            if o and _small_int(r):
                vals[o] = new[o] = np.asarray(r)
    return new


def _fold(model: onnx.ModelProto, values: dict) -> onnx.ModelProto:
    """``model`` with the nodes whose every output has a value replaced by initializers."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = [n for n in m.graph.node if not all(o in values for o in n.output if o)]
    made = {o for n in m.graph.node for o in n.output} - {o for n in keep for o in n.output}
    del m.graph.node[:]
    m.graph.node.extend(keep)
    m.graph.initializer.extend(numpy_helper.from_array(np.asarray(values[o]), o) for o in sorted(made) if o)
    return m


def infer(model: onnx.ModelProto, strict: bool = False) -> tuple[onnx.ModelProto, dict, dict]:
    """(the inferred model, name -> static shape, name -> value of small integer tensors) for ``model``, whose
    graph input has a fixed size. The returned model may have shape arithmetic folded into initializers."""
    values: dict = {}
    while True:
        inferred = shape_inference.infer_shapes(model, strict_mode=strict, data_prop=True)
        shapes = static_shapes(inferred.graph)
        new = _evaluate(inferred.graph, shapes, values)
        values.update(new)
        unresolved = any(o and o not in shapes for n in inferred.graph.node for o in n.output)
        if not new or not unresolved:
            return inferred, shapes, values
        model = _fold(inferred, new)
