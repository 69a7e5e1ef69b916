"""``ddnn run``: a converted DDNN's hierarchy on a data set, without TensorFlow
(:func:`ddnn_tf.runtime.report.evaluate_model`).

Every device runs its tier binary and sends its encoded class summary to the local
aggregator; confident samples exit there, the others go up as bit-packed feature maps.
The report has the keys of ``ddnn evaluate`` (measured on the binaries:
bytes are the lengths of the payloads actually sent) plus per-tier latency.

Failed devices (``--fail``, or ``--fail-prob`` per sample and device) never deliver a
message: the aggregators use the devices present (max/avg over the present ones;
concatenation fills a missing device's slot with zeros, and the learned ``mlp`` aggregator
also reads the presence mask). A sample whose every device failed is reported as
unclassified.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ddnn_tf.cli.cost import HardwareFlags
from ddnn_tf.cli.evaluate import Recalibration, report_keywords
from ddnn_tf.cli.flags import PROBABILITY, SEED, command, with_options
from ddnn_tf.core.options import Options, option

__all__ = ["Failures", "run"]


@dataclass(frozen=True, kw_only=True)
class Failures(Options):
    """The devices that fail: on every sample, or at random per sample and device."""

    fail: Any = option(None, "devices failed on every sample, e.g. 0,3")
    fail_prob: float = option(0.0, "probability that each device fails on each sample", PROBABILITY)
    seed: int = option(0, "seed of the random failures", SEED)


@command()
@with_options(Failures, "failures")
@with_options(Recalibration, "recalibration")
@with_options(HardwareFlags, "hardware")
def run(
    model: str,
    data: str | None = None,
    path: str | None = None,
    threshold=None,
    sweep: bool = False,
    failures: Failures | None = None,
    batch_size: int = 256,
    target: str = "portable",
    limit: int | None = None,
    subset: str = "test",
    threads: int = 1,
    exit_accuracy: bool = True,
    recalibration: Recalibration | None = None,
    hardware: HardwareFlags | None = None,
    json: bool = False,  # noqa: A002  (the flag is --json)
) -> None:
    """Run a converted model (tflite_models/NAME) on a dataset split.

    Args:
        model: the converted model directory (written by ddnn convert).
        data: dataset name (fmnist6, mvmc, npz, synthetic); default: the manifest's.
        path: data file or directory for file-based loaders.
        threshold: T for every early exit, or 'paper' (0.8) (default: the manifest's).
        sweep: add the threshold sweep (Table II).
        batch_size: samples per interpreter call (1 = one by one; same results).
        target: portable (ai-edge-litert) or lce (larq-compute-engine).
        limit: evaluate the first N samples only.
        subset: the data subset: test or val.
        threads: interpreter threads per tier.
        exit_accuracy: also run every tier on every sample for per-exit accuracies.
        json: print one JSON object instead of the table.
    """
    from ddnn_tf.runtime.report import evaluate_model

    result = evaluate_model(
        model,
        data,
        path=path,
        target=target,
        threshold=threshold,
        sweep=sweep,
        **asdict(failures or Failures()),
        batch_size=batch_size,
        limit=limit,
        subset=subset,
        num_threads=threads,
        exit_accuracy=exit_accuracy,
        **report_keywords(recalibration, hardware),
    )
    print(result.to_json() if json else result.format())


COMMAND = run
