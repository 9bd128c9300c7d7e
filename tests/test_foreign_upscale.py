"""memsr-upscale / memsr-eval on other projects' models: foreign checkpoints (exported to ONNX once, cached) and
.onnx files without a sidecar, on ONNX Runtime, tiled exactly with the halo their graph gives. Random weights,
files written by the tests."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from safetensors.torch import save_file

from memsr_deploy.errors import MemsrError
from memsr_deploy.foreign.checkpoint import read_checkpoint
from memsr_deploy.imageio import read_picture, save_png, to_uint8
from memsr_deploy.runtime import RunOptions, Upscaler, open_backend
from test_foreign_checkpoints import compact_state, rrdb_state, span_state
from test_runtime_cli import one_error_line, run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def photo(h=30, w=38, seed=0) -> np.ndarray:
    """Smooth colour gradients plus texture, 8-bit."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([xx / w, yy / h, 0.5 + 0.4 * np.sin((xx + 2 * yy) / 5.0)], axis=2)
    rgb += np.random.default_rng(seed).normal(0, 0.06, rgb.shape)
    return to_uint8(rgb)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("foreign")
    torch.save({"params": compact_state(scale=2)}, d / "compact.pth")
    save_file(rrdb_state(width=8, growth=4, blocks=1, ups=1), str(d / "esrgan.safetensors"))
    # SPAN on [0, 1] input (no_norm), its tail damped and centred so the random output lies mostly inside 0..255
    span = span_state(width=8, scale=2, norm=False)
    span["upsampler.0.weight"] = span["upsampler.0.weight"] * 0.25
    span["upsampler.0.bias"] = span["upsampler.0.bias"] * 0.25 + 0.5
    save_file(span, str(d / "span.safetensors"))
    img = photo()
    save_png(d / "photo.png", img)
    return d, img


def _onnx(nodes, inits, in_dims, out_dims=None, path=None, in_name="x"):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, in_dims)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_dims or ["n", "c", "oh", "ow"])],
                          [numpy_helper.from_array(a.astype(np.float32), n) for n, a in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    if path is not None:
        onnx.save(m, str(path))
    return m


def _conv_shuffle(cin, scale, seed=0, k=3, extra=None):
    """conv(k, cin -> 8) -> relu -> conv(3, 8 -> cin*s*s) -> DepthToSpace(s): an ESPCN-like net."""
    r = np.random.default_rng(seed)
    inits = {"w0": r.normal(0, 0.3, (8, cin, k, k)), "b0": r.normal(0, 0.1, 8),
             "w1": r.normal(0, 0.3, (cin * scale * scale, 8, 3, 3)), "b1": r.normal(0, 0.1, cin * scale * scale)}
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["a"], pads=[k // 2] * 4),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Conv", ["r", "w1", "b1"], ["c"], pads=[1] * 4),
             helper.make_node("DepthToSpace", ["c"], ["y"], blocksize=scale, mode="CRD")]
    return nodes, inits


def _upscale(backend, img, tile, halo=None):
    return Upscaler(backend, RunOptions(tile=tile, halo=halo)).upscale_array(img.astype(np.float32) / 255)


@pytest.mark.parametrize("name", ["compact.pth", "esrgan.safetensors", "span.safetensors"])
def test_checkpoint_upscales_tiled_as_pytorch_whole(files, name, capsys):
    d, img = files
    ckpt = d / name
    rc, err = run(capsys, d / "photo.png", "--model", ckpt, "--tile", "16", "-o", d / f"{name}.png")
    assert rc == 0, err
    out = read_picture(d / f"{name}.png").pixels
    module = read_checkpoint(ckpt).module
    with torch.no_grad():
        ref = module(torch.from_numpy(img.astype(np.float32).transpose(2, 0, 1)[None] / 255))[0].numpy()
    assert float(((ref > 0) & (ref < 1)).mean()) > 0.3   # largely unclipped: 8-bit levels say something
    ref = to_uint8(ref.transpose(1, 2, 0))
    assert out.shape == ref.shape and np.abs(out.astype(int) - ref).max() <= 1
    # the tiles equal the untiled ONNX Runtime run; the export was cached, so it opens without torch's exporter
    import memsr_deploy.formats.foreign_graph as fg
    cached = list((Path(os.environ["XDG_CACHE_HOME"]) / "memsr" / "foreign").glob("*.onnx"))
    assert cached
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fg, "checkpoint_graph", lambda *a: pytest.fail("exported again"))
        mp.setattr("memsr_deploy.runtime.backends.foreign_backend.checkpoint_graph",
                   lambda *a: pytest.fail("exported again"))
        backend = open_backend(model=ckpt)
    assert backend.name == "onnxruntime" and backend.desc.kind == "foreign" and backend.caps.scale == 2
    if name.startswith("span"):   # 21 3x3 convs in a chain (conv_1, 6 blocks x 3, conv_2, the tail): > the tile
        assert backend.desc.arch == {"foreign": "SPAN"} and backend.caps.halo == 21
    tiled, whole = _upscale(backend, img, 16), _upscale(backend, img, 0)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    assert np.abs(to_uint8(whole).astype(int) - ref).max() <= 1


def test_stream_mode_folder_run_and_refusals(files, capsys, tmp_path):
    d, img = files
    ckpt = d / "compact.pth"
    rc, err = run(capsys, d / "photo.png", "--model", ckpt, "--tile", "0", "-o", tmp_path / "whole.png")
    assert rc == 0, err
    whole = read_picture(tmp_path / "whole.png").pixels
    rc, err = run(capsys, d / "photo.png", "--model", ckpt, "--mode", "stream", "--rows", "7",
                  "-o", tmp_path / "stream.png")
    assert rc == 0, err
    assert np.abs(read_picture(tmp_path / "stream.png").pixels.astype(int) - whole).max() <= 1
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        save_png(folder / f"p{i}.png", photo(seed=i + 1))
    rc, err = run(capsys, folder, "--model", ckpt, "-o", tmp_path / "out")
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["p0_x2.png", "p1_x2.png"]
    for flags, words in ((["--precision", "int8"], ["int8", "fp32"]), (["--backend", "torch"], ["ONNX Runtime"]),
                         (["--backend", "litert"], ["ONNX Runtime"]), (["--scale", "4"], ["x2", "x4"])):
        rc, err = run(capsys, d / "photo.png", "--model", ckpt, *flags, "-o", tmp_path / "no.png")
        assert rc == 2
        one_error_line(err, "compact.pth", *words)
        assert not (tmp_path / "no.png").exists()


def test_y_only_onnx_model_upscales_colour_with_exact_tiles(tmp_path, capsys):
    nodes, inits = _conv_shuffle(1, 2, k=5)
    path = tmp_path / "espcn.onnx"
    _onnx(nodes, inits, ["n", 1, "h", "w"], path=path)
    img = photo(27, 33)
    backend = open_backend(model=path)
    assert backend.caps.scale == 2 and backend.caps.halo == 3 and backend.y_only
    tiled, whole = _upscale(backend, img, 8), _upscale(backend, img, 0)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    from memsr_deploy.quality.metrics import rgb_to_ycbcr
    out_ycc = rgb_to_ycbcr(whole)
    assert np.ptp(out_ycc[..., 1]) > 0.05   # colour kept, not grey
    # Y of the output is the network run on Y of the photo
    import onnxruntime as ort
    y = rgb_to_ycbcr(img.astype(np.float32) / 255)[..., 0]
    want = ort.InferenceSession(str(path)).run(None, {"x": y[None, None]})[0][0, 0]
    np.testing.assert_allclose(out_ycc[..., 0], want, atol=1e-5)
    save_png(tmp_path / "photo.png", img)
    for tile in ("8", "0"):
        rc, err = run(capsys, tmp_path / "photo.png", "--model", path, "--tile", tile, "-o", tmp_path / f"{tile}.png")
        assert rc == 0, err
    assert np.abs(read_picture(tmp_path / "8.png").pixels.astype(int)
                  - read_picture(tmp_path / "0.png").pixels).max() <= 1


def test_fixed_shape_onnx_runs_as_fixed_windows(tmp_path, capsys):
    nodes, inits = _conv_shuffle(3, 2)
    fixed = _onnx(nodes, inits, [1, 3, 20, 20], [1, 3, 40, 40], path=tmp_path / "fixed.onnx")
    dynamic = _onnx(nodes, inits, ["n", 3, "h", "w"])
    img = photo()
    backend = open_backend(model=tmp_path / "fixed.onnx")
    assert backend.caps.fixed_shape == (20, 20) and backend.caps.halo == 2
    from memsr_deploy.formats.foreign_graph import describe
    from memsr_deploy.runtime.backends.foreign_backend import ForeignOnnxBackend
    ref = _upscale(ForeignOnnxBackend(describe(dynamic, "dynamic.onnx"), ""), img, 0)
    np.testing.assert_allclose(_upscale(backend, img, None), ref, atol=1e-5)
    save_png(tmp_path / "photo.png", img)
    rc, err = run(capsys, tmp_path / "photo.png", "--model", tmp_path / "fixed.onnx", "-o", tmp_path / "o.png")
    assert rc == 0, err
    assert read_picture(tmp_path / "o.png").pixels.shape == (60, 76, 3)
    del fixed


def test_no_finite_radius_needs_halo_and_says_approximate(tmp_path, capsys):
    nodes, inits = _conv_shuffle(3, 2)
    nodes[-1].input[0] = "c2"
    nodes[-1:-1] = [helper.make_node("GlobalAveragePool", ["c"], ["g"]), helper.make_node("Mul", ["c", "g"], ["c2"])]
    path = tmp_path / "attention.onnx"
    _onnx(nodes, inits, ["n", 3, "h", "w"], path=path)
    save_png(tmp_path / "photo.png", photo())
    rc, err = run(capsys, tmp_path / "photo.png", "--model", path, "--tile", "16", "-o", tmp_path / "o.png")
    assert rc == 2 and not (tmp_path / "o.png").exists()
    one_error_line(err, "attention.onnx", "no finite receptive radius", "GlobalAveragePool", "--halo")
    rc, err = run(capsys, tmp_path / "photo.png", "--model", path, "--tile", "16", "--halo", "4",
                  "-o", tmp_path / "o.png")
    assert rc == 0 and (tmp_path / "o.png").exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "approximate" in lines[0] and lines[0].startswith("warning: "), err
    rc, err = run(capsys, tmp_path / "photo.png", "--model", path, "--tile", "0", "-o", tmp_path / "w.png")
    assert rc == 0 and err == "", err   # whole images are exact


def test_bad_models_are_refused_in_one_line(tmp_path, capsys):
    save_png(tmp_path / "photo.png", photo())
    nodes, inits = _conv_shuffle(3, 2)
    good = _onnx(nodes, inits, ["n", 3, "h", "w"]).SerializeToString()
    (tmp_path / "truncated.onnx").write_bytes(good[: len(good) // 2])
    shrink = [helper.make_node("Conv", ["x", "w0", "b0"], ["y"])]   # no padding: 2 px smaller, x1
    _onnx(shrink, {"w0": np.ones((3, 3, 3, 3)), "b0": np.zeros(3)}, ["n", 3, "h", "w"], path=tmp_path / "shrink.onnx")
    _onnx([helper.make_node("Flatten", ["x"], ["y"])], {}, ["n", 3, "h", "w"], ["n", "f"], tmp_path / "flat.onnx")
    s = compact_state(scale=2)
    torch.save({k: v for k, v in s.items() if k != "body.2.bias"}, tmp_path / "missing.pth")
    torch.save({**s, "body.2.extra": torch.zeros(3)}, tmp_path / "extra.pth")
    cases = {"truncated.onnx": "not a readable ONNX model", "shrink.onnx": "not an image SR model",
             "flat.onnx": "not a 4-D image", "missing.pth": "body.2.bias", "extra.pth": "body.2.extra"}
    for name, words in cases.items():
        rc, err = run(capsys, tmp_path / "photo.png", "--model", tmp_path / name, "-o", tmp_path / "o.png")
        assert rc == 2, name
        one_error_line(err, name, words)
        assert not (tmp_path / "o.png").exists()
    (tmp_path / "good.onnx").write_bytes(good)
    with pytest.raises(MemsrError, match="x2, but x3"):
        open_backend(model=tmp_path / "good.onnx", scale=3)


def test_memsr_eval_takes_a_foreign_model(files, capsys):
    from memsr_deploy.cli.evaluate import main as evaluate
    d, _ = files
    data = d / "hr"
    data.mkdir(exist_ok=True)
    save_png(data / "a.png", photo(40, 48, seed=5))
    assert evaluate([str(d / "compact.pth"), "--data", str(data), "--json", "--no-ssim", "--tile", "8"]) == 0
    import json
    doc = json.loads(capsys.readouterr().out)
    assert doc["scale"] == 2 and np.isfinite(doc["model"]["mean_psnr"])


def test_memsr_export_writes_an_onnx_artefact_the_runtime_runs(files, tmp_path, capsys):
    from memsr_export.cli import main as export
    d, img = files
    assert export([str(d / "compact.pth"), "--target", "onnx", "-o", str(tmp_path), "--max-photos", "1"]) == 0
    sidecar = tmp_path / "compact_onnx_fp32.json"
    art = open_backend(model=tmp_path / "compact_onnx_fp32.onnx")   # with its sidecar: the artefact
    assert art.source == str(sidecar) and art.caps.halo == open_backend(model=d / "compact.pth").caps.halo
    np.testing.assert_allclose(_upscale(art, img, 16), _upscale(open_backend(model=d / "compact.pth"), img, 0),
                               atol=1e-5)
    capsys.readouterr()
    assert export([str(d / "compact.pth"), "--target", "tflite", "-o", str(tmp_path / "t")]) == 2
    one_error_line(capsys.readouterr().err, "ONNX only", "tflite")
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").iterdir())


def test_an_edsr_checkpoint_is_read_and_hashed_once(tmp_path, capsys, monkeypatch):
    """The foreign check and the EDSR importer share one read of the file (checkpoint.CheckpointFile): the
    runtime, memsr-upscale, the exporter's loader and the profiler each read and hash it once."""
    import hashlib
    import types

    from edsr_reference import EdsrPyTorch, randomise
    from export.source import load_source
    from memsr_deploy.formats import checkpoint
    from memsr_deploy.profiler.analytic import load_subject
    path = tmp_path / "edsr.pt"
    torch.save(randomise(EdsrPyTorch(2, 8, 1, 1.0), seed=3).state_dict(), path)
    save_png(tmp_path / "photo.png", photo(12, 14))
    counts = {"read": 0, "sha256": 0}
    real_read = checkpoint._read_bytes

    def read(p):
        counts["read"] += 1
        return real_read(p)

    def sha256(*a):
        counts["sha256"] += 1
        return hashlib.sha256(*a)

    monkeypatch.setattr(checkpoint, "_read_bytes", read)
    monkeypatch.setattr(checkpoint, "hashlib", types.SimpleNamespace(sha256=sha256))
    want = hashlib.sha256(path.read_bytes()).hexdigest()

    def once(what, fn):
        checkpoint._cache.clear()
        counts.update(read=0, sha256=0)
        got = fn()
        assert counts == {"read": 1, "sha256": 1}, (what, counts)
        return got

    backend = once("open_backend", lambda: open_backend(model=path))
    assert backend.desc.kind == "teacher" and backend.desc.weights_sha256 == want
    once("memsr-upscale", lambda: run(capsys, tmp_path / "photo.png", "--model", path, "-o", tmp_path / "o.png"))
    assert read_picture(tmp_path / "o.png").pixels.shape == (24, 28, 3)
    assert once("load_source", lambda: load_source(str(path))).desc.weights_sha256 == want
    assert once("load_subject", lambda: load_subject(str(path))).kind == "teacher"


def test_rgba_model_takes_alpha_and_keeps_it_only_for_rgba_photos(tmp_path, capsys):
    """A four-channel model sees the photo's alpha as its fourth channel (opaque 1.0 for an RGB photo) and its
    alpha output is the picture's: kept for an RGBA photo, dropped for an RGB one. Tiles equal the whole run."""
    import onnxruntime as ort
    nodes, inits = _conv_shuffle(4, 2)
    path = tmp_path / "rgba.onnx"
    _onnx(nodes, inits, ["n", 4, "h", "w"], path=path)
    sess = ort.InferenceSession(str(path))
    net = lambda x: sess.run(None, {"x": x.transpose(2, 0, 1)[None].astype(np.float32)})[0][0].transpose(1, 2, 0)
    rgb = photo(21, 26)
    yy, xx = np.mgrid[0:21, 0:26]
    rgba = np.concatenate([rgb, ((xx * 9 + yy * 5) % 256).astype(np.uint8)[:, :, None]], axis=2)
    backend = open_backend(model=path)
    assert backend.caps.channels == 4 and backend.caps.scale == 2 and backend.caps.halo == 2
    tiled, whole = _upscale(backend, rgba, 8), _upscale(backend, rgba, 0)
    assert whole.shape == (42, 52, 4)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    np.testing.assert_allclose(whole, net(rgba / 255.0), atol=1e-5)   # alpha too is the network's
    tiled, whole = _upscale(backend, rgb, 8), _upscale(backend, rgb, 0)
    opaque = np.concatenate([rgb / 255.0, np.ones((21, 26, 1))], axis=2)
    assert whole.shape == (42, 52, 3)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    np.testing.assert_allclose(whole, net(opaque)[:, :, :3], atol=1e-5)
    # memsr-upscale: an RGBA PNG gives an RGBA PNG, an RGB one an RGB PNG, tiled as whole
    save_png(tmp_path / "rgba.png", rgba)
    save_png(tmp_path / "rgb.png", rgb)
    for name, channels in (("rgba", 4), ("rgb", 3)):
        outs = []
        for tile in ("8", "0"):
            rc, err = run(capsys, tmp_path / f"{name}.png", "--model", path, "--tile", tile,
                          "-o", tmp_path / f"{name}_{tile}.png")
            assert rc == 0 and err == "", err
            outs.append(read_picture(tmp_path / f"{name}_{tile}.png").pixels)
        assert outs[0].shape == (42, 52, channels)
        assert np.abs(outs[0].astype(int) - outs[1]).max() <= 1
    want = to_uint8(net(rgba / 255.0))
    assert np.abs(read_picture(tmp_path / "rgba_0.png").pixels.astype(int) - want).max() <= 1
    assert np.ptp(want[:, :, 3]) > 50   # the alpha written is the network's, not a constant


def test_memsr_export_of_a_plain_onnx_file_writes_an_artefact_pair(tmp_path, capsys):
    """An .onnx file without a sidecar exports to ONNX as a copy of its graph (input and output renamed) with the
    sidecar the runtime reads (scale, halo from the graph, fixed size); the input file is never written."""
    import json

    from memsr_export.cli import main as export
    nodes, inits = _conv_shuffle(3, 2)
    src = tmp_path / "theirs.onnx"
    _onnx(nodes, inits, ["n", 3, "h", "w"], path=src)
    fixed_src = tmp_path / "fixed.onnx"
    _onnx(nodes, inits, [1, 3, 20, 20], [1, 3, 40, 40], path=fixed_src)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    img = photo(27, 33)
    out = tmp_path / "out"
    assert export([str(src), "--target", "onnx", "-o", str(out), "--max-photos", "1"]) == 0, capsys.readouterr()
    sc = json.loads((out / "theirs_onnx_fp32.json").read_text())
    assert (sc["scale"], sc["halo"], sc["input_shape"], sc["source_model"]["kind"]) == (2, 2, None, "foreign")
    assert sc["verification"]["passed"] is True
    art = open_backend(model=out / "theirs_onnx_fp32.onnx")   # with its sidecar: the artefact
    assert art.source == str(out / "theirs_onnx_fp32.json") and art.caps.halo == 2
    np.testing.assert_allclose(_upscale(art, img, 8), _upscale(open_backend(model=src), img, 0), atol=1e-5)
    save_png(out / "p.png", img)
    rc, err = run(capsys, out / "p.png", "--artefact", out / "theirs_onnx_fp32.json", "--tile", "8",
                  "-o", out / "p_x2.png")
    assert rc == 0 and read_picture(out / "p_x2.png").pixels.shape == (54, 66, 3), err
    # a fixed-shape model: the artefact has its size
    assert export([str(fixed_src), "--target", "onnx", "-o", str(out), "--max-photos", "1"]) == 0
    sc = json.loads((out / "fixed_onnx_20x20_fp32.json").read_text())
    assert sc["input_shape"] == [20, 20] and sc["halo"] == 2
    fixed_art = open_backend(artefact=out / "fixed_onnx_20x20_fp32.json")
    assert fixed_art.caps.fixed_shape == (20, 20)
    np.testing.assert_allclose(_upscale(fixed_art, img, None), _upscale(open_backend(model=src), img, 0),
                               atol=1e-5)
    capsys.readouterr()
    # other targets, a sidecar it cannot have, and an output onto the input: one line each, nothing written
    y_only = tmp_path / "y.onnx"
    _onnx(*_conv_shuffle(1, 2), ["n", 1, "h", "w"], path=y_only)
    cases = [([str(src), "--target", "tflite", "-o", str(tmp_path / "t")], ["theirs.onnx", "ONNX only", "tflite"]),
             ([str(y_only), "--target", "onnx", "-o", str(tmp_path / "t")], ["y.onnx", "1 channels"]),
             ([str(fixed_src), "--target", "onnx", "--input-size", "24x24", "-o", str(tmp_path / "t")],
              ["fixed.onnx", "fixed at 20x20"])]
    for argv, words in cases:
        assert export(argv) == 2, argv
        one_error_line(capsys.readouterr().err, *words)
        assert not (tmp_path / "t").exists() or not any((tmp_path / "t").iterdir())
    mine = tmp_path / "m_fp32.onnx"
    mine.write_bytes(src.read_bytes())
    assert export([str(mine), "--target", "onnx", "--name", "m", "-o", str(tmp_path), "--overwrite"]) == 2
    one_error_line(capsys.readouterr().err, "m_fp32.onnx", "replace the model")
    assert mine.read_bytes() == src.read_bytes() and not (tmp_path / "m_fp32.json").exists()
    assert all((tmp_path / n).read_bytes() == b for n, b in before.items())
    assert not (tmp_path / "theirs.json").exists() and not (tmp_path / "fixed.json").exists()


# ------------------------------------------------------------------------------------------ --max-memory
def _budget_for_tile(backend, img, tile, halo=None):
    """The smallest budget whose plan for ``img`` (in memory) keeps ``tile``: the plan then picks exactly it."""
    from memsr_deploy.runtime import footprint
    rt = footprint.Runtime.of(backend, halo)
    frame = footprint.Frame(*img.shape[:2], img.shape[2], np.float32, False)
    return footprint.predict(rt, frame, "tile", tile=tile, fmt=None).total


def test_max_memory_plans_foreign_models_exactly(files, tmp_path, capsys):
    d, img = files
    nodes, inits = _conv_shuffle(1, 2, k=5)
    _onnx(nodes, inits, ["n", 1, "h", "w"], path=tmp_path / "espcn.onnx")       # Y-only
    nodes, inits = _conv_shuffle(3, 2)
    _onnx(nodes, inits, [1, 3, 20, 20], [1, 3, 40, 40], path=tmp_path / "fixed.onnx")
    for model in (d / "compact.pth", d / "esrgan.safetensors", tmp_path / "espcn.onnx"):
        backend = open_backend(model=model)
        up = Upscaler(backend, RunOptions(max_memory=_budget_for_tile(backend, img, 9)))
        out = up.upscale_array(img.astype(np.float32) / 255)
        assert up.last["tile"] == 9 and up.last["predicted_peak_rss"] <= up.opt.max_memory, model
        np.testing.assert_allclose(out, _upscale(backend, img, 0), atol=1e-5)
        np.testing.assert_allclose(out, _upscale(backend, img, 9), atol=1e-5)
    fixed = open_backend(model=tmp_path / "fixed.onnx")   # its windows are its own 20x20, whatever the budget
    up = Upscaler(fixed, RunOptions(max_memory=2 ** 30))
    np.testing.assert_allclose(up.upscale_array(img.astype(np.float32) / 255), _upscale(fixed, img, None),
                               atol=1e-5)
    assert up.last["tile"] == 20 - 2 * fixed.caps.halo
    # the CLI: a budget runs a foreign checkpoint, and its output is the whole image's
    for flags in (["--max-memory", "1G"], ["--tile", "0"]):
        rc, err = run(capsys, d / "photo.png", "--model", d / "compact.pth", *flags, "-o", tmp_path / f"{flags[0]}.png")
        assert rc == 0, err
    assert np.array_equal(read_picture(tmp_path / "--max-memory.png").pixels, read_picture(tmp_path / "--tile.png").pixels)


def test_max_memory_refusals_for_foreign_models(files, tmp_path, capsys):
    d, _ = files
    rc, err = run(capsys, d / "photo.png", "--model", d / "compact.pth", "--max-memory", "50M", "-o", tmp_path / "o.png")
    assert rc == 2 and not (tmp_path / "o.png").exists()
    one_error_line(err, "--max-memory 50 MiB", "below", "floor", "onnxruntime")
    from memsr_deploy.runtime import footprint
    above_floor = footprint.Runtime.of(open_backend(model=d / "compact.pth")).floor() + 2 ** 20
    rc, err = run(capsys, d / "photo.png", "--model", d / "compact.pth", "--max-memory", above_floor, "--tile", "16",
                  "-o", tmp_path / "o.png")
    assert rc == 2 and not (tmp_path / "o.png").exists()
    one_error_line(err, "--tile 16", "cannot fit --max-memory", "activations")
    # no finite receptive radius: a budget does not make its tiles exact; --halo still does what it did
    nodes, inits = _conv_shuffle(3, 2)
    nodes[-1].input[0] = "c2"
    nodes[-1:-1] = [helper.make_node("GlobalAveragePool", ["c"], ["g"]), helper.make_node("Mul", ["c", "g"], ["c2"])]
    _onnx(nodes, inits, ["n", 3, "h", "w"], path=tmp_path / "attention.onnx")
    rc, err = run(capsys, d / "photo.png", "--model", tmp_path / "attention.onnx", "--max-memory", "1G",
                  "-o", tmp_path / "o.png")
    assert rc == 2 and not (tmp_path / "o.png").exists()
    one_error_line(err, "attention.onnx", "no finite receptive radius", "--halo")
    rc, err = run(capsys, d / "photo.png", "--model", tmp_path / "attention.onnx", "--max-memory", "1G",
                  "--halo", "4", "-o", tmp_path / "o.png")
    assert rc == 0 and (tmp_path / "o.png").exists() and "approximate" in err


def test_foreign_tile_grows_with_the_budget_and_prices_weights(files):
    from memsr_deploy.runtime import footprint
    d, _ = files
    backend = open_backend(model=d / "esrgan.safetensors")
    rt = footprint.Runtime.of(backend)
    weights = sum(int(np.prod(t.dims)) * 4 for t in backend.graph.model.graph.initializer)
    assert rt.weight_bytes() == weights and rt.floor() >= footprint.WEIGHT_COPIES * weights
    frame = footprint.Frame(3000, 4000)
    tiles = [footprint.plan_within(rt, frame, rt.floor() + extra * 2 ** 20, batch=1, default_tile=4000).tile
             for extra in (150, 250, 600)]
    assert tiles[0] < tiles[1] < tiles[2], tiles
    # the walk is taken at each window's size; larger windows cost more, and a batch of two twice one
    one = rt.window_bytes(64, 64)
    assert rt.window_bytes(128, 128) > 3 * one - 2 * footprint.FOREIGN_ORT_SCRATCH
    assert abs(rt.window_bytes(64, 64, 2) - (2 * one - footprint.FOREIGN_ORT_SCRATCH)) <= 1   # rounding


def test_the_runtime_plans_a_foreign_model_without_the_profiler(tmp_path):
    """Layering: the runtime walks the graph with formats/ (liveness, onnx_liveness), never the profiler."""
    import subprocess
    import sys
    nodes, inits = _conv_shuffle(3, 2)
    _onnx(nodes, inits, ["n", 3, "h", "w"], path=tmp_path / "m.onnx")
    code = ("import sys; from memsr_deploy.runtime import open_backend, footprint; "
            f"rt = footprint.Runtime.of(open_backend(model={str(tmp_path / 'm.onnx')!r})); "
            "p = footprint.plan_within(rt, footprint.Frame(500, 700), rt.floor() + 2 ** 27); "
            "assert p.tile, p; print(sorted(m for m in sys.modules if m.startswith('memsr_deploy.profiler')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_a_foreign_window_that_would_not_fit_is_shrunk_or_refused_before_it_runs(files, tmp_path):
    """Without --max-memory the runtime still guards against an out-of-memory kill: another project's graph is
    walked at the window's size, a whole photo that cannot fit is tiled instead, and one with no finite receptive
    radius (whose tiles would be approximate) is refused with the reason."""
    from memsr_deploy.errors import MemsrError
    from memsr_deploy.runtime import footprint, memory
    d, _ = files
    backend = open_backend(model=d / "esrgan.safetensors")
    avail = 400 * 2 ** 20
    said = []
    assert memory.fit_to_memory(backend, 0, 40, 60, said.append, available=avail) == 0 and not said
    tile = memory.fit_to_memory(backend, 0, 3000, 4000, said.append, available=avail)
    assert 0 < tile < 4000 and "whole image" in said[0] and f"using {tile}-pixel tiles" in said[0]
    win = tile + 2 * backend.caps.halo
    rt = footprint.Runtime.of(backend)
    assert rt.window_bytes(win, win) <= 0.7 * avail < rt.window_bytes(win + 2, win + 2)
    rows = memory.fit_to_memory(backend, 2000, 3000, 4000, said.append, available=avail, rows_only=True)
    assert 0 < rows < 2000 and rt.window_bytes(rows + 2 * backend.caps.halo, 4000) <= 0.7 * avail
    nodes, inits = _conv_shuffle(3, 2)
    nodes[-1].input[0] = "c2"
    nodes[-1:-1] = [helper.make_node("GlobalAveragePool", ["c"], ["g"]), helper.make_node("Mul", ["c", "g"], ["c2"])]
    _onnx(nodes, inits, ["n", 3, "h", "w"], path=tmp_path / "attention.onnx")
    attention = open_backend(model=tmp_path / "attention.onnx")
    up = Upscaler(attention, RunOptions(tile=0))
    with pytest.raises(MemsrError, match="whole image would need .* no finite receptive radius.* --halo"):
        memory.fit_to_memory(attention, 0, 3000, 4000, said.append, available=avail, inexact=attention.approximate)
    assert up.upscale_array(photo().astype(np.float32) / 255).shape == (60, 76, 3)   # small: whole, exact
