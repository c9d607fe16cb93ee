"""How realistic are generated cells?  The honest protocol, and the numbers it reports.

A generator is judged against a held-out **test** split it never saw, never against its own
training cells, and always with complementary views:

* *realism* -- can a classifier tell generated cells from real test cells (:func:`rf_auc`,
  :func:`knn_auc`; 0.5 = indistinguishable, 1 = trivially separable; the published
  GRouNdGAN variant is :func:`groundgan_protocol`)?  How far apart are the two
  distributions (:func:`wasserstein`, :func:`mmd`)?  Do per-gene summaries agree
  (:func:`gene_statistics`), and per-cell ones: detected genes, total, level and spread of
  the detected values (:func:`cell_statistics`)?
* *novelty* -- are the generated cells new, or copies of training cells
  (:func:`dcr_ratio`: 0 = copies, about 1 = as far from the training cells as fresh real
  cells are)?  On the cell states: :func:`dcr` with ``space="pca"``, and
  :func:`authenticity`, which tells copies from cells in dense regions.
* *diversity* -- do the generated cells cover the real ones' states, or collapse onto the
  typical cells of each type (:func:`prdc`: recall and coverage;
  :func:`substate_coverage`: sub-states of each type reached)?
* *identity* -- does each generated type keep its marker genes
  (:func:`marker_preservation`)?

Copying training cells wins every realism metric and fails novelty; a smooth per-type
Gaussian wins the Wasserstein distance with blurry, averaged cells.  Always report AUC and
DCR together, next to the two reference generators of :mod:`lshgan.references` and the
real-vs-real control (:func:`evaluate_generators` does this in one call).

Modules: :mod:`~lshgan.metrics.space` (gene alignment, pooled PCA, cell types),
:mod:`~lshgan.metrics.classifier`, :mod:`~lshgan.metrics.distance` (exact distances, OT,
MMD, DCR), :mod:`~lshgan.metrics.genes`, :mod:`~lshgan.metrics.cells` (per-cell summaries),
:mod:`~lshgan.metrics.coverage`, :mod:`~lshgan.metrics.markers`,
:mod:`~lshgan.metrics.protocol` (:func:`evaluate`, :func:`evaluate_generators`),
:mod:`~lshgan.metrics.counts` (count data: library sizes, detected genes, per-gene count
moments, gene-gene correlations of ``.layers['counts']``).

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

from .cells import CELL_KEYS, CELL_SUMMARIES, cell_statistics, cell_summaries
from .classifier import CLASSIFIERS, classifier_aucs, groundgan_protocol, knn_auc, rf_auc
from .counts import COUNT_KEYS, count_metrics, count_statistics, with_count_metrics
from .coverage import (knn_radii, n_substates, prdc, prdc_scores, substate_coverage,
                       substate_scores, substates)
from .distance import (_dense_blocks, _distance_blocks, authenticity, dcr, dcr_ratio,
                       earth_movers, mmd, mmd_rbf, nearest_distances, pairwise_distances,
                       wasserstein)
from .genes import _gene_moments, _pearson, gene_statistics
from .markers import marker_preservation, type_log_fold_changes
from .protocol import (METRIC_KEYS, PROTOCOL_KEYS, REAL_VS_REAL, evaluate, evaluate_generators,
                       real_vs_real, reference_cells)
from .space import ONE_TYPE, _stack, align_genes, generated_types, pooled_pca, real_types

__all__ = [
    "CELL_KEYS", "CELL_SUMMARIES", "CLASSIFIERS", "COUNT_KEYS", "METRIC_KEYS", "ONE_TYPE",
    "PROTOCOL_KEYS", "REAL_VS_REAL", "align_genes", "authenticity", "cell_statistics",
    "cell_summaries", "classifier_aucs", "count_metrics", "count_statistics",
    "dcr", "dcr_ratio", "earth_movers", "evaluate", "evaluate_generators", "gene_statistics",
    "generated_types", "groundgan_protocol", "knn_auc", "knn_radii", "marker_preservation",
    "mmd", "mmd_rbf", "n_substates", "nearest_distances", "pairwise_distances",
    "pooled_pca", "prdc", "prdc_scores", "real_types", "real_vs_real", "reference_cells", "rf_auc",
    "substate_coverage", "substate_scores", "substates", "type_log_fold_changes",
    "wasserstein", "with_count_metrics",
]
