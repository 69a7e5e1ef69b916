"""Tier binaries read and written through ``ddnn_tf.runtime.flatbuffer``."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT

from ddnn_tf.core import manifest as mf
from ddnn_tf.core.tflite_check import check_manifest_tier
from ddnn_tf.errors import ConfigError, FormatError
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


def _conv(model):
    sub = model.subgraphs[0]
    return next(op for op in sub.operators if fb.op_name(model, op) == "CONV_2D")


def _one_input(model):
    _conv(model).inputs = _conv(model).inputs[:1]


def _options_of_another_op(model):
    conv = _conv(model)
    conv.builtinOptionsType = fb.schema.BuiltinOptions.AddNOptions
    conv.builtinOptions = fb.schema.AddNOptionsT()


def _short_constant(model):
    weights = model.subgraphs[0].tensors[_conv(model).inputs[1]]
    model.buffers[weights.buffer].data = model.buffers[weights.buffer].data[:-4]


def _unknown_builtin(model):
    model.operatorCodes[_conv(model).opcodeIndex].builtinCode = 30777


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_one_input, r"operator \d+ \(CONV_2D\) has inputs \[\d+\]"),
        (_options_of_another_op, r"\(CONV_2D\) has no Conv2DOptions"),
        (_short_constant, r"bytes of float32 data for shape"),
        (_unknown_builtin, "operator BUILTIN_30777"),
    ],
    ids=["inputs", "options", "constant", "builtin"],
)
def test_a_malformed_device_binary_is_refused_by_its_readers(edit, message):
    """What the bounds-checked reader lets through (every index in range) but no converter
    writes: one error line from the C target's and TFLM's readers, not an IndexError,
    AttributeError, KeyError or numpy's ValueError."""
    from ddnn_tf.mcu.lower import lower_tier
    from ddnn_tf.mcu.tflm import tflm_variant

    model = fb.read_model(DEFAULT.path("device_0", "portable").read_bytes())
    edit(model)
    data = fb.write_model(model)
    check_manifest_tier(DEFAULT, "device_0", "portable", data)  # the structure is sound
    with pytest.raises(ConfigError, match=message):
        lower_tier("device_0", data, scale=1 / 255)
    if edit is not _unknown_builtin:  # TFLM's variant keeps operators it does not rewrite
        with pytest.raises(FormatError, match=message):
            tflm_variant(data)
