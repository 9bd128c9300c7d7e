"""Core ML export: ML Program fp32/fp16, range or enumerated shapes, verified from the saved package."""
import sys

import numpy as np
import pytest

from conftest import make_plain
from memsr_export import export_model, verify as V
from memsr_export.coreml_mil import MilProgramRunner
from memsr_deploy.runtime.backends.coreml_backend import CoreMLBackend
from memsr_export.source import load_source
from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.model_file import save_model
from memsr_deploy.formats.sidecar import file_sha256, read_sidecar, write_sidecar

pytestmark = pytest.mark.skipif(sys.platform == "darwin", reason="Linux path: program re-execution")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("coreml_models")
    save_model(make_plain(seed=7), d / "tiny_x2", kind="student")
    return d


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_range_shape_program_verifies(model, tmp_path, precision):
    sc = read_sidecar(export_model(model / "tiny_x2", "coreml", precision, out_dir=tmp_path, max_photos=1,
                                   progress=False))
    art = sc.artefact_path()
    assert art.name == f"tiny_x2_coreml_{precision}.mlpackage" and art.is_dir()
    assert (art / "Manifest.json").exists() and sc.file_sha256
    v = sc.verification
    assert v["passed"] and "MIL program read back" in v["runner"] and "patch 17x23" in v["inputs"]
    assert v["ops"] == ({"conv": 4, "relu": 2, "pixel_shuffle": 1} if precision == "fp32"
                        else {"cast": 2, "conv": 4, "relu": 2, "pixel_shuffle": 1})  # fp16 inside, fp32 I/O
    assert sc.input["dtype"] == sc.output["dtype"] == "float32" and sc.layout["input"] == "NCHW"
    assert sc.shape_range == {"min": [1, 1], "max": [4096, 4096]} and sc.tools.get("coremltools")
    if precision == "fp32":
        assert v["max_abs_diff"] < 1e-5
    else:  # fp16 rounding is really emulated: visible, but small
        assert 1e-5 < v["max_abs_diff"] < V.LIMITS["fp16"].max_abs_diff and v["psnr_y_vs_torch"] > 50


def test_enumerated_shapes(model, tmp_path):
    sc = read_sidecar(export_model(model / "tiny_x2", "coreml", "fp16", out_dir=tmp_path, coreml_tiles=[40, 16],
                                   max_photos=1, progress=False))
    wins = [[16 + 8, 16 + 8], [40 + 8, 40 + 8]]  # tile + 2 * halo, sorted
    assert sc.shape_range["enumerated"] == wins and sc.tile == 40 and sc.input_shape is None
    assert sc.verification["passed"] and {"patch 24x24", "patch 48x48"} <= set(sc.verification["inputs"])
    with pytest.raises(MemsrError):
        export_model(model / "tiny_x2", "coreml", "int8", out_dir=tmp_path)


def test_verifier_reads_the_weights_from_the_package(model, tmp_path):
    """Corrupting the tail weights inside the saved weight blob must make verification fail."""
    src = load_source(model / "tiny_x2")
    sc = read_sidecar(export_model(src, "coreml", "fp32", out_dir=tmp_path, max_photos=1, progress=False))
    blob = sc.artefact_path() / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    tail = src.model.tail.weight.detach().numpy().astype(np.float32).tobytes()
    data = blob.read_bytes()
    assert data.count(tail) == 1
    blob.write_bytes(data.replace(tail, (-np.frombuffer(tail, np.float32)).tobytes()))
    # a matching checksum, as if the exporter itself had written wrong weights (else the backend refuses first)
    sc.file_sha256 = file_sha256(sc.artefact_path())
    write_sidecar(sc, sc.path)
    runner = V.BackendRunner(CoreMLBackend(sc.path, program=MilProgramRunner(sc.artefact_path())), src.value_range)
    report = V.verify(runner, src, "fp32", max_photos=1, progress=False)
    assert not report["passed"] and report["max_abs_diff"] > 1e-2
