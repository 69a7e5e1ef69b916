"""A run directory saves and reloads into the identical model."""

import dataclasses
import json

import numpy as np
import pytest

from ddnn_tf.keras.rundir import WEIGHTS_FILE, Run, load_run, save_run


def test_save_load_round_trip(tiny_run, tiny_dataset, tmp_path):
    run = dataclasses.replace(tiny_run)  # save_run sets .path; the session's run keeps its own
    out = save_run(run, tmp_path / "copy", dataset=tiny_dataset)
    assert out == tmp_path / "copy" and run.path == out and tiny_run.path != out
    back = load_run(out)
    assert isinstance(back, Run) and back.path == out
    assert back.topology == tiny_run.topology
    assert back.config == tiny_run.config
    assert back.dataset_spec == tiny_run.dataset_spec
    assert back.thresholds == tiny_run.thresholds and back.history == tiny_run.history
    xs = [x[:16] for x in tiny_dataset.test.x]
    for a, b in zip(tiny_run.ddnn.model.get_weights(), back.ddnn.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    got, want = back.ddnn.model(xs), tiny_run.ddnn.model(xs)
    for exit_name in tiny_run.topology.exits:
        np.testing.assert_array_equal(got[exit_name].numpy(), want[exit_name].numpy())
    info = json.loads((out / "dataset.json").read_text())
    assert info["classes"] == list(tiny_dataset.classes)


def test_save_refuses_existing_dir_and_load_names_missing_files(tiny_run, tmp_path):
    run = dataclasses.replace(tiny_run)
    out = save_run(run, tmp_path / "r")
    with pytest.raises(ValueError, match="already exists"):
        save_run(run, out)
    (out / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="weights.h5"):
        load_run(out)
    with pytest.raises(FileNotFoundError, match="Run directory not found"):
        load_run(tmp_path / "nowhere")
