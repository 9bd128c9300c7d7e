"""Model description round trips and fails cleanly on bad files."""
import hashlib
import json

import pytest
import torch

from conftest import make_plain, make_teacher
from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.model_file import load_model, pair_paths, read_description, save_model


@pytest.mark.parametrize("factory", [make_plain, make_teacher])
def test_round_trip(tmp_path, factory):
    m = factory()
    desc = save_model(m, tmp_path / "m", provenance={"note": "x"})
    m2, d2 = load_model(tmp_path / "m.json")
    x = torch.rand(1, 3, 11, 13)
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))
    assert d2.receptive_radius == m.receptive_radius == len(d2.layer_widths)
    assert d2.weights_sha256 == desc.weights_sha256 and d2.provenance == {"note": "x"}
    assert d2.params == sum(p.numel() for p in m.parameters())


def _no_unpickling(monkeypatch):
    """Make every way of unpickling fail loudly, so a loader that unpickles cannot pass unnoticed."""
    import pickle

    def refuse(*a, **k):
        raise AssertionError("unpickling attempted")
    for mod, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(mod, name, refuse)


def test_loading_never_unpickles(tmp_path, monkeypatch):
    save_model(make_plain(), tmp_path / "m")
    _no_unpickling(monkeypatch)
    model, desc = load_model(tmp_path / "m")
    assert desc.params == sum(p.numel() for p in model.parameters())
    load_model("memsr-x2")


class _Booby:
    def __reduce__(self):
        import os
        return (os.mkdir, (str(_Booby.marker),))


def test_a_pickle_posing_as_weights_is_refused_unopened(tmp_path):
    save_model(make_plain(), tmp_path / "m")
    w, _ = pair_paths(tmp_path / "m")
    _Booby.marker = tmp_path / "pwned"
    torch.save({"w": _Booby()}, w)  # a pickle where safetensors should be
    with pytest.raises(MemsrError):
        load_model(tmp_path / "m", verify_checksum=False)
    assert not _Booby.marker.exists()


def _expect(path, match):
    with pytest.raises(MemsrError, match=match) as e:
        load_model(path)
    assert str(path.name) in str(e.value) or str(path.with_suffix("")) in str(e.value)


def test_corrupt_truncated_and_mismatched(tmp_path):
    save_model(make_plain(), tmp_path / "m")
    w, j = pair_paths(tmp_path / "m")
    blob = w.read_bytes()
    w.write_bytes(blob[: len(blob) // 2])
    _expect(w, "checksum")
    meta = json.loads(j.read_text())
    meta["weights_sha256"] = ""
    j.write_text(json.dumps(meta))
    _expect(w, "weights_sha256")  # the checksum is required
    meta["weights_sha256"] = hashlib.sha256(w.read_bytes()).hexdigest()
    j.write_text(json.dumps(meta))
    _expect(w, "unreadable safetensors")
    # weights of another architecture
    save_model(make_plain(widths=(4, 4, 4)), tmp_path / "other")
    w.write_bytes(pair_paths(tmp_path / "other")[0].read_bytes())
    _expect(w, "checksum")
    meta["weights_sha256"] = hashlib.sha256(w.read_bytes()).hexdigest()  # a consistent but wrong pair
    j.write_text(json.dumps(meta))
    _expect(w, "shape")
    j.write_text("{not json")
    with pytest.raises(MemsrError, match="not valid JSON"):
        read_description(j)
    j.unlink()
    with pytest.raises(MemsrError, match="metadata not found"):
        load_model(w)
