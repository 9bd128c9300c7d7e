"""The exporters' building blocks that need no converter: windows, channel order, sizes, figures."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import make_plain
from memsr_export import verify as V
from memsr_export.coreml_mil import _depth_to_space
from memsr_export.shapes import default_tile, parse_input_size, parse_tiles
from memsr_export.source import Source
from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.tflite_graph import crd_to_dcr, d2s_filter
from memsr_deploy.formats.model_file import describe


def tiny_source(**kw):
    m = make_plain(**kw)
    return Source(m, describe(m, "student"), "tiny")


def test_windowed_run_equals_whole_image():
    """A fixed-shape artefact is verified on whole photos through the runtime's tile loop; stitching its
    fixed-size windows reproduces the whole-image output exactly (what fixed artefacts rely on)."""
    from memsr_deploy.runtime.backends.base import Backend, Capabilities
    src = tiny_source(seed=3)
    seen = set()

    class FixedTorch(Backend):
        name, desc, source = "fixed-torch", src.desc, "fixed"
        caps = Capabilities(scale=src.scale, halo=src.halo, fixed_shape=(13, 11))

        def run(self, x):
            seen.add(x.shape[2:])
            return src.run(x)

    lr = np.random.default_rng(0).random((37, 29, 3)).astype(np.float32)
    art, ref = V.run_image(V.BackendRunner(FixedTorch(), 1.0), src, lr)
    assert seen == {(13, 11)}
    assert art.shape == ref.shape == (37 * src.scale, 29 * src.scale, 3) and np.abs(art - ref).max() < 1e-5


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tail_permutation_turns_pixel_shuffle_into_depth_to_space(scale):
    y = torch.randn(1, 3 * scale * scale, 5, 7)
    dcr = _depth_to_space(y[:, torch.from_numpy(crd_to_dcr(scale))], scale)
    assert torch.equal(dcr, F.pixel_shuffle(y, scale))
    # and without the permutation the colours/sub-pixels are scrambled
    assert not torch.equal(_depth_to_space(y, scale), F.pixel_shuffle(y, scale))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_d2s_filter_is_depth_to_space(scale):
    """The TRANSPOSE_CONV weights: out[y*s+i, x*s+j, c] = in[y, x, (i*s+j)*3+c]."""
    f = torch.from_numpy(d2s_filter(scale)).permute(3, 0, 1, 2)  # TFLite [out,s,s,in] -> torch [in,out,s,s]
    y = torch.randn(1, 3 * scale * scale, 4, 6)
    assert torch.allclose(F.conv_transpose2d(y, f, stride=scale), _depth_to_space(y, scale))


def test_input_sizes_and_tiles():
    assert parse_input_size("1x3x256x256") == (256, 256)
    assert parse_input_size("96x128") == (96, 128)
    assert parse_input_size("64") == (64, 64)
    assert parse_input_size(None) is None and parse_input_size((40, 48)) == (40, 48)
    for bad in ("2x3x64x64", "1x1x64x64", "0x4", "abc", "1x2x3"):
        with pytest.raises(MemsrError):
            parse_input_size(bad)
    assert default_tile(4, (256, 256)) == 248 and default_tile(4, (40, 64)) == 32
    assert default_tile(4, None) == 192 and default_tile(4, None, [128, 256]) == 256
    with pytest.raises(MemsrError, match="no core tile"):
        default_tile(10, (20, 64))
    assert parse_tiles("256,128") == [128, 256]
    with pytest.raises(MemsrError):
        parse_tiles("a,b")


def test_verify_catches_a_wrong_artefact_and_passes_the_right_one():
    src = tiny_source(seed=4)

    class Exact(V.Runner):
        description = "torch"

        def __call__(self, x):
            return src.run(x)

    class Off(Exact):
        def __call__(self, x):
            return src.run(x) + 0.01  # a small constant error: must fail fp32, pass int8

    good = V.verify(Exact(), src, "fp32", max_photos=1, progress=False)
    assert good["passed"] and good["max_abs_diff"] < 1e-6 and good["failures"] == []
    assert any(i.startswith("patch 17x23") for i in good["inputs"])
    bad = V.verify(Off(), src, "fp32", max_photos=1, progress=False)
    assert not bad["passed"] and any("max abs diff" in f for f in bad["failures"])
    assert abs(bad["max_abs_diff"] - 0.01) < 1e-4
    assert V.verify(Off(), src, "int8", max_photos=1, progress=False)["passed"]


def test_equalisation_is_exact_and_evens_out_channel_ranges():
    from memsr_export.equalize import activation_ranges, equalize
    from memsr_deploy.method.models import PlainConfig, PlainSR
    src = tiny_source(widths=(8, 8, 8), acts=("relu", "none", "relu"), seed=9)
    with torch.no_grad():  # make one channel 50x wider than the rest, as in real students
        src.model.layers[0].weight[2] *= 50
        src.model.layers[0].bias[2] *= 50
        src.model.layers[1].weight[:, 2] /= 50
    rng = np.random.default_rng(1)
    samples = [rng.random((1, 16, 16, 3), np.float32) for _ in range(4)]
    before = activation_ranges(src, samples)
    layers = equalize(src.plain_layers(), before, alpha=0.5)
    eq = PlainSR(PlainConfig(scale=2, widths=[8, 8, 8], acts=["relu", "none", "relu"])).eval()
    with torch.no_grad():
        for conv, layer in zip(eq.convs(), layers):
            conv.weight.copy_(torch.from_numpy(layer.weight))
            conv.bias.copy_(torch.from_numpy(layer.bias))
    x = torch.rand(1, 3, 13, 17)  # odd size: borders included
    with torch.no_grad():
        assert torch.allclose(eq(x), src.model(x), atol=1e-5)
    after = activation_ranges(Source(eq, src.desc, "eq"), samples)
    spread = lambda r: float(r.max() / np.median(r))  # noqa: E731
    assert spread(before[0]) > 20 and spread(after[0]) < spread(before[0]) ** 0.5 * 1.01


def test_weight_balancing_is_exact_and_evens_out_weight_ranges():
    from memsr_export.equalize import balance_weights, layer_ranges
    src = tiny_source(widths=(8, 8, 8), acts=("relu", "none", "relu"), seed=4)
    with torch.no_grad():  # one near-identity carry: channel 3's weights 100x the rest, as a MemSR init leaves
        src.model.layers[1].weight[3] *= 100
        src.model.layers[1].bias[3] *= 100
        src.model.layers[2].weight[:, 3] /= 100
    layers = src.plain_layers()
    balanced = balance_weights(layers)
    x = np.random.default_rng(2).random((1, 11, 19, 3), np.float32)  # odd size: borders included
    h = torch.from_numpy(x.transpose(0, 3, 1, 2))

    def run(ls):
        y = h
        for l in ls:
            y = torch.nn.functional.conv2d(y, torch.from_numpy(l.weight), torch.from_numpy(l.bias), padding=1)
            y = torch.relu(y) if l.act == "relu" else y
        return y
    with torch.no_grad():
        assert torch.allclose(run(balanced), run(layers), atol=1e-5)
    spread = lambda ls, i: float(np.abs(ls[i].weight).max(axis=(1, 2, 3)).max()  # noqa: E731
                                 / np.median(np.abs(ls[i].weight).max(axis=(1, 2, 3))))
    assert spread(layers, 1) > 20 and spread(balanced, 1) < spread(layers, 1) / 5
    # layer_ranges on the layers themselves agrees with the model's own body outputs
    with torch.no_grad():
        _, feats = src.model.features(h)
    for a, f in zip(layer_ranges(layers, src.desc.input, [x]), feats):
        np.testing.assert_allclose(a, f.abs().amax(dim=(0, 2, 3)).numpy(), rtol=1e-5)


def test_calibrated_int8_ranges_are_each_tensors_extremes():
    """tensor_ranges: the normalised input and every conv output after its activation, in model units, smallest
    and largest over all samples (PyTorch's own forward is the reference); the ramp pins the input range."""
    from memsr_export.calibration import ramp, tensor_ranges
    from memsr_deploy.method.models import InputSpec
    spec = InputSpec(255.0, (100.0, 120.0, 140.0), 64.0)   # model units 0..255, normalisation in front
    src = tiny_source(widths=(8, 8), acts=("relu", "none"), seed=7, input_spec=spec)
    rng = np.random.default_rng(3)
    samples = [rng.random((1, 9, 13, 3), np.float32) * 255 for _ in range(3)] + [ramp(9, 13)[None] * 255]
    inp, ranges = tensor_ranges(src, src.plain_layers(), samples)
    tensors = [[] for _ in range(4)]
    for s in samples:
        with torch.no_grad():
            h = src.model.normalize(torch.from_numpy(np.ascontiguousarray(s.transpose(0, 3, 1, 2))))
            tensors[0].append(h)
            for k, (conv, act) in enumerate(zip(src.model.convs(), [*src.model.acts, "none"])):
                h = conv(h)
                h = torch.relu(h) if act == "relu" else h
                tensors[k + 1].append(h)
    want = [(min(float(t.min()) for t in ts), max(float(t.max()) for t in ts)) for ts in tensors]
    np.testing.assert_allclose([inp, *ranges], want, rtol=1e-5, atol=1e-5)
    assert ranges[0][0] == 0.0 and ranges[1][0] < 0    # ReLU output starts at 0, the tail's does not
    assert inp == pytest.approx([(0 - 140) / 64, (255 - 100) / 64])   # the ramp spans the image range
