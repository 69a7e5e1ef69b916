"""A device tier inside an emulated board, behind the call a device process makes.

:class:`BoardTier` builds the tier's firmware once and, for each round of samples, boots
the board under QEMU on their sensor messages (uint8 values, int8 / int16 codes, or
float32 bytes: :func:`ddnn_tf.mcu.check.sensor_messages` of its inputs) and reads
back the wire messages the C code wrote. It answers like
:class:`ddnn_tf.runtime.tiers.TierRunner` (``{input name: (N, ...) array}`` ->
``{"summary", "features"}`` arrays, decoded from those bytes with
:mod:`ddnn_tf.core.comm`), so the device process (:func:`ddnn_tf.serve.device.run_device`)
re-encodes exactly the bytes the board produced and speaks the gateway protocol unchanged
(HTTP or MQTT, reconnects included). A crashed or hung board is a one-line error naming
the device.

TensorFlow-free.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ddnn_tf.core import comm
from ddnn_tf.core.manifest import Manifest
from ddnn_tf.core.vocab import DEFAULT_BOARD
from ddnn_tf.errors import ConfigError, DeploymentError
from ddnn_tf.mcu import build
from ddnn_tf.mcu.boards import board as find_board
from ddnn_tf.mcu.boards import require_tools
from ddnn_tf.mcu.check import run_timeout, sensor_input, sensor_messages, tier_sources

__all__ = ["BoardTier"]


class BoardTier:
    """Run device tier ``tier`` of ``manifest`` on ``board`` (an emulated one, or ``host``).

    Args:
        manifest: the loaded manifest.
        tier: the device tier (``device_3``).
        board: ``mps2-an386``, ``mps2-an385`` or ``host``.
        argument: the parameter that named the board (for errors).

    Raises:
        ConfigError: an unknown board, ``tflm``, a tier the C target cannot express.
        FileNotFoundError: a missing toolchain (naming what to install).
        DeploymentError: the firmware does not build.
    """

    def __init__(
        self, manifest: Manifest, tier: str, *, board: str = DEFAULT_BOARD, argument: str = "board"
    ) -> None:
        self._dir = None
        self.board = find_board(board, argument=argument)
        if self.board.kind == "tflm":
            raise ConfigError(
                "expected an emulated board or host, got tflm (a board with no C).",
                argument=argument,
            )
        require_tools(self.board)
        self.manifest, self.tier = manifest, tier
        self.sources, _ = tier_sources(manifest, tier)
        entry = sensor_input(manifest, tier)
        self.input_shapes = {entry["name"]: tuple(entry["shape"][1:])}
        self._dir = Path(tempfile.mkdtemp(prefix=f"ddnn_{tier}_"))
        if self.board.kind == "qemu":
            self._program = build.build_firmware(self.sources, self.board, self._dir)
        else:
            self._program = build.build_host(self.sources, self._dir)

    @property
    def input_names(self) -> list[str]:
        return list(self.input_shapes)

    def messages(self, x: np.ndarray) -> np.ndarray:
        """The board's wire messages ``(N, summary + features bytes)`` for inputs ``x``.

        Raises:
            DeploymentError: the board crashed, failed or hung (timed out).
        """
        sensors = sensor_messages(self.manifest, self.tier, np.asarray(x, np.float32))
        timeout = run_timeout(len(sensors))
        if self.board.kind == "qemu":
            run = build.run_firmware(
                self._program, self.board, sensors.tobytes(), timeout_s=timeout
            )
        else:
            run = build.run_host(self._program, sensors.tobytes(), timeout_s=timeout)
        if run.status != "ok":
            raise DeploymentError(f"{self.tier} on {self.board.name}: {run.status}: {run.detail}.")
        width = self.sources.summary_bytes + self.sources.features_bytes
        return np.frombuffer(run.messages, np.uint8).reshape(len(sensors), width)

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``{input name: (N, ...) array}`` -> ``{"summary", "features"}`` like TierRunner."""
        (name,) = self.input_names
        msgs = self.messages(feeds[name])
        out = {}
        split = self.sources.summary_bytes
        if split:
            wire = self.manifest["wire"]["summary"]
            classes = wire["shape"][0]
            out["summary"] = comm.decode_summaries(msgs[:, :split], classes, wire["encoding"])
        shape = self.manifest["wire"]["features"][self.tier]["shape"]
        out["features"] = comm.unpack_features_batch(np.ascontiguousarray(msgs[:, split:]), shape)
        return out

    def close(self) -> None:
        if getattr(self, "_dir", None) is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __del__(self) -> None:
        self.close()
