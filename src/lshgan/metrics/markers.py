"""Marker preservation: does each generated cell type keep its real marker genes?"""

from __future__ import annotations

import anndata as ad
import numpy as np
import scipy.sparse as sp

from ..errors import check_positive_int
from .genes import _pearson
from .space import align_genes, generated_types, real_types


def type_log_fold_changes(X, types: np.ndarray, *, min_cells: int = 5) -> dict[str, np.ndarray]:
    """Per-gene log-fold change of each type against all other cells (one vs rest).

    On the ``log2(1+x)`` scale the difference of means is a log2 fold change: mean of the
    type's cells minus mean of every other cell.  Only types with at least ``min_cells``
    cells (and at least one other cell) are returned.  ``X`` may be dense or CSR.

    Examples
    --------
    >>> X = np.array([[3.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> lfc = type_log_fold_changes(X, np.array(["a", "a", "b", "b"]), min_cells=2)
    >>> lfc["a"].tolist(), lfc["b"].tolist()
    ([3.0, -1.0], [-3.0, 1.0])
    """
    types = np.asarray(types).astype(str)
    names, codes = np.unique(types, return_inverse=True)
    counts = np.bincount(codes, minlength=len(names))
    onehot = sp.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))),
                           shape=(len(names), len(codes)))
    sums = onehot @ (X if sp.issparse(X) else np.asarray(X, np.float64))
    sums = np.asarray(sums.toarray() if sp.issparse(sums) else sums, np.float64)
    total, n = sums.sum(axis=0), len(codes)
    return {str(t): sums[i] / counts[i] - (total - sums[i]) / (n - counts[i])
            for i, t in enumerate(names) if counts[i] >= min_cells and n > counts[i]}


def marker_scores(real_X, real_type: np.ndarray, generated_X, generated_type: np.ndarray, *,
                  n_top: int = 50, min_cells: int = 5) -> dict:
    """:func:`marker_preservation` on matrices and types (rows of ``real_X`` / ``generated_X``)."""
    n_top = check_positive_int("n_top", n_top)
    real_lfc = type_log_fold_changes(real_X, real_type, min_cells=min_cells)
    gen_lfc = type_log_fold_changes(generated_X, generated_type, min_cells=min_cells)
    per_type = {}
    for t in sorted(set(real_lfc) & set(gen_lfc)):
        r, g = real_lfc[t], gen_lfc[t]
        top = min(n_top, r.size)
        top_r = np.argsort(-r, kind="stable")[:top]
        top_g = np.argsort(-g, kind="stable")[:top]
        per_type[t] = {"lfc_corr": _pearson(r, g),
                       "top_overlap": float(np.intersect1d(top_r, top_g).size / top)}
    if not per_type:
        return {"marker_lfc_corr": float("nan"), "marker_top50_overlap": float("nan"),
                "per_type": per_type}
    corrs = [v["lfc_corr"] for v in per_type.values() if np.isfinite(v["lfc_corr"])]
    return {"marker_lfc_corr": float(np.mean(corrs)) if corrs else float("nan"),
            "marker_top50_overlap": float(np.mean([v["top_overlap"] for v in per_type.values()])),
            "per_type": per_type}


def marker_preservation(real: ad.AnnData, generated: ad.AnnData, *, label_key: str,
                        types: np.ndarray | None = None, n_top: int = 50,
                        min_cells: int = 5) -> dict:
    """Agreement of each type's marker genes between real (held-out) and generated cells.

    For each type with at least ``min_cells`` cells on both sides, the log-fold change of
    every gene (mean ``log2(1+x)`` of the type minus mean of all other cells,
    :func:`type_log_fold_changes`) is computed in the real and in the generated cells; the
    type scores the Pearson correlation of the two vectors and the overlap
    ``|top_real & top_generated| / n_top`` of their ``n_top`` most up-regulated genes.
    Both are averaged over types (unweighted: a rare type's markers count as much as a
    common one's).  A generator that keeps cell-type identity but scrambles which genes
    mark it scores about ``n_top / n_genes`` overlap and ~0 correlation.

    Parameters
    ----------
    real, generated
        Cells with the same genes.
    label_key
        Cell-type column of ``real.obs``.  Generated types come from ``types`` when given,
        else as in :func:`~lshgan.metrics.space.generated_types` (the generated set's own
        labels, or those of the nearest real cells for an unconditional generator).
    types
        Type of each generated cell.
    n_top, min_cells
        Size of the top-gene lists; smallest type kept.

    Returns
    -------
    dict with ``marker_lfc_corr``, ``marker_top50_overlap`` (``nan`` when no type qualifies,
    e.g. a single type) and ``per_type`` (type -> ``lfc_corr``, ``top_overlap``).

    Examples
    --------
    >>> marker_preservation(test, fake, label_key="cell_type")["marker_top50_overlap"]  # doctest: +SKIP
    0.74
    """
    generated = align_genes(generated, real.var_names, "generated")
    types = generated_types(generated, label_key, real) if types is None else np.asarray(types)
    return marker_scores(real.X, real_types(real, label_key), generated.X, types, n_top=n_top,
                         min_cells=min_cells)
