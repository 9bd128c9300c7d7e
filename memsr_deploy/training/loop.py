"""One training loop for teachers and students: L1 (+ distillation) with Adam, LR schedule, periodic validation,
atomic checkpoints with exact resume, and DDP under torchrun.

Exact resume: the batch at step t is a pure function of (seed, t, rank), the LR a pure function of t, and the
checkpoint holds model, optimiser, weight average, step, loss history, probes, torch RNG and elapsed time. A run
killed after a checkpoint and resumed reproduces the uninterrupted run's loss curve and weights bit for bit (on
the same machine and thread count).

Faults: a non-finite loss stops the run at that step with one line (before the optimiser step, so nothing
non-finite is ever checkpointed); SIGTERM / SIGINT finish the step, checkpoint it and exit 143 / 130
(interrupt.py); checkpoints are atomic, checked when read, and the previous one is kept (checkpoint.py).
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, asdict, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..errors import MemsrError
from ..outputs.atomic import atomic_path, remove_dead_temps
from .checkpoint import RunCheckpoints, nonfinite_tensors
from .distributed import World, barrier, max_over_ranks
from .interrupt import DeferredStop, stop_exception
from .schedule import lr_at
from .weight_average import WeightAverage


@dataclass
class TrainConfig:
    steps: int = 3000
    batch: int = 16                 # patches per step per process
    lr: float = 2e-4
    schedule: str = "cosine"
    warmup: int = 0
    val_every: int = 250
    ckpt_every: int = 250
    seed: int = 0
    out: str = "runs/train"
    resume: bool = True
    halt_after: int = 0             # testing aid: exit abruptly after this step's checkpoint, like a kill
    signal_at: int = 0              # testing aid: raise signal_num in this step (handled at the step's end)
    signal_num: int = 15            # (SIGTERM)
    max_seconds: float = 0.0        # stop early (with a checkpoint) after this much training time; 0 = no limit
    ema: float = 0.0                # decay of the weight average that is validated and saved; 0 = the raw weights
    # save the raw weights instead of the average when they validate better after the last step. Only for
    # validation on held-out training photos: choosing on the evaluation photos would tune on them.
    keep_better: bool = False
    sampler: str = ""               # the patch sampler's settings (flat threshold, channel shuffle, flat colours), as text


@dataclass
class Task:
    """What is trained: the module the optimiser and DDP see, its loss, and what is validated and saved."""
    module: nn.Module
    loss: Callable                  # (module, lr, hr, step, total) -> (loss tensor, dict of floats)
    eval_model: Callable[[], nn.Module]
    meta: dict = field(default_factory=dict)
    # (module, lr, hr, step, total) -> dict of floats, measured at step 0 and at every validation (e.g. the
    # distillation's gradient ratio); recorded in probe.csv and the checkpoint
    probe: Callable | None = None
    # applied once to the model that is saved, after training (e.g. the int8 stage's tail bias correction);
    # it may add what it measured to ``meta``
    finish: Callable[[nn.Module], nn.Module] | None = None


@dataclass
class TrainResult:
    steps_done: int
    seconds: float
    history: list                   # [step, loss] per step
    val: list                       # [step, seconds, psnr] per validation
    resumed_from: int = 0           # step of the checkpoint this run continued (0: fresh start)
    resume_changes: dict = field(default_factory=dict)  # setting -> {"checkpoint": old, "now": new}
    probes: list = field(default_factory=list)  # [step, {name: value}] per probe
    # with a weight average and keep_better: {"weights": "raw" | "average", "val_psnr_y": of the saved weights,
    # "average_val_psnr_y", "raw_val_psnr_y"}
    saved: dict = field(default_factory=dict)

# Settings a resumed run may change (the curve then differs from an uninterrupted run: warned and recorded).
# steps among them: the LR schedule is a function of the total, so a raised --steps is another schedule.
RESUME_SETTINGS = ("steps", "seed", "lr", "batch", "schedule", "warmup", "ema", "sampler")


def patch_batch(dataset, first: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(lr, hr) of the ``n`` patches from index ``first`` on."""
    pairs = [dataset[first + i] for i in range(n)]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def batch_at(dataset, step: int, batch: int, world: World):
    """The patches of one step on one rank: indices (step * world + rank) * batch + i, each deterministic."""
    return patch_batch(dataset, (step * world.size + world.rank) * batch, batch)


def state_digest(module: nn.Module) -> str:
    buf = io.BytesIO()
    for k, v in sorted(module.state_dict().items()):
        buf.write(k.encode())
        buf.write(v.detach().cpu().contiguous().numpy().tobytes())
    return hashlib.sha256(buf.getvalue()).hexdigest()


# what train() writes into the run folder besides the checkpoints (rewritten from the checkpoint at each save)
RUN_CSVS = ("train.csv", "val.csv", "probe.csv")


def _write_csv(path: Path, header: list[str], rows: list) -> None:
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(header)
                w.writerows(rows)
    except OSError as e:
        raise MemsrError(f"could not write ({e.strerror or e}); the previous one is kept", path) from None


def _arch(task: Task) -> dict:
    """What must not change across a resume: the kind and the network's constructor config."""
    cfg = getattr(task.eval_model(), "cfg", None)
    return {"kind": task.meta.get("kind"), **(cfg.to_dict() if cfg is not None else {})}


def _check_resume(state: dict, task: Task, module: nn.Module, ckpt_path: Path) -> None:
    """Refuse to continue a checkpoint of another architecture or scale (before anything is overwritten)."""
    hint = "use another --out, or --no-resume --overwrite to start over"
    saved, now = state.get("arch"), _arch(task)
    if saved is not None and saved != now:
        diff = ", ".join(f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now))
                         if saved.get(k) != now.get(k))
        raise MemsrError(f"checkpoint is of another architecture ({diff}); {hint}", ckpt_path)
    mine = module.state_dict()
    theirs = state.get("model", {})
    for k in sorted(set(mine) | set(theirs)):
        a, b = theirs.get(k), mine.get(k)
        if a is None or b is None or tuple(a.shape) != tuple(b.shape):
            got = "missing" if a is None else tuple(a.shape)
            want = "absent" if b is None else tuple(b.shape)
            raise MemsrError(f"checkpoint is of another architecture or scale (tensor {k}: checkpoint {got}, "
                             f"this run {want}); {hint}", ckpt_path)


def _resume_changes(state: dict, cfg: TrainConfig) -> tuple[dict, dict]:
    """(changes against the checkpoint's settings, the same merged with earlier resumes' changes)."""
    old = state.get("config", {})
    now = asdict(cfg)
    new = {k: {"checkpoint": old[k], "now": now[k]} for k in RESUME_SETTINGS if k in old and old[k] != now[k]}
    merged = {k: dict(v) for k, v in state.get("resume_changes", {}).items()}
    for k, v in new.items():
        merged[k] = {"checkpoint": merged.get(k, v)["checkpoint"], "now": v["now"]}
    return new, merged


def train(task: Task, dataset, cfg: TrainConfig, world: World,
          validate: Callable[[nn.Module], float] | None = None) -> TrainResult:
    with DeferredStop() as stop:  # from the start: a signal while resuming or validating step 0 is deferred too
        return _train(task, dataset, cfg, world, validate, stop)


def _train(task: Task, dataset, cfg: TrainConfig, world: World, validate, stop: DeferredStop) -> TrainResult:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpts = RunCheckpoints(out)
    ckpt_path = ckpts.path
    if world.is_main:  # left by a run killed with SIGKILL
        ckpts.remove_temps()
        for name in RUN_CSVS:
            remove_dead_temps(out, Path(name).stem)
    module = task.module.to(world.device)
    net = DistributedDataParallel(module) if world.size > 1 else module
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr, betas=(0.9, 0.999))

    start, history, val, probes, elapsed, changes = 0, [], [], [], 0.0, {}
    saved_at = None  # the step of the last checkpoint on disk, on every rank
    arch = _arch(task)
    average = None
    found = ckpts.resume(warn=world.is_main) if cfg.resume else None
    if found is not None:
        state, ckpt_path = found
        _check_resume(state, task, module, ckpt_path)
        new, changes = _resume_changes(state, cfg)
        if new and world.is_main:
            print("warning: resuming with changed settings (the curve differs from an uninterrupted run): "
                  + ", ".join(f"{k} {v['checkpoint']} -> {v['now']}" for k, v in new.items()),
                  file=sys.stderr)
        module.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, history, val, elapsed = state["step"], state["history"], state["val"], state["elapsed"]
        saved_at = start
        probes = state.get("probes", [])
        torch.set_rng_state(state["torch_rng"])
        if cfg.ema and "ema" in state:
            average = WeightAverage(module, cfg.ema)
            average.load_state_dict(state["ema"])
        if world.is_main:
            print(f"resumed from {ckpt_path} at step {start}")

    if cfg.ema and average is None:  # a fresh run, or one resumed from a checkpoint made without an average
        average = WeightAverage(module, cfg.ema)

    def validated() -> float:
        if average is None:
            return validate(task.eval_model())
        with average.applied(module):
            return validate(task.eval_model())

    def checkpoint(step: int) -> None:
        nonlocal saved_at
        if world.is_main:
            state = {"model": module.state_dict(), "optimizer": opt.state_dict(), "step": step,
                     "history": history, "val": val, "elapsed": elapsed, "probes": probes,
                     "torch_rng": torch.get_rng_state(), "config": asdict(cfg),
                     "arch": arch, "resume_changes": changes,
                     **({"ema": average.state_dict()} if average is not None else {})}
            bad = nonfinite_tensors(state)
            if bad:  # a finite loss with weights that overflowed in the update
                raise MemsrError(f"step {step}: {len(bad)} tensors of the model, optimiser or weight average are "
                                 f"not finite (first: {bad[0]}): training diverged (try a lower --lr or a "
                                 f"--warmup); {ckpts.describe()}")
            ckpts.save(state)
            _write_csv(out / "train.csv", ["step", "loss"], history)
            _write_csv(out / "val.csv", ["step", "seconds", "psnr_y"], val)
            if probes:
                names = sorted({k for _, p in probes for k in p})
                _write_csv(out / "probe.csv", ["step", *names], [[s, *(p.get(k) for k in names)] for s, p in probes])
        saved_at = step
        barrier(world)

    def keep_saved(step: int) -> dict:
        """Leave in ``module`` the weights the run saves: the average it validated, or with keep_better the raw
        weights when they validate better. At the end of a cosine schedule the LR is near zero and the raw weights
        have settled, while a 0.999 average still carries the last ~1000 steps (measured on the EDSR-paper
        student: raw 40.66 against average 40.59 dB at step 6000)."""
        if average is None:
            return {}
        choice = {"weights": "average"}
        raw_better = 0.0
        if cfg.keep_better and validate is not None and world.is_main:
            # this step's validation is on record unless the run resumed at its end
            avg = val[-1][2] if val and val[-1][0] == step else validated()
            recorded = probes[-1][1] if probes and probes[-1][0] == step else {}
            raw = recorded.get("val_psnr_y_raw")
            if raw is None:
                raw = validate(task.eval_model())
            choice.update(average_val_psnr_y=avg, raw_val_psnr_y=raw, val_psnr_y=max(avg, raw))
            raw_better = 1.0 if raw > avg else 0.0
        if cfg.keep_better and max_over_ranks(world, [raw_better])[0]:
            choice["weights"] = "raw"
        else:
            average.copy_to(module)
        return choice

    def run_probe(step: int, lr_b, hr_b, measured: dict | None = None) -> None:
        result = dict(measured or {})
        if task.probe is not None and world.is_main:
            module.train()
            result.update(task.probe(module, lr_b.to(world.device), hr_b.to(world.device), step, cfg.steps) or {})
        if result:
            probes.append([step, result])
            tqdm.write(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in result.items()))

    if validate is not None and world.is_main and start == 0 and not val:
        val.append([0, 0.0, validate(task.eval_model())])  # the average starts at the init
    if start == 0 and not probes:
        run_probe(0, *batch_at(dataset, 0, cfg.batch, world))

    bar = tqdm(total=cfg.steps, initial=start, disable=not world.is_main, desc="train", unit="step",
               dynamic_ncols=True)
    step = start
    with bar:
        while step < cfg.steps:
            if max_over_ranks(world, [stop.signum])[0]:
                break
            t0 = time.perf_counter()
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg.steps, cfg.lr, cfg.schedule, cfg.warmup)
            lr_b, hr_b = batch_at(dataset, step, cfg.batch, world)
            module.train()
            loss, parts = task.loss(net, lr_b.to(world.device), hr_b.to(world.device), step, cfg.steps)
            value = loss.item()
            if max_over_ranks(world, [0.0 if math.isfinite(value) else 1.0])[0]:
                raise MemsrError(f"step {step + 1}: the loss is {value}: training diverged (try a lower --lr or a "
                                 f"--warmup); {ckpts.describe()}")
            if cfg.signal_at and step + 1 == cfg.signal_at:
                signal.raise_signal(cfg.signal_num)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if average is not None:
                average.update(module)
            step += 1
            dt = time.perf_counter() - t0
            elapsed += dt
            history.append([step, value])
            bar.set_postfix(loss=f"{history[-1][1]:.4f}", patches_s=f"{cfg.batch * world.size / dt:.1f}",
                            **{k: f"{v:.3g}" for k, v in parts.items() if k != "l1"})
            bar.update(1)
            timed_out = cfg.max_seconds and elapsed >= cfg.max_seconds
            last = step == cfg.steps or timed_out
            measured = {}
            if validate is not None and world.is_main and (step % cfg.val_every == 0 or last):
                val.append([step, round(elapsed, 2), validated()])
                if average is not None:  # the raw weights too, so the average's effect is on record
                    measured["val_psnr_y_raw"] = validate(task.eval_model())
                raw = f", raw weights {measured['val_psnr_y_raw']:.3f}" if measured else ""
                bar.write(f"step {step}: validation PSNR-Y {val[-1][2]:.3f} dB{raw} ({elapsed:.0f} s)")
            if step % cfg.val_every == 0 or last:
                run_probe(step, lr_b, hr_b, measured)
            if step % cfg.ckpt_every == 0 or last:
                checkpoint(step)
            if cfg.halt_after and step == cfg.halt_after:
                bar.close()
                os._exit(3)  # simulate a kill: no cleanup, nothing after the checkpoint
            if timed_out:
                break
        signum = int(max_over_ranks(world, [stop.signum])[0])
        if signum:
            if saved_at != step:
                checkpoint(step)
            raise stop_exception(signum, f"stopped at step {step}, checkpoint {ckpts.path}; "
                                         "the same command resumes from it")
    saved = keep_saved(step)

    if world.size > 1:  # each rank records what it ended with; all must agree
        (out / "ranks").mkdir(exist_ok=True)
        (out / "ranks" / f"rank{world.rank}.sha256").write_text(state_digest(module) + "\n")
    barrier(world)
    return TrainResult(step, elapsed, history, val, resumed_from=start, resume_changes=changes, probes=probes,
                       saved=saved)
