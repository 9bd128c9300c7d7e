"""TFLite export: every precision, the op set, I/O quantisation, the transposed-conv variant, channel order."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import memsr_export.tflite_export as T
from memsr_deploy.formats import tflite_graph
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
    # width 16: the first conv's weights (432 values) stay float in the dynamic precision, the others do not
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
    assert "ai-edge-litert" in sc.tools and not [t for t in sc.tools if "tensorflow" in t]
    # the op census in the sidecar is of the file itself
    assert v["ops"] == T.op_counts(sc.artefact_path())
    quant = {"QUANTIZE", "DEQUANTIZE"} if precision not in ("fp32", "dynamic") else set()
    assert set(v["ops"]) <= {"CONV_2D", "DEPTH_TO_SPACE"} | quant
    assert v["ops"]["CONV_2D"] == 4 and v["ops"]["DEPTH_TO_SPACE"] == 1


def test_precisions_store_what_they_claim(exported):
    types = {p: tensor_types(exported[p].artefact_path()) for p in PRECISIONS}
    assert "float16" not in types["fp32"] and "int8" not in types["fp32"]
    assert "float16" in types["fp16"]
    assert "int8" in types["dynamic"] and "float32" in types["dynamic"]      # int8 weights, float activations
    assert {"QUANTIZE", "DEQUANTIZE"} <= set(exported["int8"].verification["ops"])
    assert exported["int8"].input["dtype"] == "float32" and exported["int8"].input["quant"] is None
    assert exported["int8"].verification["int8_activation_ranges"] == "calibration min/max"  # none stored
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


def graph(path):
    """[(op name, input tensor details, output tensor details)] as LiteRT reads the file."""
    from ai_edge_litert.interpreter import OpResolverType
    it = Interpreter(model_path=str(path),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    t = {d["index"]: d for d in it.get_tensor_details()}
    return [(op["op_name"], [t[i] for i in op["inputs"]], [t[i] for i in op["outputs"]])
            for op in it._get_ops_details()]


def test_each_precision_writes_its_kind_of_conv(exported):
    """fp16: float16 weights and biases, each expanded by a DEQUANTIZE; dynamic: hybrid convs (int8 weights
    with one scale per output channel on float activations), small weight tensors left float; int8: integer
    convs; int8-uint8io: uint8 at both ends, requantised without changing the scale."""
    ops = {p: graph(exported[p].artefact_path()) for p in PRECISIONS}

    def kinds(precision, name):
        return [(ins, outs) for op, ins, outs in ops[precision] if op == name]
    dequantised = {outs[0]["index"]: ins[0] for ins, outs in kinds("fp16", "DEQUANTIZE")}
    for ins, outs in kinds("fp16", "CONV_2D"):
        assert [np.dtype(dequantised[t["index"]]["dtype"]) for t in ins[1:]] == [np.float16, np.float16]
        assert np.dtype(outs[0]["dtype"]) == np.float32
    hybrid = 0
    for ins, outs in kinds("dynamic", "CONV_2D"):
        x, w, b = ins
        assert x["dtype"] == b["dtype"] == outs[0]["dtype"] == np.float32
        if np.prod(w["shape"]) < tflite_graph.HYBRID_MIN_WEIGHTS:
            assert w["dtype"] == np.float32
            continue
        hybrid += 1
        q = w["quantization_parameters"]
        assert w["dtype"] == np.int8 and len(q["scales"]) == w["shape"][0] and not q["zero_points"].any()
    assert hybrid == 3
    for ins, outs in kinds("int8", "CONV_2D"):
        assert [np.dtype(t["dtype"]) for t in (*ins, *outs)] == [np.int8, np.int8, np.int32, np.int8]
    first, last = ops["int8-uint8io"][0], ops["int8-uint8io"][-1]
    assert first[0] == last[0] == "QUANTIZE"
    assert first[1][0]["dtype"] == np.uint8 and first[2][0]["dtype"] == np.int8
    (q_in,), (q_out,) = last[1], last[2]
    assert q_in["dtype"] == np.int8 and q_out["dtype"] == np.uint8
    assert q_in["quantization"][0] == q_out["quantization"][0]
    assert q_out["quantization"][1] == q_in["quantization"][1] + 128


def test_export_needs_no_tensorflow(model, tmp_path):
    """Every TFLite artefact comes from the project's own writer: exporting works with TensorFlow unimportable."""
    code = textwrap.dedent(f"""
        import sys
        sys.modules["tensorflow"] = None   # any import of tensorflow now raises ImportError
        from memsr_export import export_model
        for p in ("fp32", "fp16", "dynamic", "int8", "int8-uint8io"):
            export_model({str(model / "tiny_x2")!r}, "tflite", p, out_dir={str(tmp_path)!r}, verify=False,
                         progress=False)
        print("exported")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().endswith("exported"), r.stderr[-2000:]
    assert len(list(tmp_path.glob("*.tflite"))) == 5


def test_int8_export_with_the_stored_ranges_is_the_runtime_graph(tmp_path):
    """A description's int8 ranges serve the unequalised weights they were measured on: the bundled x2 student's
    int8 weights (in [0, 1] units) then export exactly the int8 model memsr-upscale --precision int8 runs."""
    from memsr_deploy.formats.model_file import load_plain_arrays, model_for
    grid = model_for("memsr-x2", "int8")       # the int8 sibling, which carries the ranges
    src = load_source(str(grid))
    calibration = [np.random.default_rng(0).random((1, 24, 24, 3), np.float32)]
    facts = T.build_tflite(src, tmp_path / "x2.tflite", "int8", calibration=calibration, alpha=0.0)
    assert facts["int8_activation_ranges"] == "model description"
    runtime = tflite_graph.build(*load_plain_arrays("memsr-x2", "int8"), "int8")
    assert (tmp_path / "x2.tflite").read_bytes() == runtime
    # an equalised candidate changes the tensors, so it calibrates its own ranges
    facts = T.build_tflite(src, tmp_path / "x2_eq.tflite", "int8", calibration=calibration, alpha=0.5)
    assert facts["int8_activation_ranges"] == "calibration min/max"


def test_quantised_fixed_size_transposed_conv_with_normalisation(model, tmp_path):
    """uint8 input through the normalisation (DEQUANTIZE, MUL, ADD, QUANTIZE) into int8 convs and an int8
    TRANSPOSE_CONV, at a fixed size: verified like every other artefact."""
    sc = read_sidecar(export_model(model / "norm_x4", "tflite", "int8-uint8io", out_dir=tmp_path,
                                   input_size=(20, 24), d2s="transposed-conv", max_photos=1, progress=False))
    v = sc.verification
    assert v["passed"] and v["ops"]["CONV_2D"] == 4
    assert set(v["ops"]) == {"DEQUANTIZE", "MUL", "ADD", "QUANTIZE", "CONV_2D", "TRANSPOSE_CONV"}
    assert sc.input_shape == [20, 24] and sc.input["dtype"] == "uint8"
    assert sc.input["quant"]["zero_point"] == 0 and abs(sc.input["quant"]["scale"] - 1 / 255) < 1e-6


def test_transposed_conv_variant_matches_depth_to_space(model, tmp_path):
    kw = dict(out_dir=tmp_path, input_size=(20, 24), max_photos=1, progress=False)
    a = read_sidecar(export_model(model / "norm_x4", "tflite", **kw))
    b = read_sidecar(export_model(model / "norm_x4", "tflite", d2s="transposed-conv", **kw))
    assert b.file == "norm_x4_tflite_20x24_tconv_fp32.tflite" and b.verification["passed"]
    # the normalisation stays elementwise, in front of the first conv
    assert set(a.verification["ops"]) == {"MUL", "ADD", "CONV_2D", "DEPTH_TO_SPACE"}
    assert set(b.verification["ops"]) == {"MUL", "ADD", "CONV_2D", "TRANSPOSE_CONV"}
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
    # the bug the permutation prevents
    monkeypatch.setattr(tflite_graph, "crd_to_dcr", lambda s, c=3: np.arange(c * s * s))
    with pytest.raises(MemsrError, match="verification failed"):
        export_model(model / "tiny_x2", "tflite", "int8", out_dir=tmp_path, max_photos=1, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny_x2_tflite_int8.tflite"]
    assert (tmp_path / "tiny_x2_tflite_int8.tflite").read_bytes() == b"an earlier good export"
