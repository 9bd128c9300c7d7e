"""The halo derived from an ONNX graph is exact: tiles with it equal the whole image, one pixel less does not.

Each graph is written here with onnx.helper (random weights: the halo does not depend on them) in the shape of a
published SR family, and run on ONNX Runtime whole and in tiles."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from memsr_deploy.formats.receptive_field import radius

ort = pytest.importorskip("onnxruntime")


class Graph:
    def __init__(self, seed=0, channels=3):
        self.nodes, self.inits, self.rng, self.n = [], [], np.random.default_rng(seed), 0
        self.channels = channels

    def _name(self, p):
        self.n += 1
        return f"{p}{self.n}"

    def const(self, arr):
        name = self._name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(self, op, inputs, **attrs):
        out = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(self, x, cin, cout, k=3, stride=1, dilation=1, pad=None, group=1):
        pad = dilation * (k - 1) // 2 if pad is None else pad
        w = self.const((self.rng.standard_normal((cout, cin // group, k, k)) / np.sqrt(cin * k * k)).astype(np.float32))
        b = self.const((0.1 * self.rng.standard_normal(cout)).astype(np.float32))
        return self.op("Conv", [x, w, b], kernel_shape=[k, k], strides=[stride, stride], dilations=[dilation] * 2,
                       pads=[pad] * 4, group=group)

    def deconv(self, x, cin, cout, k, stride, pad, out_pad):
        w = self.const((self.rng.standard_normal((cin, cout, k, k)) / np.sqrt(cin * k)).astype(np.float32))
        return self.op("ConvTranspose", [x, w], kernel_shape=[k, k], strides=[stride] * 2, pads=[pad] * 4,
                       output_padding=[out_pad] * 2)

    def prelu(self, x, c):
        return self.op("PRelu", [x, self.const(np.full((c, 1, 1), 0.25, np.float32))])

    def resize(self, x, f, mode, coord="half_pixel"):
        scales = self.const(np.array([1, 1, f, f], np.float32))
        return self.op("Resize", [x, "", scales], mode=mode, coordinate_transformation_mode=coord)

    def model(self, out) -> onnx.ModelProto:
        inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, self.channels, "H", "W"])
        outp = helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, None, None, None])
        g = helper.make_graph(self.nodes, "g", [inp], [outp], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def espcn(g):            # plain chain, tanh, pixel shuffle x3 (Y-only, as published)
    h = g.op("Tanh", [g.conv("x", 1, 8, k=5)])
    h = g.op("Tanh", [g.conv(h, 8, 6)])
    return g.op("DepthToSpace", [g.conv(h, 6, 9)], blocksize=3, mode="CRD")


def edsr(g):             # residual blocks, long skip, EDSR's upsampler x4 (conv after each shuffle)
    h0 = g.conv("x", 3, 6)
    h = h0
    for _ in range(2):
        h = g.op("Add", [h, g.conv(g.op("Relu", [g.conv(h, 6, 6)]), 6, 6)])
    h = g.op("Add", [g.conv(h, 6, 6), h0])
    for _ in range(2):
        h = g.op("DepthToSpace", [g.conv(h, 6, 24)], blocksize=2, mode="CRD")
    return g.conv(h, 6, 3)


def fsrcnn(g):           # 5x5 feature conv, 1x1 shrink / expand, PReLU, ConvTranspose tail (k9 s2)
    h = g.prelu(g.conv("x", 1, 8, k=5), 8)
    h = g.prelu(g.conv(h, 8, 4, k=1), 4)
    h = g.prelu(g.conv(h, 4, 4), 4)
    h = g.prelu(g.conv(h, 4, 8, k=1), 8)
    return g.deconv(h, 8, 1, k=9, stride=2, pad=4, out_pad=1)


def compact(g):          # SRVGGNetCompact: plain convs + PReLU, shuffle, nearest-upsampled image added
    h = g.prelu(g.conv("x", 3, 8), 8)
    for _ in range(3):
        h = g.prelu(g.conv(h, 8, 8), 8)
    out = g.op("DepthToSpace", [g.conv(h, 8, 12)], blocksize=2, mode="CRD")
    return g.op("Add", [out, g.resize("x", 2, "nearest", "asymmetric")])


def rrdb_unshuffle(g):   # Real-ESRGAN x2: pixel unshuffle, dense block with concat + LeakyReLU, nearest x2 twice
    x = g.op("SpaceToDepth", ["x"], blocksize=2)
    f0 = g.conv(x, 12, 6)
    f1 = g.op("LeakyRelu", [g.conv(f0, 6, 4)], alpha=0.2)
    f2 = g.op("LeakyRelu", [g.conv(g.op("Concat", [f0, f1], axis=1), 10, 4)], alpha=0.2)
    h = g.op("Add", [f0, g.conv(g.op("Concat", [f0, f1, f2], axis=1), 14, 6)])
    for _ in range(2):
        h = g.op("LeakyRelu", [g.conv(g.resize(h, 2, "nearest", "asymmetric"), 6, 6)], alpha=0.2)
    return g.conv(h, 6, 3)


def strided_dilated(g):  # a stride-2 conv, a dilated conv, and a linear / cubic resize back up
    h = g.op("Relu", [g.conv("x", 3, 6, k=3, stride=2)])
    h = g.op("Relu", [g.conv(h, 6, 6, dilation=2)])
    h = g.conv(g.resize(h, 2, "linear"), 6, 6)
    return g.resize(g.conv(h, 6, 3), 2, "cubic")


def tokens(g):           # transformer-style: channels-last LayerNorm + Linear (MatMul), shuffle, crop back to
    #                        2H x 2W with ends computed from the input's Shape
    h = g.conv("x", 3, 6)
    t = g.op("LayerNormalization", [g.op("Transpose", [h], perm=[0, 2, 3, 1]), g.const(np.ones(6, np.float32)),
                                    g.const(np.zeros(6, np.float32))], axis=-1)
    t = g.op("MatMul", [t, g.const(g.rng.standard_normal((6, 6)).astype(np.float32))])
    h = g.op("Add", [h, g.op("Transpose", [g.op("Relu", [t])], perm=[0, 3, 1, 2])])
    out = g.op("DepthToSpace", [g.conv(h, 6, 12)], blocksize=2, mode="CRD")
    ends = g.op("Mul", [g.op("Shape", ["x"], start=2, end=4), g.const(np.array(2, np.int64))])
    return g.op("Slice", [out, g.const(np.zeros(2, np.int64)), ends, g.const(np.array([2, 3], np.int64))])


def plksr_split(g):      # PLKSR: a 7x7 conv on the first channels written back in place (x[:, :2] = conv(x[:, :2]),
    #                        exported as ScatterND on the batch and channel axes), then a 3x3 conv and a shuffle
    h = g.conv("x", 3, 8)
    first = g.op("Slice", [h, g.const(np.array([0], np.int64)), g.const(np.array([2], np.int64)),
                           g.const(np.array([1], np.int64))])
    idx = g.const(np.array([[[0, 0], [0, 1]]], np.int64))
    h = g.op("ScatterND", [h, idx, g.conv(first, 2, 2, k=7)])
    return g.op("DepthToSpace", [g.conv(h, 8, 12)], blocksize=2, mode="CRD")


FINITE = {"espcn": (espcn, 1), "edsr": (edsr, 3), "fsrcnn": (fsrcnn, 1), "compact": (compact, 3),
          "rrdb_unshuffle": (rrdb_unshuffle, 3), "strided_dilated": (strided_dilated, 3),
          "tokens": (tokens, 3), "plksr_split": (plksr_split, 3)}


def _windows(length, core, halo, align):
    """Per core tile: (window start, window end, core start); windows aligned (rounded toward the core: at most
    ``halo`` pixels of context), inside the image."""
    out = []
    for cs in range(0, length, core):
        ws = max(0, -(-(cs - halo) // align) * align)
        we = min(length, (cs + core + halo) // align * align)
        out.append((ws, we, cs))
    return out


def _tiled_error(sess, x, halo, align, core, scale):
    whole = sess.run(None, {"x": x})[0]
    worst = 0.0
    H, W = x.shape[2:]
    for ys, ye, cy in _windows(H, core, halo, align):
        for xs, xe, cx in _windows(W, core, halo, align):
            out = sess.run(None, {"x": x[:, :, ys:ye, xs:xe]})[0]
            oy, ox = (cy - ys) * scale, (cx - xs) * scale
            got = out[:, :, oy:oy + core * scale, ox:ox + core * scale]
            want = whole[:, :, cy * scale:(cy + core) * scale, cx * scale:(cx + core) * scale]
            worst = max(worst, float(np.abs(got - want).max()))
    return worst


@pytest.mark.parametrize("family", sorted(FINITE))
def test_the_derived_halo_is_exact_and_one_less_is_not(family):
    build, channels = FINITE[family]
    g = Graph(seed=len(family), channels=channels)
    model = g.model(build(g))
    r = radius(model)
    assert r.finite, r.reason
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    core = 4 * r.align
    size = 3 * core + 2 * r.halo * r.align   # a middle tile whose window touches no border on either side
    x = rng.random((1, channels, size, size + r.align * 2), dtype=np.float32)
    assert _tiled_error(sess, x, r.halo, r.align, core, r.scale) < 1e-5
    assert _tiled_error(sess, x, r.halo - 1, r.align, core, r.scale) > 1e-4


def test_known_halos_and_scales():
    for build, channels, halo, scale, align in [(espcn, 1, 4, 3, 1), (edsr, 3, 8, 4, 1), (rrdb_unshuffle, 3, 10, 2, 2)]:
        g = Graph(channels=channels)
        r = radius(g.model(build(g)))
        assert (r.halo, r.scale, r.align) == (halo, scale, align), build.__name__


def test_the_one_conv_pixel_shuffle_tail_adds_one_lr_pixel():
    # the shuffle reads one LR pixel per output pixel: halo = number of 3x3 convs, not one more
    g = Graph()
    h = g.conv(g.conv("x", 3, 4), 4, 12)
    assert radius(g.model(g.op("DepthToSpace", [h], blocksize=2, mode="CRD"))).halo == 2


def _channel_attention(g):     # RCAN / IMDN style: x * sigmoid(conv(GAP(x)))
    h = g.conv("x", 3, 4)
    a = g.op("Sigmoid", [g.conv(g.op("GlobalAveragePool", [h]), 4, 4, k=1)])
    return g.op("DepthToSpace", [g.conv(g.op("Mul", [h, a]), 4, 12)], blocksize=2, mode="CRD")


def _instance_norm(g):
    h = g.conv("x", 3, 4)
    h = g.op("InstanceNormalization", [h, g.const(np.ones(4, np.float32)), g.const(np.zeros(4, np.float32))])
    return g.op("DepthToSpace", [g.conv(h, 4, 12)], blocksize=2, mode="CRD")


def _mean_over_hw(g):
    h = g.conv("x", 3, 12)
    m = g.op("ReduceMean", [h], axes=[2, 3], keepdims=1)
    return g.op("DepthToSpace", [g.op("Sub", [h, m])], blocksize=2, mode="CRD")


def _padded_to_a_multiple(g):   # reflect-pad to a multiple of 4 (sizes from Shape and Div), conv, crop back
    hw = g.op("Shape", ["x"], start=2, end=4)
    four = g.const(np.array(4, np.int64))
    padded = g.op("Mul", [g.op("Div", [g.op("Add", [hw, g.const(np.array(3, np.int64))]), four]), four])
    pads = g.op("Concat", [g.const(np.zeros(6, np.int64)), g.op("Sub", [padded, hw])], axis=0)
    out = g.op("DepthToSpace", [g.conv(g.op("Pad", ["x", pads], mode="reflect"), 3, 12)], blocksize=2, mode="CRD")
    ends = g.op("Mul", [hw, g.const(np.array(2, np.int64))])
    return g.op("Slice", [out, g.const(np.zeros(2, np.int64)), ends, g.const(np.array([2, 3], np.int64))])


def _attention(g):       # non-local attention: pixels flattened into a sequence, softmax(q k^T) v
    h = g.conv("x", 3, 4)
    flat = g.op("Reshape", [h, g.const(np.array([1, 4, -1], np.int64))])
    scores = g.op("MatMul", [g.op("Transpose", [flat], perm=[0, 2, 1]), flat])
    mixed = g.op("MatMul", [flat, g.op("Transpose", [g.op("Softmax", [scores], axis=-1)], perm=[0, 2, 1])])
    back = g.op("Reshape", [mixed, g.op("Shape", [h])])
    return g.op("DepthToSpace", [g.conv(back, 4, 12)], blocksize=2, mode="CRD")


def _roll(g):            # a cyclic shift of the rows (torch.roll): the last rows come round to the top
    h = g.conv("x", 3, 12)
    axis = g.const(np.array([2], np.int64))
    tail = g.op("Slice", [h, g.const(np.array([-2], np.int64)), g.const(np.array([2 ** 62], np.int64)), axis])
    head = g.op("Slice", [h, g.const(np.array([0], np.int64)), g.const(np.array([-2], np.int64)), axis])
    return g.op("DepthToSpace", [g.op("Concat", [tail, head], axis=2)], blocksize=2, mode="CRD")


def _layer_norm_over_chw(g):   # LayerNormalization from axis 1 normalises over C, H and W
    h = g.conv("x", 3, 12)
    h = g.op("LayerNormalization", [h, g.const(np.ones((12, 1, 1), np.float32)),
                                    g.const(np.zeros((12, 1, 1), np.float32))], axis=1)
    return g.op("DepthToSpace", [h], blocksize=2, mode="CRD")


@pytest.mark.parametrize("build,op", [(_channel_attention, "GlobalAveragePool"), (_instance_norm,
                                      "InstanceNormalization"), (_mean_over_hw, "ReduceMean"),
                                      (_attention, "attention"), (_roll, "far end"),
                                      (_layer_norm_over_chw, "LayerNormalization"), (_padded_to_a_multiple, "Pad")])
def test_ops_that_see_the_whole_image_have_no_finite_radius(build, op):
    g = Graph()
    r = radius(g.model(build(g)))
    assert r.halo is None and r.reason.startswith("no finite receptive radius") and op in r.reason


def test_a_pad_to_a_multiple_computed_from_the_size_resolves_in_the_liveness_walk():
    """onnx's shape inference does not evaluate the Div of a pad to a multiple (onnx_shapes does): the walk gets
    every shape, at a size that is not a multiple."""
    from memsr_deploy.formats.onnx_liveness import graph_of
    g = Graph()
    model = g.model(_padded_to_a_multiple(g))
    walked = graph_of(model, 37, 53)
    pad = next(n for n in walked.nodes if n.op == "pad")
    assert walked.shapes[pad.outputs[0]] == (1, 3, 40, 56) and walked.shapes[walked.outputs[0]] == (1, 3, 74, 106)


def test_an_op_the_walk_does_not_know_is_named():
    g = Graph()
    h = g.conv("x", 3, 12)
    shape = g.const(np.array([1, 12, -1], np.int64))
    flat = g.op("Reshape", [h, shape])
    back = g.op("Reshape", [flat, g.op("Shape", [h])])
    r = radius(g.model(g.op("DepthToSpace", [back], blocksize=2, mode="CRD")))
    assert r.halo is None and r.reason.startswith("receptive radius unknown") and "Reshape" in r.reason


def test_memsr_students_graph_gives_their_description_halo(tiny_plain_path):
    from memsr_deploy.formats.model_file import load_plain_arrays
    from memsr_deploy.formats.onnx_graph import build_fp32
    desc, convs = load_plain_arrays(tiny_plain_path)
    r = radius(build_fp32(desc, convs))
    assert (r.halo, r.scale, r.align) == (desc.receptive_radius, desc.scale, 1)


def test_the_profiler_tiles_a_foreign_onnx_with_the_graphs_halo(tmp_path, capsys):
    import json

    from memsr_deploy.cli.profile import main
    g = Graph()
    onnx.save(g.model(edsr(g)), tmp_path / "edsr.onnx")
    g = Graph()
    onnx.save(g.model(_channel_attention(g)), tmp_path / "rcan.onnx")

    def rows(*flags):
        assert main([str(tmp_path / "edsr.onnx"), str(tmp_path / "rcan.onnx"), "--resolution", "64x48",
                     "--mode", "tiled", "--tile", "16", "--json", *flags]) == 0
        return {r["model"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    by = rows()
    assert by["edsr"]["predicted"] > 0 and "approximate" not in by["edsr"]["note"]
    assert by["rcan"]["predicted"] is None
    assert "no finite receptive radius" in by["rcan"]["note"] and "GlobalAveragePool" in by["rcan"]["note"]
    assert "--halo" in by["rcan"]["note"]
    by = rows("--halo", "3")
    assert by["rcan"]["predicted"] > 0 and by["rcan"]["note"].count("approximate") == 1
    assert "under the exact 8" in by["edsr"]["note"]


def test_a_teachers_exported_graph_gives_its_description_halo():
    """torch's exporter writes the teacher's image anchor (repeat_interleave over channels) as Unsqueeze, Expand
    and Reshape: reshapes that leave the image axes whole are followed."""
    from memsr_deploy.formats.onnx_graph import model_to_onnx
    from memsr_deploy.method.models import ResidualSR, TeacherConfig
    teacher = ResidualSR(TeacherConfig(scale=2, width=4, blocks=1, anchor=True))
    r = radius(model_to_onnx(teacher))
    assert (r.halo, r.scale) == (teacher.receptive_radius, 2)


def test_a_resize_to_the_images_own_size_has_no_finite_radius():
    """RFDN's spatial attention: pool, then resize back to the size Shape reads off the image."""
    g = Graph()
    h = g.conv("x", 3, 4)
    small = g.op("MaxPool", [g.conv(h, 4, 4, stride=2, pad=0)], kernel_shape=[7, 7], strides=[3, 3])
    size = g.op("Shape", [h])
    back = g.op("Resize", [small, "", "", size], mode="linear")
    out = g.op("DepthToSpace", [g.conv(g.op("Mul", [h, g.op("Sigmoid", [back])]), 4, 12)], blocksize=2, mode="CRD")
    r = radius(g.model(out))
    assert r.halo is None and r.reason.startswith("no finite receptive radius") and "Resize" in r.reason
