"""SUGAR-style generation (Lindenbaum, Stanley, Wolf & Krishnaswamy, NeurIPS 2018).

SUGAR ("Synthesis Using Geometrically Aligned Random-walks") fills sparse regions of the
data manifold:

1. **local covariance**: each cell's ``k`` nearest neighbours (found in a PCA of the
   training cells) give a covariance ``Sigma_i`` in gene space;
2. **density-equalising weights**: the kernel degree ``d(i)`` (Gaussian kernel, one
   bandwidth: the median distance to the ``k``-th neighbour) estimates the density; cells
   are chosen as seeds with probability proportional to ``max(d) - d(i)`` (SUGAR's
   ``l(i)``), so more points are generated where the data are sparse;
3. **new points** ``x_i + N(0, Sigma_i)``: drawn exactly as ``x_i + D_i^T w / sqrt(k)`` with
   ``D_i`` the neighbours' deviations from their mean and ``w ~ N(0, I)`` (no ``g x g``
   covariance is formed);
4. **one diffusion step** (MAGIC-style): each new point is replaced by the kernel-weighted
   average of its neighbours among the real and the new points (row-normalised Gaussian
   kernel, adaptive bandwidth), which pulls it back onto the manifold.

With labels, all of this runs within each cell type (a conditional generator).  Values
are clipped at 0 (the ``log2(1+x)`` scale has no negative expression).  The density
equalisation is SUGAR's purpose, and it deliberately changes the distribution: a
classifier comparing with real cells is expected to notice.

Examples
--------
>>> from lshgan.baselines.sugar import SugarGenerator
>>> sugar = SugarGenerator(k=10).fit(train, label_key="cell_type")   # doctest: +SKIP
>>> sugar.generate(100, cell_type="K562", seed=0).n_obs               # doctest: +SKIP
100
"""

from __future__ import annotations

import anndata as ad
import numpy as np

from ..errors import check_positive_int
from ..pca import fit_pca, project
from ..references import _ReferenceGenerator
from ._common import dense


def _knn(Z_ref: np.ndarray, Z_query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.neighbors import NearestNeighbors

    k = min(k, Z_ref.shape[0])
    return NearestNeighbors(n_neighbors=k).fit(Z_ref).kneighbors(Z_query)


def _degree(Z: np.ndarray, bandwidth: float) -> np.ndarray:
    """Kernel density of each row: sum of ``exp(-(d / bandwidth)^2)`` over all rows.

    One global bandwidth (the median distance to the ``k``-th neighbour): an adaptive
    bandwidth would cancel the density differences this is meant to measure.
    """
    from sklearn.metrics import euclidean_distances

    D = euclidean_distances(Z)
    return np.exp(-((D / max(bandwidth, 1e-12)) ** 2)).sum(axis=1)


def _kernel(dist: np.ndarray) -> np.ndarray:
    """Gaussian kernel with each row's bandwidth = its largest neighbour distance."""
    sigma = np.maximum(dist[:, -1:], 1e-12)
    return np.exp(-((dist / sigma) ** 2))


class SugarGenerator(_ReferenceGenerator):
    """SUGAR: local-covariance Gaussians at density-equalising seeds, then one diffusion step.

    Parameters
    ----------
    k
        Neighbours for the local covariance and the density (SUGAR's default 5-10).
    n_pcs
        PCA components in which neighbours are searched.
    magic_k
        Neighbours of the diffusion step.
    equalize
        Density-equalising seed weights (SUGAR); ``False`` picks seeds uniformly.
    """

    def __init__(self, *, k: int = 10, n_pcs: int = 30, magic_k: int = 10,
                 equalize: bool = True, seed: int = 0):
        super().__init__()
        self.k = check_positive_int("k", k)
        self.n_pcs = check_positive_int("n_pcs", n_pcs)
        self.magic_k = check_positive_int("magic_k", magic_k)
        self.equalize = bool(equalize)
        self.seed = int(seed)
        self.conditional = False

    def fit(self, adata: ad.AnnData, label_key: str | None = None) -> "SugarGenerator":
        """Neighbourhoods and seed weights of the training cells (within each type)."""
        super().fit(adata, label_key)
        self.conditional = label_key is not None
        self._X = dense(adata.X)
        self._pca = fit_pca(self._X, self.n_pcs, seed=self.seed)
        self._Z = project(self._X, *self._pca)
        self._pools = {}
        for t in np.unique(self._labels):
            rows = np.flatnonzero(self._labels == t)
            if rows.size < 2:
                self._pools[t] = (rows, None, np.ones(1))
                continue
            dist, idx = _knn(self._Z[rows], self._Z[rows], self.k + 1)
            degree = _degree(self._Z[rows], bandwidth=float(np.median(dist[:, -1])))
            weight = degree.max() - degree if self.equalize else np.zeros_like(degree)
            weight = weight + 1e-3 * max(weight.max(), 1e-12) + (weight.max() == 0)
            self._pools[t] = (rows, idx, weight / weight.sum())
        return self

    def _diffuse(self, new: np.ndarray, real_rows: np.ndarray) -> np.ndarray:
        """One MAGIC step: kernel average of each new point's neighbours (real and new)."""
        pool = np.vstack([self._X[real_rows], new])
        Z = np.vstack([self._Z[real_rows], project(new, *self._pca)])
        dist, idx = _knn(Z, Z[len(real_rows):], self.magic_k + 1)
        W = _kernel(dist)
        W /= W.sum(axis=1, keepdims=True)
        return np.einsum("mk,mkg->mg", W, pool[idx])

    def _sample(self, types: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty((len(types), self._X.shape[1]))
        for t in np.unique(types):
            where = np.flatnonzero(types == t)
            rows, idx, weight = self._pools[t]
            seeds = rng.choice(len(rows), size=len(where), p=weight)
            if idx is None:
                out[where] = self._X[rows[seeds]]
                continue
            new = np.empty((len(where), self._X.shape[1]))
            for s in range(0, len(where), 256):  # bounded memory: 256 x (k+1) x genes
                sl = slice(s, s + 256)
                nb = self._X[rows[idx[seeds[sl]]]]
                dev = nb - nb.mean(axis=1, keepdims=True)
                w = rng.standard_normal(dev.shape[:2]) / np.sqrt(max(dev.shape[1] - 1, 1))
                new[sl] = self._X[rows[seeds[sl]]] + np.einsum("mk,mkg->mg", w, dev)
            out[where] = self._diffuse(new, rows)
        return np.maximum(out, 0.0).astype(np.float32)
