"""Count-level realism: do generated counts look like the held-out cells' counts?

For count data (:data:`lshgan.preprocess.COUNT_KINDS`) a model also generates integer counts
(``.layers['counts']``, :class:`lshgan.module.decoder.CountDecoder`).  Their realism is judged
on what a count-based pipeline (scanpy's QC, ``seurat_v3`` HVG, scVI) sees, always against
the real **test** cells' ``.layers['counts']``:

* per cell: the library size (total counts) and the detected genes (non-zero counts):
  two-sample Kolmogorov-Smirnov statistics ``counts_library_ks`` and ``counts_genes_ks``
  (0 = same distribution), and ``counts_library_ratio`` (median generated / median real);
* per gene: the Pearson correlations of the log mean (``counts_log_mean_corr``), the log
  variance (``counts_log_var_corr``) and the zero fraction (``counts_zero_frac_corr``, with
  its mean absolute difference ``counts_zero_frac_mae``);
* the mean-variance relation: the slope of log variance on log mean across genes
  (``counts_mv_slope``; Poisson 1, overdispersed data above 1) and the overdispersion
  ``phi`` of ``var = mean + phi * mean^2`` (``counts_dispersion``: the median over genes
  with mean above 0.1), each beside the test cells' own (``..._test``);
* gene-gene structure: the Pearson correlation between the real and the generated
  gene-gene correlation matrices of the test cells' ``n_top`` (200) most expressed genes,
  computed on ``log1p`` of counts normalised to the median library size
  (``counts_gene_corr``; upper triangles).

:func:`count_metrics` scores several generated sets with the ``copy`` reference (training
cells' counts, drawn as :class:`lshgan.references.CopyGenerator` draws them: same rows for
the same seed) and the ``real-vs-real`` control (:func:`lshgan.metrics.real_vs_real`), the
floor of every statistic at these sample sizes; :func:`with_count_metrics` adds them as
columns to the table of :func:`lshgan.metrics.evaluate_generators`.

Examples
--------
>>> from lshgan.metrics.counts import count_statistics
>>> count_statistics(test, model.generate(test.n_obs))["counts_library_ks"]   # doctest: +SKIP
0.08
"""

from __future__ import annotations

from typing import Mapping

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .genes import _gene_moments, _pearson
from .protocol import REAL_VS_REAL, real_vs_real, reference_cells
from .space import align_genes

#: The layer holding counts (scanpy's convention; what :func:`lshgan.preprocess` writes).
COUNTS_LAYER = "counts"
#: Keys of :func:`count_statistics`, in the order of :func:`count_metrics`' columns.
COUNT_KEYS = ("counts_library_ks", "counts_genes_ks", "counts_library_ratio",
              "counts_log_mean_corr", "counts_log_var_corr", "counts_zero_frac_corr",
              "counts_zero_frac_mae", "counts_mv_slope", "counts_mv_slope_test",
              "counts_dispersion", "counts_dispersion_test", "counts_gene_corr")
#: Genes whose gene-gene correlations are compared (the test cells' most expressed).
N_TOP_GENES = 200


def has_counts(adata: ad.AnnData) -> bool:
    """Whether ``adata`` carries ``.layers['counts']``."""
    return COUNTS_LAYER in adata.layers


def counts_matrix(adata: ad.AnnData):
    """``.layers['counts']`` as float64 CSR or dense array."""
    C = adata.layers[COUNTS_LAYER]
    return sp.csr_matrix(C, dtype=np.float64) if sp.issparse(C) else np.asarray(C, dtype=np.float64)


def cell_totals(C) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: library size (total counts) and detected genes (non-zero counts)."""
    if sp.issparse(C):
        C = sp.csr_matrix(C)
        C.eliminate_zeros()
        return np.asarray(C.sum(axis=1)).ravel(), np.diff(C.indptr).astype(np.float64)
    C = np.asarray(C)
    return C.sum(axis=1), (C > 0).sum(axis=1).astype(np.float64)


def mean_variance(mean: np.ndarray, var: np.ndarray) -> dict:
    """Slope of log variance on log mean (genes with both > 0) and the median
    overdispersion ``(var - mean) / mean^2`` of genes with mean above 0.1."""
    ok = (mean > 0) & (var > 0)
    slope = (float(np.polyfit(np.log(mean[ok]), np.log(var[ok]), 1)[0])
             if ok.sum() >= 3 and np.ptp(np.log(mean[ok])) > 0 else float("nan"))
    high = mean > 0.1
    phi = float(np.median((var[high] - mean[high]) / mean[high] ** 2)) if high.any() else float("nan")
    return {"slope": slope, "dispersion": phi}


def _log_normalised(C, target: float) -> np.ndarray:
    """``log1p`` of dense counts scaled to ``target`` per cell (scanpy's normalise + log1p)."""
    C = C.toarray() if sp.issparse(C) else np.asarray(C, dtype=np.float64)
    totals = C.sum(axis=1, keepdims=True)
    return np.log1p(C / np.maximum(totals, 1.0) * target)


def _upper(M: np.ndarray) -> np.ndarray:
    return M[np.triu_indices_from(M, k=1)]


def gene_correlations(C, genes: np.ndarray, target: float) -> np.ndarray:
    """Gene-gene Pearson correlations (upper triangle) of ``genes``, on log-normalised counts;
    ``nan`` for a gene that is constant."""
    sub = C[:, genes]
    L = _log_normalised(sub, target)
    with np.errstate(invalid="ignore", divide="ignore"):
        R = np.corrcoef(L, rowvar=False)
    return _upper(np.atleast_2d(R))


def count_statistics(real: ad.AnnData, generated: ad.AnnData, *, n_top: int = N_TOP_GENES) -> dict:
    """Count-level agreement of ``generated`` with ``real`` (both with ``.layers['counts']``).

    Returns
    -------
    dict with the keys of :data:`COUNT_KEYS` (see the module doc), plain floats, plus the
    arrays the picture needs (``real_library``, ``generated_library``, ``real_genes``,
    ``generated_genes``, ``real_mean``, ``real_var``, ``real_zero``, ``generated_mean``,
    ``generated_var``, ``generated_zero``, ``real_gene_corr``, ``generated_gene_corr``).
    """
    from scipy.stats import ks_2samp

    generated = align_genes(generated, real.var_names, "generated")
    Cr, Cg = counts_matrix(real), counts_matrix(generated)
    lib_r, genes_r = cell_totals(Cr)
    lib_g, genes_g = cell_totals(Cg)
    mr, vr, zr = _gene_moments(Cr)  # mean, variance, zero fraction per gene
    mg, vg, zg = _gene_moments(Cg)
    eps = 0.5 / max(real.n_obs, 1)  # half a count in all real cells
    mv_r, mv_g = mean_variance(mr, vr), mean_variance(mg, vg)
    top = np.argsort(-mr, kind="stable")[:min(n_top, real.n_vars)]
    target = float(np.median(lib_r)) if lib_r.size else 1.0
    cr, cg = gene_correlations(Cr, top, target), gene_correlations(Cg, top, target)
    both = np.isfinite(cr) & np.isfinite(cg)
    return {
        "counts_library_ks": float(ks_2samp(lib_r, lib_g).statistic),
        "counts_genes_ks": float(ks_2samp(genes_r, genes_g).statistic),
        "counts_library_ratio": float(np.median(lib_g) / max(np.median(lib_r), 1e-12)),
        "counts_log_mean_corr": _pearson(np.log(mr + eps), np.log(mg + eps)),
        "counts_log_var_corr": _pearson(np.log(vr + eps), np.log(vg + eps)),
        "counts_zero_frac_corr": _pearson(zr, zg),
        "counts_zero_frac_mae": float(np.abs(zr - zg).mean()),
        "counts_mv_slope": mv_g["slope"], "counts_mv_slope_test": mv_r["slope"],
        "counts_dispersion": mv_g["dispersion"], "counts_dispersion_test": mv_r["dispersion"],
        "counts_gene_corr": _pearson(cr[both], cg[both]) if both.sum() > 2 else float("nan"),
        "real_library": lib_r, "generated_library": lib_g,
        "real_genes": genes_r, "generated_genes": genes_g,
        "real_mean": mr, "real_var": vr, "real_zero": zr,
        "generated_mean": mg, "generated_var": vg, "generated_zero": zg,
        "real_gene_corr": cr, "generated_gene_corr": cg,
    }


def _as_counts(adata: ad.AnnData) -> ad.AnnData:
    """``adata`` with its counts as ``.X`` (for the reference generators)."""
    return ad.AnnData(X=adata.layers[COUNTS_LAYER], obs=adata.obs.copy(), var=adata.var.copy())


def reference_counts(train: ad.AnnData, test: ad.AnnData, *, label_key: str | None = None,
                     seed: int = 0) -> dict[str, ad.AnnData]:
    """The count sets of the ``copy`` reference and the ``real-vs-real`` control, as many
    cells as ``test`` (in its types), drawn from ``train``'s counts exactly as
    :func:`lshgan.metrics.evaluate_generators` draws its rows for the same ``seed``."""
    source = _as_counts(train)
    copy = reference_cells("copy", source, test, label_key=label_key, seed=seed)
    control = real_vs_real(source, test, label_key=label_key, seed=seed)
    out = {}
    for name, cells in (("copy", copy), (REAL_VS_REAL, control)):
        cells = cells.copy()
        cells.layers[COUNTS_LAYER] = cells.X
        out[name] = cells
    return out


def count_metrics(generators: Mapping[str, ad.AnnData], *, train: ad.AnnData, test: ad.AnnData,
                  label_key: str | None = None, seed: int = 0, include_references: bool = True,
                  n_top: int = N_TOP_GENES) -> pd.DataFrame:
    """:func:`count_statistics` of every generated set that has counts, then (with
    ``include_references`` and counts in ``train``) of ``copy`` and ``real-vs-real``.

    Returns a DataFrame indexed by generator with the columns :data:`COUNT_KEYS`; empty
    when ``test`` has no counts.
    """
    rows: dict[str, dict] = {}
    if has_counts(test):
        sets = {name: cells for name, cells in generators.items() if has_counts(cells)}
        if include_references and has_counts(train):
            sets.update(reference_counts(train, test, label_key=label_key, seed=seed))
        for name, cells in sets.items():
            stats = count_statistics(test, cells, n_top=n_top)
            rows[name] = {key: stats[key] for key in COUNT_KEYS}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(COUNT_KEYS))
    table.index.name = "generator"
    return table


def with_count_metrics(table: pd.DataFrame, generated: ad.AnnData | Mapping[str, ad.AnnData], *,
                       train: ad.AnnData, test: ad.AnnData, label_key: str | None = None,
                       seed: int = 0) -> pd.DataFrame:
    """``table`` (of :func:`lshgan.metrics.evaluate_generators`) with the count columns of
    :func:`count_metrics` joined on (``nan`` for a row without counts, e.g. ``gaussian``);
    unchanged when ``test`` has no ``.layers['counts']``.  ``generated``: the ``lshgan``
    cells, or name -> cells."""
    if not has_counts(test):
        return table
    sets = dict(generated) if isinstance(generated, Mapping) else {"lshgan": generated}
    include = any(name in table.index for name in ("copy", REAL_VS_REAL))
    counts = count_metrics(sets, train=train, test=test, label_key=label_key, seed=seed,
                           include_references=include)
    counts = counts.loc[[name for name in counts.index if name in table.index]]
    if counts.empty:
        return table
    columns = [c for c in table.columns if c != "reference"]
    joined = table[columns].join(counts, how="left")
    if "reference" in table.columns:
        joined["reference"] = table["reference"]
    return joined
