"""Validation splits of the training cells: K-fold splits and their mean score
(lshgan.validation.ValidationSplit.folds, mean_scores), and comparing variants on validation
draws (paired_differences)."""

import numpy as np
import pytest

from lshgan.errors import DataWarning, ParameterError
from lshgan.validation import ValidationSplit, mean_scores, paired_differences


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


# ---------------------------------------------------------------------------- K-fold splits
def _cells(counts: dict[str, int], n_genes: int = 6):
    import anndata as ad
    import pandas as pd

    types = [t for t, c in counts.items() for _ in range(c)]
    obs = pd.DataFrame({"cell_type": types}, index=[f"cell{i}" for i in range(len(types))])
    X = np.random.default_rng(0).random((len(types), n_genes)).astype(np.float32)
    return ad.AnnData(X, obs=obs)


@pytest.mark.parametrize("label_key", ["cell_type", None])
def test_folds_validate_every_cell_exactly_once_and_stratify(label_key):
    cells = _cells({"a": 40, "b": 20, "c": 10})
    folds = ValidationSplit.folds(cells, 5, label_key=label_key, seed=3)
    assert len(folds) == 5
    validated = [name for f in folds for name in f.val.obs_names]
    assert sorted(validated) == sorted(cells.obs_names)  # each cell once
    for f in folds:
        assert f.fit.n_obs + f.val.n_obs == cells.n_obs
        assert not set(f.fit.obs_names) & set(f.val.obs_names)
        assert (f.seed, f.label_key) == (3, label_key)  # the forest of score() keeps the seed
        assert set(f.val.obs["split"]) == {"test"} and set(f.fit.obs["split"]) == {"train"}
    if label_key:  # every fold holds the types in the data's proportions
        for f in folds:
            assert f.val.obs["cell_type"].value_counts().to_dict() == {"a": 8, "b": 4, "c": 2}
        assert folds[0].cell_types(True) == folds[0].val.obs["cell_type"].tolist()
    # the seed shuffles: another seed deals other cells into the first fold
    other = ValidationSplit.folds(cells, 5, label_key=label_key, seed=4)
    assert set(other[0].val.obs_names) != set(folds[0].val.obs_names)


def test_folds_warn_about_rare_types_and_keep_single_cells_for_fitting():
    cells = _cells({"a": 30, "b": 12, "rare": 2, "single": 1})
    with pytest.warns(DataWarning, match=r"2 cell types have fewer cells than n_folds=3: "
                                         r"rare \(2\), single \(1\)"):
        folds = ValidationSplit.folds(cells, 3, label_key="cell_type")
    validated = [name for f in folds for name in f.val.obs_names]
    (single,) = cells.obs_names[cells.obs["cell_type"] == "single"]
    assert sorted(validated) == sorted(set(cells.obs_names) - {single})
    assert all(single in f.fit.obs_names for f in folds)  # a model can generate its type


@pytest.mark.parametrize("n_folds, match", [
    (1, "n_folds must be >= 2, got 1"),
    (2.5, "n_folds must be an integer"),
    (30, "n_folds=30 is more than the 20 cells"),
    (6, "n_folds=6 a fold has 3 validation cells"),
])
def test_bad_folds_are_one_clear_error(n_folds, match):
    with pytest.raises(ParameterError, match=match):
        ValidationSplit.folds(_cells({"a": 12, "b": 8}), n_folds, label_key="cell_type")


def test_mean_scores_gives_means_and_standard_deviations():
    out = mean_scores([{"objective": 0.6, "rf_auc": 0.6, "dcr": 1.0},
                       {"objective": 0.8, "rf_auc": 0.7, "dcr": 1.2}])
    assert out == pytest.approx({"objective": 0.7, "rf_auc": 0.65, "dcr": 1.1,
                                 "objective_sd": 0.2 / np.sqrt(2), "rf_auc_sd": 0.1 / np.sqrt(2),
                                 "dcr_sd": 0.2 / np.sqrt(2)})
    assert mean_scores([{"objective": 0.5}]) == {"objective": 0.5, "objective_sd": 0.0}
    assert np.isnan(mean_scores([{"objective": 0.5}, {"objective": float("nan")}])["objective"])
