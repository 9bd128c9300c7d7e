"""Calibration for full-integer quantisation: LR patches of real photos, and the ranges the net's tensors take
on them.

The network sees LR images at run time, so calibration photos are bicubic-downscaled by the model's scale
before patches are cut. One extra sample is a horizontal 0..1 ramp: it pins the calibrated input range to
exactly [0, value_range], so a uint8 input of an int8-uint8io artefact is the pixel byte itself
(scale 1/255, zero point 0) instead of a range that depends on which photos happened to be used.
"""
from __future__ import annotations

import numpy as np

from memsr_deploy.data.resize import bicubic_downscale

from .photos import calibration_images, random_patches

PATCHES = 64       # enough for stable per-tensor activation ranges on a plain chain
PATCH_SIZE = 64    # LR pixels, for dynamic-shape artefacts (fixed ones calibrate at their own size)


def ramp(h: int, w: int) -> np.ndarray:
    row = np.linspace(0.0, 1.0, w, dtype=np.float32)
    return np.repeat(np.repeat(row[None, :, None], h, axis=0), 3, axis=2)


def calibration_samples(scale: int, calib_dir=None, size: tuple[int, int] | None = None,
                        count: int = PATCHES, value_range: float = 1.0, seed: int = 0) -> list[np.ndarray]:
    """NHWC float32 batches of one patch each, in model units, ramp included."""
    size = size or (PATCH_SIZE, PATCH_SIZE)
    lr_images = [bicubic_downscale(img, scale) for img in calibration_images(calib_dir)
                 if min(img.shape[:2]) >= scale]
    if not lr_images:  # every image smaller than the scale: use them as they are rather than fail
        lr_images = calibration_images(calib_dir)
    patches = random_patches(lr_images, size, count, seed) + [ramp(*size)]
    return [(p[None] * value_range).astype(np.float32) for p in patches]


def tensor_ranges(source, layers, samples: list[np.ndarray]) -> tuple[list[float], list[list[float]]]:
    """(input range, one range per conv output) in model units: the smallest and largest value that each tensor
    an int8 graph quantises (the normalised input, every conv's output after its activation) takes over the NHWC
    samples, the calibration TF's converter did; with the ramp sample the input range is exactly the image
    range. ``layers``: the source's plain layers or an equalised copy. Measured on ONNX Runtime with the float
    graph that ``memsr_deploy.method.int8_ranges`` measures a description's ranges on (several times faster
    than PyTorch on these patches)."""
    from memsr_deploy.formats.onnx_graph import build_fp32
    from memsr_deploy.runtime.backends.onnx_backend import session
    graph = build_fp32(source.desc, [(layer.weight, layer.bias) for layer in layers], layer_outputs=True,
                       model_units=True)
    sess = session(graph.SerializeToString(), None, source.desc.path)
    names = [o.name for o in sess.get_outputs()][1:]   # after the image: the normalised input, then each conv
    lo = hi = None
    for s in samples:
        outs = sess.run(names, {"input": np.ascontiguousarray(s.transpose(0, 3, 1, 2))})
        cur_lo, cur_hi = np.array([o.min() for o in outs], np.float64), np.array([o.max() for o in outs], np.float64)
        lo, hi = (cur_lo, cur_hi) if lo is None else (np.minimum(lo, cur_lo), np.maximum(hi, cur_hi))
    return [float(lo[0]), float(hi[0])], [[float(a), float(b)] for a, b in zip(lo[1:], hi[1:])]
