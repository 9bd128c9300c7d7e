"""ncnn export: the .param/.bin pair written from the description equals PyTorch (fp32) or stays within the int8
limits, a wrong channel order and a corrupted or missing .bin are caught, the sidecar records both files.
Skipped where the optional ncnn package (extras ``ncnn``) is absent; CI installs it."""
import functools
import json
import shutil
import struct

import numpy as np
import pytest
import torch

pytest.importorskip("ncnn")

from conftest import make_plain  # noqa: E402
from memsr_deploy.errors import MemsrError  # noqa: E402
from memsr_deploy.formats import ncnn_graph  # noqa: E402
from memsr_deploy.formats.model_file import load_plain_arrays, save_model  # noqa: E402
from memsr_deploy.formats.onnx_graph import int8_weight_grid  # noqa: E402
from memsr_deploy.formats.sidecar import file_sha256, read_sidecar, validate_sidecar  # noqa: E402
from memsr_deploy.method import int8_ranges  # noqa: E402
from memsr_deploy.method.models import InputSpec  # noqa: E402
from memsr_deploy.runtime.backends import open_backend  # noqa: E402
from memsr_deploy.runtime.backends.ncnn_backend import NcnnModelBackend  # noqa: E402
from memsr_export import export_model, ncnn_export, verify as V  # noqa: E402
from memsr_export.cli import main  # noqa: E402

NORM = InputSpec(1.0, (0.45, 0.44, 0.40), 0.5)
NORM_255 = InputSpec(255.0, (115.0, 112.0, 102.0), 64.0)


def with_ranges(stem):
    """Give a saved model the int8_activation_ranges ncnn int8 needs (measured on scikit-image photos)."""
    from skimage import data
    from memsr_deploy.data.resize import bicubic_downscale
    desc, convs = load_plain_arrays(stem)
    lr = [bicubic_downscale(getattr(data, n)().astype(np.float32) / 255, desc.scale) for n in ("astronaut", "coffee")]
    int8_ranges.write_ranges(stem, int8_ranges.measure_ranges(desc, convs, lr))
    return stem


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("ncnn_models")
    save_model(make_plain(widths=(16, 16, 16), seed=3), d / "tiny_x2", kind="student")
    with_ranges(d / "tiny_x2")
    save_model(make_plain(scale=3, seed=4), d / "noranges_x3", kind="student")
    return d


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("ncnn_out")
    return {p: export_model(models / "tiny_x2", "ncnn", p, out_dir=out, max_photos=1, progress=False)
            for p in ("fp32", "int8")}


@pytest.mark.parametrize("scale,acts,spec", [
    (2, ("relu", "relu", "none"), None),
    (3, ("none", "none", "none"), NORM),            # no ReLU anywhere, a normalising input spec
    (4, ("relu", "none", "relu"), NORM_255),        # [0, 255] model units: the tail's 1 / value_range fold
])
def test_fp32_pair_equals_pytorch(tmp_path, scale, acts, spec):
    net = make_plain(scale=scale, acts=acts, input_spec=spec, seed=scale)
    save_model(net, tmp_path / "m", kind="student")
    b = NcnnModelBackend(tmp_path / "m", threads=1)
    vr = float((spec or InputSpec()).value_range)
    x = np.random.default_rng(scale).random((2, 3, 17, 23), dtype=np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x * vr)).numpy() / vr
    y = b.run(x)
    assert y.shape == (2, 3, 17 * scale, 23 * scale)
    assert np.abs(y - ref).max() < 1e-4
    layers = ncnn_graph.read_param(ncnn_graph.build(*load_plain_arrays(tmp_path / "m")).param)
    assert [ly.kind for ly in layers] == ["Input", *(["Scale"] if spec else []), *["Convolution"] * 4,
                                          "PixelShuffle"]
    convs = [ly for ly in layers if ly.kind == "Convolution"]
    assert [ly.params.get("9") for ly in convs] == [("1" if a == "relu" else None) for a in acts] + [None]
    assert layers[-1].params == {"0": str(scale), "1": str(ncnn_graph.CRD)}


def test_export_writes_a_verified_pair_and_its_sidecar(exported):
    for precision, sc_path in exported.items():
        sc = read_sidecar(sc_path)   # checks both files against their checksums
        assert sc.target == "ncnn" and sc.precision == precision
        assert sc.file == f"tiny_x2_ncnn_{precision}.param" and sc.data_file == f"tiny_x2_ncnn_{precision}.bin"
        assert sc.data_sha256 == file_sha256(sc.data_path()) and sc.file_sha256 == file_sha256(sc.artefact_path())
        validate_sidecar(json.loads(sc_path.read_text()), sc_path)
        v, lim = sc.verification, V.LIMITS[precision]
        assert v["passed"] is True and v["failures"] == [] and v["runner"].startswith("memsr runtime backend ncnn")
        assert v["psnr_y_vs_torch"] >= lim.min_psnr_vs_torch and v["psnr_y_drop"] <= lim.max_drop
        assert v["ops"] == {"Input": 1, "Convolution": 4, "PixelShuffle": 1}
        assert sc.layout == {"input": "NCHW", "output": "NCHW"} and sc.input_shape is None and "ncnn" in sc.tools
    assert read_sidecar(exported["fp32"]).verification["max_abs_diff"] < 1e-4
    # int8 is int8: coarser than fp32, yet far from a broken graph (which lands below 20 dB)
    assert 30 <= read_sidecar(exported["int8"]).verification["psnr_y_vs_torch"] < 80
    names = sorted(p.name for p in exported["fp32"].parent.iterdir())
    assert names == sorted(f"tiny_x2_ncnn_{p}.{e}" for p in ("fp32", "int8") for e in ("param", "bin", "json"))


def test_int8_export_with_a_normalising_input_spec(tmp_path):
    """[0, 255] model units and a per-channel normalisation in front of the int8 convs (a Scale layer in float)."""
    save_model(make_plain(scale=4, widths=(16, 16, 16), acts=("relu", "none", "relu"), input_spec=NORM_255, seed=9),
               tmp_path / "n255_x4", kind="student")
    with_ranges(tmp_path / "n255_x4")
    sc = read_sidecar(export_model(tmp_path / "n255_x4", "ncnn", "int8", out_dir=tmp_path / "out", max_photos=1,
                                   progress=False))
    v = sc.verification
    assert v["passed"] is True and v["ops"]["Scale"] == 1 and sc.input["range"] == [0.0, 255.0]
    assert v["psnr_y_vs_torch"] >= V.LIMITS["int8"].min_psnr_vs_torch


def test_int8_bin_holds_the_grid_weights_and_ncnn_scales(models, exported):
    sc = read_sidecar(exported["int8"])
    desc, convs = load_plain_arrays(models / "tiny_x2")
    blob = sc.data_path().read_bytes()
    params = [ly.params for ly in ncnn_graph.read_param(sc.artefact_path().read_text()) if ly.kind == "Convolution"]
    assert [p["8"] for p in params] == ["102", "102", "102", "2"]   # body requantises, the tail dequantises
    at = 0
    for i, (w, b) in enumerate(convs):
        q, scale = int8_weight_grid(w)
        tag, = struct.unpack_from("<I", blob, at)
        assert tag == ncnn_graph.TAG_INT8
        at += 4
        assert np.array_equal(np.frombuffer(blob, np.int8, w.size, at), q.ravel())
        at += w.size + (-w.size % 4)
        n = w.shape[0]
        np.testing.assert_allclose(np.frombuffer(blob, "<f4", n, at), b, rtol=1e-6)
        at += 4 * n
        np.testing.assert_allclose(np.frombuffer(blob, "<f4", n, at), 1 / scale, rtol=1e-6)   # ncnn multiplies
        at += 4 * n + 4 * (2 if i < len(convs) - 1 else 1)
    assert at == len(blob)
    assert sc.data_path().stat().st_size < read_sidecar(exported["fp32"]).data_path().stat().st_size / 2


def test_wrong_channel_order_is_caught_and_nothing_is_written(models, tmp_path, monkeypatch):
    monkeypatch.setattr(ncnn_export, "build_ncnn",
                        functools.partial(ncnn_export.build_ncnn, shuffle_mode=ncnn_graph.DCR))
    with pytest.raises(MemsrError, match="verification failed: max abs diff"):
        export_model(models / "tiny_x2", "ncnn", out_dir=tmp_path, max_photos=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_corrupted_or_missing_bin_is_refused(exported, tmp_path):
    for f in exported["fp32"].parent.glob("tiny_x2_ncnn_fp32.*"):
        shutil.copy(f, tmp_path / f.name)
    sc_path, binf = tmp_path / "tiny_x2_ncnn_fp32.json", tmp_path / "tiny_x2_ncnn_fp32.bin"
    data = bytearray(binf.read_bytes())
    data[100] ^= 0x40
    binf.write_bytes(bytes(data))
    for attempt in (lambda: read_sidecar(sc_path), lambda: open_backend(artefact=sc_path, threads=1)):
        with pytest.raises(MemsrError, match="does not match the checksum in field 'data_sha256'") as e:
            attempt()
        assert str(binf) in str(e.value) and "\n" not in str(e.value)
    # a consistent sidecar for a truncated .bin: ncnn itself refuses it, in one line naming the file
    binf.write_bytes(bytes(data[:len(data) // 2]))
    d = json.loads(sc_path.read_text())
    d["data_sha256"] = file_sha256(binf)
    sc_path.write_text(json.dumps(d))
    with pytest.raises(MemsrError, match="ncnn cannot read this .bin file") as e:
        open_backend(artefact=sc_path, threads=1)
    assert str(binf) in str(e.value)
    binf.unlink()
    with pytest.raises(MemsrError, match="'data_file' is missing"):
        read_sidecar(sc_path)


def test_sidecar_must_name_the_bin(exported, tmp_path):
    d = json.loads(exported["fp32"].read_text())
    for edit, field in ((lambda d: d.pop("data_file"), "data_file"), (lambda d: d.update(data_file=d["file"]),
                        "data_file"), (lambda d: d.update(data_sha256="0"), "data_sha256")):
        bad = json.loads(json.dumps(d))
        edit(bad)
        with pytest.raises(MemsrError, match=f"sidecar field '{field}'"):
            validate_sidecar(bad, tmp_path / "x.json")


def test_refusals_are_one_line(models, tmp_path, monkeypatch, capsys):
    with pytest.raises(MemsrError, match="int8_activation_ranges"):
        export_model(models / "noranges_x3", "ncnn", "int8", out_dir=tmp_path)
    with pytest.raises(MemsrError, match="--input-size does not apply"):
        export_model(models / "tiny_x2", "ncnn", out_dir=tmp_path, input_size="64x64")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(ncnn_export, "missing", lambda: "the ncnn package is not installed (pip install x)")
    assert main([str(models / "tiny_x2"), "--target", "ncnn", "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {models / 'tiny_x2.json'}: --target ncnn: the ncnn package is not installed (pip install x)"]


def test_cli_exports_ncnn_and_plans_the_bin(models, tmp_path, capsys):
    assert main([str(models / "tiny_x2"), "--target", "ncnn", "--precision", "fp32", "-o", str(tmp_path),
                 "--max-photos", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    row = next(line for line in out if line.startswith("ncnn"))
    assert "tiny_x2_ncnn_fp32.param" in row
    for f in ("tiny_x2_ncnn_fp32.param", "tiny_x2_ncnn_fp32.json"):
        (tmp_path / f).unlink()
    # the .bin alone is an existing output too: refused without --overwrite, before any work
    assert main([str(models / "tiny_x2"), "--target", "ncnn", "-o", str(tmp_path), "--max-photos", "1"]) == 2
    assert "tiny_x2_ncnn_fp32.bin" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_x2_ncnn_fp32.bin"]


def test_ncnn_fp16_mode_is_said_skipped_on_a_cpu_without_fp16_and_verified_with_its_own_limits_where_it_has(
        models, exported, tmp_path, monkeypatch):
    from memsr_deploy.runtime.backends import ncnn_backend
    if ncnn_backend.fp16_effective():
        pytest.skip("this CPU has fp16: the x86 branch below is not what runs here")
    block = read_sidecar(exported["fp32"]).verification["ncnn_fp16"]
    assert block["passed"] is None and "no fp16 arithmetic" in block["skipped"]
    # the branch an ARMv8.2+ machine takes (on x86 ncnn ignores the options, so the figures are fp32 ones)
    monkeypatch.setattr(ncnn_backend, "fp16_effective", lambda: True)
    seen = []
    real = ncnn_backend._net
    monkeypatch.setattr(ncnn_backend, "_net", lambda *a, **k: seen.append(a[5] if len(a) > 5 else k.get("fp16"))
                        or real(*a, **k))
    v = read_sidecar(export_model(models / "tiny_x2", "ncnn", "fp32", out_dir=tmp_path, max_photos=1,
                                  progress=False)).verification
    assert True in seen and v["ncnn_fp16"]["passed"] is True
    assert v["ncnn_fp16"]["limits"] == V.asdict(V.NCNN_FP16_LIMITS["fp32"])
    assert v["ncnn_fp16"]["runner"].startswith("ncnn fp16 storage and arithmetic")


def test_ncnn_fp16_is_an_explicit_runner_option(exported, models, tmp_path, capsys):
    off = open_backend(artefact=exported["fp32"])
    on = open_backend(artefact=exported["fp32"], ncnn_fp16=True)
    assert not off.run_windows.net.opt.use_fp16_arithmetic and not off.run_windows.net.opt.use_fp16_storage
    assert on.run_windows.net.opt.use_fp16_arithmetic and on.run_windows.net.opt.use_fp16_storage
    with pytest.raises(MemsrError, match="ncnn-fp16 applies to ncnn artefacts"):
        open_backend(model=models / "tiny_x2", ncnn_fp16=True)
    from memsr_deploy.cli.upscale import main as upscale
    from PIL import Image
    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    assert upscale([str(tmp_path / "in.png"), "--model", str(models / "tiny_x2"), "--ncnn-fp16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ncnn-fp16 applies to ncnn artefacts" in err[0]


def test_a_window_that_is_not_contiguous_runs_as_its_copy():
    """ncnn's Mat does not keep a numpy array alive: the contiguous copy of a strided window must outlive the
    Mat's own copy, or ncnn reads freed memory (seen as outputs of 1e21)."""
    backend = NcnnModelBackend(model="memsr-x2", precision="fp32")
    x = np.random.default_rng(0).random((1, 20, 24, 3), dtype=np.float32).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(backend.run(x), backend.run(np.ascontiguousarray(x)))
