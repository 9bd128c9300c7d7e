"""--max-memory bounds the whole process's peak RSS (runtime/footprint.py): the prediction, the plans made within
a budget, the one-line refusals, the profiler's same figure, and one real run measured from outside."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.model_file import read_description
from memsr_deploy.formats.registry import resolve
from memsr_deploy.imageio import read_picture
from memsr_deploy.runtime import RunOptions, Upscaler, footprint, open_backend
from test_runtime_cli import one_error_line, run, save_png
pytestmark = pytest.mark.usefixtures("one_torch_thread")

MiB = 2 ** 20
PHOTO = footprint.Frame(3000, 4000)    # a 12 MP 8-bit RGB photo, decoded in rows


@pytest.fixture(scope="module")
def x2():
    return read_description(resolve("memsr-x2"))


def test_prediction_adds_every_cause_and_grows_with_the_window(x2):
    rt = footprint.Runtime("onnxruntime", x2)
    small, large = (footprint.predict(rt, PHOTO, "tile", tile=t) for t in (128, 512))
    for plan in (small, large):
        assert set(plan.parts) == {"process floor", "input rows", "bands", "encoder rows", "activations"}
        assert plan.total == sum(plan.parts.values())
    assert small.parts["process floor"] == large.parts["process floor"] >= footprint.FLOOR["onnxruntime"]
    assert large.parts["activations"] > 10 * small.parts["activations"] / 2    # ~ window area
    assert large.parts["bands"] == 4 * small.parts["bands"]                   # 3 bands of 2*tile rows x 8000 px
    whole = footprint.predict(rt, PHOTO, "whole")
    assert whole.parts["bands"] == 6000 * 8000 * 3                            # one band: the whole output
    assert whole.total > 4 * 2 ** 30                                          # what --tile 0 used to do quietly
    # LiteRT holds more per pixel and less at rest than ONNX Runtime
    lite = footprint.predict(footprint.Runtime("litert", x2), PHOTO, "tile", tile=512)
    assert lite.parts["activations"] > 2 * large.parts["activations"]
    assert lite.parts["process floor"] < large.parts["process floor"]


@pytest.mark.parametrize("name", ["onnxruntime", "litert"])
@pytest.mark.parametrize("budget_mb", [300, 500, 1024, 2048])
def test_plans_stay_within_the_budget(x2, name, budget_mb):
    rt, budget = footprint.Runtime(name, x2), budget_mb * MiB
    tile = footprint.plan_within(rt, PHOTO, budget)
    assert tile.total <= budget and 1 <= tile.tile <= 256       # the default tile is a ceiling, not a target
    if tile.tile < 256:                                         # shrunk: the next size up would not fit
        assert footprint.predict(rt, PHOTO, "tile", tile=tile.tile + 1).total > budget
    try:
        strips = footprint.plan_within(rt, PHOTO, budget, mode="stream", default_rows=88)
    except MemsrError as e:     # a runtime that keeps every layer's output (LiteRT) on a deep net: refused, rightly
        assert footprint.predict(rt, PHOTO, "stream", rows=1).total > budget and "\n" not in str(e)
        return
    assert strips.total <= budget and strips.rows <= 88
    if strips.rows < 88:
        assert footprint.predict(rt, PHOTO, "stream", rows=strips.rows + 1).total > budget


def test_explicit_sizes_that_cannot_fit_are_refused_naming_both_flags(x2):
    rt = footprint.Runtime("onnxruntime", x2)
    for kw, flag in ((dict(tile=0), "--tile 0"), (dict(tile=1024), "--tile 1024"),
                     (dict(mode="stream", rows=300), "--mode stream --rows 300")):
        with pytest.raises(MemsrError) as e:
            footprint.plan_within(rt, PHOTO, 300 * MiB, **kw)
        msg = str(e.value)
        assert flag in msg and "--max-memory 300 MiB" in msg and "predicted peak" in msg
        assert "\n" not in msg
    # what fits is kept as given
    assert footprint.plan_within(rt, PHOTO, 1024 * MiB, tile=300).tile == 300
    assert footprint.plan_within(rt, footprint.Frame(300, 400), 1024 * MiB, tile=0).mode == "whole"


def test_a_budget_below_the_floor_says_the_floor(x2):
    rt = footprint.Runtime("torch", x2)
    with pytest.raises(MemsrError, match=r"floor of about \d+ MiB on torch"):
        footprint.plan_within(rt, PHOTO, 300 * MiB)


def test_upscaler_runs_the_plan_and_stays_exact(tmp_path, tiny_plain_path):
    """A budget that forces small tiles and strips (graph strips and PyTorch's layer-wise ones): the sizes are
    the plan's, the pixels the same."""
    save_png(tmp_path / "in.png", 50, 60)
    frame = footprint.Frame(50, 60)
    ref = None
    for name, mode in (("onnxruntime", "tile"), ("onnxruntime", "stream"), ("torch", "stream")):
        backend = open_backend(model=tiny_plain_path, backend=name)
        rt = footprint.Runtime.of(backend)
        budget = footprint.predict(rt, frame, mode, tile=8, rows=4, fmt="PNG").total   # room for tile 8 / 4 rows
        up = Upscaler(backend, RunOptions(mode=mode, max_memory=budget))
        out = tmp_path / f"{name}_{mode}.png"
        up.upscale_file(tmp_path / "in.png", out)
        size = up.last["tile" if mode == "tile" else "rows"]
        assert size == (8 if mode == "tile" else 4), (name, mode, up.last)
        pixels = read_picture(out).pixels
        if ref is None:
            ref = pixels
        np.testing.assert_allclose(pixels, ref, atol=1)


def test_cli_refusals_are_one_line_before_any_work(tmp_path, tiny_plain_path, capsys):
    save_png(tmp_path / "in.png", 40, 48)
    out = tmp_path / "out.png"
    rc, err = run(capsys, tmp_path / "in.png", "-o", out, "--model", tiny_plain_path, "--max-memory", "20M")
    assert rc == 2
    one_error_line(err, "budget too small", "floor of about")
    # a whole photo on a 300M budget: the photo need not even be decoded to refuse it
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((1500, 2000, 3), np.uint8)).save(big)
    rc, err = run(capsys, big, "-o", out, "--max-memory", "300M", "--tile", "0", "--backend", "onnxruntime")
    assert rc == 2
    one_error_line(err, "--tile 0", "--max-memory 300 MiB", "predicted peak")
    rc, err = run(capsys, big, "-o", out, "--max-memory", "300M", "--tile", "2000", "--backend", "onnxruntime")
    assert rc == 2
    one_error_line(err, "--tile 2000", "--max-memory 300 MiB")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_auto_backend_under_a_budget_picks_one_that_fits(x2):
    """The remembered faster runtime unless its plan cannot keep the default tile and the other's can."""
    ort, lite = footprint.Runtime("onnxruntime", x2), footprint.Runtime("litert", x2)
    rt, plan = footprint.first_that_fits([lite, ort], PHOTO, 2048 * MiB)
    assert rt is lite and plan.tile == 256
    tight = footprint.predict(ort, PHOTO, "tile", tile=256).total + MiB
    assert footprint.predict(lite, PHOTO, "tile", tile=256).total > tight
    rt, plan = footprint.first_that_fits([lite, ort], PHOTO, tight)
    assert rt is ort and plan.tile == 256


def test_profiler_prints_the_same_process_figure(capsys, x2):
    from memsr_deploy.cli.profile import main
    assert main(["--resolution", "400x300", "--mode", "tiled,stream,whole", "--tile", "200", "--rows", "40",
                 "--process", "litert", "--json"]) == 0
    import json
    rows = {r["mode"]: r["process"] for r in json.loads(capsys.readouterr().out)["rows"]}
    lite, frame = footprint.Runtime("litert", x2), footprint.Frame(300, 400)
    assert rows["tiled"] == footprint.predict(lite, frame, "tile", tile=200).total
    assert rows["stream"] == footprint.predict(lite, frame, "stream", rows=40).total
    assert rows["whole"] == footprint.predict(lite, frame, "whole").total > rows["tiled"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB is Linux's")
def test_a_real_run_stays_within_its_budget(tmp_path):
    """The bundled student on a wide photo, full-width strips on ONNX Runtime under 300M: the default strips
    would not fit, so the budget chooses them, and the process's peak RSS (read by the kernel, from outside)
    stays within 10% above it, and not far below (the prediction is not a blanket overestimate)."""
    rng = np.random.default_rng(0)
    img = np.kron(rng.integers(0, 255, (40, 800, 3), dtype=np.uint8), np.ones((5, 5, 1), np.uint8))
    Image.fromarray(img).save(tmp_path / "wide.jpg", quality=90)          # 4000 x 200
    budget = 300 * MiB
    rt = footprint.Runtime("onnxruntime", read_description(resolve("memsr-x2")))
    frame = footprint.Frame(200, 4000)
    assert footprint.predict(rt, frame, "stream", rows=88).total > budget  # the budget binds
    cmd = [sys.executable, "-m", "memsr_deploy.cli.upscale", str(tmp_path / "wide.jpg"), "-o",
           str(tmp_path / "out.png"), "--backend", "onnxruntime", "--mode", "stream", "--max-memory", "300M", "-q"]
    out = subprocess.run([sys.executable, "-m", "memsr_deploy.profiler.peak_rss", *cmd], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    peak = int(out.stdout.split()[-1])
    assert 0.6 * budget < peak <= 1.1 * budget, peak / MiB


def test_auto_under_a_budget_does_not_probe(tmp_path, capsys, monkeypatch):
    """The speed probe opens both runtimes at once (about 240 MB here): under a budget --backend auto takes the
    remembered winner or ONNX Runtime, the leaner, without it."""
    from memsr_deploy.runtime.backends import fastest

    def no_probe(*a, **kw):
        raise AssertionError("speed probe under a budget")
    monkeypatch.setattr(fastest, "choose", no_probe)
    save_png(tmp_path / "in.png", 40, 48)
    rc, err = run(capsys, tmp_path / "in.png", "-o", tmp_path / "out.png", "--max-memory", "300M")
    assert rc == 0, err
    assert read_picture(tmp_path / "out.png").pixels.shape[:2] == (80, 96)
