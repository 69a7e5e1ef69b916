"""Instructions a device tier executes per sample, counted exactly on an emulated board.

QEMU (Debian's ``qemu-system-arm`` 7.2) logs one ``Trace`` line per executed instruction
with ``-singlestep -d exec,nochain``. The tier is built with a counting harness
(``firmware/count_main.c``) that reads ``N`` sensor messages once and runs the tier over
them ``P`` times; a run with ``P = 2`` minus a run with ``P = 1`` is exactly one pass over
the ``N`` samples: the harness's start-up, file I/O and exit cancel, and the lines of its
loop (the ``passes`` function, named in each trace line) are left out. Divided by ``N``
it is the mean instructions per sample over those samples (the count of one sample
depends a little on its data: a max-pool's comparisons take a branch or not).

Each core has its board: the Cortex-M4F code on the MPS2 AN386 (a Cortex-M4 with FPU),
Cortex-M0+ code (``-mcpu=cortex-m0plus``, ARMv6-M, software float) on the AN385, whose
Cortex-M3 executes the ARMv6-M subset instruction for instruction. QEMU does not model
cycles (its ``-icount`` is not cycle-accurate and the DWT cycle counter reads 0), so a
cost model turns instructions into cycles with a CPI from the MCU's profile.

:func:`record_instructions` writes the counts, and the static model's
(:mod:`ddnn_tf.mcu.opcount`) with its error, into a converted model's manifest (each
device tier's ``c.instructions``). Counting is slow (about 300,000 trace lines a second):
keep ``samples`` small. Standard library and numpy (the compiler and QEMU are separate
programs).
"""

from __future__ import annotations

import json
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ddnn_tf.core import manifest as mf
from ddnn_tf.core.vocab import CORES
from ddnn_tf.errors import ConfigError, DeploymentError
from ddnn_tf.mcu import build
from ddnn_tf.mcu.boards import Board, require_tools
from ddnn_tf.mcu.codegen import CSources

__all__ = [
    "CORE_BOARDS",
    "Count",
    "count_instructions",
    "instruction_entry",
    "record_instructions",
    "refresh_modelled",
]

#: The emulated board and compiler flags each core's instructions are counted with.
CORE_BOARDS: dict[str, Board] = {
    "cortex-m4f": Board(
        "mps2-an386",
        "Cortex-M4F code on the MPS2 AN386 (Cortex-M4 with FPU, QEMU)",
        "qemu",
        "mps2-an386",
        ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
    ),
    "cortex-m0plus": Board(
        "mps2-an385",
        "Cortex-M0+ code (ARMv6-M, software float) on the MPS2 AN385's Cortex-M3 (QEMU)",
        "qemu",
        "mps2-an385",
        ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"),
    ),
}
_HARNESS_LOOP = b"] passes\n"
#: QEMU trace lines per second, to size the timeout (measured: ~330,000 on this machine).
_LINES_PER_S = 100_000


@dataclass(frozen=True)
class Count:
    """Instructions per sample of one tier on one core.

    Attributes:
        core: ``cortex-m4f`` or ``cortex-m0plus``.
        board: the QEMU machine that ran it.
        per_sample: mean instructions per sample over ``samples`` samples (exact total /
            samples).
        samples: how many samples one pass ran.
        total: the instructions of one pass (an integer).
    """

    core: str
    board: str
    per_sample: float
    samples: int
    total: int


def _check_core(core: str) -> Board:
    if core not in CORE_BOARDS:
        raise ConfigError(f"expected one of {', '.join(CORES)}, got {core!r}.", argument="core")
    return CORE_BOARDS[core]


def _trace(elf: Path, board: Board, payload: bytes, timeout_s: float) -> tuple[int, int]:
    """Run ``elf`` with instruction tracing; returns (all trace lines, harness-loop lines)."""
    workdir = elf.parent
    (workdir / "sensor.bin").write_bytes(payload)
    log = workdir / "trace.log"
    cmd = build.qemu_command(board, elf, "-singlestep", "-d", "exec,nochain", "-D", str(log))
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise DeploymentError(
            f"counting the instructions of {elf.stem} on {board.machine} took over "
            f"{timeout_s:.0f} s; count fewer samples."
        ) from None
    if done.returncode != 0 or "samples" not in done.stdout:
        text = (done.stdout + done.stderr).strip()[-200:]
        raise DeploymentError(
            f"the counting firmware of {elf.stem} failed on {board.machine} "
            f"(exit status {done.returncode}): {text}"
        )
    total = loop = 0
    with log.open("rb") as f:
        for line in f:
            if line.startswith(b"Trace"):
                total += 1
                loop += line.endswith(_HARNESS_LOOP)
    log.unlink()
    return total, loop


def count_instructions(
    sources: CSources,
    sensors: np.ndarray,
    *,
    core: str = "cortex-m4f",
    workdir: str | Path | None = None,
    timeout_s: float | None = None,
) -> Count:
    """Count, exactly, the instructions a tier's C executes per sample on ``core``.

    Args:
        sources: the tier's generated C (:func:`ddnn_tf.mcu.codegen.generate_c`).
        sensors: ``(N, sensor_bytes)`` uint8 sensor messages (a few: the emulator logs
            every instruction).
        core: ``cortex-m4f`` or ``cortex-m0plus``.
        workdir: a scratch directory (default: a temporary one).
        timeout_s: seconds each of the two QEMU runs may take (default: from the
            expected trace length).

    Returns:
        A :class:`Count`.

    Raises:
        ConfigError: an unknown core, or sensor messages of the wrong size.
        FileNotFoundError: the cross compiler, newlib or QEMU is missing.
        DeploymentError: the build or a run failed.
    """
    board = _check_core(core)
    data = np.ascontiguousarray(sensors, np.uint8)
    if data.ndim != 2 or data.shape[1] != sources.sensor_bytes or not len(data):
        raise ConfigError(
            f"expected (N >= 1, {sources.sensor_bytes}) sensor bytes, got {data.shape}.",
            argument="sensors",
        )
    require_tools(board)
    n = len(data)
    with tempfile.TemporaryDirectory(prefix="ddnn_count_") as tmp:
        where = Path(workdir) if workdir is not None else Path(tmp)
        elf = build.build_firmware(
            sources, board, where, main="count_main.c", defines=(f"-DMAX_SAMPLES={n}",)
        )
        counts = []
        for passes in (1, 2):
            payload = struct.pack("<II", passes, n) + data.tobytes()
            limit = timeout_s or 60.0 + 3 * passes * n * 2e6 / _LINES_PER_S
            counts.append(_trace(elf, board, payload, limit))
    (total1, loop1), (total2, loop2) = counts
    one_pass = (total2 - loop2) - (total1 - loop1)
    return Count(core, board.machine, one_pass / n, n, int(one_pass))


def instruction_entry(measured: Count | None, modelled: float) -> dict[str, Any]:
    """The manifest's ``c.instructions[core]`` entry: the count, the model and its error."""
    entry: dict[str, Any] = {"modelled": round(float(modelled), 1)}
    if measured is not None:
        entry.update(
            measured=round(measured.per_sample, 1),
            error_percent=round(100.0 * (modelled - measured.per_sample) / measured.per_sample, 2),
            board=measured.board,
            samples=measured.samples,
        )
    return entry


def record_instructions(
    model: str | Path,
    data: Any = None,
    *,
    samples: int = 8,
    cores: tuple[str, ...] = CORES,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Count every device tier's instructions and write them into the model's manifest.

    Each device tier's ``c.instructions`` gets, per core, ``measured`` (mean over the
    first ``samples`` samples of the test split, exact), ``modelled``
    (:func:`ddnn_tf.mcu.opcount.modelled_instructions`), ``error_percent`` (modelled
    against measured), ``board`` and ``samples``. No other file changes.

    Args:
        model: a converted model directory with the C target.
        data: the dataset (a name or a ``Dataset``) whose test split feeds the devices;
            default: the one the manifest records.
        samples: samples per count (each costs about a second of emulation per core).
        cores: the cores to count on.
        progress: print one line per tier and core on stderr.

    Returns:
        ``{tier: {core: entry}}`` as written.

    Raises:
        ConfigError: a model without the C target (saying how to add it), a bad sample
            count or core.
        FileNotFoundError / DeploymentError: as :func:`count_instructions`.
    """
    import sys

    from ddnn_tf.mcu.check import device_tiers, sensor_messages, tier_sources, tier_spec
    from ddnn_tf.mcu.opcount import modelled_instructions
    from ddnn_tf.runtime.dataset import load_subset

    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"expected a positive integer, got {samples!r}.", argument="samples")
    for core in cores:
        _check_core(core)
    manifest = mf.load_manifest(model)
    tiers = device_tiers(manifest)
    missing = [t for t in tiers if "c" not in manifest["tiers"][t]]
    if missing:
        raise ConfigError(no_c_target(manifest.directory))
    from ddnn_tf.runtime.orchestrator import Hierarchy

    split = load_subset(Hierarchy(manifest), data, subset="test", limit=samples)
    written: dict[str, dict[str, Any]] = {}
    document = json.loads(json.dumps(dict(manifest)))
    for tier in tiers:
        sources, _ = tier_sources(manifest, tier)
        spec = tier_spec(manifest, tier)
        device = manifest["tiers"][tier]["device"]
        sensors = sensor_messages(manifest, tier, split.x[device])
        entries = {}
        for core in cores:
            count = count_instructions(sources, sensors, core=core)
            entries[core] = instruction_entry(count, modelled_instructions(spec, core=core))
            if progress:
                e = entries[core]
                print(
                    f"{tier} {core}: {e['measured']:,.0f} instructions per sample measured, "
                    f"{e['modelled']:,.0f} modelled ({e['error_percent']:+.1f} %)",
                    file=sys.stderr,
                )
        document["tiers"][tier]["c"]["instructions"] = entries
        written[tier] = entries
    mf.write_manifest(document, manifest.directory)
    return written


def refresh_modelled(model: str | Path) -> dict[str, dict[str, Any]]:
    """Recompute the static model's figures (and their errors against the recorded counts)
    in a model's manifest, after the model was fitted again; the counts stay.

    Returns:
        ``{tier: {core: entry}}`` as written.

    Raises:
        ConfigError: a model without the C target.
    """
    from ddnn_tf.mcu.check import device_tiers, tier_spec
    from ddnn_tf.mcu.opcount import modelled_instructions

    manifest = mf.load_manifest(model)
    document = json.loads(json.dumps(dict(manifest)))
    written = {}
    for tier in device_tiers(manifest):
        c = document["tiers"][tier].get("c")
        if c is None:
            raise ConfigError(no_c_target(manifest.directory))
        spec = tier_spec(manifest, tier)
        entries = {}
        for core in CORES:
            old = c.get("instructions", {}).get(core, {})
            modelled = modelled_instructions(spec, core=core)
            count = None
            if "measured" in old:
                count = Count(core, old["board"], old["measured"], old["samples"], 0)
            entries[core] = instruction_entry(count, modelled)
        c["instructions"] = entries
        written[tier] = entries
    mf.write_manifest(document, manifest.directory)
    return written


def no_c_target(directory: str | Path) -> str:
    """The error of a model without the C target, saying how to add it."""
    return (
        f"{directory} has no C target, so no device instructions: add it with "
        f"`python scripts/add_mcu_targets.py {directory} --targets c` (or convert the run "
        "with `ddnn convert RUN --target portable,lce,c`), then count them with "
        f"`ddnn mcu {directory} --count-instructions`."
    )
