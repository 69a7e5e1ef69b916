import json

import numpy as np
import pytest
from conftest import run_cli

from ddnn_tf.core.checks import check_labels, check_views
from ddnn_tf.keras.presets import PAPER_ADAM, TrainConfig, topology_for
from ddnn_tf.keras.rundir import load_run
from ddnn_tf.keras.train import predict_exits, train


def test_paper_defaults():
    c = TrainConfig()
    assert (c.learning_rate, c.beta_1, c.beta_2, c.epsilon) == (1e-3, 0.9, 0.999, 1e-8)
    assert PAPER_ADAM["epsilon"] == 1e-8


def test_run_dir_holds_everything_and_reloads_identically(tiny_run, tiny_dataset):
    path = tiny_run.path
    for name in (
        "topology.json",
        "dataset.json",
        "train_config.json",
        "history.json",
        "thresholds.json",
        "weights.h5",
    ):
        assert (path / name).is_file(), name
    history = json.loads((path / "history.json").read_text())
    assert len(history["local_accuracy"]) == 2 and len(history["val_cloud_accuracy"]) == 2
    again = load_run(path)
    assert again.topology == tiny_run.topology
    xs = tiny_dataset.test.x
    a = predict_exits(tiny_run.ddnn, xs)
    b = predict_exits(again.ddnn, xs)
    for e in a:
        np.testing.assert_array_equal(a[e], b[e])
    assert again.load_data() == tiny_dataset


def test_training_learns_the_synthetic_task(tiny_run, tiny_dataset):
    probs = predict_exits(tiny_run.ddnn, tiny_dataset.test.x)
    acc = (probs["cloud"].argmax(1) == tiny_dataset.test.y).mean()
    assert acc > 0.6  # 3 classes: chance is 0.33


def test_seeded_runs_are_reproducible(tiny_dataset):
    small = tiny_dataset.train.subset(slice(0, 96))
    ds = type(tiny_dataset)(**{**tiny_dataset.__dict__, "train": small})
    cfg = TrainConfig(epochs=1, batch_size=32, seed=7)
    w1 = train(ds, config=cfg, verbose=0).ddnn.model.get_weights()
    w2 = train(ds, config=cfg, verbose=0).ddnn.model.get_weights()
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)


def test_existing_run_dir_needs_overwrite(tiny_run, tiny_dataset):
    with pytest.raises(ValueError, match="already exists"):
        train(tiny_dataset, out=tiny_run.path, verbose=0)


def test_load_run_errors(tmp_path, tiny_run):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_run(tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "topology.json").write_text("{oops")
    with pytest.raises(ValueError, match="topology.json is not valid JSON"):
        load_run(broken)
    # a complete run dir whose weights file is garbage
    import shutil

    bad = tmp_path / "badweights"
    shutil.copytree(tiny_run.path, bad)
    (bad / "weights.h5").write_bytes(b"not an hdf5 file")
    with pytest.raises(ValueError, match="Cannot read weights"):
        load_run(bad)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda xs: xs[:-1], "expected 6 device inputs"),
        (lambda xs: [xs[0][:, :5]] + xs[1:], "device 0 input has shape"),
        (
            lambda xs: (
                xs[:2]
                + [np.where(np.arange(len(xs[2]))[:, None, None, None] == 1, np.nan, xs[2])]
                + xs[3:]
            ),
            "NaN",
        ),
        (lambda xs: xs[:1] + [xs[1][:3]] + xs[2:], "differ in sample count"),
    ],
)
def test_bad_inputs_give_clear_errors(tiny_dataset, mutate, message):
    xs = list(tiny_dataset.test.x)
    with pytest.raises(ValueError, match=message):
        check_views(tiny_dataset.input_shapes, mutate(xs))


def test_labels_out_of_range_are_rejected():
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\]"):
        check_labels(np.array([0, 1, 3]), 3)
    with pytest.raises(ValueError, match="integers"):
        check_labels(np.array([0.5, 1.0]), 3)


def test_train_cli_end_to_end_and_errors(tmp_path):
    out = tmp_path / "cli_run"
    flags = "--data synthetic --epochs 1 --train-limit 120 --verbose 0 --local-agg avg"
    ok = run_cli("ddnn_tf.train", *flags.split(), "--out", str(out))
    assert ok.returncode == 0, ok.stderr[-2000:]
    topology = json.loads((out / "topology.json").read_text())
    assert topology["local_agg"] == "avg"
    assert topology["summary_bits"] == 4 and topology["cloud_precision"] == "float"  # default
    config = json.loads((out / "train_config.json").read_text())
    assert config["preset"] == "default" and config["lr_schedule"] == "cosine"
    preset = run_cli(
        "ddnn_tf.train", "--data", "synthetic", "--out", str(tmp_path / "p"), "--preset", "tiny"
    )
    assert preset.returncode == 2 and "--preset: expected one of paper, default" in preset.stderr
    bad = run_cli(
        "ddnn_tf.train",
        "--data",
        "npz",
        "--path",
        str(tmp_path / "none.npz"),
        "--out",
        str(tmp_path / "x"),
    )
    assert bad.returncode != 0
    assert "none.npz" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x").exists()
    scheme = run_cli(
        "ddnn_tf.train", "--data", "synthetic", "--out", str(tmp_path / "y"), "--cloud-agg", "sum"
    )
    assert scheme.returncode != 0 and "cloud_agg='sum'" in scheme.stderr


def _write_npz(path, **arrays):
    import numpy as np

    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize(
    "arrays, message",
    [
        (dict(x0=np.zeros((10, 4)), x1=np.zeros((9, 4)), y=np.zeros(10, int)), "x1"),
        (dict(x1=np.zeros((10, 4)), y=np.zeros(10, int)), "x0"),
        (dict(x0=np.full((10, 4), np.nan), y=np.zeros(10, int)), "NaN"),
        (dict(x0=np.zeros((10, 4)), y=-np.ones(10, int)), "expected labels >= 0"),
    ],
    ids=["mismatched-lengths", "missing-x0", "nan-inputs", "negative-labels"],
)
def test_train_cli_rejects_bad_npz(tmp_path, arrays, message):
    data = _write_npz(tmp_path / "bad.npz", **arrays)
    res = run_cli("ddnn_tf.train", "--data", "npz", "--path", data, "--out", str(tmp_path / "r"))
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "r").exists()


def test_evaluate_cli_rejects_data_of_the_wrong_shape(tiny_run, tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"x{i}": rng.random((20, 8, 8, 1)) for i in range(6)}
    data = _write_npz(tmp_path / "other.npz", y=np.arange(20) % 3, **arrays)
    res = run_cli("ddnn_tf.evaluate", str(tiny_run.path), "--data", "npz", "--path", data)
    assert res.returncode == 2
    assert (
        "device 0 input has shape (4, 8, 8, 1), expected (N, 10, 14, 1)" in res.stderr
    )  # 20% test


def test_comma_separated_flags_survive_fire_parsing():
    from ddnn_tf.cli.flags import flag_items
    from ddnn_tf.cli.train import _exit_weights as parse_flag
    from ddnn_tf.keras.train import _exit_weights as by_exit

    # fire turns "a,b" into a tuple and "3" into an int
    assert flag_items(("local", "cloud")) == ["local", "cloud"]
    assert flag_items((0, 1, 2)) == ["0", "1", "2"] and flag_items(0) == ["0"]
    assert flag_items("0,1,2;3,4,5", ";") == ["0,1,2", "3,4,5"]
    assert by_exit(parse_flag((1, 0.5)), ("local", "cloud")) == {"local": 1.0, "cloud": 0.5}
    assert by_exit(parse_flag("cloud=2"), ("local", "cloud")) == {"cloud": 2.0}
    with pytest.raises(ValueError, match="2 weights for 3 exits"):
        by_exit(parse_flag("1,1"), ("local", "edge", "cloud"))


def test_train_cli_edges_exits_and_weights(tmp_path):
    out = tmp_path / "edges"
    res = run_cli(
        "ddnn_tf.train", "--data", "synthetic", "--out", str(out), "--epochs", "1",
        "--train-limit", "60", "--verbose", "0", "--edges", "0,1,2;3,4,5",
        "--exit-weights", "1,0.5,2",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    topology = json.loads((out / "topology.json").read_text())
    assert topology["edges"] == [[0, 1, 2], [3, 4, 5]]
    assert topology["exits"] == ["local", "edge", "cloud"]
    weights = json.loads((out / "train_config.json").read_text())["exit_weights"]
    assert weights == {"local": 1.0, "edge": 0.5, "cloud": 2.0}


def test_unknown_flags_stop_before_anything_runs(tiny_run, tmp_path):
    typo = run_cli(
        "ddnn_tf.train", "--data", "synthetic", "--out", str(tmp_path / "t"),
        "--devcie-dropout", "0.1",
    )  # fmt: skip
    assert typo.returncode == 2 and "Unknown flag --devcie-dropout" in typo.stderr
    assert "--device-dropout" in typo.stderr and not (tmp_path / "t").exists()
    bogus = run_cli("ddnn_tf.evaluate", str(tiny_run.path), "--bogus", "1")
    assert bogus.returncode == 2 and bogus.stdout == ""


def test_upper_phase_trains_the_tiers_above_frozen_devices(tiny_dataset):
    topology = topology_for(tiny_dataset, local_agg="mlp", local_units=8, device_dropout=0.1)
    plain = train(tiny_dataset, topology, TrainConfig(epochs=1, batch_size=32), verbose=0)
    run = train(
        tiny_dataset, topology, TrainConfig(epochs=1, batch_size=32, upper_epochs=2), verbose=0
    )
    assert len(run.history["upper_epoch_seconds"]) == 2
    assert len(run.history["upper_val_local_accuracy"]) == 2
    assert "upper_epoch_seconds" not in plain.history
    for name in ("device_0", "device_5"):  # same seed, same joint epoch: devices untouched
        for a, b in zip(plain.ddnn.tiers[name].get_weights(), run.ddnn.tiers[name].get_weights()):
            np.testing.assert_array_equal(a, b)
    for name in ("local_aggregator", "cloud"):
        changed = [
            not np.array_equal(a, b)
            for a, b in zip(
                plain.ddnn.tiers[name].get_weights(), run.ddnn.tiers[name].get_weights()
            )
        ]
        assert any(changed)
