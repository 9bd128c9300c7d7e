"""Shared fixtures: small random models saved as real model file pairs (no bundled weights needed)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from memsr_deploy.method import models
from memsr_deploy.formats.model_file import save_model


def make_plain(scale=2, widths=(8, 8, 8), acts=("relu", "relu", "none"), seed=0, input_spec=None, tail="shuffle"):
    torch.manual_seed(seed)
    cfg = models.PlainConfig(scale=scale, widths=list(widths), acts=list(acts),
                             input=input_spec or models.InputSpec(), tail=tail)
    m = models.PlainSR(cfg)
    # Random init gives near-constant outputs; a larger spread makes comparisons meaningful.
    with torch.no_grad():
        for conv in m.convs():
            conv.weight.mul_(2.0)
            conv.bias.uniform_(-0.1, 0.1)
    return m.eval()


def make_teacher(scale=2, width=8, blocks=2, anchor=True, seed=0, input_spec=None):
    torch.manual_seed(seed)
    cfg = models.TeacherConfig(scale=scale, width=width, blocks=blocks, res_scale=0.5, anchor=anchor,
                               input=input_spec or models.InputSpec())
    return models.ResidualSR(cfg).eval()


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """``--backend auto`` remembers its measurements under XDG_CACHE_HOME: keep the suite's out of the user's
    cache (and the user's out of the suite). Set in os.environ so CLI subprocesses inherit it."""
    import os
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture
def tiny_plain_path(tmp_path):
    """Stem of a saved x2 plain student (3 layers of width 8): load with model_file.load_model."""
    save_model(make_plain(), tmp_path / "tiny_x2", kind="student")
    return tmp_path / "tiny_x2"


@pytest.fixture
def tiny_teacher_path(tmp_path):
    save_model(make_teacher(), tmp_path / "tiny_teacher_x2")
    return tmp_path / "tiny_teacher_x2"


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """Three small blocky photos: enough for training runs of a few steps."""
    d = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(3):
        noise = rng.random((24, 32, 3))
        img = np.kron(noise, np.ones((4, 4, 1)))  # blocky, not flat: edges at every 4 px
        Image.fromarray((img * 255).astype(np.uint8)).save(d / f"p{i}.png")
    return d


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny convs: thread hand-offs cost more than they save, and far more on a shared, loaded machine. A module
    asks for it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
