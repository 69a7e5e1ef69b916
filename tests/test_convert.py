"""Per-tier TFLite conversion: names, fixed batch, parity with Keras, splits, safety."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import DEFAULT_MODEL, ROOT, run_cli

from ddnn_tf.core import manifest as mf
from ddnn_tf.core.graph import tier_graph
from ddnn_tf.core.vocab import TARGETS
from ddnn_tf.keras import convert as cv
from ddnn_tf.runtime.tiers import TierRunner

COMMITTED = DEFAULT_MODEL
MPCC_TIERS = [f"device_{i}" for i in range(6)] + ["local_aggregator", "cloud"]
EDGE_TIERS = [f"device_{i}" for i in range(6)] + [
    "local_aggregator",
    "edge_0",
    "edge_1",
    "edge_aggregator",
    "cloud",
]


def _presence(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Random device failures (30%), never all devices of a sample at once."""
    p = (np.random.default_rng(seed).random((n, d)) > 0.3).astype(np.float32)
    p[p.sum(axis=1) == 0, 0] = 1.0
    return p


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tflite_models")


@pytest.fixture(scope="module")
def mpcc(tiny_run, tiny_dataset, models) -> Path:
    """The 6-device MP-CC run converted with split local,cloud for both targets."""
    return cv.convert(tiny_run, "local,cloud", out=models / "mpcc", dataset=tiny_dataset)


@pytest.fixture(scope="module")
def edge(edge_run, tiny_dataset, models) -> Path:
    return cv.convert(edge_run, "local,edge,cloud", out=models / "edge", dataset=tiny_dataset)


@pytest.fixture(scope="module")
def mpcc_parity(tiny_run, tiny_dataset, mpcc):
    n = len(tiny_dataset.test.y)
    return cv.parity(tiny_run, mpcc, tiny_dataset, presence=_presence(n, 6))


# ------------------------------------------------------------------- files and names
def test_output_layout_and_manifest(mpcc, tiny_run):
    names = sorted(p.name for p in mpcc.iterdir())
    expected = sorted(
        [mf.tier_filename(t, target) for t in MPCC_TIERS for target in TARGETS] + ["manifest.json"]
    )
    assert names == expected
    m = mf.load_manifest(mpcc)
    assert m["format"] == "ddnn-tf-manifest" and m["format_version"] == 1
    assert m["split"] == ["local", "cloud"] and m["targets"] == ["portable", "lce"]
    assert m.tier_names == MPCC_TIERS
    assert m["topology"] == tiny_run.topology.to_dict()
    assert m["thresholds"] == {"local": tiny_run.thresholds["local"]}
    assert m["thresholds_source"] == "validation"
    assert m["aggregation"] == {"local": "max", "edge": "concat", "cloud": "concat"}
    assert [e["name"] for e in m["inputs"]] == ["image"] * 6
    assert [e["tier"] for e in m["inputs"]] == [f"device_{i}" for i in range(6)]
    assert m["inputs"][0]["scale"] == pytest.approx(1 / 255) and m["inputs"][0]["raw_bytes"] == 140


def test_wire_encodings_follow_comm(mpcc, tiny_run):
    from ddnn_tf.core.comm import feature_nbytes

    m = mf.load_manifest(mpcc)
    t = tiny_run.topology
    assert m["wire"]["summary"] == {
        "encoding": "float32",
        "shape": [t.num_classes],
        "nbytes": 4 * t.num_classes,
        "byte_order": "little",
    }
    assert sorted(m["wire"]["features"]) == [f"device_{i}" for i in range(6)]
    for i in range(6):
        w = m["wire"]["features"][f"device_{i}"]
        assert w["encoding"] == "bitpacked-pm1" and w["shape"] == list(t.feature_shape(i))
        assert w["nbytes"] == feature_nbytes(t.feature_shape(i)) == 18


def test_device_memory_figures(mpcc, tiny_run):
    """Binary weights as bits/8, batch norm folded to 2 floats per channel: paper's < 2 KB."""
    m = mf.load_manifest(mpcc)
    t = tiny_run.topology
    h, w, f = t.feature_shape(0)
    c = t.num_classes
    memory = m["tiers"]["device_0"]["memory"]
    assert memory["binary_weight_bytes"] == (3 * 3 * 1 * f + h * w * f * c + 7) // 8
    assert memory["float_param_bytes"] == 4 * (2 * f + 2 * c)
    assert memory["binary_weight_bytes"] + memory["float_param_bytes"] < 2048
    assert memory["tflite_bytes"] == {
        target: m["tiers"]["device_0"]["files"][target]["size_bytes"] for target in TARGETS
    }


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("tier", MPCC_TIERS)
def test_tier_signature_names_match_manifest(mpcc, tier, target):
    m = mf.load_manifest(mpcc)
    entry = m["tiers"][tier]
    info = cv.tflite_info(m.path(tier, target).read_bytes())
    assert sorted(info["input_order"]) == sorted(t["name"] for t in entry["inputs"])
    assert sorted(info["output_order"]) == sorted(t["name"] for t in entry["outputs"])
    assert info["input_order"] == entry["files"][target]["input_order"]
    assert info["output_order"] == entry["files"][target]["output_order"]
    for t in entry["inputs"] + entry["outputs"]:
        assert info["shape_signatures"][t["name"]] == t["shape"] and t["shape"][0] == 1
        assert info["dtypes"][t["name"]] == "float32"
    if tier.startswith("device"):
        assert [t["name"] for t in entry["inputs"]] == ["image"]
        assert {t["name"]: t["role"] for t in entry["outputs"]} == {
            "features": "features",
            "summary": "summary",
        }


@pytest.mark.parametrize("tier", MPCC_TIERS)
def test_portable_tiers_have_fixed_batch_and_builtin_ops_only(mpcc, tier):
    from ai_edge_litert.interpreter import Interpreter

    m = mf.load_manifest(mpcc)
    interpreter = Interpreter(model_path=str(m.path(tier, "portable")))
    runner = interpreter.get_signature_runner("serving_default")
    details = {**runner.get_input_details(), **runner.get_output_details()}
    for name, d in details.items():
        assert -1 not in d["shape_signature"].tolist(), (tier, name, d["shape_signature"])
        assert d["shape_signature"][0] == 1
    ops = m["tiers"][tier]["files"]["portable"]["ops"]
    assert not any(op.startswith("Lce") for op in ops), ops


@pytest.mark.parametrize("tier", [t for t in MPCC_TIERS if t != "local_aggregator"])
def test_lce_binary_convolutions_are_bitpacked(mpcc, tiny_run, tier):
    """Every binary-input conv (ConvP and the whole-window exit-head 'dense') is LceBconv2d."""
    m = mf.load_manifest(mpcc)
    model = tiny_run.ddnn.tiers[tier]
    binary_convs = [
        layer
        for layer in model.layers
        if getattr(layer, "input_quantizer", None) is not None
        and "conv" in type(layer).__name__.lower()
    ]
    ops = m["tiers"][tier]["files"]["lce"]["ops"]
    assert len(binary_convs) >= 1
    assert ops.get("LceBconv2d", 0) == len(binary_convs), ops
    assert "FULLY_CONNECTED" not in ops


def test_interpreter_binds_by_name_not_position(mpcc, tiny_run, tiny_dataset):
    """The cloud's inputs are reordered in the flatbuffer; named binding still matches Keras."""
    m = mf.load_manifest(mpcc)
    order = m["tiers"]["cloud"]["files"]["lce"]["input_order"]
    plans = tier_graph(tiny_run.topology, "local,cloud")
    xs = [x[:32] for x in tiny_dataset.test.x]
    ref = cv.keras_tier_outputs(tiny_run.ddnn, plans, xs)
    feed = {f"features_{k}": ref[f"device_{k}"]["features"] for k in range(6)}
    feed["presence"] = _presence(32, 6, seed=1)
    expected = cv._tier_function(tiny_run.ddnn, plans["cloud"])(feed)["logits"].numpy()
    for target in TARGETS:
        got = TierRunner.from_manifest(m, "cloud", target)(feed)["logits"]
        np.testing.assert_allclose(got, expected, atol=1e-3)
    with pytest.raises(ValueError, match="expected inputs"):
        TierRunner.from_manifest(m, "cloud", "lce")({k: feed[k] for k in order[:-1]})


# ---------------------------------------------------------------------------- parity
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("tier", MPCC_TIERS)
def test_parity_with_keras_under_failures(mpcc_parity, tier, target):
    stats = mpcc_parity["tiers"][tier][target]
    for name, s in stats.items():
        assert s["ok"], (tier, target, name, s)
        if name == "features":
            assert s["bits_differ"] == 0 and s["identical"]
        else:
            assert s["max_abs_diff"] <= cv.PARITY_TOLERANCE["atol"] + 1e-3
            assert s["argmax_mismatches"] <= (1 - 0.999) * s["n"]


def test_parity_end_to_end_accuracy_equal(mpcc_parity):
    assert mpcc_parity["ok"]
    keras = mpcc_parity["accuracy"]["keras"]
    assert set(keras) == {"local", "cloud"}
    for target in TARGETS:
        assert mpcc_parity["accuracy"][target] == pytest.approx(keras, abs=2e-3)
    assert "parity OK" in cv.format_parity(mpcc_parity)


# ---------------------------------------------------------------------------- splits
def test_split_cloud_is_one_raw_input_binary(tiny_run, tiny_dataset, models):
    out = cv.convert(tiny_run, "cloud", out=models / "raw", dataset=tiny_dataset)
    assert sorted(p.name for p in out.iterdir()) == [
        "cloud.lce.tflite",
        "cloud.tflite",
        "manifest.json",
    ]
    m = mf.load_manifest(out)
    assert m["split"] == ["cloud"] and m["thresholds"] == {}
    names = [t["name"] for t in m["tiers"]["cloud"]["inputs"]]
    assert names == [f"input_{i}" for i in range(6)] + ["presence"]
    assert [e["tier"] for e in m["inputs"]] == ["cloud"] * 6
    assert m["wire"]["features"] == {} and m["wire"]["raw"]["device_0"]["nbytes"] == 140
    n = len(tiny_dataset.test.y)
    report = cv.parity(tiny_run, out, tiny_dataset, presence=_presence(n, 6, seed=2))
    assert report["ok"], cv.format_parity(report)
    assert set(report["accuracy"]["keras"]) == {"cloud"}
    assert m["tiers"]["cloud"]["files"]["lce"]["ops"]["LceBconv2d"] == 3  # unused exit heads pruned


@pytest.mark.parametrize("target", TARGETS)
def test_edge_topology_all_exits(edge, edge_run, tiny_dataset, target):
    m = mf.load_manifest(edge)
    assert m.tier_names == EDGE_TIERS and m["split"] == ["local", "edge", "cloud"]
    assert [t["name"] for t in m["tiers"]["edge_1"]["inputs"]] == [
        "features_3",
        "features_4",
        "features_5",
        "presence",
    ]
    assert m["tiers"]["edge_1"]["inputs"][-1]["columns"] == ["device_3", "device_4", "device_5"]
    assert m["tiers"]["cloud"]["inputs"][-1]["columns"] == ["edge_0", "edge_1"]
    assert sorted(m["wire"]["features"]) == [f"device_{i}" for i in range(6)] + ["edge_0", "edge_1"]
    assert set(m["thresholds"]) == {"local", "edge"}
    n = len(tiny_dataset.test.y)
    report = cv.parity(edge_run, edge, tiny_dataset, presence=_presence(n, 6, seed=3))
    for tier in EDGE_TIERS:
        for name, s in report["tiers"][tier][target].items():
            assert s["ok"], (tier, target, name, s)
    assert set(report["accuracy"][target]) == {"local", "edge", "cloud"}


def test_split_edge_cloud_drops_local_exit(edge_run, tiny_dataset, models):
    out = cv.convert(
        edge_run, "edge,cloud", out=models / "edge_cloud", target="lce", dataset=tiny_dataset
    )
    m = mf.load_manifest(out)
    assert m["targets"] == ["lce"]
    assert "local_aggregator" not in m["tiers"] and "edge_aggregator" in m["tiers"]
    assert [t["name"] for t in m["tiers"]["device_0"]["outputs"]] == ["features"]
    assert set(m["thresholds"]) == {"edge"} and m["thresholds_source"] == "validation"
    report = cv.parity(edge_run, out, tiny_dataset)
    assert report["ok"], cv.format_parity(report)


def test_another_split_is_calibrated_by_the_runs_own_rule(edge_run, tiny_dataset, models):
    """The run calibrated local and edge together; converted without the local exit, the
    edge's T is calibrated again, by the run's rule (here a budget no T meets: the
    cheapest T, 1.0), not by another one, and the manifest records it."""
    import dataclasses

    from ddnn_tf.core.calibration import calibrate
    from ddnn_tf.keras.train import predict_exits

    run = dataclasses.replace(
        edge_run, config=dataclasses.replace(edge_run.config, calibrate="bytes:0.001")
    )
    out = cv.convert(
        run, "edge,cloud", out=models / "edge_cloud_rule", target="portable", dataset=tiny_dataset
    )
    m = mf.load_manifest(out)
    probs = predict_exits(run.ddnn, tiny_dataset.val.x)
    want = calibrate(
        {e: probs[e] for e in ("edge", "cloud")},
        tiny_dataset.val.y,
        run.topology,
        "bytes:0.001",
        raw_bytes_per_device=tiny_dataset.raw_bytes_per_device,
    )
    assert m["thresholds"] == want.thresholds == {"edge": 1.0}
    assert m["calibration"] == want.to_dict() and m["calibration"]["rule"] == "bytes:0.001"
    assert m["training"]["calibrate"] == "bytes:0.001"


@pytest.mark.parametrize(
    "split, match",
    [
        ("local,edge,cloud", r"exits local,cloud and no edge"),
        (
            "edge,cloud",
            r"needs the exit\(s\) \['edge'\].*Splits this model can provide: cloud / local,cloud",
        ),
        (
            "local,fog",
            r"^split: expected one of cloud / local,cloud / edge,cloud / local,edge,cloud",
        ),
        ("cloud,local", r"got 'cloud,local'"),
    ],
)
def test_bad_split_says_what_the_model_has(tiny_run, split, match):
    with pytest.raises(ValueError, match=match):
        tier_graph(tiny_run.topology, split)


def test_edge_hierarchy_keeps_its_edges_without_the_edge_exit(edge_run):
    """Split local,cloud of an edge model: edges still carry features to the cloud."""
    plans = {p.name: p for p in tier_graph(edge_run.topology, "local,cloud")}
    assert list(plans) == [f"device_{i}" for i in range(6)] + [
        "local_aggregator",
        "edge_0",
        "edge_1",
        "cloud",
    ]
    assert [p.name for p in plans["edge_0"].outputs] == ["features"]
    assert [p.name for p in plans["cloud"].inputs] == ["features_0", "features_1", "presence"]
    (cloud,) = tier_graph(edge_run.topology, "cloud")
    assert cloud.composed and [p.name for p in cloud.inputs][-1] == "presence"
    assert [c.tier for c in cloud.inputs[-1].columns] == [f"device_{i}" for i in range(6)]
    assert [c.devices for c in plans["cloud"].inputs[-1].columns] == list(edge_run.topology.edges)
    assert [(s.tier, s.link) for s in plans["cloud"].sources] == [
        ("edge_0", "edge_to_cloud"),
        ("edge_1", "edge_to_cloud"),
    ]


def test_fire_tuple_split_is_accepted(tiny_run):
    assert cv.check_split(tiny_run.topology, ("local", "cloud")) == ("local", "cloud")
    assert cv.check_split(tiny_run.topology, None) == ("local", "cloud")


# ---------------------------------------------------------------------------- safety
def test_missing_run_dir_is_a_clear_cli_error(tmp_path):
    res = run_cli(
        "ddnn_tf.convert",
        str(tmp_path / "nope"),
        "--split",
        "local,cloud",
        "--out",
        str(tmp_path / "o"),
    )
    assert res.returncode == 2
    assert "error: Run directory not found" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "damage, error, match",
    [
        ("weights", ValueError, "Cannot read weights"),
        ("no_weights", FileNotFoundError, "no trained weights"),
        ("topology", ValueError, "not valid JSON"),
    ],
)
def test_corrupt_run_dir(tiny_run, tmp_path, damage, error, match):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.path, run_dir)
    if damage == "weights":
        data = (run_dir / "weights.h5").read_bytes()
        (run_dir / "weights.h5").write_bytes(data[: len(data) // 3])
    elif damage == "no_weights":
        (run_dir / "weights.h5").unlink()
    else:
        (run_dir / "topology.json").write_text("{not json")
    with pytest.raises(error, match=match):
        cv.convert(run_dir, "local,cloud", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_target_or_quantize(tiny_run, tmp_path):
    with pytest.raises(ValueError, match="^target: expected portable, lce or both"):
        cv.convert_run(tiny_run, target="gpu")
    with pytest.raises(ValueError, match="^quantize: expected none or int8, got 'int4'"):
        cv.convert_run(tiny_run, quantize="int4")
    with pytest.raises(ValueError, match="^quantize int8 needs `target` portable"):
        cv.convert_run(tiny_run, quantize="int8", target="both")


def _leftovers(parent: Path, name: str) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_failed_write_leaves_nothing(mpcc, tmp_path, monkeypatch):
    m = mf.load_manifest(mpcc)
    conversion = cv.Conversion(
        manifest=dict(m),
        files={p.name: p.read_bytes() for p in mpcc.iterdir() if p.suffix == ".tflite"},
    )

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(mf, "write_manifest", broken)
    with pytest.raises(OSError, match="disk full"):
        cv.save_conversion(conversion, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert _leftovers(tmp_path, "out") == []


def test_failed_conversion_leaves_nothing(tiny_run, tmp_path, monkeypatch):
    calls = []

    def flaky(ddnn, plan, **kwargs):
        calls.append(plan.name)
        if len(calls) == 3:
            raise RuntimeError("converter crashed")
        return {"portable": b"x"}

    monkeypatch.setattr(cv, "convert_tier", flaky)
    monkeypatch.setattr(
        cv, "tflite_info", lambda data: {"input_order": [], "output_order": [], "ops": {}}
    )
    with pytest.raises(RuntimeError, match="converter crashed"):
        cv.convert(tiny_run, "local,cloud", out=tmp_path / "out", target="portable")
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path, "out") == []


def test_existing_output_needs_overwrite(mpcc, tmp_path):
    out = tmp_path / "model"
    shutil.copytree(mpcc, out)
    (out / "stale.txt").write_text("old")
    m = mf.load_manifest(mpcc)
    conversion = cv.Conversion(
        manifest=dict(m), files={p.name: p.read_bytes() for p in mpcc.glob("*.tflite")}
    )
    with pytest.raises(ValueError, match="already exists; pass `overwrite`"):
        cv.save_conversion(conversion, out)
    assert (out / "stale.txt").exists()
    cv.save_conversion(conversion, out, overwrite=True)
    assert not (out / "stale.txt").exists()
    assert mf.load_manifest(out)["tiers"] == m["tiers"]
    # A directory that is not a converted model is never deleted, even with --overwrite.
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a converted model directory"):
        cv.save_conversion(conversion, other, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"


def test_cli_refuses_existing_output_before_converting(tiny_run, mpcc):
    with pytest.raises(ValueError, match="already exists"):
        cv.convert(tiny_run, "local,cloud", out=mpcc)


def test_manifest_hash_detects_modified_file(mpcc, tmp_path):
    out = tmp_path / "model"
    shutil.copytree(mpcc, out)
    data = bytearray((out / "cloud.tflite").read_bytes())
    data[-1] ^= 0xFF
    (out / "cloud.tflite").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"cloud.tflite does not match its manifest entry"):
        mf.load_manifest(out)


# ---------------------------------------------------------------------------- int8
def test_int8_quantize_gives_a_working_model(tiny_run, tiny_dataset, models):
    from ai_edge_litert import schema_py_generated as schema

    out = cv.convert(
        tiny_run,
        "local,cloud",
        out=models / "int8",
        target="portable",
        quantize="int8",
        dataset=tiny_dataset,
    )
    m = mf.load_manifest(out)
    assert m["quantize"] == "int8" and m["targets"] == ["portable"]
    assert m["tiers"]["cloud"]["quantized"] and not m["tiers"]["local_aggregator"]["quantized"]
    model = schema.ModelT.InitFromPackedBuf(bytearray(m.path("cloud", "portable").read_bytes()), 0)
    assert any(t.type == schema.TensorType.INT8 for t in model.subgraphs[0].tensors)
    # Interfaces are unchanged: float32 in and out, same names.
    for t in m["tiers"]["cloud"]["inputs"]:
        assert (
            cv.tflite_info(m.path("cloud", "portable").read_bytes())["dtypes"][t["name"]]
            == "float32"
        )
    report = cv.parity(tiny_run, out, tiny_dataset)
    assert report["ok"] and report["quantize"] == "int8"
    assert report["tiers"]["cloud"]["portable"]["logits"]["ok"] is None  # reported, not judged
    assert report["tiers"]["local_aggregator"]["portable"]["logits"]["ok"] is True
    keras, int8 = report["accuracy"]["keras"], report["accuracy"]["portable"]
    assert int8["cloud"] >= keras["cloud"] - 0.1
    assert report["tiers"]["cloud"]["portable"]["logits"]["argmax_agreement"] >= 0.8


# ---------------------------------------------------------------------- committed model
@pytest.mark.parametrize(
    ("name", "summary", "local_agg", "calibrate"),
    [
        ("fmnist6_mlpcc", "int4", "mlp", "risk:0.5"),
        ("fmnist6_paper", "float32", "max", "accuracy"),
    ],
)
def test_committed_default_model_loads_and_matches_hashes(name, summary, local_agg, calibrate):
    m = mf.load_manifest(COMMITTED.parent / name)  # checks every file's size and sha256
    assert m["name"] == name and m["wire"]["summary"]["encoding"] == summary
    assert m["topology"]["summary_bits"] == (4 if summary == "int4" else 0)
    assert m["training"]["preset"] == ("default" if summary == "int4" else "paper")
    assert m["training"]["calibrate"] == calibrate
    if name == "fmnist6_mlpcc":  # the preset's rule certified the committed T
        assert m["calibration"]["rule"] == "risk:0.5,0.1" and m["calibration"]["certified"]
        assert m["calibration"]["thresholds"] == m["thresholds"] == {"local": 0.2}
        assert m["calibration"]["n_val"] == 6000 and m["calibration"]["bound"] == 0.5
    assert m["split"] == ["local", "cloud"] and m["targets"] == ["portable", "lce"]
    assert m.tier_names == MPCC_TIERS
    assert m["topology"]["local_agg"] == m["aggregation"]["local"] == local_agg
    assert m["topology"]["cloud_agg"] == "concat"
    rng = np.random.default_rng(0)
    for tier in m.tier_names:
        feed = {
            t["name"]: (np.ones if t["role"] == "presence" else rng.random)(t["shape"]).astype(
                np.float32
            )
            for t in m["tiers"][tier]["inputs"]
        }
        outs = {target: TierRunner.from_manifest(m, tier, target)(feed) for target in m["targets"]}
        names = sorted(t["name"] for t in m["tiers"][tier]["outputs"])
        for target, out in outs.items():
            assert sorted(out) == names
            for t in m["tiers"][tier]["outputs"]:
                assert list(out[t["name"]].shape) == t["shape"], (tier, target, t["name"])
        if tier.startswith("device"):
            np.testing.assert_array_equal(outs["portable"]["features"], outs["lce"]["features"])


def test_committed_readme_names_the_regenerate_command():
    text = (ROOT / "tflite_models" / "README.md").read_text()
    assert "ddnn train --data fmnist6 --out runs/default" in text
    assert "ddnn convert runs/default --split local,cloud --out tflite_models/fmnist6_mlpcc" in text
    assert json.loads((COMMITTED / "manifest.json").read_text())["name"] == "fmnist6_mlpcc"
