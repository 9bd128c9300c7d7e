"""Issue 12 (hardening), one test per class of bad input: each makes the bad file, runs the CLI, and checks the
exit code, the one-line message, that inputs are byte-identical and that nothing stray is left behind."""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from conftest import make_plain, make_teacher
from memsr_deploy.cli import convert as convert_cli
from memsr_deploy.cli import evaluate as eval_cli
from memsr_deploy.cli import profile as profile_cli
from memsr_deploy.cli import train as train_cli
from memsr_deploy.cli import upscale as upscale_cli
from memsr_deploy.errors import MemsrError, cli_errors
from memsr_deploy.formats.model_file import load_model, pair_paths, save_model
from memsr_deploy.formats.sidecar import file_sha256, read_sidecar
from memsr_deploy.outputs.atomic import atomic_path, is_temp_name
from memsr_deploy.outputs.folder_job import JOURNAL

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def png(path, h=12, w=16, seed=0):
    a = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(path)
    return path


def digest(folder: Path) -> dict:
    """Every file under ``folder`` (hidden ones too) -> its SHA-256: inputs unchanged, nothing stray."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(err: str, *words: str) -> str:
    # a terminal shows what follows the last carriage return of each line (progress bars redraw with \r)
    lines = [ln.split("\r")[-1] for ln in err.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def upscale(capsys, *argv):
    rc = upscale_cli.main([str(a) for a in argv] + ["-q"])
    return rc, capsys.readouterr().err


# ----------------------------------------------------------------------------------- 1-3: the output plan
def test_batch_never_writes_over_another_input(tmp_path, tiny_plain_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    a, a2 = png(d / "a.png"), png(d / "a_x2.png", seed=1)
    before = digest(d)
    rc, err = upscale(capsys, a, a2, "--model", tiny_plain_path)
    assert rc == 2
    one_line(err, "a_x2.png", "input")
    assert digest(d) == before  # refused before any work: not even a_x2_x2.png


def test_an_output_hard_linked_to_the_input_is_refused_even_with_overwrite(tmp_path, tiny_plain_path, capsys):
    import os
    a = png(tmp_path / "a.png")
    os.link(a, tmp_path / "b.png")  # another name of the same file
    before = digest(tmp_path)
    rc, err = upscale(capsys, a, "-o", tmp_path / "b.png", "--model", tiny_plain_path, "--overwrite")
    assert rc == 2
    one_line(err, "b.png", "input")
    assert digest(tmp_path) == before


def test_folder_run_skips_outputs_that_are_inputs_or_exist(tmp_path, tiny_plain_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    png(d / "a.png")
    png(d / "a_x2.png", seed=1)  # an earlier result in the same folder: an input of this run
    before = digest(d)
    rc, err = upscale(capsys, d, "--model", tiny_plain_path)
    assert rc == 0, err
    after = digest(d)
    assert {k: after[k] for k in before} == before  # every existing file byte-identical
    assert set(after) - set(before) == {"a_x2_x2.png", JOURNAL}
    assert "skipped" in err and "a.png" in err and "input" in err
    out = tmp_path / "out"
    out.mkdir()
    png(out / "a_x2.png", seed=2)  # not an input, but not this run's either
    kept = digest(out)
    rc, err = upscale(capsys, d, "-o", out, "--model", tiny_plain_path)
    assert rc == 0, err
    assert "skipped" in err and "--overwrite" in err
    assert digest(out)["a_x2.png"] == kept["a_x2.png"] and set(digest(out)) == {"a_x2.png", "a_x2_x2.png",
                                                                                 "a_x2_x2_x2.png", JOURNAL}


def test_existing_output_needs_overwrite(tmp_path, tiny_plain_path, capsys):
    src, dst = png(tmp_path / "b.png"), png(tmp_path / "b_x2.png", seed=1)
    old = dst.read_bytes()
    rc, err = upscale(capsys, src, "--model", tiny_plain_path)
    assert rc == 2
    one_line(err, "b_x2.png", "--overwrite")
    assert dst.read_bytes() == old
    rc, err = upscale(capsys, src, "--model", tiny_plain_path, "--overwrite")
    assert rc == 0 and dst.read_bytes() != old and Image.open(dst).size == (32, 24)
    # --overwrite never covers an input
    rc, err = upscale(capsys, src, "-o", src, "--model", tiny_plain_path, "--overwrite")
    assert rc == 2
    one_line(err, "b.png", "input")


def test_two_inputs_one_output_is_refused_before_work(tmp_path, tiny_plain_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    png(d / "a.png")
    png(d / "a.jpg", seed=1)
    rc, err = upscale(capsys, d / "a.png", d / "a.jpg", "--ext", "png", "-o", tmp_path / "out/", "--model",
                      tiny_plain_path)
    assert rc == 2
    one_line(err, "a.png", "a.jpg", "a_x2.png")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    rc, err = upscale(capsys, d, "--ext", "png", "-o", tmp_path / "out2", "--model", tiny_plain_path)
    assert rc == 2  # a folder run refuses collisions too (which one would win is arbitrary)
    one_line(err, "a_x2.png")


def test_convert_refuses_its_input_and_an_existing_output(tmp_path, capsys):
    save_model(make_teacher(), tmp_path / "t")
    before = digest(tmp_path)
    assert convert_cli.main([str(tmp_path / "t"), "-o", str(tmp_path / "t")]) == 2
    one_line(capsys.readouterr().err, "t.", "input")
    save_model(make_plain(), tmp_path / "p")
    before = digest(tmp_path)
    assert convert_cli.main([str(tmp_path / "t"), "-o", str(tmp_path / "p")]) == 2
    one_line(capsys.readouterr().err, "p.", "--overwrite")
    assert digest(tmp_path) == before


# ------------------------------------------------------------------------------ 4: temporary files, signals
def test_folder_runs_ignore_temp_and_hidden_files(tmp_path, tiny_plain_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    png(d / "a.png")
    png(d / ".a.memsr-tmp.k2j4h5g6.png", seed=1)  # left by a run killed with SIGKILL
    png(d / ".a.x7f3kq0z.png", seed=2)             # the same from an older version
    assert is_temp_name(d / ".a.memsr-tmp.k2j4h5g6.png") and not is_temp_name(d / "a.png")
    rc, err = upscale(capsys, d, "-o", tmp_path / "out", "--model", tiny_plain_path)
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [JOURNAL, "a_x2.png"]


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_inside_atomic_write_removes_the_temp_file(tmp_path, capsys, sig, code):
    seen, handlers = [], (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))

    @cli_errors
    def main(argv=None):
        with atomic_path(tmp_path / "out.png") as tmp:
            tmp.write_bytes(b"half")
            seen.append(tmp)
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the signal arrives here, as an exception
        return 0

    assert main([]) == code
    assert seen and not seen[0].exists() and list(tmp_path.iterdir()) == []
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers  # restored


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_while_the_temp_file_is_created_removes_it(tmp_path, monkeypatch, sig, code):
    """The signal lands right after the file exists and before its name is returned (where a run that another
    thread received the signal for used to leave the file behind): it is delivered once the name is known."""
    import tempfile
    real = tempfile.mkstemp
    handlers = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))

    def mkstemp_then_signal(*args, **kwargs):
        made = real(*args, **kwargs)
        os.kill(os.getpid(), sig)
        time.sleep(0.05)  # a handler that raised would do so here, before the caller knows the name
        return made

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_signal)

    @cli_errors
    def main(argv=None):
        with atomic_path(tmp_path / "out.png") as tmp:
            tmp.write_bytes(b"never finished")
        return 0

    assert main([]) == code
    assert list(tmp_path.iterdir()) == []
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers


def test_sigterm_during_a_real_run_leaves_nothing(tmp_path):
    model = tmp_path / "m"
    save_model(make_plain(widths=(16, 16, 16), acts=("relu", "relu", "none")), model, kind="student")
    png(tmp_path / "big.png", 1500, 1500)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "memsr_deploy.cli.upscale", str(tmp_path / "big.png"), "-o",
                             str(out / "big.tif"), "--model", str(model), "-q"], env=ENV,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and any(is_temp_name(p) for p in out.iterdir()):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "finished before it could be interrupted: use a larger image"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "terminated"
    assert list(out.iterdir()) == []


def test_export_staging_of_a_killed_run_is_removed(tmp_path):
    from memsr_export.api import STAGING_MARK, _remove_stale_staging
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".m_onnx_fp32{STAGING_MARK}{dead.pid}.abcd1234"
    live = tmp_path / f".m_onnx_fp32{STAGING_MARK}{os.getpid()}.abcd1234"
    for p in (stale, live):
        p.mkdir()
        (p / "m_onnx_fp32.onnx").write_bytes(b"x")
    _remove_stale_staging(tmp_path)
    assert not stale.exists() and live.exists()  # a running export's folder is left alone


# --------------------------------------------------------------------------------- 6-7: models and sidecars
def _edit_json(stem: Path, edit) -> None:
    j = pair_paths(stem)[1]
    meta = json.loads(j.read_text())
    edit(meta)
    j.write_text(json.dumps(meta))


@pytest.mark.parametrize("field,edit", [
    ("receptive_radius", lambda m: m.update(receptive_radius=1)),
    ("input.value_range", lambda m: (m["input"].update(value_range=0), m["arch"]["input"].update(value_range=0))),
    ("input.norm", lambda m: (m["input"].update(norm=-1.0), m["arch"]["input"].update(norm=-1.0))),
    ("NaN", lambda m: (m["input"].update(norm=float("nan")), m["arch"]["input"].update(norm=float("nan")))),
    ("weights_sha256", lambda m: m.pop("weights_sha256")),
    ("layer_widths", lambda m: m["layer_widths"].__setitem__(0, 9)),
    ("params", lambda m: m.update(params=5)),
    ("scale", lambda m: m.update(scale="2")),
])
def test_model_description_is_checked_against_the_architecture(tmp_path, tiny_plain_path, capsys, field, edit):
    _edit_json(tiny_plain_path, edit)
    with pytest.raises(MemsrError, match=field.replace(".", r"\.")):
        load_model(tiny_plain_path)
    png(tmp_path / "a.png")
    rc, err = upscale(capsys, tmp_path / "a.png", "--model", tiny_plain_path)
    assert rc == 2
    one_line(err, "tiny_x2.json", field)
    assert not (tmp_path / "a_x2.png").exists()


def test_nan_weights_are_refused(tmp_path, tiny_plain_path):
    w = pair_paths(tiny_plain_path)[0]
    state = load_file(str(w))
    state["layers.0.weight"][0, 0, 0, 0] = float("nan")
    save_file(state, str(w))
    _edit_json(tiny_plain_path, lambda m: m.update(weights_sha256=hashlib.sha256(w.read_bytes()).hexdigest()))
    with pytest.raises(MemsrError, match="layers.0.weight.*NaN"):
        load_model(tiny_plain_path)


def test_bundled_models_pass_validation():
    from memsr_deploy.formats.registry import names
    for name in names():
        load_model(name)


def _sidecar(tmp_path) -> tuple[Path, dict]:
    art = tmp_path / "m_onnx_fp32.onnx"
    art.write_bytes(b"not really onnx")
    io = {"dtype": "float32", "quant": None, "range": [0.0, 1.0]}
    d = {"format": "memsr-artefact", "version": 1, "target": "onnx", "file": art.name, "precision": "fp32",
         "scale": 2, "halo": 3, "receptive_radius": 3, "tile": 64, "layout": {"input": "NCHW", "output": "NCHW"},
         "input": io, "output": io, "source_model": {"receptive_radius": 3}, "file_sha256": file_sha256(art),
         "input_shape": None, "shape_range": {"min": [1, 1], "max": [4096, 4096]}}
    return tmp_path / "m_onnx_fp32.json", d


@pytest.mark.parametrize("field,edit", [
    ("scale", lambda d: d.update(scale="abc")),
    ("halo", lambda d: d.pop("halo")),
    ("file_sha256", lambda d: d.update(file_sha256="0" * 64)),
    ("file_sha256", lambda d: d.pop("file_sha256")),
    ("receptive_radius", lambda d: d.update(receptive_radius=1)),
    ("input.range", lambda d: d.update(input={**d["input"], "range": [0.0, -1.0]})),
    ("NaN", lambda d: d.update(input={**d["input"], "range": [0.0, float("nan")]})),
    ("tile", lambda d: d.update(tile=0)),
    ("file", lambda d: d.update(file="../elsewhere.onnx")),
])
def test_sidecar_fields_are_validated(tmp_path, capsys, field, edit):
    path, d = _sidecar(tmp_path)
    path.write_text(json.dumps(d))
    read_sidecar(path)  # the good one passes
    edit(d)
    path.write_text(json.dumps(d))
    with pytest.raises(MemsrError, match=re.escape(field)):
        read_sidecar(path)
    png(tmp_path / "a.png")
    rc, err = upscale(capsys, tmp_path / "a.png", "--artefact", path)
    assert rc == 2
    one_line(err, field)


# ----------------------------------------------------------------------- 9: output under a regular file
def test_outputs_under_a_regular_file_are_one_line_errors(tmp_path, tiny_plain_path, capsys, photo_dir):
    afile = tmp_path / "afile"
    afile.write_text("x")
    save_model(make_teacher(), tmp_path / "t")
    cases = [
        (convert_cli.main, [str(tmp_path / "t"), "-o", str(afile / "x")]),
        (profile_cli.main, [str(tiny_plain_path), "--resolution", "1MP", "--mode", "whole", "--plot",
                            str(afile / "x.png")]),
        (train_cli.main, ["teacher", "--preset", "tiny", "--data", str(photo_dir), "--out", str(afile)]),
        (train_cli.main, ["teacher", "--preset", "tiny", "--data", str(photo_dir), "--out", str(afile / "run")]),
        (eval_cli.main, [str(tiny_plain_path), "--data", str(photo_dir), "--save-dir", str(afile / "sr")]),
    ]
    from memsr_bench import device_bench
    from memsr_export import cli as export_cli
    cases += [(export_cli.main, [str(tiny_plain_path), "--target", "onnx", "-o", str(afile / "sub")]),
              (device_bench.main, [str(tmp_path / "x.tflite"), "--host", "--out", str(afile / "x")])]
    for main, argv in cases:
        assert main(argv) == 2, argv
        one_line(capsys.readouterr().err, "afile", "regular file")
    assert afile.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == \
        sorted(["afile", "t.json", "t.safetensors", "tiny_x2.json", "tiny_x2.safetensors"])


# ---------------------------------------------------------------------------------------------- 10: resume
def _teacher(photo_dir, out, *extra):
    return ["teacher", "--data", str(photo_dir), "--width", "8", "--blocks", "1", "--steps", "2", "--batch", "1",
            "--patch", "8", "--ckpt-every", "1", "--no-val", "--threads", "1", "--out", str(out), *extra]


def test_resume_refuses_another_architecture_and_records_changed_settings(tmp_path, photo_dir, capsys):
    out = tmp_path / "run"
    assert train_cli.main(_teacher(photo_dir, out)) == 0
    ckpt = (out / "checkpoint.pt").read_bytes()
    for extra in (["--width", "4"], ["--scale", "3"], ["--blocks", "2"]):
        capsys.readouterr()
        argv = _teacher(photo_dir, out, *extra)
        argv[argv.index("--steps") + 1] = "3"
        assert train_cli.main(argv) == 2, extra
        one_line(capsys.readouterr().err, "checkpoint.pt", "architecture")
        assert (out / "checkpoint.pt").read_bytes() == ckpt
    capsys.readouterr()
    argv = _teacher(photo_dir, out, "--lr", "1e-3", "--seed", "5", "--channel-shuffle")
    argv[argv.index("--steps") + 1] = "3"
    assert train_cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: resuming with changed settings" in err and "lr" in err and "seed" in err and "sampler" in err
    prov = json.loads((out / "model.json").read_text())["provenance"]
    assert prov["resumed_from_step"] == 2
    assert prov["resumed_with_changes"]["lr"] == {"checkpoint": 2e-4, "now": 1e-3}
    assert prov["resumed_with_changes"]["seed"] == {"checkpoint": 0, "now": 5}
    assert prov["resumed_with_changes"]["steps"] == {"checkpoint": 2, "now": 3}
    assert prov["resumed_with_changes"]["sampler"] == {"checkpoint": "flat_threshold=0.02 channel_shuffle=False",
                                                       "now": "flat_threshold=0.02 channel_shuffle=True"}


def test_a_fresh_run_does_not_replace_another_runs_files(tmp_path, photo_dir, capsys):
    out = tmp_path / "run"
    assert train_cli.main(_teacher(photo_dir, out)) == 0
    before = digest(out)
    capsys.readouterr()
    assert train_cli.main(_teacher(photo_dir, out, "--no-resume")) == 2
    one_line(capsys.readouterr().err, "--overwrite")
    assert digest(out) == before
    assert train_cli.main(_teacher(photo_dir, out, "--no-resume", "--overwrite")) == 0


# ------------------------------------------------------------------------------------- 11: numeric flags
def _bench(a):
    from memsr_bench import device_bench
    return device_bench.main(["x.tflite", "--host", *a])


def _export(a):
    from memsr_export import cli as export_cli
    return export_cli.main(["m", *a])


@pytest.mark.parametrize("main,argv,flag", [
    (train_cli.main, ["teacher", "--data", "d", "--out", "o", "--ckpt-every", "0"], "--ckpt-every"),
    (train_cli.main, ["teacher", "--data", "d", "--out", "o", "--batch", "0"], "--batch"),
    (train_cli.main, ["teacher", "--data", "d", "--out", "o", "--steps", "0"], "--steps"),
    (train_cli.main, ["teacher", "--data", "d", "--out", "o", "--lr", "nan"], "--lr"),
    (train_cli.main, ["student", "--teacher", "t", "--data", "d", "--out", "o", "--rank-eps", "-1"], "--rank-eps"),
    (train_cli.main, ["int8", "--model", "m", "--data", "d", "--out", "o", "--max-minutes", "inf"],
     "--max-minutes"),
    (upscale_cli.main, ["a.png", "--max-pixels", "nan"], "--max-pixels"),
    (upscale_cli.main, ["a.png", "--tile", "-5"], "--tile"),
    (upscale_cli.main, ["a.png", "--max-memory", "0"], "--max-memory"),
    (upscale_cli.main, ["a.png", "--quality", "101"], "--quality"),
    (upscale_cli.main, ["a.png", "--threads", "0"], "--threads"),
    (eval_cli.main, ["--max-size", "0"], "--max-size"),
    (eval_cli.main, ["--tile", "-1"], "--tile"),
    (profile_cli.main, ["--tile", "0"], "--tile"),
    (profile_cli.main, ["--halo", "-2"], "--halo"),
    (convert_cli.main, ["t", "-o", "p", "--beta", "nan"], "--beta"),
    (_bench, ("--run-timeout", "nan"), "--run-timeout"),
    (_bench, ("--num-runs", "0"), "--num-runs"),
    (_export, ("--max-photos", "0"), "--max-photos"),
])
def test_numeric_flags_are_checked_at_parse_time(capsys, main, argv, flag):
    assert main(list(argv)) == 2
    one_line(capsys.readouterr().err, flag)


# ------------------------------------------------------------------------------------- 12: tiny images
@pytest.mark.parametrize("h,w", [(1, 1), (2, 3)])
def test_tiny_images(tmp_path, tiny_plain_path, capsys, h, w):
    src = png(tmp_path / "a.png", h, w)
    rc, err = upscale(capsys, src, "--model", tiny_plain_path)
    assert rc == 0, err
    out = np.asarray(Image.open(tmp_path / "a_x2.png"))
    assert out.shape == (2 * h, 2 * w, 3)
    # exact: the same as the network on the whole (zero-padded) image
    x = torch.from_numpy(np.asarray(Image.open(src)).astype(np.float32) / 255).permute(2, 0, 1)[None]
    model, _ = load_model(tiny_plain_path)
    with torch.no_grad():
        ref = (model(x).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(out.astype(np.float32) - ref).max() <= 1


def test_train_and_eval_skip_images_too_small(tmp_path, tiny_plain_path, capsys):
    d = tmp_path / "tiny"
    d.mkdir()
    png(d / "one.png", 1, 1)
    png(d / "two.png", 2, 3)
    assert train_cli.main(["teacher", "--preset", "tiny", "--data", str(d), "--steps", "1", "--patch", "8",
                           "--no-val", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: ")
    assert "one.png" in err and "two.png" in err and "no usable training images" in err
    assert eval_cli.main([str(tiny_plain_path), "--data", str(d)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "skipping" in err and "too small" in err
    assert err.strip().splitlines()[-1].startswith("error: ")
    png(d / "ok.png", 24, 24)  # a usable image among them: the small ones are skipped with a message
    assert eval_cli.main([str(tiny_plain_path), "--data", str(d), "--no-ssim"]) == 0
    assert "skipping" in capsys.readouterr().err


# ------------------------------------------------------------------------------ 5: the one error handler
def test_cli_errors_turns_os_errors_into_one_line(tmp_path, capsys):
    @cli_errors
    def main(argv=None):
        os.rename(tmp_path / "missing", tmp_path / "b")

    assert main([]) == 2
    one_line(capsys.readouterr().err, "missing", "No such file")


def test_every_console_script_uses_cli_errors():
    import configparser
    import importlib
    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).parents[1] / "setup.cfg")
    scripts = [ln.split("=", 1)[1].strip() for ln in cfg["options.entry_points"]["console_scripts"].splitlines()
               if "=" in ln]
    assert len(scripts) >= 8
    for target in scripts:
        module, func = target.split(":")
        main = getattr(importlib.import_module(module), func)
        assert getattr(main, "__wrapped__", None) is not None, target  # functools.wraps of cli_errors
