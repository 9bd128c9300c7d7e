"""memsr-profile command line: table, JSON, plot, measurement and clean errors."""
from __future__ import annotations

import json

import pytest

from memsr_deploy.formats import registry
from memsr_deploy.cli.profile import main
from memsr_deploy.profiler.report import PRESETS, parse_resolution


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_resolutions():
    assert parse_resolution("12MP") == ("12MP", 3000, 4000)
    assert parse_resolution("200mp") == ("200MP", 12240, 16320)
    assert parse_resolution("960x540") == ("960x540", 540, 960)
    label, h, w = parse_resolution("3MP")
    assert abs(h * w - 3e6) < 3000 and abs(w / h - 4 / 3) < 0.01
    assert set(PRESETS) == {"12MP", "48MP", "50MP", "100MP", "108MP", "200MP"}


def test_json_rows_and_teacher_ratio(capsys, tiny_plain_path, tiny_teacher_path):
    rc, out, _ = run(capsys, tiny_teacher_path, tiny_plain_path, "--resolution", "64x48,0.01MP", "--json",
                     "--tile", "16", "--per-layer")
    assert rc == 0
    data = json.loads(out)
    rows = data["rows"]
    assert len(rows) == 2 * 2 * 3
    by = {(r["model"], r["mode"], r["resolution"]): r for r in rows}
    assert by[("tiny_teacher_x2", "whole", "64x48")]["vs_teacher"] == pytest.approx(1.0)
    assert by[("tiny_teacher_x2", "stream", "64x48")]["predicted"] is None
    student = by[("tiny_x2", "whole", "64x48")]
    assert 0 < student["vs_teacher"] < 1  # the plain net holds fewer maps than the teacher
    assert by[("tiny_x2", "stream", "64x48")]["predicted"] < student["predicted"]
    assert all(layer["layers"] for layer in data["layers"])


def test_table_and_plot(capsys, tmp_path, tiny_plain_path, tiny_teacher_path):
    png = tmp_path / "mem.png"
    rc, out, _ = run(capsys, tiny_teacher_path, tiny_plain_path, "--resolution", "12MP,200MP",
                     "--mode", "whole,tiled", "--plot", png)
    assert rc == 0 and png.stat().st_size > 1000
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["model", "mode"] and len(lines) == 2 + 2 * 2 * 2
    assert "8000x6000" in out and "GiB" in out


def test_measure_with_onnxruntime(capsys, tiny_plain_path):
    rc, out, _ = run(capsys, tiny_plain_path, "--resolution", "256x192", "--mode", "whole", "--measure",
                     "--measure-backend", "onnxruntime", "--json")
    assert rc == 0
    (row,) = json.loads(out)["rows"]
    assert row["measured"] and row["measured_backend"] == "onnxruntime"
    assert abs(row["ratio"] - 1) < 0.15


@pytest.mark.parametrize("argv, message", [
    (["--resolution", "huge"], "cannot read resolution"),
    (["--mode", "whole,sideways"], "unknown mode"),
    (["--dtype", "fp64"], "unknown dtype"),
    (["--backend", "tpu"], "unknown backend"),
])
def test_bad_arguments_are_one_line_errors(capsys, tiny_plain_path, argv, message):
    rc, out, err = run(capsys, tiny_plain_path, *argv)
    assert rc == 2 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_missing_model_names_the_file(capsys, tmp_path):
    rc, _, err = run(capsys, tmp_path / "nope")
    assert rc == 2 and "nope.json" in err


def test_default_model_missing_is_a_clean_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "PRETRAINED_DIR", tmp_path)  # a build that ships no models
    assert registry.available() == []
    rc, _, err = run(capsys, "--resolution", "12MP")
    assert rc == 2 and "memsr-x2" in err


def test_models_with_one_file_name_are_told_apart_and_measured_apart(capsys, tmp_path):
    """Runs keep their models as <run>/model.json: two of them get distinct names and distinct ONNX files
    (one ONNX shared by name once measured the teacher's graph in place of the student's)."""
    from conftest import make_plain
    from memsr_deploy.cli.profile import _onnx_for
    from memsr_deploy.formats.model_file import save_model
    from memsr_deploy.profiler.analytic import load_subject

    stems = []
    for run_name, width in (("narrow", 4), ("wide", 16)):
        (tmp_path / run_name).mkdir()
        save_model(make_plain(widths=(width,) * 3), tmp_path / run_name / "model", kind="student")
        stems.append(tmp_path / run_name / "model")
    rc, out, _ = run(capsys, *stems, "--resolution", "64x48", "--mode", "whole", "--json")
    assert rc == 0
    assert [r["model"] for r in json.loads(out)["rows"]] == ["model", "wide/model"]
    work = tmp_path / "onnx"
    work.mkdir()
    files = [_onnx_for(load_subject(s), work) for s in stems]
    assert files[0] != files[1] and files[0].stat().st_size < files[1].stat().st_size
