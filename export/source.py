"""The model being exported: loaded once from its file pair, with what every exporter needs from it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.model_file import ModelDescription, load_model
from memsr_deploy.method.models import InputSpec, PlainSR


@dataclass
class Layer:
    """One 3x3 conv of a plain net as plain arrays (PyTorch layout OIHW)."""
    weight: np.ndarray
    bias: np.ndarray
    act: str  # "relu" or "none"


@dataclass
class Source:
    model: torch.nn.Module
    desc: ModelDescription
    name: str  # default stem for artefact names

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
        acts = [*self.model.acts, "none"]
        return [Layer(c.weight.detach().cpu().numpy().astype(np.float32),
                      c.bias.detach().cpu().numpy().astype(np.float32), a)
                for c, a in zip(self.model.convs(), acts)]

    def run(self, x: np.ndarray) -> np.ndarray:
        """The PyTorch reference: NCHW float32 in model units -> NCHW float32."""
        with torch.no_grad():
            return self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    def summary(self) -> dict:
        """The sidecar's source_model block."""
        return {"name": self.name, "kind": self.desc.kind, "path": self.desc.path,
                "weights_sha256": self.desc.weights_sha256, "receptive_radius": self.halo,
                "layer_widths": list(self.desc.layer_widths), "layer_acts": list(self.desc.layer_acts)}


def load_source(model) -> Source:
    """A model path (stem, .json or .safetensors) or a bundled name such as "memsr-x2"."""
    net, desc = load_model(model)
    net.eval()
    stem = Path(desc.path).stem if desc.path else str(model)
    # Sidecar names are derived by cutting at the first dot, so a dotted stem would collide.
    return Source(net, desc, stem.replace(".", "_"))
