"""Tests for ddnn_tf.core.comm: wire encodings and the paper's communication cost."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from ddnn_tf.core import comm
from ddnn_tf.core.comm import (
    SUMMARY_ENCODINGS,
    decode_summary,
    encode_summary,
    feature_nbytes,
    pack_features,
    summary_nbytes,
    unpack_features,
)

pytestmark = pytest.mark.filterwarnings("error")


def test_public_api_names():
    for name in comm.__all__:
        assert hasattr(comm, name), name
    assert SUMMARY_ENCODINGS == ("float32", "float16", "int8", "int4")


# ------------------------------------------------------------------ summaries


@pytest.mark.parametrize(
    ("encoding", "nbytes"), [("float32", 40), ("float16", 20), ("int8", 14), ("int4", 5)]
)
def test_summary_nbytes(encoding, nbytes):
    assert summary_nbytes(10, encoding) == nbytes
    assert len(encode_summary(np.arange(-5, 5, dtype=float), encoding)) == nbytes


def test_summary_int4_is_lossless_packed_nibbles():
    v = np.array([-8, 7, 0, -1, 3], dtype=np.float32)
    payload = encode_summary(v, "int4")
    # two's-complement nibbles, first class in the low nibble, odd count padded with 0
    assert payload == bytes([0x78, 0xF0, 0x03])
    out = decode_summary(payload, 5, "int4")
    assert out.dtype == np.float32 and out.flags.writeable
    np.testing.assert_array_equal(out, v)
    every = np.arange(-8, 8, dtype=np.float32)
    np.testing.assert_array_equal(decode_summary(encode_summary(every, "int4"), 16, "int4"), every)


def test_summary_int4_refuses_what_it_cannot_carry():
    with pytest.raises(ValueError, match=r"integers in \[-8, 7\].*\[-9, 1\]"):
        encode_summary(np.array([-9.0, 1.0]), "int4")
    with pytest.raises(ValueError, match="not all integers"):
        encode_summary(np.array([0.5, 1.0]), "int4")


def test_summary_float32_round_trip_little_endian():
    v = np.array([0.25, 0.5, 0.125], dtype=np.float32)
    payload = encode_summary(v)
    assert payload == struct.pack("<3f", 0.25, 0.5, 0.125)
    out = decode_summary(payload, 3)
    assert out.dtype == np.float32 and out.flags.writeable
    np.testing.assert_array_equal(out, v)


def test_summary_float16_round_trip():
    rng = np.random.default_rng(2)
    v = rng.dirichlet(np.ones(6))
    out = decode_summary(encode_summary(v, "float16"), 6, "float16")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, v, rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="float16 range"):
        encode_summary(np.array([1e6, 0.0]), "float16")


@pytest.mark.parametrize("seed", range(5))
def test_summary_int8_round_trip_within_quantisation_step(seed):
    rng = np.random.default_rng(seed)
    v = rng.normal(scale=3.0, size=7)
    payload = encode_summary(v, "int8")
    scale = struct.unpack("<f", payload[:4])[0]
    assert scale == pytest.approx(np.max(np.abs(v)) / 127, rel=1e-6)
    out = decode_summary(payload, 7, "int8")
    assert out.dtype == np.float32
    assert np.max(np.abs(out - v)) <= scale / 2 + 1e-6
    assert np.argmax(out) == np.argmax(v)


def test_summary_int8_zero_vector():
    out = decode_summary(encode_summary(np.zeros(3), "int8"), 3, "int8")
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0])


@pytest.mark.parametrize("encoding", SUMMARY_ENCODINGS)
def test_decode_summary_wrong_length(encoding):
    payload = encode_summary(np.array([-1.0, 0.0, 2.0]), encoding)
    expected = summary_nbytes(3, encoding)
    with pytest.raises(ValueError, match=f"Expected {expected} bytes.*Received {expected - 1}"):
        decode_summary(payload[:-1], 3, encoding)
    with pytest.raises(ValueError, match=f"Received {expected}"):
        decode_summary(payload, 5, encoding)


def test_encode_summary_rejects_bad_input():
    with pytest.raises(ValueError, match="one of float32, float16, int8, int4"):
        encode_summary(np.ones(3), "bfloat16")
    with pytest.raises(ValueError, match="finite"):
        encode_summary(np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(C,\)"):
        encode_summary(np.ones((2, 3)))
    with pytest.raises(ValueError, match="num_classes"):
        summary_nbytes(0)


# ------------------------------------------------------------------ features


@pytest.mark.parametrize("shape", [(5, 7, 4), (16, 16, 4), (3,), (1, 1, 1), (2, 8)])
def test_pack_unpack_round_trip(shape):
    rng = np.random.default_rng(3)
    x = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=shape)
    payload = pack_features(x)
    assert len(payload) == feature_nbytes(shape) == -(-int(np.prod(shape)) // 8)
    out = unpack_features(payload, shape)
    assert out.dtype == np.float32 and out.shape == shape
    np.testing.assert_array_equal(out, x)


def test_pack_bit_layout_and_sizes():
    # C order, most significant bit first, zero padding.
    x = np.array([[1, -1, -1, -1], [-1, -1, -1, 1]], dtype=np.int8)
    assert pack_features(x) == b"\x81"
    assert pack_features(np.array([1, 1, 1, 1, 1, 1, 1, 1, 1])) == b"\xff\x80"
    assert feature_nbytes((16, 16, 4)) == 128  # f * o / 8 of eq. (1)
    assert feature_nbytes((5, 7, 4)) == 18


@pytest.mark.parametrize("bad", [0.0, 0.5, np.nan, 2.0])
def test_pack_rejects_non_binary(bad):
    x = np.ones((2, 3))
    x[1, 2] = bad
    with pytest.raises(ValueError, match=r"\{-1, \+1\}"):
        pack_features(x)


def test_unpack_rejects_wrong_length_and_padding():
    payload = pack_features(np.ones((5, 7, 4)))
    with pytest.raises(ValueError, match="Expected 18 bytes.*Received 17"):
        unpack_features(payload[:-1], (5, 7, 4))
    # 9 bits: the second byte must carry only its leading bit.
    with pytest.raises(ValueError, match="padding"):
        unpack_features(b"\xff\xff", (9,))
    with pytest.raises(ValueError, match="non-negative"):
        feature_nbytes((4, -1))


@pytest.mark.parametrize("encoding", SUMMARY_ENCODINGS)
def test_batch_summaries_are_the_one_sample_payloads(encoding):
    rng = np.random.default_rng(3)
    values = rng.normal(size=(7, 10))
    if encoding == "int4":  # integer summaries of a rounding exit head
        values = rng.integers(-8, 8, size=(7, 10)).astype(np.float64)
    values[2] = 0.0  # int8's zero scale
    payload = comm.encode_summaries(values, encoding)
    assert payload.dtype == np.uint8 and payload.shape == (7, summary_nbytes(10, encoding))
    for row, v in zip(payload, values):
        assert row.tobytes() == encode_summary(v, encoding)
    decoded = comm.decode_summaries(payload, 10, encoding)
    for got, row in zip(decoded, payload):
        np.testing.assert_array_equal(got, decode_summary(row.tobytes(), 10, encoding))
    with pytest.raises(ValueError, match="finite"):
        comm.encode_summaries(np.full((2, 3), np.nan), encoding)
    with pytest.raises(ValueError, match="bytes"):
        comm.decode_summaries(payload[:, :-1], 10, encoding)
    if encoding == "int4":  # lossless or refused, never rounded
        with pytest.raises(ValueError, match=r"int4 summary of integers in \[-8, 7\]"):
            comm.encode_summaries(np.full((2, 3), 0.5), encoding)
        with pytest.raises(ValueError, match=r"int4 summary of integers in \[-8, 7\]"):
            comm.encode_summaries(np.full((2, 3), 9.0), encoding)


def test_batch_features_are_the_one_sample_payloads():
    rng = np.random.default_rng(4)
    x = np.where(rng.random((5, 5, 7, 4)) > 0.5, 1.0, -1.0).astype(np.float32)
    payload = comm.pack_features_batch(x)
    assert payload.shape == (5, feature_nbytes((5, 7, 4)))
    for row, one in zip(payload, x):
        assert row.tobytes() == pack_features(one)
    np.testing.assert_array_equal(comm.unpack_features_batch(payload, (5, 7, 4)), x)
    with pytest.raises(ValueError, match="binary"):
        comm.pack_features_batch(x * 0.5)
    bad = payload.copy()
    bad[:, -1] |= 1  # a padding bit
    with pytest.raises(ValueError, match="padding"):
        comm.unpack_features_batch(bad, (5, 7, 4))


def test_raw_codec_round_trips():
    x = np.linspace(0, 1, 2 * 10 * 14, dtype=np.float32).reshape(2, 10, 14, 1)
    q = comm.encode_raw(x, "uint8", 1 / 255)
    assert q.shape == (2, 140)
    back = comm.decode_raw(q, (10, 14, 1), "uint8", 1 / 255)
    np.testing.assert_allclose(back, x, atol=0.5 / 255 + 1e-7)
    f = comm.encode_raw(x, "float32")
    assert f.shape == (2, 560)
    np.testing.assert_array_equal(comm.decode_raw(f, (10, 14, 1), "float32"), x)
    with pytest.raises(ValueError, match="scale"):
        comm.encode_raw(x, "uint8")
