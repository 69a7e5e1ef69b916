"""Tier binaries read and written through ``ddnn_tf.runtime.flatbuffer``."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT

from ddnn_tf.core import manifest as mf
from ddnn_tf.core.tflite_check import check_manifest_tier
from ddnn_tf.errors import FormatError
from ddnn_tf.runtime import flatbuffer as fb

DEFAULT = mf.load_manifest(ROOT / "tflite_models" / "fmnist6_mlpcc")


@pytest.mark.parametrize("target", ["portable", "lce"])
def test_tflite_info_is_what_the_manifest_recorded(target):
    """Order, operators (custom ones by name) and the batch-1 shapes of every tier."""
    for tier, meta in DEFAULT["tiers"].items():
        entry = meta["files"][target]
        info = fb.tflite_info(DEFAULT.path(tier, target).read_bytes())
        assert info["input_order"] == entry["input_order"], tier
        assert info["output_order"] == entry["output_order"], tier
        assert info["ops"] == entry["ops"], tier
        for t in meta["inputs"] + meta["outputs"]:
            assert info["shape_signatures"][t["name"]] == t["shape"], (tier, t["name"])
            assert info["dtypes"][t["name"]] == t["dtype"], (tier, t["name"])
    assert "LceBconv2d" in fb.tflite_info(DEFAULT.path("device_0", "lce").read_bytes())["ops"]


def test_a_model_written_back_reads_the_same_and_passes_the_checks():
    data = DEFAULT.path("device_0", "portable").read_bytes()
    written = fb.write_model(fb.read_model(data))
    assert written[4:8] == b"TFL3"
    assert fb.tflite_info(written) == fb.tflite_info(data)
    assert fb.write_model(fb.read_model(written)) == written  # a fixed point
    check_manifest_tier(DEFAULT, "device_0", "portable", written)


def test_opcode_index_finds_or_adds_a_builtin():
    model = fb.read_model(DEFAULT.path("device_0", "portable").read_bytes())
    ops = fb.schema.BuiltinOperator
    count = len(model.operatorCodes)
    conv = fb.opcode_index(model, ops.CONV_2D)
    assert len(model.operatorCodes) == count
    assert model.operatorCodes[conv].builtinCode == ops.CONV_2D
    # A builtin above 127 keeps 127 in the deprecated field and is still read by name.
    gelu = fb.opcode_index(model, ops.GELU)
    assert gelu == count and model.operatorCodes[gelu].deprecatedBuiltinCode == 127
    op = fb.schema.OperatorT()
    op.opcodeIndex = gelu
    assert fb.op_name(model, op) == "GELU"
    assert fb.opcode_index(model, ops.GELU) == gelu


def test_constants_by_their_tensor_type():
    model = fb.read_model(DEFAULT.path("device_0", "portable").read_bytes())
    sub = model.subgraphs[fb.signature(model).subgraphIndex]
    conv = next(op for op in sub.operators if fb.op_name(model, op) == "CONV_2D")
    x, w = (sub.tensors[i] for i in conv.inputs[:2])
    weights = fb.buffer_array(model, w)
    assert weights.dtype == np.float32 and list(weights.shape) == [int(d) for d in w.shape]
    weights[...] = 0  # a copy: the model's buffer is untouched
    assert np.any(fb.buffer_array(model, w))
    assert fb.buffer_array(model, x) is None  # an activation has no data


def test_a_missing_signature_is_a_format_error():
    model = fb.read_model(DEFAULT.path("device_0", "portable").read_bytes())
    model.signatureDefs[0].signatureKey = b"other"
    with pytest.raises(FormatError, match="no 'serving_default' signature"):
        fb.signature_names(model)
    with pytest.raises(FormatError, match="no 'serving_default' signature"):
        fb.tflite_info(fb.write_model(model))
