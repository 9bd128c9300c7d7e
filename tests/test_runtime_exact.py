"""Tiled and streamed inference equal whole-image inference (float round-off only), on every backend here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import make_plain, make_teacher
from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.model_file import save_model
from memsr_deploy.runtime import RunOptions, Upscaler, open_backend
from memsr_deploy.runtime.backends import installed_artefact_targets
from memsr_deploy.runtime.backends.torch_backend import TorchBackend
from memsr_deploy.runtime.windows import plan_span
from memsr_deploy.formats.tile_plan import plan_axis

ATOL = 2e-5
FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------------- helpers
def make_artefact(model_stem: Path, target: str, out_dir: Path, input_size=None, name=None) -> Path:
    """Sidecar of an fp32 artefact of a saved model, written by the exporter (verification skipped: the tests
    compare with PyTorch themselves)."""
    try:
        from memsr_export import export_model
    except ImportError as e:
        pytest.skip(f"memsr_export.export_model is not available ({e})")
    return Path(export_model(str(model_stem), target, precision="fp32", out_dir=str(out_dir),
                             input_size=input_size, name=name, verify=False, progress=False))


def random_image(rng: np.random.Generator, h: int, w: int, channels: int = 3) -> np.ndarray:
    """Smooth content plus noise: closer to a photo than pure noise, and different everywhere."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.5 + 0.4 * np.sin(yy[..., None] * 0.37 + xx[..., None] * 0.21 + np.arange(channels) * 1.3)
    return np.clip(base + 0.15 * rng.standard_normal((h, w, channels)), 0, 1).astype(np.float32)


def plain_backend(depth: int, scale: int, seed: int = 0) -> TorchBackend:
    acts = ["relu"] * (depth - 1) + ["none"]
    return TorchBackend(module=make_plain(scale=scale, widths=[6] * depth, acts=acts, seed=seed))


def whole(backend, img):
    return Upscaler(backend, RunOptions(tile=0)).upscale_array(img)


# ------------------------------------------------------------------------------------------------ the plan
def _check_axis(tiles, length, halo, start=0):
    covered = np.zeros(length, bool)
    for t in tiles:
        assert 0 <= t.in_start and t.in_start + t.win <= length           # windows stay inside the image
        assert t.in_start <= t.core_start and t.core_start + t.core <= t.in_start + t.win
        assert t.in_start == 0 or t.core_start - t.in_start >= halo       # border, or a full halo of context
        end = t.in_start + t.win
        assert end == length or end - (t.core_start + t.core) >= halo
        covered[t.core_start:t.core_start + t.core] = True
    assert covered[start:].all()
    assert len({t.win for t in tiles}) == 1 and len({t.core for t in tiles}) == 1   # equal windows: batchable


@given(length=st.integers(1, 300), tile=st.integers(1, 80), halo=st.integers(0, 20), data=st.data())
@settings(max_examples=200, deadline=None)
def test_plan_span_extends_tile_plan(length, tile, halo, data):
    assert plan_span(length, tile, halo) == plan_axis(length, tile, halo)
    _check_axis(plan_axis(length, tile, halo), length, halo)
    start = data.draw(st.integers(0, length - 1))
    _check_axis(plan_span(length, tile, halo, start), length, halo, start)


@given(length=st.integers(1, 200), halo=st.integers(0, 12), data=st.data())
@settings(max_examples=200, deadline=None)
def test_fixed_windows_keep_exactness(length, halo, data):
    fixed = data.draw(st.integers(min(length, 2 * halo + 1), length))
    tile = data.draw(st.integers(1, max(1, fixed - 2 * halo)))
    tiles = plan_span(length, tile, halo, 0, fixed)
    assert {t.win for t in tiles} == {fixed}
    _check_axis(tiles, length, halo)


# ------------------------------------------------------------------------------------------------- PyTorch
@given(h=st.integers(1, 23), w=st.integers(1, 23), tile=st.integers(1, 26), depth=st.sampled_from([1, 2, 5]),
       scale=st.sampled_from([2, 3, 4]), batch=st.integers(1, 5), seed=st.integers(0, 2 ** 16))
@FAST
def test_torch_tiled_equals_whole(h, w, tile, depth, scale, batch, seed):
    b = plain_backend(depth, scale, seed % 7)
    img = random_image(np.random.default_rng(seed), h, w)
    ref = whole(b, img)
    assert ref.shape == (h * scale, w * scale, 3)
    out = Upscaler(b, RunOptions(tile=tile, batch=batch)).upscale_array(img)
    np.testing.assert_allclose(out, ref, rtol=0, atol=ATOL)


@given(h=st.integers(1, 23), w=st.integers(1, 23), rows=st.integers(1, 9), depth=st.sampled_from([1, 2, 5]),
       scale=st.sampled_from([2, 3, 4]), seed=st.integers(0, 2 ** 16))
@FAST
def test_stream_equals_whole(h, w, rows, depth, scale, seed):
    b = plain_backend(depth, scale, seed % 7)
    img = random_image(np.random.default_rng(seed), h, w)
    out = Upscaler(b, RunOptions(mode="stream", rows=rows)).upscale_array(img)
    np.testing.assert_allclose(out, whole(b, img), rtol=0, atol=ATOL)


def test_whole_image_mode_is_the_model_itself():
    import torch
    b = plain_backend(3, 2)
    img = random_image(np.random.default_rng(1), 17, 21)
    with torch.no_grad():
        direct = b.model(torch.from_numpy(img.transpose(2, 0, 1).copy())[None])[0].numpy().transpose(1, 2, 0)
    np.testing.assert_array_equal(whole(b, img), direct)


def test_teacher_tiles_exactly_and_streams_in_recomputed_strips():
    """A teacher has skips, so no layer-wise streaming: stream mode runs full-width strips with the halo."""
    b = TorchBackend(module=make_teacher(blocks=1))
    img = random_image(np.random.default_rng(2), 19, 26)
    ref = whole(b, img)
    np.testing.assert_allclose(Upscaler(b, RunOptions(tile=4)).upscale_array(img), ref, atol=ATOL)
    up = Upscaler(b, RunOptions(mode="stream", rows=3))
    np.testing.assert_allclose(up.upscale_array(img), ref, atol=ATOL)
    assert up.last["strips"] == "recomputed halo" and up.last["rows"] == 3


def test_value_range_255_model_runs_in_image_units():
    from memsr_deploy.method.models import InputSpec
    m = make_plain(input_spec=InputSpec(value_range=255.0, mean=(100.0, 110.0, 120.0), norm=64.0))
    b = TorchBackend(module=m)
    img = random_image(np.random.default_rng(3), 15, 18)
    ref = whole(b, img)
    assert 0.0 < ref.mean() < 1.5  # the model's [0, 255] output was brought back to [0, 1]
    np.testing.assert_allclose(Upscaler(b, RunOptions(tile=5)).upscale_array(img), ref, atol=ATOL)
    np.testing.assert_allclose(Upscaler(b, RunOptions(mode="stream", rows=3)).upscale_array(img), ref, atol=1e-4)


def test_guessed_10px_halo_visibly_differs():
    """A 12-layer net needs 12 px of context; the usual 10 px pad leaves seams that exact tiling does not."""
    b = TorchBackend(module=make_plain(widths=[8] * 11, acts=["relu"] * 11, seed=3))
    assert b.caps.halo == 12
    img = random_image(np.random.default_rng(4), 48, 48)
    ref = whole(b, img)
    exact = Upscaler(b, RunOptions(tile=16)).upscale_array(img)
    guessed = Upscaler(b, RunOptions(tile=16, halo=10)).upscale_array(img)
    np.testing.assert_allclose(exact, ref, atol=ATOL)
    err = np.abs(guessed - ref).max(axis=2)
    assert err.max() > 1e-3
    # the error sits at the seams (core edges at LR 16 and 32 -> HR 32 and 64), not inside the cores
    seam_rows = err[28:36].max() + err[60:68].max()
    assert seam_rows > 0 and err[8:24, 8:24].max() < 1e-5


class _TightMemory(TorchBackend):
    """Simulates an allocator that fails above a window size; records what it was asked to run."""

    def __init__(self, module, limit_px):
        super().__init__(module=module)
        self.limit_px, self.shapes = limit_px, []

    def run(self, x):
        if x.shape[0] * x.shape[2] * x.shape[3] > self.limit_px:
            raise MemoryError("simulated allocation failure")
        self.shapes.append(x.shape)
        return super().run(x)


def test_out_of_memory_halves_the_tile_and_stays_exact():
    b = _TightMemory(make_plain(), limit_px=20 * 20)
    img = random_image(np.random.default_rng(5), 40, 44)
    ref = TorchBackend(module=b.model).run(img.transpose(2, 0, 1)[None].copy())[0].transpose(1, 2, 0)
    notes = []
    out = Upscaler(b, RunOptions(tile=32, batch=1), log=notes.append).upscale_array(img)
    np.testing.assert_allclose(out, ref, atol=ATOL)
    assert notes and "tile 16x16" in notes[0] and "tile 8x8" in notes[1]
    assert max(s[2] for s in b.shapes) <= 20


def test_stream_out_of_memory_halves_strips(monkeypatch):
    from memsr_deploy.runtime.stream import StreamRunner
    b = plain_backend(3, 2)
    img = random_image(np.random.default_rng(6), 30, 20)
    ref = whole(b, img)
    real = StreamRunner._strip

    def failing(self, picture, start, stop, carry):
        if stop - start > 4:
            raise MemoryError("simulated allocation failure")
        return real(self, picture, start, stop, carry)
    monkeypatch.setattr(StreamRunner, "_strip", failing)
    notes = []
    out = Upscaler(b, RunOptions(mode="stream", rows=16), log=notes.append).upscale_array(img)
    np.testing.assert_allclose(out, ref, atol=ATOL)
    assert len(notes) == 2 and "8-row" in notes[0] and "4-row" in notes[1]

    calls = []

    def fails_once_midway(self, picture, start, stop, carry):
        calls.append(start)
        if len(calls) == 4:  # rows 0..8 are out already; the carries are half-updated when this fails
            real(self, picture, start, stop, carry)
            raise MemoryError("simulated allocation failure")
        return real(self, picture, start, stop, carry)
    monkeypatch.setattr(StreamRunner, "_strip", fails_once_midway)
    notes.clear()
    out = Upscaler(b, RunOptions(mode="stream", rows=4), log=notes.append).upscale_array(img)
    np.testing.assert_allclose(out, ref, atol=ATOL)  # assemble() also checks that no row came twice
    assert len(notes) == 1 and "2-row" in notes[0] and calls[4] == 0


# --------------------------------------------------------------------------------------- exported artefacts
TARGETS = [t for t in ("onnx", "tflite") if t in installed_artefact_targets()]
# ncnn artefacts take any size (no fixed-shape export): they join the dynamic-shape test only
ANY_SIZE_TARGETS = TARGETS + [t for t in ("ncnn",) if t in installed_artefact_targets()]


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    """Dynamic-shape fp32 artefacts of plain nets of depth 1 and 4 (x2 and x3), per installed runtime."""
    d = tmp_path_factory.mktemp("artefacts")
    out = {}
    for depth, scale in ((1, 2), (4, 3)):
        acts = ["relu"] * (depth - 1) + ["none"]
        stem = d / f"plain{depth}_x{scale}"
        save_model(make_plain(scale=scale, widths=[6] * depth, acts=acts, seed=depth), stem, kind="student")
        out[(depth, scale)] = (stem, {})
    return d, out


@pytest.mark.parametrize("target", ANY_SIZE_TARGETS)
def test_artefact_tiled_equals_torch_whole(target, artefacts):
    d, models = artefacts
    for (depth, scale), (stem, arts) in models.items():
        if target not in arts:
            arts[target] = open_backend(artefact=make_artefact(stem, target, d, name=f"{stem.name}_{target}"))
        ref_backend = open_backend(model=stem)
        b = arts[target]
        assert (b.caps.scale, b.caps.halo) == (scale, depth + 1)

        @given(h=st.integers(1, 21), w=st.integers(1, 21), tile=st.integers(1, 24), seed=st.integers(0, 999))
        @settings(max_examples=10, deadline=None)
        def check(h, w, tile, seed):
            img = random_image(np.random.default_rng(seed), h, w)
            ref = whole(ref_backend, img)
            np.testing.assert_allclose(whole(b, img), ref, atol=1e-4)
            np.testing.assert_allclose(Upscaler(b, RunOptions(tile=tile)).upscale_array(img), ref, atol=1e-4)
        check()


@pytest.mark.parametrize("target", TARGETS)
def test_fixed_shape_artefact_gets_exactly_its_window(target, artefacts, tmp_path):
    d, models = artefacts
    stem, _ = models[(4, 3)]  # halo 5
    b = open_backend(artefact=make_artefact(stem, target, tmp_path, input_size=(14, 16), name="fixed"))
    assert b.caps.fixed_shape == (14, 16)
    seen = []
    real = b.run
    b.run = lambda x: (seen.append(x.shape), real(x))[1]
    img = random_image(np.random.default_rng(7), 31, 40)
    out = Upscaler(b, RunOptions()).upscale_array(img)
    assert seen and {s[2:] for s in seen} == {(14, 16)}
    np.testing.assert_allclose(out, whole(open_backend(model=stem), img), atol=1e-4)
    with pytest.raises(MemsrError, match="smaller than the artefact's fixed input"):
        Upscaler(b, RunOptions()).upscale_array(img[:10])
    with pytest.raises(MemsrError, match="whole image"):
        Upscaler(b, RunOptions(tile=0)).upscale_array(img)


@given(h=st.integers(1, 20), rows=st.integers(1, 6), depth=st.sampled_from([1, 3, 6]))
@settings(max_examples=15, deadline=None)
def test_stream_never_stacks_more_than_rows_plus_two(h, rows, depth):
    """The schedule the memory rule prices: no conv sees more than rows + 2 input rows, no row is computed twice."""
    import torch.nn.functional as F  # stream.py imports torch lazily; its F is this module
    b = plain_backend(depth, 2)
    heights = []
    real = F.conv2d

    def spy(x, *a, **k):
        heights.append(x.shape[2])
        return real(x, *a, **k)
    F.conv2d = spy
    try:
        Upscaler(b, RunOptions(mode="stream", rows=rows)).upscale_array(np.zeros((h, 5, 3), np.float32))
    finally:
        F.conv2d = real
    assert max(heights) <= rows + 2
    # each conv emits every one of its h output rows exactly once
    assert sum(k - 2 for k in heights) == h * (depth + 1)
