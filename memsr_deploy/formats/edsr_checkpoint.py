"""EDSR state dicts (EDSR-PyTorch's and BasicSR's key layouts) as memsr teachers with EDSR's upsampler tail.

EDSR (Lim et al. 2017): a MeanShift (1x1 conv subtracting the RGB mean on 0..rgb_range pixels), a head conv,
B residual blocks (conv-ReLU-conv scaled by res_scale), a body conv and the long skip, the upsampler (per factor
of the scale a conv to W*f*f channels and a pixel shuffle by f; x4 = two x2 stages), a conv to RGB at the output
size, and the MeanShift back. Two key layouts are in use:

* EDSR-PyTorch: ``sub_mean``, ``head.0``, ``body.N.body.{0,2}``, ``body.B`` (the body conv), ``tail.0.{0,2}``
  (the upsampler's convs), ``tail.1``, ``add_mean``. Both MeanShifts are conv weights of the file and are read
  from it (weight = 1/std on the diagonal, bias = -+rgb_range * mean / std).
* BasicSR: ``conv_first``, ``body.N.conv1/conv2``, ``conv_after_body``, ``upsample.{0,2}``, ``conv_last``; its
  mean (0.4488, 0.4371, 0.4040) and img_range 255 are constants of the architecture.

Width, blocks and scale come from the keys and shapes. res_scale is not stored: both projects use 0.1 for the
256-wide full model and 1 for the baseline, the default here; ``res_scale`` overrides it. The memsr teacher
takes [0, 1] pixels like every memsr model: InputSpec(value_range 1, mean = rgb_mean, norm = 1 / rgb_range),
which normalises exactly as EDSR does on rgb_range pixels (xn = rgb_range * x - rgb_range * mean) and returns
EDSR's output divided by rgb_range.
"""
from __future__ import annotations

import math
import re

from ..errors import MemsrError
from ..method import plain_layout

BASICSR_MEAN = (0.4488, 0.4371, 0.4040)   # EDSR's DIV2K RGB mean (both projects)
FULL_WIDTH, FULL_RES_SCALE = 256, 0.1

LAYOUTS = {
    "EDSR-PyTorch": dict(head="head.0", conv1="body.{i}.body.0", conv2="body.{i}.body.2", body="body.{n}",
                         up="tail.0.{j}", tail="tail.1", means=("sub_mean", "add_mean"),
                         pattern=r"(sub_mean|add_mean|head\.0|body\.\d+\.body\.[02]|body\.\d+|tail\.0\.\d+|tail\.1)"
                                 r"\.(weight|bias)"),
    "BasicSR": dict(head="conv_first", conv1="body.{i}.conv1", conv2="body.{i}.conv2", body="conv_after_body",
                    up="upsample.{j}", tail="conv_last", means=(),
                    pattern=r"(conv_first|body\.\d+\.conv[12]|conv_after_body|upsample\.\d+|conv_last)\.(weight|bias)"),
}


def default_res_scale(width: int) -> float:
    return FULL_RES_SCALE if width >= FULL_WIDTH else 1.0


def _layout_of(state: dict, path) -> str:
    owner = {k: next((name for name, L in LAYOUTS.items() if re.fullmatch(L["pattern"], k)), None) for k in state}
    found = [name for name in LAYOUTS if name in owner.values()]
    if not found:
        raise MemsrError(f"not an EDSR checkpoint (first key {next(iter(state))!r}); supported: "
                         f"{_supported()}", path)
    if len(found) > 1:
        main = max(found, key=lambda n: sum(v == n for v in owner.values()))
        other = next(k for k, v in owner.items() if v not in (main, None))
        raise MemsrError(f"keys of two layouts mixed: key {other!r} is {owner[other]}'s, the others "
                         f"{main}'s", path)
    stray = next((k for k, v in owner.items() if v is None), None)
    if stray is not None:   # SwinIR, HAT, DAT and RCAN share some of EDSR's key names: say which key is not
        raise MemsrError(f"key {stray!r} is not in EDSR's {found[0]} layout: not an EDSR checkpoint (other SR "
                         "architectures load through spandrel where it imports)", path)
    return found[0]


def is_edsr(state: dict, every: bool = False) -> bool:
    """Whether any key (``every``: every key) of ``state`` belongs to one of EDSR's layouts."""
    test = all if every else any
    return test(any(re.fullmatch(L["pattern"], k) for L in LAYOUTS.values()) for k in state)


def _supported() -> str:
    from .checkpoint import SUPPORTED
    return SUPPORTED


def _need(state: dict, key: str, path):
    if key not in state:
        raise MemsrError(f"missing key {key!r}", path)
    return state[key]


def _expected(L: dict, width: int, blocks: int, scale: int) -> dict[str, tuple]:
    """Every key of the layout and its shape, in the order of the network."""
    C = width
    convs = [(L["head"], 3, C)]
    for i in range(blocks):
        convs += [(L["conv1"].format(i=i), C, C), (L["conv2"].format(i=i), C, C)]
    convs.append((L["body"].format(n=blocks), C, C))
    for j, f in enumerate(plain_layout.scale_factors(scale)):
        convs.append((L["up"].format(j=2 * j), C, C * f * f))   # conv, then the shuffle at index 2j + 1
    convs.append((L["tail"], C, 3))
    out = {}
    for m in L["means"][:1]:
        out.update({f"{m}.weight": (3, 3, 1, 1), f"{m}.bias": (3,)})
    for name, cin, cout in convs:
        out.update({f"{name}.weight": (cout, cin, 3, 3), f"{name}.bias": (cout,)})
    for m in L["means"][1:]:
        out.update({f"{m}.weight": (3, 3, 1, 1), f"{m}.bias": (3,)})
    return out


def _infer(state: dict, L: dict, path) -> tuple[int, int, int, str]:
    """(width, blocks, scale, the key the scale was read from)."""
    head = _need(state, f"{L['head']}.weight", path)
    if head.dim() != 4 or tuple(head.shape[1:]) != (3, 3, 3):
        raise MemsrError(f"key {L['head']}.weight has shape {tuple(head.shape)}; an RGB EDSR's head is "
                         "(width, 3, 3, 3)", path)
    width = int(head.shape[0])
    blocks = 0
    while f"{L['conv1'].format(i=blocks)}.weight" in state:
        blocks += 1
    stages = []
    while f"{L['up'].format(j=2 * len(stages))}.weight" in state:
        key = f"{L['up'].format(j=2 * len(stages))}.weight"
        w = state[key]
        ratio = w.shape[0] / width if w.dim() == 4 else 0
        f = {4: 2, 9: 3}.get(ratio)
        if f is None:
            raise MemsrError(f"key {key} has shape {tuple(w.shape)}: not an upsampler stage of a {width}-wide "
                             "EDSR (width * 4 or width * 9 output channels)", path)
        stages.append(f)
    first_up = f"{L['up'].format(j=0)}.weight"
    _need(state, first_up, path)
    scale = {(2,): 2, (3,): 3, (2, 2): 4}.get(tuple(stages))
    if scale is None:
        raise MemsrError(f"upsampler stages {stages} (from key {first_up}) are not EDSR's x2, x3 or x4", path)
    return width, blocks, scale, first_up


def _check_tensors(state: dict, expected: dict, path, what: str) -> None:
    import torch
    for k, v in state.items():                 # the file's order: the first bad key is the one reported
        if k not in expected:
            raise MemsrError(f"unexpected key {k!r} for {what}", path)
        if tuple(v.shape) != expected[k]:
            raise MemsrError(f"key {k!r} has shape {tuple(v.shape)}, {what} needs {expected[k]}", path)
        if not v.is_floating_point():
            raise MemsrError(f"key {k!r} is {v.dtype}, not floating point", path)
        if not bool(torch.isfinite(v).all()):
            raise MemsrError(f"key {k!r} holds NaN or infinite values", path)
    for k in expected:
        if k not in state:
            raise MemsrError(f"missing key {k!r} for {what}", path)


def _mean_shift(state: dict, name: str, path, positive: bool):
    """(diagonal, bias) of a MeanShift 1x1 conv, float64; refused unless it is per-channel."""
    import torch
    w = state[f"{name}.weight"].double().reshape(3, 3)
    d = torch.diagonal(w)
    if bool((w - torch.diag(d)).abs().max() > 0) or not bool((d > 0).all() if positive else (d != 0).all()):
        raise MemsrError(f"key {name}.weight is not a per-channel MeanShift (a diagonal {'positive ' if positive else ''}"
                         "1x1 conv)", path)
    return d, state[f"{name}.bias"].double()


def _rgb_range(mean_pixels) -> float:
    """EDSR-PyTorch stores rgb_range * mean; with EDSR's mean, the ratio says the range (255 or 1)."""
    ratios = [m / r for m, r in zip(mean_pixels, BASICSR_MEAN)]
    for rng in (255.0, 1.0):
        if all(abs(q / rng - 1) < 0.01 for q in ratios):
            return rng
    return 255.0


def teacher_from_state(state: dict, path, scale: int | None = None, res_scale: float | None = None):
    """(ResidualSR with EDSR's upsampler tail, facts for the provenance). Raises MemsrError naming the file
    and the first bad key."""
    import torch

    from ..method import models
    from ..method.input_spec import InputSpec
    layout = _layout_of(state, path)
    L = LAYOUTS[layout]
    width, blocks, found_scale, scale_key = _infer(state, L, path)
    if scale is not None and scale != found_scale:
        raise MemsrError(f"is an x{found_scale} EDSR (key {scale_key} has {width} x "
                         f"{found_scale if found_scale != 4 else 2}^2 channels), but x{scale} was asked for", path)
    what = f"a {width}-wide {blocks}-block x{found_scale} EDSR in {layout} layout"
    _check_tensors(state, _expected(L, width, blocks, found_scale), path, what)
    rs = default_res_scale(width) if res_scale is None else float(res_scale)
    if not (math.isfinite(rs) and rs > 0):
        raise MemsrError(f"res_scale must be a finite number > 0, got {res_scale!r}", path)

    head_gain = out_gain = out_shift = None
    if layout == "BasicSR":
        rgb_range, mean = 255.0, BASICSR_MEAN
    else:
        d, e = _mean_shift(state, "sub_mean", path, positive=True)
        a, b = _mean_shift(state, "add_mean", path, positive=False)
        mu = -e / d                                  # the mean in rgb_range units: xn = d * (x - mu)
        rgb_range = _rgb_range(mu.tolist())
        mean = tuple(float(m) / rgb_range for m in mu)
        if bool((d != 1).any()):
            head_gain = d                            # 1/std per input channel, into the head (exact at borders)
        if bool((a != 1).any()) or bool((b != mu).any()):
            out_gain, out_shift = a, b - mu          # add_mean(t) = a t + b; the teacher adds mu itself
    cfg = models.TeacherConfig(scale=found_scale, width=width, blocks=blocks, res_scale=rs, anchor=False,
                               input=InputSpec(1.0, mean, 1.0 / rgb_range), tail="upsampler")
    model = models.ResidualSR(cfg)
    conv = lambda name: (state[f"{name}.weight"], state[f"{name}.bias"])  # noqa: E731
    pairs = [(model.head, conv(L["head"]))]
    for i, block in enumerate(model.blocks):
        pairs += [(block.conv1, conv(L["conv1"].format(i=i))), (block.conv2, conv(L["conv2"].format(i=i)))]
    pairs.append((model.body_conv, conv(L["body"].format(n=blocks))))
    pairs += [(m, conv(L["up"].format(j=2 * j))) for j, m in enumerate(model.upsample)]
    pairs.append((model.tail, conv(L["tail"])))
    with torch.no_grad():
        for module, (w, bias) in pairs:
            module.weight.copy_(w)
            module.bias.copy_(bias)
        if head_gain is not None:
            model.head.weight.copy_((model.head.weight.double() * head_gain[None, :, None, None]).float())
        if out_gain is not None:
            t = model.tail
            t.weight.copy_((t.weight.double() * out_gain[:, None, None, None]).float())
            t.bias.copy_((t.bias.double() * out_gain + out_shift).float())
    info = {"layout": layout, "width": width, "blocks": blocks, "scale": found_scale, "res_scale": rs,
            "res_scale_rule": "given" if res_scale is not None else
            f"not stored in checkpoints: {FULL_RES_SCALE} for {FULL_WIDTH}-wide (EDSR's full model), else 1",
            "rgb_range": rgb_range, "rgb_mean": [round(m, 8) for m in mean],
            "mean_source": "the constants of BasicSR's EDSR" if layout == "BasicSR" else
            "read from the checkpoint's sub_mean / add_mean"}
    return model.eval(), info


def edsr_input():
    """EDSR's normalisation as a memsr InputSpec: [0, 1] pixels, DIV2K mean, x255 (both projects' default)."""
    from ..method.input_spec import InputSpec
    return InputSpec(1.0, BASICSR_MEAN, 1.0 / 255.0)


def state_from_teacher(teacher, layout: str = "EDSR-PyTorch") -> dict:
    """A memsr teacher with EDSR's upsampler as a state dict of ``layout`` (teacher_from_state's inverse), so a
    teacher trained here loads wherever EDSR checkpoints do. EDSR-PyTorch's MeanShifts express any memsr input
    normalisation on 0..255 pixels; BasicSR's mean and range are constants, so only EDSR's own normalisation
    (edsr_input()) fits it."""
    import torch
    cfg = teacher.cfg
    if getattr(cfg, "tail", "shuffle") != "upsampler" or cfg.anchor:
        raise MemsrError("only a teacher with EDSR's upsampler tail (memsr-train teacher --tail upsampler) has "
                         "an EDSR layout")
    if layout not in LAYOUTS:
        raise MemsrError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    spec = cfg.input
    if layout == "BasicSR" and (tuple(spec.mean) != BASICSR_MEAN or abs(spec.norm * 255 - 1) > 1e-12
                                or spec.value_range != 1.0):
        raise MemsrError("BasicSR's EDSR has EDSR's mean and x255 built in; this teacher normalises otherwise "
                         "(save it in EDSR-PyTorch layout, whose MeanShifts hold any normalisation)")
    L = LAYOUTS[layout]
    t = lambda conv: (conv.weight.detach().clone(), conv.bias.detach().clone())  # noqa: E731
    convs = [(L["head"], t(teacher.head))]
    for i, block in enumerate(teacher.blocks):
        convs += [(L["conv1"].format(i=i), t(block.conv1)), (L["conv2"].format(i=i), t(block.conv2))]
    convs.append((L["body"].format(n=cfg.blocks), t(teacher.body_conv)))
    convs += [(L["up"].format(j=2 * j), t(m)) for j, m in enumerate(teacher.upsample)]
    convs.append((L["tail"], t(teacher.tail)))
    state = {}
    if layout == "EDSR-PyTorch":
        vr, mean, norm = float(spec.value_range), torch.tensor(spec.mean, dtype=torch.float64), float(spec.norm)
        d = vr / (255.0 * norm)                        # xn = d * (x255 - mu)
        mu = 255.0 * mean / vr
        a = 255.0 * norm / vr                          # EDSR's output on 0..255 = a * t + b
        b = 255.0 * mean / vr
        eye = torch.eye(3, dtype=torch.float64).view(3, 3, 1, 1)
        state["sub_mean.weight"], state["sub_mean.bias"] = (eye * d).float(), (-d * mu).float()
    for name, (w, bias) in convs:
        state[f"{name}.weight"], state[f"{name}.bias"] = w, bias
    if layout == "EDSR-PyTorch":
        state["add_mean.weight"], state["add_mean.bias"] = (eye * a).float(), b.float()
    return state
