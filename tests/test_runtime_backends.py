"""The default backend: a model description on ONNX Runtime, graph built in memory, torch never imported."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import make_plain
from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.model_file import save_model
from memsr_deploy.method.models import InputSpec
from memsr_deploy.runtime import RunOptions, Upscaler, open_backend

pytest.importorskip("onnxruntime")


def photo_like(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.5 + 0.4 * np.sin(yy[..., None] * 0.37 + xx[..., None] * 0.21 + np.arange(3) * 1.3)
    return (np.clip(base + 0.1 * rng.standard_normal((h, w, 3)), 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["memsr-x2", "memsr-x4"])
def test_default_backend_equals_pytorch_within_one_level(tmp_path, name, monkeypatch):
    from memsr_deploy.runtime.backends import fastest
    # the smallest probe: this checks the chosen runtime's output, not the choice (a full probe of the x4
    # student took 200 s on an AVX2-only CPU)
    monkeypatch.setattr(fastest, "ROUNDS", 1)
    monkeypatch.setattr(fastest, "PROBE_TILES", (1, 1))
    src = tmp_path / "in.png"
    Image.fromarray(photo_like(37, 53)).save(src)
    fast = open_backend(model=name)
    assert fast.name in ("onnxruntime", "litert")   # auto: whichever is faster here (fastest.py)
    outs = {}
    for label, backend in (("ort", fast), ("torch", open_backend(model=name, backend="torch", threads=1))):
        Upscaler(backend, RunOptions(tile=24)).upscale_file(src, tmp_path / f"{label}.png")
        outs[label] = np.asarray(Image.open(tmp_path / f"{label}.png")).astype(int)
    diff = np.abs(outs["ort"] - outs["torch"])
    assert outs["ort"].shape == (37 * fast.caps.scale, 53 * fast.caps.scale, 3)
    assert diff.max() <= 1 and diff.mean() < 0.01


@pytest.mark.parametrize("name", ["memsr-x2-lite", "memsr-x4-lite"])
def test_lite_students_run_like_the_others(tmp_path, name):
    """Named like the defaults, through the same loader, tile loop and int8 sibling (no probe: the test above
    covers the choice of runtime, and each new architecture's probe costs minutes on a slow CPU)."""
    src = tmp_path / "in.png"
    Image.fromarray(photo_like(29, 41)).save(src)
    outs = {}
    ort = open_backend(model=name, backend="onnxruntime")
    for label, backend in (("ort", ort), ("torch", open_backend(model=name, backend="torch", threads=1))):
        Upscaler(backend, RunOptions(tile=16)).upscale_file(src, tmp_path / f"{label}.png")
        outs[label] = np.asarray(Image.open(tmp_path / f"{label}.png")).astype(int)
    assert outs["ort"].shape == (29 * ort.caps.scale, 41 * ort.caps.scale, 3)
    assert np.abs(outs["ort"] - outs["torch"]).max() <= 1
    int8 = open_backend(model=name, backend="onnxruntime", precision="int8")
    x = photo_like(29, 41).astype(np.float32)[None].transpose(0, 3, 1, 2) / 255
    assert 38 < psnr(int8.run(x), ort.run(x)) < 80


@pytest.mark.parametrize("spec", [InputSpec(), InputSpec(1.0, (0.45, 0.44, 0.40), 0.5),
                                  InputSpec(255.0, (114.4, 111.5, 103.0), 127.5)])
def test_graph_from_description_equals_the_network(tmp_path, spec):
    """Normalisation and value range are rebuilt from the description, not assumed."""
    net = make_plain(scale=3, widths=(8, 6, 8), acts=("relu", "none", "relu"), seed=3, input_spec=spec)
    save_model(net, tmp_path / "m", kind="student")
    x = np.random.default_rng(1).random((2, 3, 19, 23), dtype=np.float32)
    got = open_backend(model=tmp_path / "m", backend="onnxruntime").run(x)
    want = open_backend(model=tmp_path / "m", backend="torch").run(x)
    assert got.shape == (2, 3, 57, 69)
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_default_run_does_not_import_torch(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(photo_like(20, 24)).save(src)
    code = ("import sys\nfrom memsr_deploy.cli.upscale import main\n"
            f"rc = main([{str(src)!r}, '-o', {str(tmp_path / 'out.png')!r}, '-q'])\n"
            "print(rc, sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[-2] == "0 []", res.stdout
    assert Image.open(tmp_path / "out.png").size == (48, 40)


def test_backend_choices_are_checked(tiny_plain_path, tiny_teacher_path):
    assert open_backend(model=tiny_teacher_path).name == "torch"   # auto: teachers need torch
    with pytest.raises(MemsrError, match="plain nets"):
        open_backend(model=tiny_teacher_path, backend="onnxruntime")
    with pytest.raises(MemsrError, match="int8 runs on LiteRT or ONNX Runtime"):
        open_backend(model=tiny_plain_path, backend="torch", precision="int8")
    with pytest.raises(MemsrError, match="int8_activation_ranges"):
        open_backend(model=tiny_plain_path, precision="int8")


def test_threads_limit_reaches_the_session(tiny_plain_path):
    b = open_backend(model=tiny_plain_path, threads=1, backend="onnxruntime")
    opts = b.session.get_session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.enable_cpu_mem_arena  # one window's activations are kept for the next call (runtime/heap.py)


_HEAP_PROBE = """
import sys, numpy as np
from memsr_deploy.runtime.heap import settle_heap
if sys.argv[1] == "settled":
    assert settle_heap()
rss = lambda: int([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1])
a = np.ones(24 << 20, np.uint8); del a   # unsettled, glibc raises its mmap threshold to 24 MB here
b = np.ones(8 << 20, np.uint8); before = rss(); del b
print(before - rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_settled_heap_gives_freed_buffers_back():
    """A freed band-sized buffer leaves the process once the heap is settled, and stays in it otherwise (the
    growth that made a 12 MP job peak 100 MB higher)."""
    def freed_kb(mode):
        out = subprocess.run([sys.executable, "-c", _HEAP_PROBE, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())
    assert freed_kb("settled") > 7 * 1024
    assert freed_kb("unsettled") < 1024


def test_corrupt_weights_are_refused_without_torch(tmp_path, tiny_plain_path):
    from memsr_deploy.formats.model_file import _expected_layout
    meta = json.loads(tiny_plain_path.with_suffix(".json").read_text())
    meta["arch"]["widths"][0] += 1  # a description consistent in itself, whose weights are of another net
    meta.update(_expected_layout(meta["kind"], meta["arch"]))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(meta))
    (tmp_path / "bad.safetensors").write_bytes(tiny_plain_path.with_suffix(".safetensors").read_bytes())
    with pytest.raises(MemsrError, match="layers.0.weight"):
        open_backend(model=tmp_path / "bad", backend="onnxruntime")


def test_litert_model_backend_equals_pytorch(tiny_plain_path):
    pytest.importorskip("ai_edge_litert")
    x = np.random.default_rng(2).random((2, 3, 21, 17), dtype=np.float32)
    got = open_backend(model=tiny_plain_path, backend="litert").run(x)
    np.testing.assert_allclose(got, open_backend(model=tiny_plain_path, backend="torch").run(x), atol=2e-5)


def test_litert_tiles_run_in_its_own_layout_and_equal_the_whole_image(tiny_plain_path):
    pytest.importorskip("ai_edge_litert")
    lite = open_backend(model=tiny_plain_path, backend="litert")
    assert lite.caps.channels_last
    img = photo_like(37, 45, seed=3)
    whole = lite.run(img.astype(np.float32)[None].transpose(0, 3, 1, 2) / 255)[0].transpose(1, 2, 0)

    def no_nchw(x):
        raise AssertionError("the tile loop went through run's NCHW transposes")
    lite.run = no_nchw
    tiled = Upscaler(lite, RunOptions(tile=16)).upscale_array(img)
    assert tiled.shape == (74, 90, 3)
    assert np.abs(tiled.astype(np.int16) - np.rint(np.clip(whole, 0, 1) * 255)).max() <= 1


def test_litert_reuses_its_nhwc_output_but_run_returns_fresh_arrays(tiny_plain_path):
    """run_nhwc (the tile loop's call) writes each output into one kept buffer (a fresh multi-MB array per
    window was a page fault per page); run, which every other caller uses, must still give arrays that a later
    call does not touch."""
    pytest.importorskip("ai_edge_litert")
    lite = open_backend(model=tiny_plain_path, backend="litert")
    rng = np.random.default_rng(4)
    a, b = (rng.random((1, 19, 23, 3), dtype=np.float32) for _ in range(2))
    ya = lite.run_nhwc(a)
    want_a = ya.copy()
    yb = lite.run_nhwc(b)
    assert yb is ya   # the kept buffer, now holding b's output
    assert not np.array_equal(yb, want_a)
    first = lite.run(a.transpose(0, 3, 1, 2))
    second = lite.run(b.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(first, want_a.transpose(0, 3, 1, 2))
    assert not np.shares_memory(first, second)


@pytest.mark.parametrize("grey", [False, True])
@pytest.mark.parametrize("dtype,clip", [(np.uint8, True), (np.uint16, True), (np.float32, True),
                                        (np.float32, False)])
def test_converting_into_a_band_equals_converting_afresh(grey, dtype, clip):
    """The tile loop converts each core into its band slice through a kept scratch buffer: same samples as a
    fresh conversion, whatever came before in the scratch."""
    from memsr_deploy.runtime.bands import Converter
    rng = np.random.default_rng(5)
    conv = Converter(grey, dtype, clip)
    band = np.zeros((8, 30, conv.channels), dtype)
    for k, w in enumerate((10, 7, 13)):   # scratch reused at several sizes
        core = (rng.random((8, w, 3), dtype=np.float32) * 1.4 - 0.2)
        x0 = sum((10, 7, 13)[:k])
        got = conv(core, band[:, x0:x0 + w])
        assert np.shares_memory(got, band)
        np.testing.assert_array_equal(band[:, x0:x0 + w], Converter(grey, dtype, clip)(core))


def psnr(a, b) -> float:
    a, b = (np.rint(np.clip(v, 0, 1) * 255) for v in (a, b))
    return 10 * np.log10(255.0 ** 2 / max(np.mean((a - b) ** 2), 1e-12))


@pytest.mark.parametrize("backend", ["litert", "onnxruntime"])
def test_int8_is_close_to_fp32_on_the_bundled_student(backend):
    from memsr_deploy.formats.onnx_graph import activation_bytes
    if backend == "litert":
        pytest.importorskip("ai_edge_litert")
    img = photo_like(48, 64, seed=5).astype(np.float32)[None].transpose(0, 3, 1, 2) / 255
    fp32 = open_backend(model="memsr-x2").run(img)
    int8 = open_backend(model="memsr-x2", backend=backend, precision="int8")
    # two of its conv outputs stay float (mixed precision), so the budget counts fp32's bytes
    assert int8.name == backend and int8.caps.dtype_bytes == activation_bytes(int8.desc, "int8") == 4
    got = int8.run(img)
    assert 38 < psnr(got, fp32) < 80   # close, and really a different (integer) computation


def test_unsigned_int8_weights_are_the_same_values_and_run_close_on_any_cpu():
    """uint8 weights (zero point 128) are what ONNX Runtime runs where its u8 x s8 kernel saturates (x86 without
    VNNI): unfused, the two graphs compute the same thing; fused, the unsigned one stays close to that."""
    import onnxruntime as ort
    from memsr_deploy.formats.model_file import load_plain_arrays
    from memsr_deploy.formats.onnx_graph import build
    from memsr_deploy.formats.registry import resolve
    desc, convs = load_plain_arrays(resolve("memsr-x2"), "int8")
    x = photo_like(40, 56, seed=2).astype(np.float32)[None].transpose(0, 3, 1, 2) / 255

    def run(graph, fuse: bool):
        so = ort.SessionOptions()
        if not fuse:
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(graph.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return sess.run(None, {"input": x})[0]
    signed, unsigned = (build(desc, convs, "int8", unsigned_weights=u) for u in (False, True))
    np.testing.assert_allclose(run(unsigned, False), run(signed, False), atol=1e-6)
    assert psnr(run(unsigned, True), run(signed, False)) > 45


def test_int8_dot_saturation_is_an_x86_question(monkeypatch):
    from memsr_deploy.runtime import host
    monkeypatch.setattr(host.platform, "machine", lambda: "aarch64")
    assert host.int8_dot_saturates() is False


def test_int8_is_never_the_default_and_says_its_cost(tmp_path, capsys):
    from memsr_deploy.cli.upscale import main
    pytest.importorskip("ai_edge_litert")
    for i in range(2):
        Image.fromarray(photo_like(20, 24, seed=i)).save(tmp_path / f"p{i}.png")
    assert open_backend(model="memsr-x2").caps.dtype_bytes == 4
    assert main([str(tmp_path), "-o", str(tmp_path / "out"), "--precision", "int8", "-q"]) == 0
    err = capsys.readouterr().err
    assert err.count("note: int8") == 1 and "dB PSNR" in err and "held-out training photos" in err
    assert len(list((tmp_path / "out").glob("*.png"))) == 2


def test_calibration_writes_ranges_and_keeps_the_checksum(tmp_path, photo_dir):
    from memsr_deploy.formats.model_file import load_model, read_description
    from memsr_deploy.method import int8_ranges
    pytest.importorskip("ai_edge_litert")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(5):   # four calibrate, one is held out
        Image.fromarray(photo_like(40, 48, seed=10 + i)).save(photos / f"p{i}.png")
    save_model(make_plain(widths=(8, 8), acts=("relu", "none")), tmp_path / "m", kind="student")
    record = int8_ranges.calibrate(tmp_path / "m", photos, progress=lambda s: None)
    int8_ranges.write_ranges(tmp_path / "m", record)
    desc = read_description(tmp_path / "m")
    assert len(desc.extra["int8_activation_ranges"]["layers"]) == 3
    assert desc.extra["int8_activation_ranges"]["layers"][0][0] == 0.0   # a ReLU output starts at 0
    assert "1 held-out" in desc.extra["int8_activation_ranges"]["validation"]
    load_model(tmp_path / "m")   # weights untouched: the checksum still holds
    x = photo_like(16, 16).astype(np.float32)[None].transpose(0, 3, 1, 2) / 255
    assert open_backend(model=tmp_path / "m", precision="int8").run(x).shape == (1, 3, 32, 32)


def test_litert_whole_photo_is_predicted_and_tiled_instead_of_oom_killed():
    """LiteRT keeps every layer's output: a whole 12 MP photo of the x2 student would need far more than the
    ideal rule; the runtime predicts it from LiteRT's own (upper-bound) model and tiles instead."""
    pytest.importorskip("ai_edge_litert")
    from memsr_deploy.runtime import footprint, memory
    lite, ort = open_backend(model="memsr-x2", backend="litert"), open_backend(model="memsr-x2",
                                                                                       backend="onnxruntime")
    assert footprint.Runtime.of(lite).window_bytes(100, 100) > 1.5 * footprint.Runtime.of(ort).window_bytes(100, 100)
    said = []
    avail = 16 * 2 ** 30
    assert memory.fit_to_memory(ort, 0, 3000, 4000, said.append, available=avail) == 0   # 9.9 GiB: fits
    tile = memory.fit_to_memory(lite, 0, 3000, 4000, said.append, available=avail)
    assert tile > 0 and "litert" in said[-1]
    win = tile + 2 * lite.caps.halo
    assert footprint.Runtime.of(lite).window_bytes(win, win) <= 0.7 * avail


_ORT_GROWTH = """
import sys, numpy as np
from memsr_deploy.runtime import open_backend, footprint
b = open_backend(model="memsr-x2", threads=1, backend="onnxruntime")
b.run(np.zeros((1, 3, 32, 32), np.float32))   # one-time costs (kernels, thread pool) before the baseline
win = int(sys.argv[1])
x = np.random.rand(1, 3, win, win).astype(np.float32)
kb = lambda k: int([l for l in open("/proc/self/status") if l.startswith(k)][0].split()[1])
base = kb("VmRSS")
for _ in range(3):
    b.run(x)
print((kb("VmHWM") - base) * 1024, footprint.Runtime.of(b).window_bytes(win, win))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_onnxruntime_budget_bounds_what_the_session_holds():
    """--max-memory prices a window by the session's measured bound: the process really grows by less (and by
    more than the ideal two-map rule, which is why the bound exists)."""
    from memsr_deploy.formats.model_file import read_description
    from memsr_deploy.formats.registry import resolve
    from memsr_deploy.formats import memory_budget as budget
    win = 300
    out = subprocess.run([sys.executable, "-c", _ORT_GROWTH, str(win)], capture_output=True, text=True, check=True)
    grown, priced = (int(v) for v in out.stdout.split())
    ideal = budget.per_pixel_channels(read_description(resolve("memsr-x2"))) * 4 * win * win
    assert ideal < grown <= priced, (ideal, grown, priced)
