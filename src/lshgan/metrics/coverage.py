"""Diversity: do generated cells cover the real cells' states, or collapse onto a few?

Realism metrics (:func:`~lshgan.metrics.rf_auc`, Wasserstein) can be fooled by a generator
that draws only the most typical cells of each type.  These metrics ask the reverse
question, in the pooled PCA space of the protocol (:func:`~lshgan.metrics.pooled_pca`):

* :func:`prdc`: precision, recall, density and coverage of Naeem et al. (2020), from k-NN
  balls around real and generated cells;
* :func:`substate_coverage`: each cell type's real cells are split into sub-states
  (k-means); how many sub-states do the generated cells of that type reach?
"""

from __future__ import annotations

import anndata as ad
import numpy as np

from ..errors import ParameterError, check_positive_int
from .distance import _distance_blocks
from .space import align_genes, generated_types, pooled_pca, real_types


def knn_radii(Z: np.ndarray, k: int = 5) -> np.ndarray:
    """Distance from each row of ``Z`` to its ``k``-th nearest other row (``k`` capped at n-1).

    Examples
    --------
    >>> knn_radii(np.array([[0.0], [1.0], [3.0]]), k=1).tolist()
    [1.0, 1.0, 2.0]
    """
    from sklearn.neighbors import NearestNeighbors

    Z = np.asarray(Z, np.float64)
    if len(Z) < 2:
        return np.zeros(len(Z))
    k = min(check_positive_int("k", k), len(Z) - 1)
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z)
    return dist[:, k]  # column 0 is the row itself (or an exact duplicate, also at 0)


def prdc_scores(Zr: np.ndarray, Zg: np.ndarray, k: int = 5) -> dict:
    """Precision, recall, density and coverage of generated rows ``Zg`` against real rows ``Zr``.

    See :func:`prdc`; this is the computation on coordinates.  The distance matrix is walked
    in blocks, never held whole.  ``radii`` (each real row's k-NN radius) is returned too.
    """
    Zr, Zg = np.asarray(Zr, np.float64), np.asarray(Zg, np.float64)
    if len(Zr) < 2 or len(Zg) < 2:
        nan = float("nan")
        return {"precision": nan, "recall": nan, "density": nan, "coverage": nan,
                "radii": knn_radii(Zr, k)}
    k = check_positive_int("k", k)
    r_real, r_gen = knn_radii(Zr, k), knn_radii(Zg, k)
    balls_holding = np.zeros(len(Zg))          # real balls holding each generated cell
    in_generated_ball = np.zeros(len(Zr), bool)  # real cell inside some generated ball
    nearest_generated = np.full(len(Zr), np.inf)
    for rows, cols, D in _distance_blocks(Zg, Zr):
        balls_holding[rows] += (D <= r_real[cols]).sum(axis=1)
        in_generated_ball[cols] |= (D <= r_gen[rows, None]).any(axis=0)
        nearest_generated[cols] = np.minimum(nearest_generated[cols], D.min(axis=0))
    return {
        "precision": float(np.mean(balls_holding > 0)),
        "recall": float(np.mean(in_generated_ball)),
        "density": float(balls_holding.sum() / (min(k, len(Zr) - 1) * len(Zg))),
        "coverage": float(np.mean(nearest_generated <= r_real)),
        "radii": r_real,
    }


def prdc(real: ad.AnnData, generated: ad.AnnData, *, k: int = 5, n_pcs: int = 50,
         seed: int = 0) -> dict:
    """Precision, recall, density and coverage (Naeem et al. 2020).

    M. F. Naeem, S. J. Oh, Y. Uh, Y. Choi, J. Yoo, "Reliable fidelity and diversity metrics
    for generative models", ICML 2020 (arXiv:2002.09797).  With ``B(x, r)`` the ball of
    radius ``r`` around ``x``, ``NND_k(x)`` the distance from ``x`` to its ``k``-th nearest
    neighbour within its own set, real cells ``X_1..X_N`` (the held-out test cells) and
    generated cells ``Y_1..Y_M``:

    * precision = ``1/M sum_j 1[Y_j in some B(X_i, NND_k(X_i))]``: generated cells that fall
      on the real manifold (fidelity);
    * recall = ``1/N sum_i 1[X_i in some B(Y_j, NND_k(Y_j))]``: real cells that fall on the
      generated manifold (diversity; Kynkaenniemi et al. 2019);
    * density = ``1/(k M) sum_j sum_i 1[Y_j in B(X_i, NND_k(X_i))]``: like precision but
      counting how many real balls hold each generated cell (about 1 for a matching
      distribution, above 1 when generated cells crowd the dense regions; robust to real
      outliers);
    * coverage = ``1/N sum_i 1[some Y_j in B(X_i, NND_k(X_i))]``: real cells whose
      neighbourhood holds a generated cell (diversity, robust to generated outliers;
      ``1 - 2^-k``, about 0.97 at ``k=5``, for identical distributions in expectation).

    Distances are Euclidean in the scores of a PCA fitted on the pooled cells (``n_pcs``
    components, the space of :func:`~lshgan.metrics.rf_auc`).  A generator that collapses
    onto the centre of each type keeps a fair precision but loses recall and coverage.

    Returns
    -------
    dict with ``precision``, ``recall``, ``density``, ``coverage`` (``nan`` with fewer than 2
    cells on a side).

    Examples
    --------
    >>> prdc(test, fake)["coverage"]      # doctest: +SKIP
    0.93
    """
    generated = align_genes(generated, real.var_names, "generated")
    Zr, Zg = pooled_pca(real.X, generated.X, n_pcs=n_pcs, seed=seed)
    scores = prdc_scores(Zr, Zg, k)
    return {key: scores[key] for key in ("precision", "recall", "density", "coverage")}


def n_substates(n_cells: int) -> int:
    """How many sub-states a type of ``n_cells`` real cells is split into.

    ``round(sqrt(n / 2))`` (a common rule of thumb for k-means), but never so many that a
    sub-state averages fewer than 10 cells: 1 below 20 cells, 7 for 100, 22 for 1000.

    Examples
    --------
    >>> [n_substates(n) for n in (5, 19, 20, 50, 100, 1000)]
    [1, 1, 2, 5, 7, 22]
    """
    return int(max(1, min(round(np.sqrt(n_cells / 2)), n_cells // 10)))


def substates(Z: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Sub-state (0..K-1) of each row of ``Z``: k-means with ``K = n_substates(len(Z))``.

    Deterministic for a ``seed`` (k-means++ starts, 4 restarts).  Leiden clustering is the
    single-cell habit, but it needs igraph and leidenalg, which are not dependencies; k-means
    with a fixed rule keeps the number comparable between generators and datasets.
    """
    from sklearn.cluster import KMeans

    k = n_substates(len(Z))
    if k == 1:
        return np.zeros(len(Z), dtype=np.int64)
    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(Z).astype(np.int64)


def substate_scores(Zr: np.ndarray, Zg: np.ndarray, real_type: np.ndarray,
                    generated_type: np.ndarray, radii: np.ndarray, *, seed: int = 0) -> dict:
    """:func:`substate_coverage` on coordinates, types and the real cells' k-NN ``radii``."""
    from sklearn.neighbors import NearestNeighbors

    Zr, Zg = np.asarray(Zr, np.float64), np.asarray(Zg, np.float64)
    real_type, generated_type = np.asarray(real_type), np.asarray(generated_type)
    per_type = {}
    for t in np.unique(real_type):
        members = np.flatnonzero(real_type == t)
        states = substates(Zr[members], seed=seed)
        mine = np.flatnonzero(generated_type == t)
        reached = np.zeros(states.max() + 1, bool)
        if mine.size:
            nn = NearestNeighbors(n_neighbors=1).fit(Zr[members])
            dist, nearest = (a[:, 0] for a in nn.kneighbors(Zg[mine]))
            reached[states[nearest[dist <= radii[members][nearest]]]] = True
        sizes = np.bincount(states, minlength=reached.size)
        per_type[str(t)] = {"n_cells": int(members.size), "n_generated": int(mine.size),
                            "n_substates": int(reached.size),
                            "coverage": float(reached.mean()),
                            "mass": float(sizes[reached].sum() / members.size)}
    weights = np.array([v["n_cells"] for v in per_type.values()], np.float64)
    if not weights.sum():
        return {"substate_coverage": float("nan"), "substate_mass": float("nan"),
                "per_type": per_type}
    return {
        "substate_coverage": float(np.average([v["coverage"] for v in per_type.values()],
                                              weights=weights)),
        "substate_mass": float(np.average([v["mass"] for v in per_type.values()],
                                          weights=weights)),
        "per_type": per_type,
    }


def substate_coverage(real: ad.AnnData, generated: ad.AnnData, *, label_key: str | None = None,
                      k: int = 5, n_pcs: int = 50, seed: int = 0) -> dict:
    """How many sub-states of each cell type do the generated cells of that type reach?

    In the pooled PCA space (``n_pcs`` components, as :func:`prdc`), the real (held-out)
    cells of each type are split into sub-states by :func:`substates` (k-means, their
    number by :func:`n_substates`; one for types under 20 cells).  A generated cell of type
    ``t`` *reaches* a sub-state when its nearest real cell of type ``t`` belongs to it and
    lies within that real cell's k-NN radius (``k``-th nearest real cell of any type, the
    radius of :func:`prdc`).  Per type: the fraction of sub-states reached and the fraction
    of the type's real cells that are in reached sub-states; both averaged over types,
    weighted by their real cells.  A type without generated cells reaches nothing.

    Generated types come from ``obs[label_key]`` (or ``obs['cell_type']``); an unconditional
    generator's cells take the type of their nearest real cell.  Without ``label_key`` all
    cells form one type.

    Returns
    -------
    dict with ``substate_coverage``, ``substate_mass`` and ``per_type`` (type -> dict with
    ``n_cells``, ``n_generated``, ``n_substates``, ``coverage``, ``mass``).

    Examples
    --------
    >>> substate_coverage(test, fake, label_key="cell_type")["substate_coverage"]  # doctest: +SKIP
    0.86
    """
    generated = align_genes(generated, real.var_names, "generated")
    if real.n_obs < 2:
        raise ParameterError(f"substate_coverage needs at least 2 real cells, got {real.n_obs}")
    Zr, Zg = pooled_pca(real.X, generated.X, n_pcs=n_pcs, seed=seed)
    gt = generated_types(generated, label_key, real, scores=(Zr, Zg))
    return substate_scores(Zr, Zg, real_types(real, label_key), gt, knn_radii(Zr, k), seed=seed)
