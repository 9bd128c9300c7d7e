"""Fast periodic validation: PSNR-Y on centre crops of validation photos (full photos are for memsr-eval).

The photos are either HR files held out of the training set (``--holdout``: neither trained on nor used for
the final evaluation, so choices made on them do not leak into the reported figures) or a folder of photos.
"""
from __future__ import annotations

import torch

from ..data.datasets import pair_from_hr
from ..data.eval_photos import load_eval_photos
from ..imageio import read_image
from ..quality.evaluate import evaluate_model


def make_validator(scale: int, crop: int = 256, root=None, files=None):
    """A function model -> mean PSNR-Y over HR centre crops of at most crop x crop pixels, on ``files`` (HR
    paths) when given, else on the photos under ``root`` (default: the evaluation photos)."""
    photos = [(p.stem, read_image(p)) for p in files] if files else load_eval_photos(root)
    pairs = [pair_from_hr(name, hr, scale) for name, hr in photos]

    def validate(model: torch.nn.Module) -> float:
        return evaluate_model(model, pairs, scale, max_size=crop, ssim=False, tile=0).mean_psnr

    return validate
