"""The trade-off table of every bundled model, for the model card: parameters, MACs per LR pixel, quality on the
evaluation and held-out photos, the int8 drop, the predicted peak at 12 MP whole and tiled, and the seconds of a
12 MP photo on the default path with the ratio to ``vips resize``.

  python -m memsr_bench.bundled_table --out benchmarks/results/bundled.json   # alone on the machine

Quality comes from each model's JSON (``package_bundled`` measured it); the int8 drop is the TFLite int8
export's verification (``memsr-export NAME --target tflite --precision int8 --calib data/photos/train``, mean
PSNR-Y on the evaluation photos against the fp32 model); peaks are the profiler's prediction (fp32, tiles of
512 LR px); seconds are ``memsr-upscale photo.jpg -o out.jpg`` with no flags on a 4000x3000 JPEG made from a
training photo, and ``vips resize S --kernel cubic`` of the same photo, in turn (``default_path.end_to_end_rows``).
``package_bundled`` puts the table in the card when this file exists.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from memsr_deploy.cli.args import summary
from memsr_deploy.formats.model_file import load_model
from memsr_deploy.formats.registry import DEFAULTS, available, resolve
from memsr_deploy.formats.tagged_json import dumps_strict
from memsr_deploy.runtime.host import machine

from .default_path import end_to_end_rows
from .peers import macs_per_lr_pixel
from .runtime_bench import peak_rss
from .tradeoff import peaks

PHOTO_SIZE = (4000, 3000)


def _json(name: str) -> dict:
    return json.loads(resolve(name).with_suffix(".json").read_text())


def quality(name: str) -> dict:
    """Mean PSNR-Y and the gain over bicubic on the evaluation and held-out photos; a teacher's from its scale's
    default student (the students' JSONs carry their teacher's scores beside their own; a lite student's teacher
    is another network)."""
    out = {}
    d = _json(name)
    who = name
    if name.startswith("teacher-"):
        d = _json(DEFAULTS[int(name.split("-x")[1])])
        who = "teacher"
    for key, label in (("evaluation", "eval"), ("evaluation_heldout", "heldout")):
        e = d.get(key)
        if e and who in e:
            out[label] = {"psnr_y": e[who]["mean_psnr_y"],
                          "vs_bicubic": round(e[who]["mean_psnr_y"] - e["bicubic"]["mean_psnr_y"], 3)}
    return out


def int8_drop(name: str, calib: str, work: Path) -> float | str:
    cmd = [sys.executable, "-m", "memsr_export.cli", name, "--target", "tflite", "--precision", "int8",
           "--calib", calib, "-o", str(work / name)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    sidecars = sorted((work / name).glob("*_int8.json"))
    if r.returncode or not sidecars:
        return "n/a: " + (r.stderr.strip().splitlines() or ["no sidecar"])[-1]
    return round(json.loads(sidecars[0].read_text())["verification"]["psnr_y_drop"], 3)


def photo(train: Path, out: Path) -> Path:
    """A 12 MP JPEG from the largest training photo (speed does not depend on the content)."""
    from PIL import Image
    src = max((p for p in train.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")),
              key=lambda p: p.stat().st_size)
    Image.open(src).convert("RGB").resize(PHOTO_SIZE, Image.BICUBIC).save(out, quality=92)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=summary(__doc__))
    ap.add_argument("--out", required=True, help="JSON to write (a .md table beside it)")
    ap.add_argument("--train", default="data/photos/train", help="training photos (int8 calibration, the 12 MP photo)")
    ap.add_argument("--rounds", type=int, default=2, help="timed rounds per model")
    ap.add_argument("--models", default=None, help="comma-separated bundled names (default: every shipped one)")
    ap.add_argument("--no-seconds", action="store_true", help="skip the timings (when the machine is not alone)")
    args = ap.parse_args(argv)
    names = args.models.split(",") if args.models else [n for n in available()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="memsr_bundled_") as tmp:
        work = Path(tmp)
        jpeg = None if args.no_seconds else photo(Path(args.train), work / "photo_12mp.jpg")
        for name in names:
            print(f"{name} ...", file=sys.stderr, flush=True)
            model, desc = load_model(resolve(name))
            row = {"name": name, "scale": desc.scale, "params": desc.params,
                   "macs_per_lr_pixel": round(macs_per_lr_pixel(model, 3)),
                   "quality": quality(name), "peaks": {k: v for k, v in peaks(resolve(name), 512).items()
                                                       if k.startswith("12MP")}}
            del model
            if desc.is_plain:
                row["int8_drop_db"] = int8_drop(name, args.train, work)
            if jpeg is not None:
                e2e = end_to_end_rows(name, jpeg, work, peak_rss, repeat=args.rounds, scale=desc.scale, ext="jpg",
                                      torch_row=False)
                row["seconds_12mp"] = e2e[0].get("seconds")
                row["seconds_range"] = e2e[0].get("seconds_range")
                row["peak_rss_mb"] = e2e[0].get("peak_rss_mb")
                row["times_vips"] = e2e[0].get("times_vips")
                row["vips_seconds"] = e2e[-1].get("seconds")
            rows.append(row)
    command = "python -m memsr_bench.bundled_table " + " ".join(argv if argv is not None else sys.argv[1:])
    doc = {"commands": [command], "machine": machine(), "photo": f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG",
           "rows": rows}
    out = Path(args.out)
    if args.models and out.exists():
        doc = _merged(json.loads(out.read_text()), doc, order=available())
    out.write_text(dumps_strict(doc))
    out.with_suffix(".md").write_text("\n".join(["# Bundled models: the trade-off", "", *markdown(doc), ""]))
    print("\n".join(markdown(doc)))
    return 0


def _merged(old: dict, new: dict, order: list[str]) -> dict:
    """``new``'s rows over ``old``'s (a model measured again replaces its row), when both come from the same
    machine; seconds from two machines are not one table, so then only ``new`` is kept."""
    if old.get("machine") != new["machine"]:
        print(f"note: {old.get('machine')} measured the rows before; they are dropped", file=sys.stderr)
        return new
    mine = {r["name"] for r in new["rows"]}
    rows = [r for r in old["rows"] if r["name"] not in mine] + new["rows"]
    rows.sort(key=lambda r: order.index(r["name"]) if r["name"] in order else len(order))
    return {**new, "commands": old["commands"] + [c for c in new["commands"] if c not in old["commands"]],
            "rows": rows}


def markdown(doc: dict) -> list[str]:
    """The table (the model card's trade-off section and the results file)."""
    def gib(b):
        return f"{b / 2 ** 30:.2f} GiB" if b >= 2 ** 30 else f"{b / 2 ** 20:.0f} MiB"

    def q(r, key):
        v = r["quality"].get(key)
        return f"{v['psnr_y']:.2f} ({v['vs_bicubic']:+.2f})" if v else "-"
    commands = " and ".join(f"`{c}`" for c in doc["commands"])
    L = [f"Measured by {commands} on {doc['machine']}: seconds = `memsr-upscale photo.jpg -o out.jpg` with "
         f"no flags on a {doc['photo']} (median of the rounds), against `vips resize S --kernel cubic` of the same "
         "photo; peaks predicted for a 12 MP input (fp32; tiles of 512 LR px); int8 drop = the TFLite int8 "
         "export's PSNR-Y cost on the evaluation photos; quality = PSNR-Y (gain over bicubic).", "",
         "| model | params | MACs / LR px | eval PSNR-Y | held-out PSNR-Y | int8 drop | peak 12 MP whole | "
         "peak 12 MP tiled | seconds, 12 MP photo | vs vips resize |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        drop = r.get("int8_drop_db", "-")
        drop = f"{drop:.3f} dB" if isinstance(drop, float) else drop
        secs = f"{r['seconds_12mp']:.1f}" if r.get("seconds_12mp") else "-"
        vips = f"{r['times_vips']:.1f}x" if r.get("times_vips") else "-"
        L.append(f"| `{r['name']}` | {r['params']:,} | {r['macs_per_lr_pixel']:,} | {q(r, 'eval')} | "
                 f"{q(r, 'heldout')} | {drop} | {gib(r['peaks']['12MP whole'])} | {gib(r['peaks']['12MP tiled'])} "
                 f"| {secs} | {vips} |")
    return L


if __name__ == "__main__":
    sys.exit(main())
