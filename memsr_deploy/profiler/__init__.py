"""memsr-profile: peak activation memory of SR models, predicted (graph liveness walk) and measured.

``budget`` holds the memory-budget rule shared with the runtime and the Java core (torch-free, cheap to import);
``analytic`` predicts peaks from a traced torch graph or an ONNX graph (the liveness walk and the ONNX dataflow
graph live in ``formats.liveness`` and ``formats.onnx_liveness``, which the runtime's budget for another project's
model walks too); ``measure`` runs a model in a fresh
subprocess and reads its RSS high-water mark; ``report`` makes the table and the plot.
"""
