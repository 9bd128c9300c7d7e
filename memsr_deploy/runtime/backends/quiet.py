"""Silence the runtimes' and converters' chatter (C++ banners on the raw file descriptors, such as LiteRT's
"Created TensorFlow Lite XNNPACK delegate", and version warnings via logging) so that the CLIs print their own
progress and results only. Errors still surface as Python exceptions. The descriptors are process-wide: use it
only while no other thread writes (loading a model, converting), never around the pipeline's threads."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys

NOISY_LOGGERS = ("coremltools", "torch.onnx", "torch.export", "torch._export", "torch.__trace", "absl", "tensorflow")


@contextlib.contextmanager
def quiet():
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    saved = []
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            saved.append((fd, os.dup(fd)))
            os.dup2(null, fd)
        os.close(null)
    except OSError:  # no real descriptors (embedded interpreter): Python-level redirection still applies
        pass
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
