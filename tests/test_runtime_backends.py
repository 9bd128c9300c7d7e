"""The default backend: a model description on ONNX Runtime, graph built in memory, torch never imported."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import make_plain
from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.model_file import save_model
from memsr_deploy.method.models import InputSpec
from memsr_deploy.runtime import RunOptions, Upscaler, open_backend

pytest.importorskip("onnxruntime")


def photo_like(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.5 + 0.4 * np.sin(yy[..., None] * 0.37 + xx[..., None] * 0.21 + np.arange(3) * 1.3)
    return (np.clip(base + 0.1 * rng.standard_normal((h, w, 3)), 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["memsr-x2", "memsr-x4"])
def test_default_backend_equals_pytorch_within_one_level(tmp_path, name):
    src = tmp_path / "in.png"
    Image.fromarray(photo_like(37, 53)).save(src)
    fast = open_backend(model=name)
    assert fast.name == "onnxruntime"
    outs = {}
    for label, backend in (("ort", fast), ("torch", open_backend(model=name, backend="torch", threads=1))):
        Upscaler(backend, RunOptions(tile=24)).upscale_file(src, tmp_path / f"{label}.png")
        outs[label] = np.asarray(Image.open(tmp_path / f"{label}.png")).astype(int)
    diff = np.abs(outs["ort"] - outs["torch"])
    assert outs["ort"].shape == (37 * fast.caps.scale, 53 * fast.caps.scale, 3)
    assert diff.max() <= 1 and diff.mean() < 0.01


@pytest.mark.parametrize("spec", [InputSpec(), InputSpec(1.0, (0.45, 0.44, 0.40), 0.5),
                                  InputSpec(255.0, (114.4, 111.5, 103.0), 127.5)])
def test_graph_from_description_equals_the_network(tmp_path, spec):
    """Normalisation and value range are rebuilt from the description, not assumed."""
    net = make_plain(scale=3, widths=(8, 6, 8), acts=("relu", "none", "relu"), seed=3, input_spec=spec)
    save_model(net, tmp_path / "m", kind="student")
    x = np.random.default_rng(1).random((2, 3, 19, 23), dtype=np.float32)
    got = open_backend(model=tmp_path / "m", backend="onnxruntime").run(x)
    want = open_backend(model=tmp_path / "m", backend="torch").run(x)
    assert got.shape == (2, 3, 57, 69)
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_default_run_does_not_import_torch(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(photo_like(20, 24)).save(src)
    code = ("import sys\nfrom memsr_deploy.cli.upscale import main\n"
            f"rc = main([{str(src)!r}, '-o', {str(tmp_path / 'out.png')!r}, '-q'])\n"
            "print(rc, sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[-2] == "0 []", res.stdout
    assert Image.open(tmp_path / "out.png").size == (48, 40)


def test_backend_choices_are_checked(tiny_plain_path, tiny_teacher_path):
    assert open_backend(model=tiny_teacher_path).name == "torch"   # auto: teachers need torch
    with pytest.raises(MemsrError, match="plain nets"):
        open_backend(model=tiny_teacher_path, backend="onnxruntime")
    with pytest.raises(MemsrError, match="int8 runs on ONNX Runtime"):
        open_backend(model=tiny_plain_path, backend="torch", precision="int8")
    with pytest.raises(MemsrError, match="--artefact"):
        open_backend(model=tiny_plain_path, backend="litert")
    with pytest.raises(MemsrError, match="int8_activation_ranges"):
        open_backend(model=tiny_plain_path, precision="int8")


def test_threads_limit_reaches_the_session(tiny_plain_path):
    b = open_backend(model=tiny_plain_path, threads=1)
    opts = b.session.get_session_options()
    assert opts.intra_op_num_threads == 1


def test_corrupt_weights_are_refused_without_torch(tmp_path, tiny_plain_path):
    meta = json.loads(tiny_plain_path.with_suffix(".json").read_text())
    meta["layer_widths"][0] += 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(meta))
    (tmp_path / "bad.safetensors").write_bytes(tiny_plain_path.with_suffix(".safetensors").read_bytes())
    with pytest.raises(MemsrError, match="layers.0.weight"):
        open_backend(model=tmp_path / "bad", backend="onnxruntime")
