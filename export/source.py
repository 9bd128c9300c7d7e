"""The model being exported: loaded once from its file pair, with what every exporter needs from it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.model_file import ModelDescription, int8_model, load_model
from memsr_deploy.formats.onnx_graph import INT8_GRAPH_PRECISIONS, int8_float_tensors
from memsr_deploy.method.models import InputSpec, PlainSR


QUANTISED = ("dynamic", "int8", "int8-uint8io")   # precisions whose weights are int8


@dataclass
class Layer:
    """One 3x3 conv of a plain net as plain arrays (PyTorch layout OIHW)."""
    weight: np.ndarray
    bias: np.ndarray
    act: str  # "relu" or "none"
    shuffle: int = 1  # pixel-shuffle factor after it (desc.shuffles; > 1 only in a tail)


@dataclass
class Source:
    model: torch.nn.Module
    desc: ModelDescription
    name: str  # default stem for artefact names
    int8: "Source | None" = None  # the int8 sibling the description names (model_file.int8_model)
    graph: object = None  # another project's model: its ONNX graph, exported once (runtime's foreign_backend)
    fixed: tuple[int, int] | None = None  # (H, W) of another project's fixed-shape .onnx model

    def weights_for(self, precision: str) -> "Source":
        """Whose weights an artefact of ``precision`` carries: the int8 sibling's for every quantised precision
        (their weights lie on the int8 grid), this model's otherwise. Verification always compares with this
        model, so a drop is what the precision costs against the fp32 export."""
        return self.int8 if self.int8 is not None and precision in QUANTISED else self

    @property
    def scale(self) -> int:
        return int(self.desc.scale)

    @property
    def halo(self) -> int:
        return int(self.desc.receptive_radius)

    @property
    def is_plain(self) -> bool:
        return isinstance(self.model, PlainSR)

    @property
    def input_spec(self) -> InputSpec:
        return self.desc.input

    @property
    def value_range(self) -> float:
        return float(self.input_spec.value_range)

    def plain_layers(self) -> list[Layer]:
        """Every conv in execution order, tail last; only plain nets can be rebuilt layer by layer."""
        if not self.is_plain:
            raise MemsrError(f"{self.desc.kind} models are not plain; convert to a plain net first "
                             "(memsr-convert) or export to ONNX", self.desc.path)
        return [Layer(c.weight.detach().cpu().numpy().astype(np.float32),
                      c.bias.detach().cpu().numpy().astype(np.float32), a, f)
                for c, a, f in zip(self.model.convs(), self.desc.layer_acts, self.desc.shuffles)]

    def run(self, x: np.ndarray) -> np.ndarray:
        """The PyTorch reference: NCHW float32 in model units -> NCHW float32."""
        with torch.no_grad():
            return self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    def summary(self, precision: str = "fp32") -> dict:
        """The sidecar's source_model block (with the int8 sibling's path and checksum when its weights are
        the artefact's)."""
        out = {"name": self.name, "kind": self.desc.kind, "path": self.desc.path,
               "weights_sha256": self.desc.weights_sha256, "receptive_radius": self.halo,
               "layer_widths": list(self.desc.layer_widths), "layer_acts": list(self.desc.layer_acts)}
        tail = self.desc.arch.get("tail", "shuffle")
        if tail != "shuffle":   # sidecars of one-conv-tail models stay as they were
            out["tail"] = tail
        built = self.weights_for(precision)
        if built is not self:
            out["int8_model"] = {"path": built.desc.path, "weights_sha256": built.desc.weights_sha256}
        if precision in INT8_GRAPH_PRECISIONS and built.is_plain:
            floats = int8_float_tensors(built.desc)
            if floats:   # mixed precision: the runtime budgets fp32's activation bytes for it
                out["int8_float_tensors"] = sorted(floats)
        return out


def _check_artefact_fits(graph, model) -> None:
    """What an artefact's sidecar can describe: an NCHW RGB model in [0, 1] with an exact halo."""
    if graph.channels != 3 or graph.halo is None or graph.value_range != 1.0 or graph.nhwc:
        why = graph.halo_note or (f"{graph.channels} channels in [0, {graph.value_range:g}]"
                                  + (", channels last" if graph.nhwc else ""))
        raise MemsrError(f"an artefact's sidecar describes NCHW RGB models in [0, 1] with an exact halo; this one "
                         f"has {why}: run it with memsr-upscale --model instead", model)


def _renamed_io(model, path, new_in: str = "input", new_out: str = "output"):
    """A copy of a one-input, one-output graph whose image input and output are named as memsr's artefacts name
    them (onnx_export.structure_failures), every reference renamed with them."""
    import copy
    m = copy.deepcopy(model)
    inits = {i.name for i in m.graph.initializer}
    old_in = next(i.name for i in m.graph.input if i.name not in inits)
    old_out = m.graph.output[0].name
    names = {old_in: new_in, old_out: new_out}
    taken = {v.name for v in m.graph.value_info} | inits | {o for n in m.graph.node for o in n.output}
    if (new_in in taken and new_in != old_in) or (new_out in taken and new_out != old_out):
        raise MemsrError(f"the graph already has a tensor named {new_in!r} or {new_out!r} besides its image "
                         "input and output", path)
    for v in list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info):
        v.name = names.get(v.name, v.name)
    for node in m.graph.node:
        for field in (node.input, node.output):
            for k, name in enumerate(field):
                field[k] = names.get(name, name)
    return m


class OnnxFileSource(Source):
    """Another project's .onnx file (no sidecar): exported as a copy of its graph (image input and output
    renamed, memsr's metadata added), verified against the file itself run on ONNX Runtime (``backend``, the
    runtime's foreign backend: a fixed-shape model runs a larger image in exact tiles of its size)."""
    backend: object = None

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.fixed is None or tuple(x.shape[2:]) == tuple(self.fixed):
            return self.backend.run(np.ascontiguousarray(x, dtype=np.float32))
        from memsr_deploy.runtime import RunOptions, Upscaler
        up = Upscaler(self.backend, RunOptions())
        return np.stack([up.upscale_array(np.ascontiguousarray(xi.transpose(1, 2, 0))).transpose(2, 0, 1)
                         for xi in x])


def _onnx_file_source(model) -> Source:
    from memsr_deploy.formats.checkpoint import file_sha256
    from memsr_deploy.formats.foreign_graph import describe, load
    from memsr_deploy.runtime.backends.foreign_backend import ForeignOnnxBackend
    p = Path(str(model))
    if not p.is_file():
        raise MemsrError("ONNX model not found", p)
    graph = describe(load(p), p)
    _check_artefact_fits(graph, p)
    renamed = _renamed_io(graph.model, p)
    params = sum(int(np.prod(t.dims)) for t in graph.model.graph.initializer)
    desc = ModelDescription(kind="foreign", scale=graph.scale, arch={"foreign": graph.arch},
                            receptive_radius=graph.halo, layer_widths=[], layer_acts=[], params=params,
                            weights_sha256=file_sha256(p), path=str(p))
    src = OnnxFileSource(None, desc, p.stem.replace(".", "_"), graph=renamed, fixed=graph.fixed)
    src.backend = ForeignOnnxBackend(graph, desc.weights_sha256)
    return src


def _foreign_source(model) -> Source | None:
    """Another project's model, for ONNX only: an .onnx file without a sidecar (_onnx_file_source), or a
    checkpoint (foreign/): its graph as the runtime runs it (halo, scale and channels from the graph), its
    PyTorch network as the verification's reference. None for other files."""
    from memsr_deploy.foreign.checkpoint import read_checkpoint
    from memsr_deploy.formats.foreign_graph import foreign_state, is_foreign_onnx
    from memsr_deploy.runtime.backends.foreign_backend import open_foreign
    if is_foreign_onnx(model):
        return _onnx_file_source(model)
    state = foreign_state(model)
    if state is None:
        return None
    graph, sha = open_foreign(model)
    _check_artefact_fits(graph, model)
    net = read_checkpoint(model, state).module.eval()
    desc = ModelDescription(kind="foreign", scale=graph.scale, arch={"foreign": graph.arch},
                            receptive_radius=graph.halo, layer_widths=[], layer_acts=[],
                            params=sum(p.numel() for p in net.parameters()), weights_sha256=sha, path=str(model))
    return Source(net, desc, Path(str(model)).stem.replace(".", "_"), graph=graph.model)


def load_source(model) -> Source:
    """A model path (stem, .json or .safetensors), a bundled name such as "memsr-x2", or another project's
    checkpoint (ONNX only)."""
    from memsr_deploy.formats.checkpoint import checkpoint_file
    model = checkpoint_file(model)   # a checkpoint is read and hashed once, whichever kind it is
    foreign = _foreign_source(model)
    if foreign is not None:
        return foreign
    net, desc = load_model(model)
    net.eval()
    stem = Path(desc.path).stem if desc.path else str(model)
    sibling = int8_model(desc)
    # Sidecar names are derived by cutting at the first dot, so a dotted stem would collide.
    name = stem.replace(".", "_")
    int8 = None
    if sibling is not None:
        qnet, qdesc = load_model(sibling)
        int8 = Source(qnet.eval(), qdesc, name)
    return Source(net, desc, name, int8)
