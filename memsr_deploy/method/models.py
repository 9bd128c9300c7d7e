"""The two network families of memsr, readable top to bottom.

* ``ResidualSR``: the teacher. EDSR-style: head conv, B residual blocks (conv-ReLU-conv, scaled), body conv,
  long skip, then a tail: ESPCN's (3x3 conv to 3*s*s channels + pixel shuffle, optional image-space anchor
  skip; memsr's own teachers) or EDSR's upsampler (the published EDSR, imported by formats/edsr_checkpoint.py).
* ``PlainSR``: what students are and what gets deployed. A chain of 3x3 convs, each followed by ReLU or
  nothing, then a tail: one conv and a pixel shuffle, or EDSR's upsampler (conv + shuffle per scale factor,
  then a conv at the output resolution; plain_layout.py). The input normalisation is the only other op, so
  at most two feature maps are alive at any time.

Both take images in [0, value_range] and return images in the same units. Normalisation is
``xn = (x - mean) / norm`` before the first conv; the teacher undoes it after the shuffle, the plain net has the
undo folded into its tail conv (exact: nothing reads the tail output through a padded conv).
"""
from __future__ import annotations

from dataclasses import dataclass, field, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import plain_layout
from .input_spec import InputSpec

ACTS = ("relu", "none")


class Normalize(nn.Module):
    """(x - mean) / norm, elementwise. Kept as its own op: folding it into the first conv would change what
    that conv's zero padding means at the image border."""

    def __init__(self, spec: InputSpec):
        super().__init__()
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.inv_norm = 1.0 / spec.norm
        self.identity = spec.is_identity

    def forward(self, x):
        return x if self.identity else (x - self.mean) * self.inv_norm


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


class _Config:
    """A network's constructor config, stored in the model JSON as ``arch``."""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input"] = self.input.to_dict()
        return d


def _with_input_spec(d: dict) -> dict:
    d = dict(d)
    d["input"] = InputSpec.from_dict(d.get("input", {}))
    return d


@dataclass
class TeacherConfig(_Config):
    scale: int = 2
    width: int = 64
    blocks: int = 16
    res_scale: float = 1.0
    anchor: bool = False
    input: InputSpec = field(default_factory=InputSpec)
    tail: str = "shuffle"          # plain_layout.TAILS: "upsampler" is EDSR's own

    def __post_init__(self):
        if self.tail not in plain_layout.TAILS:
            raise ValueError(f"unknown tail {self.tail!r}; expected one of {plain_layout.TAILS}")
        if self.anchor and self.tail != "shuffle":
            raise ValueError("the anchor skip adds the input to the shuffle tail's channels; "
                             "an upsampler tail has none to add it to")

    @property
    def body_convs(self) -> int:
        """Convs at the LR size: head, two per block, body conv."""
        return 2 * self.blocks + 2

    def to_dict(self) -> dict:
        d = super().to_dict()
        if self.tail == "shuffle":
            del d["tail"]   # descriptions written before the upsampler tail existed stay byte-identical
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TeacherConfig":
        return cls(**_with_input_spec(d))


class ResBlock(nn.Module):
    def __init__(self, width: int, res_scale: float):
        super().__init__()
        self.conv1 = conv3x3(width, width)
        self.conv2 = conv3x3(width, width)
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.res_scale * self.conv2(F.relu(self.conv1(x)))


class ResidualSR(nn.Module):
    """EDSR-style teacher. memsr trains its own with an ESPCN tail (see docs/method.md for why not EDSR's
    HR-size tail); EDSR checkpoints come with EDSR's upsampler (``upsample`` stages, then ``tail``)."""

    def __init__(self, cfg: TeacherConfig):
        super().__init__()
        if cfg.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {cfg.scale}")
        self.cfg = cfg
        s, c = cfg.scale, cfg.width
        self.normalize = Normalize(cfg.input)
        self.head = conv3x3(3, c)
        self.blocks = nn.ModuleList(ResBlock(c, cfg.res_scale) for _ in range(cfg.blocks))
        self.body_conv = conv3x3(c, c)
        # the tail convs as a plain net's (plain_layout): none or one per upsampler stage, then ``tail``
        shapes = plain_layout.conv_shapes([c] * cfg.body_convs, s, cfg.tail)[cfg.body_convs:]
        self.upsample = nn.ModuleList(conv3x3(*shape) for shape in shapes[:-1])
        self.tail = conv3x3(*shapes[-1])
        self.register_buffer("out_mean", torch.tensor(cfg.input.mean, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x):
        s = self.cfg.scale
        xn = self.normalize(x)
        h0 = self.head(xn)
        h = h0
        for block in self.blocks:
            h = block(h)
        h = self.body_conv(h) + h0
        if self.cfg.tail == "upsampler":
            for conv, f in zip(self.upsample, plain_layout.scale_factors(s)):
                h = F.pixel_shuffle(conv(h), f)
            return self.tail(h) * self.cfg.input.norm + self.out_mean
        out = self.tail(h)
        if self.cfg.anchor:
            # channel c*s*s + k of the tail becomes colour c after the shuffle (CRD order)
            out = out + xn.repeat_interleave(s * s, dim=1)
        out = F.pixel_shuffle(out, s)
        return out * self.cfg.input.norm + self.out_mean

    @property
    def receptive_radius(self) -> int:
        # head + 2 per block + body conv, then the tail's convs at their own resolutions
        return plain_layout.receptive_radius(self.cfg.body_convs, self.cfg.scale, self.cfg.tail)


@dataclass
class PlainConfig(_Config):
    scale: int = 2
    widths: list[int] = field(default_factory=lambda: [32] * 8)
    acts: list[str] = field(default_factory=lambda: ["relu"] * 8)
    input: InputSpec = field(default_factory=InputSpec)
    tail: str = "shuffle"          # plain_layout.TAILS

    def __post_init__(self):
        if self.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {self.scale}")
        if len(self.widths) != len(self.acts):
            raise ValueError(f"{len(self.widths)} widths but {len(self.acts)} activations")
        if not self.widths:
            raise ValueError("a plain net needs at least one body layer")
        bad = [a for a in self.acts if a not in ACTS]
        if bad:
            raise ValueError(f"unknown activation {bad[0]!r}; expected one of {ACTS}")
        if any(int(w) < 1 for w in self.widths):
            raise ValueError("layer widths must be positive")
        if self.tail not in plain_layout.TAILS:
            raise ValueError(f"unknown tail {self.tail!r}; expected one of {plain_layout.TAILS}")

    @property
    def receptive_radius(self) -> int:
        """LR pixels of context each output pixel sees, tail included. The exact tile halo."""
        return plain_layout.receptive_radius(len(self.widths), self.scale, self.tail)

    def channels(self) -> list[int]:
        """Channel count of every feature map in order: input, each body layer, each tail conv's output."""
        return plain_layout.conv_channels(self.widths, self.scale, self.tail)

    def conv_shapes(self) -> list[tuple[int, int]]:
        """(input, output) channels of every conv in order, tail convs included."""
        return plain_layout.conv_shapes(self.widths, self.scale, self.tail)

    def shuffles(self) -> list[int]:
        """Per conv (body, then tail convs), the pixel-shuffle factor after it (1 = none)."""
        return plain_layout.shuffle_after(len(self.widths), self.scale, self.tail)

    def to_dict(self) -> dict:
        d = super().to_dict()
        if self.tail == "shuffle":
            del d["tail"]   # descriptions written before the upsampler tail existed stay byte-identical
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PlainConfig":
        d = _with_input_spec(d)
        d["widths"] = [int(w) for w in d["widths"]]
        d["acts"] = list(d["acts"])
        return cls(**d)


class PlainSR(nn.Module):
    """Plain chain: normalise -> [conv3x3 -> act] * L -> tail (conv3x3 -> pixel shuffle, or EDSR's upsampler:
    [conv3x3 -> pixel shuffle] per scale factor -> conv3x3 at the output resolution)."""

    def __init__(self, cfg: PlainConfig):
        super().__init__()
        self.cfg = cfg
        self.normalize = Normalize(cfg.input)
        shapes = cfg.conv_shapes()
        n = len(cfg.widths)
        self.layers = nn.ModuleList(conv3x3(*shapes[i]) for i in range(n))
        self.acts = list(cfg.acts)
        # upsampler stages (empty for the one-conv shuffle tail); the last conv is always ``tail``
        self.upsample = nn.ModuleList(conv3x3(*shape) for shape in shapes[n:-1])
        self.tail = conv3x3(*shapes[-1])

    def _tail(self, h):
        for conv, f in zip([*self.upsample, self.tail], self.cfg.shuffles()[len(self.layers):]):
            h = conv(h)
            if f > 1:
                h = F.pixel_shuffle(h, f)
        return h

    def features(self, x):
        """Forward pass that also returns every body layer's output (for distillation and init)."""
        feats = []
        h = self.normalize(x)
        for conv, act in zip(self.layers, self.acts):
            h = conv(h)
            if act == "relu":
                h = F.relu(h)
            feats.append(h)
        return self._tail(h), feats

    def forward(self, x):
        h = self.normalize(x)
        for conv, act in zip(self.layers, self.acts):
            h = conv(h)
            if act == "relu":
                h = F.relu(h)
        return self._tail(h)

    def convs(self) -> list[nn.Conv2d]:
        """All convs in execution order, tail last."""
        return [*self.layers, *self.upsample, self.tail]

    @property
    def receptive_radius(self) -> int:
        return self.cfg.receptive_radius


# Presets: EDSR-baseline is the paper's reference teacher; the small ones fit a CPU training budget.
TEACHER_PRESETS = {
    "edsr-baseline": dict(width=64, blocks=16, res_scale=1.0),
    "small": dict(width=32, blocks=4, res_scale=1.0),
    "tiny": dict(width=16, blocks=2, res_scale=1.0),
}


def build(kind: str, arch: dict) -> nn.Module:
    """Model from its description's ``kind`` and ``arch`` fields."""
    if kind == "teacher":
        return ResidualSR(TeacherConfig.from_dict(arch))
    if kind in ("plain", "student"):
        return PlainSR(PlainConfig.from_dict(arch))
    raise ValueError(f"unknown model kind {kind!r}")
