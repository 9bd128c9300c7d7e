"""Other projects' checkpoints: each family's published key layout is recognised without naming it, and the network
read from it computes what the original architecture computes (written again here as plain functions of the
state dict, from the papers' structure). Random weights, files written by the tests."""
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from memsr_deploy.errors import MemsrError
from memsr_deploy.foreign.checkpoint import read_checkpoint


def _conv(state, key, cin, cout, k=3, gen=None):
    state[f"{key}.weight"] = torch.randn(cout, cin, k, k, generator=gen) / (cin * k * k) ** 0.5
    state[f"{key}.bias"] = 0.05 * torch.randn(cout, generator=gen)


def _apply(state, key, x, pad=1):
    return F.conv2d(x, state[f"{key}.weight"], state[f"{key}.bias"], padding=pad)


# ---------------------------------------------------------------- Compact (SRVGGNetCompact)

def compact_state(in_ch=3, width=8, convs=3, scale=4, seed=0):
    g, s = torch.Generator().manual_seed(seed), {}
    _conv(s, "body.0", in_ch, width, gen=g)
    s["body.1.weight"] = 0.1 + 0.2 * torch.rand(width, generator=g)
    for i in range(convs):
        _conv(s, f"body.{2 * i + 2}", width, width, gen=g)
        s[f"body.{2 * i + 3}.weight"] = 0.1 + 0.2 * torch.rand(width, generator=g)
    _conv(s, f"body.{2 * convs + 2}", width, in_ch * scale * scale, gen=g)
    return s


def compact_reference(s, x, scale):
    n = max(int(k.split(".")[1]) for k in s)
    h = x
    for i in range(0, n, 2):
        h = F.prelu(_apply(s, f"body.{i}", h), s[f"body.{i + 1}.weight"])
    out = F.pixel_shuffle(_apply(s, f"body.{n}", h), scale)
    return out + x.repeat_interleave(scale, 2).repeat_interleave(scale, 3)


@pytest.mark.parametrize("in_ch,scale,suffix", [(3, 4, ".pth"), (3, 2, ".safetensors"), (1, 3, ".pt")])
def test_compact(tmp_path, in_ch, scale, suffix):
    s = compact_state(in_ch=in_ch, scale=scale)
    path = tmp_path / f"compact{suffix}"
    save_file(s, path) if suffix == ".safetensors" else torch.save({"params": s}, path)
    found = read_checkpoint(path)
    assert (found.arch, found.scale, found.in_channels, found.out_channels) == ("Compact", scale, in_ch, in_ch)
    x = torch.rand(1, in_ch, 11, 9)
    with torch.no_grad():
        assert torch.allclose(found.module(x), compact_reference(s, x, scale), atol=1e-5)


# ---------------------------------------------------------------- ESRGAN / RRDBNet

def rrdb_state(width=8, growth=4, blocks=2, ups=2, unshuffle=1, seed=0):
    g, s = torch.Generator().manual_seed(seed), {}
    _conv(s, "conv_first", 3 * unshuffle ** 2, width, gen=g)
    for b in range(blocks):
        for r in (1, 2, 3):
            for j in range(1, 6):
                _conv(s, f"body.{b}.rdb{r}.conv{j}", width + (j - 1) * growth, width if j == 5 else growth, gen=g)
    _conv(s, "conv_body", width, width, gen=g)
    for k in range(1, ups + 1):
        _conv(s, f"conv_up{k}", width, width, gen=g)
    _conv(s, "conv_hr", width, width, gen=g)
    _conv(s, "conv_last", width, 3, gen=g)
    return s


def rrdb_reference(s, x, unshuffle):
    lrelu = lambda t: F.leaky_relu(t, 0.2)
    if unshuffle > 1:
        x = F.pixel_unshuffle(x, unshuffle)
    feat = _apply(s, "conv_first", x)
    h = feat
    blocks = len({k.split(".")[1] for k in s if k.startswith("body.")})
    for b in range(blocks):
        inner = h
        for r in (1, 2, 3):
            fs = [inner]
            for j in range(1, 5):
                fs.append(lrelu(_apply(s, f"body.{b}.rdb{r}.conv{j}", torch.cat(fs, 1))))
            inner = inner + 0.2 * _apply(s, f"body.{b}.rdb{r}.conv5", torch.cat(fs, 1))
        h = h + 0.2 * inner
    feat = feat + _apply(s, "conv_body", h)
    k = 1
    while f"conv_up{k}.weight" in s:
        feat = lrelu(_apply(s, f"conv_up{k}", F.interpolate(feat, scale_factor=2, mode="nearest")))
        k += 1
    return _apply(s, "conv_last", lrelu(_apply(s, "conv_hr", feat)))


def to_original_layout(s):
    """BasicSR's names -> the original ESRGAN repository's sequential keys (upconv k at model.3k)."""
    ups = len([k for k in s if k.startswith("conv_up") and k.endswith(".weight")])
    blocks = len({k.split(".")[1] for k in s if k.startswith("body.")})
    out = {}
    for k, v in s.items():
        p = k.split(".")
        if p[0] == "body":
            out[f"model.1.sub.{p[1]}.RDB{p[2][3]}.{p[3]}.0.{p[4]}"] = v
        elif p[0] == "conv_body":
            out[f"model.1.sub.{blocks}.{p[1]}"] = v
        else:
            idx = {"conv_first": 0, "conv_hr": 3 * ups + 2, "conv_last": 3 * ups + 4}.get(p[0])
            out[f"model.{3 * int(p[0][-1]) if idx is None else idx}.{p[1]}"] = v
    return out


@pytest.mark.parametrize("ups,unshuffle,scale", [(2, 1, 4), (2, 2, 2), (1, 1, 2)])
def test_rrdb_both_layouts(tmp_path, ups, unshuffle, scale):
    s = rrdb_state(ups=ups, unshuffle=unshuffle)
    torch.save({"params_ema": s, "params": {k: v * 0 for k, v in s.items()}}, tmp_path / "basicsr.pth")
    torch.save(to_original_layout(s), tmp_path / "original.pth")
    x = torch.rand(1, 3, 8, 12)
    want = rrdb_reference(s, x, unshuffle)
    for name in ("basicsr.pth", "original.pth"):
        found = read_checkpoint(tmp_path / name)
        assert found.scale == scale and found.arch.startswith("ESRGAN"), name
        with torch.no_grad():
            assert torch.allclose(found.module(x), want, atol=1e-5), name


# ---------------------------------------------------------------- SPAN

def span_state(width=8, scale=2, seed=0, norm=True):
    g, s = torch.Generator().manual_seed(seed), {}

    def conv3xc(key, cin, cout):
        _conv(s, f"{key}.sk", cin, cout, k=1, gen=g)
        _conv(s, f"{key}.conv.0", cin, 2 * cin, k=1, gen=g)
        _conv(s, f"{key}.conv.1", 2 * cin, 2 * cout, gen=g)
        _conv(s, f"{key}.conv.2", 2 * cout, cout, k=1, gen=g)
        _conv(s, f"{key}.eval_conv", cin, cout, gen=g)     # stale: inference recomputes it
    conv3xc("conv_1", 3, width)
    for b in range(1, 7):
        for c in (1, 2, 3):
            conv3xc(f"block_{b}.c{c}_r", width, width)
    conv3xc("conv_2", width, width)
    _conv(s, "conv_cat", 4 * width, width, k=1, gen=g)
    _conv(s, "upsampler.0", width, 3 * scale * scale, gen=g)
    if not norm:
        s["no_norm"] = torch.zeros(1)
    return s


def span_reference(s, x, scale, norm=True):
    """The training-time form: every Conv3XC as its branches on a zero-padded input."""
    def c3(key, t):
        branches = _apply(s, f"{key}.conv.2", _apply(s, f"{key}.conv.1", _apply(s, f"{key}.conv.0",
                                                                                F.pad(t, (1, 1, 1, 1)), 0), 0), 0)
        return branches + _apply(s, f"{key}.sk", t, 0)
    if norm:
        x = (x - torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)) * 255.0
    f0 = c3("conv_1", x)
    h, outs = f0, []
    for b in range(1, 7):
        o1 = c3(f"block_{b}.c1_r", h)
        o3 = c3(f"block_{b}.c3_r", F.silu(c3(f"block_{b}.c2_r", F.silu(o1))))
        h = (o3 + h) * (torch.sigmoid(o3) - 0.5)
        outs.append((h, o1))
    cat = torch.cat([f0, c3("conv_2", h), outs[0][0], outs[-1][1]], 1)
    return F.pixel_shuffle(_apply(s, "upsampler.0", _apply(s, "conv_cat", cat, 0)), scale)


@pytest.mark.parametrize("scale,norm", [(2, True), (4, False)])
def test_span(tmp_path, scale, norm):
    s = span_state(scale=scale, norm=norm)
    save_file(s, tmp_path / "span.safetensors")
    found = read_checkpoint(tmp_path / "span.safetensors")
    assert (found.arch, found.scale) == ("SPAN", scale)
    x = torch.rand(1, 3, 10, 7, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = span_reference(s, x, scale, norm)
        err = float((found.module(x) - want).abs().max())
    # fp32 round-off of 20 composed kernels, amplified by random weights through six attention products (a merge
    # that dropped a branch or a bias term is off by the order of the output itself)
    assert err <= 2e-4 * float(want.abs().max()), err


# ---------------------------------------------------------------- bad input

def test_bad_checkpoints_are_one_line_errors(tmp_path):
    s = compact_state()
    torch.save(s, tmp_path / "ok.pth")
    blob = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(blob[: len(blob) // 2])
    cases = {"cut.pth": "unreadable"}
    torch.save({"x": torch.zeros(1), "obj": types.SimpleNamespace(a=1)}, tmp_path / "pickle.pth")
    cases["pickle.pth"] = "unreadable PyTorch checkpoint"
    torch.save({**s, "body.99.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    cases["extra.pth"] = "body"
    missing = dict(s)
    del missing["body.2.bias"]
    torch.save(missing, tmp_path / "missing.pth")
    cases["missing.pth"] = "body.2.bias"
    shaped = dict(s)
    shaped["body.2.weight"] = torch.zeros(8, 8, 5, 5)
    torch.save(shaped, tmp_path / "shape.pth")
    cases["shape.pth"] = "body.2.weight: shape"
    torch.save({"fc.weight": torch.zeros(10, 4), "fc.bias": torch.zeros(10)}, tmp_path / "classifier.pth")
    cases["classifier.pth"] = "not a checkpoint of a supported SR architecture"
    nan = dict(s)
    nan["body.0.bias"] = torch.full_like(s["body.0.bias"], float("nan"))
    torch.save(nan, tmp_path / "nan.pth")
    cases["nan.pth"] = "NaN"
    for name, words in cases.items():
        with pytest.raises(MemsrError) as e:
            read_checkpoint(tmp_path / name)
        msg = str(e.value)
        assert name in msg and words in msg and "\n" not in msg, msg


# ---------------------------------------------------------------- spandrel, where it imports

@pytest.fixture
def spandrel_here(monkeypatch):
    """spandrel imports torchvision, which this machine's CPU torch has no build of: a test double of the two
    names it imports stands in (tests only); the SR architectures never call them."""
    pytest.importorskip("einops")
    tv = {n: types.ModuleType(n) for n in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")}
    f = tv["torchvision.transforms.functional"]
    f.InterpolationMode, f.rotate, f.normalize = object, None, None
    for name, mod in tv.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return pytest.importorskip("spandrel")


def test_spandrel_reads_the_same_compact_and_adds_what_we_lack(tmp_path, spandrel_here):
    from memsr_deploy.foreign import checkpoint
    s = compact_state(scale=2)
    torch.save(s, tmp_path / "c.pth")
    x = torch.rand(1, 3, 9, 8)
    ours = read_checkpoint(tmp_path / "c.pth")
    from memsr_deploy.formats.checkpoint import read_state_dict
    theirs = checkpoint._from_spandrel(read_state_dict(tmp_path / "c.pth")[0], tmp_path / "c.pth")
    with torch.no_grad():
        assert torch.allclose(ours.module(x), theirs.module(x), atol=1e-6)
    # an architecture only spandrel knows (OmniSR-free, small: SAFMN) comes through the same call
    from spandrel.architectures.SAFMN import SAFMN
    net = SAFMN(dim=8, n_blocks=1, upscaling_factor=2)
    torch.save(net.state_dict(), tmp_path / "safmn.pth")
    found = read_checkpoint(tmp_path / "safmn.pth")
    assert found.scale == 2 and "SAFMN" in found.arch and found.hyper == {"spandrel": True}
    with torch.no_grad():
        assert torch.allclose(found.module(x), net.eval()(x), atol=1e-6)


def test_the_profiler_takes_a_foreign_checkpoint_and_other_commands_say_where_it_goes(tmp_path, capsys):
    """memsr-profile exports the checkpoint's network to ONNX in memory and profiles that graph (halo from the
    graph, measured on ONNX Runtime); a command that needs a model description names the family and refuses."""
    import json

    from memsr_deploy.cli.profile import main
    from memsr_deploy.formats.model_file import load_model
    torch.save(compact_state(scale=2), tmp_path / "compact.pth")
    assert main([str(tmp_path / "compact.pth"), "--resolution", "64x48", "--mode", "whole,tiled", "--tile", "16",
                 "--measure", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {r["mode"] for r in rows} == {"whole", "tiled"} and all(r["predicted"] > 0 for r in rows)
    assert rows[0]["model"] == "compact (Compact)" and rows[0]["scale"] == 2
    whole = next(r for r in rows if r["mode"] == "whole")
    assert whole["measured_backend"] == "onnxruntime" and whole["measured"] > 0
    with pytest.raises(MemsrError, match="a Compact checkpoint: it runs on ONNX Runtime"):
        load_model(tmp_path / "compact.pth")


def _spandrel_nets():
    """Tiny random-weight instances of the attention and channel-attention families the issue names, from
    spandrel's own definitions (their keys are what their projects publish)."""
    from spandrel.architectures.DAT import DAT
    from spandrel.architectures.HAT import HAT
    from spandrel.architectures.OmniSR import OmniSR
    from spandrel.architectures.PLKSR import PLKSR
    from spandrel.architectures.RCAN import RCAN
    from spandrel.architectures.SwinIR import SwinIR
    return {
        "SwinIR": lambda: SwinIR(upscale=2, img_size=16, window_size=4, embed_dim=12, depths=[1], num_heads=[2],
                                 mlp_ratio=2, upsampler="pixelshuffledirect", resi_connection="1conv"),
        "HAT": lambda: HAT(upscale=2, img_size=16, window_size=4, embed_dim=12, depths=[1], num_heads=[2],
                           mlp_ratio=2, upsampler="pixelshuffle", compress_ratio=3, squeeze_factor=3),
        "DAT": lambda: DAT(upscale=2, img_size=16, embed_dim=32, depth=[2], num_heads=[2], split_size=[2, 4],
                           expansion_factor=2, upsampler="pixelshuffle"),
        "RCAN": lambda: RCAN(scale=2, n_resgroups=1, n_resblocks=1, n_feats=8, reduction=4),
        "OmniSR": lambda: OmniSR(num_feat=8, block_num=1, up_scale=2, window_size=4, pe=True),
        "PLKSR": lambda: PLKSR(dim=8, n_blocks=2, upscaling_factor=2, kernel_size=7, split_ratio=0.25),
    }


@pytest.mark.parametrize("family", ["SwinIR", "HAT", "DAT", "RCAN", "OmniSR", "PLKSR"])
def test_spandrel_families_load_as_themselves_not_as_edsr(tmp_path, spandrel_here, family):
    """SwinIR, HAT and DAT checkpoints carry BasicSR's conv_first / upsample / conv_last keys and RCAN's carry
    EDSR-PyTorch's head / body / tail keys: the model loader gives them to spandrel, not to EDSR's reader."""
    from memsr_deploy.formats.foreign_graph import foreign_state
    net = _spandrel_nets()[family]().eval()
    torch.save(net.state_dict(), tmp_path / "m.pth")
    assert foreign_state(tmp_path / "m.pth") is not None
    found = read_checkpoint(tmp_path / "m.pth")
    assert found.arch == family and found.scale == 2
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():   # clones: RCAN scales its input in place
        assert torch.allclose(found.module(x.clone()), net(x.clone()), atol=1e-6)


def test_an_edsr_checkpoint_with_a_bad_key_still_gets_edsrs_error(tmp_path, spandrel_here):
    """The spandrel route does not swallow EDSR's own bad-input messages: a key outside EDSR's layout in an EDSR
    checkpoint that spandrel does not recognise is still EDSR's reader's to name."""
    from edsr_reference import EdsrPyTorch, randomise
    from memsr_deploy.formats.checkpoint import import_checkpoint
    from memsr_deploy.formats.foreign_graph import foreign_state
    state = {**randomise(EdsrPyTorch(2, 8, 2), seed=1).state_dict(), "body.0.body.1.weight": torch.zeros(3)}
    torch.save(state, tmp_path / "edsr.pt")
    assert foreign_state(tmp_path / "edsr.pt") is None
    with pytest.raises(MemsrError, match="'body.0.body.1.weight'"):
        import_checkpoint(tmp_path / "edsr.pt")


def test_rcan_checkpoint_upscales_through_the_runtime(tmp_path, spandrel_here):
    """The whole path of `memsr-upscale --model rcan.pth`: exported to ONNX, no finite radius (channel
    attention pools the image), whole images equal to PyTorch's."""
    import numpy as np

    from memsr_deploy.runtime import RunOptions, Upscaler, open_backend
    net = _spandrel_nets()["RCAN"]().eval()
    torch.save(net.state_dict(), tmp_path / "rcan.pth")
    backend = open_backend(model=tmp_path / "rcan.pth")
    assert "no finite receptive radius" in backend.approximate
    img = np.random.default_rng(0).random((20, 24, 3), dtype=np.float32)
    out = Upscaler(backend, RunOptions(tile=0)).upscale_array(img)
    with torch.no_grad():
        ref = net(torch.from_numpy(img.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def _large_weights(net):
    """Weights re-drawn large enough that the outermost pixel of the receptive radius shows in float32."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.3)
    return net


def test_plksr_checkpoint_tiles_exactly_with_the_graphs_halo(tmp_path, spandrel_here):
    """PLKSR writes its large-kernel conv's output back into some channels in place (ScatterND in the graph): the
    radius walk follows it, so `memsr-upscale --model plksr.pth` tiles exactly."""
    import numpy as np

    from memsr_deploy.runtime import RunOptions, Upscaler, open_backend
    net = _large_weights(_spandrel_nets()["PLKSR"]().eval())
    torch.save(net.state_dict(), tmp_path / "plksr.pth")
    backend = open_backend(model=tmp_path / "plksr.pth")
    assert backend.approximate is None and backend.caps.halo == 1 + 2 * (1 + 3 + 1) + 1   # head, 2 blocks, tail
    img = np.random.default_rng(0).random((40, 44, 3), dtype=np.float32)
    whole = Upscaler(backend, RunOptions(tile=0)).upscale_array(img)
    np.testing.assert_allclose(Upscaler(backend, RunOptions(tile=8)).upscale_array(img), whole, atol=1e-5)
    short = Upscaler(backend, RunOptions(tile=8, halo=backend.caps.halo - 1)).upscale_array(img)
    assert np.abs(short - whole).max() > 1e-3


@pytest.mark.parametrize("family", ["compact", "span", "esrgan"])
def test_the_halo_derived_from_each_familys_graph_is_the_least_exact_one(family):
    """Tiles with the halo walked from the exported graph equal the whole image on ONNX Runtime; one pixel less
    does not. Weights re-drawn large: the checkpoints' own small ones let the outermost pixel vanish in float32."""
    import numpy as np
    import onnxruntime as ort

    from memsr_deploy.formats.onnx_graph import model_to_onnx
    from memsr_deploy.formats.receptive_field import radius
    from memsr_deploy.formats.tile_plan import plan
    state = {"compact": lambda: compact_state(scale=2), "span": lambda: span_state(width=8, scale=2, norm=False),
             "esrgan": lambda: rrdb_state(width=8, growth=4, blocks=1, ups=1)}[family]()
    net = _large_weights(read_checkpoint("x.pth", state=state).module)
    graph = model_to_onnx(net, channels=3)
    halo = radius(graph).halo
    sess = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    h, w = 3 * 8 + 2 * halo, 3 * 8 + 2 * halo + 3     # a middle tile whose window touches no border
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    whole = sess.run(None, {name: x})[0]

    def error(halo_used):
        out = np.zeros_like(whole)
        for t in plan(h, w, 8, halo_used):
            ys, xs = t.window()
            y = sess.run(None, {name: np.ascontiguousarray(x[:, :, ys, xs])})[0]
            out[(slice(None), slice(None), *t.dest(2))] = y[(slice(None), slice(None), *t.crop(2))]
        return float(np.abs(out - whole).max() / np.abs(whole).max())
    assert error(halo) < 1e-6 and error(halo - 1) > 2e-6, (halo, error(halo), error(halo - 1))


def test_a_restoration_model_spandrel_detects_is_refused_as_not_sr(tmp_path, spandrel_here, capsys):
    """DnCNN (a denoiser, x1) is an architecture spandrel knows, not a super-resolution model: one line, exit
    non-zero, nothing written."""
    from spandrel.architectures.DnCNN import DnCNN

    from test_runtime_cli import one_error_line, run, save_png
    torch.save(DnCNN(in_nc=3, out_nc=3, nc=8, nb=17).state_dict(), tmp_path / "dncnn.pth")   # the 17 layers it detects by
    with pytest.raises(MemsrError, match="DnCNN .*x1, not single-image super-resolution"):
        read_checkpoint(tmp_path / "dncnn.pth")
    save_png(tmp_path / "in.png")
    rc, err = run(capsys, tmp_path / "in.png", "--model", tmp_path / "dncnn.pth", "-o", tmp_path / "o.png")
    assert rc == 2 and not (tmp_path / "o.png").exists()
    one_error_line(err, "dncnn.pth", "not single-image super-resolution")


def test_a_swinir_like_checkpoint_without_spandrel_names_the_key_edsr_lacks(tmp_path, capsys):
    """Without spandrel, a checkpoint that shares some of EDSR's key names (SwinIR's conv_first, upsample,
    conv_last) is refused naming its first key outside EDSR's layout, not with an EDSR shape complaint."""
    from test_runtime_cli import one_error_line, run, save_png
    g = torch.Generator().manual_seed(0)
    state = {}
    _conv(state, "conv_first", 3, 12, gen=g)
    state["layers.0.residual_group.blocks.0.norm1.weight"] = torch.ones(12)
    _conv(state, "conv_after_body", 12, 12, gen=g)
    _conv(state, "upsample.0", 12, 12, gen=g)
    _conv(state, "conv_last", 12, 3, gen=g)
    torch.save(state, tmp_path / "swinir.pth")
    save_png(tmp_path / "in.png")
    with pytest.MonkeyPatch.context() as mp:   # spandrel absent, whatever this machine has
        mp.setitem(sys.modules, "spandrel", None)
        rc, err = run(capsys, tmp_path / "in.png", "--model", tmp_path / "swinir.pth", "-o", tmp_path / "o.png")
    assert rc == 2 and not (tmp_path / "o.png").exists()
    one_error_line(err, "swinir.pth", "'layers.0.residual_group.blocks.0.norm1.weight'", "not an EDSR checkpoint",
                   "spandrel")
