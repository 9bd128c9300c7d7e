"""Write the test vectors the Android demo's Java core must reproduce exactly.

Every expected value comes from the Python code that is the spec - tile_plan (plan and output placement),
formats.memory_budget (the memory-budget rule), sidecar.read_sidecar (which sidecars are accepted, with what error),
runtime.backends.artefact.TensorSpec (pixel <-> tensor conversion) and Pillow's exif_transpose (EXIF
orientation) - never from a formula restated here.

    python android_demo/make_test_vectors.py OUT.json [--export-dir DIR]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from memsr_deploy.errors import MemsrError  # noqa: E402
from memsr_deploy.formats.memory_budget import per_pixel_channels, peak_bytes_tiled, tile_for_budget  # noqa: E402
from memsr_deploy.formats.sidecar import Sidecar, read_sidecar, sidecar_text  # noqa: E402
from memsr_deploy.formats.tagged_json import dumps_strict  # noqa: E402
from memsr_deploy.formats.tile_plan import plan, plan_to_json  # noqa: E402
from memsr_deploy.method.plain_layout import shuffle_after  # noqa: E402

# (height, width): degenerate, primes, odd shapes, a 12 MP photo and a 100 MP one.
SIZES = [(1, 1), (1, 7), (2, 3), (7, 13), (13, 7), (64, 64), (65, 63), (97, 101), (257, 509), (1009, 2003),
         (3000, 4000), (4000, 3000), (8160, 12240)]
TILES = [1, 7, 64, 256, 0]
HALOS = [0, 1, 3, 18]
SCALES = [2, 3, 4]
FULL_TILE_LIST_MAX = 400  # tiles per plan up to which every tile's window/crop/dest is listed too


def plan_cases() -> list[dict]:
    cases, k = [], 0
    for h, w in SIZES:
        big = h * w > 10_000_000
        for tile in TILES:
            # a 1-pixel tile over 100 MP is 100M tiles: one halo is enough to check that axis list
            for halo in (HALOS[-1:] if big and tile == 1 else HALOS):
                scale = SCALES[k % len(SCALES)]
                k += 1
                case = plan_to_json(h, w, tile, halo, scale)
                case["requested_tile"] = tile
                case["count"] = len(case["rows"]) * len(case["cols"])
                if case["count"] <= FULL_TILE_LIST_MAX:
                    tiles = plan(h, w, tile, halo)
                    case["tiles"] = [{"window": _rect(t.window()), "crop": _rect(t.crop(scale)),
                                      "dest": _rect(t.dest(scale))} for t in tiles]
                cases.append(case)
    return cases


def _rect(slices) -> list[int]:
    """(rows, cols) slices -> [x, y, width, height], the Java Rect order."""
    ys, xs = slices
    return [xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start]


def plan_error_cases() -> list[dict]:
    out = []
    for h, w, tile, halo in [(0, 5, 4, 1), (5, 0, 4, 1), (-3, 5, 4, 1), (5, 5, 4, -1)]:
        try:
            plan(h, w, tile, halo)
        except ValueError as e:
            out.append({"height": h, "width": w, "tile": tile, "halo": halo, "error": str(e)})
        else:
            raise AssertionError(f"tile_plan accepted {h}x{w} tile {tile} halo {halo}")
    return out


def _desc(widths, halo, scale=2, tail="shuffle"):
    # budget.py reads only these attributes of a plain model's description
    shuffles = shuffle_after(len(widths) - len(shuffle_after(0, scale, tail)), scale, tail)
    return SimpleNamespace(kind="student", is_plain=True, layer_widths=list(widths), receptive_radius=halo,
                           shuffles=shuffles, path=None)


def budget_cases() -> list[dict]:
    models = [  # (scale, layer widths incl. the tail's, halo = number of convs, tail)
        (2, [8, 8, 8, 12], "shuffle"),
        (2, [64] * 33 + [12], "shuffle"),
        (3, [48, 56, 40, 64, 32, 27], "shuffle"),
        (4, [32] * 10 + [48], "shuffle"),
        (4, [16, 48], "shuffle"),         # tail-dominated: P = 2*48
        (2, [180, 12], "shuffle"),        # a wide first layer: P = 3 + 180 + ...
        # EDSR's upsampler: HR maps dominate (x4: the second stage's 4*W channels at 2x, shuffled, copied)
        (2, [64] * 4 + [256, 3], "upsampler"),
        (3, [8, 8, 72, 3], "upsampler"),
        (4, [16, 16, 64, 64, 3], "upsampler"),
    ]
    out = []
    for scale, widths, tail in models:
        halo = len(widths)
        desc = _desc(widths, halo, scale, tail)
        p = per_pixel_channels(desc)
        for dtype_bytes in (1, 2, 4):
            for batch in (1, 2, 4):
                unit = batch * p * dtype_bytes
                need1 = peak_bytes_tiled(desc, 1, dtype_bytes, batch)
                side = 2 * halo + 256
                budgets = {0, 1, need1 - 1, need1, need1 + 1, unit * side * side - 1, unit * side * side,
                           64 << 20, 256 << 20, 1 << 30, 3_000_000_007, 1 << 40, (1 << 62) + 12345}
                for budget in sorted(b for b in budgets if b >= 0):
                    case = {"scale": scale, "layer_widths": widths, "shuffles": desc.shuffles, "halo": halo,
                            "budget": budget, "dtype_bytes": dtype_bytes, "batch": batch, "per_pixel_channels": p}
                    try:
                        tile = tile_for_budget(desc, budget, dtype_bytes, batch)
                        case["tile"] = tile
                        case["peak_bytes_tiled"] = peak_bytes_tiled(desc, tile, dtype_bytes, batch)
                    except MemsrError as e:
                        case["error"] = str(e)
                    out.append(case)
    # a halo that is not the layer count (the rule takes them separately)
    for halo in (0, 5, 100):
        desc = _desc([32, 32, 12], halo)
        for budget in (1 << 20, 50 << 20):
            case = {"scale": 2, "layer_widths": [32, 32, 12], "shuffles": desc.shuffles, "halo": halo,
                    "budget": budget, "dtype_bytes": 4, "batch": 1, "per_pixel_channels": per_pixel_channels(desc)}
            try:
                case["tile"] = tile_for_budget(desc, budget, 4, 1)
                case["peak_bytes_tiled"] = peak_bytes_tiled(desc, case["tile"], 4, 1)
            except MemsrError as e:
                case["error"] = str(e)
            out.append(case)
    return out


def _sidecar(**over) -> Sidecar:
    base = dict(target="tflite", file="memsr-x2_fp32.tflite", precision="fp32", scale=2, halo=12, tile=256,
                layout={"input": "NHWC", "output": "NHWC"},
                input={"dtype": "float32", "range": [0.0, 1.0], "quant": None},
                output={"dtype": "float32", "range": [0.0, 1.0], "quant": None},
                source_model={"name": "memsr-x2", "kind": "student", "path": "memsr-x2.json",
                              "weights_sha256": "0" * 64, "receptive_radius": 12,
                              "layer_widths": [32] * 11 + [12], "layer_acts": ["relu"] * 11 + ["none"]},
                file_sha256="ab" * 32, verification={"passed": True, "max_abs_diff": 2.4e-7,
                                                     "psnr_y_vs_torch": float("inf")},
                tools={"torch": "2.13.0"}, created="2025-01-01T00:00:00Z")
    base.update(over)
    return Sidecar(**base)


def sidecar_texts() -> list[tuple[str, str]]:
    def dump(d):
        return dumps_strict(d, indent=2)

    # as write_sidecar writes it: the exact verification's infinite PSNR becomes null (strict JSON)
    good = json.loads(sidecar_text(_sidecar()))
    x4_int8 = _sidecar(file="memsr-x4_int8-uint8io.tflite", precision="int8-uint8io", scale=4, halo=9, tile=128,
                       input={"dtype": "uint8", "range": [0.0, 1.0], "quant": {"scale": 1 / 255, "zero_point": 0}},
                       output={"dtype": "uint8", "range": [0.0, 1.0],
                               "quant": {"scale": 0.00392156862745098, "zero_point": 0}},
                       source_model={"name": "memsr-x4", "layer_widths": [24] * 8 + [48]},
                       input_shape=[146, 146]).to_json()
    x3_onnx = _sidecar(target="onnx", file="m.onnx", layout={"input": "NCHW", "output": "NCHW"}, scale=3,
                       shape_range={"min": [1, 1], "max": [4096, 4096]}).to_json()
    # a two-file artefact: the .param is `file`, the .bin `data_file`, each with its checksum
    ncnn = _sidecar(target="ncnn", file="m_ncnn_int8.param", precision="int8", data_file="m_ncnn_int8.bin",
                    data_sha256="cd" * 32, layout={"input": "NCHW", "output": "NCHW"}).to_json()
    # EDSR's upsampler tail: two conv + shuffle stages, then a conv to 3 channels at the output resolution
    x4_upsampler = _sidecar(scale=4, halo=4, source_model={"name": "edsr-student-x4", "receptive_radius": 4,
                                                           "layer_widths": [16, 16, 64, 64, 3], "tail": "upsampler"}
                            ).to_json()
    cases = [("good_x2_fp32", dump(good)), ("good_x4_int8_fixed", dump(x4_int8)), ("good_x3_onnx", dump(x3_onnx)),
             ("good_x2_ncnn", dump(ncnn)), ("good_x4_upsampler", dump(x4_upsampler)),
             ("compact_unicode", json.dumps({**good, "created": "2025-01-01T00:00:00Z \u00e9\u6f22"},
                                            separators=(",", ":"), ensure_ascii=True))]

    def variant(name, edit):
        d = json.loads(json.dumps(good))
        edit(d)
        cases.append((name, dump(d)))

    variant("wrong_format", lambda d: d.update(format="memsr-model"))
    variant("version_2", lambda d: d.update(version=2))
    variant("no_version", lambda d: d.pop("version"))
    variant("missing_tile", lambda d: d.pop("tile"))
    variant("missing_two", lambda d: (d.pop("layout"), d.pop("source_model")))
    variant("bad_target", lambda d: d.update(target="tensorrt"))
    variant("bad_precision", lambda d: d.update(precision="fp8"))
    variant("scale_5", lambda d: d.update(scale=5))
    variant("negative_halo", lambda d: d.update(halo=-1))
    variant("zero_tile", lambda d: d.update(tile=0))
    variant("extra_fields_ok", lambda d: d.update(future_field={"a": [1, 2, None]}))
    variant("whole_float_radius_ok", lambda d: d.update(halo=12.0, receptive_radius=12.0))
    for name, edit in field_faults():
        variant(name, edit)
    cases.append(("not_json", '{"format": "memsr-artefact", "version": 1,'))
    cases.append(("array_not_object", "[1, 2, 3]"))
    cases.append(("trailing_text", dump(good) + " x"))
    # not JSON, yet what Python's json.dumps writes by default (older memsr did): both readers refuse it
    cases.append(("infinity", json.dumps(_sidecar().to_json(), indent=2)))
    cases.append(("nan_in_array", dump(good).replace('"range": [\n      0.0,', '"range": [\n      NaN,', 1)))
    return cases


def field_faults() -> list[tuple[str, object]]:
    """Edits of the good x2 sidecar that validate_sidecar refuses field by field: one per check, plus the edge
    of each (a whole float where an integer is due, a bool where a number is, a missing member)."""
    def io(side, **kw):
        return lambda d: d[side].update(kw)

    def pop(*keys):
        def edit(d):
            o = d
            for k in keys[:-1]:
                o = o[k]
            o.pop(keys[-1])
        return edit

    def put(**kw):
        return lambda d: d.update(kw)

    return [
        ("missing_sha", pop("file_sha256")),
        ("file_in_folder", put(file="models/m.tflite")),
        ("file_dotdot", put(file="..")),
        ("file_empty", put(file="")),
        ("file_not_string", put(file=3)),
        ("sha_uppercase", put(file_sha256="AB" * 32)),
        ("sha_short", put(file_sha256="ab" * 31)),
        ("sha_null", put(file_sha256=None)),
        ("data_file_on_tflite", put(data_file="m.bin", data_sha256="cd" * 32)),
        ("data_sha_without_data_file", put(data_sha256="cd" * 32)),
        ("data_file_null_ok", put(data_file=None, data_sha256=None)),
        ("ncnn_without_data_file", put(target="ncnn")),
        ("ncnn_data_file_in_folder", put(target="ncnn", data_file="w/m.bin", data_sha256="cd" * 32)),
        ("ncnn_data_file_is_file", lambda d: d.update(target="ncnn", data_file=d["file"], data_sha256="cd" * 32)),
        ("ncnn_data_sha_missing", put(target="ncnn", data_file="m.bin")),
        ("ncnn_data_sha_uppercase", put(target="ncnn", data_file="m.bin", data_sha256="CD" * 32)),
        ("radius_mismatch", put(receptive_radius=11)),
        ("radius_bool", put(receptive_radius=True)),
        ("radius_null", put(receptive_radius=None)),
        ("layout_bad_output", lambda d: d["layout"].update(output="CHW")),
        ("layout_missing_input", pop("layout", "input")),
        ("layout_string", put(layout="NHWC")),
        ("input_null", put(input=None)),
        ("output_dtype_float64", io("output", dtype="float64")),
        ("input_dtype_missing", pop("input", "dtype")),
        ("input_range_reversed", io("input", range=[1.0, 0.0])),
        ("input_range_equal", io("input", range=[1, 1])),
        ("input_range_bool", io("input", range=[False, 1.0])),
        ("output_range_three", io("output", range=[0.0, 0.5, 1.0])),
        ("output_range_missing", pop("output", "range")),
        ("output_range_string", io("output", range=["0", "1"])),
        ("quant_zero_scale", io("output", quant={"scale": 0.0, "zero_point": 0})),
        ("quant_tiny_scale_string_zp", io("output", quant={"scale": 1e-05, "zero_point": "0"})),
        ("quant_whole_float_zero_point", io("input", quant={"scale": 0.5, "zero_point": 0.0})),
        ("quant_missing_scale", io("input", quant={"zero_point": 0})),
        ("quant_list", io("input", quant=[0.5, 0])),
        ("uint8_without_quant", io("input", dtype="uint8")),
        ("int8_without_quant", io("output", dtype="int8", range=[-1.0, 1.0])),
        ("input_shape_float", put(input_shape=[146.0, 146])),
        ("input_shape_zero", put(input_shape=[0, 64])),
        ("input_shape_three", put(input_shape=[1, 64, 64])),
        ("input_shape_object", put(input_shape={"h": 64, "w": 64})),
        ("shape_range_min_over_max", put(shape_range={"min": [8, 8], "max": [4, 4096]})),
        ("shape_range_missing_max", put(shape_range={"min": [1, 1]})),
        ("shape_range_list", put(shape_range=[[1, 1], [64, 64]])),
        ("source_model_string", put(source_model="memsr-x2")),
        ("source_model_radius_mismatch", lambda d: d["source_model"].update(receptive_radius=9)),
        ("source_model_radius_float", lambda d: d["source_model"].update(receptive_radius=12.5)),
        ("source_model_tail_unknown", lambda d: d["source_model"].update(tail="pixelshuffle")),
        ("source_model_tail_null", lambda d: d["source_model"].update(tail=None)),
        ("source_model_tail_shuffle_ok", lambda d: d["source_model"].update(tail="shuffle")),
        # two faults: both readers must report the first in validate_sidecar's order
        ("file_and_layout", put(file="a/b", layout={})),
        ("output_before_shape", lambda d: (d["output"].update(dtype="bool"), d.update(input_shape=[0, 0]))),
    ]


def sidecar_cases() -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in sidecar_texts():
            path = Path(tmp) / f"{name}.json"
            path.write_text(text)
            case = {"name": name, "text": text}
            try:
                sc = read_sidecar(path, check_file=False)
            except MemsrError as e:
                case["ok"] = False
                case["error"] = str(e).removeprefix(f"{path}: ")
            else:
                case["ok"] = True
                sm = sc.source_model or {}
                case["expect"] = {"target": sc.target, "file": sc.file, "precision": sc.precision,
                                  "scale": sc.scale, "halo": sc.halo, "tile": sc.tile,
                                  "file_sha256": sc.file_sha256, "input_shape": sc.input_shape,
                                  "data_file": sc.data_file, "data_sha256": sc.data_sha256,
                                  "layout": sc.layout, "input": sc.input, "output": sc.output,
                                  "layer_widths": sm.get("layer_widths"), "tail": sm.get("tail", "shuffle")}
                if sm.get("layer_widths"):
                    case["expect"]["shuffles"] = _desc(sm["layer_widths"], sc.halo, sc.scale,
                                                       case["expect"]["tail"]).shuffles
            out.append(case)
    return out


def codec_cases() -> list[dict]:
    from memsr_deploy.runtime.backends.artefact import TensorSpec

    samples = np.arange(256, dtype=np.uint8)
    x = samples.astype(np.float32) * np.float32(1.0 / 255.0)   # imageio.to_float
    img = x.reshape(1, 1, 1, 256).repeat(3, axis=1)             # NCHW: every sample in every channel
    specs = [
        {"dtype": "float32", "range": [0.0, 1.0], "quant": None},
        {"dtype": "float32", "range": [0.0, 255.0], "quant": None},
        {"dtype": "float32", "range": [-1.0, 1.0], "quant": None},
        {"dtype": "uint8", "range": [0.0, 1.0], "quant": {"scale": 1 / 255, "zero_point": 0}},
        {"dtype": "uint8", "range": [0.0, 1.0], "quant": {"scale": 0.0041, "zero_point": 3}},
        {"dtype": "int8", "range": [0.0, 1.0], "quant": {"scale": 1 / 255, "zero_point": -128}},
        {"dtype": "int8", "range": [-1.0, 1.0], "quant": {"scale": 0.0079, "zero_point": 0}},
        {"dtype": "uint8", "range": [0.0, 255.0], "quant": {"scale": 2.0, "zero_point": 1}},  # exact .5 ties
    ]
    rng = np.random.default_rng(0)
    out = []
    for spec in specs:
        ts = TensorSpec(spec, "NHWC", "input", None)
        enc = ts.encode(img)                                    # 1 x 1 x 256 x 3
        if ts.quant:
            info = np.iinfo(ts.dtype)
            raw = rng.integers(info.min, info.max + 1, size=(1, 1, 300, 3)).astype(ts.dtype)
            raw[0, 0, :256, 0] = np.arange(256) + info.min      # every code
        else:
            raw = rng.uniform(-0.2 * spec["range"][1], 1.2 * spec["range"][1], size=(1, 1, 300, 3))
            raw = raw.astype(np.float32)
            raw[0, 0, :256, 0] = enc[0, 0, :, 0]                # the round trip too
            ties = _halfway_values(spec["range"])                # where rint (half to even) matters
            raw[0, 0, 256:256 + len(ties), 1] = ties
        dec = np.clip(np.rint(ts.decode(raw) * np.float32(255.0)), 0, 255).astype(np.uint8)  # from_float
        out.append({"spec": spec, "samples": samples.tolist(), "encoded": enc[0, 0, :, 0].tolist(),
                    "raw": raw.reshape(-1).tolist(), "decoded": dec.transpose(0, 2, 3, 1).reshape(-1).tolist()})
    return out


def _halfway_values(rng) -> np.ndarray:
    """float32 tensor values that decode to exactly k + 0.5 before rounding to 8 bits."""
    lo, hi = (np.float32(v) for v in rng)
    found = []
    for k in range(255):
        for v in (np.float32((k + 0.5) / 255.0 * (hi - lo) + lo), np.float32((k + 0.5) / 255.0)):
            x = v if (lo, hi) == (0.0, 1.0) else (v - lo) * np.float32(1.0 / (hi - lo))
            if np.float32(x * np.float32(255.0)) == k + 0.5:
                found.append(v)
                break
    assert len(found) > 20, "too few exact ties to test rounding"
    return np.array(found[:44], dtype=np.float32)


def orientation_cases() -> list[dict]:
    from PIL import Image, ImageOps

    out = []
    for w, h in [(3, 2), (5, 4), (1, 3)]:
        raw = np.arange(w * h * 3, dtype=np.uint8).reshape(h, w, 3) * 3  # distinct RGB per pixel
        for o in range(1, 9):
            img = Image.fromarray(raw, "RGB")
            exif = img.getexif()
            exif[0x0112] = o
            img.info["exif"] = exif.tobytes()
            shown = np.asarray(ImageOps.exif_transpose(img))
            out.append({"orientation": o, "raw_w": w, "raw_h": h, "raw": _argb(raw),
                        "display_w": shown.shape[1], "display_h": shown.shape[0], "display": _argb(shown)})
    return out


def _argb(rgb: np.ndarray) -> list[int]:
    """Opaque ARGB pixels as Java's signed ints."""
    p = rgb.reshape(-1, 3).astype(np.int64)
    return ((0xFF << 24 | p[:, 0] << 16 | p[:, 1] << 8 | p[:, 2]) - (1 << 32)).tolist()


def checksum_cases() -> list[dict]:
    out = []
    for n in (0, 1, 3, 65536, 200_003):
        data = bytes((i * 7 + 3) % 256 for i in range(n))
        out.append({"length": n, "sha256": hashlib.sha256(data).hexdigest()})
    return out


def exported_cases(out_dir: Path) -> list[dict]:
    """Real sidecars from the exporter (a tiny random x2 student): what the app will be given must parse."""
    from memsr_export import export_model
    from memsr_deploy.method import models
    from memsr_deploy.formats.model_file import save_model
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    cfg = models.PlainConfig(scale=2, widths=[8, 8, 8], acts=["relu", "relu", "none"], input=models.InputSpec())
    save_model(models.PlainSR(cfg).eval(), out_dir / "tiny_x2", kind="student")
    # a student with EDSR's upsampler tail (the paper's --tail teacher): its sidecar carries the tail
    cfg = models.PlainConfig(scale=4, widths=[8, 8], acts=["relu", "none"], input=models.InputSpec(),
                             tail="upsampler")
    save_model(models.PlainSR(cfg).eval(), out_dir / "tiny_upsampler_x4", kind="student")
    out = []
    for stem, precision in (("tiny_x2", "fp32"), ("tiny_x2", "int8-uint8io"), ("tiny_upsampler_x4", "fp32")):
        path = export_model(out_dir / stem, "tflite", precision, out_dir=out_dir, verify=False)
        sc = read_sidecar(path)  # check_file: the artefact exists and matches its checksum
        widths = sc.source_model["layer_widths"]
        out.append({"name": path.name, "text": Path(path).read_text(), "artefact": str(sc.artefact_path()),
                    "scale": sc.scale, "halo": sc.halo, "tile": sc.tile, "file_sha256": sc.file_sha256,
                    "layer_widths": widths, "input": sc.input, "output": sc.output,
                    "shuffles": _desc(widths, sc.halo, sc.scale, sc.source_model.get("tail", "shuffle")).shuffles})
    return out


def build(export_dir: Path | None = None) -> dict:
    return {"about": "generated by android_demo/make_test_vectors.py from the Python spec; do not edit",
            "plans": plan_cases(), "plan_errors": plan_error_cases(), "budgets": budget_cases(),
            "sidecars": sidecar_cases(), "codecs": codec_cases(), "orientations": orientation_cases(),
            "checksums": checksum_cases(), "exported": exported_cases(export_dir) if export_dir else []}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="JSON file to write")
    ap.add_argument("--export-dir", type=Path, help="also export a tiny student to TFLite here and include its "
                    "sidecars (adds a few seconds)")
    args = ap.parse_args(argv)
    vectors = build(args.export_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(dumps_strict(vectors, separators=(",", ":")))
    tmp.replace(args.out)
    n = sum(len(v) for v in vectors.values() if isinstance(v, list))
    print(f"wrote {n} cases to {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
