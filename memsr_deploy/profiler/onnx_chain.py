"""Is an ONNX graph a plain chain that streams in strips, and if so, its links for the budget's strip rule.

A plain chain is what ``budget``'s streaming rule prices for memsr's own students: every map is read by exactly one
op (no skips), and the ops are stride-1 convolutions with 'same' padding (any odd kernel, any group), pixel
shuffles (``DepthToSpace``) and pointwise ops (activations, or arithmetic with a constant) that run in place.
ESPCN (Conv / Tanh / DepthToSpace) is one; FSRCNN (a transposed-conv tail) and Real-ESRGAN's Compact (the input
read again by a resize and added) are not, and ``plain_chain`` names the first node that breaks the chain.
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx

from ..formats.foreign_graph import input_layout

# ops that map each pixel to itself (so a strip of rows in is the same strip out), run in place
_POINTWISE = {"Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu",
              "Neg", "Abs", "Sqrt", "Identity", "Add", "Sub", "Mul", "Div", "Max", "Min"}


@dataclass(frozen=True)
class Link:
    """One conv of the chain: channels in and out, the resolution it runs at (LR sizes), the pixel-shuffle
    factor after it, and its kernel height (the rows of its input it keeps between strips: ``kernel - 1``)."""
    cin: int
    cout: int
    r: int
    f: int
    kernel: int


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def plain_chain(model: onnx.ModelProto) -> tuple[list[Link] | None, str]:
    """(links, "") for a plain chain; (None, why not) otherwise, naming the first node that breaks it."""
    g = model.graph
    consts = {i.name for i in g.initializer}
    consts |= {o for n in g.node if n.op_type == "Constant" for o in n.output}
    weights = {i.name: tuple(i.dims) for i in g.initializer}
    nhwc, channels, _ = input_layout(model)
    if nhwc:
        return None, "a channels-last input (the strip rule walks NCHW chains)"
    inp = next(i.name for i in g.input if i.name not in consts)
    readers: dict[str, str] = {}    # map -> the node that read it first
    cur, c, r = inp, channels, 1
    links: list[Link] = []
    for k, n in enumerate(g.node):
        node = n.name or f"{n.op_type}_{k}"   # graph_of's name for an unnamed node
        name = f"{n.op_type} at node '{node}'"
        maps = [i for i in n.input if i and i not in consts]
        if not maps:
            consts.update(n.output)     # shape arithmetic on constants
            continue
        for m in maps:
            if m in readers:
                return None, f"{n.op_type} (skip) at node '{node}': reads '{m}' again after '{readers[m]}'"
            readers[m] = node
        if maps != [cur] or len(n.output) != 1:
            return None, f"{name}: reads {', '.join(maps)}, not the one map the chain has made so far"
        a = _attrs(n)
        if n.op_type == "Conv":
            w = weights.get(n.input[1])
            if w is None or len(w) != 4:
                return None, f"{name}: weights not a constant 4-D tensor"
            kh, kw = w[2], w[3]
            pads = list(a.get("pads", [0, 0, 0, 0]))
            same = a.get("auto_pad", b"NOTSET") in (b"SAME_UPPER", b"SAME_LOWER") or \
                pads == [(kh - 1) // 2, (kw - 1) // 2, (kh - 1) // 2, (kw - 1) // 2]
            if set(a.get("strides", [1, 1])) != {1} or set(a.get("dilations", [1, 1])) != {1} or kh % 2 == 0 \
                    or kw % 2 == 0 or not same:
                return None, f"{name}: not a stride-1, undilated, odd-kernel 'same' convolution"
            links.append(Link(c, w[0], r, 1, kh))
            c = w[0]
        elif n.op_type == "DepthToSpace":
            f = int(a["blocksize"])
            if not links or links[-1].f != 1:
                return None, f"{name}: a pixel shuffle not after a convolution"
            links[-1] = Link(links[-1].cin, links[-1].cout, links[-1].r, f, links[-1].kernel)
            c, r = c // (f * f), r * f
        elif n.op_type not in _POINTWISE:
            return None, f"{name}: not a stride-1 convolution, pixel shuffle or pointwise op"
        cur = n.output[0]
    outs = [o.name for o in g.output]
    if outs != [cur] or not links:
        return None, "the graph's output is not the end of one chain of convolutions"
    return links, ""
