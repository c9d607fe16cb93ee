"""The one PCA helper (:mod:`lshgan.pca`) and the model's single shared PCA.

Real data: the Pollen split of ``conftest`` (skipped when absent); the rest is synthetic.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import lshgan
import lshgan.model
from lshgan.pca import fit_pca, project


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs((a * b).sum(axis=1)) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_sparse_randomized_is_centred_and_matches_exact(pollen_split):
    """The implicitly centred randomized SVD of a CSR matrix finds the exact PCA's axes
    (TruncatedSVD, which does not centre, would find the mean as its first axis)."""
    X = np.asarray(pollen_split[0].X.toarray() if sp.issparse(pollen_split[0].X)
                   else pollen_split[0].X, dtype=np.float32)
    mean, exact = fit_pca(X, 10, method="exact")
    mean_s, fast = fit_pca(sp.csr_matrix(X), 10, seed=0, method="randomized")
    np.testing.assert_allclose(mean_s, mean, rtol=1e-4, atol=1e-5)
    assert _cosines(fast[:5], exact[:5]).min() > 0.999
    # the same signs whatever the solver: scores agree, not only up to a flip
    np.testing.assert_allclose(project(X[:20], mean_s, fast[:3]),
                               project(X[:20], mean, exact[:3]), rtol=0.05, atol=0.05)
    scores = project(sp.csr_matrix(X), mean_s, fast)
    np.testing.assert_allclose(scores.mean(axis=0), 0.0, atol=1e-3)


def test_dense_and_csr_copies_give_the_same_axes(synthetic_adata):
    X = np.asarray(synthetic_adata.X, dtype=np.float64)
    _, dense = fit_pca(X, 5, method="randomized")
    _, csr = fit_pca(sp.csr_matrix(X), 5, method="randomized")
    assert _cosines(dense[:3], csr[:3]).min() > 0.99
    assert np.all((dense[:3] * csr[:3]).sum(axis=1) > 0)


def test_fit_pca_caps_components_and_rejects_unknown_method():
    X = np.random.default_rng(0).random((6, 4))
    assert fit_pca(X, 50)[1].shape == (4, 4)
    assert fit_pca(sp.csr_matrix(X), 50, method="randomized")[1].shape == (4, 4)
    with pytest.raises(ValueError, match="method"):
        fit_pca(X, 2, method="svd")


def test_training_fits_one_pca_for_lsh_anchors_and_latent(synthetic_adata, monkeypatch):
    """With a PCA LSH space, the LSH space, the anchors and the latent space come from one
    randomized PCA: training set-up calls :func:`lshgan.pca.fit_pca` once."""
    calls = []
    real = lshgan.model.fit_pca

    def counted(X, n, **kw):
        calls.append(n)
        return real(X, n, **kw)

    monkeypatch.setattr(lshgan.model, "fit_pca", counted)
    monkeypatch.setattr(lshgan.pca, "fit_pca", counted)
    model = lshgan.LSHGAN(synthetic_adata, label_key="cell_type", lsh_space_pcs=20)
    model.train(epochs=1, progress=False, max_steps=1)
    assert calls == [max(20, model.config.anchor_dim, model.config.n_latent)]
    # the subsample hashed the first 20 components of that PCA
    pcs = project(synthetic_adata.X, *real(synthetic_adata.X, calls[0], seed=0,
                                           method="randomized"))
    again = model.lsh_subsample(seed=0, space=np.ascontiguousarray(pcs[:, :20], np.float32))
    np.testing.assert_array_equal(model.subsample_, again)
