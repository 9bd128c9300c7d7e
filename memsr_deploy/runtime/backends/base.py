"""What every backend offers the tiler: run a batch of equal-size LR windows, get their upscaled outputs.

Inputs and outputs of ``run`` are float32 NCHW RGB in [0, 1] (RGBA for a model of four channels,
``Capabilities.channels``); each backend converts to and from whatever its model takes (layout, dtype, range,
quantisation) itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import MemsrError
from ...formats.model_file import ModelDescription

# Messages by which the runtimes report a failed allocation (torch's CPU allocator, ONNX Runtime's arena,
# TFLite's arena); anything else is a real error and must not be retried with a smaller tile.
_OOM_WORDS = ("out of memory", "can't allocate memory", "failed to allocate", "bad_alloc", "not enough memory",
              "allocation failed", "unable to allocate")


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, MemsrError):
        return False
    msg = str(exc).lower()  # the runtimes' own exception types vary (ORT's are plain Exception subclasses)
    return any(w in msg for w in _OOM_WORDS)


def runtime_failure(exc: Exception, runtime: str, source) -> Exception:
    """What to raise when a runtime fails: its out-of-memory as is (the tiler retries smaller), anything else as
    a one-line MemsrError (a wrong input for the artefact is a mismatch between artefact and sidecar)."""
    if is_out_of_memory(exc) or isinstance(exc, MemsrError):
        return exc
    first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
    return MemsrError(f"{runtime} failed to run the artefact ({first})", source)


@dataclass
class Capabilities:
    scale: int
    halo: int                                  # exact receptive radius, LR px
    fixed_shape: tuple[int, int] | None = None  # (H, W) every window must have, halo included
    max_batch: int | None = None               # None: any batch size
    default_tile: int = 256
    dtype_bytes: int = 4                       # bytes per activation value, for the memory budget
    # has run_nhwc (its output may be overwritten by the next call): the tile loop then skips two layout copies
    channels_last: bool = False
    # channels of run's input and output: 3 (RGB), or 4 (RGBA: another project's model that upscales alpha too)
    channels: int = 3


class Backend:
    name = "backend"
    caps: Capabilities
    desc: ModelDescription   # the model's description (for artefacts: rebuilt from the sidecar's source_model)
    source: str              # model or sidecar path, for error messages

    def run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def check_output(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """An artefact whose output does not have the sidecar's scale is the wrong artefact: say so."""
        s = self.caps.scale
        want = (x.shape[0], self.caps.channels, x.shape[2] * s, x.shape[3] * s)
        if tuple(y.shape) != want:
            raise MemsrError(f"model output has shape {tuple(y.shape)}, expected {want} for x{s} "
                             "(artefact and sidecar do not match)", self.source)
        return y
