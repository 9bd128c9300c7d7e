"""Every JSON the project writes is strict (no NaN / Infinity), so Android's org.json and any other reader take it.

An exact verification (identical outputs) has an infinite PSNR: it is written as null and read back as None.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.model_file import load_model, pair_paths, save_model
from memsr_deploy.formats.sidecar import Sidecar, read_sidecar, write_sidecar
from memsr_deploy.formats.tagged_json import dumps_strict
from memsr_deploy.method import models


def _refuse(name):
    raise AssertionError(f"{name} in the written JSON")


def _sidecar(verification: dict) -> Sidecar:
    return Sidecar(target="tflite", file="m.tflite", precision="fp32", scale=2, halo=3, tile=64,
                   layout={"input": "NHWC", "output": "NHWC"},
                   input={"dtype": "float32", "range": [0.0, 1.0], "quant": None},
                   output={"dtype": "float32", "range": [0.0, 1.0], "quant": None},
                   source_model={"name": "m", "layer_widths": [8, 12]}, verification=verification,
                   file_sha256="0" * 64)


def test_exact_verification_is_written_as_strict_json_and_read_back(tmp_path):
    exact = {"passed": True, "max_abs_diff": 0.0, "psnr_y_vs_torch": math.inf, "psnr_y_drop": 0.0,
             "equalisation_calibration_psnr": {"alpha 0.0": math.inf, "alpha 0.5": 61.25}}
    path = write_sidecar(_sidecar(exact), tmp_path / "m.json")
    text = path.read_text()
    doc = json.loads(text, parse_constant=_refuse)  # strict: a NaN / Infinity literal fails here
    assert "Infinity" not in text and "NaN" not in text
    assert doc["verification"]["psnr_y_vs_torch"] is None  # null: identical outputs
    assert doc["verification"]["equalisation_calibration_psnr"] == {"alpha 0.0": None, "alpha 0.5": 61.25}
    sc = read_sidecar(path, check_file=False)
    assert sc.verification["psnr_y_vs_torch"] is None and sc.verification["max_abs_diff"] == 0.0
    assert sc.verification["psnr_y_drop"] == 0.0 and sc.scale == 2 and sc.halo == 3


def test_a_non_finite_figure_that_is_not_a_psnr_is_refused_not_hidden(tmp_path):
    for bad in ({"max_abs_diff": math.nan}, {"max_abs_diff": math.inf}, {"psnr_y_vs_torch": -math.inf},
                {"psnr_y_vs_torch": math.nan}):
        with pytest.raises(MemsrError, match=r"m\.json: verification\.\w+ is -?(nan|inf), which JSON cannot hold"):
            write_sidecar(_sidecar(bad), tmp_path / "m.json")
        assert not (tmp_path / "m.json").exists()  # nothing half-written


def test_readers_refuse_the_non_json_literals_python_writes_by_default(tmp_path):
    d = _sidecar({"psnr_y_vs_torch": math.inf}).to_json()
    p = tmp_path / "old.json"
    p.write_text(json.dumps(d))  # "Infinity": what json.dumps writes unless told not to
    with pytest.raises(MemsrError, match=r"old\.json: sidecar is not valid JSON \(ValueError: Infinity is not"):
        read_sidecar(p, check_file=False)


def test_dumps_strict_names_the_field_and_keeps_everything_else():
    assert dumps_strict({"a": [1, 2.5, None, "x"], "psnr": 40.0}) == '{"a": [1, 2.5, null, "x"], "psnr": 40.0}'
    assert json.loads(dumps_strict({"rows": [{"psnr_db": math.inf}]})) == {"rows": [{"psnr_db": None}]}
    with pytest.raises(MemsrError, match=r"^out\.json: rows\.1\.seconds is nan"):
        dumps_strict({"rows": [{"seconds": 1.0}, {"seconds": math.nan}]}, "out.json")


def test_model_file_with_a_nan_figure_is_refused_before_anything_is_written(tmp_path):
    cfg = models.PlainConfig(scale=2, widths=[4], acts=["relu"], input=models.InputSpec())
    net = models.PlainSR(cfg).eval()
    with pytest.raises(MemsrError, match=r"provenance\.val_psnr_y is nan"):
        save_model(net, tmp_path / "m", kind="student", provenance={"val_psnr_y": math.nan})
    assert not any(p.exists() for p in pair_paths(tmp_path / "m"))
    save_model(net, tmp_path / "m", kind="student", provenance={"val_psnr_y": math.inf})  # identical: null
    loaded, desc = load_model(tmp_path / "m")
    assert desc.provenance["val_psnr_y"] is None
    x = torch.rand(1, 3, 5, 5)
    assert torch.equal(loaded(x), net(x))
