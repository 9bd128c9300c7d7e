"""memsr-eval: PSNR-Y / SSIM-Y per image and on average, next to the bicubic baseline."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import MemsrError, cli_errors
from . import args as types


def parser() -> types.Parser:
    ap = types.Parser(
        prog="memsr-eval",
        description="Evaluate a super-resolution model by PSNR/SSIM on the Y channel (standard SR protocol: "
                    "LR = MATLAB bicubic of the HR, scale-pixel border shaved), with bicubic as a baseline.")
    ap.add_argument("model", nargs="?", help="'bicubic', a model file (stem, .json or .safetensors), an EDSR checkpoint, "
                                             "another project's model (Compact / ESRGAN / SPAN checkpoint, .onnx; "
                                             "on ONNX Runtime) or a bundled "
                                             "name; default: the bundled model for --scale")
    ap.add_argument("--data", help="evaluation folder (HR images; HR/ + LR_bicubic/X{s}/; image_SRF_{s}/); "
                                   "default: the evaluation photos (memsr-fetch-photos, else scikit-image's)")
    ap.add_argument("--scale", type=types.positive_int,
                    choices=(2, 3, 4), help="upscaling factor (default: the model's, or 2)")
    ap.add_argument("--holdout", type=types.positive_int, default=None, metavar="N",
                    help="score the N photos that memsr-train --holdout N keeps out of --data (its training photos): "
                         "the held-out check, never the evaluation photos")
    ap.add_argument("--lr-dir", help="folder of LR images matching the HR names (instead of deriving them)")
    ap.add_argument("--tile", type=types.non_negative_int, default=None,
                    help="LR tile side for exact tiled inference (0 = whole image; default: automatic)")
    ap.add_argument("--max-size", type=types.positive_int,
                    default=None, help="centre-crop each HR image to at most this side")
    ap.add_argument("--no-ssim", action="store_true", help="PSNR only (faster)")
    ap.add_argument("--save-dir", help="also write the model's outputs as PNG here")
    ap.add_argument("--crops", type=types.positive_int, default=None, metavar="N",
                    help="with --save-dir: write N 100%%-scale crops per photo instead of whole outputs, at its most "
                         "detailed places (chosen from the HR photo, so every model's crops line up), with bicubic's "
                         "and the original's beside them: PHOTO_cropK_MODEL.png")
    ap.add_argument("--crop-size", type=types.positive_int, default=128, help="HR pixels per crop side (default 128)")
    ap.add_argument("--overwrite", action="store_true", help="replace existing images in --save-dir")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    return ap


def _pairs(args, scale):
    from ..data.datasets import find_pairs, holdout_pairs, pair_from_hr
    if args.holdout:
        if not args.data or args.lr_dir:
            raise MemsrError("--holdout needs --data (the training photos it was held out of) and no --lr-dir")
        return holdout_pairs(args.data, scale, args.holdout)
    if args.data:
        return find_pairs(args.data, scale, args.lr_dir)
    if args.lr_dir:
        raise MemsrError("--lr-dir needs --data (the HR images it belongs to)")
    from ..data.eval_photos import load_eval_photos
    return [pair_from_hr(name, hr, scale) for name, hr in load_eval_photos()]


def _data_label(args) -> str:
    if args.holdout:
        return f"the {args.holdout} photos held out of {args.data}"
    return args.data or "the evaluation photos"


def _table(rows, base, model) -> str:
    def f(v, nd):
        return "-" if v is None else f"{v:.{nd}f}"
    width = max([len(r.name) for r in base.images] + [5])
    head = f"{'image':<{width}}  {'bicubic PSNR':>12} {'SSIM':>7}"
    if model is not None:
        head += f"  {model.model[:12] + ' PSNR':>17} {'SSIM':>7}"
    lines = [head, "-" * len(head)]
    for i, b in enumerate(base.images):
        line = f"{b.name:<{width}}  {f(b.psnr, 2):>12} {f(b.ssim, 4):>7}"
        if model is not None:
            m = model.images[i]
            line += f"  {f(m.psnr, 2):>17} {f(m.ssim, 4):>7}"
        lines.append(line)
    lines.append("-" * len(head))
    line = f"{'mean':<{width}}  {f(base.mean_psnr, 2):>12} {f(base.mean_ssim, 4):>7}"
    if model is not None:
        line += f"  {f(model.mean_psnr, 2):>17} {f(model.mean_ssim, 4):>7}"
    lines.append(line)
    return "\n".join(lines)


def _save_names(pairs, scale: int, args, tag: str, boxes) -> dict[str, list[Path]]:
    """The --save-dir files of the model, per photo: its whole output, or its --crops."""
    out = Path(args.save_dir)
    if not args.crops:
        return {p.name: [out / f"{p.name}_x{scale}.png"] for p in pairs}
    return {p.name: [out / f"{p.name}_crop{k}_{tag}.png" for k in range(len(boxes[p.name]))] for p in pairs}


def _plan_saves(names: dict[str, list[Path]], args) -> None:
    """The --save-dir images, checked against the evaluation files before any model runs (outputs.plan)."""
    from ..outputs.plan import OutputPlan, check_folder
    check_folder(Path(args.save_dir), "--save-dir")
    data = Path(args.data) if args.data else None
    inputs = [] if data is None else [p for p in data.rglob("*") if p.is_file()] if data.is_dir() else [data]
    plan = OutputPlan(inputs=inputs, overwrite=args.overwrite)
    for name, files in names.items():
        plan.add(name, *files)
    plan.check()


def _saver(names: dict[str, list[Path]], boxes):
    """save(name, sr) for evaluate_model: the whole output, or its crops at the photo's detail boxes."""
    from ..imageio import save_png
    if not boxes:
        return lambda name, sr: save_png(names[name][0], sr)
    return lambda name, sr: [save_png(f, b.cut(sr)) for f, b in zip(names[name], boxes[name])]


def _save_references(pairs, scale: int, args, boxes) -> None:
    """Bicubic's and the original's crops beside a model's: the same for every model of a scale and photo
    folder, so written only where absent (another model's run may have written them)."""
    from ..data.resize import bicubic_upscale
    from ..imageio import quantise, save_png
    out = Path(args.save_dir)
    for p in pairs:
        if all((out / f"{p.name}_crop{k}_original.png").exists() for k in range(len(boxes[p.name]))):
            continue
        refs = {f"bicubic-x{scale}": quantise(bicubic_upscale(p.lr, scale)), "original": p.hr}
        for k, box in enumerate(boxes[p.name]):
            for tag, img in refs.items():
                if not (out / f"{p.name}_crop{k}_{tag}.png").exists():
                    save_png(out / f"{p.name}_crop{k}_{tag}.png", box.cut(img))


@cli_errors
def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from ..quality.crops import detail_boxes, file_tag
    from ..quality.evaluate import evaluate_model, load_upscaler
    label, model, scale = load_upscaler(args.model, args.scale)
    pairs = _pairs(args, scale)
    if args.crops and not args.save_dir:
        raise MemsrError("--crops writes crops into --save-dir: give --save-dir")
    if args.max_size:   # cut before the crops are placed, so they are placed on what is scored
        from ..quality.evaluate import centre_crop_pair
        pairs = [centre_crop_pair(p, args.max_size, scale) for p in pairs]
    # placed once per photo, from its HR image: the model's crops and the references' are cut at the same boxes
    boxes = {p.name: detail_boxes(p.hr, args.crop_size, args.crops) for p in pairs} if args.crops else {}
    save = None
    if args.save_dir and model != "bicubic":
        names = _save_names(pairs, scale, args, file_tag(label), boxes)
        _plan_saves(names, args)
        save = _saver(names, boxes)
    opts = dict(ssim=not args.no_ssim, progress=not args.json)
    base = evaluate_model("bicubic", pairs, scale, name="bicubic", **opts)
    result = None
    if model != "bicubic":
        result = evaluate_model(model, pairs, scale, name=label, tile=args.tile, save=save, **opts)
    if args.crops:
        _save_references(pairs, scale, args, boxes)
    if args.json:
        doc = {"scale": scale, "data": args.data or "eval-photos", "holdout": args.holdout, "bicubic": base.to_dict(),
               "model": result.to_dict() if result else None}
        print(json.dumps(doc, indent=2, allow_nan=False))
    else:
        print(f"x{scale} on {_data_label(args)} ({len(pairs)} images), Y channel, "
              f"{scale}px border shaved")
        print(_table(pairs, base, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
