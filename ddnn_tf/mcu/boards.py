"""The boards a device tier runs on, their compilers, and the tools each needs.

* ``mps2-an386`` (default): Arm MPS2 with the AN386 image, a Cortex-M4 with FPU, emulated
  by ``qemu-system-arm``; code built with ``arm-none-eabi-gcc`` and newlib.
* ``mps2-an385``: the same board with a Cortex-M3 (no FPU: float code in software).
* ``host``: the same C sources built with the system ``gcc`` and run natively.
* ``tflm``: not a compiler target: the device binaries in TensorFlow Lite Micro's
  Python interpreter (``pip install tflite-micro``).

Standard library only.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ddnn_tf.core.vocab import DEFAULT_BOARD
from ddnn_tf.errors import ConfigError

__all__ = [
    "BOARDS",
    "Board",
    "board",
    "check_tool",
    "newlib_specs",
    "require_tools",
]

_ARM_PACKAGES = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"


@dataclass(frozen=True)
class Board:
    """A target the C tiers are built for.

    Attributes:
        name: the ``board`` argument's value.
        description: what it is, in words.
        kind: ``"qemu"``, ``"host"`` or ``"tflm"``.
        machine: QEMU's ``-M`` machine (``qemu`` boards).
        cflags: CPU flags of the cross compiler (``qemu`` boards).
    """

    name: str
    description: str
    kind: str
    machine: str = ""
    cflags: tuple[str, ...] = ()


#: Board name -> :class:`Board`; the first is ``ddnn_tf.core.vocab.DEFAULT_BOARD``.
BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board(
            DEFAULT_BOARD,
            "Arm MPS2 AN386, Cortex-M4 with single-precision FPU (QEMU)",
            "qemu",
            "mps2-an386",
            ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
        ),
        Board(
            "mps2-an385",
            "Arm MPS2 AN385, Cortex-M3 without FPU (QEMU)",
            "qemu",
            "mps2-an385",
            ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"),
        ),
        Board("host", "this machine, the system gcc", "host"),
        Board("tflm", "TensorFlow Lite Micro's interpreter (pip tflite-micro)", "tflm"),
    )
}


def board(name: str, *, argument: str = "board") -> Board:
    """The :class:`Board` called ``name``.

    Args:
        name: the board's name.
        argument: the parameter that named it (for the error).

    Raises:
        ConfigError: an unknown board, naming the known ones (and saying when QEMU knows
            the machine but this harness has no start-up code for it).

    Example:
        >>> board("mps2-an386").machine, board("mps2-an386").cflags[0]
        ('mps2-an386', '-mcpu=cortex-m4')
    """
    if name in BOARDS:
        return BOARDS[name]
    known = ", ".join(BOARDS)
    hint = ""
    qemu = shutil.which("qemu-system-arm")
    if qemu is not None:
        try:
            listing = subprocess.run(
                [qemu, "-M", "help"], capture_output=True, text=True, timeout=30
            ).stdout
        except (OSError, subprocess.SubprocessError):
            listing = ""
        if any(line.split()[:1] == [name] for line in listing.splitlines()):
            hint = f" (QEMU knows {name}, but the firmware harness has no start-up code for it)"
    raise ConfigError(f"unknown board {name!r}{hint}; expected one of {known}.", argument=argument)


def check_tool(program: str, install: str) -> str:
    """The path of ``program`` on PATH.

    Raises:
        FileNotFoundError: one line naming what to install.
    """
    path = shutil.which(program)
    if path is None:
        raise FileNotFoundError(f"{program} not found on PATH: install it ({install}).")
    return path


def cross_compiler() -> str:
    """``arm-none-eabi-gcc`` (FileNotFoundError naming the Debian packages)."""
    return check_tool("arm-none-eabi-gcc", _ARM_PACKAGES)


def newlib_specs(gcc: str) -> None:
    """Check that newlib's semihosting specs are installed for the cross compiler.

    Raises:
        FileNotFoundError: naming ``libnewlib-arm-none-eabi``.
    """
    try:
        found = subprocess.run(
            [gcc, "-print-file-name=rdimon.specs"], capture_output=True, text=True, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as err:
        raise FileNotFoundError(
            f"{gcc} does not run ({err}); reinstall it ({_ARM_PACKAGES})."
        ) from None
    if not found or not Path(found).is_file():
        raise FileNotFoundError(
            f"newlib's rdimon.specs not found for {gcc}: install it ({_ARM_PACKAGES})."
        )


def qemu() -> str:
    """``qemu-system-arm`` (FileNotFoundError naming the Debian package)."""
    return check_tool("qemu-system-arm", "apt-get install qemu-system-arm")


def host_compiler() -> str:
    """The system C compiler ``gcc`` (FileNotFoundError naming the Debian package)."""
    return check_tool("gcc", "apt-get install gcc")


def require_tools(b: Board) -> None:
    """Check, before any work, that everything ``b`` needs is installed.

    Raises:
        FileNotFoundError / ModuleNotFoundError: one line naming what to install.
    """
    if b.kind == "qemu":
        newlib_specs(cross_compiler())
        check_tool("arm-none-eabi-size", _ARM_PACKAGES)
        qemu()
    elif b.kind == "host":
        host_compiler()
        check_tool("size", "apt-get install binutils")
    else:
        from ddnn_tf.mcu.tflm import load_tflm

        load_tflm()
