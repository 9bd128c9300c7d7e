"""The project's shared vocabularies, one table each: the sidecar, the exporters, the runtime, the profiler and
the CLIs all read them from here, so a new precision or target is added in one place."""

# Exported artefact formats and the precisions a sidecar can name.
TARGETS = ("onnx", "tflite", "coreml", "ncnn")
PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "int8-uint8io")
TARGET_PRECISIONS = {"onnx": ("fp32",), "tflite": PRECISIONS, "coreml": ("fp32", "fp16"), "ncnn": ("fp32", "int8")}

# Bytes per activation value while a model runs at a precision: what memory budgets multiply by. Dynamic
# quantisation stores int8 weights but computes on float activations.
ACTIVATION_BYTES = {"fp32": 4, "fp16": 2, "dynamic": 4, "int8": 1, "int8-uint8io": 1}

# What `memsr-upscale` can run a model description on, and at which precision.
RUNTIME_BACKENDS = ("auto", "onnxruntime", "litert", "torch")
RUNTIME_PRECISIONS = ("fp32", "int8")
