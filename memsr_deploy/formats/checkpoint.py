"""PyTorch checkpoints of other projects' SR networks as memsr models (the checkpoint half of the model loader).

``model_file.load_model`` / ``read_description`` hand a path here when it names a checkpoint (``is_checkpoint``)
instead of a memsr description pair, so every command that takes a model takes a checkpoint the same way.
A checkpoint is read without unpickling arbitrary objects (safetensors, or ``torch.load(weights_only=True)``),
unwrapped (``params_ema`` / ``params`` / ``state_dict`` / ``model``, a DataParallel ``module.`` prefix), and
recognised by its keys; the architectures read so far are in ``ARCHITECTURES``. Anything else is refused with
one line that says what is supported.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ..errors import MemsrError

# the weights of memsr's own networks (models.ResidualSR, models.PlainSR): a description whose .json is missing
MEMSR_KEYS = r"(layers\.\d+|upsample\.\d+|tail|head|blocks\.\d+\.conv[12]|body_conv)\.(weight|bias)$|normalize\.mean$|out_mean$"
SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")
# wrappers training code stores the weights under, in the order they are preferred (BasicSR: the EMA weights
# when the file has them)
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")
SUPPORTED = ("EDSR checkpoints in EDSR-PyTorch layout (sub_mean, head.0, body.N.body.0/2, tail.0, tail.1, "
             "add_mean) or BasicSR layout (conv_first, body.N.conv1/conv2, conv_after_body, upsample, conv_last), "
             "x2/x3/x4")


def is_checkpoint(path) -> bool:
    """A .pth/.pt/.ckpt file, or a .safetensors file without the .json of a memsr description beside it."""
    p = Path(str(path))
    if p.suffix.lower() not in SUFFIXES:
        return False
    return p.suffix.lower() != ".safetensors" or not p.with_suffix(".json").exists()


def file_sha256(path) -> str:
    if isinstance(path, CheckpointFile):
        return path.sha256
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_bytes(path: Path) -> bytes:
    """The one read of a checkpoint's file (tests count the calls)."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise MemsrError(f"checkpoint cannot be read ({e.strerror or e})", path) from None


class CheckpointFile(os.PathLike):
    """A checkpoint path whose file is read once, on first need, for both its sha256 and its state dict.

    The edges that open a model (the runtime's, the exporter's, the profiler's) wrap a checkpoint path in one and
    hand it down in place of the path: foreign detection, the EDSR importer and the hash all take it, so a file
    asked about twice (is it foreign? then: import it) is read and hashed once. It is path-like (``str``,
    ``os.fspath``), so code that only names or stats the file needs no change. The bytes are dropped once
    both the hash and the state dict are taken from them."""

    def __init__(self, path):
        self.path = Path(os.fspath(path))
        self._bytes: bytes | None = None
        self._sha: str | None = None
        self._state: tuple[dict, str | None] | None = None

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"CheckpointFile({str(self.path)!r})"

    def _data(self) -> bytes:
        if self._bytes is None:
            if not self.path.is_file():
                raise MemsrError("checkpoint not found", self.path)
            self._bytes = _read_bytes(self.path)
        return self._bytes

    def _release(self) -> None:
        if self._sha is not None and self._state is not None:
            self._bytes = None

    @property
    def sha256(self) -> str:
        if self._sha is None:
            self._sha = hashlib.sha256(self._data()).hexdigest()
            self._release()
        return self._sha

    @property
    def state(self) -> tuple[dict, str | None]:
        """(name -> tensor, wrapper key or None), as read_state_dict gives it."""
        if self._state is None:
            self._state = _parse_state(self._data(), self.path)
            self._release()
        return self._state


def checkpoint_file(path):
    """``path`` as a CheckpointFile when it names a checkpoint (is_checkpoint), else unchanged."""
    if isinstance(path, CheckpointFile) or not isinstance(path, (str, os.PathLike)) or not is_checkpoint(path):
        return path
    return CheckpointFile(path)


def read_state_dict(path) -> tuple[dict, str | None]:
    """(name -> tensor, the wrapper key it was found under or None). Raises MemsrError naming the file.
    A CheckpointFile gives the state it read already."""
    if isinstance(path, CheckpointFile):
        return path.state
    p = Path(str(path))
    if not p.is_file():
        raise MemsrError("checkpoint not found", p)
    return _parse_state(_read_bytes(p), p)


def _parse_state(data: bytes, p: Path) -> tuple[dict, str | None]:
    import io

    import torch
    if p.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load
        try:
            obj = load(data)
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise MemsrError(f"unreadable safetensors checkpoint (truncated or corrupt: {_first_line(e)})", p) from None
    else:
        try:
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises many kinds (zip, pickle, EOF) for a bad file
            raise MemsrError(f"unreadable PyTorch checkpoint (truncated, corrupt, or holding objects other than "
                             f"tensors: {_first_line(e)})", p) from None
    wrapper = None
    if isinstance(obj, dict) and not _is_state(obj):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict) and _is_state(obj[key]):
                obj, wrapper = obj[key], key
                break
    if not isinstance(obj, dict) or not obj or not _is_state(obj):
        raise MemsrError(f"holds no state dict of tensors (looked at the top level and under "
                         f"{', '.join(WRAPPER_KEYS)}); supported: {SUPPORTED}", p)
    if all(k.startswith("module.") for k in obj):  # saved from DataParallel / DistributedDataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj, wrapper


def _is_state(d: dict) -> bool:
    import torch
    return bool(d) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else e.__class__.__name__)[:200]


# the last checkpoint only described (read_description), kept for the load_model that usually follows (the
# runtime's and the profiler's order), so the file is read and checked once; load_model takes it out, so a
# loaded network is never handed to two callers
_cache: dict = {}


def _identity(path) -> tuple:
    st = os.stat(path)
    return os.path.realpath(path), st.st_size, st.st_mtime_ns


def import_checkpoint(path, scale: int | None = None, res_scale: float | None = None, keep: bool = False):
    """(memsr model in eval mode, its ModelDescription) for a checkpoint file; ``scale``: refuse a checkpoint
    of another scale; ``res_scale``: the residual scaling, which checkpoints do not store (default: the
    architecture's rule, see edsr_checkpoint.default_res_scale). ``keep``: the caller only reads the
    description; keep the network for the next call."""
    from . import edsr_checkpoint
    from .model_file import describe
    key = (_identity(path), scale, res_scale) if Path(str(path)).is_file() else None
    if key is not None and key in _cache:
        return _cache[key] if keep else _cache.pop(key)
    state, wrapper = read_state_dict(path)
    if all(re.match(MEMSR_KEYS, k) for k in state):
        raise MemsrError("model metadata not found (expected a .json beside the .safetensors: these are the "
                         "weights of a memsr model description)", path)
    from ..foreign.checkpoint import family_of
    family = family_of(state)
    if family is not None:
        raise MemsrError(f"a {family} checkpoint: it runs on ONNX Runtime (memsr-upscale / memsr-eval / "
                         f"memsr-profile take it); as a memsr model (training, conversion) only EDSR is read",
                         path)
    model, info = edsr_checkpoint.teacher_from_state(state, path, scale=scale, res_scale=res_scale)
    sha = file_sha256(path)
    desc = describe(model, "teacher", provenance={"imported_from": {
        "file": str(path), "sha256": sha, "architecture": "EDSR", "wrapper_key": wrapper, **info}})
    desc.weights_sha256 = sha
    desc.path = str(path)
    _cache.clear()
    if keep:
        _cache[key] = (model, desc)
    return model, desc
