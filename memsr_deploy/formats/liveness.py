"""Peak live activation bytes of a dataflow graph walked in execution order.

A tensor lives from the node that makes it to its last reader; graph outputs live to the end. The graph input
lives to its last reader unless the caller holds it (``keep_inputs``, what a measured process does). Views
(reshape and friends) share their source's storage. With ``inplace=True`` an elementwise op whose input dies at
that op writes into it (what ONNX Runtime's planner, TFLite and fused Conv+Relu kernels do); PyTorch eager
never does that for ``F.relu`` / ``x + y``, so its walk uses ``inplace=False``.

The graph is a neutral description built from a traced torch module (``torch_liveness``) or an ONNX model
(``onnx_liveness``), so both walks share this one liveness rule. It lives in formats/ because the runtime's
budget for another project's ONNX graph walks it too (the runtime does not import the profiler).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Node:
    name: str                 # module path for torch convs ("layers.3"), node name otherwise
    op: str                   # "conv", "relu", "add", "mul", "pixel_shuffle", ... (lower case, backend-neutral)
    inputs: list[str]         # activation tensors read (constants and weights are left out)
    outputs: list[str]
    may_overwrite: list[str] = field(default_factory=list)  # inputs the output may be written into when they
    #                                                         die here (elementwise ops; a fused conv's sum input)
    view: bool = False         # output aliases inputs[0] (no new memory)


@dataclass
class Graph:
    nodes: list[Node]
    shapes: dict[str, tuple[int, ...]]   # every activation tensor's shape
    inputs: list[str]
    outputs: list[str]
    meta: dict = field(default_factory=dict)

    def numel(self, tensor: str) -> int:
        return math.prod(self.shapes[tensor])


@dataclass
class NodeMemory:
    name: str
    op: str
    live_bytes: int       # bytes of every live storage while this node runs (inputs, outputs, held tensors,
    #                       and the backend's workspace for the node)
    new_bytes: int        # bytes of the tensors this node makes
    workspace_bytes: int  # transient backend buffers (0 unless a workspace model is given)
    out_shape: tuple[int, ...]


@dataclass
class Walk:
    peak_bytes: int
    peak_node: str
    nodes: list[NodeMemory]
    input_bytes: int
    output_bytes: int


# The ideal runtime: every op may write over an input that dies with it, no convolution workspace. The
# plain-net budget rule and ONNX Runtime (measured) follow it; backends.py models the others.
IDEAL = {"inplace": True, "workspace": None}


def walk(graph: Graph, dtype_bytes: int = 4, inplace: bool = False, keep_inputs: bool = False,
         workspace: Callable[[Node, Graph], int] | None = None) -> Walk:
    """Live bytes per node and the peak, for the tensor sizes in ``graph.shapes``.

    ``workspace(node, graph)`` gives the elements of transient buffers a backend holds while running the node
    on top of its inputs and outputs (e.g. oneDNN's blocked-layout copies, see ``backends``).
    """
    n = len(graph.nodes)
    end_of_graph = n  # past the last node: outputs (and held inputs) stay live through everything
    last_read: dict[str, int] = {}
    for k, node in enumerate(graph.nodes):
        for t in node.inputs:
            last_read[t] = k
    for t in graph.outputs:
        last_read[t] = end_of_graph
    if keep_inputs:
        for t in graph.inputs:
            last_read[t] = end_of_graph

    storage_of: dict[str, int] = {}
    size: dict[int, int] = {}
    end: dict[int, int] = {}
    pinned: set[int] = set()  # caller-owned storages: never overwritten in place

    def new_storage(tensor: str) -> int:
        sid = len(size)
        size[sid] = graph.numel(tensor) * dtype_bytes
        end[sid] = last_read.get(tensor, -1)
        storage_of[tensor] = sid
        return sid

    live: set[int] = set()
    for t in graph.inputs:
        sid = new_storage(t)
        pinned.add(sid)
        live.add(sid)
    input_bytes = sum(size[storage_of[t]] for t in graph.inputs)

    report: list[NodeMemory] = []
    peak, peak_node = sum(size[s] for s in live), "<input>"
    for k, node in enumerate(graph.nodes):
        new = 0
        for out in node.outputs:
            reuse = None
            if node.view and node.inputs:
                reuse = storage_of[node.inputs[0]]
            elif inplace:
                for t in node.may_overwrite:
                    sid = storage_of[t]
                    if sid not in pinned and end[sid] == k and graph.shapes[t] == graph.shapes[out] \
                            and sid not in (storage_of.get(o) for o in node.outputs if o != out):
                        reuse = sid
                        break
            if reuse is None:
                sid = new_storage(out)
                live.add(sid)
                new += size[sid]
            else:
                storage_of[out] = reuse
                end[reuse] = max(end[reuse], last_read.get(out, -1))
        extra = workspace(node, graph) * dtype_bytes if workspace else 0
        now = sum(size[s] for s in live) + extra
        report.append(NodeMemory(node.name, node.op, now, new, extra, graph.shapes[node.outputs[0]]))
        if now > peak:
            peak, peak_node = now, node.name
        live = {s for s in live if end[s] > k}
    output_bytes = sum(graph.numel(t) * dtype_bytes for t in graph.outputs)
    return Walk(peak, peak_node, report, input_bytes, output_bytes)
