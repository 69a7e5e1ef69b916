"""The hierarchy search (``ddnn_tf.search``): the space, the hardware, the report, a small
search on synthetic data priced on a microcontroller and a radio (resumed), the export and
bad input. Two workers on one PostgreSQL study (on a board alone, nothing priced):
``tests/test_search_study.py``."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from ddnn_tf.errors import ConfigError

#: Tiny trials: one joint epoch, no upper phase.
TINY = ("epochs=1", "upper_epochs=0", "cloud_layers=1")
#: Limits every tiny synthetic trial meets (they exist so that constraints are recorded).
ROOMY = {"max_flash": 65536, "max_ram": 65536}
#: The hardware the shared study is priced on, with limits every tiny trial meets.
PRICED = {"mcu": "nrf52840", "radio": "ble-1m", "max_energy_uj": 1e4, "max_latency_ms": 1e4}
JSON_KEYS = (
    "trial",
    "accuracy",
    "flash_bytes",
    "ram_bytes",
    "bytes_per_device",
    "energy_uj_per_sample",
    "local_exit_fraction",
    "params",
)


def _raising(error: BaseException):
    """A stand-in for training that fails at once (the trial's error, or Ctrl-C)."""

    def train(*args, **kwargs):
        raise error

    return train


@pytest.fixture(scope="module")
def searched(two_devices, tmp_path_factory):
    """One study that the tests of a real search share, built the way a user's grows, with
    one trial trained:

    1. ``--trials 1``: trial 0 (the preset's configuration) is interrupted (Ctrl-C) and
       queued again (as trial 1);
    2. ``--trials 1`` again: the search resumes and runs trial 1 with trial 0's
       configuration, to completion;
    3. ``--trials 2``: trial 2 fails with an error of its own; the search goes on and ends;
    4. ``--trials 2`` with trial 1's run directory as a reference: no trial runs; the
       reference is measured like a trial and compared with the front.
    """
    from ddnn_tf.errors import DeploymentError
    from ddnn_tf.search import run_search
    from ddnn_tf.search import trial as trial_module

    out = tmp_path_factory.mktemp("search") / "out"
    kw = dict(out=out, fix=TINY, progress=False, **ROOMY, **PRICED)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trial_module, "train", _raising(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            run_search(two_devices, trials=1, **kw)
    resumed = run_search(two_devices, trials=1, **kw)
    with pytest.MonkeyPatch.context() as patch:
        error = DeploymentError("the compiler failed: cc1: out of memory")
        patch.setattr(trial_module, "train", _raising(error))
        failed = run_search(two_devices, trials=2, **kw)
    reference = out / "trials" / "trial_0001"
    compared = run_search(two_devices, trials=2, compare=[reference], **kw)
    return SimpleNamespace(out=out, resumed=resumed, failed=failed, compared=compared)


# ------------------------------------------------------------------------ the space
def _space(dataset, **config):
    from ddnn_tf.keras.presets import PRESETS, preset_topology
    from ddnn_tf.search.space import default_space

    return default_space(
        preset_topology(dataset, "default"), {**PRESETS["default"]["config"], **config}
    )


def test_default_space_follows_the_devices(two_devices):
    from ddnn_tf.core.topology import Topology
    from ddnn_tf.search.space import default_space

    space = _space(two_devices)
    assert "device_filters" in space.names and "device_units" not in space.names
    assert space["epochs"].fixed == 5  # the preset's
    vectors = Topology(input_shapes=[(12,)] * 3, num_classes=4)
    assert "device_units" in default_space(vectors, {}).names
    assert "device_filters" not in default_space(vectors, {}).names


def test_a_trial_sets_the_topology_and_the_training(two_devices):
    space = _space(two_devices)
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    params = space.suggest(trial)
    topology, config = space.settings(params)
    assert topology.device_filters == params["device_filters"]
    assert topology.device_conv_layers == params["device_blocks"]
    assert topology.cloud_conv_layers == params["cloud_layers"]
    assert config["learning_rate"] == params["learning_rate"]
    assert ("local_units" in params) == (params["local_agg"] == "mlp")
    assert ("cloud_filters" in params) == (params["cloud_precision"] == "binary")
    # the first trial of a study is the preset itself, as far as the space allows
    base = space.base_params()
    assert base["device_filters"] == 4 and base["local_agg"] == "mlp"
    assert base["local_units"] == 256 and base["upper_epochs"] == 5


def test_a_space_file_narrows_ranges_and_fixes(two_devices, tmp_path):
    from ddnn_tf.search.space import narrow, read_space_file

    path = tmp_path / "space.json"
    path.write_text(
        json.dumps(
            {
                "device_filters": [4, 8],
                "learning_rate": {"low": 0.002, "high": 0.004, "log": True},
                "cloud_precision": "float",
                "upper_epochs": {"low": 2, "high": 2},
            }
        )
    )
    space = narrow(_space(two_devices), read_space_file(path), str(path))
    assert space["device_filters"].values == (4, 8)
    assert space["learning_rate"].values == (0.002, 0.004) and space["learning_rate"].log
    assert space["cloud_precision"].fixed == "float" and space["upper_epochs"].fixed == 2
    trial = optuna.create_study().ask()
    params = space.suggest(trial)
    assert params["cloud_precision"] == "float" and "cloud_filters" not in params
    assert "cloud_precision" not in trial.params  # fixed: recorded, not searched


@pytest.mark.parametrize(
    "entries, words",
    [
        ({"device_filterz": [4]}, ["unknown search dimension", "device_filterz", "device_filters"]),
        ({"device_filters": [0, 4]}, ["device_filters=0", "device_filters"]),
        ({"local_agg": ["mlp", "sum"]}, ["local_agg='sum'"]),
        ({"learning_rate": {"low": 0.01, "high": 0.001}}, ["learning_rate", "low <= high"]),
        ({"local_agg": {"low": 1, "high": 2}}, ["local_agg", "numeric"]),
        ({"device_blocks": {"low": 1.5, "high": 2}}, ["device_blocks", "integers"]),
        ({"cloud_units": []}, ["cloud_units", "non-empty"]),
    ],
)
def test_a_bad_space_entry_names_the_file_and_the_key(two_devices, entries, words):
    from ddnn_tf.search.space import narrow

    with pytest.raises(ConfigError) as err:
        narrow(_space(two_devices), entries, "space.json")
    assert str(err.value).startswith("space.json: ")
    for word in words:
        assert word in str(err.value)


# ------------------------------------------------------------------------ the report
def _trial(number, accuracy, size, *, flash=1000, over=False, state=TrialState.COMPLETE):
    from optuna.distributions import FloatDistribution

    metrics = {
        "accuracy": accuracy,
        "bytes_per_device": size,
        "flash_bytes": flash,
        "ram_bytes": 200,
        "local_exit_fraction": 0.5,
        "threshold": 0.3,
    }
    complete = state == TrialState.COMPLETE
    return optuna.trial.create_trial(
        state=state,
        values=[accuracy, size] if complete else None,
        params={"learning_rate": 0.003},
        distributions={"learning_rate": FloatDistribution(1e-3, 1e-2, log=True)},
        user_attrs={"metrics": metrics, "choices": {"learning_rate": 0.003}} if complete else {},
        system_attrs={"constraints:flash_bytes": (flash - 1024.0) if over else -24.0},
    )


def test_the_front_holds_only_feasible_undominated_trials():
    from ddnn_tf.search.objectives import METRICS, Limit
    from ddnn_tf.search.report import make_report

    study = optuna.create_study(directions=["maximize", "minimize"])
    for t in (
        _trial(0, 0.90, 10.0),
        _trial(1, 0.85, 12.0),  # dominated by 0
        _trial(2, 0.95, 5.0, flash=1500, over=True),  # best on both, but over the flash limit
        _trial(3, 0.80, 6.0),  # cheaper than 0: on the front
        _trial(4, 0.99, 1.0, state=TrialState.PRUNED),
    ):
        study.add_trial(t)
    objectives = (METRICS["accuracy"], METRICS["bytes"])
    limits = (Limit(METRICS["flash"], 1024, True, "max_flash"),)
    references = [("best", {"accuracy": 0.88, "bytes_per_device": 11.0}),
                  ("cheap", {"accuracy": 0.70, "bytes_per_device": 2.0})]  # fmt: skip
    report = make_report(study, objectives, limits, references=references)
    assert [r["trial"] for r in report.front] == [0, 3]
    assert report.counts == {
        "trials": 5,
        "feasible": 3,
        "complete": 4,
        "pruned": 1,
        "rejected": 0,
        "failed": 0,
        "running": 0,
    }
    assert [r["dominated_by"] for r in report.references] == [[0], []]
    data = report.to_dict()
    assert (data["trials"], data["feasible"]) == (5, 3)
    for row in data["front"]:
        assert all(key in row for key in JSON_KEYS)
        assert row["energy_uj_per_sample"] is None  # nothing priced energy


def test_a_priced_front_shows_energy_and_leaves_out_trials_over_its_limit():
    from ddnn_tf.search.objectives import METRICS, RATE, Limit
    from ddnn_tf.search.report import format_report, make_report

    def priced(number, accuracy, energy, *, over=False):
        t = _trial(number, accuracy, 10.0)
        t.values = [accuracy, energy]
        t.user_attrs["metrics"].update(energy_uj_per_sample=energy, latency_p95_ms=50.0)
        t.system_attrs["constraints:energy_uj_per_sample"] = 1.0 if over else -1.0
        return t

    study = optuna.create_study(directions=["maximize", "minimize"])
    for t in (priced(0, 0.9, 40.0), priced(1, 0.95, 30.0, over=True), priced(2, 0.8, 20.0)):
        study.add_trial(t)
    objectives = (METRICS["accuracy"], METRICS["energy"])
    limits = (Limit(METRICS["energy"], 35, True, "max_energy_uj"), Limit(RATE, 1, False, "rate_hz"))
    hardware = {"board": "mps2-an386", "mcu": "nrf52840", "core": "cortex-m4f",
                "radio": "ble-1m", "wan": "broadband", "rate_hz": 1.0, "mode": "paper"}  # fmt: skip
    report = make_report(study, objectives, limits, hardware=hardware)
    assert [r["trial"] for r in report.front] == [0, 2]  # 1 is best on both, over the limit
    table = format_report(report)
    assert "limits: energy_uj_per_sample <= 35 uJ; max_rate_hz >= 1 Hz" in table
    assert "| val acc | test acc | B/device | energy uJ | p95 ms | local exits |" in table
    assert "| 0.9000 |  | 10.0 | 40 | 50 | 50.0 % |" in table


def test_no_feasible_trial_says_by_how_much_the_closest_misses():
    from ddnn_tf.search.objectives import METRICS, Limit
    from ddnn_tf.search.report import check_feasible, make_report

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(_trial(0, 0.9, 10.0, flash=1500, over=True))
    study.add_trial(_trial(1, 0.8, 9.0, flash=1100, over=True))
    limits = (Limit(METRICS["flash"], 1024, True, "max_flash"),)
    report = make_report(study, (METRICS["accuracy"], METRICS["bytes"]), limits)
    assert report.front == []
    with pytest.raises(ConfigError) as err:
        check_feasible(report, study, limits)
    assert "flash_bytes <= 1024 B: the closest trial (1) has 1,100 B, 76 B over" in str(err.value)


def test_the_pruners_read_the_accuracy_curves():
    from ddnn_tf.search.run import _pruner
    from ddnn_tf.search.trial import CURVE, _Curves, curve_trial

    study = optuna.create_study(directions=["maximize", "minimize"])
    for k, curve in enumerate(
        [[0.5, 0.6, 0.7], [0.55, 0.65, 0.75], [0.6, 0.7, 0.8], [0.5, 0.7, 0.9]]
    ):
        t = _trial(k, curve[-1], 10.0)
        t.user_attrs[CURVE] = curve
        study.add_trial(t)
    percentile, median = _pruner("percentile"), _pruner("median")
    # after the second epoch the complete trials had 0.6, 0.65, 0.7 and 0.7: their 25th
    # percentile is 0.6375, their median 0.675
    for pruner in (percentile, median):
        assert pruner.prune(_Curves(study), curve_trial(9, [0.3, 0.4]))  # hopeless
        assert not pruner.prune(_Curves(study), curve_trial(9, [0.1]))  # still warming up
        assert not pruner.prune(_Curves(study), curve_trial(9, [0.7, 0.6]))  # its best counts
    assert not percentile.prune(_Curves(study), curve_trial(9, [0.6, 0.66]))
    assert median.prune(_Curves(study), curve_trial(9, [0.6, 0.66]))


# ------------------------------------------------------------------------ before training
@pytest.mark.parametrize(
    "mcu, radio, metric, value, words",
    [
        ("host", None, "flash", 300, "flash per device tier at least 498 B > 300 B"),
        ("nrf52840", "ble-1m", "energy", 100, "energy per device per sample at least "),
        ("nrf52840", "lora-sf7", "latency", 40, "p95 latency at least "),
    ],
)
def test_a_configuration_over_a_bound_is_rejected_without_training(
    two_devices, tmp_path, mcu, radio, metric, value, words
):
    from ddnn_tf.search.hardware import resolve_hardware
    from ddnn_tf.search.objectives import METRICS, Limit
    from ddnn_tf.search.report import make_report
    from ddnn_tf.search.space import narrow
    from ddnn_tf.search.trial import SearchSetup, run_trial

    fixed = {"device_blocks": 2, "device_filters": 16, "summary_bits": 0}
    space = narrow(_space(two_devices), fixed, "fix")
    study = optuna.create_study(directions=["maximize", "minimize"])
    limits = (Limit(METRICS[metric], value, True, f"max_{metric}"),)
    objectives = (METRICS["accuracy"], METRICS["bytes"])
    hardware = resolve_hardware(mcu, radio)
    setup = SearchSetup(two_devices, space, objectives, limits, hardware, tmp_path)
    study.optimize(lambda t: run_trial(t, setup), n_trials=1)
    (trial,) = study.trials
    assert trial.state == TrialState.PRUNED
    assert words in trial.user_attrs["rejected"], trial.user_attrs["rejected"]
    key = METRICS[metric].key
    least = trial.user_attrs["least_costs"][key]  # its footprint bound, or its cost if every
    assert trial.constraints == {key: least - value} and least > value  # sample exits locally
    assert trial.user_attrs["rejected"].endswith(f" > {value} {METRICS[metric].unit}")
    assert not (tmp_path / "trials").exists()  # nothing trained, nothing written
    report = make_report(study, objectives, limits)
    assert report.counts["rejected"] == 1 and report.front == []


@pytest.mark.parametrize(
    "limit, words",
    [
        (
            {"mcu": "host", "max_flash": 50},
            "max_flash: no configuration of the search space can meet flash_bytes <= 50 B: the "
            "closest (2 device block(s) of 2 filters, int4 summaries) has at least 53 B > 50 B, "
            "3 B over.",
        ),
        (
            {"mcu": "nrf52840", "radio": "ble-1m", "max_energy_uj": 10},
            "max_energy_uj: no configuration of the search space can meet "
            "energy_uj_per_sample <= 10 uJ: the closest (1 device block(s) of 2 filters, int4 "
            "summaries) has at least ",
        ),
        (
            {"mcu": "cortex-m0plus", "radio": "lora-sf7"},  # 1 sample/s is too many for LoRa
            "radio: no configuration of the search space can meet max_rate_hz >= 1 Hz: the "
            "closest (1 device block(s) of 2 filters, int4 summaries) has at most 0.1",
        ),
    ],
)
def test_a_limit_no_configuration_can_meet_is_refused_up_front(two_devices, tmp_path, limit, words):
    from ddnn_tf.search import run_search

    with pytest.raises(ConfigError) as err:
        run_search(two_devices, out=tmp_path / "s", progress=False, **limit)
    assert str(err.value).startswith(words), str(err.value)
    assert not (tmp_path / "s").exists()


def test_a_reference_run_on_other_data_is_refused_up_front(two_devices, tmp_path):
    from ddnn_tf.search import run_search

    run = tmp_path / "other"
    run.mkdir()
    (run / "topology.json").write_text("{}")
    spec = {**two_devices.spec, "num_devices": 6, "train_limit": 100}
    (run / "dataset.json").write_text(json.dumps({"spec": spec}))
    with pytest.raises(ConfigError) as err:
        run_search(two_devices, out=tmp_path / "s", mcu="host", compare=[run], progress=False)
    assert str(err.value) == (
        f"compare: {run} was trained on other data or another validation split: "
        "num_devices 6 (the search: 2)."
    )  # a train_limit leaves the validation split as it is
    assert not (tmp_path / "s").exists()


def test_no_trial_starts_after_the_timeout(two_devices, tmp_path):
    from ddnn_tf.search import run_search

    report = run_search(
        two_devices, out=tmp_path / "s", mcu="host", trials=5, timeout_s=1e-6, progress=False
    )
    assert report.counts["trials"] == 0 and report.ran_here == [] and report.front == []
    assert (tmp_path / "s" / "study.db").is_file() and (tmp_path / "s" / "front.json").is_file()


# ------------------------------------------------------------------------ a small search
def test_an_interrupted_trial_runs_on_resume_and_a_failed_one_is_recorded(searched):
    from ddnn_tf.search.study import counted, default_storage

    study = optuna.load_study(study_name="ddnn-search", storage=default_storage(searched.out))
    stopped, retried, failed = study.trials
    assert stopped.state == TrialState.FAIL and stopped.user_attrs["interrupted"]
    assert not counted(stopped)  # it still had to run
    assert retried.user_attrs["retry_of"] == 0 and retried.params == stopped.params
    assert retried.state == TrialState.COMPLETE and searched.resumed.ran_here == [1]
    assert failed.state == TrialState.FAIL and counted(failed)  # it counts towards --trials
    assert failed.user_attrs["error"] == "the compiler failed: cc1: out of memory"
    assert searched.failed.ran_here == [2] and searched.failed.counts["failed"] == 1
    trials = sorted(p.name for p in (searched.out / "trials").iterdir())
    assert trials == ["trial_0001"]  # only complete trials write a run


def test_a_reference_run_is_measured_like_a_trial(searched):
    from ddnn_tf.search.objectives import METRICS, dominates
    from ddnn_tf.search.study import default_storage

    study = optuna.load_study(study_name="ddnn-search", storage=default_storage(searched.out))
    (ref,) = searched.compared.references
    assert ref["name"] == "trial_0001" and searched.compared.ran_here == []
    measured = study.trials[1].user_attrs["metrics"]  # the same run, split, T and hardware
    keys = ("accuracy", "bytes_per_device", "flash_bytes", "ram_bytes", "threshold")
    for key in (*keys, "energy_uj_per_sample", "latency_p95_ms"):
        assert ref[key] == pytest.approx(measured[key]), key
    objectives = (METRICS["accuracy"], METRICS["energy"])
    beaten = [r["trial"] for r in searched.compared.front if dominates(r, ref, objectives)]
    assert ref["dominated_by"] == beaten and 1 not in beaten


def test_the_search_continues_where_it_stopped(searched):
    assert searched.resumed.counts["trials"] == 1  # the interrupted trial is not counted
    assert searched.failed.counts["trials"] == 2 and searched.compared.counts["trials"] == 2
    assert searched.compared.counts["complete"] == 1


def test_the_front_of_a_real_search(searched, two_devices):
    from ddnn_tf.keras.presets import PRESETS
    from ddnn_tf.search.objectives import METRICS, dominates
    from ddnn_tf.search.study import default_storage

    out, report = searched.out, searched.compared
    study = optuna.load_study(study_name="ddnn-search", storage=default_storage(out))
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert report.front, "a search of roomy trials has a front"
    assert report.objectives == ["accuracy", "energy"]  # the default with a radio
    objectives = (METRICS["accuracy"], METRICS["energy"])
    metrics = {t.number: t.user_attrs["metrics"] for t in complete}
    feasible = [t.number for t in complete if all(v <= 0 for v in t.constraints.values())]
    front = [r["trial"] for r in report.front]
    for k in front:  # feasible and dominated by no feasible trial
        assert k in feasible
        assert not any(dominates(metrics[j], metrics[k], objectives) for j in feasible)
    for k in set(feasible) - set(front):
        assert any(dominates(metrics[j], metrics[k], objectives) for j in front)
    for row in report.front:
        assert all(key in row for key in JSON_KEYS)
        assert row["flash_bytes"] == max(row["device_flash_bytes"])
        assert row["ram_bytes"] == max(row["device_ram_bytes"])
        assert row["energy_uj_per_sample"] == max(row["device_energy_uj"]) > 0
        assert row["latency_p95_ms"] > 0 and row["max_rate_hz"] >= 1
        assert 0 <= row["test_accuracy"] <= 1 and 0 <= row["local_exit_fraction"] <= 1
        assert row["params"]["epochs"] == 1 and row["params"]["upper_epochs"] == 0
        run = Path(row["run_dir"])
        assert (run / "weights.h5").is_file() and run.parent == out / "trials"
    # the first trial is the preset's configuration (run as its retry, trial 1); T comes
    # from its calibration rule
    first = study.trials[1]
    assert first.params["device_filters"] == 4 and first.params["local_agg"] == "mlp"
    assert first.user_attrs["calibrate"] == PRESETS["default"]["config"]["calibrate"]
    # the per-epoch validation accuracy the pruner reads
    assert len(first.user_attrs["val_accuracy_per_epoch"]) == 1


def test_what_a_configuration_costs_at_the_least_bounds_what_it_costs(searched):
    from ddnn_tf.search.study import default_storage

    study = optuna.load_study(study_name="ddnn-search", storage=default_storage(searched.out))
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    for t in complete:  # computed before training; measured after it
        least, measured = t.user_attrs["least_costs"], t.user_attrs["metrics"]
        for key in ("flash_bytes", "ram_bytes", "energy_uj_per_sample", "latency_p95_ms"):
            assert least[key] <= measured[key], (t.number, key)
        assert least["max_rate_hz"] >= measured["max_rate_hz"]


def test_the_search_writes_table_json_and_plot(searched):
    out, report = searched.out, searched.compared
    data = json.loads((out / "front.json").read_text())
    assert data == json.loads(json.dumps(report.to_dict()))
    table = (out / "front.md").read_text()
    assert "| trial | device |" in table and f"| {report.front[0]['trial']} | " in table
    assert "| energy uJ | p95 ms |" in table and "priced on nrf52840 (cortex-m4f" in table
    assert data["hardware"]["radio"] == "ble-1m" and data["hardware"]["board"] == "mps2-an386"
    assert data["hardware"]["sources"]["instructions"].startswith("modelled")
    assert (out / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_exported_trial_runs_in_the_runtime_and_on_a_board(searched, two_devices, tmp_path):
    from ddnn_tf.mcu.check import check_model
    from ddnn_tf.runtime import Hierarchy
    from ddnn_tf.runtime.cost import model_cost
    from ddnn_tf.search import export_trial

    out, report = searched.out, searched.compared
    row = report.front[0]
    model = export_trial(out, row["trial"], tmp_path / "model")
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["thresholds"]["local"] == pytest.approx(row["threshold"])
    result = Hierarchy(model).run(two_devices.val.x)
    assert abs(result.accuracy(two_devices.val.y) - row["accuracy"]) <= 0.01
    assert result.bytes_per_device() == pytest.approx(row["bytes_per_device"], abs=0.5)
    # priced like the trial: its modelled instructions, its exits and bytes on the split
    cost = model_cost(
        model, two_devices, subset="val", mcu="nrf52840", radio="ble-1m", timing_samples=2
    )
    assert max(cost["energy_uj_per_sample"].values()) == pytest.approx(
        row["energy_uj_per_sample"], rel=0.01
    )
    modelled = [d["modelled"] for d in cost["instructions_per_sample"].values()]
    assert modelled == pytest.approx(row["instructions_per_sample"], abs=0.1)
    board = check_model(model, two_devices, board="host", limit=40, progress=False)
    assert board["ok"], board
    for tier, device in board["devices"].items():
        assert device["samples"] == 40 and device["mismatches"] == 0, tier
    with pytest.raises(ConfigError, match="refusing|already exists"):
        export_trial(out, row["trial"], tmp_path / "model")
    with pytest.raises(ConfigError, match=r"trial 99 does not exist .* the complete trials are"):
        export_trial(out, 99, tmp_path / "other")


def test_another_search_cannot_reuse_the_study(searched, two_devices):
    from ddnn_tf.search import run_search

    out = searched.out
    with pytest.raises(ConfigError) as err:
        run_search(two_devices, out=out, fix=("epochs=2",), progress=False, **ROOMY, **PRICED)
    assert "study 'ddnn-search'" in str(err.value) and "differs in space" in str(err.value)


# ------------------------------------------------------------------------ the command line
def _cli(capsys, *args):
    from ddnn_tf.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["search", *args])
    err = capsys.readouterr().err.strip().splitlines()
    return exit_.value.code, err


@pytest.mark.parametrize(
    "args, words",
    [
        (
            ["--mcu", "nrf52"],
            ["--mcu: unknown board or microcontroller profile 'nrf52'", "mps2-an386", "nrf52840"],
        ),
        (["--mcu", "tflm"], ["--mcu: tflm is an interpreter"]),
        (
            ["--mcu", "mps2-an386", "--radio", "ble-1m"],
            ["--mcu: mps2-an386 is a board, not a microcontroller profile", "--radio"],
        ),
        (["--mcu", "nrf52840", "--radio", "wifi9"], ["--radio: unknown radio profile 'wifi9'"]),
        (
            ["--objectives", "accuracy,energy"],
            [
                "--objectives: energy per device per sample comes from the cost model",
                "mps2-an386 is a board; name a microcontroller profile as --mcu",
            ],
        ),
        (
            ["--mcu", "nrf52840", "--max-latency-ms", "100"],
            ["--max-latency-ms: p95 latency comes from the cost model", "pass --radio"],
        ),
        (["--rate", "2"], ["--rate: prices a trial with --radio, which was not given"]),
        (["--mcu", "nrf52840", "--radio", "ble-1m", "--rate", "0"], ["--rate"]),
        (["--objectives", "accuracy,speed"], ["--objectives: expected", "got accuracy, speed"]),
        (["--storage", "foo://x"], ["--storage: expected a database URL"]),
        (["--storage", "postgresql://u:secret@127.0.0.1:1/db"], ["cannot open", "u:***@"]),
        (["--fix", "device_filters=0"], ["fix: device_filters=0 is not a valid device_filters"]),
        (["--space", "nothere.json"], ["search-space file not found: nothere.json"]),
        (["--export", "3"], ["--export K and --to MODEL_DIR go together"]),
        (["--pruner", "hyperband"], ["--pruner: expected one of percentile, median, none"]),
        (["--compare", "runs/nothing"], ["runs/nothing is not a run directory"]),
    ],
)
def test_bad_input_is_one_error_line(capsys, tmp_path, args, words):
    code, err = _cli(capsys, "--data", "synthetic", "--out", str(tmp_path / "s"), *args)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: ")
    for word in words:
        assert word in err[0]
    assert "secret" not in err[0]
    assert not (tmp_path / "s" / "trials").exists()


def test_real_valued_sensors_are_measured_as_their_integer_c():
    """A quantised device's footprint is its integer C's (codes in, thresholds out)."""
    import numpy as np

    from ddnn_tf.core.topology import Topology
    from ddnn_tf.keras.model import build_ddnn
    from ddnn_tf.search.hardware import compiler_board
    from ddnn_tf.search.measure import measure_devices

    t = Topology(input_shapes=[(9,), (6,)], num_classes=2, device_units=8, sensor_bits=8)
    ddnn = build_ddnn(t)
    rng = np.random.default_rng(0)
    for layer, k in zip(ddnn.sensors, (9, 6)):
        layer.fit(rng.normal(100.0, 30.0, (50, k)).astype(np.float32))
    footprints = measure_devices(ddnn, compiler_board("host"), scale=None)
    assert len(footprints.flash_bytes) == 2 and all(f > 0 for f in footprints.flash_bytes)


# ------------------------------------------------------------------------ the docs
def test_the_fmnist6_front_on_the_page_is_the_committed_search():
    """docs/search.md quotes the fmnist6 search's front as the command printed it, from
    the committed front.json (the search itself takes minutes: its result is checked)."""
    from conftest import ROOT

    from ddnn_tf.search.report import SearchReport, format_report

    results = ROOT / "docs" / "results" / "search"
    data = json.loads((results / "fmnist6_front.json").read_text())
    fields = ("study", "storage", "objectives", "limits", "counts", "front", "references",
              "plot", "ran_here", "hardware")  # fmt: skip
    table = format_report(SearchReport(**{k: data[k] for k in fields}))
    assert (results / "fmnist6_front.md").read_text() == table + "\n"
    page = (ROOT / "docs" / "search.md").read_text()
    block = page.split("<!-- search:fmnist6 -->\n")[1].split("<!-- /search:fmnist6 -->")[0]
    assert block.strip() == table.split("\n\n", 1)[1].strip()  # the rows and the references
    assert (data["trials"], data["hardware"]["radio"]) == (20, "ble-1m")
    assert all(row["flash_bytes"] <= 2048 and row["ram_bytes"] <= 2048 for row in data["front"])
