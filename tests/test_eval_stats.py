"""The estimators against values worked out by hand."""

import numpy as np
import pytest

from lamp_data.errors import LampError
from lamp_eval import stats


def test_iqm_trims_a_quarter_from_each_end():
    # 8 values: drop 1, 2 and 7, 8 -> mean(3, 4, 5, 6) = 4.5
    assert stats.iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)
    # 5 values: int(0.25 * 5) = 1 cut each end -> mean(1, 2, 3) = 2; the outlier 100 is gone
    assert stats.iqm([0, 1, 2, 3, 100]) == pytest.approx(2.0)
    assert stats.mean([0, 1, 2, 3, 100]) == pytest.approx(21.2)
    rows = np.array([[8, 1, 7, 2, 6, 3, 5, 4], [0, 0, 0, 0, 1, 1, 1, 1]])
    np.testing.assert_allclose(stats.iqm(rows, axis=1), [4.5, 0.5])


def test_probability_of_improvement_by_hand():
    # task a: pairs (x > y) + 0.5 (x == y) over 3 x 3 pairs:
    #   x=1: 1 (>0); x=2: 1 (>0) + 0.5 (=2); x=3: 1 (>0) + 1 (>2) -> 4.5 / 9 = 0.5
    # task b: one pair, 1 > 0 -> 1.0; average over tasks -> 0.75
    x = {"a": [1, 2, 3], "b": [1]}
    y = {"a": [0, 2, 4], "b": [0], "only-y": [5]}
    assert stats.probability_of_improvement(x, y) == pytest.approx(0.75)
    assert stats.probability_of_improvement(y, x) == pytest.approx(0.25)
    interval = stats.probability_of_improvement_ci(x, y, reps=500)
    assert interval.value == pytest.approx(0.75)
    assert interval.low <= 0.75 <= interval.high
    with pytest.raises(LampError, match="share no task"):
        stats.probability_of_improvement({"a": [1]}, {"b": [1]})


def test_bootstrap_of_two_runs_matches_its_exact_distribution():
    # Resampling [0, 1] twice gives means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4,
    # so the 95 % percentile interval is [0, 1] and half the replicates are 0.5.
    rng = np.random.default_rng(1)
    replicates = stats.stratified_resample({"t": [0.0, 1.0]}, 4000, rng).mean(axis=1)
    assert set(np.unique(replicates)) == {0.0, 0.5, 1.0}
    assert np.mean(replicates == 0.5) == pytest.approx(0.5, abs=0.03)
    interval = stats.stratified_bootstrap_ci({"t": [0.0, 1.0]}, "mean", reps=4000)
    assert (interval.value, interval.low, interval.high) == (0.5, 0.0, 1.0)


def test_bootstrap_is_stratified_by_task():
    # Task a always scores 0 (3 runs), task b always 1 (1 run). Resampling within tasks keeps
    # 3 zeros and 1 one in every replicate, so the mean is 0.25 with no spread at all; a
    # bootstrap that pooled the runs first would give intervals as wide as [0, 0.75].
    scores = {"a": [0.0, 0.0, 0.0], "b": [1.0]}
    interval = stats.stratified_bootstrap_ci(scores, "mean", reps=1000)
    assert (interval.value, interval.low, interval.high) == (0.25, 0.25, 0.25)
    again = stats.stratified_bootstrap_ci({"a": [0.1, 0.5, 0.9, 0.3]}, "iqm", reps=300, seed=4)
    assert again == stats.stratified_bootstrap_ci({"a": [0.1, 0.5, 0.9, 0.3]}, "iqm", reps=300, seed=4)
    assert again.low <= again.value <= again.high


def test_curve_with_ci_and_area_under_curve():
    # one task, two runs, two points; IQM of two values is their mean
    value, low, high = stats.curve_with_ci({"t": [[0.0, 1.0], [0.0, 0.0]]}, "iqm", reps=500)
    np.testing.assert_allclose(value, [0.0, 0.5])
    assert low[0] == high[0] == 0.0 and low[1] == 0.0 and high[1] == 1.0
    # trapezoids: (0 + 1) / 2 * 10 + (1 + 1) / 2 * 10 = 15 over 20 steps -> 0.75
    assert stats.area_under_curve([0, 10, 20], [0, 1, 1]) == pytest.approx(0.75)
    assert stats.area_under_curve([5], [0.4]) == pytest.approx(0.4)


def test_bad_input_is_a_lamp_error():
    with pytest.raises(LampError):
        stats.stratified_bootstrap_ci({}, "iqm")
    with pytest.raises(LampError, match="unknown statistic"):
        stats.stratified_bootstrap_ci({"a": [1.0]}, "median")
    with pytest.raises(LampError, match="same evaluation points"):
        stats.curve_with_ci({"a": [[0.0, 1.0]], "b": [[0.0]]})
