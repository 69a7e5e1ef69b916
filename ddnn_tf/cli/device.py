"""``ddnn device MODEL --index I --gateway URL --data NAME``: one end device as a process
(:func:`ddnn_tf.serve.device.run_device`)."""

from __future__ import annotations

from ddnn_tf.cli.flags import AT_LEAST_1, NON_NEGATIVE, command

__all__ = ["device"]


@command(index=NON_NEGATIVE, limit=AT_LEAST_1, batch=AT_LEAST_1)
def device(
    model: str,
    index: int,
    gateway: str,
    data: str,
    path: str | None = None,
    split: str = "test",
    limit: int | None = None,
    batch: int = 64,
    token: str | None = None,
    target: str = "portable",
) -> None:
    """Run end device INDEX of a converted model against a gateway.

    Args:
        model: the converted model directory (tflite_models/NAME).
        index: this device's index (0 .. D-1).
        gateway: the gateway's URL, e.g. http://127.0.0.1:8001.
        data: dataset name (fmnist6, mvmc, npz, synthetic) or a .npy file of this view.
        path: data file or directory for file-based loaders.
        split: test or val.
        limit: stream the first N samples only.
        batch: samples per round (the devices must agree).
        token: the shared token (default: $DDNN_TF_TOKEN).
        target: portable (ai-edge-litert) or lce (larq-compute-engine).
    """
    from ddnn_tf.serve.device import run_device

    run_device(
        model,
        index,
        gateway,
        data,
        path=path,
        split=split,
        limit=limit,
        batch=batch,
        token=token,
        target=target,
    )


COMMAND = device
