"""A plain net ending in EDSR's upsampler (conv + pixel shuffle per scale factor, then a conv at the output
resolution) through every consumer of a plain net, each compared with PyTorch: the graph writers (ONNX, TFLite,
ncnn, each precision), exact tiling and streaming (one LR pixel less of halo breaks them), memsr-upscale on
every backend, the profiler, export with its sidecar, and the int8 helpers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_plain
from memsr_deploy.formats import model_file, ncnn_graph, tflite_graph
from memsr_deploy.formats.onnx_graph import INT8_RANGES_KEY
from memsr_deploy.method import plain_layout
from memsr_deploy.method.models import InputSpec
from memsr_deploy.runtime import RunOptions, Upscaler
from memsr_deploy.runtime.backends.torch_backend import TorchBackend

SCALES = [2, 3, 4]
# EDSR's units: pixels in [0, 255] less the RGB mean
EDSR_INPUT = InputSpec(value_range=255.0, mean=(114.4, 111.5, 103.0), norm=1.0)


def upsampler_net(scale: int, seed: int = 0, input_spec=EDSR_INPUT):
    return make_plain(scale=scale, widths=(6, 5), acts=("relu", "none"), seed=seed, input_spec=input_spec,
                      tail="upsampler")


def image(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.5 + 0.4 * np.sin(yy[..., None] * 0.37 + xx[..., None] * 0.21 + np.arange(3) * 1.3)
    return np.clip(base + 0.1 * rng.standard_normal((h, w, 3)), 0, 1).astype(np.float32)


def reference(net, img: np.ndarray) -> np.ndarray:
    """PyTorch on the whole image, in [0, 1] units, HWC."""
    vr = float(net.cfg.input.value_range)
    with torch.no_grad():
        y = net(torch.from_numpy(img.transpose(2, 0, 1).copy())[None] * vr)[0] / vr
    return y.numpy().transpose(1, 2, 0)


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(a - ref).max() / np.abs(ref).max())


def psnr(a: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(np.ptp(ref) ** 2 / np.mean((a - ref) ** 2)))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Per scale: (stem, net) of a saved upsampler-tail student with int8 activation ranges measured on
    smooth random images (what int8_ranges measures on photos)."""
    from memsr_deploy.method.int8_ranges import measure_ranges
    d = tmp_path_factory.mktemp("upsampler")
    out = {}
    for s in SCALES:
        net = upsampler_net(s, seed=s)
        stem = d / f"up_x{s}"
        model_file.save_model(net, stem, kind="student")
        desc, convs = model_file.load_plain_arrays(stem)
        ranges = measure_ranges(desc, convs, [image(k, 24, 24) for k in range(3)])
        model_file.save_model(net, stem, kind="student", extra={INT8_RANGES_KEY: ranges})
        out[s] = (stem, net)
    return out


# ----------------------------------------------------------------------------------------------- layout
@pytest.mark.parametrize("scale", SCALES)
def test_description_carries_the_tail(models, scale):
    stem, net = models[scale]
    desc = model_file.read_description(stem)
    assert desc.arch["tail"] == "upsampler"
    assert desc.shuffles == net.cfg.shuffles() == [1, 1, *plain_layout.scale_factors(scale), 1]
    # an artefact's description (no body widths, the tail from its sidecar) reads the same chain
    bare = model_file.ModelDescription(kind="student", scale=scale, arch={"tail": "upsampler"},
                                       receptive_radius=desc.receptive_radius, layer_widths=desc.layer_widths,
                                       layer_acts=desc.layer_acts, params=0)
    assert bare.shuffles == desc.shuffles


# ------------------------------------------------------------------------------------------ graph writers
def _tflite(blob: bytes, tmp_path: Path, x: np.ndarray) -> np.ndarray:
    from memsr_export.tflite_export import TfliteRunner
    f = tmp_path / "m.tflite"
    f.write_bytes(blob)
    return TfliteRunner(f, threads=1)(x.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)


@pytest.mark.parametrize("scale", SCALES)
def test_graph_writers_equal_pytorch(models, scale, tmp_path):
    from memsr_deploy.runtime.backends.litert_backend import LiteRTModelBackend
    from memsr_deploy.runtime.backends.ncnn_backend import NcnnModelBackend, missing
    from memsr_deploy.runtime.backends.onnx_backend import OnnxModelBackend
    stem, net = models[scale]
    img = image(scale, 9, 11)
    ref = reference(net, img)
    x = img.transpose(2, 0, 1)[None].copy()
    assert ref.shape == (9 * scale, 11 * scale, 3)

    def run(backend):
        return backend.run(x)[0].transpose(1, 2, 0)
    assert rel_err(run(OnnxModelBackend(stem)), ref) < 1e-5
    assert rel_err(run(LiteRTModelBackend(stem)), ref) < 1e-5
    assert psnr(run(OnnxModelBackend(stem, precision="int8")), ref) > 30
    assert psnr(run(LiteRTModelBackend(stem, precision="int8")), ref) > 30
    desc, convs = model_file.load_plain_arrays(stem)
    for precision, close in (("fp16", 1e-2), ("dynamic", 5e-2)):
        assert rel_err(_tflite(tflite_graph.build(desc, convs, precision), tmp_path, img), ref) < close
    assert psnr(_tflite(tflite_graph.build(desc, convs, "int8-uint8io"), tmp_path, img), ref) > 30
    # GPU delegates' form: every shuffle a 0/1 TRANSPOSE_CONV, at a fixed size
    for precision in ("fp32", "int8"):
        blob = tflite_graph.build(desc, convs, precision, input_size=(9, 11), d2s="transposed-conv")
        out = _tflite(blob, tmp_path, img)
        assert (rel_err(out, ref) < 1e-5) if precision == "fp32" else psnr(out, ref) > 30
    # torch's CRD order left as it is before TFLite's DCR shuffles: verification would see it
    assert rel_err(_tflite(tflite_graph.build(desc, convs, permute_tail=False), tmp_path, img), ref) > 0.05
    if missing() is None:
        assert rel_err(run(NcnnModelBackend(stem)), ref) < 1e-5
        assert psnr(run(NcnnModelBackend(stem, precision="int8")), ref) > 30
        param = ncnn_graph.build(desc, convs, "int8").param
        layers = ncnn_graph.read_param(param)
        assert [ly.kind for ly in layers].count("PixelShuffle") == len(plain_layout.scale_factors(scale))
        # only a conv followed by a conv requantises into it; convs before a shuffle hand over float
        terms = [ly.params.get("8") for ly in layers if ly.kind == "Convolution"]
        assert terms == ["102", "102"] + ["2"] * (len(terms) - 2)


# -------------------------------------------------------------------------------------------- the runtime
@pytest.mark.parametrize("scale", SCALES)
def test_tiles_and_strips_equal_the_whole_image_and_one_pixel_less_of_halo_does_not(scale):
    net = upsampler_net(scale, seed=10 + scale, input_spec=InputSpec())
    b = TorchBackend(module=net)
    halo = b.caps.halo
    # body convs (2) + the LR upsampler conv (1) + the HR convs' fractions, rounded up
    assert halo == plain_layout.receptive_radius(2, scale, "upsampler") == 4
    img = image(scale, 17, 13)
    ref = reference(net, img)
    for tile in (2, 7):
        out = Upscaler(b, RunOptions(tile=tile, batch=2)).upscale_array(img)
        np.testing.assert_allclose(out, ref, rtol=0, atol=2e-5)
    for rows in (1, 3, 64):
        out = Upscaler(b, RunOptions(mode="stream", rows=rows)).upscale_array(img)
        np.testing.assert_allclose(out, ref, rtol=0, atol=2e-5)
    short = Upscaler(b, RunOptions(tile=5, halo=halo - 1)).upscale_array(img)
    assert np.abs(short - ref).max() > 1e-3


def test_stream_stacks_at_most_rows_times_resolution_plus_two():
    """The schedule budget.peak_bytes_stream prices: conv i at r times the LR size never stacks more than
    rows * r + 2 input rows, and computes each of its output rows once."""
    import torch.nn.functional as F
    net = upsampler_net(4, input_spec=InputSpec())
    h, rows = 11, 3
    seen = []
    real = F.conv2d

    def spy(x, *a, **k):
        seen.append((x.shape[1], x.shape[2], x.shape[3]))
        return real(x, *a, **k)
    F.conv2d = spy
    try:
        Upscaler(TorchBackend(module=net), RunOptions(mode="stream", rows=rows)).upscale_array(image(0, h, 5))
    finally:
        F.conv2d = real
    emitted = {}
    for cin, stacked, width in seen:
        r = width // 5   # the resolution the conv runs at
        assert stacked <= rows * r + 2
        emitted[(cin, r)] = emitted.get((cin, r), 0) + stacked - 2
    # each conv (told apart by input channels and resolution) emits its h * r output rows exactly once
    assert emitted == {(3, 1): h, (6, 1): h, (5, 1): h, (5, 2): 2 * h, (5, 4): 4 * h}


def test_upscale_cli_on_every_backend(models, tmp_path):
    from PIL import Image

    from memsr_deploy.cli.upscale import main
    stem, net = models[3]
    img = image(7, 13, 17)
    src = tmp_path / "in.png"
    Image.fromarray(np.rint(img * 255).astype(np.uint8)).save(src)
    pixels = np.asarray(Image.open(src), np.float32) / 255
    want = np.clip(np.rint(reference(net, pixels) * 255), 0, 255)
    # (auto picks between ONNX Runtime and LiteRT by timing both: the two are checked here by name)
    for backend, mode in (("torch", "stream"), ("onnxruntime", "tile"), ("onnxruntime", "stream"),
                          ("litert", "tile")):
        out = tmp_path / f"{backend}_{mode}.png"
        assert main([str(src), "--model", str(stem), "--backend", backend, "--mode", mode, "--tile", "5",
                     "--rows", "4", "-o", str(out), "-q"]) == 0
        got = np.asarray(Image.open(out), np.float32)
        assert got.shape == (39, 51, 3)
        assert np.abs(got - want).max() <= 1, (backend, mode)


# ------------------------------------------------------------------------------------------- the profiler
@pytest.mark.parametrize("scale", SCALES)
def test_profiler_rule_walk_and_stream_agree(models, scale):
    from memsr_deploy.formats import memory_budget as budget
    from memsr_deploy.profiler.analytic import load_subject, predict
    stem, _ = models[scale]
    desc = model_file.read_description(stem)
    subject = load_subject(stem)
    # per LR pixel: every upsampler stage's output is 5 * s * s elements (W = 5), the image 3 * s * s
    assert budget.map_elements(desc)[-2:] == [5 * scale * scale, 3 * scale * scale]
    h, wd = 20, 16
    walk = predict(subject, h, wd, "whole", backend="ideal")
    assert walk.peak_bytes == budget.per_pixel_channels(desc) * h * wd * 4   # the HR maps dominate, both say so
    assert budget.per_pixel_channels(desc) > 2 * 3 * scale * scale           # more than the one-conv tail's peak
    stream = predict(subject, h, wd, "stream", rows=4)
    assert stream.peak_bytes == budget.peak_bytes_stream(desc, wd, 4)
    assert [n.op for n in stream.nodes].count("pixel_shuffle") == len(plain_layout.scale_factors(scale))
    assert budget.strip_rows_for_budget(desc, wd, budget.peak_bytes_stream(desc, wd, 4)) == 4


@pytest.mark.parametrize("backend", ["onnxruntime"])
def test_profiler_measured_matches_prediction(tmp_path, backend):
    """A fresh process's peak against the prediction (test_profiler_measure's tolerance), on a net wide enough
    for its HR maps to stand out from the runtime's own memory."""
    import onnx

    from memsr_deploy.formats.onnx_graph import model_to_onnx
    from memsr_deploy.profiler.analytic import load_subject, measured_prediction
    from memsr_deploy.profiler.measure import measure_peak
    stem = tmp_path / "wide_x4"
    model_file.save_model(make_plain(scale=4, widths=(16, 16), acts=("relu", "none"), tail="upsampler"), stem,
                          kind="student")
    path = stem
    if backend == "onnxruntime":
        path = tmp_path / "wide_x4.onnx"
        onnx.save_model(model_to_onnx(stem), str(path))
    expected = measured_prediction(load_subject(path), 192, 160, backend)
    m = measure_peak(path, backend, 192, 160)
    assert abs(m.peak_bytes / expected - 1) < 0.15, (m.peak_bytes, expected)


def test_profile_cli(models, capsys):
    from memsr_deploy.cli.profile import main
    stem, _ = models[2]
    from memsr_deploy.formats import memory_budget as budget
    assert main([str(stem), "--resolution", "64x48", "--mode", "whole,tiled,stream", "--json"]) == 0
    rows = {r["mode"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["whole"]["predicted"] == budget.per_pixel_channels(model_file.read_description(stem)) * 64 * 48 * 4
    assert set(rows) == {"whole", "tiled", "stream"} and all(r["predicted"] > 0 for r in rows.values())


# ----------------------------------------------------------------------------------------------- export
@pytest.mark.parametrize("scale", SCALES)
def test_export_writes_the_tail_into_the_sidecar_and_runs_exactly(models, scale, tmp_path):
    from memsr_export import export_model

    from memsr_deploy.formats.sidecar import read_sidecar
    from memsr_deploy.runtime import open_backend
    stem, net = models[scale]
    img = image(scale, 15, 12)
    ref = reference(net, img)
    for target in ("onnx", "tflite"):
        path = export_model(str(stem), target, "fp32", out_dir=str(tmp_path), verify=False, progress=False)
        sc = read_sidecar(path)
        assert sc.source_model["tail"] == "upsampler" and sc.halo == 4
        b = open_backend(artefact=path)
        assert b.desc.shuffles == net.cfg.shuffles()
        out = Upscaler(b, RunOptions(tile=4)).upscale_array(img)
        assert rel_err(out, ref) < 1e-5


def test_coreml_program_equals_pytorch(models, tmp_path):
    pytest.importorskip("coremltools")
    from memsr_export.coreml_export import build_coreml
    from memsr_export.coreml_mil import MilProgramRunner
    from memsr_export.source import load_source
    for scale in (2, 4):
        stem, net = models[scale]
        src = load_source(stem)
        path = tmp_path / f"up_x{scale}.mlpackage"
        build_coreml(src, path, "fp32")
        img = image(scale, 10, 9)
        out = MilProgramRunner(path)(img.transpose(2, 0, 1)[None] * 255)[0].transpose(1, 2, 0) / 255
        assert rel_err(out, reference(net, img)) < 1e-5


def test_export_equalisation_is_exact_with_the_upsampler(models):
    from memsr_export.equalize import balance_weights, equalize, layer_ranges
    from memsr_export.source import load_source
    src = load_source(models[4][0])
    layers = src.plain_layers()
    assert [la.shuffle for la in layers] == [1, 1, 2, 2, 1]
    samples = [image(k, 12, 12)[None] * 255 for k in range(2)]
    ranges = layer_ranges(layers, src.input_spec, samples)
    assert len(ranges) == 2   # the body only: a shuffle spreads a channel over sub-pixels
    eq = equalize(balance_weights(layers), ranges, alpha=1.0)
    desc = src.desc

    def run(ls):
        from memsr_deploy.formats.onnx_graph import build_fp32
        from memsr_deploy.runtime.backends.onnx_backend import session
        g = build_fp32(desc, [(la.weight, la.bias) for la in ls], model_units=True)
        return session(g.SerializeToString(), 1, "t").run(None, {"input": samples[0].transpose(0, 3, 1, 2)})[0]
    assert rel_err(run(eq), run(layers)) < 1e-5
    assert not np.allclose(eq[1].weight, layers[1].weight)   # it did rescale


# ------------------------------------------------------------------------------------------ int8 helpers
def test_quant_aware_grids_every_conv_and_bias_correction_is_exact():
    from memsr_deploy.method.bias_correct import correct_tail_bias
    from memsr_deploy.method.quant_aware import with_int8_weights
    q = with_int8_weights(upsampler_net(4, input_spec=InputSpec()), activations=True)
    assert len(q.activation_grids) == len(q.convs()) == 5
    m = upsampler_net(2, seed=5, input_spec=InputSpec())
    torch.manual_seed(1)
    batches = []
    for _ in range(2):
        lr = torch.rand(2, 3, 14, 14)
        with torch.no_grad():
            batches.append((lr, m(lr)))
    shift = torch.tensor([-0.01, 0.004, 0.01])
    with torch.no_grad():
        m.tail.bias += shift   # the output conv at HR: one offset per colour
    offsets = correct_tail_bias(m, iter(batches))
    assert torch.allclose(torch.tensor(offsets), -shift, atol=1e-6)
