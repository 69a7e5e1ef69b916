"""An int8 cloud for a trained DDNN: post-training quantisation or quantisation-aware
fine-tuning with tensorflow-model-optimization, converted and measured on the binaries.

Usage::

    python scripts/qat_cloud.py runs/default --mode qat --epochs 2 --out /tmp/qat_cloud
    python scripts/qat_cloud.py runs/default --mode ptq --epochs 0 --out /tmp/ptq_cloud
    python scripts/qat_cloud.py runs/default --mode float --epochs 2 --out /tmp/float_cloud

Only the cloud changes; the device tiers and the local aggregator are converted float32
(as ``python -m ddnn_tf.convert RUN --split local,cloud --target portable`` would), so the
int4 summaries and the 1-bit feature maps stay bit-exact.

* ``--mode ptq``: the float cloud (the trained one with ``--epochs 0``, else first
  fine-tuned in float as ``--mode float`` does), converted by ``convert``'s
  ``--quantize int8`` path (post-training calibration on the first 256 training samples).
* ``--mode qat``: the cloud's dense layers (``cloud_fc*``, ``cloud_exit_dense``; the
  ``Aggregate`` concatenation and the flatten in front of them stay float) are wrapped by
  ``tfmot.quantization.keras.quantize_model``, starting from the trained weights, and
  fine-tuned for ``--epochs`` on the feature maps the trained (frozen) devices send for
  the training split, each device dropped with the run's ``device_dropout`` rate (never
  all of a sample's devices), Adam at ``--learning-rate`` with a cosine decay. The
  fake-quantised cloud then goes through the same int8 conversion.
* ``--mode float``: the control: the same fine-tuning of the float cloud, without
  quantisation, converted float32 (what the extra epochs alone give).

Printed (and written to ``OUT/qat_cloud.json``), all on the test split: the Keras
evaluation of the float run and of the (QAT) model that was converted (local / cloud /
overall accuracy at the run's calibrated T, bytes per device); the same figures measured
by the runtime on the binaries (``ddnn_tf.runtime.evaluate_model``); on the binaries, the
most accurate T within 20 bytes per device (re-calibrated on the validation split,
``--calibrate bytes:20``) and the drop of overall accuracy with each single device failed
(``--fail k``); the cloud file's size; and how many runtime decisions (exit taken, class
predicted) differ from the Keras evaluation of the converted model. ``OUT`` is a converted
model directory that ``python -m ddnn_tf.run OUT`` runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _dense_names(cloud) -> list[str]:
    """The cloud's dense layers, bottom to top (``cloud_fc1`` .. ``cloud_exit_dense``)."""
    names = sorted(
        (layer.name for layer in cloud.layers if layer.name.startswith("cloud_fc")),
        key=lambda n: int(n[len("cloud_fc") :]),
    )
    return [*names, "cloud_exit_dense"]


def qat_cloud(cloud):
    """The cloud tier with its dense layers replaced by a tfmot quantise-annotated copy.

    Args:
        cloud: the trained float cloud tier (``cloud_precision="float"``, no device grid).

    Returns:
        A Keras model with the cloud's inputs and ``{"logits"}`` output, whose dense
        head is ``quantize_model`` of a copy of the trained dense layers.
    """
    import tensorflow_model_optimization as tfmot

    from ddnn_tf.keras.compat import keras

    names = _dense_names(cloud)
    first = cloud.get_layer(names[0])
    flat = first.input  # the float Aggregate -> Flatten in front of the dense layers
    inp = keras.Input((int(flat.shape[-1]),), name="cloud_flat")
    x = inp
    for name in names:
        old = cloud.get_layer(name)
        x = keras.layers.Dense(
            old.units, activation=keras.activations.serialize(old.activation), name=name
        )(x)
    head = keras.Model(inp, x, name="cloud_head")
    for name in names:
        head.get_layer(name).set_weights(cloud.get_layer(name).get_weights())
    quantized = tfmot.quantization.keras.quantize_model(head)
    return keras.Model(cloud.inputs, {"logits": quantized(flat)}, name="cloud")


def _device_features(run, xs: list[np.ndarray]) -> list[np.ndarray]:
    ddnn = run.ddnn
    return [
        ddnn.devices[i].predict(x, batch_size=2048, verbose=0)["features"] for i, x in enumerate(xs)
    ]


def _presence(rng: np.random.Generator, n: int, d: int, rate: float) -> np.ndarray:
    keep = (rng.random((n, d)) >= rate).astype(np.float32)
    keep[keep.sum(axis=1) < 0.5] = 1.0  # never all of a sample's devices
    return keep


def fine_tune(run, cloud, dataset, *, epochs: int, learning_rate: float, samples, seed: int):
    """Fine-tune ``cloud`` (the QAT cloud) on the frozen devices' training features.

    Returns:
        Seconds spent (feature extraction included).
    """
    from ddnn_tf.keras.compat import keras, tf

    start = time.perf_counter()
    train = dataset.train
    n = len(train.y) if samples is None else min(samples, len(train.y))
    xs = [x[:n] for x in train.x]
    y = np.asarray(train.y[:n])
    feats = _device_features(run, xs)
    topology = run.topology
    batch = run.config.batch_size
    steps = epochs * -(-n // batch)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    cloud.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
        metrics={"logits": ["accuracy"]},
    )
    rng = np.random.default_rng(seed)
    tf.random.set_seed(seed)
    for epoch in range(epochs):
        presence = _presence(rng, n, topology.num_devices, topology.device_dropout)
        hist = cloud.fit(
            [*feats, presence], {"logits": y}, batch_size=batch, epochs=1, shuffle=True, verbose=0
        )
        print(
            f"  QAT epoch {epoch + 1}/{epochs}: loss {hist.history['loss'][-1]:.4f}, "
            f"accuracy {hist.history['accuracy'][-1]:.4f}",
            flush=True,
        )
    return time.perf_counter() - start


def convert_int8_cloud(run, dataset, out: Path, *, overwrite: bool) -> int:
    """Convert the run (split ``local,cloud``, portable) with only the cloud in int8.

    Returns:
        The size of ``cloud.tflite`` in bytes.
    """
    from ddnn_tf.core import manifest as mf
    from ddnn_tf.core.graph import CLOUD, tier_graph
    from ddnn_tf.keras.convert import convert_run, save_conversion
    from ddnn_tf.keras.convert.export import calibration_feeds, convert_tier
    from ddnn_tf.keras.convert.manifest_build import tier_entry
    from ddnn_tf.runtime.flatbuffer import tflite_info

    conv = convert_run(run, split="local,cloud", target="portable", dataset=dataset)
    plans = tier_graph(run.topology, ("local", "cloud"))
    plan = next(p for p in plans if p.name == CLOUD)
    feeds = calibration_feeds(run.ddnn, plans, dataset.train.x)[CLOUD]
    data = convert_tier(
        run.ddnn, plan, targets=("portable",), quantize="int8", representative=feeds
    )["portable"]
    filename = mf.tier_filename(CLOUD, "portable")
    info = tflite_info(data)
    entry = mf.file_entry(
        filename,
        data,
        input_order=info["input_order"],
        output_order=info["output_order"],
        ops=info["ops"],
    )
    conv.files[filename] = data
    conv.manifest["tiers"][CLOUD] = tier_entry(run.ddnn, plan, {"portable": entry}, quantize="int8")
    conv.manifest["quantize"] = "int8"
    mf.validate_manifest(conv.manifest, check_files=False)
    save_conversion(conv, out, overwrite=overwrite)
    return len(data)


def _figures(ev) -> dict:
    return {
        "local": ev["accuracy"]["local"],
        "cloud": ev["accuracy"]["cloud"],
        "overall": ev["accuracy"]["overall"],
        "threshold": ev["thresholds"]["local"],
        "bytes": ev["bytes_per_device"],
    }


def measure(run, dataset, out: Path) -> dict:
    """Keras evaluation of ``run`` against the runtime on ``out``, on the test split."""
    from ddnn_tf.core.exits import exit_points
    from ddnn_tf.keras.evaluate import evaluate_run
    from ddnn_tf.keras.train import predict_exits
    from ddnn_tf.runtime import Hierarchy
    from ddnn_tf.runtime.report import evaluate_model

    test = dataset.test
    keras_ev = evaluate_run(run, dataset)
    h = Hierarchy(out)
    runtime_ev = evaluate_model(h, dataset)
    probs = predict_exits(run.ddnn, test.x)
    t = float(h.thresholds["local"])
    exit_index = exit_points([probs["local"], probs["cloud"]], [t])
    pred = np.where(exit_index == 0, probs["local"].argmax(-1), probs["cloud"].argmax(-1))
    budget = evaluate_model(h, dataset, calibrate="bytes:20", exit_accuracy=False)
    drops = [
        runtime_ev["accuracy"]["overall"]
        - evaluate_model(h, dataset, fail=k, exit_accuracy=False)["accuracy"]["overall"]
        for k in range(h.num_devices)
    ]
    staged = h.run(test.x, batch_size=256)
    every = h.run(test.x, batch_size=256, all_exits=True)
    return {
        "keras": _figures(keras_ev),
        "runtime": _figures(runtime_ev),
        "runtime_within_20_bytes": {
            "overall": budget["accuracy"]["overall"],
            "threshold": budget["thresholds"]["local"],
            "bytes": budget["bytes_per_device"],
        },
        "runtime_fault_drops": drops,
        "runtime_worst_fault_drop": max(drops),
        "exit_mismatches": int(np.count_nonzero(staged.exit_index != exit_index)),
        "prediction_mismatches": int(np.count_nonzero(staged.prediction != pred)),
        "cloud_argmax_mismatches": int(
            np.count_nonzero(every.probs["cloud"].argmax(-1) != probs["cloud"].argmax(-1))
        ),
        "n": len(test.y),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained run directory (default preset)")
    parser.add_argument("--mode", choices=("qat", "ptq", "float"), default="qat")
    parser.add_argument(
        "--epochs", type=int, default=2, help="fine-tuning epochs of the cloud (0: none)"
    )
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--train-samples", type=int, default=None, help="subsample (QAT)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="converted model directory to write")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    from ddnn_tf.core.graph import CLOUD
    from ddnn_tf.keras.evaluate import evaluate_run
    from ddnn_tf.keras.rundir import load_run

    run = load_run(args.run)
    t = run.topology
    if t.cloud_precision != "float" or t.device_grid:
        print(
            f"qat_cloud: {args.run}: expected a dense float cloud (cloud_precision float, "
            f"no device grid); got cloud_precision={t.cloud_precision}, "
            f"device_grid={t.device_grid}.",
            file=sys.stderr,
        )
        return 2
    if args.mode == "qat" and args.epochs < 1:
        print(f"qat_cloud: --mode qat needs --epochs >= 1; got {args.epochs}.", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        print(f"qat_cloud: {out} exists; pass --overwrite to replace it.", file=sys.stderr)
        return 2
    dataset = run.load_data()
    result: dict = {
        "run": str(args.run),
        "mode": args.mode,
        "float": _figures(evaluate_run(run, dataset)),
    }
    print(f"float run: {json.dumps(result['float'])}", flush=True)
    if args.epochs > 0:
        cloud = run.ddnn.tiers[CLOUD]
        if args.mode == "qat":
            cloud = qat_cloud(cloud)
        run.ddnn.tiers[CLOUD] = cloud
        run.ddnn._eval_model = None  # rebuilt from the tiers on next use
        result["fine_tune"] = {
            "epochs": args.epochs,
            "learning_rate": args.learning_rate,
            "train_samples": args.train_samples,
            "seconds": fine_tune(
                run,
                cloud,
                dataset,
                epochs=args.epochs,
                learning_rate=args.learning_rate,
                samples=args.train_samples,
                seed=args.seed,
            ),
        }
    if args.mode == "float":
        from ddnn_tf.keras.convert import convert

        convert(
            run,
            "local,cloud",
            out=out,
            target="portable",
            overwrite=args.overwrite,
            dataset=dataset,
        )
        result["cloud_tflite_bytes"] = (out / "cloud.tflite").stat().st_size
    else:
        result["cloud_tflite_bytes"] = convert_int8_cloud(
            run, dataset, out, overwrite=args.overwrite
        )
    result.update(measure(run, dataset, out))
    (out / "qat_cloud.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
