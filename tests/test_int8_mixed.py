"""Mixed-precision int8: conv outputs the ranges record lists under ``float_tensors`` skip the 8-bit rounding in
every int8 graph writer (LiteRT, ONNX, ncnn), cost fp32's activation bytes in the memory budget, are validated
against the architecture, and are chosen greedily by the calibration (``--keep-float``)."""
import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from conftest import make_plain
from memsr_deploy.errors import MemsrError
from memsr_deploy.formats import tflite_graph
from memsr_deploy.formats.model_file import load_plain_arrays, read_description, save_model
from memsr_deploy.formats.onnx_graph import INT8_RANGES_KEY, build_fp32, build_int8, int8_weight_grid
from memsr_deploy.method import int8_ranges
from memsr_deploy.runtime.backends import open_backend

pytest.importorskip("ai_edge_litert")
WIDTHS, ACTS = (12, 12, 12, 12), ("relu", "none", "relu", "none")


def photo_like(h, w, seed):
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
    return np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def stem(tmp_path_factory):
    """A random plain x2 model with measured int8 ranges."""
    d = tmp_path_factory.mktemp("mixed")
    save_model(make_plain(widths=WIDTHS, acts=ACTS, seed=7), d / "m", kind="student")
    desc, convs = load_plain_arrays(d / "m")
    lr = [photo_like(32, 40, s).astype(np.float32) / 255 for s in range(3)]
    int8_ranges.write_ranges(d / "m", int8_ranges.measure_ranges(desc, convs, lr))
    return d / "m"


def with_floats(desc, keep):
    return dataclasses.replace(desc, extra={**desc.extra, INT8_RANGES_KEY: {**desc.extra[INT8_RANGES_KEY],
                                                                           "float_tensors": list(keep)}})


def x_bytes(seed=1):
    """An NCHW input of 8-bit pixel values, which the int8 input quantiser represents exactly."""
    return np.ascontiguousarray((photo_like(20, 24, seed).astype(np.float32) / 255)[None].transpose(0, 3, 1, 2))


def err(a, b):
    return float(np.mean((a - b) ** 2))


def on_grid(convs):
    out = []
    for w, b in convs:
        q, s = int8_weight_grid(w)
        out.append((q * s[:, None, None, None], b))
    return out


def litert(desc, convs, x):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=tflite_graph.build(desc, convs, "int8"))
    xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    it.resize_tensor_input(it.get_input_details()[0]["index"], xin.shape)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], xin)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).transpose(0, 3, 1, 2)


def onnx(desc, convs, x, precision="int8"):
    import onnxruntime as ort
    graph = build_int8(desc, convs) if precision == "int8" else build_fp32(desc, convs)
    return ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0]


@pytest.mark.parametrize("run", [litert, onnx])
def test_float_tensors_skip_the_rounding_and_nothing_else(stem, run):
    desc, convs = load_plain_arrays(stem)
    x, every = x_bytes(), range(len(convs))
    fp32 = onnx(desc, on_grid(convs), x, "fp32")
    all_float = run(with_floats(desc, every), convs, x)
    np.testing.assert_allclose(all_float, fp32, atol=2e-5)   # only the (exact) input quantiser is left
    errors = [err(run(with_floats(desc, keep), convs, x), fp32) for keep in ((), (1,), (0, 1, 2))]
    assert errors[0] > errors[1] > errors[2] > 0


def test_ncnn_float_convs_bring_int8_to_fp32(stem):
    pytest.importorskip("ncnn")
    from memsr_deploy.runtime.backends.ncnn_backend import NcnnModelBackend
    desc, convs = load_plain_arrays(stem)
    x = x_bytes()
    fp32 = onnx(desc, on_grid(convs), x, "fp32")
    run = {keep: NcnnModelBackend(precision="int8", arrays=(with_floats(desc, keep), convs)).run(x)
           for keep in ((), (0, 1, 2, 3, 4))}
    np.testing.assert_allclose(run[(0, 1, 2, 3, 4)], fp32, atol=1e-4)
    assert err(run[()], fp32) > 10 * err(run[(0, 1, 2, 3, 4)], fp32)


@pytest.mark.parametrize("keep", [[5], [0, 0], [True], "1", [-1]])
def test_float_tensors_are_validated_against_the_architecture(stem, keep):
    desc, convs = load_plain_arrays(stem)
    with pytest.raises(MemsrError, match="float_tensors") as e:
        tflite_graph.build(with_floats(desc, keep) if isinstance(keep, list) else
                           dataclasses.replace(desc, extra={**desc.extra, INT8_RANGES_KEY: {
                               **desc.extra[INT8_RANGES_KEY], "float_tensors": keep}}), convs, "int8")
    assert str(stem.name) in str(e.value)


def test_a_mixed_graph_budgets_fp32_activation_bytes(stem, tmp_path):
    desc, convs = load_plain_arrays(stem)
    for name in ("litert", "onnxruntime"):
        assert open_backend(model=stem, backend=name, precision="int8").caps.dtype_bytes == 1
    meta = json.loads(stem.with_suffix(".json").read_text())
    meta[INT8_RANGES_KEY]["float_tensors"] = [2]
    for f in ("json", "safetensors"):
        (tmp_path / f"m.{f}").write_bytes(stem.with_suffix(f".{f}").read_bytes())
    (tmp_path / "m.json").write_text(json.dumps(meta))
    for name in ("litert", "onnxruntime"):
        assert open_backend(model=tmp_path / "m", backend=name, precision="int8").caps.dtype_bytes == 4


def test_calibration_keeps_the_greedy_choice_in_float(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(5):   # four calibrate, one is held out
        Image.fromarray(photo_like(40, 48, 20 + i)).save(photos / f"p{i}.png")
    save_model(make_plain(widths=WIDTHS, acts=ACTS, seed=8), tmp_path / "m", kind="student")
    record = int8_ranges.calibrate(tmp_path / "m", photos, progress=lambda s: None, keep_float=1)
    (keep,) = record["float_tensors"]
    desc, convs = load_plain_arrays(tmp_path / "m")
    lr = int8_ranges._lr(sorted(photos.iterdir())[:4], 2)
    patches = int8_ranges.calibration_patches(lr)[:6]
    ranges = {k: v for k, v in record.items() if k != "float_tensors"}
    xs = [np.ascontiguousarray(p.transpose(2, 0, 1)[None], np.float32) for p in patches]
    fp32 = [onnx(desc, convs, x, "fp32") for x in xs]

    def error(keep):
        trial = dataclasses.replace(desc, extra={**desc.extra, INT8_RANGES_KEY: {**ranges, "float_tensors": keep}})
        return sum(err(litert(trial, convs, x), r) for x, r in zip(xs, fp32))
    first = min(range(len(convs)), key=lambda t: error([t]))
    second = min((t for t in range(len(convs)) if t != first), key=lambda t: error([first, t]))
    assert int8_ranges.choose_float_tensors(desc, convs, ranges, patches, 2) == sorted([first, second])
    int8_ranges.write_ranges(tmp_path / "m", record)
    assert read_description(tmp_path / "m").extra[INT8_RANGES_KEY]["float_tensors"] == [keep]
    with pytest.raises(MemsrError, match="--keep-float"):
        int8_ranges.choose_float_tensors(desc, convs, ranges, [], len(convs) + 1)


@pytest.mark.parametrize("target,precision,keep", [("tflite", "int8", [0, 3]),
                                                   ("tflite", "int8-uint8io", [1, 4]),   # 4: the tail
                                                   ("ncnn", "int8", [2])])
def test_a_mixed_artefact_says_so_and_is_budgeted_as_fp32(stem, tmp_path, target, precision, keep):
    from memsr_export import export_model
    from memsr_deploy.formats.sidecar import read_sidecar
    from memsr_deploy.runtime.backends import open_backend
    if target == "ncnn":
        pytest.importorskip("ncnn")
    meta = json.loads(stem.with_suffix(".json").read_text())
    meta[INT8_RANGES_KEY]["float_tensors"] = keep
    for f in ("json", "safetensors"):
        (tmp_path / f"m.{f}").write_bytes(stem.with_suffix(f".{f}").read_bytes())
    (tmp_path / "m.json").write_text(json.dumps(meta))
    sidecar = export_model(tmp_path / "m", target, precision, out_dir=tmp_path / "out", max_photos=1,
                           progress=False, tf_checks=False)
    sc = read_sidecar(sidecar)
    assert sc.verification["passed"] and sc.source_model["int8_float_tensors"] == keep
    assert sc.output["dtype"] == ("uint8" if precision == "int8-uint8io" else "float32")
    assert open_backend(artefact=sidecar).caps.dtype_bytes == 4


def test_profile_prices_a_mixed_int8_graph_as_the_runtime_budgets_it(stem, tmp_path, capsys):
    from memsr_deploy.cli.profile import main as profile

    def rows(model, dtype):
        assert profile([str(model), "--resolution", "64x48", "--dtype", dtype, "--json", "--tile", "16"]) == 0
        return {r["mode"]: r for r in json.loads(capsys.readouterr().out)["rows"]}

    meta = json.loads(stem.with_suffix(".json").read_text())
    meta[INT8_RANGES_KEY]["float_tensors"] = [1]
    for f in ("json", "safetensors"):
        (tmp_path / f"m.{f}").write_bytes(stem.with_suffix(f".{f}").read_bytes())
    (tmp_path / "m.json").write_text(json.dumps(meta))
    pure, mixed, fp32 = rows(stem, "int8"), rows(tmp_path / "m", "int8"), rows(stem, "fp32")
    for mode in ("whole", "tiled", "stream"):
        assert pure[mode]["predicted"] * 4 == fp32[mode]["predicted"] == mixed[mode]["predicted"]
        assert "float32" in mixed[mode]["note"] and "float32" not in pure[mode]["note"]
    # a bundled float model is priced by the int8 sibling that --precision int8 runs
    bundled = rows("memsr-x2", "int8")["whole"]
    assert "conv outputs 0, 17 in float32" in bundled["note"]
    assert bundled["predicted"] == rows("memsr-x2", "fp32")["whole"]["predicted"]
