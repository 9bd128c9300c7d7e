"""Writes the shared sidecar contract: sidecars that both readers must refuse, naming the same field.

    python android_demo/make_sidecar_contract.py   # rewrites android_demo/core/src/test/resources/sidecar_contract/

Each case is a file NAME.json (the sidecar text, one fault in it) and an entry of index.json: the field the
error must name and Python's error (memsr_deploy.formats.sidecar.read_sidecar, which writes the expectation).
tests/test_sidecar_contract.py (Python) and SidecarContractTest (JUnit, android_demo/core) read the same files;
good.json must load on both sides. Faults of the JSON text itself name no field ("field": "") and only the
start of the message is shared (the parsers word their details differently).
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memsr_deploy.errors import MemsrError  # noqa: E402
from memsr_deploy.formats.sidecar import read_sidecar  # noqa: E402

OUT = Path(__file__).resolve().parent / "core" / "src" / "test" / "resources" / "sidecar_contract"
NOT_JSON = "sidecar is not valid JSON"

GOOD = {
    "format": "memsr-artefact", "version": 1, "target": "tflite", "file": "m.tflite", "file_sha256": "ab" * 32,
    "precision": "fp32", "scale": 2, "halo": 11, "tile": 192, "input_shape": None,
    "shape_range": {"min": [1, 1], "max": [4096, 4096]}, "layout": {"input": "NHWC", "output": "NHWC"},
    "input": {"dtype": "float32", "range": [0.0, 1.0], "quant": None},
    "output": {"dtype": "float32", "range": [0.0, 1.0], "quant": None}, "channel_order": "RGB",
    "source_model": {"name": "memsr-x2", "kind": "student", "receptive_radius": 11,
                     "layer_widths": [32] * 10 + [12]},
    "verification": {"passed": True, "max_abs_diff": 0.0, "psnr_y_vs_torch": None}, "tools": {},
    "created": "2026-01-01T00:00:00Z", "receptive_radius": 11,
}
UINT8_IO = {"dtype": "uint8", "range": [0.0, 1.0], "quant": {"scale": 0.00392156862745098, "zero_point": 0}}
INT8_IO = {"dtype": "int8", "range": [0.0, 1.0], "quant": {"scale": 0.00392156862745098, "zero_point": -128}}


def _set(path: str, value):
    def edit(d):
        *outer, last = path.split(".")
        o = d
        for k in outer:
            o = o[k]
        o[last] = value
    return edit


def _drop(path: str):
    def edit(d):
        *outer, last = path.split(".")
        o = d
        for k in outer:
            o = o[k]
        del o[last]
    return edit


def _raw(old: str, new: str):
    """A fault in the text (what json.dumps cannot write): replaces ``old`` in the good sidecar's text."""
    return ("raw", old, new)


def cases() -> list[tuple[str, str, object]]:
    """(name, field the error names, edit of GOOD or _raw text replacement)."""
    out = []
    for k in ("format", "version", "target", "file", "precision", "scale", "halo", "tile", "layout", "input",
              "output", "source_model", "file_sha256"):
        out.append((f"missing_{k}", k, _drop(k)))
    out += [
        # of the wrong type
        ("format_other", "format", _set("format", "memsr-model")),
        ("version_string", "version", _set("version", "1")),
        ("version_true", "version", _set("version", True)),
        ("target_number", "target", _set("target", 3)),
        ("file_number", "file", _set("file", 3)),
        ("precision_null", "precision", _set("precision", None)),
        ("scale_string", "scale", _set("scale", "2")),
        ("scale_true", "scale", _set("scale", True)),
        ("scale_fraction", "scale", _set("scale", 2.5)),
        ("halo_string", "halo", _set("halo", "11")),
        ("halo_null", "halo", _set("halo", None)),
        ("tile_list", "tile", _set("tile", [192])),
        ("layout_string", "layout", _set("layout", "NHWC")),
        ("input_string", "input", _set("input", "float32")),
        ("output_null", "output", _set("output", None)),
        ("source_model_string", "source_model", _set("source_model", "memsr-x2")),
        ("sha_number", "file_sha256", _set("file_sha256", 123)),
        ("input_dtype_number", "input.dtype", _set("input.dtype", 32)),
        ("input_range_string", "input.range", _set("input.range", "0..1")),
        ("input_range_string_item", "input.range", _set("input.range", [0, "1"])),
        ("input_range_bool_item", "input.range", _set("input.range", [True, 1])),
        ("output_quant_string_scale", "output.quant",
         lambda d: d.update(output={**UINT8_IO, "quant": {"scale": "0.5", "zero_point": 0}})),
        ("output_quant_float_zero_point", "output.quant",
         lambda d: d.update(output={**UINT8_IO, "quant": {"scale": 0.5, "zero_point": 0.0}})),
        ("input_shape_float", "input_shape", _set("input_shape", [64.0, 64])),
        ("input_shape_string", "input_shape", _set("input_shape", "64x64")),
        ("shape_range_list", "shape_range", _set("shape_range", [[1, 1], [8, 8]])),
        ("radius_string", "receptive_radius", _set("receptive_radius", "11")),
        ("radius_true", "receptive_radius", lambda d: d.update(halo=1, receptive_radius=True,
                                                               source_model={**d["source_model"],
                                                                             "receptive_radius": 1})),
        ("source_model_radius_string", "source_model.receptive_radius", _set("source_model.receptive_radius", "11")),
        ("ncnn_data_file_number", "data_file", lambda d: d.update(target="ncnn", data_file=3,
                                                                  data_sha256="cd" * 32)),
        # out of range
        ("scale_5", "scale", _set("scale", 5)),
        ("scale_1", "scale", _set("scale", 1)),
        ("scale_0", "scale", _set("scale", 0)),
        ("scale_minus_2", "scale", _set("scale", -2)),
        ("scale_whole_float_5", "scale", _set("scale", 5.0)),
        ("halo_negative", "halo", _set("halo", -1)),
        ("halo_over_int32", "halo", _set("halo", 2 ** 31)),
        ("halo_1e20", "halo", _set("halo", 1e20)),
        ("tile_0", "tile", _set("tile", 0)),
        ("tile_1e12", "tile", _set("tile", 1e12)),
        ("input_range_reversed", "input.range", _set("input.range", [1.0, 0.0])),
        ("output_range_empty", "output.range", _set("output.range", [0.5, 0.5])),
        ("quant_scale_zero", "input.quant", lambda d: d.update(input={**UINT8_IO, "quant": {"scale": 0.0,
                                                                                              "zero_point": 0}})),
        ("quant_scale_negative", "input.quant",
         lambda d: d.update(input={**UINT8_IO, "quant": {"scale": -0.5, "zero_point": 0}})),
        ("uint8_zero_point_256", "input.quant",
         lambda d: d.update(input={**UINT8_IO, "quant": {"scale": 0.5, "zero_point": 256}})),
        ("uint8_zero_point_negative", "output.quant",
         lambda d: d.update(output={**UINT8_IO, "quant": {"scale": 0.5, "zero_point": -1}})),
        ("int8_zero_point_minus_129", "input.quant",
         lambda d: d.update(input={**INT8_IO, "quant": {"scale": 0.5, "zero_point": -129}})),
        ("uint8_without_quant", "input.quant", lambda d: d.update(input={**UINT8_IO, "quant": None})),
        ("input_shape_zero", "input_shape", _set("input_shape", [0, 64])),
        ("shape_range_min_over_max", "shape_range", _set("shape_range", {"min": [8, 8], "max": [4, 4096]})),
        ("radius_mismatch", "receptive_radius", _set("receptive_radius", 10)),
        ("source_model_radius_mismatch", "source_model.receptive_radius", _set("source_model.receptive_radius", 9)),
        # unknown values
        ("precision_fp8", "precision", _set("precision", "fp8")),
        ("precision_upper_case", "precision", _set("precision", "FP32")),
        ("target_tensorrt", "target", _set("target", "tensorrt")),
        ("input_dtype_float64", "input.dtype", _set("input.dtype", "float64")),
        ("output_dtype_bool", "output.dtype", _set("output.dtype", "bool")),
        ("layout_chw", "layout", _set("layout.input", "CHW")),
        ("file_in_folder", "file", _set("file", "models/m.tflite")),
        ("sha_upper_case", "file_sha256", _set("file_sha256", "AB" * 32)),
        ("data_file_on_tflite", "data_file", lambda d: d.update(data_file="m.bin", data_sha256="cd" * 32)),
        ("ncnn_without_data_file", "data_file", _set("target", "ncnn")),
        # NaN, Infinity and numbers no reader can hold: refused as JSON, naming the field
        ("scale_nan", "scale", _raw('"scale": 2', '"scale": NaN')),
        ("input_range_nan", "input.range", _raw('"input": {"dtype": "float32", "range": [0.0, 1.0]',
                                                '"input": {"dtype": "float32", "range": [0.0, NaN]')),
        ("output_range_minus_infinity", "output.range",
         _raw('"range": [0.0, 1.0], "quant": null}, "channel_order"',
              '"range": [-Infinity, 1.0], "quant": null}, "channel_order"')),
        ("verification_nan", "verification.max_abs_diff", _raw('"max_abs_diff": 0.0', '"max_abs_diff": NaN')),
        ("verification_psnr_infinity", "verification.psnr_y_vs_torch",
         _raw('"psnr_y_vs_torch": null', '"psnr_y_vs_torch": Infinity')),
        ("halo_1e400", "halo", _raw('"halo": 11', '"halo": 1e400')),
        ("tile_over_int64", "tile", _raw('"tile": 192', '"tile": 99999999999999999999')),
        # JSON text Python's reader refuses and org.json's JSONTokener used to accept
        ("single_quotes", "", _raw('"target": "tflite"', "'target': 'tflite'")),
        ("comment", "", _raw('"target": "tflite",', '"target": "tflite", /* x2 */')),
        ("trailing_comma", "", _raw('"tools": {}', '"tools": {"a": 1,}')),
        ("octal_halo", "", _raw('"halo": 11', '"halo": 013')),
        ("hex_tile", "", _raw('"tile": 192', '"tile": 0xC0')),
        ("unquoted_word", "", _raw('"channel_order": "RGB"', '"channel_order": RGB')),
        ("text_after_the_object", "", lambda d: None),  # see build(): "}" followed by more text
    ]
    return out


def _text(d: dict) -> str:
    return json.dumps(d, indent=None) + "\n"


def build(out: Path = OUT) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    good_text = _text(GOOD)
    (out / "good.json").write_text(good_text)
    read_sidecar(out / "good.json", check_file=False)
    index = []
    for name, field, edit in cases():
        if isinstance(edit, tuple):
            _, old, new = edit
            assert good_text.count(old) == 1, (name, old)
            text = good_text.replace(old, new)
        elif name == "text_after_the_object":
            text = good_text.rstrip() + ' {"format": "memsr-artefact"}\n'
        else:
            d = copy.deepcopy(GOOD)
            edit(d)
            text = _text(d)
        path = out / f"{name}.json"
        path.write_text(text)
        try:
            read_sidecar(path, check_file=False)
        except MemsrError as e:
            reason = str(e)[len(f"{path}: "):]
        else:
            raise SystemExit(f"{name}: Python accepts it; the contract lists only sidecars both refuse")
        index.append({"file": path.name, "field": field,
                      "error": NOT_JSON if not field and reason.startswith(NOT_JSON) else reason})
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return index


if __name__ == "__main__":
    print(f"wrote {len(build())} cases to {OUT}")
