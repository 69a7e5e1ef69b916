"""ddnn_tf.core.sensors: the per-channel sensor quantiser of real-valued devices."""

import numpy as np
import pytest

from ddnn_tf.core.sensors import SensorQuantizer, sensor_quantizer, sensor_values


def test_fit_covers_each_channel_and_zero():
    rng = np.random.default_rng(0)
    x = np.stack(
        [rng.uniform(100.0, 2500.0, 300), rng.uniform(-3.0, 1.0, 300), np.zeros(300)], axis=1
    ).astype(np.float32)
    for bits, dtype in ((8, "int8"), (16, "int16")):
        q = SensorQuantizer.fit(x, bits)
        assert q.dtype == dtype and q.channels == 3
        codes = q.codes(x)
        assert codes.dtype == np.dtype(dtype)
        assert codes.min() >= q.qmin and codes.max() <= q.qmax
        # each channel spans the code range (its minimum or 0 at qmin, its maximum at qmax)
        assert codes[:, 0].max() == q.qmax and codes[:, 1].min() == q.qmin
        assert q.zero_point[0] == q.qmin  # all-positive: 0 is the range's lower end
        assert q.scale[2] == 1.0 and set(codes[:, 2]) == {q.zero_point[2]}
        # the codes approximate the values within half a step
        back = q.centre(codes) * np.asarray(q.scale, np.float32)
        assert np.all(np.abs(back - x) <= 0.5001 * np.asarray(q.scale))


def test_codes_follow_the_formula_and_clip():
    q = SensorQuantizer(8, (0.5, 2.0), (-10, 3))
    x = np.array([[0.0, 0.0], [0.74, 5.0], [0.75, -5.0], [1e6, -1e6], [-0.26, 2.99]], np.float32)
    assert q.codes(x).tolist() == [[-10, 3], [-9, 6], [-8, 1], [127, -128], [-11, 4]]
    assert q.centred(x).tolist() == [[0, 0], [1, 3], [2, -2], [137, -131], [-1, 1]]
    assert np.array_equal(q.uncentre(q.centred(x)), q.codes(x))
    with pytest.raises(ValueError, match="NaN or infinity"):
        q.codes(np.array([[np.nan, 0.0]], np.float32))
    with pytest.raises(ValueError, match="2 channels, got shape"):
        q.codes(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="centred sensor codes"):
        q.uncentre(np.array([[0.5, 0.0]], np.float32))
    with pytest.raises(ValueError, match="centred sensor codes"):
        q.uncentre(np.array([[200.0, 0.0]], np.float32))


@pytest.mark.parametrize(
    "bits, scale, zero, match",
    [
        (4, (1.0,), (0,), "bits must be 8 or 16"),
        (8, (0.0,), (0,), "finite and > 0"),
        (8, (1.0,), (200,), r"zero points must lie in \[-128, 127\]"),
        (8, (1.0, 2.0), (0,), "one scale and one zero point per channel"),
    ],
)
def test_bad_quantizers_are_refused(bits, scale, zero, match):
    with pytest.raises(ValueError, match=match):
        SensorQuantizer(bits, scale, zero)


def test_the_manifest_entry_round_trips():
    q = SensorQuantizer(16, (0.25, 3.0), (-7, 12))
    entry = {"quantizer": q.to_dict()}
    assert entry["quantizer"] == {
        "bits": 16,
        "dtype": "int16",
        "scale": [0.25, 3.0],
        "zero_point": [-7, 12],
    }
    assert sensor_quantizer(entry) == q and sensor_quantizer({}) is None
    with pytest.raises(ValueError, match="bits 16 with int8"):
        sensor_quantizer({"quantizer": {**q.to_dict(), "dtype": "int8"}})
    x = np.ones((2, 2), np.float32)
    assert sensor_values([None, q], [x, x])[0] is x
    assert sensor_values([None, q], [x, x])[1].tolist() == [[4.0, 0.0], [4.0, 0.0]]
