"""Per-cell summaries (detected genes, total, level and spread of the detected values) of
real and generated cells.

The forest of :func:`~lshgan.metrics.rf_auc` works on principal components, which weigh a
cell's many genes together; properties of the cell as a whole can differ while it sees
little.  Simulation benchmarks check them directly: splatter's ``compareSCEs`` (library
size and zeros per cell), SimBench (Cao et al., Nature Communications 2021: library size,
fraction of zeros per cell, cell-cell correlation).  On the ``log2(1+x)`` scale every metric
reads, four numbers per cell:

* ``detected``: the fraction of genes with a value above 0;
* ``total``: the sum of the cell's values;
* ``level_mean``, ``level_sd``: the mean and the standard deviation of its non-zero values
  (how high, and how spread, the detected genes' levels are).

:func:`cell_statistics` compares each summary's distribution between real and generated
cells (two-sample Kolmogorov-Smirnov statistic: 0 = the same distribution) and asks a
random forest how well the four numbers together tell the cells apart (``cells_auc``, the
protocol of :func:`~lshgan.metrics.rf_auc` on these four features instead of 50 principal
components; 0.5 = indistinguishable).  Why: a decoder that gives each gene independent
noise makes cells whose summaries are too alike (Pollen, the training cells' own states
decoded: the spread of the detected levels alone separates them at AUC 0.77, while the
forest on principal components is at 0.58-0.72; see docs/realism.md).
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import scipy.sparse as sp

from .classifier import MAX_CELLS_PER_CLASS, _balanced_rows, _cells_per_class
from .space import align_genes

#: The per-cell summaries of :func:`cell_summaries`, in the order of :func:`cell_statistics`' keys.
CELL_SUMMARIES = ("detected", "total", "level_mean", "level_sd")

#: Keys of :func:`cell_statistics`' scores (the columns it adds to every evaluation).
CELL_KEYS = ("cells_auc", *(f"cells_ks_{name}" for name in CELL_SUMMARIES))

#: matrix entries per dense block when summarising a matrix (32 MiB as float64)
_BLOCK_ENTRIES = 2**22


def cell_summaries(X) -> dict[str, np.ndarray]:
    """The four per-cell summaries of :data:`CELL_SUMMARIES` of ``X`` (cells x genes,
    dense or CSR, ``log2(1+x)`` scale; values <= 0 count as not detected), float64
    arrays.  A cell that detects no gene gets level mean and spread 0.

    Examples
    --------
    >>> s = cell_summaries(np.array([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]))
    >>> s["detected"].round(3).tolist(), s["level_sd"].tolist()
    ([0.667, 1.0], [1.0, 0.0])
    """
    n, n_genes = X.shape
    out = {name: np.zeros(n) for name in CELL_SUMMARIES}
    step = max(1, _BLOCK_ENTRIES // max(n_genes, 1))
    for start in range(0, n, step):
        block = X[start:start + step]
        block = block.toarray() if sp.issparse(block) else np.asarray(block)
        block = np.where(block > 0, block.astype(np.float64), 0.0)
        count = (block > 0).sum(axis=1)
        total = block.sum(axis=1)
        mean = total / np.maximum(count, 1)
        second = (block ** 2).sum(axis=1) / np.maximum(count, 1)
        rows = slice(start, start + block.shape[0])
        out["detected"][rows] = count / max(n_genes, 1)
        out["total"][rows] = total
        out["level_mean"][rows] = mean
        out["level_sd"][rows] = np.sqrt(np.maximum(second - mean ** 2, 0.0))
    return out


def cell_statistics(real: ad.AnnData, generated: ad.AnnData, *, seed: int = 0,
                    n_splits: int = 5, n_estimators: int = 200, n_jobs: int = -1) -> dict:
    """How the per-cell summaries of generated cells compare with real (held-out) cells.

    Returns
    -------
    dict with

    * ``cells_auc``: 5-fold cross-validated ROC AUC of a random forest on the four summaries
      (equal class sizes, at most :data:`~lshgan.metrics.classifier.MAX_CELLS_PER_CLASS`
      cells per class, seeded subsample as :func:`~lshgan.metrics.rf_auc`);
    * ``cells_ks_detected``, ``cells_ks_total``, ``cells_ks_level_mean``,
      ``cells_ks_level_sd``: the Kolmogorov-Smirnov statistic of each summary, all cells;
    * ``real_<summary>``, ``generated_<summary>``: the per-cell arrays (for
      :func:`lshgan.plotting.plot_cell_statistics`).

    Raises
    ------
    GeneMismatchError
        If the two sets do not hold the same genes.
    ParameterError
        With fewer than 2 cells on a side.

    Examples
    --------
    >>> st = cell_statistics(test, model.generate(test.n_obs))   # doctest: +SKIP
    >>> st["cells_auc"], st["cells_ks_level_sd"]                  # doctest: +SKIP
    """
    from scipy.stats import ks_2samp
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    generated = align_genes(generated, real.var_names, "generated")
    n = min(_cells_per_class(real, generated, "cell_statistics", 2), MAX_CELLS_PER_CLASS)
    rs, gs = cell_summaries(real.X), cell_summaries(generated.X)
    result = {f"cells_ks_{name}": float(ks_2samp(rs[name], gs[name]).statistic)
              for name in CELL_SUMMARIES}
    ri, gi = _balanced_rows(real, generated, n, seed)
    F = np.vstack([np.column_stack([rs[k][ri] for k in CELL_SUMMARIES]),
                   np.column_stack([gs[k][gi] for k in CELL_SUMMARIES])])
    y = np.repeat([1, 0], n)
    cv = StratifiedKFold(n_splits=min(n_splits, n), shuffle=True, random_state=seed)
    forest = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=n_jobs)
    auc = float(cross_val_score(forest, F, y, cv=cv, scoring="roc_auc").mean())
    result = {"cells_auc": auc, **result}
    result.update({f"real_{k}": rs[k] for k in CELL_SUMMARIES})
    result.update({f"generated_{k}": gs[k] for k in CELL_SUMMARIES})
    return result
