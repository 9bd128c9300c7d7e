"""--backend auto for plain models in fp32: the faster runtime is measured once per architecture and remembered."""
import json

import pytest

from conftest import make_plain
from memsr_deploy.formats.model_file import read_description, save_model
from memsr_deploy.runtime import open_backend
from memsr_deploy.runtime.backends import fastest

pytestmark = pytest.mark.skipif(len(fastest.installed()) < 2, reason="needs both ONNX Runtime and LiteRT")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "memsr" / fastest.CACHE_NAME


def _timings(monkeypatch, ort: float, litert: float, calls: list):
    def fake(backend, repeat=8):
        calls.append(backend.name)
        return {"onnxruntime": ort, "litert": litert}[backend.name]
    monkeypatch.setattr(fastest, "seconds_per_window", fake)


def test_the_faster_runtime_is_chosen_and_remembered(tiny_plain_path, cache, monkeypatch):
    calls, said = [], []
    _timings(monkeypatch, ort=0.010, litert=0.008, calls=calls)
    assert open_backend(model=tiny_plain_path, log=said.append).name == "litert"
    assert sorted(calls) == ["litert", "onnxruntime"] and "litert" in said[0]
    entry = next(iter(json.loads(cache.read_text()).values()))
    assert entry == {"backend": "litert", "seconds_per_window": {"litert": 0.008, "onnxruntime": 0.01}}
    calls.clear()
    _timings(monkeypatch, ort=0.001, litert=1.0, calls=calls)   # would now pick ONNX Runtime, if it measured
    assert open_backend(model=tiny_plain_path).name == "litert"
    assert calls == []


def test_litert_must_win_by_the_margin(tiny_plain_path, cache, monkeypatch):
    _timings(monkeypatch, ort=0.0100, litert=0.0100 * (1 - fastest.MARGIN / 2), calls=[])
    assert open_backend(model=tiny_plain_path, log=lambda m: None).name == "onnxruntime"


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


def test_each_runtime_is_timed_on_the_call_the_tile_loop_makes(tiny_plain_path):
    """LiteRT takes its windows in NHWC from the tile loop; timing it through run's transposes would
    handicap it by work the loop never does."""
    lite = open_backend(model=tiny_plain_path, backend="litert")
    ort = open_backend(model=tiny_plain_path, backend="onnxruntime")
    shapes = []
    lite.run = lambda x: pytest.fail("LiteRT timed through run (NCHW)")
    real = lite.run_nhwc
    lite.run_nhwc = lambda x: shapes.append(x.shape) or real(x)
    assert fastest.seconds_per_window(lite, repeat=2) > 0
    side = lite.caps.default_tile + 2 * lite.caps.halo
    assert shapes == [(1, side, side, 3)] * 3
    assert not ort.caps.channels_last and fastest.seconds_per_window(ort, repeat=2) > 0
