"""PyTorch backend: runs a model file (NAME.safetensors + NAME.json) on the CPU."""
from __future__ import annotations

import numpy as np
import torch

from ...model_file import load_model
from .base import Backend, Capabilities


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model_path, threads: int | None = None):
        self.model, self.desc = load_model(model_path)
        self.source = str(self.desc.path or model_path)
        if threads:
            torch.set_num_threads(int(threads))
        self.caps = Capabilities(scale=self.desc.scale, halo=self.desc.receptive_radius)

    @property
    def plain(self):
        """The plain network (for streaming), or None for a teacher."""
        return self.model if self.desc.is_plain else None

    def run(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
