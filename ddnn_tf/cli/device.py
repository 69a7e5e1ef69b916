"""``ddnn device MODEL --index I --data NAME --gateway URL``: one end device as a process
(:func:`ddnn_tf.serve.device.run_device`); its flags are the fields of
:class:`~ddnn_tf.serve.settings.DeviceSettings`."""

from __future__ import annotations

from ddnn_tf.cli.flags import settings_command
from ddnn_tf.serve.settings import DeviceSettings

__all__ = ["device"]


def _run(settings: DeviceSettings) -> None:
    from ddnn_tf.serve.device import run_device

    run_device(settings)


device = settings_command(
    DeviceSettings, _run, "Run end device INDEX of a converted model against a gateway."
)

COMMAND = device
