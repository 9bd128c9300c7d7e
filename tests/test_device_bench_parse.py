"""Parsing benchmark_model output, judging delegation, device facts, quoting and tile projection (no device)."""
from __future__ import annotations

import math
import shlex

import pytest

from memsr_bench.device import host_worker
from memsr_bench.device.adb import device_facts, quote_command
from memsr_bench.device.parse import judge, parse_output
from memsr_bench.device.report import photo_label, photo_labels, tiles_for
from memsr_deploy.formats.tile_plan import plan

# Real output of LiteRT's benchmark_model (mobilenet v1 on a slow CPU), as printed by older builds: no INFO
# prefix, warm-up line without min/max, averages in C++ default precision.
REAL_OLD = """\
STARTING!
Num threads: [4]
Graph: [./mobilenet_v1_1.0_224.tflite]
Loaded model ./mobilenet_v1_1.0_224.tflite
The input model file size (MB): 16.9008
Initialized session in 17.187ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=1 curr=3512391

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=2990275 curr=2913402 min=2727568 max=3189954 avg=2.95034e+06 std=109798

Inference timings in us: Init: 17187, First inference: 3512391, Warmup (avg): 3.51239e+06, Inference (avg): 2.95034e+06
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Memory footprint delta from the start of the tool (MB): init=4.21094 overall=46.0859
"""

# Newer builds: INFO prefix, percentiles, XNNPACK fully applied, and the periodic peak line.
REAL_NEW = """\
INFO: STARTING!
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: Replacing 5 out of 5 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions for the whole graph.
INFO: Explicitly applied XNNPACK delegate, and the model graph will be completely executed by the delegate.
INFO: The input model file size (MB): 24.6229
INFO: Initialized session in 119.515ms.
INFO: count=9 first=87112 curr=51629 min=51629 max=87112 avg=58147.4 std=11478 p5=51629 median=51962 p95=87112

INFO: count=1000 first=52162 curr=49785 min=49088 max=686105 avg=63743.2 std=60716 p5=49620 median=51891 p95=68628

INFO: Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 58147.4, Inference (avg): 63743.2
INFO: Memory footprint delta from the start of the tool (MB): init=55.4961 overall=55.4961
INFO: Overall peak memory footprint (MB) via periodic monitoring: 61.25
"""


def test_parses_old_format_with_scientific_notation():
    o = parse_output(REAL_OLD)
    assert o.init_us == 17187 and o.first_us == 3512391
    assert o.warmup_avg_us == pytest.approx(3.51239e6) and o.avg_us == pytest.approx(2950340.0)
    assert o.warmup_stats == {"count": 1, "curr": 3512391, "first": 3512391, "min": 3512391, "max": 3512391,
                              "avg": 3512391, "std": 0.0}
    assert o.stats["count"] == 50 and o.stats["min"] == 2727568 and o.stats["max"] == 3189954
    assert o.stats["avg"] == pytest.approx(2.95034e6) and o.stats["std"] == 109798
    assert (o.mem_init_mb, o.mem_overall_mb, o.peak_mem_mb) == (pytest.approx(4.21094), pytest.approx(46.0859), None)
    assert judge(o, "cpu", 0) == "ok"


def test_parses_new_format_with_prefix_percentiles_and_peak():
    o = parse_output(REAL_NEW)
    assert o.avg_us == pytest.approx(63743.2) and o.stats["count"] == 1000 and o.stats["median"] == 51891
    assert o.warmup_stats["count"] == 9
    assert o.peak_mem_mb == pytest.approx(61.25) and o.mem_overall_mb == pytest.approx(55.4961)
    d = o.delegations["cpu"]
    assert d.nodes == (5, 5) and d.applied == "complete"
    assert judge(o, "cpu", 0) == "ok"


def test_all_same_statistics_and_older_memory_line():
    o = parse_output("count=5 curr=1200(all same)\ncount=3 curr=1000(all same)\n"
                     "Inference timings in us: Init: 10, First inference: 1200, Warmup (avg): 1200, "
                     "Inference (avg): 1000\nPeak memory footprint (MB): init=4.92969 overall=138.809\n")
    assert o.stats["min"] == o.stats["max"] == o.stats["avg"] == 1000 and o.stats["std"] == 0
    assert (o.mem_init_mb, o.mem_overall_mb) == (pytest.approx(4.92969), pytest.approx(138.809))


def test_nan_average_is_not_a_number():
    o = parse_output("Inference timings in us: Init: 10, First inference: 5, Warmup (avg): nan, Inference (avg): 7")
    assert o.warmup_avg_us is None and o.avg_us == 7


TIMINGS = "Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, Inference (avg): 4\n"


@pytest.mark.parametrize("text, choice, rc, status", [
    ("ERROR: Failed to apply GPU delegate.\nERROR: Benchmarking failed.\n", "gpu", 1, "delegate failed"),
    ("INFO: GPU acceleration is unsupported on this platform.\n" + TIMINGS, "gpu", 0, "delegate unavailable"),
    ("INFO: Replacing 12 out of 14 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 2 partitions for "
     "the whole graph.\n" + TIMINGS, "gpu", 0, "partial (12/14 nodes)"),
    ("12 operations will run on the GPU, and the remaining 2 operations will run on the CPU.\n" + TIMINGS,
     "gpu", 0, "partial (12/14 nodes)"),
    ("INFO: TfLiteNnapiDelegate delegate: 3 nodes delegated out of 7 nodes with 2 partitions.\n" + TIMINGS,
     "nnapi", 0, "partial (3/7 nodes)"),
    ("Explicitly applied NNAPI delegate, and the model graph will be partially executed by the delegate w/ 2 "
     "delegate kernels.\n" + TIMINGS, "nnapi", 0, "partial (2 delegate kernels)"),
    ("INFO: Replacing 12 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 3 partitions.\n"
     "Explicitly applied GPU delegate, and the model graph will be completely executed by the delegate.\n"
     + TIMINGS, "gpu", 0, "partial (3 partitions)"),
    ("Though NNAPI delegate is explicitly applied, the model graph will not be executed by the delegate.\n"
     + TIMINGS, "nnapi", 0, "not delegated"),
    # XNNPACK took the whole graph, but the GPU asked for never said anything: these are CPU figures.
    ("INFO: Replacing 7 out of 7 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions.\n"
     + TIMINGS, "gpu", 0, "delegate not applied"),
    ("INFO: Replacing 7 out of 7 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 1 partitions.\n"
     "INFO: Replacing 2 out of 9 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions.\n"
     + TIMINGS, "gpu", 0, "ok"),
    ("ERROR: NN API returned error ANEURALNETWORKS_OP_FAILED\n", "nnapi", 1,
     "error (exit 1) (ERROR: NN API returned error ANEURALNETWORKS_OP_FAILED)"),
    ("INFO: STARTING!\n", "cpu", 0, "error: no timings"),
    ("Segmentation fault\n" + TIMINGS, "cpu", 139, "error (exit 139)"),
])
def test_judge_delegation(text, choice, rc, status):
    assert judge(parse_output(text), choice, rc) == status


def test_device_facts_prefers_soc_model_and_finds_big_cores():
    props = {"ro.product.model": "Pixel 7", "ro.soc.manufacturer": "Google", "ro.soc.model": "GS201",
             "ro.board.platform": "gs201", "ro.build.version.release": "14", "ro.product.cpu.abi": "arm64-v8a"}
    f = device_facts(props, 8, {0: 1803000, 1: 1803000, 2: 1803000, 3: 1803000, 4: 2348000, 5: 2348000,
                                6: 2850000, 7: 2850000})
    assert (f["model"], f["soc"], f["android"], f["abi"], f["cores"]) == ("Pixel 7", "Google GS201", "14",
                                                                         "arm64-v8a", 8)
    assert f["big_core_mask"] == "c0"
    old = device_facts({"ro.board.platform": "msm8998", "ro.hardware": "qcom"}, 8, {})
    assert old["soc"] == "msm8998" and "big_core_mask" not in old
    assert device_facts({"ro.hardware": "qcom"}, None, {})["soc"] == "qcom"


def test_quoted_command_is_one_argument_per_token():
    name = "/data/local/tmp/memsr bench/a b;$(touch x) `id` 'q'.tflite"
    cmd = quote_command(["taskset", "f0", "/data/local/tmp/bm", f"--graph={name}", "--num_threads=4"])
    assert shlex.split(cmd) == ["taskset", "f0", "/data/local/tmp/bm", f"--graph={name}", "--num_threads=4"]
    # Nothing outside quotes that a shell would act on.
    lex = shlex.shlex(cmd, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    assert not [t for t in lex if t in (";", "&&", "|", "&", "(", ")")]


def test_tile_count_follows_the_exact_plan():
    # 3000 x 4000 photo, 60 px cores: ceil(3000/60) * ceil(4000/60) = 50 * 67 tiles.
    assert tiles_for((3000, 4000), (60, 60), 2) == 50 * 67 == len(plan(3000, 4000, 60, 2))
    assert tiles_for((3000, 4000), (100, 60), 2) == 30 * 67
    assert tiles_for((8672, 11552), (250, 250), 34) == math.ceil(8672 / 250) * math.ceil(11552 / 250)
    assert photo_label((3000, 4000)) == "12MP" and photo_label((8672, 11552)) == "100MP"
    assert photo_labels([(3000, 4000), (4000, 3000)]) == ["12MP_3000x4000", "12MP_4000x3000"]


def test_host_worker_lines_read_back_as_written():
    line = host_worker._stats_line([3000000, 2900000, 3100000])
    o = parse_output(f"INFO: count=1 curr=5\nINFO: {line}\n")
    assert o.stats == {"count": 3, "first": 3000000, "curr": 3100000, "min": 2900000, "max": 3100000,
                       "avg": pytest.approx(3e6), "std": pytest.approx(81650, abs=1)}
    assert host_worker._g(2950340.0) == "2.95034e+06"
    assert host_worker._stats_line([7, 7]) == "count=2 curr=7(all same)"
    assert host_worker._cpus("f0") == {4, 5, 6, 7}
