"""The space every comparison happens in: genes aligned by name, a PCA fitted on the pooled cells."""

from __future__ import annotations

import anndata as ad
import numpy as np
import scipy.sparse as sp

from ..errors import ParameterError, check_genes
from ..pca import fit_pca, project


def align_genes(adata: ad.AnnData, var_names, what: str = "data") -> ad.AnnData:
    """``adata`` with its genes in the order of ``var_names``.

    Returns ``adata`` itself when the genes already match, a view reordered by name when
    the same genes come in another order.

    Raises
    ------
    GeneMismatchError
        If the gene sets differ (:func:`lshgan.errors.check_genes`: the message counts and
        names missing, unknown and duplicated genes, and starts with ``what``).

    Examples
    --------
    >>> fake = align_genes(fake, test.var_names, "generated")     # doctest: +SKIP
    """
    order = check_genes(adata.var_names, var_names, what="reference genes", name=what, ordered=False)
    return adata if order is None else adata[:, order]


def _stack(A, B):
    """Rows of ``A`` then rows of ``B``; sparse if either is."""
    if sp.issparse(A) or sp.issparse(B):
        return sp.vstack([sp.csr_matrix(A), sp.csr_matrix(B)], format="csr")
    return np.vstack([np.asarray(A), np.asarray(B)])


def subsample_rows(X, max_cells: int, seed: int = 0):
    """``X`` itself (a matrix or an AnnData), or a seeded random ``max_cells`` of its rows
    (sorted) when it has more."""
    if X.shape[0] <= max_cells:
        return X
    rows = np.sort(np.random.default_rng(seed).choice(X.shape[0], max_cells, replace=False))
    return X[rows]


def pooled_pca(A, B, *, n_pcs: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores of two sets of cells on a PCA fitted on both together (dense or CSR input).

    The protocol's shared space: it is fitted on exactly the cells being compared, never on
    training cells (see :func:`rf_auc` for why).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a, b = pooled_pca(rng.random((20, 8)), rng.random((10, 8)), n_pcs=3)
    >>> a.shape, b.shape
    ((20, 3), (10, 3))
    """
    mean, comps = fit_pca(_stack(A, B), n_pcs, seed=seed)
    return project(A, mean, comps), project(B, mean, comps)


#: Type of every cell when no label column is given: all cells form one type.
ONE_TYPE = "all cells"


def real_types(adata: ad.AnnData, label_key: str | None) -> np.ndarray:
    """Cell type of each real cell (``obs[label_key]`` as strings), or one type for all.

    Raises
    ------
    ParameterError
        If ``label_key`` is not a column of ``adata.obs``.
    """
    if label_key is None:
        return np.full(adata.n_obs, ONE_TYPE, dtype=object)
    if label_key not in adata.obs.columns:
        raise ParameterError(f"label column {label_key!r} not found in the real cells' .obs")
    return adata.obs[label_key].astype(str).to_numpy(dtype=object)


def generated_types(generated: ad.AnnData, label_key: str | None, real: ad.AnnData, *,
                    scores: tuple[np.ndarray, np.ndarray] | None = None, n_pcs: int = 50,
                    seed: int = 0) -> np.ndarray:
    """Cell type of each generated cell, comparable with the types of the ``real`` cells.

    The generated set's own labels are used when every one of them is a type of the real
    cells: the ``label_key`` column, else ``obs['cell_type']`` (what
    :meth:`lshgan.LSHGAN.generate` and the references write).  Otherwise (an unconditional
    generator: ``"unlabelled"``) each generated cell takes the type of its nearest real cell
    in the pooled PCA space (``scores = (real scores, generated scores)`` when already
    computed, else :func:`pooled_pca` with ``n_pcs`` and ``seed``).  Without ``label_key``
    every cell is :data:`ONE_TYPE`.
    """
    if label_key is None:
        return np.full(generated.n_obs, ONE_TYPE, dtype=object)
    known = real_types(real, label_key)
    for key in dict.fromkeys((label_key, "cell_type")):
        if key in generated.obs.columns:
            types = generated.obs[key].astype(str).to_numpy(dtype=object)
            if set(types) <= set(known):
                return types
    from sklearn.neighbors import NearestNeighbors

    Zr, Zg = scores if scores is not None else pooled_pca(real.X, generated.X, n_pcs=n_pcs,
                                                          seed=seed)
    nearest = NearestNeighbors(n_neighbors=1).fit(Zr).kneighbors(Zg, return_distance=False)
    return known[nearest[:, 0]]
