"""Activation ranges for the int8 models (``formats.onnx_graph``, ``formats.tflite_graph``), measured once on training
photos and stored in the model description as ``int8_activation_ranges``; the weights (and their checksum) are
untouched.

Photos: the training set only (never the evaluation photos). They are split by position in sorted order: every
``HOLD_OUT``-th photo is held out to measure what int8 costs against fp32 (PSNR-Y of the 8-bit outputs), the
rest give calibration patches (LR, bicubic-downscaled by the model's scale, as the network sees them).

Range of a layer: the ``PERCENTILE`` / 100 - ``PERCENTILE`` percentiles of its output over the patches (a few
extreme values would otherwise stretch the 256 levels); the input range is not measured but fixed to the image
range [0, 1] after normalisation, so an 8-bit photo enters the int8 graph without rounding.

Mixed precision (``--keep-float N``): the N conv outputs whose 8-bit rounding costs the most stay float32
(``float_tensors`` in the record; every int8 graph writer honours it). Chosen greedily on the calibration
patches: each step adds the tensor that brings the int8 graph closest to fp32 with the ones chosen before. Their
convs then run in float, so the int8 graph's peak activation memory becomes fp32's.

    python -m memsr_deploy.method.int8_ranges memsr_deploy/pretrained/memsr_x2 [--photos data/photos/train]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from ..errors import MemsrError, cli_errors
from ..formats.tagged_json import dumps_strict

HOLD_OUT = 5          # every 5th training photo measures the cost, the others calibrate
PATCHES = 96
PATCH = 96            # LR pixels
PERCENTILE = 99.999
SEED = 0


def split_photos(photos: list[Path]) -> tuple[list[Path], list[Path]]:
    """(calibration, held out) from the sorted training photos."""
    photos = sorted(photos)
    return ([p for i, p in enumerate(photos) if i % HOLD_OUT != HOLD_OUT - 1],
            [p for i, p in enumerate(photos) if i % HOLD_OUT == HOLD_OUT - 1])


def _lr(paths, scale: int) -> list[np.ndarray]:
    from ..imageio import read_image
    from ..data.resize import bicubic_downscale
    return [bicubic_downscale(read_image(p), scale) for p in paths]


def _session(model):
    from ..runtime.backends.onnx_backend import session
    return session(model.SerializeToString(), None, "calibration graph")


def calibration_patches(lr_images: list[np.ndarray]) -> list[np.ndarray]:
    """``PATCHES`` HWC crops of up to ``PATCH`` px, drawn in turn from the LR photos (seeded)."""
    rng = np.random.default_rng(SEED)
    patches = []
    for i in range(PATCHES):
        img = lr_images[i % len(lr_images)]
        h, w = min(PATCH, img.shape[0]), min(PATCH, img.shape[1])
        y, x = int(rng.integers(0, img.shape[0] - h + 1)), int(rng.integers(0, img.shape[1] - w + 1))
        patches.append(img[y:y + h, x:x + w])
    return patches


def measure_ranges(desc, convs, lr_images: list[np.ndarray], percentile: float = PERCENTILE) -> dict:
    """{"input": [lo, hi], "layers": [[lo, hi], ...]} in model units (each conv's output after its activation)
    over the calibration patches of the LR photos."""
    from ..formats.onnx_graph import build_fp32
    patches = calibration_patches(lr_images)
    sess = _session(build_fp32(desc, convs, layer_outputs=True))
    names = [o.name for o in sess.get_outputs()][2:]   # output, normalised input, then one per conv
    values: list[list[np.ndarray]] = [[] for _ in names]
    for p in patches:
        outs = sess.run(names, {"input": np.ascontiguousarray(p.transpose(2, 0, 1)[None], np.float32)})
        for k, o in enumerate(outs):
            values[k].append(o.ravel()[::7])   # a strided sample keeps percentiles stable at a fraction of the cost
    vr = float(desc.input.value_range)
    layers = []
    for k, v in enumerate(values):
        v = np.concatenate(v)
        lo, hi = np.percentile(v, [100 - percentile, percentile])
        if k == len(values) - 1:
            lo, hi = lo * vr, hi * vr   # the graph's tail works in [0, 1] units; ranges are kept in model units
        layers.append([float(lo), float(hi)])
    spec = desc.input
    norm_lo = [(0.0 - m) / spec.norm for m in spec.mean]
    norm_hi = [(spec.value_range - m) / spec.norm for m in spec.mean]
    return {"input": [float(min(norm_lo)), float(max(norm_hi))], "layers": layers}


def _with_ranges(desc, ranges: dict):
    from ..formats.onnx_graph import INT8_RANGES_KEY
    return dataclasses.replace(desc, extra={**desc.extra, INT8_RANGES_KEY: ranges})


def choose_float_tensors(desc, convs, ranges: dict, patches: list[np.ndarray], count: int) -> list[int]:
    """``count`` conv outputs to keep in float, greedily: each step the one whose float32 brings the LiteRT int8
    graph closest (summed squared error) to the fp32 graph on the patches, given the ones chosen before."""
    from tqdm import tqdm
    from ..formats.onnx_graph import build_fp32
    from ..runtime.backends.litert_backend import LiteRTModelBackend
    if not 0 <= count <= len(convs):
        raise MemsrError(f"--keep-float must be in [0, {len(convs)}] for this model, got {count}", desc.path)
    fp32 = _session(build_fp32(desc, convs))
    by_shape: dict[tuple, list[np.ndarray]] = {}
    for p in patches:   # one batch per patch size: a trial is then a few calls, not one per patch
        by_shape.setdefault(p.shape, []).append(p.transpose(2, 0, 1))
    xs = [np.ascontiguousarray(np.stack(b), np.float32) for b in by_shape.values()]
    refs = [fp32.run(None, {"input": x})[0] for x in xs]

    def error(keep: list[int]) -> float:
        trial = _with_ranges(desc, {**ranges, "float_tensors": sorted(keep)})
        int8 = LiteRTModelBackend(precision="int8", arrays=(trial, convs))
        return sum(float(((int8.run(x) - r) ** 2).sum()) for x, r in zip(xs, refs))

    chosen: list[int] = []
    with tqdm(total=sum(len(convs) - k for k in range(count)), desc="float tensors", unit="trial",
              disable=None) as bar:
        for _ in range(count):
            errors = {}
            for t in range(len(convs)):
                if t not in chosen:
                    errors[t] = error(chosen + [t])
                    bar.update()
            chosen.append(min(errors, key=errors.get))
    return sorted(chosen)


def int8_cost(desc, convs, ranges: dict, lr_images: list[np.ndarray], reference=None) -> float:
    """Mean PSNR-Y (dB) of the int8 output against the fp32 output, both rounded to 8 bits, with the int8 model
    ``--precision int8`` runs (LiteRT). ``reference``: (description, convs) of the fp32 model to measure against
    when it is not this one (a float model whose int8 sibling this is)."""
    from ..quality.metrics import psnr_y
    from ..runtime.backends.litert_backend import LiteRTModelBackend
    from ..formats.onnx_graph import build_fp32
    trial = _with_ranges(desc, ranges)
    fp32, int8 = _session(build_fp32(*(reference or (desc, convs)))), LiteRTModelBackend(precision="int8",
                                                                                          arrays=(trial, convs))
    scores = []
    for img in lr_images:
        x = np.ascontiguousarray(img.transpose(2, 0, 1)[None], np.float32)
        a = fp32.run(None, {"input": x})[0][0].transpose(1, 2, 0)
        b = int8.run(x)[0].transpose(1, 2, 0)
        scores.append(min(psnr_y(np.clip(a, 0, 1), np.clip(b, 0, 1)), 100.0))
    return float(np.mean(scores))


def calibrate(model, photos_dir, progress=print, keep_float: int = 0) -> dict:
    """Measure the ranges and their cost; returns the ``int8_activation_ranges`` record. For a float model
    with an int8 sibling, the ranges are the sibling's and the cost is measured against the float model: what
    ``--precision int8`` costs against the default fp32 run. ``keep_float``: how many conv outputs stay
    float32 (``choose_float_tensors``)."""
    from ..data.datasets import list_images
    from ..formats.model_file import load_plain_arrays
    reference = load_plain_arrays(model)
    desc, convs = load_plain_arrays(model, "int8")
    if desc.path == reference[0].path:
        reference = None
    photos = list_images(photos_dir)
    if len(photos) < HOLD_OUT:
        raise MemsrError(f"need at least {HOLD_OUT} training photos, found {len(photos)}", photos_dir)
    calib, held = split_photos(photos)
    progress(f"calibrating on {len(calib)} photos, measuring on {len(held)} held-out photos"
             + (f" against the float model {Path(reference[0].path).name}" if reference else ""))
    lr = _lr(calib, desc.scale)
    ranges = measure_ranges(desc, convs, lr)
    if keep_float:
        ranges["float_tensors"] = choose_float_tensors(desc, convs, ranges, calibration_patches(lr), keep_float)
        progress(f"kept in float: the outputs of convs {ranges['float_tensors']}")
    cost = int8_cost(desc, convs, ranges, _lr(held, desc.scale), reference)
    return {**ranges, "percentile": PERCENTILE, "calibration": f"{PATCHES} LR patches of {PATCH} px from "
            f"{len(calib)} training photos ({Path(photos_dir).name}, all but every {HOLD_OUT}th in sorted order)",
            "psnr_vs_fp32_db": round(cost, 2),
            "validation": f"{len(held)} held-out training photos (every {HOLD_OUT}th in sorted order)"
            + (f", against the float model {Path(reference[0].path).name}" if reference else "")}


def write_ranges(model, record: dict) -> Path:
    """Add the record to the JSON of the model int8 runs read (``model_file.model_for``), everything else as
    parsed (weights untouched)."""
    from ..formats.model_file import model_for, pair_paths
    from ..outputs.atomic import write_text
    from ..formats.onnx_graph import INT8_RANGES_KEY
    jpath = pair_paths(model_for(model, "int8"))[1]
    meta = json.loads(jpath.read_text())
    meta[INT8_RANGES_KEY] = record
    write_text(jpath, dumps_strict(meta, indent=2) + "\n")
    return jpath


@cli_errors
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m memsr_deploy.method.int8_ranges",
                                description="measure int8 activation ranges of a plain model on training photos "
                                            "and store them in its JSON")
    p.add_argument("models", nargs="+", help="model files (NAME, NAME.json) or bundled names")
    p.add_argument("--photos", default="data/photos/train", help="training photos (never the evaluation set)")
    p.add_argument("--keep-float", type=int, default=0, metavar="N",
                   help="keep the N conv outputs that lose most to 8-bit rounding in float32 (mixed precision: "
                        "a smaller int8 drop, fp32's activation memory; default 0)")
    args = p.parse_args(argv)
    for m in args.models:
        record = calibrate(m, args.photos, progress=lambda s: print(f"{m}: {s}", file=sys.stderr),
                           keep_float=args.keep_float)
        path = write_ranges(m, record)
        print(f"{path}: int8 {record['psnr_vs_fp32_db']} dB PSNR-Y against fp32 ({record['validation']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
