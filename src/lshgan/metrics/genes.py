"""Per-gene summaries (mean, variance, dropout) of real and generated cells."""

from __future__ import annotations

import anndata as ad
import numpy as np
import scipy.sparse as sp

from .space import align_genes


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; ``nan`` when either side is constant (undefined)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _gene_moments(X) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-gene mean, variance (ddof=0) and dropout rate (fraction of values <= 0)."""
    n = X.shape[0]
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64)
        mean = np.asarray(X.mean(axis=0)).ravel()
        var = np.asarray(X.multiply(X).mean(axis=0)).ravel() - mean**2
        expressed = np.asarray((X > 0).sum(axis=0)).ravel()
    else:
        X = np.asarray(X, dtype=np.float64)
        mean, var = X.mean(axis=0), X.var(axis=0)
        expressed = (X > 0).sum(axis=0)
    return mean, np.maximum(var, 0.0), 1.0 - expressed / n


def gene_statistics(real: ad.AnnData, generated: ad.AnnData) -> dict:
    """Per-gene summaries of real and generated cells, and how well they agree.

    A value ``<= 0`` on the ``log2(1+x)`` scale counts as a dropout (not expressed), so
    generators that emit small negative values are not credited with zero dropout.

    Returns
    -------
    dict with

    * ``mean_corr``, ``var_corr``, ``dropout_corr``: Pearson correlation, across genes, of the
      real and generated per-gene means, variances (ddof 0) and dropout rates (``nan`` when
      one side is constant, e.g. a generator that never outputs zeros);
    * ``real_mean``, ``real_var``, ``real_dropout``, ``generated_mean``, ``generated_var``,
      ``generated_dropout``: the per-gene arrays (for :func:`lshgan.plotting.plot_gene_statistics`;
      dropout against mean expression is the usual single-cell diagnostic).

    Examples
    --------
    >>> stats = gene_statistics(test, test)        # doctest: +SKIP
    >>> stats["mean_corr"]                         # doctest: +SKIP
    1.0
    """
    generated = align_genes(generated, real.var_names, "generated")
    rm, rv, rd = _gene_moments(real.X)
    gm, gv, gd = _gene_moments(generated.X)
    return {
        "mean_corr": _pearson(rm, gm), "var_corr": _pearson(rv, gv),
        "dropout_corr": _pearson(rd, gd),
        "real_mean": rm, "real_var": rv, "real_dropout": rd,
        "generated_mean": gm, "generated_var": gv, "generated_dropout": gd,
    }
