"""ddnn_tf.runtime: manifest loading, tier runners and the Hierarchy orchestrator."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from ddnn_tf.core.comm import feature_nbytes, summary_nbytes
from ddnn_tf.core.cost.traffic import hierarchy_bytes
from ddnn_tf.core.exits import evaluate_exits, exit_points, normalized_entropy, predictions
from ddnn_tf.runtime import Hierarchy, TierRunner, draw_presence, evaluate_model

TARGETS = ("portable", "lce")


def converted(tiny_run, tiny_dataset, tmp_path_factory) -> Path:
    """The tiny run converted once per session (local,cloud, both targets), shared on disk
    by this module and test_run_cli."""
    out = tmp_path_factory.getbasetemp() / "runtime_models" / "mpcc"
    if not (out / "manifest.json").is_file():
        from ddnn_tf.keras.convert import convert

        convert(tiny_run, "local,cloud", out=out, dataset=tiny_dataset, overwrite=True)
    return out


@pytest.fixture(scope="module")
def model_dir(tiny_run, tiny_dataset, tmp_path_factory) -> Path:
    return converted(tiny_run, tiny_dataset, tmp_path_factory)


@pytest.fixture(scope="module")
def hierarchies(model_dir) -> dict[str, Hierarchy]:
    return {t: Hierarchy(model_dir, target=t) for t in TARGETS}


@pytest.fixture(scope="module")
def test_split(tiny_dataset):
    return tiny_dataset.test


@pytest.fixture(scope="module")
def all_exits(hierarchies, test_split):
    return {t: h.run(test_split.x, all_exits=True, batch_size=32) for t, h in hierarchies.items()}


def _mid_threshold(probs: np.ndarray) -> float:
    """A threshold that exits about half of the samples at the first exit.

    It sits in the widest gap between the sorted entropies of the middle samples, so no
    sample lies within float round-off of it (targets may differ in the last bits).
    """
    eta = np.sort(normalized_entropy(probs))
    lo, hi = len(eta) // 4, max(len(eta) * 3 // 4, len(eta) // 4 + 1)
    gaps = np.diff(eta[lo : hi + 1])
    k = lo + int(np.argmax(gaps))
    return float((eta[k] + eta[k + 1]) / 2)


def _assert_same_result(a, b, *, exact_probs: bool = True) -> None:
    np.testing.assert_array_equal(a.exit_index, b.exit_index)
    np.testing.assert_array_equal(a.prediction, b.prediction)
    for link in a.link_bytes:
        np.testing.assert_array_equal(a.link_bytes[link], b.link_bytes[link], err_msg=link)
    for e in a.exits if exact_probs else ():
        np.testing.assert_array_equal(a.probs[e], b.probs[e], err_msg=e)


# ------------------------------------------------------------------------------ purity
def test_runtime_imports_no_tensorflow(model_dir):
    """A fresh interpreter imports the runtime and runs both targets without TF/Keras/Larq."""
    code = f"""
import sys
import numpy as np
import ddnn_tf.runtime, ddnn_tf.run
from ddnn_tf.runtime import Hierarchy
heavy = {{'tensorflow', 'tf_keras', 'keras', 'larq'}}
assert not heavy & set(sys.modules), sorted(heavy & set(sys.modules))
lce = 'larq_compute_engine.tflite.python.interpreter_wrapper_lite'
h = Hierarchy({str(model_dir)!r}, target='portable')
xs = [np.zeros((2, *s), np.float32) for s in h.topology.input_shapes]
h.run(xs, batch_size=2)
assert lce not in sys.modules  # the lce interpreter loads only when that target is used
Hierarchy({str(model_dir)!r}, target='lce').run(xs)
mods = {{m.split('.')[0] for m in sys.modules}}
assert not heavy & mods, sorted(heavy & mods)
print('ok')
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")


# ------------------------------------------------------------------------- decisions
@pytest.mark.parametrize("target", TARGETS)
def test_staged_decisions_equal_numpy_evaluation(hierarchies, all_exits, test_split, target):
    h, full = hierarchies[target], all_exits[target]
    y = test_split.y
    probs = {e: full.probs[e] for e in h.exits}
    assert not any(np.isnan(p).any() for p in probs.values())  # every exit ran on every sample
    for t in (0.0, _mid_threshold(probs["local"]), 1.0):
        staged = h.run(test_split.x, thresholds=t, batch_size=16)
        expected = exit_points(list(probs.values()), [t])
        np.testing.assert_array_equal(staged.exit_index, expected)
        np.testing.assert_array_equal(
            staged.prediction, predictions(list(probs.values()), expected)
        )
        report = evaluate_exits(probs, y, t)
        assert staged.exit_fraction() == pytest.approx(report.exit_fraction)
        assert staged.accuracy(y) == pytest.approx(report.accuracy["overall"])
        # what ran where: the cloud only for samples that did not exit locally
        assert staged.tier_samples["cloud"] == np.count_nonzero(staged.exit_index == 1)
        assert staged.tier_samples["local_aggregator"] == len(y)
        for e in h.exits:  # the probabilities seen are those of the all-exits pass
            rows = ~np.isnan(staged.probs[e][:, 0])
            np.testing.assert_array_equal(staged.probs[e][rows], full.probs[e][rows])
    mixed = h.run(test_split.x, thresholds=_mid_threshold(probs["local"]))
    assert 0.0 < mixed.exit_fraction()["local"] < 1.0


def test_targets_agree_and_match_keras_evaluation(hierarchies, all_exits, tiny_run, tiny_dataset):
    """Same decisions as ddnn_tf.evaluate on the Keras run (up to conversion parity)."""
    from ddnn_tf.keras.evaluate import evaluate_run
    from ddnn_tf.keras.train import predict_exits

    test = tiny_dataset.test
    keras_probs = predict_exits(tiny_run.ddnn, test.x)
    t = _mid_threshold(keras_probs["local"])
    keras_exit = exit_points([keras_probs[e] for e in ("local", "cloud")], [t])
    reference = evaluate_run(tiny_run, tiny_dataset, threshold=t)
    for target, h in hierarchies.items():
        staged = h.run(test.x, thresholds=t, batch_size=64)
        mismatches = int(np.count_nonzero(staged.exit_index != keras_exit))
        assert mismatches <= max(1, len(test) // 100), (target, mismatches)
        result = evaluate_model(h, tiny_dataset, threshold=t)
        for key in ("exit_fraction", "accuracy"):
            for name, value in reference[key].items():
                assert result[key][name] == pytest.approx(value, abs=1.5 / len(test)), (key, name)
        assert set(reference) - {"communication_reduction"} <= set(result)
    np.testing.assert_array_equal(all_exits["portable"].exit_index, all_exits["lce"].exit_index)


# ------------------------------------------------------------------------------ bytes
@pytest.mark.parametrize("fail", [None, "1,4"])
def test_bytes_are_measured_payloads_equal_to_formula(
    hierarchies, all_exits, test_split, tiny_run, fail
):
    h = hierarchies["portable"]
    topology = tiny_run.topology
    t = _mid_threshold(all_exits["portable"].probs["local"])
    r = h.run(test_split.x, thresholds=t, fail=fail, batch_size=8)
    wire = h.manifest["wire"]
    c = summary_nbytes(topology.num_classes)
    assert wire["summary"]["nbytes"] == c
    went_up = r.exit_index != 0
    for d in range(topology.num_devices):
        f = feature_nbytes(topology.feature_shape(d))
        assert wire["features"][f"device_{d}"]["nbytes"] == f
        alive = r.presence[:, d]
        expected = np.where(alive, c + went_up * f, 0)
        np.testing.assert_array_equal(r.device_bytes()[:, d], expected)
        np.testing.assert_array_equal(r.link_bytes["device_to_local"][:, d], np.where(alive, c, 0))
    formula = hierarchy_bytes(
        topology,
        r.exit_fraction(),
        raw_bytes_per_device=[e["raw_bytes"] for e in h.manifest["inputs"]],
        failed=~r.presence[0],
    )
    assert r.bytes_per_device() == pytest.approx(formula["bytes_per_device"])


# ------------------------------------------------------------------------ batching
@pytest.mark.parametrize("target", TARGETS)
def test_batched_equals_one_by_one(hierarchies, test_split, target):
    h = hierarchies[target]
    kwargs = dict(thresholds=0.5, fail_prob=0.2, seed=3)
    one = h.run(test_split.x, batch_size=1, **kwargs)
    for size in (7, len(test_split)):
        _assert_same_result(one, h.run(test_split.x, batch_size=size, **kwargs))
    for tier, count in one.tier_samples.items():
        assert count == h.run(test_split.x, batch_size=7, **kwargs).tier_samples[tier]


def test_stream_equals_batch(hierarchies, test_split):
    h = hierarchies["portable"]
    samples = list(zip(*[x[:10] for x in test_split.x]))
    records = list(h.stream(samples, thresholds=0.5, fail="2"))
    batch = h.run([x[:10] for x in test_split.x], thresholds=0.5, fail="2", batch_size=10)
    assert [r["exit"] for r in records] == [batch.exit_name(i) for i in range(10)]
    assert [r["prediction"] for r in records] == batch.prediction.tolist()
    assert all(2 not in r["present_devices"] and r["latency_ms"] for r in records)
    assert records[0]["bytes"] == batch.sample(0)["bytes"]


# ------------------------------------------------------------------------ failures
def test_fixed_failures_are_absent_devices(hierarchies, test_split, tiny_run):
    from ddnn_tf.keras.train import predict_exits

    h = hierarchies["portable"]
    r = h.run(test_split.x, thresholds=0.5, fail="0,3", all_exits=True, batch_size=32)
    assert not r.presence[:, [0, 3]].any() and r.presence[:, [1, 2, 4, 5]].all()
    assert r.tier_samples["device_0"] == 0 and r.tier_samples["device_3"] == 0
    assert not r.device_bytes()[:, [0, 3]].any()
    # The same as the Keras model with those devices absent (presence 0), not zero input.
    presence = np.broadcast_to(r.presence, r.presence.shape).astype(np.float32)
    keras_probs = predict_exits(tiny_run.ddnn, test_split.x, presence=presence)
    for e in h.exits:
        agree = np.mean(np.argmax(r.probs[e], 1) == np.argmax(keras_probs[e], 1))
        assert agree >= 0.98, (e, agree)
    healthy = h.run(test_split.x, thresholds=0.5, all_exits=True, batch_size=32)
    assert not np.allclose(healthy.probs["cloud"], r.probs["cloud"])


def test_random_failures_account_for_every_sample(hierarchies, test_split):
    h = hierarchies["portable"]
    n = len(test_split)
    r = h.run(test_split.x, thresholds=0.5, fail_prob=0.7, seed=11, batch_size=16)
    again = h.run(test_split.x, thresholds=0.5, fail_prob=0.7, seed=11, batch_size=5)
    _assert_same_result(r, again)
    other = h.run(test_split.x, thresholds=0.5, fail_prob=0.7, seed=12)
    assert not np.array_equal(r.presence, other.presence)
    np.testing.assert_array_equal(r.presence, draw_presence(n, 6, fail_prob=0.7, seed=11))
    dead = ~r.presence.any(axis=1)
    assert dead.any() and not dead.all()
    # every sample: exactly one result; the dead ones unclassified, never guessed
    assert len(r) == n and len(r.exit_index) == n
    assert np.all(r.exit_index[dead] == -1) and np.all(r.prediction[dead] == -1)
    assert np.all(r.exit_index[~dead] >= 0) and np.all(r.prediction[~dead] >= 0)
    fractions = r.exit_fraction()
    assert fractions["unclassified"] == pytest.approx(dead.mean())
    assert sum(fractions.values()) == pytest.approx(1.0)
    assert r.tier_samples["local_aggregator"] == np.count_nonzero(~dead)
    assert not r.device_bytes()[dead].any()
    assert r.accuracy(test_split.y) <= np.mean(~dead)
    assert r.sample(int(np.flatnonzero(dead)[0]))["exit"] == "unclassified"


# --------------------------------------------------------------- other hierarchies
@pytest.fixture(scope="module")
def edge_model(tmp_path_factory):
    """An untrained (f)-like hierarchy: 3 devices, edges {0, 1} and {2}, three exits."""
    from ddnn_tf.core.topology import Topology
    from ddnn_tf.data import load_dataset
    from ddnn_tf.keras.compat import keras
    from ddnn_tf.keras.convert import convert_run, save_conversion
    from ddnn_tf.keras.model import build_ddnn
    from ddnn_tf.keras.presets import TrainConfig
    from ddnn_tf.keras.rundir import Run

    ds = load_dataset("synthetic", n_samples=100, num_devices=3, seed=1)
    keras.utils.set_random_seed(1)  # the same untrained weights whatever ran before
    topology = Topology(
        input_shapes=ds.input_shapes,
        num_classes=ds.num_classes,
        edges=[[0, 1], [2]],
        exits=("local", "edge", "cloud"),
    )
    run = Run(
        topology=topology,
        ddnn=build_ddnn(topology),
        dataset_spec=dict(ds.spec),
        config=TrainConfig(epochs=1),
        thresholds={"local": 0.5, "edge": 0.5},
    )
    out = tmp_path_factory.mktemp("edge") / "model"
    save_conversion(convert_run(run, target="both", dataset=ds), out)
    return run, ds, out


def test_edge_hierarchy_exits_bytes_and_failures(edge_model):
    from ddnn_tf.keras.train import predict_exits

    run, ds, out = edge_model
    x = ds.test.x
    h = Hierarchy(out)
    assert h.exits == ("local", "edge", "cloud") and h.edge_tiers == ["edge_0", "edge_1"]
    presence = draw_presence(len(ds.test), 3, fail_prob=0.3, seed=0)
    full = h.run(x, presence=presence, all_exits=True, batch_size=8)
    keras = predict_exits(run.ddnn, x, presence=presence.astype(np.float32))
    valid = presence.any(axis=1)
    # Edge presence as in Keras: an edge is there when any of its devices is. (Rows may
    # differ where a near-zero activation binarises differently in the binary, the
    # conversion's parity limit; a wrong presence rule would break ~30% of the rows.)
    for e in h.exits:
        close = np.isclose(full.probs[e][valid], keras[e][valid], atol=1e-4).all(axis=1)
        assert close.mean() >= 0.9, (e, close.mean())
    ts = {
        "local": _mid_threshold(full.probs["local"][valid]),
        "edge": _mid_threshold(full.probs["edge"][valid]),
    }
    staged = h.run(x, thresholds=ts, presence=presence, batch_size=8)
    expected = exit_points([full.probs[e] for e in h.exits], [ts["local"], ts["edge"]], valid)
    np.testing.assert_array_equal(staged.exit_index, expected)
    assert {0, 1, 2} <= set(staged.exit_index.tolist())
    _assert_same_result(staged, h.run(x, thresholds=ts, presence=presence, batch_size=1))
    lce = Hierarchy(out, target="lce").run(x, thresholds=ts, presence=presence)
    _assert_same_result(staged, lce, exact_probs=False)  # other kernels: float round-off
    # bytes: edge summaries for samples past the local exit, edge features past the edge exit
    t = run.topology
    for j, group in enumerate(t.edges):
        alive = presence[:, list(group)].any(axis=1)
        up = feature_nbytes(t.edge_feature_shape(j))
        np.testing.assert_array_equal(
            staged.link_bytes["edge_to_cloud"][:, j],
            np.where(alive & (staged.exit_index == 2), up, 0),
        )
        np.testing.assert_array_equal(
            staged.link_bytes["edge_to_aggregator"][:, j],
            np.where(alive & (staged.exit_index >= 1), summary_nbytes(t.num_classes), 0),
        )
    assert staged.tier_samples["edge_1"] == np.count_nonzero(
        presence[:, 2] & (staged.exit_index >= 1)
    )


def test_raw_offload_sends_raw_bytes(tiny_run, tiny_dataset, tmp_path_factory):
    from ddnn_tf.keras.convert import convert
    from ddnn_tf.keras.train import predict_exits

    out = convert(
        tiny_run,
        "cloud",
        out=tmp_path_factory.mktemp("raw") / "model",
        target="portable",
        dataset=tiny_dataset,
    )
    h = Hierarchy(out)
    assert h.exits == ("cloud",) and list(h.tiers) == ["cloud"]
    test = tiny_dataset.test
    r = h.run(test.x, fail="2", batch_size=16)
    raw = np.array([e["raw_bytes"] for e in h.manifest["inputs"]])
    np.testing.assert_array_equal(r.link_bytes["device_to_upper"], np.where(r.presence, raw, 0))
    assert not r.link_bytes["device_to_local"].any()
    assert np.all(r.exit_index == 0)
    keras = predict_exits(tiny_run.ddnn, test.x, presence=r.presence.astype(np.float32))
    assert np.mean(r.prediction == np.argmax(keras["cloud"], axis=1)) >= 0.98


# ------------------------------------------------------------------- bad manifests
def _copy(model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(model_dir, tmp_path / "model"))


def _edit_manifest(path: Path, change) -> None:
    data = json.loads((path / "manifest.json").read_text())
    change(data)
    (path / "manifest.json").write_text(json.dumps(data))


def test_missing_file_and_hash_mismatch(model_dir, tmp_path):
    bad = _copy(model_dir, tmp_path)
    (bad / "device_3.lce.tflite").unlink()
    with pytest.raises(FileNotFoundError, match="device_3.lce.tflite"):
        Hierarchy(bad)
    bad = _copy(model_dir, tmp_path / "b")
    blob = bytearray((bad / "cloud.tflite").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (bad / "cloud.tflite").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="cloud.tflite.*sha256"):
        Hierarchy(bad)
    with pytest.raises(FileNotFoundError, match="No manifest"):
        Hierarchy(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda m: m.update(format_version=99), "version"),
        (lambda m: m.update(format="something-else"), "format"),
        (lambda m: m.pop("tiers"), "tiers"),
        (lambda m: m["tiers"].pop("local_aggregator"), "local_aggregator"),
        (lambda m: m["tiers"]["cloud"]["inputs"].pop(0), "features_0"),
        (lambda m: m["wire"]["features"].pop("device_2"), "device_2"),
        (lambda m: m["tiers"].pop("device_4"), r"has tiers \['device_0'.*the manifest lists"),
        (
            lambda m: m["tiers"]["cloud"]["inputs"][4].update(
                {"from": {"tier": "edge_7", "output": "features"}}
            ),
            "input 'features_4' has from .*edge_7.*the tier graph says .*device_4",
        ),
    ],
)
def test_bad_manifest_is_a_clear_error(model_dir, tmp_path, change, match):
    bad = _copy(model_dir, tmp_path)
    _edit_manifest(bad, change)
    with pytest.raises(ValueError, match=match):
        Hierarchy(bad)


def test_malformed_json_and_unknown_target(model_dir, tmp_path):
    bad = _copy(model_dir, tmp_path)
    (bad / "manifest.json").write_text('{"format": "ddnn-tf-manifest", ')
    with pytest.raises(ValueError, match="not valid JSON"):
        Hierarchy(bad)
    with pytest.raises(ValueError, match="^target: expected one of"):
        Hierarchy(model_dir, target="gpu")
    only = _copy(model_dir, tmp_path / "portable")

    def portable_only(m):
        m["targets"] = ["portable"]
        for tier in m["tiers"].values():
            tier["files"].pop("lce")

    _edit_manifest(only, portable_only)
    with pytest.raises(ValueError, match="converted for \\['portable'\\]"):
        Hierarchy(only, target="lce")


# ---------------------------------------------------------------------- bad inputs
def test_bad_inputs_are_clear_errors(hierarchies, test_split):
    h = hierarchies["portable"]
    xs = [x[:4] for x in test_split.x]
    with pytest.raises(ValueError, match="expected 6 device inputs"):
        h.run(xs[:5])
    with pytest.raises(ValueError, match=r"device 2 input has shape \(4, 10, 13, 1\)"):
        h.run(xs[:2] + [xs[2][:, :, :13]] + xs[3:])
    with pytest.raises(ValueError, match="device 0 input has dtype complex128"):
        h.run([xs[0].astype(complex)] + xs[1:])
    with pytest.raises(ValueError, match="device 1 input has dtype <U"):
        h.run([xs[0], xs[1].astype(str)] + xs[2:])
    nan = xs[4].copy()
    nan[2, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="device 4 input has NaN or inf.*sample 2"):
        h.run(xs[:4] + [nan] + xs[5:])
    with pytest.raises(ValueError, match="differ in sample count"):
        h.run(xs[:5] + [xs[5][:3]])
    with pytest.raises(ValueError, match=r"threshold: expected a number in \[0, 1\]"):
        h.run(xs, thresholds=1.5)
    with pytest.raises(ValueError, match="none for \\['local'\\]"):
        h.run(xs, thresholds={"edge": 0.3})
    with pytest.raises(ValueError, match="^batch_size: expected a positive integer"):
        h.run(xs, batch_size=0)
    with pytest.raises(ValueError, match="device 9 does not exist"):
        h.run(xs, fail="9")
    with pytest.raises(ValueError, match="^fail_prob: expected a probability"):
        h.run(xs, fail_prob=1.5)
    with pytest.raises(ValueError, match="presence"):
        h.run(xs, presence=np.ones((4, 5), bool))
    # images without their channel axis are accepted, as in the Keras evaluation
    squeezed = h.run([x[..., 0] for x in xs], thresholds=0.5)
    np.testing.assert_array_equal(squeezed.prediction, h.run(xs, thresholds=0.5).prediction)


@pytest.mark.parametrize("target", TARGETS)
def test_tier_runner_binds_by_name_and_checks_feeds(model_dir, hierarchies, target):
    h = hierarchies[target]
    meta = h.manifest["tiers"]["cloud"]
    entry = meta["files"][target]
    runner = TierRunner(
        "cloud",
        (model_dir / entry["file"]).read_bytes(),
        target=target,
        inputs=meta["inputs"],
        outputs=meta["outputs"],
        input_order=entry["input_order"],
        output_order=entry["output_order"],
    )
    rng = np.random.default_rng(0)
    feeds = {
        f"features_{d}": np.where(rng.random((3, 5, 7, 4)) < 0.5, -1, 1).astype(np.float32)
        for d in range(6)
    }
    feeds["presence"] = np.ones((3, 6), np.float32)
    reversed_feeds = dict(reversed(list(feeds.items())))
    np.testing.assert_array_equal(runner(feeds)["logits"], runner(reversed_feeds)["logits"])
    one = np.concatenate(
        [runner({k: v[i : i + 1] for k, v in feeds.items()})["logits"] for i in range(3)]
    )
    np.testing.assert_array_equal(runner(feeds)["logits"], one)
    with pytest.raises(ValueError, match="Tier cloud.*missing \\['presence'\\]"):
        runner({k: v for k, v in feeds.items() if k != "presence"})
    with pytest.raises(ValueError, match="Tier cloud: input 'features_1' has dtype float64"):
        runner({**feeds, "features_1": feeds["features_1"].astype(np.float64)})
    with pytest.raises(ValueError, match="Tier cloud: input 'presence' has shape \\(3, 5\\)"):
        runner({**feeds, "presence": np.ones((3, 5), np.float32)})
    bad_order = entry["input_order"][1:] + entry["input_order"][:1]  # moves `presence`
    if target == "lce":
        with pytest.raises(ValueError, match="input_order does not match"):
            TierRunner(
                "cloud",
                (model_dir / entry["file"]).read_bytes(),
                target=target,
                inputs=meta["inputs"],
                outputs=meta["outputs"],
                input_order=bad_order,
                output_order=entry["output_order"],
            )


def test_evaluate_model_report(hierarchies, tiny_dataset):
    result = evaluate_model(hierarchies["portable"], tiny_dataset, sweep=True, limit=30, fail="5")
    assert result["n_samples"] == 30 and result["failed_devices"] == [5]
    assert result["thresholds"] == hierarchies["portable"].thresholds  # the manifest's
    assert result["staged_matches_all_exits"] is True
    assert set(result["latency_ms"]) == set(hierarchies["portable"].tiers)
    assert result["latency_ms"]["device_5"]["samples"] == 0
    assert result["latency_ms"]["device_0"]["samples"] == 30
    rows = result["sweep"]
    assert [r["threshold"] for r in rows] == sorted(r["threshold"] for r in rows)
    assert rows[-1]["exit_fraction"]["local"] == 1.0 and rows[-1]["bytes_per_device"] == 12
    with pytest.raises(ValueError, match="classes"):
        other = dataclasses.replace(tiny_dataset, classes=("a", "b", "c"))
        evaluate_model(hierarchies["portable"], other)
    with pytest.raises(ValueError, match="every device"):
        evaluate_model(hierarchies["portable"], tiny_dataset, fail="0,1,2,3,4,5")


def test_the_eager_protocol_gives_the_same_answers_and_counts_one_message():
    """``protocol="eager"``: every live device's one message carries its summary and its
    packed features; the gateway forwards the features of the samples that go on (the
    paper protocol's device_to_upper); exits and predictions do not change."""
    from ddnn_tf.data import load_dataset

    h = Hierarchy(ROOT / "tflite_models" / "fmnist6_mlpcc")
    test = load_dataset("fmnist6").test.subset(slice(0, 400))
    paper = h.run(test.x, fail="2", batch_size=64)
    eager = h.run(test.x, fail="2", batch_size=64, protocol="eager")
    assert np.array_equal(paper.exit_index, eager.exit_index)
    assert np.array_equal(paper.prediction, eager.prediction)
    assert np.array_equal(paper.link_bytes["device_to_upper"], eager.link_bytes["device_to_upper"])
    sent = eager.link_bytes["device_to_local"]
    assert set(np.unique(sent[:, [0, 1, 3, 4, 5]])) == {5 + 18} and not sent[:, 2].any()
    assert eager.bytes_per_device() == 23.0 > paper.bytes_per_device()
    with pytest.raises(ValueError, match="protocol: expected one of paper, eager"):
        h.run(test.x, protocol="lazy")
