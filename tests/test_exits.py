"""Tests for ddnn_tf.core.exits: entropy, exit decisions, accuracies, sweeps and search."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ddnn_tf.core import exits
from ddnn_tf.core.exits import (
    DEFAULT_THRESHOLD_GRID,
    PAPER_THRESHOLD,
    ExitReport,
    evaluate_exits,
    exit_points,
    normalized_entropy,
    predictions,
    search_threshold,
    softmax,
    threshold_sweep,
)
from ddnn_tf.errors import ConfigError

# Any warning (e.g. numpy's "invalid value" on NaN rows) fails a test.
pytestmark = pytest.mark.filterwarnings("error")

NAN2 = [np.nan, np.nan]


def test_public_api_names():
    for name in exits.__all__:
        assert hasattr(exits, name), name
    assert PAPER_THRESHOLD == 0.8
    assert DEFAULT_THRESHOLD_GRID == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


# ------------------------------------------------------------------ softmax / entropy


def test_softmax_is_stable_and_float64():
    logits = np.array([[1000.0, 0.0, -1000.0], [1.0, 1.0, 1.0]], dtype=np.float32)
    p = softmax(logits)
    assert p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(p[1], [1 / 3] * 3)
    # Shift invariance, computed the textbook way on small logits.
    x = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(softmax(x), np.exp(x) / np.exp(x).sum())


def test_softmax_keeps_nan_rows_without_warning():
    p = softmax(np.array([[np.nan, 0.0], [0.0, 0.0]]))
    assert np.isnan(p[0]).all()
    np.testing.assert_allclose(p[1], [0.5, 0.5])


def test_normalized_entropy_hand_values():
    probs = np.array(
        [
            [0.25, 0.25, 0.25, 0.25],  # uniform -> 1
            [0.0, 1.0, 0.0, 0.0],  # one-hot -> 0 (0 * log 0 = 0, not NaN)
        ]
    )
    np.testing.assert_allclose(normalized_entropy(probs), [1.0, 0.0], atol=1e-12)
    # Two classes [0.25, 0.75], by hand with log base 2 (= normalisation by log 2):
    #   -(0.25 * log2 0.25 + 0.75 * log2 0.75) = 0.25 * 2 + 0.75 * log2(4/3)
    #   = 0.5 + 0.75 * 0.4150375 = 0.8112781
    assert normalized_entropy(np.array([[0.25, 0.75]]))[0] == pytest.approx(0.8112781, abs=1e-7)
    # [0.9, 0.1]: 0.9 * 0.1520031 + 0.1 * 3.3219281 = 0.4689956
    assert normalized_entropy(np.array([0.9, 0.1])) == pytest.approx(0.4689956, abs=1e-7)


def test_normalized_entropy_zeros_tiny_negatives_and_range():
    eta = normalized_entropy(np.array([[1.0, 0.0, 0.0], [-1e-18, 1.0 + 1e-16, 0.0]]))
    assert not np.isnan(eta).any()
    np.testing.assert_array_equal(eta, [0.0, 0.0])
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(6) * 0.3, size=500)
    eta = normalized_entropy(p)
    assert eta.shape == (500,)
    assert (eta >= 0).all() and (eta <= 1).all()


def test_normalized_entropy_nan_rows_and_single_class():
    eta = normalized_entropy(np.array([NAN2, [0.5, 0.5]]))
    assert np.isnan(eta[0]) and eta[1] == pytest.approx(1.0)
    np.testing.assert_array_equal(normalized_entropy(np.ones((3, 1))), [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="C >= 1"):
        normalized_entropy(np.zeros((2, 0)))


# ------------------------------------------------------------------ a hand-built 3-exit case
#
# Thresholds local = 0.5, edge = 0.9. eta values (2 classes): [0.9, 0.1] -> 0.469,
# [0.25, 0.75] -> 0.811, [0.5, 0.5] -> 1, one-hot -> 0.
#
# sample  local          edge           cloud        label  exit              taken pred
#   0     [.9, .1] .469  [.8, .2]       [.2, .8]     0      local (.469<=.5)  0 right
#   1     [.25,.75] .811 [.25,.75] .811 [.7, .3]     0      edge  (.811<=.9)  1 wrong
#   2     [.5, .5] 1     [.5, .5] 1     [.1, .9]     1      cloud             1 right
#   3     [1, 0]   0     [.4, .6]       [.3, .7]     1      local (0 <= .5)   0 wrong
#   4     NaN            NaN            NaN          0      invalid -> -1    -1 wrong
#   5     [.5, .5] 1     [.9, .1] .469  [.6, .4]     0      edge              0 right
#
# Per-exit accuracy if all samples exited there (over all 6, sample 4 wrong):
#   local argmax 0,1,0,0,-,0 vs labels 0,0,1,1,0,0 -> samples 0, 5 right  -> 2/6
#   edge  argmax 0,1,0,1,-,0                      -> samples 0, 3, 5      -> 3/6
#   cloud argmax 1,0,1,1,-,0                      -> samples 1, 2, 3, 5   -> 4/6
# Overall: samples 0, 2, 5 right -> 3/6. Fractions: local 2/6, edge 2/6, cloud 1/6, unclassified
# 1/6.

LOCAL = np.array([[0.9, 0.1], [0.25, 0.75], [0.5, 0.5], [1.0, 0.0], NAN2, [0.5, 0.5]])
EDGE = np.array([[0.8, 0.2], [0.25, 0.75], [0.5, 0.5], [0.4, 0.6], NAN2, [0.9, 0.1]])
CLOUD = np.array([[0.2, 0.8], [0.7, 0.3], [0.1, 0.9], [0.3, 0.7], NAN2, [0.6, 0.4]])
LABELS = np.array([0, 0, 1, 1, 0, 0])
VALID = np.array([True, True, True, True, False, True])
PROBS3 = {"local": LOCAL, "edge": EDGE, "cloud": CLOUD}


def test_exit_points_hand_example():
    index = exit_points([LOCAL, EDGE, CLOUD], [0.5, 0.9], VALID)
    assert index.dtype == np.int64
    np.testing.assert_array_equal(index, [0, 1, 2, 0, -1, 1])
    # A trailing threshold for the last exit is accepted and ignored.
    np.testing.assert_array_equal(exit_points([LOCAL, EDGE, CLOUD], [0.5, 0.9, 0.0], VALID), index)


def test_predictions_hand_example():
    index = np.array([0, 1, 2, 0, -1, 1])
    np.testing.assert_array_equal(predictions([LOCAL, EDGE, CLOUD], index), [0, 1, 1, 0, -1, 0])


def test_evaluate_exits_hand_example():
    report = evaluate_exits(PROBS3, LABELS, {"local": 0.5, "edge": 0.9}, valid=VALID)
    assert report.exits == ("local", "edge", "cloud")
    assert report.thresholds == {"local": 0.5, "edge": 0.9}
    assert report.n_samples == 6
    assert report.exit_fraction == pytest.approx(
        {"local": 2 / 6, "edge": 2 / 6, "cloud": 1 / 6, "unclassified": 1 / 6}
    )
    assert sum(report.exit_fraction.values()) == pytest.approx(1.0)
    assert report.accuracy == pytest.approx(
        {"local": 2 / 6, "edge": 3 / 6, "cloud": 4 / 6, "overall": 3 / 6}
    )
    d = report.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["exits"] == ["local", "edge", "cloud"]


def test_evaluate_exits_float_threshold_and_ignored_last():
    by_float = evaluate_exits(PROBS3, LABELS, 0.5, valid=VALID)
    by_map = evaluate_exits(PROBS3, LABELS, {"local": 0.5, "edge": 0.5, "cloud": 0.1}, VALID)
    assert by_float == by_map
    # edge 0.5: sample 1 (eta .811) now reaches the cloud, which is right -> 4/6 overall.
    assert by_float.exit_fraction["cloud"] == pytest.approx(2 / 6)
    assert by_float.accuracy["overall"] == pytest.approx(4 / 6)


def test_last_exit_always_classifies():
    uniform = np.full((4, 3), 1 / 3)
    index = exit_points([uniform, uniform, uniform], [0.0, 0.0])
    np.testing.assert_array_equal(index, [2, 2, 2, 2])
    report = evaluate_exits({"local": uniform, "cloud": uniform}, np.zeros(4, int), 0.0)
    assert report.exit_fraction == {"local": 0.0, "cloud": 1.0, "unclassified": 0.0}
    assert report.accuracy["overall"] == 1.0  # argmax of a uniform row is class 0


def test_nan_at_a_valid_early_exit_falls_through():
    local = np.array([NAN2, [1.0, 0.0]])
    cloud = np.array([[0.2, 0.8], [0.2, 0.8]])
    np.testing.assert_array_equal(exit_points([local, cloud], [1.0]), [1, 0])


def test_all_invalid():
    report = evaluate_exits({"local": LOCAL, "cloud": CLOUD}, LABELS, 0.8, np.zeros(6, bool))
    assert report.exit_fraction["unclassified"] == 1.0
    assert report.accuracy == {"local": 0.0, "cloud": 0.0, "overall": 0.0}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"thresholds": {"local": 0.5}}, "none for \\['edge'\\]"),
        (
            {"thresholds": {"local": 0.5, "edge": 0.5, "fog": 0.5}},
            "unknown exit\\(s\\) \\['fog'\\]",
        ),
        ({"thresholds": 1.5}, "in \\[0, 1\\]"),
        ({"thresholds": 0.5, "valid": np.ones(6)}, "boolean mask"),
        ({"thresholds": 0.5, "labels": LABELS[:5]}, "labels"),
    ],
)
def test_evaluate_exits_rejects_bad_input(kwargs, match):
    args = {"probs": PROBS3, "labels": LABELS, **kwargs}
    with pytest.raises(ValueError, match=match):
        evaluate_exits(**args)


def test_exit_points_rejects_bad_input():
    with pytest.raises(ValueError, match=r"expected 2 threshold\(s\)"):
        exit_points([LOCAL, EDGE, CLOUD], [0.5])
    with pytest.raises(ValueError, match="same number of samples"):
        exit_points([LOCAL, CLOUD[:3]], [0.5])
    with pytest.raises(ValueError, match="reserved"):
        evaluate_exits({"overall": LOCAL, "cloud": CLOUD}, LABELS, 0.5)
    with pytest.raises(ValueError, match="exit indices"):
        predictions([LOCAL, CLOUD], np.array([0, 1, 2, 0, 0, 0]))


# ------------------------------------------------------------------ sweep and search


def test_sweep_extremes_and_consistency_with_evaluate():
    rows = threshold_sweep(PROBS3, LABELS, valid=VALID)
    assert [r["threshold"] for r in rows] == list(DEFAULT_THRESHOLD_GRID)
    assert all("bytes_per_device" not in r for r in rows)
    # T = 0: nothing exits early except rows with entropy exactly 0 (sample 3's one-hot
    # local output).
    assert rows[0]["exit_fraction"]["local"] == pytest.approx(1 / 6)
    assert rows[0]["exit_fraction"]["edge"] == 0.0
    # T = 1: every valid sample exits at the first exit.
    assert rows[-1]["exit_fraction"] == pytest.approx(
        {"local": 5 / 6, "edge": 0.0, "cloud": 0.0, "unclassified": 1 / 6}
    )
    for row in rows:
        assert sum(row["exit_fraction"].values()) == pytest.approx(1.0)
        report = evaluate_exits(PROBS3, LABELS, row["threshold"], valid=VALID)
        assert row["accuracy_overall"] == report.accuracy["overall"]
        assert row["exit_fraction"] == report.exit_fraction


def test_sweep_bytes_fn_receives_exit_fraction():
    seen = []

    def bytes_fn(fractions):
        seen.append(fractions)
        return 100.0 * (1.0 - fractions["local"])

    rows = threshold_sweep(PROBS3, LABELS, [0.0, 1.0], bytes_fn=bytes_fn, valid=VALID)
    assert seen == [r["exit_fraction"] for r in rows]
    assert rows[0]["bytes_per_device"] == pytest.approx(100 * 5 / 6)
    assert rows[1]["bytes_per_device"] == pytest.approx(100 * 1 / 6)


# A 2-exit case where overall accuracy peaks in the middle of the grid (all labels 0;
# local eta in parentheses):
#   A local right (.286), cloud wrong   -> exiting at T >= 0.3 gains one
#   F local right (.469), cloud right
#   B local wrong (.722), cloud right   -> exiting at T >= 0.8 loses one
#   G local right (.881), cloud right
#   C local right (.971), cloud wrong   -> T = 1 gains one
#   D, E local wrong (.971), cloud right -> T = 1 loses two
# Overall accuracy: T 0.0-0.2 -> 5/7, 0.3-0.7 -> 6/7, 0.8-0.9 -> 5/7, 1.0 -> 4/7.
# Local exit fraction: 0 / 2/7 / 3/7 (T=.8) 4/7 (T=.9) / 1.
SEARCH_PROBS = {
    "local": np.array(
        [[0.95, 0.05], [0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4], [0.4, 0.6], [0.4, 0.6]]
    ),
    "cloud": np.array(
        [[0.1, 0.9], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.9, 0.1]]
    ),
}
SEARCH_LABELS = np.zeros(7, dtype=int)


def test_search_case_accuracy_profile():
    rows = threshold_sweep(SEARCH_PROBS, SEARCH_LABELS)
    acc = [round(r["accuracy_overall"] * 7) for r in rows]
    assert acc == [5, 5, 5, 6, 6, 6, 6, 6, 5, 5, 4]


def test_search_threshold_best_accuracy_ties_to_larger_t():
    assert search_threshold(SEARCH_PROBS, SEARCH_LABELS) == 0.7


def test_search_threshold_with_margin_picks_cheaper_t():
    # Within 0.15 of 6/7 admits 5/7; T = 0.9 exits most samples locally.
    assert search_threshold(SEARCH_PROBS, SEARCH_LABELS, margin=0.15) == 0.9
    # A margin smaller than one sample (1/7) keeps the best accuracy only.
    assert search_threshold(SEARCH_PROBS, SEARCH_LABELS, margin=0.1) == 0.7


def test_search_threshold_custom_grid_and_bad_margin():
    assert search_threshold(SEARCH_PROBS, SEARCH_LABELS, grid=[0.0, 0.35, 1.0]) == 0.35
    with pytest.raises(ValueError, match="margin"):
        search_threshold(SEARCH_PROBS, SEARCH_LABELS, margin=-0.1)
    with pytest.raises(ValueError, match="non-empty"):
        search_threshold(SEARCH_PROBS, SEARCH_LABELS, grid=[])


def test_exit_report_is_frozen():
    report = evaluate_exits(SEARCH_PROBS, SEARCH_LABELS, PAPER_THRESHOLD)
    assert isinstance(report, ExitReport)
    with pytest.raises(AttributeError):
        report.n_samples = 3  # type: ignore[misc]
    assert report.exit_fraction["local"] == pytest.approx(3 / 7)
    assert math.isclose(report.accuracy["overall"], 5 / 7)


def test_resolve_thresholds_one_rule_for_evaluate_and_runtime():
    from ddnn_tf.core.exits import resolve_thresholds

    early = ["local", "edge"]
    cal = {"local": 0.2, "edge": 0.4}
    assert resolve_thresholds(None, early, cal) == cal
    assert resolve_thresholds(None, early, {"local": 0.2}) == {"local": 0.8, "edge": 0.8}
    assert resolve_thresholds("paper", early, cal) == {"local": 0.8, "edge": 0.8}
    assert resolve_thresholds(0.5, early) == {"local": 0.5, "edge": 0.5}
    assert resolve_thresholds({"local": 0.1, "edge": 1}, early) == {"local": 0.1, "edge": 1.0}
    assert resolve_thresholds(None, [], cal) == {}
    with pytest.raises(ValueError, match=r"^threshold: expected calibrated thresholds"):
        resolve_thresholds("calibrated", early, {"local": 0.2})
    with pytest.raises(ValueError, match=r"none for \['edge'\]"):
        resolve_thresholds({"local": 0.1}, early)
    with pytest.raises(ValueError, match=r"^threshold: expected a number in \[0, 1\]"):
        resolve_thresholds(1.5, early)
    with pytest.raises(ValueError, match="'paper' or 'calibrated'"):
        resolve_thresholds("abc", early)
    with pytest.raises(ValueError, match="got True"):  # a flag given without a value
        resolve_thresholds(True, early)
    assert resolve_thresholds("0.3", early) == {"local": 0.3, "edge": 0.3}
    assert resolve_thresholds((0.1, 0.2), early) == {"local": 0.1, "edge": 0.2}
    assert resolve_thresholds(np.array([0.1, 0.2, 0.9]), early) == {"local": 0.1, "edge": 0.2}
    mapping = {"local": 0.1, "edge": 0.2, "cloud": 0.9}
    assert resolve_thresholds(mapping, early, last_exit="cloud") == {"local": 0.1, "edge": 0.2}
    with pytest.raises(ValueError, match=r"unknown exit\(s\) \['cloud'\]"):
        resolve_thresholds(mapping, early)
    with pytest.raises(ValueError, match=r"^threshold: expected 2 threshold\(s\).*got 4"):
        resolve_thresholds([0.1] * 4, early)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: exit_points([LOCAL, EDGE, CLOUD], [0.5, "x"]), "got 'x'"),
        (lambda: exit_points([LOCAL, CLOUD], 2.0), "got 2.0"),
        (lambda: evaluate_exits({"local": LOCAL, "cloud": CLOUD}, LABELS, {"local": -1}), "-1"),
        (lambda: threshold_sweep({"local": LOCAL, "cloud": CLOUD}, LABELS, ["x"]), "got 'x'"),
    ],
    ids=["list", "scalar", "mapping", "grid"],
)
def test_every_threshold_is_parsed_by_one_rule(call, match):
    """exit_points, evaluate_exits and the sweeps parse as resolve_thresholds does: one
    line naming the argument, what was expected and what it got (a numpy error before)."""
    with pytest.raises(
        ConfigError,
        match=r"^(thresholds|the threshold grid): expected a number in \[0, 1\] .*" + match,
    ):
        call()
