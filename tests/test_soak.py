"""A small soak (issue 32; the full one is benchmarks/soak.py): one memsr-upscale process over 30 photos of mixed
formats and sizes, watched from outside: no growth in open files or threads, bounded memory growth."""
from __future__ import annotations

import os

from memsr_bench.soak import make_folder, upscale_cmd, watch


def test_folder_run_holds_no_more_files_threads_or_memory_at_the_end(tmp_path, tiny_plain_path):
    n = 30
    photos = make_folder(tmp_path / "photos", n, min_px=24, max_px=64)
    assert {p.suffix for p in photos} == {".jpg", ".png", ".tif", ".webp", ".heic"}
    env = dict(os.environ, OMP_NUM_THREADS="1")  # ONNX Runtime: no torch import, a few seconds to start
    cmd = upscale_cmd(tmp_path / "photos", tmp_path / "out", ["--model", str(tiny_plain_path), "--backend", "onnxruntime",
                                                              "--threads", "1"])
    run = watch(cmd, tmp_path / "out", n, interval=0.02, env=env)
    assert run.rc == 0 and len(run.finish_times) == n, run.stderr
    assert len(run.samples) > 20
    # fewest and median while photos 2-11 and the last 10 were made: equal but for one (a photo lasts a few
    # samples, so a thread of the photo in hand may be in every one); a leak of one per photo would add 20
    first_fd, last_fd = run.counts(1, 11, "fds"), run.counts(n - 10, n, "fds")
    first_th, last_th = run.counts(1, 11, "threads"), run.counts(n - 10, n, "threads")
    assert last_fd[0] <= first_fd[0] + 1 and last_fd[1] <= first_fd[1] + 1, (first_fd, last_fd)
    assert last_th[0] <= first_th[0] + 1 and last_th[1] <= first_th[1] + 1, (first_th, last_th)
    assert last_fd[2] <= first_fd[0] + 8 and last_th[2] <= first_th[0] + 12  # one photo's worth at most
    # the first 10 photos include the largest size of every format: later photos add nothing lasting
    peak_first_10 = max(s.rss for s in run.samples if s.done <= 10)
    assert run.peak_rss <= 1.10 * peak_first_10, (run.peak_rss, peak_first_10)
