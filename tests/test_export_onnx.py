"""ONNX export: self-contained, simplified, dynamic or fixed, verified in ONNX Runtime; teachers too."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import make_plain, make_teacher
from memsr_export import export_model
from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.model_file import save_model
from memsr_deploy.method.models import InputSpec
from memsr_deploy.formats.sidecar import file_sha256, read_sidecar


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx_models")
    save_model(make_plain(seed=1), d / "tiny_x2", kind="student")
    save_model(make_plain(scale=3, seed=2, input_spec=InputSpec(1.0, (0.45, 0.44, 0.40), 0.5)), d / "norm_x3")
    save_model(make_teacher(), d / "teacher_x2")
    return d


def test_dynamic_onnx_is_single_file_and_matches(models, tmp_path):
    sc_path = export_model(models / "tiny_x2", "onnx", out_dir=tmp_path, max_photos=1, progress=False)
    assert sc_path == tmp_path / "tiny_x2_onnx_fp32.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_x2_onnx_fp32.json", "tiny_x2_onnx_fp32.onnx"]
    sc = read_sidecar(sc_path)  # also checks the artefact's checksum
    art = tmp_path / sc.file
    assert sc.file_sha256 == file_sha256(art)
    model = onnx.load(str(art), load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert {n.op_type for n in model.graph.node} == {"Conv", "Relu", "DepthToSpace"}
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))

    v = sc.verification
    assert v["passed"] is True and v["max_abs_diff"] < 1e-4 and v["psnr_y_vs_torch"] >= 60
    assert "patch 17x23" in v["inputs"] and abs(v["psnr_y_drop"]) < 0.01
    assert sc.input_shape is None and sc.shape_range == {"min": [1, 1], "max": [4096, 4096]}
    assert sc.layout == {"input": "NCHW", "output": "NCHW"} and sc.tile == 192
    assert sc.halo == 4 and sc.scale == 2 and sc.source_model["kind"] == "student"
    assert sc.source_model["weights_sha256"] and {"onnx", "onnxruntime", "torch"} <= set(sc.tools)

    # an odd size, batch of two, straight through ONNX Runtime
    x = np.random.default_rng(0).random((2, 3, 17, 23), np.float32)
    y = ort.InferenceSession(str(art), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert y.shape == (2, 3, 34, 46)


def test_fixed_onnx_with_normalisation(models, tmp_path):
    sc = read_sidecar(export_model(models / "norm_x3", "onnx", out_dir=tmp_path, input_size="1x3x24x30",
                                   max_photos=1, progress=False))
    assert sc.file == "norm_x3_onnx_24x30_fp32.onnx" and sc.input_shape == [24, 30]
    assert sc.tile == 24 - 2 * sc.halo and sc.shape_range is None and sc.scale == 3
    dims = [d.dim_value for d in onnx.load(str(sc.artefact_path())).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 24, 30]
    assert sc.verification["passed"] and sc.verification["max_abs_diff"] < 1e-4
    assert {"Mul", "Add"} <= set(sc.verification["ops"])  # the normalisation stays elementwise (x * a + b)


def test_teacher_exports_to_onnx_only(models, tmp_path):
    sc = read_sidecar(export_model(models / "teacher_x2", "onnx", out_dir=tmp_path, max_photos=1, progress=False))
    assert sc.source_model["kind"] == "teacher" and sc.verification["max_abs_diff"] < 1e-4
    with pytest.raises(MemsrError, match="ONNX only"):
        export_model(models / "teacher_x2", "tflite", out_dir=tmp_path)
    with pytest.raises(MemsrError, match="fp32"):
        export_model(models / "tiny_x2", "onnx", precision="int8", out_dir=tmp_path)
