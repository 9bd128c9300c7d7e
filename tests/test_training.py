"""Training: teacher and student runs, exact resume after a kill, and DDP under torchrun (2 CPU processes)."""
import csv
import os
import subprocess
import sys


from memsr_deploy.cli import train as train_cli
from memsr_deploy.formats.model_file import load_model

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def teacher_args(photo_dir, out, steps=6, extra=()):
    return ["teacher", "--data", str(photo_dir), "--width", "8", "--blocks", "1", "--steps", str(steps),
            "--batch", "2", "--patch", "12", "--ckpt-every", "3", "--no-val", "--threads", "1",
            "--out", str(out), *extra]


def run_cli(args, **kw):
    return subprocess.run([sys.executable, "-m", "memsr_deploy.cli.train", *args], env=ENV, capture_output=True,
                          text=True, timeout=300, **kw)


def read_loss(path):
    with open(path) as f:
        return [row["loss"] for row in csv.DictReader(f)]


def test_resume_after_kill_matches_uninterrupted_run(photo_dir, tmp_path):
    assert train_cli.main(teacher_args(photo_dir, tmp_path / "straight")) == 0
    killed = run_cli(teacher_args(photo_dir, tmp_path / "killed", extra=["--halt-after", "3"]))
    assert killed.returncode == 3, killed.stderr[-500:]
    assert not (tmp_path / "killed" / "model.json").exists()
    assert len(read_loss(tmp_path / "killed" / "train.csv")) == 3
    assert train_cli.main(teacher_args(photo_dir, tmp_path / "killed")) == 0
    assert read_loss(tmp_path / "killed" / "train.csv") == read_loss(tmp_path / "straight" / "train.csv")
    a, _ = load_model(tmp_path / "straight" / "model")
    b, _ = load_model(tmp_path / "killed" / "model")
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert (va == vb).all(), k


def test_student_runs_memsr_and_random(photo_dir, tmp_path):
    assert train_cli.main(teacher_args(photo_dir, tmp_path / "t", steps=2)) == 0
    for init, distill in (("memsr", "aware"), ("random", "feature"), ("random", "none")):
        out = tmp_path / f"s_{init}_{distill}"
        assert train_cli.main(["student", "--teacher", str(tmp_path / "t" / "model"), "--data", str(photo_dir),
                               "--init", init, "--distill", distill, "--steps", "2", "--batch", "2", "--patch", "12",
                               "--init-patches", "4", "--no-val", "--threads", "1", "--out", str(out)]) == 0
        s, d = load_model(out / "model")
        assert d.kind == "student" and d.training["init"] == init if hasattr(d, "training") else True
        assert d.extra["training"]["distill"] == distill
        assert d.provenance["teacher"]["kind"] == "teacher"
        assert len(s.cfg.widths) == 2 * 1 + 2


def test_aware_distillation_needs_memsr_init(photo_dir, tmp_path, capsys):
    assert train_cli.main(teacher_args(photo_dir, tmp_path / "t", steps=1)) == 0
    rc = train_cli.main(["student", "--teacher", str(tmp_path / "t" / "model"), "--data", str(photo_dir),
                         "--init", "random", "--distill", "aware", "--no-val", "--out", str(tmp_path / "s")])
    assert rc == 2 and "needs --init memsr" in capsys.readouterr().err


def test_ddp_two_processes_end_with_identical_weights(photo_dir, tmp_path):
    out = tmp_path / "ddp"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "memsr_deploy.cli.train",
                        *teacher_args(photo_dir, out, steps=4)], env=ENV, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    d0 = (out / "ranks" / "rank0.sha256").read_text()
    d1 = (out / "ranks" / "rank1.sha256").read_text()
    assert d0 == d1
    _, desc = load_model(out / "model")
    assert desc.provenance["world_size"] == 2
