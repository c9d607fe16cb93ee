"""Principal component analysis of cells x genes, dense or sparse: the one PCA helper.

Two methods, one result ``(mean, components)`` whose scores are
``(X - mean) @ components.T`` (:func:`project`):

* ``"randomized"`` (the model: LSH space, anchors and latent space share one): Halko et
  al. (2011) randomized SVD of the *centred* matrix.  Dense input goes to scikit-learn's
  ``PCA(svd_solver="randomized")``.  Sparse input is centred implicitly (the mean is
  subtracted inside every product, never from the matrix, so a 100k x 20k CSR matrix is
  never densified): scikit-learn refuses sparse input for randomized PCA, its
  ``TruncatedSVD`` does not centre, and scanpy's sparse PCA is ARPACK or a genes x genes
  covariance (20,000 x 20,000 at scale), both much slower than a randomized range finder
  with a few power iterations.  A dense and a CSR copy of the same data give the same
  components up to the randomized algorithm's accuracy (and sign convention).
* ``"exact"``: full SVD of dense input, ARPACK on the implicitly centred sparse matrix.
* ``"auto"`` (the metrics and references): exact up to :data:`EXACT_LIMIT` entries,
  randomized above (ARPACK on 40k x 20k sparse cells takes minutes).

Signs are fixed so that each component's largest-magnitude loading is positive: the same
data give the same axes whatever the solver's sign convention.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

METHODS = ("auto", "randomized", "exact")
#: ``method="auto"`` is exact up to this many matrix entries (every shared dataset's test
#: and generated cells together), randomized above (e.g. 40k cells x 20k genes)
EXACT_LIMIT = 5e7


def fit_pca(X, n_comps: int, *, seed: int = 0, method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """PCA of the rows of ``X`` (dense or CSR): ``(mean, components)``, float64.

    ``n_comps`` is capped at ``min(n_cells - 1, n_genes)`` (at least 1).

    Examples
    --------
    >>> mean, comps = fit_pca(np.random.default_rng(0).random((30, 10)), 5)
    >>> comps.shape
    (5, 10)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    from sklearn.decomposition import PCA

    if method == "auto":
        method = "exact" if X.shape[0] * X.shape[1] <= EXACT_LIMIT else "randomized"
    n_comps = max(1, min(int(n_comps), X.shape[0] - 1, X.shape[1]))
    if sp.issparse(X):
        if method == "randomized" and n_comps < min(X.shape):
            mean, comps = _sparse_randomized(X, n_comps, seed)
            return mean, _fix_signs(comps)
        if n_comps < min(X.shape):
            pca = PCA(n_components=n_comps, svd_solver="arpack", random_state=seed).fit(X)
            return pca.mean_.astype(np.float64), _fix_signs(pca.components_.astype(np.float64))
        X = X.toarray()
    solver = "randomized" if method == "randomized" else "full"
    pca = PCA(n_components=n_comps, svd_solver=solver, random_state=seed).fit(np.asarray(X))
    return pca.mean_.astype(np.float64), _fix_signs(pca.components_.astype(np.float64))


def project(X, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Scores of the rows of ``X`` (dense or CSR) on a PCA from :func:`fit_pca` (float64)."""
    scores = X @ components.T if sp.issparse(X) else np.asarray(X, np.float64) @ components.T
    return np.asarray(scores) - mean @ components.T


def _fix_signs(comps: np.ndarray) -> np.ndarray:
    flip = np.sign(comps[np.arange(comps.shape[0]), np.abs(comps).argmax(axis=1)])
    flip[flip == 0] = 1.0
    return comps * flip[:, None]


def _sparse_randomized(X, n_comps: int, seed: int, *, oversample: int = 10,
                       n_iter: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Randomized SVD (Halko et al. 2011, Alg. 4.4) of ``X - mean`` without forming it."""
    n, d = X.shape
    mean = np.asarray(X.mean(axis=0), dtype=np.float64).ravel()
    if n_iter is None:  # scikit-learn's rule for randomized_svd
        n_iter = 7 if n_comps < 0.1 * min(n, d) else 4
    rank = min(n_comps + oversample, min(n, d))

    # products in the matrix's own precision (a float32 matrix times float64 vectors would be
    # upcast, i.e. copied, at every product); orthonormalisation in float64
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64

    def times(V):  # (X - 1 mean) @ V
        return np.asarray(X @ V.astype(dtype), dtype=np.float64) - mean @ V

    def t_times(U):  # (X - 1 mean).T @ U
        return (np.asarray(X.T @ U.astype(dtype), dtype=np.float64)
                - np.outer(mean, U.sum(axis=0)))

    rng = np.random.default_rng(seed)
    Q = times(rng.standard_normal((d, rank)))
    for _ in range(n_iter):
        Q, _ = np.linalg.qr(Q)
        Q, _ = np.linalg.qr(t_times(Q))
        Q = times(Q)
    Q, _ = np.linalg.qr(Q)
    _, _, vt = np.linalg.svd(t_times(Q).T, full_matrices=False)
    return mean, vt[:n_comps]
