"""The calibration rules of ddnn_tf.core.calibration: the risk rule's test, its guarantee on
draws from a known population, its fallback, its path over several exits, its record."""

import math
from fractions import Fraction

import numpy as np
import pytest

from ddnn_tf.core.calibration import (
    Calibration,
    applied_record,
    binomial_cdf,
    calibrate,
    min_certifiable_delta,
    threshold_path,
)
from ddnn_tf.core.exits import DEFAULT_THRESHOLD_GRID, exit_points, predictions
from ddnn_tf.core.schemas import validate_document
from ddnn_tf.core.topology import Topology

TWO = Topology(input_shapes=[(4,)], num_classes=2)


def exact_cdf(k: int, n: int, p: float) -> float:
    q = Fraction(p)
    return float(sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(k + 1)))


@pytest.mark.parametrize(
    "k, n, p",
    [(0, 1, 0.3), (0, 10, 0.5), (3, 10, 0.3), (22, 600, 0.05), (5, 2000, 0.005), (40, 300, 0.2)],
)
def test_binomial_cdf_is_the_exact_tail(k, n, p):
    assert binomial_cdf(k, n, p) == pytest.approx(exact_cdf(k, n, p), rel=1e-9, abs=1e-300)


def test_binomial_cdf_edges():
    assert binomial_cdf(-1, 10, 0.5) == 0.0 and binomial_cdf(10, 10, 0.5) == 1.0
    assert binomial_cdf(3, 10, 0.0) == 1.0 and binomial_cdf(3, 10, 1.0) == 0.0
    assert 0.0 < binomial_cdf(0, 100_000, 1e-4) < 1e-4  # no underflow to 0 on a long tail


def test_min_certifiable_delta_is_where_zero_losses_stop_passing():
    for n, eps in ((200, 0.1), (500, 0.05), (6000, 0.1)):
        floor = min_certifiable_delta(n, eps) / 100
        assert binomial_cdf(0, n, floor * 1.001) <= eps < binomial_cdf(0, n, floor * 0.999)


def test_threshold_path_climbs_from_all_zero_to_all_one():
    one = threshold_path(["local"])
    assert [p["local"] for p in one] == list(DEFAULT_THRESHOLD_GRID)
    two = threshold_path(["local", "edge"])
    assert two[0] == {"local": 0.0, "edge": 0.0} and two[-1] == {"local": 1.0, "edge": 1.0}
    assert len(two) == 2 * len(DEFAULT_THRESHOLD_GRID) - 1
    for a, b in zip(two, two[1:]):  # one exit raised per step, the edge first
        changed = [e for e in a if a[e] != b[e]]
        assert len(changed) == 1 and b[changed[0]] > a[changed[0]]
        assert changed[0] == "edge" or b["edge"] == b["local"]


def population(n: int, rng, slope: float = 0.26):
    """Two classes; the local exit's normalized entropy is uniform in [0, 1] and it is wrong
    with probability slope * entropy; the cloud is right 90 % of the time. The risk at T
    is 0.9 * slope * T**2 / 2: 0.0105 at T = 0.3, just above one point."""
    eta = rng.random(n)
    # a two-class probability row whose normalized entropy is eta (binary entropy inverted)
    grid = np.linspace(0.5, 1.0, 20001)
    h = -(grid * np.log2(grid) + (1 - grid) * np.log2(np.clip(1 - grid, 1e-300, 1)))
    top = np.interp(eta, h[::-1], grid[::-1])
    y = rng.integers(0, 2, n)
    local_right = rng.random(n) >= slope * eta
    guess = np.where(local_right, y, 1 - y)
    local = np.where(guess[:, None] == np.arange(2), top[:, None], 1 - top[:, None])
    cloud_right = rng.random(n) < 0.9
    cloud = np.where((np.where(cloud_right, y, 1 - y))[:, None] == np.arange(2), 0.8, 0.2)
    return {"local": local, "cloud": cloud}, y


def risk_at(probs, y, thresholds: dict) -> float:
    arrays = [probs["local"], probs["cloud"]]
    index = exit_points(arrays, [thresholds["local"]])
    top_right = np.argmax(probs["cloud"], axis=1) == y
    return float(np.mean((predictions(arrays, index) != y) & top_right))


def test_risk_rule_bound_holds_on_draws_from_a_known_population():
    """Draw validation splits i.i.d. from a population whose risk crosses 1 point between
    T = 0.2 and T = 0.3; the chosen T's true risk exceeds DELTA in at most EPS of the draws
    (allowing three binomial standard errors over 400 draws), while the rule still picks
    T = 0.2 in many of them."""
    rng = np.random.default_rng(0)
    pool, y_pool = population(200_000, rng)
    draws, n, delta, eps = 400, 1000, 1.0, 0.1
    truth = {t: risk_at(pool, y_pool, {"local": t}) for t in DEFAULT_THRESHOLD_GRID}
    failures, chosen = 0, []
    for _ in range(draws):
        idx = rng.integers(0, len(y_pool), n)  # i.i.d. from the pool (the population)
        sample = {e: p[idx] for e, p in pool.items()}
        c = calibrate(sample, y_pool[idx], TWO, f"risk:{delta},{eps}")
        assert c.certified and c.bound == delta
        failures += truth[c.threshold] > delta / 100
        chosen.append(c.threshold)
    assert truth[0.3] > delta / 100 > truth[0.2]
    assert failures / draws <= eps + 3 * math.sqrt(eps * (1 - eps) / draws)
    assert chosen.count(0.2) >= draws // 4  # not trivially conservative


def test_risk_rule_stops_at_the_first_threshold_it_cannot_certify():
    """Fixed-sequence testing: a later threshold that would pass on its own is never
    reached once one fails."""
    n = 3000
    y = np.zeros(n, dtype=np.int64)
    cloud = np.tile([0.9, 0.1], (n, 1))  # always right
    eta = np.repeat([0.05, 0.25, 0.95], [1000, 1000, 1000])
    grid = np.linspace(0.5, 1.0, 20001)
    h = -(grid * np.log2(grid) + (1 - grid) * np.log2(1 - grid + 1e-300))
    top = np.interp(eta, h[::-1], grid[::-1])
    guess = np.zeros(n, dtype=np.int64)
    guess[1000:1100] = 1  # 100 of the samples at entropy 0.25 are wrong at the local exit
    local = np.where(guess[:, None] == np.arange(2), top[:, None], 1 - top[:, None])
    c = calibrate({"local": local, "cloud": cloud}, y, TWO, "risk:1")
    assert c.thresholds == {"local": 0.2} and c.certified
    assert c.val_risk == 0.0 and c.n_val == n and c.rule == "risk:1,0.1"


def test_too_small_a_split_falls_back_and_names_the_smallest_delta():
    rng = np.random.default_rng(3)
    probs, y = population(100, rng)
    c = calibrate(probs, y, TWO, "risk:0.5")
    floor = min_certifiable_delta(100, 0.1)
    assert round(floor, 2) == 2.28
    assert c.thresholds == {"local": 0.0} and c.certified is False and c.bound is None
    assert c.min_delta == floor
    assert "100 validation samples cannot certify a drop under 2.28 points" in c.note
    assert "falls back to the most conservative threshold" in c.note
    assert c.describe().startswith("risk:0.5,0.1 on 100 validation samples: nothing certified (")
    big = calibrate(probs, y, TWO, "risk:30")  # a DELTA this split can certify
    assert big.certified and big.threshold > 0.0


def test_several_exits_are_tested_along_the_staircase():
    rng = np.random.default_rng(5)
    n = 4000
    y = rng.integers(0, 3, n)

    def exit_probs(right_rate, sharpness):
        right = rng.random(n) < right_rate
        guess = np.where(right, y, (y + 1) % 3)
        conf = np.clip(rng.normal(sharpness, 0.2, n), 0.34, 0.999)
        p = np.repeat(((1 - conf) / 2)[:, None], 3, axis=1)
        p[np.arange(n), guess] = conf
        return p

    probs = {
        "local": exit_probs(0.8, 0.8),
        "edge": exit_probs(0.9, 0.8),
        "cloud": exit_probs(0.95, 0.7),
    }
    t = Topology(
        input_shapes=[(4,)] * 2, num_classes=3, edges=[[0], [1]], exits=("local", "edge", "cloud")
    )
    c = calibrate(probs, y, t, "risk:2")
    path = threshold_path(["local", "edge"])
    assert c.thresholds in path and c.certified
    position = path.index(c.thresholds)
    arrays = list(probs.values())
    top_right = np.argmax(probs["cloud"], axis=1) == y

    def losses(point):
        index = exit_points(arrays, [point["local"], point["edge"]])
        return int(np.count_nonzero((predictions(arrays, index) != y) & top_right))

    assert all(binomial_cdf(losses(p), n, 0.02) <= 0.1 for p in path[: position + 1])
    if position + 1 < len(path):
        assert binomial_cdf(losses(path[position + 1]), n, 0.02) > 0.1
    assert c.val_risk == pytest.approx(100 * losses(c.thresholds) / n)


def test_the_other_rules_give_every_early_exit_one_t_and_certify_nothing():
    rng = np.random.default_rng(2)
    probs, y = population(2000, rng)
    for rule in ("accuracy", "within:0.25", "bytes:100"):
        c = calibrate(probs, y, TWO, rule)
        assert c.delta is c.eps is c.certified is c.bound is None
        assert (
            c.describe()
            == f"{c.rule} on 2000 validation samples (no certified bound; risk:DELTA certifies one)"
        )
    assert calibrate(probs, y, TWO, "within").rule == "within:0.25"


def test_the_record_round_trips_through_its_schema_and_reports():
    rng = np.random.default_rng(4)
    probs, y = population(6000, rng)
    c = calibrate(probs, y, TWO, "risk:1,0.05")
    record = validate_document(c.to_dict(), "calibration.json")
    assert Calibration.from_dict(record) == c
    assert c.describe() == (
        "risk:1,0.05 on 6000 validation samples: drop vs. all-cloud <= 1.00 points with "
        "probability >= 0.95"
    )
    assert applied_record(c, c.thresholds) == record
    assert applied_record(c, {"local": 1.0}) is None and applied_record(None, {}) is None
    with pytest.raises(ValueError, match="calibration.json: eps: 1 is greater than or equal"):
        validate_document({**record, "eps": 1}, "calibration.json")
