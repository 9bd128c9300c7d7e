"""A float model that names an int8 sibling: int8 runs and quantised exports take the sibling's weights, fp32
ones the float weights, and a sibling that is not the same network or not the recorded file is refused."""
import json

import numpy as np
import pytest
from PIL import Image

from conftest import make_plain
from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.model_file import (INT8_MODEL_KEY, int8_model, load_plain_arrays, read_description,
                                             save_model)


def _pair(folder, sibling_widths=(8, 8, 8)):
    """float.json naming float_int8.json (a different seed: other weights, same network unless told)."""
    q = save_model(make_plain(widths=sibling_widths, seed=1), folder / "float_int8", kind="student")
    save_model(make_plain(seed=0), folder / "float", kind="student",
               extra={INT8_MODEL_KEY: {"file": "float_int8.json", "weights_sha256": q.weights_sha256}})
    return folder / "float", folder / "float_int8"


def _edit(path, **fields):
    jpath = path.with_suffix(".json")
    meta = json.loads(jpath.read_text())
    meta.update(fields)
    jpath.write_text(json.dumps(meta))


def test_int8_runs_read_the_sibling_and_fp32_runs_the_float_weights(tmp_path):
    parent, sibling = _pair(tmp_path)
    assert int8_model(read_description(parent)) == sibling
    fdesc, fconvs = load_plain_arrays(parent)
    qdesc, qconvs = load_plain_arrays(parent, "int8")
    assert fdesc.path == str(parent.with_suffix(".json")) and qdesc.path == str(sibling.with_suffix(".json"))
    assert not np.array_equal(fconvs[0][0], qconvs[0][0])
    assert np.array_equal(qconvs[0][0], load_plain_arrays(sibling)[1][0][0])


def test_a_model_without_a_sibling_runs_its_own_weights_in_int8(tiny_plain_path):
    assert int8_model(read_description(tiny_plain_path)) is None
    assert load_plain_arrays(tiny_plain_path, "int8")[0].path == str(tiny_plain_path.with_suffix(".json"))


@pytest.mark.parametrize("link,match", [
    ({"file": "../elsewhere/float_int8.json", "weights_sha256": "0" * 64}, "beside this file"),
    ({"file": "float_int8.json"}, "int8_model"),
    ("float_int8.json", "int8_model"),
])
def test_a_malformed_link_is_refused_when_read(tmp_path, link, match):
    parent, _ = _pair(tmp_path)
    _edit(parent, **{INT8_MODEL_KEY: link})
    with pytest.raises(MemsrError, match=match):
        read_description(parent)


def test_a_missing_replaced_or_different_sibling_is_refused(tmp_path):
    parent, sibling = _pair(tmp_path / "a")
    sibling.with_suffix(".json").unlink()
    with pytest.raises(MemsrError, match="missing"):
        load_plain_arrays(parent, "int8")

    parent, sibling = _pair(tmp_path / "b")
    save_model(make_plain(seed=2), sibling, kind="student")   # another model under the recorded name
    with pytest.raises(MemsrError, match="weights_sha256 is not the one"):
        int8_model(read_description(parent))

    parent, _ = _pair(tmp_path / "c", sibling_widths=(8, 8, 4))
    with pytest.raises(MemsrError, match="'arch'"):
        int8_model(read_description(parent))


def _photos(folder, n=5):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        img = np.kron(rng.random((10, 12, 3)), np.ones((4, 4, 1)))
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_ranges_go_to_the_sibling_and_its_cost_is_measured_against_the_float_model(tmp_path):
    pytest.importorskip("ai_edge_litert")
    from memsr_deploy.method import int8_ranges
    from memsr_deploy.runtime.backends import open_backend
    parent, sibling = _pair(tmp_path)
    photos = _photos(tmp_path / "photos")
    record = int8_ranges.calibrate(parent, photos, progress=lambda s: None)
    assert int8_ranges.write_ranges(parent, record) == sibling.with_suffix(".json")
    assert "int8_activation_ranges" not in read_description(parent).extra
    assert "against the float model float.json" in read_description(sibling).extra["int8_activation_ranges"][
        "validation"]
    # the cost is against the float model: a sibling with other weights is far from it, itself much closer
    own = int8_ranges.calibrate(sibling, photos, progress=lambda s: None)
    assert own["psnr_vs_fp32_db"] > record["psnr_vs_fp32_db"] + 3

    x = np.random.default_rng(1).random((1, 3, 12, 12), np.float32)
    for backend in ("litert", "onnxruntime"):
        int8 = open_backend(model=parent, backend=backend, precision="int8")
        fp32 = open_backend(model=parent, backend=backend)
        assert int8.desc.path == str(sibling.with_suffix(".json"))
        assert fp32.desc.path == str(parent.with_suffix(".json"))
        float_sibling = open_backend(model=sibling, backend=backend).run(x)
        # int8 of the sibling is near the sibling's fp32 output, not the float model's
        assert np.abs(int8.run(x) - float_sibling).mean() < 0.5 * np.abs(fp32.run(x) - float_sibling).mean()


def test_quantised_exports_carry_the_sibling_and_name_it(tmp_path):
    pytest.importorskip("ai_edge_litert")
    from memsr_deploy.formats.sidecar import read_sidecar
    from memsr_export.api import export_model
    from memsr_export.source import load_source
    parent, sibling = _pair(tmp_path)
    source = load_source(parent)
    assert source.weights_for("int8").desc.path == str(sibling.with_suffix(".json"))
    assert source.weights_for("dynamic") is source.int8 and source.weights_for("fp16") is source
    from memsr_export.api import supported
    if supported(source, "ncnn", "fp32") is None:   # the ranges an ncnn int8 export needs are the sibling's
        assert "int8_activation_ranges" in (supported(source, "ncnn", "int8") or "")
        from memsr_deploy.method import int8_ranges
        int8_ranges.write_ranges(parent, int8_ranges.calibrate(parent, _photos(tmp_path / "calib"),
                                                               progress=lambda s: None))
        assert supported(load_source(parent), "ncnn", "int8") is None
    photos = _photos(tmp_path / "photos")
    sc = {p: read_sidecar(export_model(source, "tflite", p, out_dir=tmp_path / "out", calib_dir=photos,
                                       verify=False, progress=False)) for p in ("fp32", "int8")}
    assert "int8_model" not in sc["fp32"].source_model
    assert sc["int8"].source_model["weights_sha256"] == source.desc.weights_sha256   # named after the float model
    assert sc["int8"].source_model["int8_model"]["weights_sha256"] == source.int8.desc.weights_sha256

    # the int8 artefact computes the sibling's network, not the float model's
    from memsr_deploy.runtime.backends import open_backend
    x = np.random.default_rng(1).random((1, 3, 12, 12), np.float32)
    art = open_backend(artefact=tmp_path / "out" / sc["int8"].file).run(x)
    ref = {m: open_backend(model=m, backend="onnxruntime").run(x) for m in (parent, sibling)}
    assert np.abs(art - ref[sibling]).mean() < 0.5 * np.abs(art - ref[parent]).mean()
