"""Gene selection on real + generated cells, then SC3-like clustering (the paper's Table 3).

For each gene-selection method and generator: the real training cells are stacked with
``augment_ratio x p`` generated cells (p = number of genes; the authors' code generates
``ratio x p`` cells and stacks them on the real ones), the method picks ``n_selected`` genes
on that stack, and the *real* cells alone are clustered on those genes
(:func:`~lshgan.paper.clustering.consensus_clustering`, k = number of labelled types);
the adjusted Rand index against the labels is the score.  "without model" selects the
genes on the real training cells alone.

The clustered cells are all real cells (train and test) or, above ``max_cluster_cells``, a
fixed stratified subsample of them (SC3 itself switches to a subsample above 5000 cells;
the cap here is for time).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import adjusted_rand_score

from ..baselines._common import dense
from .clustering import consensus_clustering
from .config import Budget
from .data import PreparedData
from .selection import METHODS, select_genes

WITHOUT = "without model"


def cluster_cells(data: PreparedData, max_cells: int, seed: int = 0) -> np.ndarray:
    """Indices of the real cells to cluster: all, or a stratified subsample of ``max_cells``."""
    n = data.full.n_obs
    if n <= max_cells:
        return np.arange(n)
    from sklearn.model_selection import train_test_split

    labels = data.full.obs[data.label_key].astype(str).to_numpy()
    counts = dict(zip(*np.unique(labels, return_counts=True)))
    strat = np.array([lab if counts[lab] > 1 else "_rare" for lab in labels])
    keep, _ = train_test_split(np.arange(n), train_size=max_cells, random_state=seed,
                               stratify=strat)
    return np.sort(keep)


def selection_ari(train_X: np.ndarray, generated_X: np.ndarray | None, cluster_X: np.ndarray,
                  labels: np.ndarray, *, method: str, n_selected: int, seed: int) -> float:
    """ARI of clustering ``cluster_X`` on the genes ``method`` selects on train (+ generated)."""
    stack = train_X if generated_X is None or len(generated_X) == 0 else np.vstack(
        [train_X, generated_X])
    genes = select_genes(stack, method, n_selected)
    k = len(np.unique(labels))
    return float(adjusted_rand_score(labels, consensus_clustering(cluster_X[:, genes], k,
                                                                  seed=seed)))


def run_gene_selection(data: PreparedData, sets: dict, budget: Budget, *,
                       log: Callable[[str], None] = print) -> list[dict]:
    """Table 3 and the sample-size sweep; one row per (method, generator, ratio, seed).

    ``sets[generator][seed].augment`` are the generated cells (see
    :func:`lshgan.paper.realism.run_realism`).  Rows have ``kind`` = ``"table"`` (ratio
    ``augment_ratio``, every generator and "without model") or ``"sweep"``.
    """
    rows = []
    idx = cluster_cells(data, budget.max_cluster_cells)
    cluster_X = dense(data.full.X)[idx]
    labels = data.full.obs[data.label_key].astype(str).to_numpy()[idx]
    train_X = dense(data.train.X)
    p = data.full.n_vars
    n_sel = min(budget.n_selected, p)

    def one(method, gen, ratio, seed, kind):
        n_gen = int(round(ratio * p))
        X = None if gen == WITHOUT else dense(sets[gen][seed].augment.X[:n_gen])
        ari = selection_ari(train_X, X, cluster_X, labels, method=method, n_selected=n_sel,
                            seed=seed)
        rows.append({"dataset": data.name, "kind": kind, "method": method, "generator": gen,
                     "ratio": ratio if gen != WITHOUT else 0.0, "seed": seed, "ari": ari,
                     "n_generated": 0 if X is None else len(X), "n_clustered": len(idx)})
        return ari

    for method in METHODS:
        for seed in budget.seeds:
            base = one(method, WITHOUT, 0.0, seed, "table")
            line = [f"without {base:.2f}"]
            for gen in sets:
                if seed in sets[gen]:
                    ari = one(method, gen, budget.augment_ratio, seed, "table")
                    line.append(f"{gen} {ari:.2f}")
            log(f"  {method} seed {seed}: " + ", ".join(line))
    for gen in budget.sweep_generators:
        if gen not in sets:
            continue
        for method in budget.sweep_methods:
            for ratio in budget.sweep_ratios:
                for seed in budget.seeds:
                    if seed in sets[gen]:
                        one(method, gen, ratio, seed, "sweep")
    return rows
