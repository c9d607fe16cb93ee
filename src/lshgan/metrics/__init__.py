"""How realistic are generated cells?  The honest protocol, and the numbers it reports.

A generator is judged against a held-out **test** split it never saw, never against its own
training cells, and always with two complementary views:

* *realism* -- can a random forest tell generated cells from real test cells
  (:func:`rf_auc`, 0.5 = indistinguishable, 1 = trivially separable)?  How far apart are the
  two distributions (:func:`wasserstein`)?  Do per-gene summaries agree
  (:func:`gene_statistics`)?
* *novelty* -- are the generated cells new, or copies of training cells
  (:func:`dcr_ratio`: 0 = copies, about 1 = as far from the training cells as fresh real
  cells are)?

Copying training cells wins every realism metric and fails novelty; a smooth per-type
Gaussian wins the Wasserstein distance with blurry, averaged cells.  Always report AUC and
DCR together, next to the two reference generators of :mod:`lshgan.references`
(:func:`evaluate_generators` does this in one call).

All inputs are AnnData on the ``log2(1+x)`` scale of :func:`lshgan.preprocess`, with ``.X``
dense or CSR; distances are Euclidean in that space.  Sparse matrices are densified only in
row blocks or after subsampling.

Examples
--------
>>> from lshgan.metrics import evaluate_generators
>>> table = evaluate_generators({"lshgan": fake}, train=train, test=test,
...                             label_key="cell_type")        # doctest: +SKIP
>>> table[["rf_auc", "dcr"]]                                   # doctest: +SKIP
"""

from __future__ import annotations

from .classifier import rf_auc
from .distance import (_dense_blocks, _distance_blocks, dcr, dcr_ratio, nearest_distances,
                       pairwise_distances, wasserstein)
from .protocol import METRIC_KEYS, evaluate, evaluate_generators
from .genes import _gene_moments, _pearson, gene_statistics
from .space import _stack, align_genes, pooled_pca

__all__ = [
    "METRIC_KEYS", "align_genes", "dcr", "dcr_ratio", "evaluate", "evaluate_generators",
    "gene_statistics", "nearest_distances", "pairwise_distances", "pooled_pca", "rf_auc",
    "wasserstein",
]
