"""LSH forest, k-NN recall and the greedy LSH subsample (:mod:`lshgan.lsh`).

Real data: Pollen from ``$LSHGAN_SHARED_DATA`` or ``<repo>/../shared/data`` (skipped when
absent).  Everything else is small synthetic data; the file runs in well under 40 s.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_data

from lshgan import preprocess, read_dataset
from lshgan.errors import ParameterError
from lshgan.lsh import LSHForest, exact_knn, greedy_pass, knn_recall, lsh_subsample
from lshgan.preprocess import PreprocessConfig


@pytest.fixture(scope="module")
def pollen() -> np.ndarray:
    """Pollen after :func:`lshgan.preprocess` (paper thresholds): 299 cells, dense."""
    pp, _ = preprocess(read_dataset(shared_data("pollen"), label_key="cell_type"))
    X = pp.X.toarray() if hasattr(pp.X, "toarray") else np.asarray(pp.X)
    return X.astype(np.float32)


def clusters(n_per: int, n_clusters: int, d: int, *, spread: float = 0.3, seed: int = 0):
    """Gaussian blobs around well-separated centres (rows grouped by cluster)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(n_clusters, d))
    X = np.repeat(centres, n_per, axis=0) + rng.normal(scale=spread, size=(n_clusters * n_per, d))
    return X.astype(np.float32)


def resample_between_neighbours(X: np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` cells on segments between each real cell and one of its 5 nearest cells."""
    rng = np.random.default_rng(seed)
    nb = exact_knn(X, 5)
    a = rng.integers(X.shape[0], size=n)
    b = nb[a, rng.integers(5, size=n)]
    u = rng.random((n, 1), dtype=np.float32)
    noise = rng.normal(scale=0.1, size=(n, X.shape[1])) * X.std(axis=0)
    return np.maximum(X[a] * (1 - u) + X[b] * u + noise, 0).astype(np.float32)


# ------------------------------------------------------------------------------ recall
def test_recall_on_pollen_at_defaults(pollen):
    idx, dist = LSHForest(seed=0).fit(pollen).kneighbors(5)
    assert idx.shape == dist.shape == (pollen.shape[0], 5)
    assert knn_recall(idx, exact_knn(pollen, 5)) >= 0.9


def test_recall_of_the_hashing_path_on_pollen_cells(pollen):
    # 5000 cells resampled from Pollen: past the size where brute force is cheaper
    hvg = pollen[:, np.argsort(pollen.var(axis=0))[-500:]]
    X = resample_between_neighbours(hvg, 5000)
    forest = LSHForest(seed=0).fit(X)
    assert not forest._exhaustive(5)
    idx, _ = forest.kneighbors(5)
    assert knn_recall(idx, exact_knn(X, 5)) >= 0.9


def test_hashing_path_returns_exact_distances_sorted_without_self():
    X = clusters(250, 20, 16, spread=2.0)
    forest = LSHForest(n_trees=8, window=8, seed=3).fit(X)
    assert not forest._exhaustive(6)
    idx, dist = forest.kneighbors(6)
    n = X.shape[0]
    assert (idx != np.arange(n)[:, None]).all()
    assert all(len(set(row)) == 6 for row in idx.tolist())
    assert (np.diff(dist, axis=1) >= 0).all()
    true = np.linalg.norm(X[:, None, :] - X[idx], axis=2)
    np.testing.assert_allclose(dist, true, rtol=1e-4, atol=1e-3)


def test_exhaustive_search_is_exact():
    X = clusters(30, 4, 10, spread=1.0, seed=1)
    forest = LSHForest(seed=0).fit(X)
    assert forest._exhaustive(5)
    idx, _ = forest.kneighbors(5)
    assert knn_recall(idx, exact_knn(X, 5)) == 1.0


# ------------------------------------------------------------------------------ subsample
def test_small_synthetic_case_keeps_one_cell_per_cluster():
    X = clusters(5, 3, 4, spread=0.01)
    idx, _ = LSHForest(seed=0).fit(X).kneighbors(4)
    # each cell's 4 neighbours are the other members of its cluster
    assert all(set(row) == set(range(i // 5 * 5, i // 5 * 5 + 5)) - {i}
               for i, row in enumerate(idx.tolist()))
    assert greedy_pass(idx).tolist() == [0, 5, 10]
    assert lsh_subsample(X, k=4, t=1).tolist() == [0, 5, 10]


def test_subsample_shrinks_as_k_grows():
    X = clusters(40, 15, 12, spread=3.0)
    sizes = [len(lsh_subsample(X, k=k, t=1, seed=0)) for k in (2, 5, 10)]
    assert sizes[0] > sizes[1] > sizes[2] > 0


def test_subsample_shrinks_as_t_grows():
    X = clusters(40, 15, 12, spread=3.0)
    sizes = [len(lsh_subsample(X, k=3, t=t, seed=0)) for t in (1, 2, 3)]
    assert sizes[0] > sizes[1] > sizes[2] > 0


def test_subsample_is_sorted_unique_indices():
    X = clusters(40, 15, 12, spread=3.0)
    keep = lsh_subsample(X, k=5, t=2, seed=4)
    assert (np.diff(keep) > 0).all() and keep.min() >= 0 and keep.max() < X.shape[0]


# ------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("n_per", [10, 250])  # exhaustive and hashing paths
def test_same_seed_same_result(n_per):
    X = clusters(n_per, 20, 16, spread=2.0, seed=2)
    a = LSHForest(n_trees=8, seed=7).fit(X).kneighbors(5)
    b = LSHForest(n_trees=8, seed=7).fit(X).kneighbors(5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(lsh_subsample(X, k=5, t=2, seed=7),
                                  lsh_subsample(X, k=5, t=2, seed=7))


def test_seed_changes_the_hash_order():
    X = clusters(100, 10, 16, spread=2.0)
    a = LSHForest(n_trees=4, seed=0).fit(X).order_
    b = LSHForest(n_trees=4, seed=1).fit(X).order_
    assert not np.array_equal(a, b)


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("k", [0, -3])
def test_k_must_be_positive(k):
    X = clusters(10, 3, 4)
    with pytest.raises(ParameterError, match="k"):
        lsh_subsample(X, k=k)
    with pytest.raises(ParameterError, match="k"):
        LSHForest().fit(X).kneighbors(k)


@pytest.mark.parametrize("t", [0, -1])
def test_t_must_be_positive(t):
    with pytest.raises(ParameterError, match="t"):
        lsh_subsample(clusters(10, 3, 4), k=2, t=t)


def test_fewer_cells_than_k():
    X = clusters(2, 2, 4)  # 4 cells
    with pytest.raises(ParameterError, match="more than 5 cells"):
        lsh_subsample(X, k=5)
    with pytest.raises(ParameterError, match="k=4"):
        LSHForest().fit(X).kneighbors(4)


@pytest.mark.parametrize("kwargs", [dict(n_trees=0), dict(n_bits=0), dict(n_bits=63),
                                    dict(window=0), dict(block=0)])
def test_bad_forest_parameters(kwargs):
    with pytest.raises(ParameterError):
        LSHForest(**kwargs)


def test_fit_needs_a_matrix_of_two_rows():
    with pytest.raises(ParameterError, match="2-d"):
        LSHForest().fit(np.zeros(5))
    with pytest.raises(ParameterError, match="2-d"):
        LSHForest().fit(np.zeros((1, 5)))


# ------------------------------------------------------------------------------ helpers
def test_exact_knn_drops_self_even_with_duplicate_rows():
    X = np.vstack([np.zeros((3, 2)), np.ones((3, 2)) * 5]).astype(np.float32)
    idx = exact_knn(X, 2)
    assert (idx != np.arange(6)[:, None]).all()
    assert all(set(row) == set(range(i // 3 * 3, i // 3 * 3 + 3)) - {i}
               for i, row in enumerate(idx.tolist()))


def test_knn_recall():
    exact = np.array([[1, 2], [0, 2]])
    assert knn_recall(exact, exact) == 1.0
    assert knn_recall(np.array([[1, 3], [3, 4]]), exact) == 0.25


def test_pp_lsh_subsample_marks_the_models_subsample():
    """``lshgan.pp.lsh_subsample`` marks in ``obs`` the cells the model draws anchors from."""
    import lshgan
    from lshgan.datasets import synthetic_log_expression

    adata = synthetic_log_expression(240, 40, 3, seed=2)
    assert lshgan.pp.lsh_subsample(adata, k=5, t=1, groupby="cell_type") is None
    mask = adata.obs["lsh_subsample"].to_numpy()
    assert mask.dtype == bool and 0 < mask.sum() < adata.n_obs
    assert adata.uns["lsh_subsample"]["n_kept"] == mask.sum()
    # every type keeps cells, and the model's own subsample is the same
    assert set(adata.obs.loc[mask, "cell_type"]) == set(adata.obs["cell_type"])
    model = lshgan.LSHGAN(adata, label_key="cell_type")
    np.testing.assert_array_equal(np.flatnonzero(mask), model.lsh_subsample(seed=0))
    # more rounds keep fewer cells; copy=True leaves the input alone
    marked = lshgan.pp.lsh_subsample(adata, k=5, t=2, groupby="cell_type", copy=True,
                                     key_added="t2")
    assert "t2" not in adata.obs and marked.obs["t2"].sum() < mask.sum()
    with pytest.raises(lshgan.LSHGANError, match="use_rep"):
        lshgan.pp.lsh_subsample(adata, use_rep="X_nothing")
