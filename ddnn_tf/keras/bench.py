"""Benchmarks of the TensorFlow side: training throughput (:func:`bench_train`) and Keras
``predict`` of a trained run (:func:`keras_predict_rate`, the baseline of ``ddnn bench
run --run``)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ddnn_tf.data import Dataset
from ddnn_tf.keras.model import build_ddnn
from ddnn_tf.keras.presets import TrainConfig, topology_for
from ddnn_tf.keras.rundir import load_run
from ddnn_tf.keras.train import EpochTimer, compile_ddnn

__all__ = ["bench_train", "keras_predict_rate"]


def bench_train(dataset: Dataset, *, epochs: int = 2, batch_size: int = 128) -> dict[str, Any]:
    """Training throughput of the paper's model (MP-CC, f = 4: the Topology defaults) here,
    on ``dataset``'s training split.

    Trains for ``epochs`` epochs without validation and reports samples per second and
    seconds per epoch for each epoch; the first epoch includes graph tracing, so the
    steady figure is the median of the later ones.
    """
    topology = topology_for(dataset)
    config = TrainConfig(epochs=int(epochs), batch_size=int(batch_size))
    ddnn = build_ddnn(topology)
    compile_ddnn(ddnn, config)
    n = len(dataset.train)
    timer = EpochTimer()
    y = {e: dataset.train.y for e in topology.exits}
    ddnn.model.fit(
        list(dataset.train.x),
        y,
        epochs=int(epochs),
        batch_size=int(batch_size),
        verbose=0,
        callbacks=[timer],
    )
    times = timer.seconds
    steady = float(np.median(times[1:])) if len(times) > 1 else times[0]
    result = {
        "data": dataset.name,
        "n_train": n,
        "batch_size": int(batch_size),
        "epoch_seconds": times,
        "seconds_per_epoch": steady,
        "samples_per_s": n / steady,
    }
    return result


def keras_predict_rate(run_dir: str, xs: list[np.ndarray], batch_size: int) -> float:
    """Samples/s of Keras ``model.predict`` of a trained run (every exit, every sample)."""
    model = load_run(run_dir).ddnn.model
    model.predict([x[:batch_size] for x in xs], batch_size=batch_size, verbose=0)  # warm up
    start = time.perf_counter()
    model.predict(xs, batch_size=batch_size, verbose=0)
    seconds = time.perf_counter() - start
    return len(xs[0]) / seconds if seconds > 0 else 0.0
