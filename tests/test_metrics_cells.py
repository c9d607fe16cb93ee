"""Per-cell summaries (lshgan.metrics.cells): what a forest on principal components can miss."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from lshgan.errors import GeneMismatchError, ParameterError
from lshgan.metrics import CELL_KEYS, cell_statistics, cell_summaries, rf_auc


def _cells(n: int, spread_sd: float, seed: int) -> ad.AnnData:
    """Log-scale cells of one type: 40% of the genes detected, levels around gene means
    with each cell's own spread (``spread_sd``: how much that spread varies between cells)."""
    rng = np.random.default_rng(seed)
    genes = 200
    means = np.random.default_rng(99).uniform(3, 5, genes)
    scale = np.exp(rng.normal(0, spread_sd, (n, 1)))
    levels = means + scale * rng.normal(0, 1.0, (n, genes))
    X = np.where(rng.random((n, genes)) < 0.4, np.maximum(levels, 0.1), 0.0)
    return ad.AnnData(X=X.astype(np.float32))


def test_cell_summaries_dense_and_sparse_agree():
    X = np.array([[0.0, 1.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    dense = cell_summaries(X)
    sparse = cell_summaries(sp.csr_matrix(X))
    for key in dense:
        np.testing.assert_allclose(dense[key], sparse[key])
    np.testing.assert_allclose(dense["detected"], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(dense["total"], [4.0, 8.0, 0.0])
    np.testing.assert_allclose(dense["level_mean"], [2.0, 2.0, 0.0])
    np.testing.assert_allclose(dense["level_sd"], [1.0, 0.0, 0.0])


def test_same_distribution_is_near_chance():
    st = cell_statistics(_cells(400, 0.3, 0), _cells(400, 0.3, 1), seed=0)
    assert set(CELL_KEYS) <= set(st)
    assert 0.4 < st["cells_auc"] < 0.6
    assert max(st[k] for k in CELL_KEYS if k.startswith("cells_ks")) < 0.12


def test_cells_with_too_alike_level_spreads_are_caught():
    """Independent per-gene noise: every generated cell has the same level spread, real
    cells' spreads vary.  The per-cell view sees it plainly; the forest on principal
    components (same cells) sees less -- the reason this metric exists."""
    real, alike = _cells(400, 0.4, 0), _cells(400, 0.0, 1)
    st = cell_statistics(real, alike, seed=0)
    assert st["cells_ks_level_sd"] > 0.25
    assert st["cells_ks_level_sd"] > 3 * st["cells_ks_detected"]
    assert st["cells_auc"] > 0.7
    assert st["cells_auc"] > rf_auc(real, alike, seed=0, n_estimators=100)["mean"] + 0.15


def test_cell_statistics_checks_its_input():
    real = _cells(50, 0.3, 0)
    other = ad.AnnData(X=real.X, var=real.var.set_axis([f"other{i}" for i in range(real.n_vars)]))
    with pytest.raises(GeneMismatchError):
        cell_statistics(real, other)
    with pytest.raises(ParameterError, match="at least 2 cells"):
        cell_statistics(real, real[:1])
