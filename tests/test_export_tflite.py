"""TFLite export: every precision, the op set, I/O quantisation, the transposed-conv variant, channel order."""
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import memsr_export.tflite_export as T
from conftest import make_plain
from memsr_export import export_model, verify as V
from memsr_export.source import load_source
from memsr_deploy.errors import MemsrError
from memsr_deploy.runtime.backends import open_backend
from memsr_deploy.formats.model_file import save_model
from memsr_deploy.method.models import InputSpec
from memsr_deploy.formats.sidecar import read_sidecar

PRECISIONS = ["fp32", "fp16", "dynamic", "int8", "int8-uint8io"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("tflite_models")
    # width 16: dynamic-range quantisation leaves weight tensors under 1024 elements in float
    save_model(make_plain(widths=(16, 16, 16), seed=5), d / "tiny_x2", kind="student")
    save_model(make_plain(scale=4, seed=6, input_spec=InputSpec(1.0, (0.45, 0.44, 0.40), 0.5)), d / "norm_x4")
    return d


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("tflite_out")
    return {p: read_sidecar(export_model(model / "tiny_x2", "tflite", p, out_dir=out, max_photos=1,
                                         progress=False)) for p in PRECISIONS}


def tensor_types(path):
    it = Interpreter(model_path=str(path))
    return {np.dtype(t["dtype"]).name for t in it.get_tensor_details()}


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_precision_verifies_within_its_limits(exported, precision):
    sc = exported[precision]
    v, lim = sc.verification, V.LIMITS[precision]
    assert v["passed"] is True and v["failures"] == []
    assert v["psnr_y_vs_torch"] >= lim.min_psnr_vs_torch and v["psnr_y_drop"] <= lim.max_drop
    if lim.max_abs_diff is not None:
        assert v["max_abs_diff"] < lim.max_abs_diff
    assert "patch 17x23" in v["inputs"] and "patch 32x47" in v["inputs"]
    assert sc.layout == {"input": "NHWC", "output": "NHWC"} and sc.input_shape is None
    assert sc.file == f"tiny_x2_tflite_{precision}.tflite" and sc.halo == 4 and sc.tile == 192
    assert {"tensorflow-cpu", "ai-edge-litert"} & set(sc.tools)
    # the op census in the sidecar is of the file itself
    assert v["ops"] == T.op_counts(sc.artefact_path())
    quant = {"QUANTIZE", "DEQUANTIZE"} if precision != "fp32" else set()
    assert set(v["ops"]) <= {"CONV_2D", "DEPTH_TO_SPACE"} | quant
    assert v["ops"]["CONV_2D"] == 4 and v["ops"]["DEPTH_TO_SPACE"] == 1


def test_precisions_store_what_they_claim(exported):
    types = {p: tensor_types(exported[p].artefact_path()) for p in PRECISIONS}
    assert "float16" not in types["fp32"] and "int8" not in types["fp32"]
    assert "float16" in types["fp16"]
    assert "int8" in types["dynamic"] and "float32" in types["dynamic"]      # int8 weights, float activations
    assert {"QUANTIZE", "DEQUANTIZE"} <= set(exported["int8"].verification["ops"])
    assert exported["int8"].input["dtype"] == "float32" and exported["int8"].input["quant"] is None
    sc = exported["int8-uint8io"]
    assert sc.input["dtype"] == sc.output["dtype"] == "uint8"
    # calibration includes a 0..1 ramp, so the uint8 input is the pixel byte itself
    assert sc.input["quant"]["zero_point"] == 0 and abs(sc.input["quant"]["scale"] - 1 / 255) < 1e-6
    assert sc.output["quant"]["scale"] > 0
    for p in PRECISIONS:  # quantised graphs keep the equalisation closest to the float model on calibration
        v = exported[p].verification
        if p not in T.QUANTISED:
            assert "equalisation_alpha" not in v
            continue
        scores = v["equalisation_calibration_psnr"]
        assert len(scores) == 4
        chosen = f"{'balanced weights, ' if v['weights_balanced'] else ''}alpha {v['equalisation_alpha']}"
        assert scores[chosen] == max(scores.values())
    sizes = {p: exported[p].artefact_path().stat().st_size for p in PRECISIONS}
    assert sizes["int8"] < sizes["fp16"] < sizes["fp32"]


def test_transposed_conv_variant_matches_depth_to_space(model, tmp_path):
    kw = dict(out_dir=tmp_path, input_size=(20, 24), max_photos=1, progress=False)
    a = read_sidecar(export_model(model / "norm_x4", "tflite", **kw))
    b = read_sidecar(export_model(model / "norm_x4", "tflite", d2s="transposed-conv", **kw))
    assert b.file == "norm_x4_tflite_20x24_tconv_fp32.tflite" and b.verification["passed"]
    assert set(a.verification["ops"]) == {"SUB", "CONV_2D", "DEPTH_TO_SPACE"}  # normalisation stays elementwise
    assert set(b.verification["ops"]) == {"SUB", "CONV_2D", "TRANSPOSE_CONV"}
    assert a.input_shape == b.input_shape == [20, 24] and a.tile == 20 - 2 * a.halo
    x = np.random.default_rng(1).random((1, 3, 20, 24), np.float32)
    ya, yb = (open_backend(artefact=sc.path).run(x) for sc in (a, b))   # as memsr-upscale runs them
    assert ya.shape == (1, 3, 80, 96) and np.abs(ya - yb).max() < 1e-5
    with pytest.raises(MemsrError, match="fixed"):
        export_model(model / "norm_x4", "tflite", out_dir=tmp_path, d2s="transposed-conv")


def test_unpermuted_tail_is_caught(model, tmp_path):
    """Pixel-shuffle (CRD) vs depth_to_space (DCR): without the tail permutation the colours are scrambled."""
    src = load_source(model / "tiny_x2")
    T.build_tflite(src, tmp_path / "wrong.tflite", "fp32", permute_tail=False)
    report = V.verify(T.TfliteRunner(tmp_path / "wrong.tflite"), src, "fp32", max_photos=1, progress=False)
    assert not report["passed"] and report["max_abs_diff"] > 1e-2
    assert any("PSNR-Y vs PyTorch" in f for f in report["failures"])


def test_failed_verification_writes_nothing(model, tmp_path, monkeypatch):
    (tmp_path / "tiny_x2_tflite_int8.tflite").write_bytes(b"an earlier good export")
    monkeypatch.setattr(T, "crd_to_dcr", lambda s, c=3: np.arange(c * s * s))  # the bug the permutation prevents
    with pytest.raises(MemsrError, match="verification failed"):
        export_model(model / "tiny_x2", "tflite", "int8", out_dir=tmp_path, max_photos=1, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny_x2_tflite_int8.tflite"]
    assert (tmp_path / "tiny_x2_tflite_int8.tflite").read_bytes() == b"an earlier good export"
