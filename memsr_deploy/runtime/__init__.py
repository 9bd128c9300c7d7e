"""Tiled and streaming inference runtime behind ``memsr-upscale``.

    from memsr_deploy.runtime import open_backend, Upscaler, RunOptions
    up = Upscaler(open_backend(model="memsr-x2"), RunOptions(tile=128))   # ONNX Runtime, no torch import
    hr = up.upscale_array(lr)                  # H x W x 3 float32 [0, 1] -> 2H x 2W x 3
    up.upscale_file("photo.jpg", "photo_x2.tif")

Modes: exact tiling (any backend; ``tile=0`` is whole-image inference, the reference) and streaming (memory
proportional to the width: layer-wise rolling buffers for plain nets on PyTorch, full-width strips with the
exact halo on every other backend). Both equal whole-image output to float round-off.
"""
from .backends import Backend, open_backend
from ..imageio import Picture, read_picture, write_picture
from .memory import parse_size
from .pipeline import RunOptions, Upscaler

__all__ = ["Backend", "open_backend", "Picture", "read_picture", "write_picture", "parse_size", "RunOptions",
           "Upscaler"]
