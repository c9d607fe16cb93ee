"""Metrics, reference generators and plots: each test fails if the behaviour it names breaks."""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from lshgan import stratified_split
from lshgan.errors import GeneMismatchError, OutputExistsError, ParameterError
from lshgan.metrics import (METRIC_KEYS, authenticity, dcr, dcr_ratio, evaluate, evaluate_generators,
                            gene_statistics, nearest_distances, pairwise_distances, rf_auc,
                            wasserstein)
from lshgan.references import REFERENCES, CopyGenerator, GaussianGenerator

FAST_RF = dict(n_estimators=50, n_jobs=1)  # plenty for these clear-cut cases


def _like(adata: ad.AnnData, X) -> ad.AnnData:
    """Cells with matrix ``X`` and the genes and labels of ``adata``."""
    out = ad.AnnData(X=X, obs=adata.obs.copy(), var=adata.var.copy())
    out.obs_names = [f"other_{i}" for i in range(out.n_obs)]
    return out


@pytest.fixture(params=["dense", "csr"])
def split(request, synthetic_adata):
    """Synthetic train/test split, as dense and as CSR matrices."""
    if request.param == "csr":
        synthetic_adata.X = sp.csr_matrix(synthetic_adata.X)
    return stratified_split(synthetic_adata, label_key="cell_type", seed=0)


# ---------------------------------------------------------------------------- references
def test_copy_reference_has_dcr_zero(split):
    train, test = split
    copies = CopyGenerator().fit(train, label_key="cell_type").generate(test.n_obs, seed=0)
    assert dcr_ratio(copies, train, test) < 0.05
    res = dcr(copies, train, test)
    assert res["median_generated"] == 0.0 and res["median_test"] > 0


def test_state_dcr_sees_copied_states_under_gene_noise():
    """Copies of training cells plus independent per-gene noise look new on genes (DCR
    about 1) but not on the training cells' principal components, where the noise averages
    out: ``dcr(space="pca")`` stays well below a fresh sample's 1."""
    rng = np.random.default_rng(0)
    loadings = rng.normal(0, 1, (4, 200))  # cells on a 4-dimensional manifold + gene noise

    def cells(n, states=None):
        states = rng.normal(0, 1, (n, 4)) if states is None else states
        X = states @ loadings + rng.normal(0, 0.3, (n, 200))
        return ad.AnnData(X=X.astype(np.float32), var=pd.DataFrame(index=[f"g{i}" for i in range(200)]))

    train_states = rng.normal(0, 1, (300, 4))
    train, test = cells(300, train_states), cells(100)
    copies = ad.AnnData(X=train.X[:100].copy(), var=train.var.copy())
    sd = dcr(copies, train, test)["median_test"] / np.sqrt(200)  # a fresh cell's distance
    noisy = ad.AnnData(X=copies.X + rng.normal(0, sd, copies.shape).astype(np.float32),
                       var=train.var.copy())
    assert dcr_ratio(noisy, train, test) > 0.9
    assert dcr(noisy, train, test, space="pca", n_pcs=4)["ratio"] < 0.5
    fresh = cells(100)
    assert 0.7 < dcr(fresh, train, test, space="pca", n_pcs=4)["ratio"] < 1.4
    assert dcr(copies, train, test, space="pca")["ratio"] < 1e-6
    with pytest.raises(ParameterError, match="space"):
        dcr(copies, train, test, space="latent")


def test_authenticity_tells_copied_states_from_concentrated_ones():
    """A generator that concentrates its cells in the dense centre of the data lowers the
    state DCR as copying does; authenticity (judged against the training cells' local
    spacing) stays at the unseen cells' share for the concentrated cells and is 0 for
    copies, also under state noise far below the spacing."""
    rng = np.random.default_rng(0)
    loadings = rng.normal(0, 1, (4, 200))

    def cells(states):
        X = states @ loadings + rng.normal(0, 0.3, (len(states), 200))
        return ad.AnnData(X=X.astype(np.float32), var=pd.DataFrame(index=[f"g{i}" for i in range(200)]))

    train_states = rng.normal(0, 1, (300, 4))
    train, test = cells(train_states), cells(rng.normal(0, 1, (100, 4)))
    noisy_copies = cells(train_states[:100] + rng.normal(0, 0.05, (100, 4)))
    concentrated = cells(rng.normal(0, 0.5, (100, 4)))
    fresh = cells(rng.normal(0, 1, (100, 4)))
    state_dcr = {name: dcr(g, train, test, space="pca", n_pcs=4)["ratio"]
                 for name, g in (("copies", noisy_copies), ("concentrated", concentrated))}
    assert state_dcr["copies"] < 0.5 and state_dcr["concentrated"] < 0.8  # DCR: both low
    share = {name: authenticity(g, train, test, n_pcs=4)
             for name, g in (("copies", noisy_copies), ("concentrated", concentrated),
                             ("fresh", fresh))}
    reference = share["fresh"]["test"]
    assert 0.3 < reference < 0.7
    assert share["copies"]["generated"] < 0.05
    assert abs(share["concentrated"]["generated"] - reference) < 0.15
    assert abs(share["fresh"]["generated"] - reference) < 0.15
    exact = ad.AnnData(X=train.X[:50].copy(), var=train.var.copy())
    assert authenticity(exact, train, test)["generated"] == 0.0


def test_state_dcr_reuses_the_candidate_search_pca(synthetic_adata, monkeypatch):
    """Above the size limit the state space is the candidate search's PCA (no second PCA of
    a large training matrix): same distances as a fresh PCA of the training cells, up to
    the randomized solver."""
    import lshgan.metrics.distance as D

    train, test = stratified_split(synthetic_adata, label_key="cell_type", seed=0)
    fresh = D.NearestTraining(train.X, seed=0).state_distances(test.X, 4)
    monkeypatch.setattr(D, "CANDIDATE_SEARCH_LIMIT", 0)
    index = D.NearestTraining(train.X, seed=0)
    assert index.candidates
    np.testing.assert_allclose(index.state_distances(test.X, 4), fresh, rtol=1e-3, atol=1e-3)
    assert np.all(index.state_distances(train.X[:10], 4) < 1e-4)


def test_gaussian_reference_is_new_cells_near_the_data(split):
    train, test = split
    fake = GaussianGenerator().fit(train, label_key="cell_type").generate(test.n_obs, seed=0)
    assert 0.3 < dcr_ratio(fake, train, test) < 2.0
    assert gene_statistics(test, fake)["mean_corr"] > 0.9


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_generate_interface(name, synthetic_adata):
    ref = REFERENCES[name]().fit(synthetic_adata, label_key="cell_type")
    out = ref.generate(30, cell_type="type2", seed=3)
    assert out.shape == (30, synthetic_adata.n_vars)
    assert list(out.var_names) == list(synthetic_adata.var_names)
    assert out.obs["synthetic"].all() and set(out.obs["cell_type"]) == {"type2"}
    again = ref.generate(30, cell_type="type2", seed=3)
    np.testing.assert_array_equal(_dense(out.X), _dense(again.X))

    wanted = ["type0"] * 5 + ["type1"] * 7
    assert list(ref.generate(12, cell_type=wanted).obs["cell_type"]) == wanted
    props = ref.generate(3000, seed=1).obs["cell_type"].value_counts(normalize=True)
    train_props = synthetic_adata.obs["cell_type"].value_counts(normalize=True)
    assert props["type0"] == pytest.approx(train_props["type0"], abs=0.04)
    with pytest.raises(ParameterError, match="unknown cell_type"):
        ref.generate(5, cell_type="neuron")
    with pytest.raises(ParameterError, match="entries"):
        ref.generate(5, cell_type=["type0"] * 4)


def test_copy_reference_copies_within_the_requested_type(synthetic_adata):
    ref = CopyGenerator().fit(synthetic_adata, label_key="cell_type")
    out = ref.generate(20, cell_type="type1", seed=0)
    pool = synthetic_adata[synthetic_adata.obs["cell_type"] == "type1"]
    assert nearest_distances(out.X, pool.X).max() == 0.0


def test_gaussian_reference_matches_type_means(synthetic_adata):
    # with as many PCs as genes nothing is lost in the projection: only sampling error remains
    n_genes = synthetic_adata.n_vars
    ref = GaussianGenerator(n_pcs=n_genes).fit(synthetic_adata, label_key="cell_type")
    out = ref.generate(4000, cell_type="type0", seed=0)
    real = np.asarray(synthetic_adata[synthetic_adata.obs["cell_type"] == "type0"].X)
    err = np.abs(np.asarray(out.X).mean(axis=0) - real.mean(axis=0))
    assert (err < 5 * real.std(axis=0) / np.sqrt(4000) + 1e-6).all()


def test_unlabelled_reference(synthetic_adata):
    ref = GaussianGenerator(n_pcs=10).fit(synthetic_adata)
    out = ref.generate(7)
    assert set(out.obs["cell_type"]) == {"unlabelled"}
    with pytest.raises(ParameterError, match="without label_key"):
        ref.generate(7, cell_type="type0")
    with pytest.raises(ParameterError, match="not fitted"):
        CopyGenerator().generate(3)


# ---------------------------------------------------------------------------- rf_auc
def test_noisy_cells_are_detected(synthetic_adata):
    # this fixture's genes spread by ~3 log2 units: N(0, 0.5) would vanish in its PCA, so
    # the noise is scaled to each gene's spread (see rf_auc's note on isotropic noise)
    half = synthetic_adata.n_obs // 2
    real, other = synthetic_adata[:half].copy(), synthetic_adata[half:].copy()
    X = np.asarray(other.X)
    noise = np.random.default_rng(0).normal(0.0, 1.0, X.shape) * 2 * X.std(axis=0)
    noisy = _like(other, (X + noise).astype(np.float32))
    assert rf_auc(real, noisy, seed=0, **FAST_RF)["mean"] > 0.9


def test_pure_random_values_are_detected(synthetic_adata):
    rng = np.random.default_rng(1)
    rand = _like(synthetic_adata, rng.uniform(0, 4, synthetic_adata.shape).astype(np.float32))
    assert rf_auc(synthetic_adata, rand, seed=0, **FAST_RF)["mean"] > 0.9


def test_real_vs_real_is_near_chance(split):
    train, test = split
    a, b = stratified_split(train, test_size=0.5, label_key="cell_type", seed=1)
    res = rf_auc(a, b, seed=0, repeats=2, **FAST_RF)
    assert 0.3 < res["mean"] < 0.7
    assert res["n_per_class"] == min(a.n_obs, b.n_obs) and res["std"] >= 0


def test_rf_auc_balances_classes(synthetic_adata):
    res = rf_auc(synthetic_adata[:150], synthetic_adata[150:], seed=0, **FAST_RF)
    assert res["n_per_class"] == 50


# ---------------------------------------------------------------------------- distances
@pytest.mark.parametrize("space", ["genes", "pca"])
def test_wasserstein_zero_for_same_cells_and_grows_with_shift(split, space):
    _, test = split
    X = test.X.toarray() if sp.issparse(test.X) else np.asarray(test.X)
    w0 = wasserstein(test, _like(test, X.copy()), space=space)
    w_small = wasserstein(test, _like(test, X + 0.1), space=space)
    w_big = wasserstein(test, _like(test, X + 0.5), space=space)
    assert w0 == pytest.approx(0.0, abs=1e-9)
    assert 0 < w_small < w_big


def test_wasserstein_of_a_translation_is_its_length(synthetic_adata):
    # with a Euclidean ground cost (W1) translating every cell by d costs exactly |d|
    X = np.asarray(synthetic_adata.X)
    shifted = _like(synthetic_adata, X + 0.5)
    expected = 0.5 * math.sqrt(synthetic_adata.n_vars)
    assert wasserstein(synthetic_adata, shifted) == pytest.approx(expected, rel=1e-6)


def test_wasserstein_rejects_unknown_space(synthetic_adata):
    with pytest.raises(ParameterError, match="space"):
        wasserstein(synthetic_adata, synthetic_adata, space="tsne")


def test_exact_distances_dense_and_sparse_agree():
    rng = np.random.default_rng(0)
    A, B = rng.random((7, 20_000)), rng.random((500, 20_000))  # B spans several blocks
    D = pairwise_distances(sp.csr_matrix(A), B)
    np.testing.assert_allclose(D, np.sqrt(((A[:, None] - B[None]) ** 2).sum(-1)), atol=1e-12)
    np.testing.assert_allclose(nearest_distances(A, sp.csr_matrix(B)), D.min(axis=1))
    assert nearest_distances(B[:3], B).tolist() == [0.0, 0.0, 0.0]


# ---------------------------------------------------------------------------- gene stats
def test_gene_statistics_identical_sets_correlate_perfectly(synthetic_adata):
    twin = _like(synthetic_adata, sp.csr_matrix(synthetic_adata.X))  # sparse == dense
    stats = gene_statistics(synthetic_adata, twin)
    for key in ("mean_corr", "var_corr", "dropout_corr"):
        assert stats[key] == pytest.approx(1.0)
    np.testing.assert_allclose(stats["generated_var"], stats["real_var"], atol=1e-5)
    X = np.asarray(synthetic_adata.X)
    np.testing.assert_allclose(stats["real_dropout"], (X == 0).mean(axis=0))
    assert stats["real_mean"].shape == (synthetic_adata.n_vars,)


def test_gene_statistics_counts_negative_values_as_dropout(synthetic_adata):
    X = np.asarray(synthetic_adata.X).copy()
    X[X == 0] = -0.2
    stats = gene_statistics(synthetic_adata, _like(synthetic_adata, X))
    np.testing.assert_allclose(stats["generated_dropout"], stats["real_dropout"])
    flat = _like(synthetic_adata, np.ones_like(X))
    assert math.isnan(gene_statistics(synthetic_adata, flat)["dropout_corr"])


# ---------------------------------------------------------------------------- protocol
def test_evaluate_reports_every_metric(split):
    train, test = split
    fake = GaussianGenerator().fit(train, label_key="cell_type").generate(test.n_obs, seed=0)
    res = evaluate(fake, train=train, test=test, label_key="cell_type", seed=0, n_estimators=50)
    assert tuple(res) == METRIC_KEYS
    assert res["n_generated"] == res["n_test"] == test.n_obs
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in res.values())


def test_evaluate_checks_genes(split):
    train, test = split
    fake = CopyGenerator().fit(train).generate(test.n_obs)
    with pytest.raises(GeneMismatchError, match="1 gene missing"):
        evaluate(fake[:, 1:], train=train, test=test)
    renamed = fake.copy()
    renamed.var_names = [f"g{i}" for i in range(fake.n_vars)]
    with pytest.raises(GeneMismatchError):
        evaluate(renamed, train=train, test=test)
    reordered = fake[:, ::-1]  # same genes, other order: aligned by name
    assert dcr_ratio(reordered, train, test) == 0.0


def test_evaluate_generators_adds_reference_rows(synthetic_adata):
    train, test = stratified_split(synthetic_adata, label_key="cell_type", seed=0)
    noise = np.random.default_rng(0).normal(0, 0.5, test.shape).astype(np.float32)
    noisy = _like(test, np.asarray(test.X) + noise)
    table = evaluate_generators({"noisy": noisy}, train=train, test=test,
                                label_key="cell_type", seed=0, n_estimators=50)
    assert isinstance(table, pd.DataFrame)
    assert list(table.index) == ["noisy", "copy", "gaussian", "real-vs-real"]
    assert set(METRIC_KEYS) <= set(table.columns)
    assert table.loc["copy", "dcr"] < 0.05 and table.loc["gaussian", "dcr"] > 0.3
    assert table.loc["real-vs-real", "dcr"] == 0.0  # training cells, by construction
    assert table["reference"].tolist() == [False, True, True, True]
    assert (table["n_generated"] == test.n_obs).all()
    only = evaluate_generators({"noisy": noisy}, train=train, test=test,
                               include_references=False, n_estimators=20)
    assert list(only.index) == ["noisy"]
    with pytest.raises(ParameterError, match="reserved"):
        evaluate_generators({"copy": noisy}, train=train, test=test)


def test_pollen_references_reproduce_quality_notes(pollen_split):
    """QUALITY.md (Pollen): copy AUC ~0.59 / DCR 0, Gaussian AUC ~0.83 / DCR ~0.74."""
    train, test = pollen_split
    table = evaluate_generators({}, train=train, test=test, label_key="cell_type", seed=0,
                                n_estimators=100)  # 300 in the notes; 100 keeps this < 30 s
    copy, gauss = table.loc["copy"], table.loc["gaussian"]
    assert copy["rf_auc"] < 0.75 and copy["dcr"] == 0.0
    assert gauss["rf_auc"] > 0.75 and 0.5 < gauss["dcr"] < 1.0
    assert gauss["wasserstein_genes"] < copy["wasserstein_genes"]  # the blurry-cell caveat
    control = table.loc["real-vs-real"]
    assert control["dcr"] == 0.0 and control["rf_auc"] < 0.75
    assert gauss["recall"] < 0.5 < control["recall"]  # diversity sees the blur AUC misses


# ---------------------------------------------------------------------------- plotting
def _is_png(path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _check_plot(plot, path) -> None:
    """``plot(path)`` writes a PNG, refuses to overwrite it, replaces it with force=True."""
    assert plot(path) == path and _is_png(path)
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        plot(path)
    assert path.read_bytes() == before
    plot(path, force=True)
    assert _is_png(path)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


@pytest.mark.parametrize("as_dict", [False, True])
def test_plot_losses(tmp_path, as_dict):
    from lshgan.module.training import History
    from lshgan.plotting import plot_losses

    history = History(epoch=[1, 2, 3], d_loss=[1.3, 1.2, 1.25], g_loss=[0.7, 0.8, 0.75])
    history = history.to_dict() if as_dict else history
    _check_plot(lambda p, **kw: plot_losses(history, p, **kw), tmp_path / "losses.png")


def test_plot_gene_statistics(tmp_path, synthetic_adata):
    from lshgan.plotting import plot_gene_statistics

    real, gen = synthetic_adata[:100], synthetic_adata[100:]
    _check_plot(lambda p, **kw: plot_gene_statistics(real, gen, p, **kw), tmp_path / "g.png")


def test_plot_cell_statistics(tmp_path, synthetic_adata):
    from lshgan.plotting import plot_cell_statistics

    real, gen = synthetic_adata[:100], synthetic_adata[100:]
    _check_plot(lambda p, **kw: plot_cell_statistics(real, gen, p, references={"copy": real[::2]}, **kw),
                tmp_path / "cells.png")


def test_plot_diversity(tmp_path):
    from lshgan.plotting import plot_diversity

    table = pd.DataFrame({"precision": [0.8, 0.9], "recall": [0.3, 0.9], "density": [1.6, 1.0],
                          "coverage": [0.7, float("nan")], "rf_auc": [0.7, 0.5]},
                         index=pd.Index(["lshgan", "real-vs-real"], name="generator"))
    _check_plot(lambda p, **kw: plot_diversity(table, p, **kw), tmp_path / "d.png")
    as_dict = {"lshgan": {"recall": 0.3}, "copy": {"recall": 0.9}}
    assert _is_png(plot_diversity(as_dict, tmp_path / "e.png"))
    with pytest.raises(ParameterError, match="nothing to draw"):
        plot_diversity({"lshgan": {"rf_auc": 0.6}}, tmp_path / "f.png")


def test_plot_umap_refuses_to_overwrite_before_computing(tmp_path, synthetic_adata):
    from lshgan.plotting import plot_umap

    path = tmp_path / "umap.png"
    path.write_bytes(b"keep")
    with pytest.raises(OutputExistsError):
        plot_umap(synthetic_adata, synthetic_adata, path)
    assert path.read_bytes() == b"keep"


@pytest.mark.slow  # the first UMAP of a process JIT-compiles umap-learn (about a minute)
def test_plot_umap(tmp_path, synthetic_adata):
    from lshgan.plotting import plot_umap

    real, gen = synthetic_adata[:80], synthetic_adata[80:160]
    _check_plot(lambda p, **kw: plot_umap(real, gen, p, title="test", **kw), tmp_path / "u.png")


def _dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def test_nearest_distances_exact_on_sparse_and_dense(pollen_split):
    """BLAS candidates + exact re-ranking equal brute-force cdist (copies at exactly 0)."""
    import scipy.sparse as sp
    from scipy.spatial.distance import cdist

    from lshgan.metrics.distance import nearest_distances
    from lshgan.metrics.space import subsample_rows

    train, test = pollen_split
    brute = cdist(np.asarray(test.X.toarray() if sp.issparse(test.X) else test.X, np.float64),
                  np.asarray(train.X.toarray() if sp.issparse(train.X) else train.X,
                             np.float64)).min(axis=1)
    for ref in (sp.csr_matrix(train.X), np.asarray(sp.csr_matrix(train.X).toarray())):
        np.testing.assert_allclose(nearest_distances(test.X, ref), brute, rtol=1e-9)
    copies = nearest_distances(train.X[:10], train.X)
    assert np.all(copies == 0.0)
    assert subsample_rows(train.X, 10 ** 6) is train.X
    assert subsample_rows(train.X, 5, seed=1).shape[0] == 5


def test_nearest_training_candidate_search_finds_copies(pollen_split, monkeypatch):
    """Above the size limit the search goes through PCA candidates: copies are still at
    exactly 0, and no distance is below the exact nearest one."""
    import lshgan.metrics.distance as D

    train, test = pollen_split
    exact = D.nearest_distances(test.X, train.X)
    monkeypatch.setattr(D, "CANDIDATE_SEARCH_LIMIT", 0)
    index = D.NearestTraining(train.X, seed=0)
    assert index.candidates
    approx = index.distances(test.X)
    assert np.all(approx >= exact - 1e-9)
    assert np.mean(np.isclose(approx, exact)) > 0.9
    assert np.all(index.distances(train.X[:20]) == 0.0)
    # the median of a query set is computed once and reused
    m = index.median(test.X, max_cells=1000, seed=1)
    assert index.median(test.X, max_cells=1000, seed=1) == m
