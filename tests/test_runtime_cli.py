"""memsr-upscale end to end: outputs, folders, artefacts, memory budgets and every way input can be wrong."""
from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import make_plain
from memsr_deploy.cli.upscale import main
from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.model_file import save_model
from memsr_deploy.runtime import RunOptions, Upscaler, open_backend
from memsr_deploy.outputs.folder_job import JOURNAL
from memsr_deploy.runtime.backends.torch_backend import TorchBackend
from memsr_deploy.imageio import read_picture
pytestmark = pytest.mark.usefixtures("one_torch_thread")
from test_runtime_exact import make_artefact, random_image


def save_png(path, h=20, w=24, seed=0, channels=3):
    a = (random_image(np.random.default_rng(seed), h, w, channels) * 255).round().astype(np.uint8)
    Image.fromarray(a[:, :, 0] if channels == 1 else a).save(path)
    return a


def run(capsys, *argv):
    rc = main([str(a) for a in argv] + ["-q"])
    return rc, capsys.readouterr().err


def one_error_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], (w, err)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_single_file(tmp_path, tiny_plain_path, capsys):
    save_png(tmp_path / "in.png")
    rc, err = run(capsys, tmp_path / "in.png", "-o", tmp_path / "out.png", "--model", tiny_plain_path, "--tile", 7)
    assert rc == 0, err
    out = read_picture(tmp_path / "out.png").pixels
    assert out.shape == (40, 48, 3)
    ref = Upscaler(open_backend(model=tiny_plain_path), RunOptions(tile=0)).upscale_file(
        tmp_path / "in.png", tmp_path / "ref.png")
    assert ref["out_size"] == [48, 40]
    assert np.abs(out.astype(int) - read_picture(tmp_path / "ref.png").pixels).max() <= 1
    assert leftovers(tmp_path) == []


def test_default_output_name_and_stream_mode(tmp_path, tiny_plain_path, capsys):
    save_png(tmp_path / "photo.jpg")
    rc, err = run(capsys, tmp_path / "photo.jpg", "--model", tiny_plain_path, "--mode", "stream", "--rows", 3)
    assert rc == 0, err
    with Image.open(tmp_path / "photo_x2.jpg") as im:
        assert im.format == "JPEG" and im.size == (48, 40)


def test_folder_run_reports_a_bad_file_and_does_the_rest(tmp_path, tiny_plain_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    save_png(src / "a.png", seed=1)
    save_png(src / "c.png", seed=2, channels=1)
    (src / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (src / "notes.txt").write_text("not an image and not picked up")
    rc, err = run(capsys, src, "-o", tmp_path / "out", "--model", tiny_plain_path, "--ext", "tif")
    assert rc == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [JOURNAL, "a_x2.tif", "c_x2.tif"]
    assert "b.png" in err and "1 of 3 files failed" in err
    assert read_picture(tmp_path / "out" / "c_x2.tif").pixels.shape == (40, 48, 1)


def test_glob_input(tmp_path, tiny_plain_path, capsys):
    for i in range(2):
        save_png(tmp_path / f"p{i}.png", seed=i)
    save_png(tmp_path / "other.bmp")
    rc, err = run(capsys, str(tmp_path / "p*.png"), "-o", tmp_path / "o", "--model", tiny_plain_path)
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [JOURNAL, "p0_x2.png", "p1_x2.png"]


@pytest.mark.parametrize("case", ["missing", "not_image", "truncated", "folder_is_file", "bad_ext", "scale",
                                  "bad_tile", "bad_budget", "too_big"])
def test_errors_are_one_line_naming_the_file(tmp_path, tiny_plain_path, capsys, case):
    good = tmp_path / "good.png"
    save_png(good, 32, 32)
    out = tmp_path / "out.png"
    args, words = [good, "-o", out], []
    if case == "missing":
        args[0], words = tmp_path / "nope.png", ["nope.png", "no such file"]
    elif case == "not_image":
        (tmp_path / "t.png").write_text("hello")
        args[0], words = tmp_path / "t.png", ["t.png", "not an image"]
    elif case == "truncated":
        blob = good.read_bytes()
        (tmp_path / "cut.png").write_bytes(blob[:len(blob) // 2])
        args[0], words = tmp_path / "cut.png", ["cut.png", "truncated"]
    elif case == "folder_is_file":
        args[2], words = good / "out.png", ["good.png", "regular file"]
    elif case == "bad_ext":
        args[2], words = tmp_path / "out.gif", ["out.gif", "unknown output format"]
    elif case == "scale":
        args += ["--scale", "4"]
        words = ["tiny_x2.json", "x2", "x4"]
    elif case == "bad_tile":
        args += ["--tile", "-3"]
        words = ["--tile"]
    elif case == "bad_budget":
        args += ["--max-memory", "lots"]
        words = ["lots"]
    else:
        args += ["--max-pixels", "1000"]
        words = ["good.png", "decompression"]
    rc, err = run(capsys, *args, "--model", tiny_plain_path)
    assert rc == 2
    one_error_line(err, *words)
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_nothing_half_written_when_a_run_fails(tmp_path, tiny_plain_path, capsys, monkeypatch, ext):
    save_png(tmp_path / "in.png", 40, 40)
    calls = []
    real = TorchBackend.run

    def fail_later(self, x):
        calls.append(1)
        if len(calls) == 3:
            raise MemsrError("simulated failure in the middle of the image", self.source)
        return real(self, x)
    monkeypatch.setattr(TorchBackend, "run", fail_later)
    rc, err = run(capsys, tmp_path / "in.png", "-o", tmp_path / f"out.{ext}", "--model", tiny_plain_path,
                  "--tile", 8, "--batch", 1, "--backend", "torch")
    assert rc == 2 and len(calls) == 3
    one_error_line(err, "simulated")
    assert not (tmp_path / f"out.{ext}").exists() and leftovers(tmp_path) == []


def test_guessed_halo_warns_and_differs(tmp_path, capsys):
    from memsr_deploy.imageio import write_picture
    stem = tmp_path / "deep"  # 12 convs: needs a 12-pixel halo
    save_model(make_plain(widths=[8] * 11, acts=["relu"] * 11, seed=3), stem, kind="student")
    img = random_image(np.random.default_rng(9), 48, 48)
    write_picture(tmp_path / "in.png", np.rint(img * 65535).astype(np.uint16))  # 16 bits: small errors show
    outs = {}
    for name, extra in (("whole", ["--tile", 0]), ("exact", ["--tile", 16]), ("pad10", ["--tile", 16, "--halo", 10])):
        rc, err = run(capsys, tmp_path / "in.png", "-o", tmp_path / f"{name}.png", "--model", stem, *extra)
        assert rc == 0 and (("NOT exact" in err) == (name == "pad10")), err
        outs[name] = read_picture(tmp_path / f"{name}.png").pixels.astype(int)
    assert np.abs(outs["exact"] - outs["whole"]).max() <= 1
    assert np.abs(outs["pad10"] - outs["whole"]).max() > 20  # exact: <= 1 step


# ------------------------------------------------------------------------------------------------ artefacts
@pytest.fixture(scope="module")
def onnx_sidecar(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    save_model(make_plain(seed=4), d / "m", kind="student")
    return d / "m", make_artefact(d / "m", "onnx", d, name="m_onnx")


def test_artefact_runs_like_the_model(tmp_path, onnx_sidecar, capsys):
    stem, sidecar = onnx_sidecar
    save_png(tmp_path / "in.png", 30, 26)
    assert run(capsys, tmp_path / "in.png", "-o", tmp_path / "a.png", "--artefact", sidecar, "--tile", 9,
               "--threads", 1)[0] == 0
    assert run(capsys, tmp_path / "in.png", "-o", tmp_path / "m.png", "--model", stem, "--tile", 0)[0] == 0
    a = read_picture(tmp_path / "a.png").pixels.astype(int)
    assert np.abs(a - read_picture(tmp_path / "m.png").pixels).max() <= 1


@pytest.mark.parametrize("tamper,words", [
    (lambda d: d.update(file_sha256="0" * 64), ["checksum"]),
    (lambda d: d.update(scale=3), ["do not match"]),
    (lambda d: d.update(layout={"input": "NHWC", "output": "NHWC"}), ["channels are not where", "do not match"]),
    (lambda d: d.update(input_shape=[20, 20]), ["sidecar says 20x20"]),
    (lambda d: d.update(format="something-else"), ["not a memsr artefact sidecar"]),
])
def test_sidecar_that_does_not_match_is_refused(tmp_path, onnx_sidecar, capsys, tamper, words):
    _, sidecar = onnx_sidecar
    for f in sidecar.parent.glob(sidecar.stem + ".*"):
        shutil.copy(f, tmp_path / f.name)
    meta = json.loads((tmp_path / sidecar.name).read_text())
    tamper(meta)
    (tmp_path / sidecar.name).write_text(json.dumps(meta))
    save_png(tmp_path / "in.png", 24, 24)
    rc, err = run(capsys, tmp_path / "in.png", "-o", tmp_path / "o.png", "--artefact", tmp_path / sidecar.name)
    assert rc == 2
    one_error_line(err, *words)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the refusal off macOS")
def test_coreml_refused_cleanly_off_macos(tmp_path, onnx_sidecar, capsys):
    _, sidecar = onnx_sidecar
    meta = json.loads(sidecar.read_text())
    (tmp_path / "m.mlpackage").mkdir()
    from memsr_deploy.formats.sidecar import file_sha256
    meta.update(target="coreml", file="m.mlpackage", file_sha256=file_sha256(tmp_path / "m.mlpackage"))
    (tmp_path / "m.json").write_text(json.dumps(meta))
    save_png(tmp_path / "in.png")
    rc, err = run(capsys, tmp_path / "in.png", "--artefact", tmp_path / "m.json")
    assert rc == 2
    one_error_line(err, "m.json", "only on macOS")


def test_stream_mode_runs_on_an_artefact(tmp_path, onnx_sidecar, capsys):
    """Graph backends stream in full-width strips with the exact halo: same pixels as tiling."""
    _, sidecar = onnx_sidecar
    save_png(tmp_path / "in.png", 41, 23)
    assert run(capsys, tmp_path / "in.png", "-o", tmp_path / "s.png", "--artefact", sidecar, "--mode", "stream",
               "--rows", 5)[0] == 0
    assert run(capsys, tmp_path / "in.png", "-o", tmp_path / "t.png", "--artefact", sidecar, "--tile", 0)[0] == 0
    s, t = (read_picture(tmp_path / n).pixels.astype(int) for n in ("s.png", "t.png"))
    assert np.abs(s - t).max() <= 1


def test_missing_bundled_model_is_a_clean_error(tmp_path, capsys, monkeypatch):
    from memsr_deploy.formats import registry
    monkeypatch.setattr(registry, "PRETRAINED_DIR", tmp_path / "none")  # a build that ships no models
    save_png(tmp_path / "in.png")
    rc, err = run(capsys, tmp_path / "in.png")
    assert rc == 2
    one_error_line(err, "memsr-x2", "not shipped")


# -------------------------------------------------------------------------------------------- memory budget


def test_whole_image_that_would_not_fit_is_tiled(tiny_plain_path):
    """An out-of-memory kill cannot be retried: a window that cannot fit is predicted and shrunk up front."""
    from memsr_deploy.runtime import footprint, memory
    backend = open_backend(model=tiny_plain_path)
    said = []
    tile = memory.fit_to_memory(backend, 0, 4000, 6000, said.append, available=200 * 2 ** 20)
    assert 0 < tile < 4000 and "whole image" in said[0]
    win = tile + 2 * backend.caps.halo
    assert footprint.Runtime.of(backend).window_bytes(win, win) <= 0.7 * 200 * 2 ** 20
    assert memory.fit_to_memory(backend, 0, 40, 60, said.append, available=200 * 2 ** 20) == 0


def test_budget_too_small_is_one_line(tmp_path, tiny_plain_path, capsys):
    save_png(tmp_path / "in.png")
    rc, err = run(capsys, tmp_path / "in.png", "--model", tiny_plain_path, "--max-memory", "2K")
    assert rc == 2
    one_error_line(err, "budget too small")


def test_a_missing_input_is_refused_before_the_backend_opens(tmp_path, capsys, monkeypatch):
    """Opening a backend may first probe which runtime is faster (a minute for a large model): a typo in the
    file name must not wait for it."""
    import memsr_deploy.runtime as runtime

    def no_backend(**kw):
        raise AssertionError("backend opened for a missing input")
    monkeypatch.setattr(runtime, "open_backend", no_backend)
    rc, err = run(capsys, tmp_path / "nope.png", "-o", tmp_path / "out.png")
    assert rc == 2
    one_error_line(err, "nope.png", "no such file")
