"""The manifest schema: writing, loading, validation of format, keys and file hashes."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import modules_loaded_by

from ddnn_tf.core import manifest as mf
from ddnn_tf.errors import ConfigError

FILES = {"device_0.tflite": b"\x00device-zero", "cloud.tflite": b"\x01cloud-binary"}


def _tensor(name, shape, role, **extra):
    return {"name": name, "shape": shape, "dtype": "float32", "role": role, **extra}


def _manifest() -> dict:
    """A minimal valid manifest for one device and a cloud (no local exit)."""
    files = {name: mf.file_entry(name, data) for name, data in FILES.items()}
    return {
        "format": mf.FORMAT,
        "format_version": mf.FORMAT_VERSION,
        "name": "toy",
        "split": ["cloud"],
        "topology": {"input_shapes": [[4, 4, 1]], "num_classes": 2},
        "classes": ["a", "b"],
        "device_names": ["cam"],
        "inputs": [
            {
                "device": 0,
                "name": "image",
                "shape": [1, 4, 4, 1],
                "dtype": "float32",
                "scale": 1 / 255,
                "raw_bytes": 16,
            }
        ],
        "aggregation": {"local": "max", "edge": "concat", "cloud": "concat"},
        "thresholds": {},
        "thresholds_source": "paper",
        "wire": {"summary": {"encoding": "float32", "shape": [2], "nbytes": 8}, "features": {}},
        "targets": ["portable"],
        "tiers": {
            "device_0": {
                "role": "device",
                "device": 0,
                "files": {"portable": files["device_0.tflite"]},
                "inputs": [_tensor("image", [1, 4, 4, 1], "sensor", device=0)],
                "outputs": [_tensor("features", [1, 2, 2, 4], "features")],
            },
            "cloud": {
                "role": "cloud",
                "files": {"portable": files["cloud.tflite"]},
                "inputs": [
                    _tensor(
                        "features_0",
                        [1, 2, 2, 4],
                        "features",
                        **{"from": {"tier": "device_0", "output": "features"}},
                    ),
                    _tensor("presence", [1, 1], "presence", columns=["device_0"]),
                ],
                "outputs": [_tensor("logits", [1, 2], "logits", exit="cloud")],
            },
        },
    }


@pytest.fixture()
def model_dir(tmp_path):
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    mf.write_manifest(_manifest(), tmp_path)
    return tmp_path


def test_round_trip(model_dir):
    m = mf.load_manifest(model_dir)
    assert isinstance(m, mf.Manifest) and m == _manifest()
    assert m.directory == model_dir
    assert m.tier_names == ["device_0", "cloud"]
    assert m.path("cloud", "portable") == model_dir / "cloud.tflite"
    assert mf.load_manifest(model_dir / "manifest.json") == m


def test_file_entry_and_names():
    entry = mf.file_entry("x.tflite", b"abc", ops={"ADD": 1})
    assert entry == {
        "file": "x.tflite",
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "size_bytes": 3,
        "ops": {"ADD": 1},
    }
    assert mf.tier_filename("device_3", "portable") == "device_3.tflite"
    assert mf.tier_filename("cloud", "lce") == "cloud.lce.tflite"
    with pytest.raises(ValueError, match="Expected a target"):
        mf.tier_filename("cloud", "gpu")


def test_path_unknown_tier_or_target(model_dir):
    m = mf.load_manifest(model_dir)
    with pytest.raises(ConfigError, match="No tier 'edge_0'"):
        m.path("edge_0", "portable")
    with pytest.raises(ConfigError, match="No 'lce' file for tier 'cloud'"):
        m.path("cloud", "lce")


def _write(tmp_path, manifest):
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m.update(format="onnx"), r"format.*expected 'ddnn-tf-manifest'"),
        (lambda m: m.update(format_version=2), r"reads version 1, the manifest is version 2"),
        (lambda m: m.pop("wire"), r"missing key\(s\) \['wire'\]"),
        (lambda m: m.update(split=["cloud", "local"]), r"split.*ending with 'cloud'"),
        (lambda m: m.update(targets=["gpu"]), r"targets"),
        (lambda m: m.update(thresholds={"local": 0.8}), r"one threshold per exit of \[\]"),
        (lambda m: m.update(thresholds_source="guess"), r"thresholds_source"),
        (
            lambda m: m["tiers"]["cloud"].update(role="fog"),
            r"tiers.cloud.role: 'fog' is not one of",
        ),
        (
            lambda m: m["tiers"]["cloud"].pop("outputs"),
            r"tiers.cloud.*missing key\(s\) \['outputs'\]",
        ),
        (
            lambda m: m["tiers"]["cloud"]["inputs"][0].update(shape=[1, -1]),
            r"shape\[1\]: -1 is less",
        ),
        (
            lambda m: m["tiers"]["cloud"]["inputs"][1].update(name="features_0"),
            r"names must be unique",
        ),
        (
            lambda m: m["tiers"]["cloud"]["files"]["portable"].update(file="../cloud.tflite"),
            r"plain name",
        ),
        (lambda m: m["wire"]["summary"].update(shape=[3]), r"wire.summary"),
        (
            lambda m: m["inputs"][0].update(
                quantizer={"bits": 8, "scale": [0.1, 0.2], "zero_point": [0, 0]}
            ),
            r"\(inputs\[0\].quantizer\): expected one scale and zero point per channel \(1\), got 2",
        ),
        (
            lambda m: m["inputs"][0].update(
                quantizer={"bits": 8, "scale": [0.1], "zero_point": [200]}
            ),
            r"\(inputs\[0\].quantizer\): zero points must lie in \[-128, 127\]",
        ),
        (
            lambda m: m["inputs"][0].update(
                quantizer={"bits": 16, "dtype": "int8", "scale": [0.1], "zero_point": [0]}
            ),
            r"bits 16 with dtype 'int8'",
        ),
        (
            lambda m: m["inputs"][0].update(
                quantizer={"bits": 8, "scale": [0.0], "zero_point": [0]}
            ),
            r"inputs\[0\].quantizer.scale\[0\]: 0.0 is less than or equal to the minimum of 0",
        ),
        (
            lambda m: m.update(
                calibration={"rule": "accuracy", "thresholds": {"local": 0.3}, "n_val": 10}
            ),
            r"\(calibration.thresholds\): expected the manifest's thresholds \{\}",
        ),
    ],
)
def test_invalid_manifests_are_rejected(tmp_path, edit, match):
    manifest = copy.deepcopy(_manifest())
    edit(manifest)
    with pytest.raises(ValueError, match=match):
        mf.load_manifest(_write(tmp_path, manifest))


def test_modified_or_missing_file(model_dir):
    (model_dir / "cloud.tflite").write_bytes(b"\x01cloud-binarY")
    with pytest.raises(ValueError, match=r"cloud.tflite does not match its manifest entry.*sha256"):
        mf.load_manifest(model_dir)
    assert mf.load_manifest(model_dir, check_files=False)["name"] == "toy"
    (model_dir / "cloud.tflite").unlink()
    with pytest.raises(FileNotFoundError, match="cloud.tflite is missing"):
        mf.load_manifest(model_dir)


def test_missing_or_malformed_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="No manifest at"):
        mf.load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(ValueError, match="not valid JSON"):
        mf.load_manifest(tmp_path)


def test_write_manifest_validates_first(tmp_path):
    with pytest.raises(FileNotFoundError):
        mf.write_manifest(_manifest(), tmp_path)  # the tier files are not there
    assert not (tmp_path / "manifest.json").exists()


def test_manifest_imports_standard_library_only():
    loaded, _ = modules_loaded_by("import ddnn_tf.core.manifest")
    heavy = {"tensorflow", "tf_keras", "keras", "larq", "numpy", "ai_edge_litert"}
    assert not heavy & loaded, sorted(heavy & loaded)
