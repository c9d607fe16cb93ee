"""Diversity, markers, MMD, k-NN AUC, real-vs-real control and the GRouNdGAN protocol.

Each test fails if the behaviour it names breaks.  The Gaussian mixture has three cell types,
each made of three sub-states: an honest sampler draws from it, a collapsed generator puts
every cell at its type's centre (between the sub-states).
"""

from __future__ import annotations

import functools
import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from lshgan import stratified_split
from lshgan.datasets import synthetic_log_expression
from lshgan.errors import ParameterError
from lshgan.metrics import (METRIC_KEYS, REAL_VS_REAL, classifier_aucs, evaluate,
                            evaluate_generators, groundgan_protocol, knn_auc,
                            marker_preservation, mmd, mmd_rbf, n_substates, prdc, prdc_scores,
                            real_vs_real, rf_auc, substate_coverage)

N_TYPES, N_SUB, N_GENES = 3, 3, 60
FAST = dict(n_estimators=30, n_jobs=1)


def _layout(seed: int = 0) -> np.ndarray:
    """Sub-state centres, shape (types, sub-states, genes): types far apart, sub-states within."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (N_TYPES, N_GENES))
    return centres[:, None, :] + rng.normal(0, 2, (N_TYPES, N_SUB, N_GENES))


def _cells(X: np.ndarray, types: np.ndarray, prefix: str) -> ad.AnnData:
    obs = pd.DataFrame({"cell_type": pd.Categorical([f"t{t}" for t in types])},
                       index=[f"{prefix}{i}" for i in range(len(types))])
    var = pd.DataFrame(index=[f"g{j}" for j in range(X.shape[1])])
    return ad.AnnData(X=X.astype(np.float32), obs=obs, var=var)


def _sample(n: int, seed: int, *, shift: float = 0.0) -> ad.AnnData:
    """``n`` cells of the mixture (sub-state centre + N(0, 0.5) noise)."""
    subs = _layout()
    rng = np.random.default_rng(seed)
    t, s = rng.integers(0, N_TYPES, n), rng.integers(0, N_SUB, n)
    return _cells(subs[t, s] + rng.normal(0, 0.5, (n, N_GENES)) + shift, t, f"s{seed}_")


def _collapsed(like: ad.AnnData) -> ad.AnnData:
    """Every cell of ``like`` replaced by its type's centre (mean of the type's sub-states)."""
    types = np.array([int(t[1:]) for t in like.obs["cell_type"]])
    return _cells(_layout().mean(axis=1)[types], types, "collapsed")


@pytest.fixture(scope="module")
def mixture():
    return {"train": _sample(600, 1), "test": _sample(300, 2), "honest": _sample(300, 3)}


# ---------------------------------------------------------------------------- diversity
def test_collapsed_generator_loses_recall_coverage_and_substates(mixture):
    test, honest = mixture["test"], mixture["honest"]
    collapsed = _collapsed(honest)
    good, bad = prdc(test, honest), prdc(test, collapsed)
    assert good["recall"] > 0.7 and good["coverage"] > 0.8 and good["precision"] > 0.7
    assert 0.7 < good["density"] < 1.3
    assert bad["recall"] < good["recall"] - 0.5 and bad["coverage"] < good["coverage"] - 0.5
    sub_good = substate_coverage(test, honest, label_key="cell_type")
    sub_bad = substate_coverage(test, collapsed, label_key="cell_type")
    assert sub_good["substate_coverage"] > 0.65 and sub_good["substate_mass"] > 0.8
    assert sub_bad["substate_coverage"] < sub_good["substate_coverage"] - 0.5
    assert sub_bad["substate_mass"] < sub_good["substate_mass"] - 0.5
    per_type = sub_good["per_type"]
    assert sorted(per_type) == ["t0", "t1", "t2"]
    assert all(v["n_substates"] == n_substates(v["n_cells"]) > 1 for v in per_type.values())


def test_prdc_matches_the_papers_formulas():
    # Naeem et al. 2020, written out on the full distance matrix; the sides differ in spread
    # so that real and generated k-NN radii (precision/density vs recall) cannot be swapped
    rng = np.random.default_rng(0)
    real, fake = rng.normal(0, 1, (70, 4)), rng.normal(0.5, 2.0, (50, 4))
    k = 5

    def radii(Z):
        D = np.sqrt(((Z[:, None] - Z[None]) ** 2).sum(-1))
        return np.sort(D, axis=1)[:, k]  # column 0 is the point itself

    D = np.sqrt(((fake[:, None] - real[None]) ** 2).sum(-1))  # fake x real
    r_real, r_fake = radii(real), radii(fake)
    expected = {
        "precision": (D <= r_real[None]).any(axis=1).mean(),
        "recall": (D <= r_fake[:, None]).any(axis=0).mean(),
        "density": (D <= r_real[None]).sum() / (k * len(fake)),
        "coverage": (D.min(axis=0) <= r_real).mean(),
    }
    got = prdc_scores(real, fake, k)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key
    assert got["recall"] != pytest.approx(got["coverage"])  # the case is not degenerate


def test_substates_count_missing_types_and_reach_only_within_type(mixture):
    test, honest = mixture["test"], mixture["honest"]
    only_t0 = honest[honest.obs["cell_type"] == "t0"].copy()
    res = substate_coverage(test, only_t0, label_key="cell_type")
    assert res["per_type"]["t0"]["coverage"] > 0.6
    assert res["per_type"]["t1"]["coverage"] == res["per_type"]["t2"]["coverage"] == 0.0
    share = (test.obs["cell_type"] == "t0").mean()
    assert res["substate_mass"] <= share + 1e-9
    # right cells, wrong labels: a t1 label on a t0 cell reaches nothing of t1
    mislabelled = only_t0.copy()
    mislabelled.obs["cell_type"] = pd.Categorical(["t1"] * mislabelled.n_obs)
    assert substate_coverage(test, mislabelled, label_key="cell_type")["substate_coverage"] == 0.0


def test_unlabelled_generated_cells_take_the_nearest_real_type(mixture):
    test, honest = mixture["test"], mixture["honest"]
    unlabelled = honest.copy()
    unlabelled.obs["cell_type"] = "unlabelled"
    labelled = substate_coverage(test, honest, label_key="cell_type")
    transferred = substate_coverage(test, unlabelled, label_key="cell_type")
    assert transferred["substate_coverage"] == pytest.approx(labelled["substate_coverage"])
    one_type = substate_coverage(test, honest)  # no labels: one type, sub-states of all cells
    assert list(one_type["per_type"]) == ["all cells"] and one_type["substate_coverage"] > 0.65


def test_n_substates_rule():
    assert [n_substates(n) for n in (1, 9, 19, 20, 100, 1000)] == [1, 1, 1, 2, 7, 22]


# ---------------------------------------------------------------------------- real-vs-real
def test_real_vs_real_control_is_near_perfect(mixture):
    train, test = mixture["train"], mixture["test"]
    control = real_vs_real(train, test, label_key="cell_type", seed=0)
    assert control.n_obs == test.n_obs
    assert (control.obs["cell_type"].value_counts().sort_index()
            == test.obs["cell_type"].value_counts().sort_index()).all()
    assert set(control.obs_names).isdisjoint(train.obs_names)
    table = evaluate_generators({}, train=train, test=test, label_key="cell_type",
                                include_references=False, include_real=True, **FAST)
    row = table.loc[REAL_VS_REAL]
    assert list(table.index) == [REAL_VS_REAL] and row["reference"]
    assert row["precision"] > 0.8 and row["recall"] > 0.8 and row["coverage"] > 0.85
    assert 0.7 < row["density"] < 1.3 and row["substate_coverage"] > 0.8
    assert row["marker_top50_overlap"] > 0.5 and row["marker_lfc_corr"] > 0.9
    assert row["rf_auc"] < 0.7 and row["knn_auc"] < 0.7 and abs(row["mmd"]) < 0.01
    assert row["dcr"] == 0.0  # by construction: its cells are training cells
    with pytest.raises(ParameterError, match="include_real=False"):
        evaluate_generators({REAL_VS_REAL: test}, train=train, test=test, **FAST)


def test_real_vs_real_without_labels_and_small_training_split(mixture):
    train, test = mixture["train"], mixture["test"]
    control = real_vs_real(train[:100], test, seed=1)  # fewer training than test cells
    assert control.n_obs == test.n_obs and len(set(control.obs_names)) == test.n_obs


# ---------------------------------------------------------------------------- markers
@pytest.fixture(scope="module")
def marker_data():
    cells = synthetic_log_expression(900, 300, 3, seed=0)  # each type up-regulates 30 genes
    return cells[:450].copy(), cells[450:].copy()


@pytest.mark.parametrize("storage", ["dense", "csr"])
def test_shuffled_marker_genes_lose_marker_overlap(marker_data, storage):
    real, honest = (a.copy() for a in marker_data)
    if storage == "csr":
        real.X = sp.csr_matrix(real.X)
    good = marker_preservation(real, honest, label_key="cell_type")
    shuffled = honest.copy()
    perm = np.random.default_rng(0).permutation(honest.n_vars)
    shuffled.X = np.asarray(honest.X)[:, perm]  # same cells and types, genes scrambled
    bad = marker_preservation(real, shuffled, label_key="cell_type")
    assert good["marker_top50_overlap"] > 0.5 and good["marker_lfc_corr"] > 0.8
    assert bad["marker_top50_overlap"] < 0.25 and abs(bad["marker_lfc_corr"]) < 0.3
    assert sorted(good["per_type"]) == ["type0", "type1", "type2"]


def test_marker_preservation_needs_two_types_with_enough_cells(marker_data):
    real, honest = marker_data
    one = honest[honest.obs["cell_type"] == "type0"].copy()
    assert math.isnan(marker_preservation(real, one, label_key="cell_type")["marker_lfc_corr"])
    few = honest[np.r_[np.flatnonzero(honest.obs["cell_type"] == "type0"),
                       np.flatnonzero(honest.obs["cell_type"] == "type1")[:4]]].copy()
    assert sorted(marker_preservation(real, few, label_key="cell_type")["per_type"]) == ["type0"]


# ---------------------------------------------------------------------------- MMD
def test_mmd_zero_for_same_distribution_and_grows_with_shift(mixture):
    test, honest = mixture["test"], mixture["honest"]
    same = mmd(test, honest)
    small, big = mmd(test, _sample(300, 3, shift=1.0)), mmd(test, _sample(300, 3, shift=3.0))
    assert abs(same) < 0.005 and small > 0.01 and big > 5 * small
    X = np.asarray(test.X)
    assert mmd_rbf(X, X) < 0 < mmd_rbf(X, X + 1.0)  # unbiased: identical sets just below 0
    assert mmd_rbf(X, X + 1.0, max_cells=50) > 0  # subsampled
    assert mmd_rbf(X, _collapsed(honest).X, scales=(0.25, 0.5, 1.0)) > 10 * mmd_rbf(
        X, _collapsed(honest).X)  # the median bandwidth's blind spot, and the way round it


# ---------------------------------------------------------------------------- classifiers
def test_knn_auc_separates_what_rf_separates(mixture):
    test, honest = mixture["test"], mixture["honest"]
    assert knn_auc(test, _collapsed(honest), seed=0)["mean"] > 0.9
    assert knn_auc(test, honest, seed=0)["mean"] < 0.7
    both = classifier_aucs(test, honest, classifiers=("rf", "knn"), seed=0, **FAST)
    assert both["rf"] == rf_auc(test, honest, seed=0, **FAST)  # sharing folds changes no RF number
    with pytest.raises(ParameterError, match="unknown classifier"):
        classifier_aucs(test, honest, classifiers=("svm",))


def test_groundgan_protocol_runs_on_small_data(monkeypatch):
    cells = synthetic_log_expression(240, 1200, 3, seed=0)
    real, other = cells[:120].copy(), cells[120:].copy()
    rand = other.copy()
    rand.X = np.random.default_rng(0).uniform(-0.5, 4, other.shape).astype(np.float32)
    res = groundgan_protocol(real, rand, n_estimators=50, n_jobs=1)
    assert res["auc"] > 0.9 and res["n_genes"] == 1000 and res["n_per_class"] == 120
    same = groundgan_protocol(real, other, n_estimators=50, n_jobs=1, log1p=True)
    assert 0.0 <= same["auc"] < 0.85
    # the published 1000 trees take seconds: the wiring is checked with a small forest
    fast = functools.partial(groundgan_protocol, n_estimators=20)
    monkeypatch.setattr("lshgan.metrics.protocol.groundgan_protocol", fast)
    table = evaluate_generators({"rand": rand}, train=other, test=real, label_key="cell_type",
                                include_references=False, include_real=False,
                                protocols=("groundgan",), n_estimators=20, n_jobs=1)
    assert list(table.columns[-2:]) == ["rf_auc_groundgan", "reference"]
    assert table.loc["rand", "rf_auc_groundgan"] > 0.9
    with pytest.raises(ParameterError, match="unknown protocol"):
        evaluate(rand, train=other, test=real, protocols=("scgan",))


# ---------------------------------------------------------------------------- protocol
def test_evaluate_reports_diversity_keys_without_labels(mixture):
    train, test, honest = mixture["train"], mixture["test"], mixture["honest"]
    res = evaluate(honest, train=train, test=test, seed=0, **FAST)
    assert tuple(res) == METRIC_KEYS
    assert math.isnan(res["marker_lfc_corr"]) and math.isnan(res["marker_top50_overlap"])
    assert res["recall"] > 0.7 and res["substate_coverage"] > 0.65


def test_stratified_split_test_cells_score_as_the_floor(synthetic_adata):
    # the same protocol on the count-like fixture: the copy reference covers like real cells
    train, test = stratified_split(synthetic_adata, label_key="cell_type", seed=0)
    table = evaluate_generators({}, train=train, test=test, label_key="cell_type", **FAST)
    assert list(table.index) == ["copy", "gaussian", REAL_VS_REAL]
    assert table.loc["copy", "coverage"] > 0.7 and table.loc[REAL_VS_REAL, "coverage"] > 0.7
    assert table.loc["gaussian", "recall"] < table.loc[REAL_VS_REAL, "recall"]
