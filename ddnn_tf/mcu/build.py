"""Build a generated tier for a board, measure its footprint, and run it.

* :func:`footprint`: compile the tier alone into an object file and read its sections:
  flash = code + constants (``.text*``, ``.rodata*``, ``.data*`` initial values),
  static RAM = ``.data*`` + ``.bss*``, and the static stack bound of the entry point from
  GCC's call graph (``-fcallgraph-info=su``). Harness and libc are not in that object.
* :func:`build_firmware` / :func:`run_firmware`: the tier with the firmware harness
  (``firmware/``: start-up, linker script, a semihosting main) as an ELF, run under
  ``qemu-system-arm`` with a timeout; the harness measures the stack by painting.
* :func:`build_host` / :func:`run_host`: the same sources with the system ``gcc``.

Standard library only (the compilers and QEMU are separate programs).
"""

from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ddnn_tf.errors import DeploymentError
from ddnn_tf.mcu.boards import Board, cross_compiler, host_compiler, newlib_specs, qemu
from ddnn_tf.mcu.codegen import CSources

__all__ = [
    "CFLAGS",
    "Footprint",
    "Run",
    "build_firmware",
    "build_host",
    "firmware_dir",
    "footprint",
    "qemu_command",
    "run_firmware",
    "run_host",
    "write_sources",
]

#: Flags every build of a tier uses: ISO C99 (no contracted multiply-adds), no loops
#: turned into libc calls, one section per function and constant (exact sizes).
CFLAGS = (
    "-std=c99",
    "-ffp-contract=off",
    "-fno-tree-loop-distribute-patterns",
    "-ffunction-sections",
    "-fdata-sections",
    "-Wall",
    "-Wextra",
)
_MCU_OPT = "-Os"
_HOST_OPT = "-O2"
#: Exit code of the harness's fault handler.
FAULT_EXIT = 99


@dataclass(frozen=True)
class Footprint:
    """Sizes of one tier's object file.

    Attributes:
        flash_bytes: code + constants + initial data.
        static_ram_bytes: ``.data`` + ``.bss`` (the scratch buffer).
        stack_bytes: the entry point's stack, static bound from the call graph.
        ram_bytes: ``static_ram_bytes + stack_bytes``.
        sections: section name -> bytes.
        external: functions the tier calls outside itself (``memset`` ...).
        compiler: the compiler's version line; ``cflags`` the flags used.
    """

    flash_bytes: int
    static_ram_bytes: int
    stack_bytes: int
    sections: dict[str, int]
    external: tuple[str, ...]
    compiler: str
    cflags: tuple[str, ...]

    @property
    def ram_bytes(self) -> int:
        return self.static_ram_bytes + self.stack_bytes

    def to_dict(self) -> dict:
        return {
            "flash_bytes": self.flash_bytes,
            "ram_bytes": self.ram_bytes,
            "static_ram_bytes": self.static_ram_bytes,
            "stack_bytes": self.stack_bytes,
            "external": list(self.external),
            "compiler": self.compiler,
            "cflags": " ".join(self.cflags),
        }


@dataclass(frozen=True)
class Run:
    """One run of a built tier over a file of sensor messages.

    Attributes:
        status: ``"ok"``, ``"crashed"``, ``"hung"`` or ``"failed"``.
        detail: a line saying what happened when not ok.
        messages: the output file's bytes (summary + features per sample).
        stack_bytes: deepest stack the entry point used (emulated boards), else None.
        seconds: CPU time of the tier calls alone (host, fastest pass), else None.
    """

    status: str
    detail: str
    messages: bytes
    stack_bytes: int | None = None
    seconds: float | None = None


def firmware_dir() -> Path:
    """The firmware harness shipped with the package (start-up, linker script, mains)."""
    return Path(str(resources.files("ddnn_tf.mcu") / "firmware"))


def write_sources(sources: CSources, directory: Path) -> Path:
    """Write ``<tier>.c`` and ``<tier>.h`` into ``directory``; returns the ``.c`` path."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / sources.header).write_text(sources.h)
    path = directory / sources.source
    path.write_text(sources.c)
    return path


def _run(cmd: list[str], *, cwd: Path | None = None, what: str) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=300)
    except subprocess.TimeoutExpired:
        raise DeploymentError(f"{what}: {cmd[0]} did not finish in 300 s.") from None
    if done.returncode != 0:
        first = (done.stderr or done.stdout).strip().splitlines()
        raise DeploymentError(f"{what} failed: {' '.join(first[:3])}")
    return done.stdout + done.stderr


@functools.lru_cache
def _version(compiler: str) -> str:
    out = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60)
    return out.stdout.splitlines()[0].strip() if out.stdout else compiler


def _defines(sources: CSources) -> list[str]:
    return [
        f"-DTIER_ENTRY={sources.entry}",
        f"-DSENSOR_BYTES={sources.sensor_bytes}",
        f"-DSUMMARY_BYTES={sources.summary_bytes}",
        f"-DFEATURES_BYTES={sources.features_bytes}",
    ]


def _sections(size_tool: str, obj: Path) -> dict[str, int]:
    out = _run([size_tool, "-A", str(obj)], what=f"reading the sections of {obj.name}")
    sections = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    return sections


_NODE = re.compile(r'node: \{ title: "([^"]+)" label: "([^"]*)"')
_EDGE = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')
_STACK = re.compile(r"(\d+) bytes \((static|dynamic[^)]*)\)")


def _stack_bound(ci_file: Path, entry: str) -> tuple[int, tuple[str, ...]]:
    """Deepest stack of ``entry`` along GCC's call graph; and the external callees."""
    text = ci_file.read_text()
    sizes: dict[str, int | None] = {}
    for title, label in _NODE.findall(text):
        m = _STACK.search(label)
        if m and m.group(2) != "static":
            raise DeploymentError(f"{ci_file.name}: {title} has a {m.group(2)} stack frame.")
        sizes[title] = int(m.group(1)) if m else None
    calls: dict[str, set[str]] = {}
    for src, dst in _EDGE.findall(text):
        calls.setdefault(src, set()).add(dst)
    external: set[str] = set()

    def depth(fn: str, seen: tuple[str, ...]) -> int:
        if fn in seen:
            raise DeploymentError(f"{ci_file.name}: recursion through {fn}.")
        own = sizes.get(fn)
        if own is None:
            external.add(fn.split(":")[-1])
            return 0
        return own + max((depth(c, (*seen, fn)) for c in calls.get(fn, ())), default=0)

    if entry not in sizes:
        raise DeploymentError(f"{ci_file.name}: no call-graph node for {entry}.")
    return depth(entry, ()), tuple(sorted(external))


def footprint(sources: CSources, board: Board, workdir: Path) -> Footprint:
    """Compile the tier alone for ``board`` and measure flash, static RAM and stack.

    Args:
        sources: the generated C.
        board: a ``qemu`` board (Cortex-M flags) or ``host``.
        workdir: a scratch directory.

    Raises:
        FileNotFoundError: the compiler is not installed (naming the package).
        DeploymentError: the compiler failed.
    """
    workdir = Path(workdir).resolve()
    if board.kind == "qemu":
        cc, size_tool, flags = cross_compiler(), "arm-none-eabi-size", (*board.cflags, _MCU_OPT)
    else:
        cc, size_tool, flags = host_compiler(), "size", (_HOST_OPT,)
    src = write_sources(sources, workdir)
    obj = workdir / f"{sources.tier}.o"
    cflags = (*CFLAGS, *flags)
    _run(
        [cc, *cflags, "-fstack-usage", "-fcallgraph-info=su", "-c", str(src), "-o", str(obj)],
        cwd=workdir,
        what=f"compiling {sources.source}",
    )
    sections = _sections(size_tool, obj)
    flash = sum(v for k, v in sections.items() if k.startswith((".text", ".rodata", ".data")))
    ram = sum(v for k, v in sections.items() if k.startswith((".data", ".bss")))
    stack, external = _stack_bound(obj.with_suffix(".ci"), sources.entry)
    return Footprint(flash, ram, stack, sections, external, _version(cc), cflags)


def _summary_line(done: subprocess.CompletedProcess, pattern: str, program: str) -> re.Match | Run:
    """The summary line a finished run printed, or its failed :class:`Run` (a non-zero exit
    status, or no line matching ``pattern``)."""
    text = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        return Run("failed", f"exit status {done.returncode}: {text[-200:]}", b"")
    m = re.search(pattern, text)
    if m is None:
        return Run("failed", f"the {program} printed no summary line: {text[-200:]}", b"")
    return m


def build_firmware(
    sources: CSources,
    board: Board,
    workdir: Path,
    *,
    main: str = "board_main.c",
    defines: tuple[str, ...] = (),
) -> Path:
    """The tier + firmware harness as an ELF for an emulated ``board``.

    ``main`` is the harness's main in ``firmware/`` (``board_main.c``: the checks' stack
    measuring loop; ``count_main.c``: the instruction counter's); ``defines`` are extra
    ``-D`` flags for it.

    Raises:
        FileNotFoundError: the cross compiler or newlib is missing (naming the packages).
        DeploymentError: the build failed.
    """
    workdir = Path(workdir).resolve()
    cc = cross_compiler()
    newlib_specs(cc)
    src = write_sources(sources, workdir)
    fw = firmware_dir()
    elf = workdir / f"{sources.tier}.elf"
    _run(
        [
            cc,
            *CFLAGS,
            *board.cflags,
            _MCU_OPT,
            *_defines(sources),
            *defines,
            "--specs=rdimon.specs",
            "-nostartfiles",
            "-T",
            str(fw / "mps2.ld"),
            "-Wl,--gc-sections",
            str(fw / "startup.c"),
            str(fw / main),
            str(src),
            "-o",
            str(elf),
        ],
        cwd=workdir,
        what=f"building the {board.name} firmware of {sources.tier}",
    )
    return elf


def qemu_command(board: Board, elf: Path, *options: str) -> list[str]:
    """``qemu-system-arm`` running ``elf`` on ``board`` headless, with semihosting (host
    file I/O and the exit code) and extra ``options`` (FileNotFoundError without QEMU)."""
    return [
        qemu(),
        "-M",
        board.machine,
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
        *options,
        "-kernel",
        str(elf),
    ]


def run_firmware(elf: Path, board: Board, sensors: bytes, *, timeout_s: float) -> Run:
    """Run a firmware ELF under QEMU on ``sensors`` (its working directory: the ELF's).

    A fault, a non-zero exit or no exit within ``timeout_s`` seconds is reported in
    the returned :class:`Run`, never raised.

    Raises:
        FileNotFoundError: ``qemu-system-arm`` is not installed.
    """
    workdir = elf.parent
    (workdir / "sensor.bin").write_bytes(sensors)
    out = workdir / "messages.bin"
    out.unlink(missing_ok=True)
    cmd = qemu_command(board, elf)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return Run("hung", f"no exit within {timeout_s:g} s (QEMU stopped)", b"")
    if done.returncode == FAULT_EXIT:
        return Run("crashed", "the CPU faulted (HardFault or another fault handler ran)", b"")
    m = _summary_line(done, r"samples (\d+) stack_bytes (\d+)", "firmware")
    if isinstance(m, Run):
        return m
    return Run("ok", "", out.read_bytes(), stack_bytes=int(m.group(2)))


def build_host(sources: CSources, workdir: Path) -> Path:
    """The tier + host driver as a native program (system ``gcc``).

    Raises:
        FileNotFoundError: no ``gcc``.
        DeploymentError: the build failed.
    """
    workdir = Path(workdir).resolve()
    cc = host_compiler()
    src = write_sources(sources, workdir)
    exe = workdir / f"{sources.tier}_host"
    _run(
        [
            cc,
            *CFLAGS,
            _HOST_OPT,
            *_defines(sources),
            str(firmware_dir() / "host_main.c"),
            str(src),
            "-o",
            str(exe),
        ],
        cwd=workdir,
        what=f"building the host program of {sources.tier}",
    )
    return exe


def run_host(exe: Path, sensors: bytes, *, timeout_s: float, repeats: int = 1) -> Run:
    """Run a host program on ``sensors`` (``repeats`` passes; ``seconds`` is the fastest
    pass's CPU time); failures are reported in the :class:`Run`."""
    workdir = exe.parent
    inp, out = workdir / "sensor.bin", workdir / "messages.bin"
    inp.write_bytes(sensors)
    out.unlink(missing_ok=True)
    try:
        done = subprocess.run(
            [str(exe), str(inp), str(out), str(int(repeats))],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return Run("hung", f"no exit within {timeout_s:g} s", b"")
    if done.returncode < 0:
        return Run("crashed", f"killed by signal {-done.returncode}", b"")
    m = _summary_line(done, r"samples (\d+) seconds ([0-9.eE+-]+)", "program")
    if isinstance(m, Run):
        return m
    return Run("ok", "", out.read_bytes(), seconds=float(m.group(2)))
