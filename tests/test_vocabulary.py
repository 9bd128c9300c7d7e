"""Targets, precisions, backends and bytes per activation are one table each, shared by every reader."""
from memsr_deploy.formats import sidecar, tflite_graph, vocabulary
from memsr_deploy.formats import memory_budget as budget
from memsr_deploy.profiler import measure
from memsr_deploy.runtime import backends
from memsr_export import api, coreml_export, tflite_export


def test_every_module_reads_the_one_table():
    assert sidecar.TARGETS is vocabulary.TARGETS is api.TARGETS
    assert sidecar.PRECISIONS is vocabulary.PRECISIONS
    assert api.PRECISIONS is vocabulary.TARGET_PRECISIONS
    assert tflite_export.PRECISIONS is tflite_graph.PRECISIONS is vocabulary.TARGET_PRECISIONS["tflite"]
    assert coreml_export.PRECISIONS is vocabulary.TARGET_PRECISIONS["coreml"]
    assert backends.BACKENDS is vocabulary.RUNTIME_BACKENDS and backends.PRECISIONS is vocabulary.RUNTIME_PRECISIONS
    assert set(measure.BACKENDS) == set(vocabulary.RUNTIME_BACKENDS) - {"auto"}


def test_tables_are_consistent():
    assert set(vocabulary.TARGET_PRECISIONS) == set(vocabulary.TARGETS)
    assert all(set(p) <= set(vocabulary.PRECISIONS) for p in vocabulary.TARGET_PRECISIONS.values())
    assert set(vocabulary.ACTIVATION_BYTES) == set(vocabulary.PRECISIONS)
    assert set(vocabulary.RUNTIME_PRECISIONS) <= set(vocabulary.PRECISIONS)
    assert [budget.dtype_bytes(p) for p in vocabulary.PRECISIONS] == [4, 2, 4, 1, 1]
