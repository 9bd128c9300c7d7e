"""Calibration inputs for full-integer quantisation: LR patches of real photos.

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
