"""PyTorch backend: runs a model file (NAME.safetensors + NAME.json) on the CPU."""
from __future__ import annotations

import numpy as np
import torch

from ...formats.model_file import describe, load_model
from .base import Backend, Capabilities


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model_path=None, threads: int | None = None, module=None):
        if module is not None:  # an in-memory network (tests, notebooks)
            self.model, self.desc = module.eval(), describe(module)
        else:
            self.model, self.desc = load_model(model_path)
        self.source = str(self.desc.path or model_path or "<in-memory model>")
        if threads:
            torch.set_num_threads(int(threads))
        self.caps = Capabilities(scale=self.desc.scale, halo=self.desc.receptive_radius)
        # the runtime speaks [0, 1]; a model trained on [0, 255] gets its own units
        self.value_range = float(self.desc.input.value_range)

    @property
    def plain(self):
        """The plain network (for streaming), or None for a teacher."""
        return self.model if self.desc.is_plain else None

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        with torch.inference_mode():
            if self.value_range == 1.0:
                return self.model(torch.from_numpy(x)).numpy()
            return (self.model(torch.from_numpy(x) * self.value_range) / self.value_range).numpy()
