"""memsr-export: summary table, plans for "all", and one-line errors with exit 2 on bad input."""
import json

import pytest

import memsr_export.verify as V
from conftest import make_plain, make_teacher
from memsr_export.cli import main
from memsr_deploy.formats.model_file import save_model
from memsr_deploy.formats.sidecar import read_sidecar


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_models")
    save_model(make_plain(seed=8), d / "tiny_x2", kind="student")
    save_model(make_teacher(), d / "teacher_x2")
    return d


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0]
    return err[0]


def test_export_table(models, tmp_path, capsys):
    rc = main([str(models / "tiny_x2"), "--target", "tflite", "--precision", "int8-uint8io", "-o", str(tmp_path),
               "--max-photos", "1", "--name", "demo"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert out[0].split()[:4] == ["target", "precision", "file", "size"]
    row = out[2].split()
    assert row[:3] == ["tflite", "int8-uint8io", "demo_int8-uint8io.tflite"]
    sc = read_sidecar(tmp_path / "demo_int8-uint8io.json")
    assert float(row[-2]) == pytest.approx(sc.verification["psnr_y_drop"], abs=1e-3)  # drop column, signed
    assert float(row[6]) == pytest.approx(sc.verification["psnr_y_vs_torch"], abs=0.01)


def test_teacher_with_all_targets_exports_onnx_and_says_what_it_skipped(models, tmp_path, capsys):
    rc = main([str(models / "teacher_x2"), "--target", "all", "-o", str(tmp_path), "--max-photos", "1"])
    captured = capsys.readouterr()
    assert rc == 0 and "ONNX only" in captured.err
    assert [line.split()[0] for line in captured.out.splitlines()[2:]] == ["onnx"]
    assert (tmp_path / "teacher_x2_onnx_fp32.onnx").exists()


def test_failed_verification_exits_nonzero_without_artefact(models, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(V.LIMITS, "fp32", V.Limits(max_abs_diff=0.0, min_psnr_vs_torch=1e9, max_drop=0.0))
    rc = main([str(models / "tiny_x2"), "--target", "onnx", "-o", str(tmp_path), "--max-photos", "1"])
    assert rc == 2 and "verification failed" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["missing", "corrupt", "size", "precision", "calib", "tconv-dynamic"])
def test_bad_input_is_one_line_exit_2(models, tmp_path, capsys, case):
    model = str(models / "tiny_x2")
    args = {
        "missing": [str(tmp_path / "nope"), "--target", "onnx"],
        "corrupt": [str(tmp_path / "bad"), "--target", "onnx"],
        "size": [model, "--target", "onnx", "--input-size", "2x3x64x64"],
        "precision": [model, "--target", "onnx", "--precision", "int8"],
        "calib": [model, "--target", "tflite", "--precision", "int8", "--calib", str(tmp_path / "none")],
        "tconv-dynamic": [model, "--target", "tflite", "--d2s", "transposed-conv"],
    }[case]
    if case == "corrupt":
        (tmp_path / "bad.json").write_text("{not json")
        (tmp_path / "bad.safetensors").write_bytes(b"")
    assert main([*args, "-o", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    if case in ("missing", "corrupt"):
        assert str(tmp_path) in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_sidecar_is_plain_json(models, tmp_path, capsys):
    assert main([str(models / "tiny_x2"), "--target", "coreml", "--precision", "fp16", "-o", str(tmp_path),
                 "--max-photos", "1", "--input-size", "40x40"]) == 0
    d = json.loads((tmp_path / "tiny_x2_coreml_40x40_fp16.json").read_text())  # strict JSON: no Infinity/NaN
    assert d["format"] == "memsr-artefact" and d["input_shape"] == [40, 40] and d["tile"] == 40 - 2 * d["halo"]
    assert d["verification"]["passed"] is True


def test_no_verify_marks_the_sidecar(models, tmp_path, capsys):
    assert main([str(models / "tiny_x2"), "--target", "onnx", "-o", str(tmp_path), "--no-verify"]) == 0
    row = capsys.readouterr().out.splitlines()[2].split()
    assert row[:2] == ["onnx", "fp32"] and row[-4:-1] == ["-", "-", "-"]
    v = read_sidecar(tmp_path / "tiny_x2_onnx_fp32.json").verification
    assert v["passed"] is None and v["skipped"] is True and v["ops"]["Conv"] == 4
