"""--backend auto for plain models in fp32: the faster runtime is measured once per architecture and remembered."""
import json

import numpy as np
import pytest

from conftest import make_plain
from memsr_deploy.formats.model_file import read_description, save_model
from memsr_deploy.cli import upscale
from memsr_deploy.imageio import write_picture
from memsr_deploy.runtime import backends, open_backend
from memsr_deploy.runtime.backends import fastest

pytestmark = pytest.mark.skipif(len(fastest.installed()) < 2, reason="needs both ONNX Runtime and LiteRT")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "memsr" / fastest.CACHE_NAME


def _timings(monkeypatch, ort: float, litert: float, calls: list, rounds: int = 3):
    def fake(backends, repeat=7):
        calls.extend(b.name for b in backends.values())
        return {name: [{"onnxruntime": ort, "litert": litert}[name]] * rounds for name in backends}
    monkeypatch.setattr(fastest, "seconds_per_window", fake)


def test_the_faster_runtime_is_chosen_and_remembered(tiny_plain_path, cache, monkeypatch):
    calls, said = [], []
    _timings(monkeypatch, ort=0.010, litert=0.008, calls=calls)
    assert open_backend(model=tiny_plain_path, log=said.append).name == "litert"
    assert sorted(calls) == ["litert", "onnxruntime"]
    assert "timing" in said[0] and "litert" in said[-1]   # what it does before it does it, then the verdict
    entry = next(iter(json.loads(cache.read_text()).values()))
    assert entry == {"backend": "litert", "litert_over_onnxruntime": 0.8,
                     "seconds_per_window": {"litert": 0.008, "onnxruntime": 0.01}}
    calls.clear()
    _timings(monkeypatch, ort=0.001, litert=1.0, calls=calls)   # would now pick ONNX Runtime, if it measured
    assert open_backend(model=tiny_plain_path).name == "litert"
    assert calls == []


def test_litert_must_win_by_the_margin(tiny_plain_path, cache, monkeypatch):
    _timings(monkeypatch, ort=0.0100, litert=0.0100 * (1 - fastest.MARGIN / 2), calls=[])
    assert open_backend(model=tiny_plain_path, log=lambda m: None).name == "onnxruntime"


def test_the_choice_follows_the_rounds_ratios(tiny_plain_path, cache, monkeypatch):
    """LiteRT 6% faster in every quiet round; one round's LiteRT run caught a slow spell of the machine and
    another round is slow for both: the median of the rounds' ratios still reads 0.94 (each runtime's own
    median would have read LiteRT 25% slower)."""
    times = {"onnxruntime": [0.030, 0.040, 0.030], "litert": [0.0282, 0.0376, 0.0390]}
    assert fastest.litert_ratio(times) == pytest.approx(0.94)
    monkeypatch.setattr(fastest, "seconds_per_window", lambda backends, repeat=7: times)
    assert open_backend(model=tiny_plain_path, log=lambda m: None).name == "litert"
    assert next(iter(json.loads(cache.read_text()).values()))["litert_over_onnxruntime"] == pytest.approx(0.94)


def test_the_key_is_the_architecture_not_the_weights(tmp_path):
    save_model(make_plain(seed=1), tmp_path / "a", kind="student")
    save_model(make_plain(seed=2), tmp_path / "b", kind="student")
    save_model(make_plain(widths=(8, 16, 8), seed=1), tmp_path / "c", kind="student")
    a, b, c = (read_description(tmp_path / n) for n in "abc")
    names = fastest.installed()
    assert fastest.key(a, 2, names) == fastest.key(b, 2, names)
    assert fastest.key(a, 2, names) != fastest.key(c, 2, names)
    assert fastest.key(a, 1, names) != fastest.key(a, 2, names)


def test_an_unwritable_cache_only_means_measuring_again(tiny_plain_path, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    calls = []
    _timings(monkeypatch, ort=0.008, litert=0.010, calls=calls)
    assert open_backend(model=tiny_plain_path, log=lambda m: None).name == "onnxruntime"
    assert open_backend(model=tiny_plain_path, log=lambda m: None).name == "onnxruntime"
    assert len(calls) == 4


def test_explicit_backend_and_int8_do_not_measure(tiny_plain_path, cache, monkeypatch):
    calls = []
    _timings(monkeypatch, ort=0.01, litert=0.001, calls=calls)
    assert open_backend(model=tiny_plain_path, backend="onnxruntime").name == "onnxruntime"
    assert calls == [] and not cache.exists()


def test_each_runtime_is_timed_through_the_tile_loop(tiny_plain_path):
    """The probe runs the tile loop itself: LiteRT gets its windows in NHWC (never through run's transposes),
    ONNX Runtime in NCHW, every window of the probe image at the default window size, runs alternating."""
    lite = open_backend(model=tiny_plain_path, backend="litert")
    ort = open_backend(model=tiny_plain_path, backend="onnxruntime")
    order = []
    lite.run = lambda x: pytest.fail("LiteRT timed through run (NCHW)")
    real_lite, real_ort = lite.run_nhwc, ort.run
    lite.run_nhwc = lambda x: order.append(("litert", x.shape)) or real_lite(x)
    ort.run = lambda x: order.append(("onnxruntime", x.shape)) or real_ort(x)
    timed = fastest.seconds_per_window({"onnxruntime": ort, "litert": lite}, repeat=2)
    assert set(timed) == {"onnxruntime", "litert"}
    assert all(len(t) == 2 and min(t) > 0 for t in timed.values())
    n = fastest.PROBE_TILES[0] * fastest.PROBE_TILES[1]
    assert len(order) == 2 * 3 * n   # warm-up round + 2 rounds, each backend once per round
    names = [name for name, _ in order]
    assert names == (["onnxruntime"] * n + ["litert"] * n) * 3
    side = lite.caps.default_tile + 2 * lite.caps.halo
    assert {shape for name, shape in order if name == "litert"} == {(1, side, side, 3)}
    assert {shape for name, shape in order if name == "onnxruntime"} == {(1, 3, side, side)}


def test_lean_runs_take_onnx_runtime_without_measuring(tiny_plain_path, cache, monkeypatch):
    """Strips and whole images (memsr-upscale --mode stream / --tile 0) ask for little memory or big windows:
    there LiteRT held 2-3x ONNX Runtime's memory, so auto does not pick by speed."""
    calls = []
    _timings(monkeypatch, ort=0.01, litert=0.001, calls=calls)
    assert open_backend(model=tiny_plain_path, lean=True).name == "onnxruntime"
    assert calls == [] and not cache.exists()
    assert open_backend(model=tiny_plain_path, log=lambda m: None).name == "litert"


def test_the_cli_runs_strips_and_whole_images_lean(tiny_plain_path, tmp_path, cache, monkeypatch):
    write_picture(tmp_path / "in.png", np.full((20, 24, 3), 120, np.uint8))
    seen = []
    real = backends.open_backend
    monkeypatch.setattr("memsr_deploy.runtime.open_backend",
                        lambda *a, **k: seen.append(k.get("lean")) or real(*a, **k))
    for n, flags in enumerate((["--mode", "stream"], ["--tile", "0"], [])):
        assert upscale.main([str(tmp_path / "in.png"), "-o", str(tmp_path / f"o{n}.png"), "--model",
                             str(tiny_plain_path), "-q", *flags]) == 0
    assert seen == [True, True, False]


def test_a_run_too_small_to_pay_for_the_probe_does_not_measure(tiny_plain_path, cache, monkeypatch):
    """The probe costs (ROUNDS + 1) rounds of 6 windows on each runtime; a run of fewer than 1 / PROBE_SHARE
    times that many windows takes ONNX Runtime and remembers nothing, so its first run is no wait."""
    tile = open_backend(model=tiny_plain_path, backend="onnxruntime").caps.default_tile
    probe = (fastest.ROUNDS + 1) * 2 * fastest.PROBE_TILES[0] * fastest.PROBE_TILES[1]
    enough = int(probe / fastest.PROBE_SHARE) * tile * tile
    assert fastest.worth_probing(enough, tile) and not fastest.worth_probing(enough - tile * tile, tile)
    assert fastest.worth_probing(None, tile)
    calls, said = [], []
    _timings(monkeypatch, ort=0.01, litert=0.001, calls=calls)
    assert open_backend(model=tiny_plain_path, log=said.append, work=enough - tile * tile).name == "onnxruntime"
    assert calls == [] and said == [] and not cache.exists()
    assert open_backend(model=tiny_plain_path, log=said.append, work=enough).name == "litert"
    assert sorted(calls) == ["litert", "onnxruntime"] and cache.exists()
    calls.clear()
    assert open_backend(model=tiny_plain_path, work=1).name == "litert"   # remembered: small runs use it too
    assert calls == []


def test_the_cli_weighs_the_probe_against_its_inputs(tiny_plain_path, tmp_path, cache, monkeypatch, capsys):
    """A small photo with an empty cache runs at once; the inputs' pixels (from their headers, every file of a
    folder) are what the probe is weighed against, and a run that measures says so on stderr first."""
    for name in ("a.png", "b.png"):
        write_picture(tmp_path / "in" / name, np.full((20, 24, 3), 120, np.uint8))
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n")
    seen, calls = [], []
    _timings(monkeypatch, ort=0.01, litert=0.001, calls=calls)
    real = backends.open_backend
    monkeypatch.setattr("memsr_deploy.runtime.open_backend",
                        lambda *a, **k: seen.append(k.get("work")) or real(*a, **k))
    rc = upscale.main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_plain_path)])
    assert rc == 2   # the broken file fails in its turn, with its own message
    assert seen == [2 * 20 * 24] and calls == [] and not cache.exists()
    monkeypatch.setattr(fastest, "PROBE_SHARE", 1e9)   # now any run pays for it
    assert upscale.main([str(tmp_path / "in" / "a.png"), "-o", str(tmp_path / "o.png"), "--model",
                         str(tiny_plain_path)]) == 0
    err = capsys.readouterr().err
    assert "note: backend auto: timing ONNX Runtime and LiteRT" in err and sorted(calls) == ["litert", "onnxruntime"]
