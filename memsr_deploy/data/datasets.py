"""Training patches and evaluation pairs.

Training: every HR photo under a folder (recursive), or a DIV2K tree (DIV2K_train_HR + DIV2K_train_LR_bicubic/X{s}).
Each image is decoded once and kept in memory as uint8 together with its LR: the LR folder's image when there is
one, else the standard LR made once per image (modcrop, MATLAB bicubic by 1/s, 8-bit) - so a training LR patch is
exactly a crop of a real LR image, borders included, not a resize of an isolated patch. Patches are drawn by
``TrainPatches[i]`` from a generator seeded by (seed, epoch, i): the same index always gives the same patch,
which makes resume and DDP sharding exact.

Evaluation: ``find_pairs`` reads Set5/Set14/B100/Urban100/Manga109-style folders in the usual layouts.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from ..errors import MemsrError
from ..imageio import is_image_file, read_image, to_uint8
from .resize import bicubic_downscale, imresize_uint8, modcrop


class DataWarning(UserWarning):
    """An input image was skipped (unreadable or too small); the run goes on without it."""


def list_images(root) -> list[Path]:
    """Image files under ``root`` (recursive, hidden files skipped), in a stable order."""
    root = Path(root)
    if root.is_file():
        return [root] if is_image_file(root) else []
    if not root.is_dir():
        raise MemsrError("no such folder", root)
    return sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p)
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


# ----------------------------------------------------------------------------------------------- LR matching

_LR_SUFFIX = re.compile(r"(?:_SRF_\d+)?(?:_LR|_lr|_LRBI|x\d+|_x\d+)$")


def _base_name(stem: str) -> str:
    """'0001x2' -> '0001', 'img_001_SRF_2_LR' -> 'img_001', 'baby_LR' -> 'baby'; other names unchanged."""
    return _LR_SUFFIX.sub("", stem)


def _hr_base(stem: str) -> str:
    return re.sub(r"(?:_SRF_\d+)?_HR$", "", stem)


def match_lr(hr_files: list[Path], lr_dir: Path) -> dict[Path, Path]:
    """HR file -> LR file, matched by name with the usual suffixes ('x2', '_LR', '_SRF_2_LR') ignored."""
    lr_files = list_images(lr_dir)
    exact = {p.stem: p for p in lr_files}
    by_base: dict[str, Path] = {}
    for p in lr_files:
        by_base.setdefault(_base_name(p.stem), p)
    out = {}
    for h in hr_files:
        # An identical name wins, so an HR called e.g. 'fox2' is not matched through a stripped 'x2'.
        lr = exact.get(h.stem) or by_base.get(_hr_base(h.stem))
        if lr is not None:
            out[h] = lr
    return out


# ------------------------------------------------------------------------------------------ training sources

def _div2k_dirs(root: Path, scale: int) -> tuple[Path, Path | None] | None:
    """(HR dir, LR dir or None) when ``root`` is a DIV2K tree or its DIV2K_*_HR folder."""
    for hr_dir in ([root] if root.name.endswith("_HR") else sorted(root.glob("DIV2K_*_HR"))):
        if not hr_dir.is_dir():
            continue
        prefix = hr_dir.name[: -len("_HR")]
        lr_dir = hr_dir.parent / f"{prefix}_LR_bicubic" / f"X{scale}"
        return hr_dir, (lr_dir if lr_dir.is_dir() else None)
    return None


def training_files(source, scale: int) -> list[tuple[Path, Path | None]]:
    """(HR file, LR file or None) for every training image under ``source`` (a folder, a DIV2K tree, a file,
    or a list of these)."""
    if isinstance(source, (list, tuple)):
        return [pair for s in source for pair in training_files(s, scale)]
    root = Path(source)
    if not root.exists():
        raise MemsrError("training data not found", root)
    div2k = _div2k_dirs(root, scale) if root.is_dir() else None
    if div2k is not None:
        hr_dir, lr_dir = div2k
        hr_files = list_images(hr_dir)
        lr_map = match_lr(hr_files, lr_dir) if lr_dir else {}
        return [(h, lr_map.get(h)) for h in hr_files]
    return [(h, None) for h in list_images(root)]


@dataclass
class _Image:
    name: str
    hr: np.ndarray   # uint8 HxWx3, cropped to s * LR size
    lr: np.ndarray   # uint8 (H/s)x(W/s)x3


def _load_pair(hr_path: Path, lr_path: Path | None, scale: int) -> _Image:
    hr = to_uint8(read_image(hr_path))
    if lr_path is None:
        _check_side(hr, scale, hr_path)
        hr = modcrop(hr, scale)
        lr = imresize_uint8(hr, 1.0 / scale)
    else:
        lr = to_uint8(read_image(lr_path))
        h, w = lr.shape[0] * scale, lr.shape[1] * scale
        if hr.shape[0] < h or hr.shape[1] < w:
            raise MemsrError(f"LR {lr.shape[1]}x{lr.shape[0]} does not fit HR {hr.shape[1]}x{hr.shape[0]} "
                             f"at x{scale}", lr_path)
        hr = hr[:h, :w]
    return _Image(str(hr_path), np.ascontiguousarray(hr), np.ascontiguousarray(lr))


def holdout_files(source, scale: int, n: int) -> list[Path]:
    """``n`` HR files of ``source`` set aside for validation: evenly spread over the sorted list (so they are
    not all from one corner of a folder tree), the same on every run and every rank."""
    files = [h for h, _ in training_files(source, scale)]
    if n <= 0:
        return []
    if n >= len(files):
        raise MemsrError(f"cannot hold out {n} of {len(files)} training images (at least one must remain)", source)
    return [files[int((i + 0.5) * len(files) / n)] for i in range(n)]


def holdout_pairs(source, scale: int, n: int) -> list[EvalPair]:
    """Evaluation pairs of the ``holdout_files``: a DIV2K tree's own LR where it has one, else the standard LR."""
    lr_of = dict(training_files(source, scale))
    return [_pair_from_files(h, lr_of[h], scale) for h in holdout_files(source, scale, n)]


def load_training_images(source, scale: int, min_lr_side: int = 1, progress: bool = True,
                         exclude=()) -> list[_Image]:
    """Decode every training image once (except the HR files in ``exclude``: held out for validation).
    Unreadable images and images whose LR is smaller than ``min_lr_side`` are skipped with a DataWarning; no
    usable image at all is a MemsrError."""
    excluded = {Path(p) for p in exclude}
    files = [(h, lr) for h, lr in training_files(source, scale) if h not in excluded]
    images = []
    for hr_path, lr_path in tqdm(files, desc=f"loading x{scale} training images", unit="img",
                                 disable=not progress or len(files) < 2, leave=False):
        try:
            img = _load_pair(hr_path, lr_path, scale)
        except MemsrError as e:
            warnings.warn(f"skipping {e}", DataWarning, stacklevel=2)
            continue
        if min(img.lr.shape[:2]) < min_lr_side:
            warnings.warn(f"skipping {hr_path}: {img.hr.shape[1]}x{img.hr.shape[0]} is smaller than a "
                          f"{min_lr_side * scale}px training patch", DataWarning, stacklevel=2)
            continue
        images.append(img)
    if not images:
        where = source if not isinstance(source, (list, tuple)) else ", ".join(map(str, source))
        raise MemsrError(f"no usable training images (found {len(files)} image files)", where)
    return images


# --------------------------------------------------------------------------------------------- patch sampler

class TrainPatches(Dataset):
    """Random (LR, HR) training patches: ``ds[i] -> (lr 3 x p x p, hr 3 x ps x ps)`` float32 in [0, 1].

    - images are picked with probability proportional to their area (every pixel equally likely);
    - a patch whose HR standard deviation is below ``flat_threshold`` (sky, walls) is redrawn, up to
      ``max_tries`` times, keeping the busiest one seen; 0 disables the check;
    - ``augment``: random horizontal flip and rotation by a multiple of 90 degrees (the dihedral group);
    - ``channel_shuffle``: also a random permutation of the RGB channels, so that colours the photos lack
      (a saturated purple when the photos have saturated yellows) are seen in training;
    - ``flat_colours``: the share of patches replaced by one flat colour drawn from the whole RGB cube (each
      channel 0 or 255 one time in three, else uniform), LR and HR alike: a flat input must give the same flat
      output, and photos almost never hold a channel at 0 or 255 over an area (students trained without them
      print a dot grid of up to 20 levels on flat magenta);
    - ``exclude``: HR files left out (held out for validation, see ``holdout_files``);
    - ``length`` is the virtual epoch length; ``set_epoch(e)`` changes the draws of the next epoch while
      keeping ``(seed, epoch, index)`` -> patch deterministic.
    """

    def __init__(self, source, scale: int, lr_patch: int = 48, augment: bool = True, seed: int = 0,
                 flat_threshold: float = 0.02, max_tries: int = 10, length: int = 10_000,
                 progress: bool = True, exclude=(), channel_shuffle: bool = False, flat_colours: float = 0.0):
        if scale < 1 or lr_patch < 1 or length < 1:
            raise ValueError("scale, lr_patch and length must be positive")
        self.scale, self.lr_patch, self.augment = int(scale), int(lr_patch), bool(augment)
        self.channel_shuffle = bool(channel_shuffle)
        if not 0.0 <= flat_colours <= 1.0:
            raise ValueError(f"flat_colours is a share of patches in [0, 1], got {flat_colours}")
        self.flat_colours = float(flat_colours)
        self.seed, self.epoch, self.length = int(seed), 0, int(length)
        self.flat_threshold, self.max_tries = float(flat_threshold), max(1, int(max_tries))
        self.images = load_training_images(source, self.scale, min_lr_side=self.lr_patch, progress=progress,
                                           exclude=exclude)
        areas = np.array([im.lr.shape[0] * im.lr.shape[1] for im in self.images], dtype=np.float64)
        self._cum = np.cumsum(areas / areas.sum())

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
        k = int(min(np.searchsorted(self._cum, rng.random(), side="right"), len(self.images) - 1))
        im, p, s = self.images[k], self.lr_patch, self.scale
        y = int(rng.integers(0, im.lr.shape[0] - p + 1))
        x = int(rng.integers(0, im.lr.shape[1] - p + 1))
        hr = im.hr[y * s:(y + p) * s, x * s:(x + p) * s]
        lr = im.lr[y:y + p, x:x + p]
        return lr, hr, float(hr.std()) / 255.0

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The patch pair for ``index`` as HxWx3 uint8 arrays (LR, HR)."""
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        best = None
        for _ in range(self.max_tries):
            lr, hr, std = self._draw(rng)
            if best is None or std > best[2]:
                best = (lr, hr, std)
            if std >= self.flat_threshold:
                break
        lr, hr = best[0], best[1]
        if self.augment:
            rot, flip = int(rng.integers(4)), bool(rng.integers(2))
            lr, hr = np.rot90(lr, rot), np.rot90(hr, rot)
            if flip:
                lr, hr = lr[:, ::-1], hr[:, ::-1]
        if self.channel_shuffle:   # drawn last, so runs without it draw the same patches as before
            order = rng.permutation(3)
            lr, hr = lr[..., order], hr[..., order]
        if self.flat_colours and rng.random() < self.flat_colours:   # likewise last
            # a third of the channels at 0 or 255: saturated colours lie on the cube's faces, which uniform
            # levels would reach once in 128 draws per channel
            pick = rng.random(3)
            colour = np.where(pick < 1 / 6, 0, np.where(pick < 1 / 3, 255, rng.integers(0, 256, size=3)))
            colour = colour.astype(np.uint8)
            lr, hr = np.broadcast_to(colour, lr.shape), np.broadcast_to(colour, hr.shape)
        return np.ascontiguousarray(lr), np.ascontiguousarray(hr)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -self.length <= index < self.length:
            raise IndexError(index)
        lr, hr = self.sample(index % self.length)
        return _to_tensor(lr), _to_tensor(hr)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32) / 255.0)


# ----------------------------------------------------------------------------------------- evaluation pairs

class EvalPair(NamedTuple):
    name: str
    hr: np.ndarray   # HxWx3 float32 [0, 1], sides multiples of the scale
    lr: np.ndarray   # (H/s)x(W/s)x3 float32 [0, 1], on the 8-bit grid


def pair_from_hr(name: str, hr: np.ndarray, scale: int) -> EvalPair:
    """Standard protocol: HR cropped to a multiple of the scale, LR = MATLAB bicubic by 1/scale, 8-bit."""
    hr = modcrop(hr, scale)
    return EvalPair(name, hr, bicubic_downscale(hr, scale))


def _check_side(hr: np.ndarray, scale: int, path) -> None:
    if min(hr.shape[:2]) < scale:
        raise MemsrError(f"{hr.shape[1]}x{hr.shape[0]} is smaller than the scale x{scale} (no LR pixel left)", path)


def _pair_from_files(hr_path: Path, lr_path: Path | None, scale: int, hr: np.ndarray | None = None) -> EvalPair:
    hr = read_image(hr_path) if hr is None else hr
    name = _hr_base(hr_path.stem)
    if lr_path is None:
        return pair_from_hr(name, hr, scale)
    lr = read_image(lr_path)
    h, w = lr.shape[0] * scale, lr.shape[1] * scale
    if hr.shape[0] < h or hr.shape[1] < w or hr.shape[0] - h >= scale or hr.shape[1] - w >= scale:
        raise MemsrError(f"LR is {lr.shape[1]}x{lr.shape[0]} but HR {hr_path.name} is "
                         f"{hr.shape[1]}x{hr.shape[0]}: not an x{scale} pair", lr_path)
    return EvalPair(name, hr[:h, :w], lr)


def _srf_layout(root: Path, scale: int) -> list[tuple[Path, Path | None]] | None:
    """Huang et al.'s release: image_SRF_{s}/img_001_SRF_{s}_HR.png + ..._LR.png (plus other methods' outputs)."""
    folder = root / f"image_SRF_{scale}" if (root / f"image_SRF_{scale}").is_dir() else root
    hrs = sorted(p for p in folder.glob("*_HR.*") if is_image_file(p))
    if not hrs:
        return None
    pairs = []
    for h in hrs:
        lrs = [p for p in folder.glob(h.name.replace("_HR.", "_LR.").rsplit(".", 1)[0] + ".*") if is_image_file(p)]
        pairs.append((h, lrs[0] if lrs else None))
    return pairs


def eval_files(root, scale: int, lr_dir=None) -> list[tuple[Path, Path | None]]:
    """(HR file, LR file or None) of an evaluation set; see ``find_pairs`` for the layouts."""
    root = Path(root)
    if not root.exists():
        raise MemsrError("evaluation data not found", root)
    if lr_dir is not None:
        lr_dir = Path(lr_dir)
        if not lr_dir.is_dir():
            raise MemsrError("LR folder not found", lr_dir)
        hr_root = root / "HR" if (root / "HR").is_dir() else root
        hr_files = [p for p in list_images(hr_root) if lr_dir not in p.parents]
        lr_map = match_lr(hr_files, lr_dir)
        missing = [h for h in hr_files if h not in lr_map]
        if missing:
            raise MemsrError(f"no LR image for {missing[0].name} in {lr_dir}"
                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""), lr_dir)
        return [(h, lr_map[h]) for h in hr_files]
    if root.is_dir() and (root / "HR").is_dir():
        hr_files = list_images(root / "HR")
        lr_sub = next((d for d in (root / "LR_bicubic" / f"X{scale}", root / "LR_bicubic" / f"x{scale}",
                                   root / f"LR_bicubic_X{scale}", root / "LR" / f"X{scale}")
                       if d.is_dir()), None)
        lr_map = match_lr(hr_files, lr_sub) if lr_sub is not None else {}
        return [(h, lr_map.get(h)) for h in hr_files]
    if root.is_dir():
        srf = _srf_layout(root, scale)
        if srf is not None:
            return srf
    return [(h, None) for h in list_images(root)]


def find_pairs(root, scale: int, lr_dir=None) -> list[EvalPair]:
    """Evaluation pairs (name, HR, LR) from a Set5/Set14/B100/Urban100/Manga109-style folder:

    - a folder (or single file) of HR images: LR derived by the standard protocol (``pair_from_hr``);
    - ``HR/`` + ``LR_bicubic/X{s}/`` (names like ``baby.png`` / ``babyx2.png``);
    - ``image_SRF_{s}/*_HR.png`` + ``*_LR.png`` (Huang et al.), given the set folder or image_SRF_{s} itself;
    - HR images + an explicit ``lr_dir``.
    Missing LR files in the second and third layouts fall back to the derived LR.
    """
    files = eval_files(root, scale, lr_dir)
    if not files:
        raise MemsrError("no images found", root)
    pairs = []
    for h, lr in files:
        hr_img = read_image(h)
        # The metrics shave a border of `scale` pixels: a side under 3 * scale leaves (almost) nothing to score.
        if min(hr_img.shape[:2]) < 3 * scale:
            warnings.warn(f"skipping {h}: {hr_img.shape[1]}x{hr_img.shape[0]} is too small to evaluate at "
                          f"x{scale} (needs {3 * scale}px per side)", DataWarning, stacklevel=2)
            continue
        pairs.append(_pair_from_files(h, lr, scale, hr_img))
    if not pairs:
        raise MemsrError(f"no image large enough for x{scale} (found {len(files)} image files)", root)
    return pairs

