"""Comparing variants on validation draws (lshgan.validation.paired_differences)."""

import numpy as np
import pytest

from lshgan.errors import ParameterError
from lshgan.validation import paired_differences


def _rows(variant, values, **extra):
    return [{"dataset": f"d{i % 2}", "val_seed": i, "seed": 0, "variant": variant,
             "rf_auc": v, **extra} for i, v in enumerate(values)]


def test_pairs_only_the_same_draws_and_gives_the_mean_difference_with_its_interval():
    base = _rows("default", [0.60, 0.70, 0.50, 0.65])
    better = _rows("new", [0.55, 0.66, 0.47, 0.60])
    # a row of another measuring run does not pair with the baseline's draw 0
    other = {**better[0], "rf_auc": 0.0, "measured": "another day"}
    out = paired_differences(base + better + [other], metrics=("rf_auc",))
    (row,) = out.itertuples()
    d = np.array([-0.05, -0.04, -0.03, -0.05])
    assert (row.variant, row.n, row.datasets, row.n_lower) == ("new", 4, 2, 4)
    assert row.diff == pytest.approx(d.mean())
    half = 3.182446305284263 * d.std(ddof=1) / 2  # t(0.975, 3) x sd / sqrt(4)
    assert (row.low, row.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert row.high < 0  # consistently lower: the interval excludes 0
    # split noise larger than the effect: the interval straddles 0
    noisy = _rows("noisy", [0.50, 0.78, 0.40, 0.72])
    (row,) = paired_differences(base + noisy, metrics=("rf_auc",)).itertuples()
    assert row.low < 0 < row.high


def test_missing_baseline_is_one_clear_error():
    with pytest.raises(ParameterError, match="baseline variant 'default'"):
        paired_differences(_rows("new", [0.5]))
