"""A torch module's dataflow graph, by tracing: every family (teacher skips included) without hand-coding.

``torch.fx.symbolic_trace`` records the forward pass as a graph of modules, functions and methods; shapes come
from running that graph on a fake tensor of the requested size (``FakeTensorMode``: shapes only, no memory,
so a 200 MP trace costs nothing). The result is the backend-neutral ``liveness.Graph``.
"""
from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import MemsrError
from .liveness import Graph, Node

# What each traced callable is called in the neutral graph, and whether it is elementwise (may run in place).
_FUNCTIONS = {
    F.relu: ("relu", True), torch.relu: ("relu", True), F.leaky_relu: ("leaky_relu", True),
    torch.sigmoid: ("sigmoid", True), torch.clamp: ("clip", True), torch.clip: ("clip", True),
    operator.add: ("add", True), torch.add: ("add", True), operator.sub: ("sub", True), torch.sub: ("sub", True),
    operator.mul: ("mul", True), torch.mul: ("mul", True), operator.truediv: ("div", True),
    torch.div: ("div", True), operator.neg: ("neg", True),
    F.pixel_shuffle: ("pixel_shuffle", False), torch.pixel_shuffle: ("pixel_shuffle", False),
    torch.cat: ("concat", False), F.conv2d: ("conv", False), torch.conv2d: ("conv", False),
    torch.repeat_interleave: ("repeat_interleave", False), F.pad: ("pad", False),
}
_ELEMENTWISE_METHODS = {"relu", "clamp", "clip", "add", "sub", "mul", "div", "neg", "sigmoid", "float", "half"}
_VIEW_METHODS = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "permute", "transpose", "expand",
                 "contiguous", "__getitem__", "view_as", "reshape_as"}
_MODULES = {nn.Conv2d: ("conv", False), nn.ReLU: ("relu", True), nn.LeakyReLU: ("leaky_relu", True),
            nn.PixelShuffle: ("pixel_shuffle", False), nn.Identity: ("identity", False)}


def _classify(gm: fx.GraphModule, node: fx.Node) -> tuple[str, bool, bool]:
    """(op name, elementwise, view) of a traced call."""
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        for cls, (name, elementwise) in _MODULES.items():
            if isinstance(mod, cls):
                return name, elementwise, name == "identity"
        return type(mod).__name__.lower(), False, False
    if node.op == "call_function":
        if node.target is operator.getitem:
            return "getitem", False, True
        name, elementwise = _FUNCTIONS.get(node.target, (getattr(node.target, "__name__", str(node.target)), False))
        return name, elementwise, False
    name = str(node.target)
    if name in _VIEW_METHODS:
        return name, False, True
    return name, name in _ELEMENTWISE_METHODS, False


def _shape(node: fx.Node):
    meta = node.meta.get("tensor_meta")
    return tuple(int(d) for d in meta.shape) if meta is not None and hasattr(meta, "shape") else None


def trace(model: nn.Module, height: int, width: int, batch: int = 1) -> Graph:
    """The forward pass of ``model`` on a ``batch x 3 x height x width`` input, as a liveness graph."""
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # fx raises many kinds of errors on untraceable code
        raise MemsrError(f"cannot trace {type(model).__name__} with torch.fx ({e.__class__.__name__}: {e})") from None
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    with mode:
        x = torch.empty(batch, 3, height, width)
    ShapeProp(gm, fake_mode=mode).propagate(x)

    shapes: dict[str, tuple[int, ...]] = {}
    nodes: list[Node] = []
    inputs: list[str] = []
    outputs: list[str] = []
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            inputs.append(n.name)
            shapes[n.name] = _shape(n)
        elif n.op == "get_attr":
            continue  # parameters and buffers: weights, not activations
        elif n.op == "output":
            outs = n.args[0] if isinstance(n.args[0], (tuple, list)) else [n.args[0]]
            outputs.extend(o.name for o in outs if isinstance(o, fx.Node))
        else:
            shape = _shape(n)
            if shape is None:
                continue  # non-tensor values (python numbers from size() calls): no memory
            op, elementwise, view = _classify(gm, n)
            args = [a for a in n.all_input_nodes if a.name in shapes]
            name = str(n.target) if n.op == "call_module" else n.name
            ins = [a.name for a in args]
            nodes.append(Node(name, op, ins, [n.name], ins if elementwise else [], view))
            shapes[n.name] = shape
    return Graph(nodes, shapes, inputs, outputs, meta={"source": "torch.fx", "model": type(model).__name__})
