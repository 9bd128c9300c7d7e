"""The few adb operations the benchmark needs: pick the device, describe it, push files, run shell commands.

Every remote command is built from tokens that each go through ``shlex.quote`` (adb hands the command string to
the device's ``sh -c``), and adb itself is always called with an argument list, never through a local shell, so
file names with spaces or shell characters arrive as one argument and cannot run anything. The exit status of
a remote command is read from a marker we echo after it, because older adb versions always exit 0.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from memsr_deploy.errors import MemsrError

RC_MARK = "__MEMSR_RC="
_RC_LINE = re.compile(rf"^{RC_MARK}(\d+)\s*$", re.M)
_PROP = re.compile(r"^\[([^\]]+)\]: \[(.*)\]\s*$")

# Runs once, on the device: no user input goes into it.
FACTS_SCRIPT = (
    "getprop; "
    "echo __MEMSR_CORES=$(nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo); "
    "for c in /sys/devices/system/cpu/cpu[0-9]*; do "
    "echo __MEMSR_FREQ=${c##*/cpu}=$(cat $c/cpufreq/cpuinfo_max_freq 2>/dev/null); done"
)


def quote_command(tokens) -> str:
    return " ".join(shlex.quote(str(t)) for t in tokens)


@dataclass
class ShellResult:
    rc: int | None       # None when the marker never came back (the command was cut off)
    output: str          # stdout and stderr of the remote command, marker removed
    timed_out: bool = False


def find_adb(adb: str | None) -> str:
    exe = shutil.which(adb or "adb")
    if not exe:
        raise MemsrError("adb not found on PATH (install Android platform-tools or pass --adb PATH)", adb or "adb")
    return exe


class Adb:
    def __init__(self, exe: str, serial: str | None = None, timeout: float = 120.0):
        self.exe, self.serial, self.timeout = exe, serial, timeout

    def _argv(self, *args) -> list[str]:
        return [self.exe, *(["-s", self.serial] if self.serial else []), *map(str, args)]

    def _call(self, argv: list[str], timeout: float | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  timeout=timeout or self.timeout)
        except FileNotFoundError:
            raise MemsrError("adb could not be started", self.exe) from None

    @staticmethod
    def _text(b: bytes) -> str:
        return b.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")

    def version(self) -> str:
        try:
            p = self._call([self.exe, "version"], timeout=30)
        except subprocess.TimeoutExpired:
            return ""
        lines = self._text(p.stdout).strip().splitlines()
        return " / ".join(lines[:2])

    def devices(self) -> list[tuple[str, str]]:
        """(serial, state) of every attached device; state is "device" when it is ready."""
        try:
            p = self._call([self.exe, "devices"], timeout=60)
        except subprocess.TimeoutExpired:
            raise MemsrError("`adb devices` did not answer within 60 s", self.exe) from None
        if p.returncode != 0:
            raise MemsrError(f"`adb devices` failed: {self._text(p.stdout).strip()[:200]}", self.exe)
        out = []
        for line in self._text(p.stdout).splitlines():
            parts = line.split()
            if len(parts) >= 2 and not line.startswith(("List of devices", "*", "adb ")):
                out.append((parts[0], parts[1]))
        return out

    def choose(self, serial: str | None) -> str:
        """Select the device to use; refuse what cannot be used, with the reason."""
        devs = self.devices()
        if not devs:
            raise MemsrError("no Android device attached (check the USB cable and that USB debugging is on)",
                             "adb devices")
        if serial is None:
            if len(devs) > 1:
                listed = ", ".join(f"{s} ({st})" for s, st in devs)
                raise MemsrError(f"{len(devs)} devices attached ({listed}): choose one with --serial",
                                 "adb devices")
            serial = devs[0][0]
        state = dict(devs).get(serial)
        if state is None:
            raise MemsrError(f"device {serial!r} is not attached (attached: {', '.join(s for s, _ in devs)})",
                             "adb devices")
        if state == "unauthorized":
            raise MemsrError(f"device {serial} is unauthorized: unlock it and accept the USB debugging prompt",
                             "adb devices")
        if state != "device":
            raise MemsrError(f"device {serial} is {state}, not ready (reconnect it or restart adb)", "adb devices")
        self.serial = serial
        return serial

    def shell(self, tokens=None, script: str | None = None, timeout: float | None = None) -> ShellResult:
        """Run a command on the device: ``tokens`` are quoted one by one; ``script`` is sent as written
        (only for fixed text that holds no names or user input)."""
        cmd = script if script is not None else quote_command(tokens)
        remote = f"{cmd} 2>&1; echo {RC_MARK}$?"
        try:
            p = self._call(self._argv("shell", remote), timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return ShellResult(None, self._text(e.stdout or b""), timed_out=True)
        text = self._text(p.stdout)
        m = None
        for m in _RC_LINE.finditer(text):
            pass
        if m is None:
            if p.returncode != 0:
                raise MemsrError(f"adb shell failed: {text.strip()[-300:] or f'exit {p.returncode}'}",
                                 self.serial or "adb")
            return ShellResult(None, text)
        return ShellResult(int(m.group(1)), (text[:m.start()] + text[m.end():]).rstrip("\n"))

    def push(self, local: Path, remote: str) -> None:
        # Local paths are absolute, so a name that starts with "-" is never read as an option.
        local = Path(local).resolve()
        try:
            p = self._call(self._argv("push", str(local), remote), timeout=max(self.timeout, 600))
        except subprocess.TimeoutExpired:
            raise MemsrError(f"adb push to {remote} timed out", local) from None
        if p.returncode != 0:
            msg = self._text(p.stdout).strip().splitlines()
            raise MemsrError(f"adb push to {remote} failed: {msg[-1] if msg else f'exit {p.returncode}'}", local)

    def facts(self) -> dict:
        """What the device is: model, SoC, Android version, ABI, cores (and each core's top clock)."""
        r = self.shell(script=FACTS_SCRIPT, timeout=60)
        props, cores, freqs = {}, None, {}
        for line in r.output.splitlines():
            m = _PROP.match(line.strip())
            if m:
                props[m.group(1)] = m.group(2)
            elif line.startswith("__MEMSR_CORES="):
                v = line.split("=", 1)[1].strip()
                cores = int(v) if v.isdigit() else None
            elif line.startswith("__MEMSR_FREQ="):
                cpu, _, khz = line[len("__MEMSR_FREQ="):].partition("=")
                if cpu.isdigit() and khz.strip().isdigit():
                    freqs[int(cpu)] = int(khz)
        return device_facts(props, cores, freqs)


def device_facts(props: dict, cores: int | None, freqs: dict[int, int]) -> dict:
    def first(*keys):
        return next((props[k] for k in keys if props.get(k)), "")

    soc = first("ro.soc.model")
    if soc and props.get("ro.soc.manufacturer"):
        soc = f"{props['ro.soc.manufacturer']} {soc}"
    facts = {
        "model": first("ro.product.model"),
        "manufacturer": first("ro.product.manufacturer"),
        "soc": soc or first("ro.board.platform", "ro.hardware"),
        "board": first("ro.board.platform"),
        "hardware": first("ro.hardware"),
        "android": first("ro.build.version.release"),
        "sdk": first("ro.build.version.sdk"),
        "abi": first("ro.product.cpu.abi"),
        "fingerprint": first("ro.build.fingerprint"),
        "cores": cores,
    }
    if freqs:
        top = max(freqs.values())
        facts["cpu_max_khz"] = {str(k): v for k, v in sorted(freqs.items())}
        # The fastest cores, as a taskset mask: what --taskset should usually be given.
        facts["big_core_mask"] = format(sum(1 << c for c, f in freqs.items() if f == top), "x")
    return facts
