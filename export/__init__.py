"""Exporters: a memsr model to ONNX, TFLite, Core ML and ncnn, each artefact verified against PyTorch.

``export_model(model, target, precision, out_dir, ...)`` is the API; ``memsr-export`` (memsr_export.cli) the CLI.
"""
import os

# coremltools imports TensorFlow whenever it is installed (memsr itself never does), and TensorFlow logs C++
# banners at import; keep CLIs quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from .api import PRECISIONS, TARGETS, export_model  # noqa: E402

__all__ = ["export_model", "TARGETS", "PRECISIONS"]
