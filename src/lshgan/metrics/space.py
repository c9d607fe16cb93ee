"""The space every comparison happens in: genes aligned by name, a PCA fitted on the pooled cells."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import GeneMismatchError
from ..references import fit_pca, project


def align_genes(adata: ad.AnnData, var_names, what: str = "data") -> ad.AnnData:
    """``adata`` with its genes in the order of ``var_names``.

    Returns ``adata`` itself when the genes already match, a view reordered by name when
    the same genes come in another order.

    Raises
    ------
    GeneMismatchError
        If the gene sets differ (the message counts and names missing and extra genes,
        calling the dataset ``what``).

    Examples
    --------
    >>> fake = align_genes(fake, test.var_names, "generated")     # doctest: +SKIP
    """
    var_names = pd.Index(var_names).astype(str)
    names = pd.Index(adata.var_names.astype(str))
    if names.equals(var_names):
        return adata
    missing, extra = var_names.difference(names), names.difference(var_names)
    if len(missing) or len(extra) or names.has_duplicates:
        raise GeneMismatchError(
            f"{what} has other genes than the reference: {len(missing)} missing "
            f"(e.g. {', '.join(map(str, missing[:3])) or '-'}), {len(extra)} extra "
            f"(e.g. {', '.join(map(str, extra[:3])) or '-'})"
        )
    return adata[:, names.get_indexer(var_names)]


def _stack(A, B):
    """Rows of ``A`` then rows of ``B``; sparse if either is."""
    if sp.issparse(A) or sp.issparse(B):
        return sp.vstack([sp.csr_matrix(A), sp.csr_matrix(B)], format="csr")
    return np.vstack([np.asarray(A), np.asarray(B)])


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
