"""Where the cells run: on a phone through adb with LiteRT's benchmark_model, or here with the LiteRT Python
interpreter (``--host``). Both produce benchmark_model-style text that ``parse`` reads."""
from __future__ import annotations

import hashlib
import os
import posixpath
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from memsr_deploy.errors import MemsrError

from . import host_worker
from .adb import Adb, quote_command
from .matrix import Config, Model, tool_args
from .parse import BenchOutput, judge, parse_output

DEFAULT_REMOTE_DIR = "/data/local/tmp/memsr_bench"


@dataclass
class CellResult:
    status: str
    out: BenchOutput
    log: str
    command: str = ""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_mask(mask: str | None) -> str | None:
    if mask is None:
        return None
    m = mask.lower().removeprefix("0x")
    try:
        if int(m, 16) <= 0:
            raise ValueError
    except ValueError:
        raise MemsrError("--taskset wants a hexadecimal CPU mask such as f0", mask) from None
    return m


def _check_remote_dir(path: str) -> str:
    p = posixpath.normpath(path)
    if not p.startswith("/") or p == "/" or ".." in p.split("/"):
        raise MemsrError("--remote-dir must be an absolute folder on the device, e.g. " + DEFAULT_REMOTE_DIR, path)
    return p


def resolve_binary(arg: str | None) -> Path:
    src = arg or os.environ.get("MEMSR_BENCHMARK_MODEL")
    if not src:
        raise MemsrError("no benchmark_model binary: pass --benchmark-binary PATH or set MEMSR_BENCHMARK_MODEL "
                         "(LiteRT's Android build of tensorflow/lite/tools/benchmark:benchmark_model; "
                         "memsr does not ship it)", "benchmark_model")
    p = Path(src).expanduser()
    if not p.is_file():
        raise MemsrError("benchmark_model binary not found", p)
    return p


class DeviceRunner:
    mode = "device"

    def __init__(self, adb: Adb, binary: Path, remote_dir: str, warmup: int, runs: int, taskset: str | None,
                 serial: str | None, run_timeout: float):
        self.adb, self.binary = adb, binary
        self.remote_base = _check_remote_dir(remote_dir)
        self.warmup, self.runs, self.taskset = warmup, runs, _check_mask(taskset)
        self.serial, self.run_timeout = serial, run_timeout
        self.workdir: str | None = None
        self.remote_bin = ""
        self.remote_models: dict[int, str] = {}

    def _sh(self, tokens, what: str, timeout: float = 120):
        r = self.adb.shell(tokens, timeout=timeout)
        if r.timed_out or r.rc != 0:
            raise MemsrError(f"{what} failed on the device: {r.output.strip()[-300:] or f'exit {r.rc}'}",
                             self.workdir or self.remote_base)
        return r

    def open(self, models: list[Model]) -> dict:
        serial = self.adb.choose(self.serial)
        facts = self.adb.facts()
        facts["serial"] = serial
        # A fresh folder of our own inside the base, so that cleaning up can never touch anything else.
        self.workdir = posixpath.join(self.remote_base, f"run_{os.getpid()}_{int(time.time())}")
        self._sh(["mkdir", "-p", self.workdir], "creating the working folder")
        self.remote_bin = posixpath.join(self.workdir, "benchmark_model")
        self.adb.push(self.binary, self.remote_bin)
        self._sh(["chmod", "755", self.remote_bin], "chmod of benchmark_model")
        r = self.adb.shell(["test", "-x", self.remote_bin])
        probe = self.adb.shell([self.remote_bin, "--help"]) if r.rc == 0 else r
        if r.rc != 0 or probe.rc in (126, 127):
            said = probe.output.strip()[-200:].replace("\n", " ")
            raise MemsrError("benchmark_model is missing or not executable on the device (a noexec folder such as "
                             f"/sdcard, or a binary for another ABI than {facts.get('abi') or 'the device'}'s)"
                             + (f": {said}" if said else ""), self.remote_bin)
        for i, m in enumerate(models):
            # Keep the file's own name (it shows in the tool's log); the index avoids clashes between folders.
            remote = posixpath.join(self.workdir, f"m{i}_{m.path.name}")
            self.adb.push(m.path, remote)
            self.remote_models[id(m)] = remote
        tool = {"runner": "benchmark_model (LiteRT) over adb", "benchmark_model_file": self.binary.name,
                "benchmark_model_sha256": _sha256(self.binary), "adb": self.adb.version()}
        return {"device": facts, "tool": tool}

    def command(self, cfg: Config) -> list[str]:
        args = tool_args(cfg, self.remote_models[id(cfg.model)], self.warmup, self.runs)
        pre = ["taskset", self.taskset] if self.taskset else []
        return [*pre, self.remote_bin, *args]

    def run(self, cfg: Config) -> CellResult:
        tokens = self.command(cfg)
        r = self.adb.shell(tokens, timeout=self.run_timeout)
        out = parse_output(r.output)
        status = f"timeout after {self.run_timeout:g} s" if r.timed_out else judge(out, cfg.delegate, r.rc)
        return CellResult(status, out, r.output, quote_command(tokens))

    def close(self) -> None:
        if self.workdir is None:
            return
        try:
            self.adb.shell(["rm", "-rf", self.workdir], timeout=120)
            # The base folder goes too, but only when nothing else is left in it.
            self.adb.shell(["rmdir", self.remote_base], timeout=60)
        except MemsrError:
            pass
        self.workdir = None


class HostRunner:
    mode = "host"

    def __init__(self, warmup: int, runs: int, taskset: str | None, run_timeout: float):
        self.warmup, self.runs, self.taskset = warmup, runs, _check_mask(taskset)
        self.run_timeout = run_timeout

    def open(self, models: list[Model]) -> dict:
        import platform

        try:
            from importlib.metadata import version
            litert = version("ai-edge-litert")
        except Exception:  # noqa: BLE001 - a missing version string must not stop a benchmark
            litert = "unknown"
        from memsr_deploy.runtime.host import cpu_model
        cpu = cpu_model() or platform.processor() or ""
        facts = {"model": f"host: {platform.node()}", "manufacturer": "", "soc": cpu, "board": "", "hardware": "",
                 "android": "", "sdk": "", "abi": platform.machine(), "fingerprint": platform.platform(),
                 "cores": os.cpu_count(), "serial": "host"}
        tool = {"runner": "LiteRT Python interpreter (memsr host worker)", "ai_edge_litert": litert,
                "python": platform.python_version()}
        return {"device": facts, "tool": tool}

    def command(self, cfg: Config) -> list[str]:
        args = tool_args(cfg, str(cfg.model.path), self.warmup, self.runs)
        if self.taskset:
            args.append(f"--taskset={self.taskset}")
        return [sys.executable, host_worker.__file__, *args]

    def run(self, cfg: Config) -> CellResult:
        if cfg.delegate != "cpu":
            return CellResult("unavailable on host", BenchOutput(), "")
        argv = self.command(cfg)
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               timeout=self.run_timeout)
        except subprocess.TimeoutExpired as e:
            text = (e.stdout or b"").decode("utf-8", "replace")
            return CellResult(f"timeout after {self.run_timeout:g} s", parse_output(text), text)
        text = p.stdout.decode("utf-8", "replace")
        out = parse_output(text)
        return CellResult(judge(out, cfg.delegate, p.returncode), out, text, quote_command(argv))

    def close(self) -> None:
        pass
