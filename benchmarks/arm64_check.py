"""ARM64 check: the exported artefacts run on the aarch64 builds of ONNX Runtime, LiteRT and ncnn (the same
versions as this environment's, their aarch64 wheels from the package index), under qemu-user in an arm64
Debian root made by debootstrap, and compared with the x86-64 run and with PyTorch.

  python -m memsr_bench.arm64_check -o benchmarks/results   # both bundled students, every artefact (out/arm64)
  python -m memsr_bench.arm64_check --artefacts out/export_x2 --crops 1   # artefacts exported before (read only)

Needs root (chroot, binfmt_misc) and Debian's debootstrap, qemu-user-static and binfmt-support. The root is
built once (debootstrap minbase + python3; the wheels installed by the host's pip for the aarch64 platform, so
nothing pip-related runs emulated) and kept in ``MEMSR_ARM64_CACHE`` (default /var/cache/memsr-arm64), one folder
per Debian release and wheel versions. /sys is not mounted into the root: ONNX Runtime and LiteRT read it and
crash under qemu 7.2 when it is there.

Inside the root the artefacts run through memsr's own backend layer (``open_backend(artefact=...)``: the sidecar
decides the feeding, as ``memsr-upscale --artefact`` does), its sources copied in with this module, on 64x64 LR
crops of the evaluation photos (emulation is 300-500x slower than native). Per artefact:

  vs_x86       max |arm64 - x86-64| of the same backend on the same crops (outputs / value range)
  vs_torch     max abs diff and worst PSNR-Y against the float PyTorch model, judged by the export verification's
               limits for the precision (export/verify.py LIMITS)
  drop         mean PSNR-Y against HR of PyTorch minus that of the arm64 output, over the crops (and of the
               x86-64 output on the same crops, to compare)
  seconds      wall time of one crop, emulated (not a phone's speed)

ncnn artefacts run twice: as memsr runs them (fp32 arithmetic) and with ncnn's fp16 storage and arithmetic on,
which is ncnn's own default on CPUs that report fp16 (qemu's default CPU, ARMv8.2+ phones); the fp16 run is
judged by ``NCNN_FP16_LIMITS`` in export/verify.py. When this module exported the artefacts itself (no
``--artefacts``), each sidecar gets the results as ``verification.arm64``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import uuid
from importlib.metadata import version
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("MEMSR_ARM64_CACHE", "/var/cache/memsr-arm64"))
RELEASE, MIRROR = "bookworm", "http://deb.debian.org/debian"
RUNTIMES = ("onnxruntime", "ai-edge-litert", "ncnn")
WHEELS = (*RUNTIMES, "numpy", "safetensors")  # safetensors: imported by memsr's model description module
PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_24_aarch64",
             "manylinux_2_17_aarch64", "manylinux2014_aarch64")
TOOLS = {"debootstrap": "debootstrap", "qemu-aarch64-static": "qemu-user-static", "update-binfmts": "binfmt-support"}
BINFMT = Path("/proc/sys/fs/binfmt_misc")
ARTEFACTS = (("onnx", "fp32"), ("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "dynamic"), ("tflite", "int8"),
             ("ncnn", "fp32"), ("ncnn", "int8"))
MODELS = ("memsr-x2", "memsr-x4")
CROP = 64
GUEST_DIR = "memsr-arm64-run"


# ---------------------------------------------------------------- the arm64 root (host side)

def missing_tools() -> str | None:
    """One line naming what to install, or None."""
    absent = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if absent:
        return f"the arm64 check needs Debian's {', '.join(absent)} (apt-get install {' '.join(absent)})"
    if os.geteuid() != 0:
        return "the arm64 check needs root (chroot into the arm64 root, binfmt_misc)"
    return None


def _error(msg: str, where=None):
    from memsr_deploy.errors import MemsrError
    return MemsrError(msg, where)


def ensure_binfmt() -> None:
    """qemu-aarch64 registered with binfmt_misc (mounted first where the machine has not)."""
    entry = BINFMT / "qemu-aarch64"
    if entry.exists() and entry.read_text().startswith("enabled"):
        return
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "binfmt_misc", "-t", "binfmt_misc", str(BINFMT)], check=False,
                       capture_output=True)
    subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], check=False, capture_output=True)
    if not (entry.exists() and entry.read_text().startswith("enabled")):
        raise _error("qemu-aarch64 is not registered with binfmt_misc (update-binfmts --enable qemu-aarch64 "
                     "failed; is binfmt_misc available in this container?)", entry)


def wheel_versions() -> dict[str, str]:
    return {w: version(w) for w in WHEELS}


def root_dir(cache: Path = CACHE) -> Path:
    key = json.dumps([RELEASE, wheel_versions()], sort_keys=True)
    return cache / f"{RELEASE}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


READY = ".memsr-ready.json"


def _run_logged(cmd: list[str], log: Path, what: str) -> None:
    with open(log, "ab") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise _error(f"{what} failed (exit {rc}); its output is in {log}")


def ensure_root(cache: Path = CACHE, say=print) -> Path:
    """The arm64 root for this environment's runtime versions, built when absent (minutes, once)."""
    why = missing_tools()
    if why:
        raise _error(why)
    ensure_binfmt()
    root = root_dir(cache)
    if (root / READY).exists():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    import fcntl
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run building the same root: wait for it, then use its root
        if (root / READY).exists():
            return root
        return _build_root(cache, root, say)


def _build_root(cache: Path, root: Path, say) -> Path:
    for stale in cache.glob(".build-*"):  # a build killed half way
        pid = stale.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    build = cache / f".build-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    log = cache / f"{root.name}.log"
    log.write_text("")
    try:
        t0 = time.perf_counter()
        say(f"arm64 root: debootstrap {RELEASE} minbase + python3 into {root} (minutes, once; log {log})")
        _run_logged(["debootstrap", "--arch=arm64", "--variant=minbase", "--include=python3", RELEASE, str(build),
                     MIRROR], log, "debootstrap")
        py = sorted((p.name for p in (build / "usr/bin").glob("python3.*") if re.fullmatch(r"python3\.\d+", p.name)),
                    key=lambda n: int(n.split(".")[1]))
        if not py:
            raise _error(f"debootstrap gave no python3 in {build}")
        pyver = py[-1][len("python"):]
        say(f"arm64 root: aarch64 wheels for python {pyver}: " + ", ".join(f"{k} {v}" for k, v in
                                                                           wheel_versions().items()))
        # the runtimes' own dependencies come along at the versions pip picks for aarch64
        _run_logged([sys.executable, "-m", "pip", "install", "-q", "--only-binary=:all:", "--target",
                     str(build / "opt/memsr-site"), "--python-version", pyver, "--implementation", "cp",
                     *[a for p in PLATFORMS for a in ("--platform", p)],
                     *[f"{k}=={v}" for k, v in wheel_versions().items()]], log, "pip install of the aarch64 wheels")
        facts = {"release": RELEASE, "python": pyver, "wheels": wheel_versions(),
                 "build_seconds": round(time.perf_counter() - t0, 1)}
        (build / READY).write_text(json.dumps(facts, indent=2) + "\n")
        shutil.rmtree(root, ignore_errors=True)
        os.replace(build, root)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    say(f"arm64 root ready in {facts['build_seconds']:.0f} s")
    return root


def root_facts(root: Path) -> dict:
    return json.loads((root / READY).read_text())


# ---------------------------------------------------------------- running in the root (host side)

def _copy_sources(dest: Path) -> None:
    """memsr_deploy (code only) and this module, for the guest's imports."""
    import memsr_deploy
    src = Path(memsr_deploy.__file__).parent
    shutil.copytree(src, dest / "memsr_deploy", ignore=shutil.ignore_patterns("__pycache__", "*.safetensors",
                                                                               "*.png", "*.jpg"))
    shutil.copy2(__file__, dest / "arm64_guest.py")


def run_in_root(root: Path, sidecars: list[Path], inputs: dict[int, np.ndarray], threads: int = 1,
                qemu_cpu: str | None = None, timeout: float = 3600) -> dict:
    """Run every artefact (and the ncnn ones again with fp16 on) on ``inputs[scale]`` inside the root; returns
    {"facts": guest facts, "runs": [{"sidecar", "ncnn_fp16", "seconds", "out"}]}."""
    work = root / "tmp" / f"{GUEST_DIR}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    try:
        _copy_sources(work)
        jobs = []
        for i, sc in enumerate(sidecars):
            from memsr_deploy.formats.sidecar import read_sidecar
            s = read_sidecar(sc)
            d = work / f"a{i}"
            d.mkdir()
            for f in (sc, s.artefact_path(), s.data_path()):
                if f is not None:
                    shutil.copy2(f, d / f.name)
            for fp16 in ((False, True) if s.target == "ncnn" else (False,)):
                jobs.append({"sidecar": f"a{i}/{sc.name}", "ncnn_fp16": fp16, "scale": s.scale,
                             "host_sidecar": str(sc)})
        np.savez(work / "inputs.npz", **{f"x{s}": x for s, x in inputs.items()})
        (work / "jobs.json").write_text(json.dumps({"threads": threads, "jobs": jobs}))
        guest = Path("/") / work.relative_to(root)
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONPATH": f"/opt/memsr-site:{guest}",
               "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        if qemu_cpu:
            env["QEMU_CPU"] = qemu_cpu
        proc = subprocess.run([shutil.which("chroot") or "/usr/sbin/chroot", str(root), "/usr/bin/python3", f"{guest}/arm64_guest.py", "--guest",
                               str(guest)], env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            raise _error(f"the arm64 run failed: {tail[0]}", root)
        facts = json.loads((work / "facts.json").read_text())
        outs = np.load(work / "outputs.npz")
        for k, job in enumerate(jobs):
            job["out"] = outs[f"y{k}"]
            job["seconds"] = facts["seconds"][k]
        return {"facts": facts["guest"], "runs": jobs}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- the guest (runs inside the root)

def guest_main(work: Path) -> int:
    from memsr_deploy.runtime.backends import open_backend
    spec = json.loads((work / "jobs.json").read_text())
    inputs = np.load(work / "inputs.npz")
    outs, secs = {}, []
    for k, job in enumerate(spec["jobs"]):
        backend = open_backend(artefact=work / job["sidecar"], threads=spec["threads"], ncnn_fp16=job["ncnn_fp16"])
        x = inputs[f"x{job['scale']}"]
        t0 = time.perf_counter()
        outs[f"y{k}"] = np.concatenate([backend.run(x[i:i + 1]) for i in range(len(x))])
        secs.append((time.perf_counter() - t0) / len(x))
        backend.close()
    import ncnn
    from memsr_deploy.runtime.backends.ncnn_backend import fp16_effective
    versions = {w: version(w) for w in WHEELS}
    facts = {"machine": platform.machine(), "python": platform.python_version(), "versions": versions,
             "ncnn_fp16_effective": fp16_effective(), "ncnn_cpu_count": ncnn.get_cpu_count(),
             "qemu_cpu": os.environ.get("QEMU_CPU", "default (max)")}
    np.savez(work / "outputs.npz", **outs)
    (work / "facts.json").write_text(json.dumps({"guest": facts, "seconds": secs}))
    return 0


# ---------------------------------------------------------------- comparison (host side)

def crops(scale: int, count: int, size: int = CROP) -> tuple[np.ndarray, np.ndarray]:
    """(LR NCHW [0, 1], HR NCHW) centre crops of the first ``count`` evaluation photos."""
    from memsr_export.photos import eval_pairs, to_nchw
    lrs, hrs = [], []
    for _, lr, hr in eval_pairs(scale, count):
        y, x = max(0, (lr.shape[0] - size) // 2), max(0, (lr.shape[1] - size) // 2)
        lrs.append(to_nchw(lr[y:y + size, x:x + size]))
        hrs.append(to_nchw(hr[y * scale:(y + size) * scale, x * scale:(x + size) * scale]))
    return np.concatenate(lrs), np.concatenate(hrs)


def host_outputs(sidecar: Path, x: np.ndarray, threads: int) -> np.ndarray:
    from memsr_deploy.runtime.backends import open_backend
    from memsr_deploy.runtime.backends.quiet import quiet
    with quiet():
        backend = open_backend(artefact=sidecar, threads=threads)
    y = np.concatenate([backend.run(x[i:i + 1]) for i in range(len(x))])
    backend.close()
    return y


def judge(arm: np.ndarray, x86: np.ndarray, ref: np.ndarray, hr: np.ndarray, scale: int, limits) -> dict:
    """The figures above for one run; ``limits``: a verify.Limits row."""
    from dataclasses import asdict
    from memsr_export.photos import psnr_y, to_hwc
    n = len(arm)
    worst = min(psnr_y(to_hwc(arm[i:i + 1]), to_hwc(ref[i:i + 1])) for i in range(n))
    hr_ref = np.mean([psnr_y(to_hwc(ref[i:i + 1]), to_hwc(hr[i:i + 1]), crop=scale) for i in range(n)])
    hr_arm = np.mean([psnr_y(to_hwc(arm[i:i + 1]), to_hwc(hr[i:i + 1]), crop=scale) for i in range(n)])
    hr_x86 = np.mean([psnr_y(to_hwc(x86[i:i + 1]), to_hwc(hr[i:i + 1]), crop=scale) for i in range(n)])
    r = {"max_abs_diff_vs_x86": float(np.abs(arm - x86).max()), "max_abs_diff_vs_torch": float(np.abs(arm - ref).max()),
         "psnr_y_vs_torch": worst, "psnr_y_drop": float(hr_ref - hr_arm), "psnr_y_drop_x86": float(hr_ref - hr_x86),
         "limits": asdict(limits)}
    return apply_limits(r, limits)


def apply_limits(r: dict, limits) -> dict:
    """``passed``, ``failures`` and ``drop_goal_met`` of one run's figures under ``limits``."""
    from dataclasses import asdict
    failures = []
    if limits.max_abs_diff is not None and not r["max_abs_diff_vs_torch"] < limits.max_abs_diff:
        failures.append(f"max abs diff vs PyTorch {r['max_abs_diff_vs_torch']:.3g} >= {limits.max_abs_diff:g}")
    if not r["psnr_y_vs_torch"] >= limits.min_psnr_vs_torch:
        failures.append(f"PSNR-Y vs PyTorch {r['psnr_y_vs_torch']:.2f} dB < {limits.min_psnr_vs_torch:g} dB")
    if not r["psnr_y_drop"] <= limits.max_drop:
        failures.append(f"PSNR-Y drop {r['psnr_y_drop']:.3f} dB > {limits.max_drop:g} dB")
    r.pop("drop_goal_met", None)
    if limits.goal_drop is not None:
        r["drop_goal_met"] = r["psnr_y_drop"] <= limits.goal_drop
    r["limits"], r["failures"], r["passed"] = asdict(limits), failures, not failures
    return r


def check(sidecars: list[Path], root: Path, crops_per_model: int = 4, threads: int = 1, size: int = CROP,
          qemu_cpu: str | None = None) -> dict:
    """Run ``sidecars`` on arm64 and x86-64, compare; returns {"guest": facts, "results": [...]}."""
    from memsr_deploy.formats.sidecar import read_sidecar
    from memsr_export.source import load_source
    from memsr_export.verify import LIMITS, NCNN_FP16_LIMITS
    scs = {p: read_sidecar(p) for p in sidecars}
    by_scale = {}
    for p, sc in scs.items():
        by_scale.setdefault(sc.scale, crops(sc.scale, crops_per_model, size))
    arm = run_in_root(root, list(scs), {s: lr for s, (lr, _) in by_scale.items()}, threads, qemu_cpu)
    refs, results = {}, []
    for run in arm["runs"]:
        p = Path(run["host_sidecar"])
        sc = scs[p]
        lr, hr = by_scale[sc.scale]
        model = sc.source_model.get("path") or sc.source_model["name"]
        if model not in refs:
            src = load_source(model)
            refs[model] = np.concatenate([src.run(lr[i:i + 1] * src.value_range) / src.value_range
                                          for i in range(len(lr))])
        x86 = host_outputs(p, lr, threads)
        limits = (NCNN_FP16_LIMITS if run["ncnn_fp16"] else LIMITS)[sc.precision]
        r = judge(run["out"], x86, refs[model], hr, sc.scale, limits)
        results.append({"sidecar": str(p), "model": sc.source_model["name"], "target": sc.target,
                        "precision": sc.precision, "mode": "ncnn fp16" if run["ncnn_fp16"] else "as memsr runs it",
                        "ncnn_fp16": run["ncnn_fp16"], "seconds_emulated": round(run["seconds"], 2), **r,
                        "inputs": f"{len(lr)} x {size}x{size} LR crops"})
    return {"guest": arm["facts"], "results": results}


def record_in_sidecars(report: dict, root_info: dict) -> None:
    """verification.arm64 in each sidecar this run exported (the runs of one artefact together)."""
    from memsr_deploy.formats.sidecar import read_sidecar, write_sidecar
    grouped: dict[str, list[dict]] = {}
    for r in report["results"]:
        grouped.setdefault(r["sidecar"], []).append(r)
    for path, runs in grouped.items():
        sc = read_sidecar(path)
        sc.verification["arm64"] = {
            "emulator": f"qemu-user {root_info.get('qemu', '')}".strip(), "cpu": report["guest"]["qemu_cpu"],
            "root": f"Debian {root_info['release']} arm64, python {root_info['python']}",
            "runtime": {k: report["guest"]["versions"][k] for k in RUNTIMES},
            "runs": [{k: v for k, v in r.items() if k not in ("sidecar", "model", "target", "precision")}
                     for r in runs]}
        write_sidecar(sc, path)


# ---------------------------------------------------------------- the result file

def qemu_version() -> str:
    out = subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0].split("version")[-1].strip() if out else "?"


def markdown(report: dict, root_info: dict, command: str) -> str:
    g = report["guest"]
    lines = ["# Exported artefacts on ARM64 (aarch64 runtimes under qemu-user)", "",
             f"Command: `{command}` (benchmarks/arm64_check.py). Host: x86-64, 2 shared cores. Guest: "
             f"{g['machine']}, Debian {root_info['release']} arm64 root (debootstrap minbase), Python {g['python']}, "
             f"qemu-user {root_info.get('qemu', '?')}, QEMU_CPU {g['qemu_cpu']}; runtimes "
             + ", ".join(f"{k} {g['versions'][k]}" for k in RUNTIMES)
             + " (aarch64 wheels, the versions of the x86-64 environment). "
             f"ncnn reports fp16 arithmetic on this CPU: {g['ncnn_fp16_effective']}.", "",
             "Inputs: " + report["results"][0]["inputs"] + " of the evaluation photos per model. vs x86: max "
             "|arm64 - x86-64| of the same backend (outputs / value range). vs torch: against the float PyTorch "
             "model, judged by the export verification's limits (export/verify.py; ncnn fp16 by NCNN_FP16_LIMITS). "
             "Drop: mean PSNR-Y against HR, PyTorch minus arm64, over the crops. Seconds: one crop, **emulated** "
             "(300-500x slower than native; not a phone's speed).", "",
             "| model | artefact | mode | vs x86 | vs torch | PSNR-Y vs torch | drop dB (x86) | limits met "
             "| s (emulated) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        lim = r["limits"]
        lines.append(f"| {r['model']} | {r['target']} {r['precision']} | {r['mode']} | {r['max_abs_diff_vs_x86']:.2e} "
                     f"| {r['max_abs_diff_vs_torch']:.2e} | {r['psnr_y_vs_torch']:.2f} | {r['psnr_y_drop']:+.3f} "
                     f"({r['psnr_y_drop_x86']:+.3f}) | "
                     f"{'yes' if r['passed'] else 'NO: ' + '; '.join(r['failures'])} (abs "
                     f"{lim['max_abs_diff'] if lim['max_abs_diff'] is not None else '-'}, >= "
                     f"{lim['min_psnr_vs_torch']:g} dB, drop <= {lim['max_drop']:g}) | {r['seconds_emulated']:.2f} |")
    return "\n".join(lines) + "\n"


def tf_lines(sidecars: list[Path]) -> list[str]:
    """TensorFlow's checks as the x86 export recorded them (export/tf_checks.py), for the TFLite artefacts."""
    from memsr_deploy.formats.sidecar import read_sidecar
    rows = []
    for p in dict.fromkeys(sidecars):
        sc = read_sidecar(p)
        tf = sc.verification.get("tensorflow")
        if sc.target != "tflite" or not tf or "interpreter" not in tf:
            continue
        gpu = tf["gpu_compatibility"]
        rows.append(f"| {sc.source_model['name']} | tflite {sc.precision} | {tf['version']} | "
                    f"{'yes' if tf['interpreter']['equal'] else 'NO'} ({tf['interpreter']['max_abs_diff_vs_litert']:.1e}) "
                    f"| {'compatible' if gpu['compatible'] else 'warnings: ' + '; '.join(gpu['warnings'])} |")
    if not rows:
        return []
    return ["", "TensorFlow's own checks of the same TFLite files at export (x86-64; `memsr[tf]`, "
            "export/tf_checks.py, the sidecars' `verification.tensorflow`):", "",
            "| model | artefact | tensorflow | interpreter equals LiteRT (max diff) | GPU delegate analyzer |",
            "|---|---|---|---|---|", *rows]


def export_artefacts(out: Path, models=MODELS, artefacts=ARTEFACTS, calib=None, max_photos=None) -> list[Path]:
    from tqdm import tqdm
    from memsr_export import export_model
    from memsr_deploy.errors import MemsrError
    from memsr_deploy.formats.sidecar import read_sidecar
    from memsr_export.api import output_names
    from memsr_export.source import load_source
    paths = []
    for model in models:
        source = load_source(model)
        for target, precision in tqdm(artefacts, desc=f"export {model}", unit="artefact"):
            done = out / output_names(source, target, precision)[1]
            try:  # this script's own export folder: an artefact it exported and verified before is kept
                if read_sidecar(done).verification.get("passed") is True:
                    paths.append(done)
                    continue
            except MemsrError:
                pass
            paths.append(export_model(source, target, precision, out_dir=out, calib_dir=calib,
                                      max_photos=max_photos, progress=False))
    return paths


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--guest":
        return guest_main(Path(sys.argv[2]))
    from memsr_deploy.cli.args import summary
    from memsr_deploy.errors import cli_errors

    @cli_errors
    def run(argv) -> int:
        p = argparse.ArgumentParser(prog="memsr_bench.arm64_check", description=summary(__doc__))
        p.add_argument("-o", "--out", default="benchmarks/results", help="folder for arm64.md / arm64.json")
        p.add_argument("--artefacts", help="sidecars folder of artefacts exported before (default: export the "
                                           "bundled students' artefacts into --export-dir)")
        p.add_argument("--export-dir", default="out/arm64", help="where the artefacts are exported (default "
                                                                 "out/arm64); their sidecars get verification.arm64")
        p.add_argument("--max-photos", type=int, help="x86 export verification on the first N photos only")
        p.add_argument("--calib", help="int8 calibration folder for the export (default: data/photos/train "
                                       "when present)")
        p.add_argument("--crops", type=int, default=4, help="64x64 crops per model (default 4)")
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--qemu-cpu", help="QEMU_CPU for the guest (default: qemu's, which reports fp16)")
        p.add_argument("--cache", default=str(CACHE), help=f"where the arm64 root is kept (default {CACHE})")
        args = p.parse_args(argv)
        out = Path(args.out)
        root = ensure_root(Path(args.cache))
        info = {**root_facts(root), "qemu": qemu_version()}
        if args.artefacts:
            sidecars = sorted(Path(args.artefacts).glob("*.json"))
            if not sidecars:
                raise _error("no sidecars in the artefacts folder", args.artefacts)
        else:
            calib = args.calib or ("data/photos/train" if Path("data/photos/train").is_dir() else None)
            sidecars = export_artefacts(Path(args.export_dir), calib=calib, max_photos=args.max_photos)
        report = check(sidecars, root, args.crops, args.threads, qemu_cpu=args.qemu_cpu)
        if not args.artefacts:
            record_in_sidecars(report, info)
        from memsr_deploy.outputs.atomic import write_text
        report["root"] = info
        write_text(out / "arm64.json", json.dumps(report, indent=1) + "\n")
        cmd = "python -m memsr_bench.arm64_check " + " ".join(argv or sys.argv[1:])
        text = markdown(report, info, cmd.strip()) + "\n".join(tf_lines(sidecars)) + "\n"
        write_text(out / "arm64.md", text)
        failed = [r for r in report["results"] if not r["passed"]]
        print(text)
        return 1 if failed else 0
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
