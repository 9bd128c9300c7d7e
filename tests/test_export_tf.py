"""TensorFlow's own checks of TFLite exports (export/tf_checks.py, the [tf] extra): its interpreter gives LiteRT's
outputs and its GPU delegate compatibility analyzer's verdict lands in the sidecar. Skipped without tensorflow,
except in CI (.ci/run installs memsr[tf] and sets CI), where a missing tensorflow fails."""
import os
import pytest

from conftest import make_plain
from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.model_file import save_model
from memsr_deploy.formats.sidecar import read_sidecar
from memsr_export import export_model
from memsr_export import tf_checks

if not tf_checks.available():
    if os.environ.get("CI"):
        pytest.fail(f"tensorflow is not installed ({tf_checks.INSTALL}); CI must run TensorFlow's checks",
                    pytrace=False)
    pytest.skip(f"tensorflow is not installed ({tf_checks.INSTALL})", allow_module_level=True)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("tf_models")
    save_model(make_plain(widths=(16, 16, 16), seed=5), d / "tiny_x2", kind="student")
    return d / "tiny_x2"


@pytest.mark.parametrize("precision", ["fp32", "int8-uint8io"])
def test_tensorflow_runs_the_artefact_as_litert_does_and_judges_gpu_compatibility(model, tmp_path, precision):
    sc = read_sidecar(export_model(model, "tflite", precision, out_dir=tmp_path, max_photos=1, progress=False,
                                   tf_checks=True))
    tf = sc.verification["tensorflow"]
    assert tf["version"].split(".")[0] == "2"
    assert tf["interpreter"]["equal"] is True and tf["interpreter"]["max_abs_diff_vs_litert"] <= tf_checks.EQUAL_TOL
    assert tf["interpreter"]["inputs"] == ["patch 17x23", "patch 32x47"]
    gpu = tf["gpu_compatibility"]
    assert gpu["compatible"] is True and gpu["warnings"] == [] and "compatible with GPU delegate" in gpu["verdict"]
    assert sc.verification["passed"] is True


def test_an_interpreter_disagreement_fails_the_export(model, tmp_path, monkeypatch):
    real = tf_checks._run
    calls = []

    def skewed(interp, x, vr):  # every second call is TensorFlow's interpreter
        calls.append(1)
        y = real(interp, x, vr)
        return y + 0.01 if len(calls) % 2 == 0 else y
    monkeypatch.setattr(tf_checks, "_run", skewed)
    with pytest.raises(MemsrError, match="TensorFlow .*interpreter differs from LiteRT's by 0.01"):
        export_model(model, "tflite", "fp32", out_dir=tmp_path, max_photos=1, progress=False)
    assert not list(tmp_path.iterdir())  # nothing written


def test_an_analyzer_warning_is_recorded_verbatim_and_makes_the_verdict_false(model, tmp_path, monkeypatch):
    # TF 2.21's analyzer passed every graph tried here (TOPK_V2, ARG_MAX to int64, CAST to int64, int32 MUL/ADD,
    # a 5-D TRANSPOSE), so its warning text is fed in to test that a warning is read, not dropped
    tf = tf_checks._tf()
    line = "GPU COMPATIBILITY WARNING: Subgraph#0 Op#1 TOPK_V2: Not supported op TOPK_V2"
    monkeypatch.setattr(tf.lite.experimental.Analyzer, "analyze", staticmethod(lambda **kw: print(line)))
    sc = read_sidecar(export_model(model, "tflite", "fp32", out_dir=tmp_path, max_photos=1, progress=False))
    gpu = sc.verification["tensorflow"]["gpu_compatibility"]
    assert gpu == {"compatible": False, "warnings": [line], "verdict": None}
    assert sc.verification["passed"] is True  # recorded, not a failure: the CPU runtimes run it either way
