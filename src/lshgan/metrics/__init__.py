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

from typing import Iterator

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial.distance import cdist

from ..errors import GeneMismatchError, ParameterError, check_positive_int
from ..references import REFERENCES, fit_pca, project

#: Keys of :func:`evaluate`'s result, in the order of :func:`evaluate_generators`' columns.
METRIC_KEYS = ("rf_auc", "rf_auc_std", "wasserstein_genes", "wasserstein_pca", "dcr",
               "dcr_median_generated", "dcr_median_test", "mean_corr", "var_corr",
               "dropout_corr", "n_generated", "n_test")


# ---------------------------------------------------------------------------- helpers
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


def _dense_blocks(X, size: int) -> Iterator[tuple[slice, np.ndarray]]:
    """Row blocks of ``X`` as dense float64 arrays (a sparse ``X`` is never densified whole)."""
    for start in range(0, X.shape[0], size):
        rows = slice(start, min(start + size, X.shape[0]))
        block = X[rows]
        yield rows, (block.toarray() if sp.issparse(block) else np.asarray(block)).astype(
            np.float64)


def _distance_blocks(A, B) -> Iterator[tuple[slice, slice, np.ndarray]]:
    """Exact Euclidean distances between the rows of ``A`` and ``B``, block by block.

    ``scipy.spatial.distance.cdist`` is exact (a copy is at distance 0, not ~1e-3 as with the
    ``|a|^2 + |b|^2 - 2ab`` shortcut), which :func:`dcr_ratio` relies on.  Dense blocks hold
    at most about 2**22 values (32 MB) whatever the number of genes.
    """
    size = max(16, 2**22 // max(1, A.shape[1]))
    for rows, a in _dense_blocks(A, size):
        for cols, b in _dense_blocks(B, size):
            yield rows, cols, cdist(a, b)


def pairwise_distances(A, B) -> np.ndarray:
    """Exact Euclidean distance matrix between the rows of ``A`` and ``B`` (dense or CSR).

    Examples
    --------
    >>> pairwise_distances(np.zeros((2, 3)), np.ones((1, 3))).round(3).ravel().tolist()
    [1.732, 1.732]
    """
    D = np.empty((A.shape[0], B.shape[0]))
    for rows, cols, block in _distance_blocks(A, B):
        D[rows, cols] = block
    return D


def nearest_distances(query, reference) -> np.ndarray:
    """Distance from each row of ``query`` to its nearest row of ``reference`` (exact).

    Examples
    --------
    >>> nearest_distances(np.array([[0.0, 0.0], [3.0, 4.0]]), np.zeros((1, 2))).tolist()
    [0.0, 5.0]
    """
    best = np.full(query.shape[0], np.inf)
    for rows, _, block in _distance_blocks(query, reference):
        best[rows] = np.minimum(best[rows], block.min(axis=1))
    return best


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


# ---------------------------------------------------------------------------- metrics
def rf_auc(
    real: ad.AnnData,
    generated: ad.AnnData,
    *,
    n_pcs: int = 50,
    n_splits: int = 5,
    n_estimators: int = 300,
    seed: int = 0,
    repeats: int = 1,
    n_jobs: int = -1,
) -> dict:
    """Random-forest AUC for telling real (held-out) cells from generated cells.

    The bigger side is subsampled to the size of the smaller one (equal classes, so 0.5 is
    chance), the pooled cells are projected on a PCA fitted on **this pooled classification
    set**, and a random forest is scored by ROC AUC in stratified ``n_splits``-fold
    cross-validation.  With ``repeats > 1`` the subsample, PCA and folds are redrawn
    (seeds ``seed, seed + 1, ...``) and all folds are pooled.

    Why the pooled PCA: a PCA fitted on the *training* cells gives the axes along which
    training cells vary most; any set drawn from them (even exact copies of training cells)
    sits differently on those axes than unseen test cells do, and the forest separates the
    two on that artefact alone: copies of training cells then score AUC 0.90-0.99 (0.95 on
    Pollen with 2000 genes, against 0.51 with the pooled PCA): that measures the PCA, not
    the generator.  The pooled PCA sees neither labels
    nor which cell is real, so it leaks nothing to the classifier.

    Blind spot: noise spread evenly over all genes hardly shows on the top 50 components.
    Training cells + N(0, 0.5) on Pollen score 0.59 with 2000 highly variable genes
    (log2 scale) but 0.92 with the ~12,000 genes kept by the 10%-non-zero filter, where
    the noise carries enough of each cell's norm to shape the pooled components.  Read the
    per-gene statistics (:func:`gene_statistics`, dropout in particular) next to the AUC.

    Parameters
    ----------
    real
        Real cells the generator never saw (the test split).
    generated
        Generated cells, same genes.
    n_pcs
        Number of principal components (capped at pooled cells - 1 and genes).
    n_splits
        Cross-validation folds (capped at the cells per class).
    n_estimators
        Trees in the forest.
    seed
        Seed of the subsample, PCA, folds and forest.
    repeats
        Independent repetitions averaged together.
    n_jobs
        Parallel jobs of the forest (``-1``: all cores).

    Returns
    -------
    dict with ``mean`` and ``std`` (over folds and repeats) and ``n_per_class``.

    Examples
    --------
    >>> res = rf_auc(test, fake, seed=0)     # doctest: +SKIP
    >>> round(res["mean"], 2)                # doctest: +SKIP
    0.61
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    generated = align_genes(generated, real.var_names, "generated")
    repeats = check_positive_int("repeats", repeats)
    n = min(real.n_obs, generated.n_obs)
    if n < 2:
        raise ParameterError(f"rf_auc needs at least 2 cells per side, got {n}")
    folds = min(check_positive_int("n_splits", n_splits, minimum=2), n)
    y = np.repeat([1, 0], n)
    aucs = []
    for r in range(repeats):
        s = seed + r
        rng = np.random.default_rng(s)
        ri = np.sort(rng.choice(real.n_obs, n, replace=False))
        gi = np.sort(rng.choice(generated.n_obs, n, replace=False))
        Z = np.vstack(pooled_pca(real.X[ri], generated.X[gi], n_pcs=n_pcs, seed=s))
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=s)
        for tr, te in cv.split(Z, y):
            rf = RandomForestClassifier(n_estimators=n_estimators, random_state=s, n_jobs=n_jobs)
            rf.fit(Z[tr], y[tr])
            aucs.append(roc_auc_score(y[te], rf.predict_proba(Z[te])[:, 1]))
    return {"mean": float(np.mean(aucs)), "std": float(np.std(aucs)), "n_per_class": int(n)}


def wasserstein(
    real: ad.AnnData,
    generated: ad.AnnData,
    *,
    space: str = "genes",
    n_pcs: int = 50,
    seed: int = 0,
) -> float:
    """Exact optimal-transport (earth mover's) distance between two sets of cells.

    Each cell weighs ``1/n`` of its set (uniform weights); the ground cost is the
    **Euclidean** (not squared) distance between cells, so the result is the Wasserstein-1
    distance, in the units of the ``log2(1+x)`` expression (the average distance a cell has
    to travel).  Solved exactly by the network simplex (:func:`ot.emd2`), not by Sinkhorn.

    A low distance alone can mean blurry, averaged cells: a smooth per-type Gaussian beats
    copied real cells on it.  Read it next to :func:`rf_auc` and :func:`dcr_ratio`.

    Parameters
    ----------
    real, generated
        The two sets (any sizes), same genes.
    space
        ``"genes"``: all genes; ``"pca"``: the first ``n_pcs`` components of a PCA fitted on
        the pooled cells of both sets.
    n_pcs
        Components for ``space="pca"``.
    seed
        Seed of the PCA solver.

    Returns
    -------
    float, 0 for identical sets.

    Examples
    --------
    >>> wasserstein(test, test)                  # doctest: +SKIP
    0.0
    """
    import ot

    generated = align_genes(generated, real.var_names, "generated")
    A, B = real.X, generated.X
    if space == "pca":
        A, B = pooled_pca(A, B, n_pcs=n_pcs, seed=seed)
    elif space != "genes":
        raise ParameterError(f"space must be 'genes' or 'pca', got {space!r}")
    M = pairwise_distances(A, B)
    a = np.full(M.shape[0], 1.0 / M.shape[0])
    b = np.full(M.shape[1], 1.0 / M.shape[1])
    return float(max(ot.emd2(a, b, M, numItermax=max(100_000, 50 * M.size)), 0.0))


def dcr(generated: ad.AnnData, train: ad.AnnData, test: ad.AnnData) -> dict:
    """Distance to the closest training record, for generated and for real test cells.

    Returns
    -------
    dict with ``median_generated`` (median over generated cells of the Euclidean distance to
    the nearest training cell, gene space), ``median_test`` (the same for the real test
    cells) and ``ratio`` = ``median_generated / median_test`` (see :func:`dcr_ratio`).

    Examples
    --------
    >>> dcr(fake, train, test)["median_test"]    # doctest: +SKIP
    31.4
    """
    var_names = train.var_names
    generated = align_genes(generated, var_names, "generated")
    test = align_genes(test, var_names, "test")
    med_gen = float(np.median(nearest_distances(generated.X, train.X)))
    med_test = float(np.median(nearest_distances(test.X, train.X)))
    ratio = med_gen / med_test if med_test > 0 else float("nan")
    return {"ratio": ratio, "median_generated": med_gen, "median_test": med_test}


def dcr_ratio(generated: ad.AnnData, train: ad.AnnData, test: ad.AnnData) -> float:
    """Novelty: how far generated cells are from the training cells, relative to real ones.

    Median distance from each generated cell to its nearest training cell, divided by the
    same median for the held-out real test cells (Euclidean, gene space).  Copying training
    cells scores 0; a fresh sample from the cells' distribution scores about 1; well below 1
    means memorisation, well above 1 means cells off the data manifold.  ``nan`` when the
    test cells' median is 0 (test cells duplicated in the training set).  :func:`dcr` also
    gives the two medians.

    Examples
    --------
    >>> from lshgan.references import CopyGenerator
    >>> copies = CopyGenerator().fit(train).generate(test.n_obs)    # doctest: +SKIP
    >>> dcr_ratio(copies, train, test)                              # doctest: +SKIP
    0.0
    """
    return dcr(generated, train, test)["ratio"]


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


# ---------------------------------------------------------------------------- protocol
def evaluate(
    generated: ad.AnnData,
    *,
    train: ad.AnnData,
    test: ad.AnnData,
    seed: int = 0,
    n_pcs: int = 50,
    repeats: int = 1,
    n_estimators: int = 300,
    n_jobs: int = -1,
) -> dict:
    """Every metric of the protocol for one generated set, against the held-out test split.

    Parameters
    ----------
    generated
        Generated cells (ideally as many as ``test``, in its cell-type proportions).
    train
        The cells the generator was trained on (only used for the DCR novelty check).
    test
        Real cells the generator never saw; all realism metrics compare against these.
    seed, n_pcs, repeats, n_estimators, n_jobs
        Passed to :func:`rf_auc` (and ``seed``/``n_pcs`` to ``wasserstein(space="pca")``);
        fewer trees only for quick checks, the reference numbers use 300.

    Returns
    -------
    dict with ``rf_auc``, ``rf_auc_std``, ``wasserstein_genes``, ``wasserstein_pca``,
    ``dcr``, ``dcr_median_generated``, ``dcr_median_test``, ``mean_corr``, ``var_corr``,
    ``dropout_corr``, ``n_generated``, ``n_test`` (plain Python numbers, JSON-ready).

    Raises
    ------
    GeneMismatchError
        If ``generated``, ``train`` and ``test`` do not hold the same genes (the same set in
        another order is aligned by name).

    Examples
    --------
    >>> metrics = evaluate(model.generate(test.n_obs), train=train, test=test)   # doctest: +SKIP
    >>> lshgan.io.write_json(metrics, "reports/metrics.json")                     # doctest: +SKIP
    """
    var_names = test.var_names
    generated = align_genes(generated, var_names, "generated")
    train = align_genes(train, var_names, "train")
    auc = rf_auc(test, generated, n_pcs=n_pcs, seed=seed, repeats=repeats,
                 n_estimators=n_estimators, n_jobs=n_jobs)
    novelty = dcr(generated, train, test)
    stats = gene_statistics(test, generated)
    return {
        "rf_auc": auc["mean"],
        "rf_auc_std": auc["std"],
        "wasserstein_genes": wasserstein(test, generated, space="genes"),
        "wasserstein_pca": wasserstein(test, generated, space="pca", n_pcs=n_pcs, seed=seed),
        "dcr": novelty["ratio"],
        "dcr_median_generated": novelty["median_generated"],
        "dcr_median_test": novelty["median_test"],
        "mean_corr": stats["mean_corr"],
        "var_corr": stats["var_corr"],
        "dropout_corr": stats["dropout_corr"],
        "n_generated": int(generated.n_obs),
        "n_test": int(test.n_obs),
    }


def evaluate_generators(
    generators: dict[str, ad.AnnData],
    *,
    train: ad.AnnData,
    test: ad.AnnData,
    label_key: str | None = None,
    seed: int = 0,
    include_references: bool = True,
    n_pcs: int = 50,
    repeats: int = 1,
    n_estimators: int = 300,
    n_jobs: int = -1,
) -> pd.DataFrame:
    """Score several generated sets, and the reference generators, in one table.

    With ``include_references`` the ``copy`` and ``gaussian`` references of
    :mod:`lshgan.references` are fitted on ``train`` and generate as many cells as ``test``
    holds (with exactly the test split's cell types when ``label_key`` is given), using the
    same ``seed``; every row is then scored by :func:`evaluate` with the same seed.

    Parameters
    ----------
    generators
        Name -> generated cells.  Names ``copy`` and ``gaussian`` are reserved when
        ``include_references`` is true.
    train, test
        The split the generators were trained on / never saw.
    label_key
        Cell-type column of ``train.obs`` and ``test.obs`` (references are then per type).
    seed, n_pcs, repeats, n_estimators, n_jobs
        See :func:`evaluate`.

    Returns
    -------
    DataFrame, one row per generator (index ``generator``), the columns of
    :func:`evaluate` plus ``reference`` (True for the reference generators).

    Examples
    --------
    >>> fake = model.generate(test.n_obs, cell_type=list(test.obs["cell_type"]))  # doctest: +SKIP
    >>> evaluate_generators({"lshgan": fake}, train=train, test=test,
    ...                     label_key="cell_type")                                # doctest: +SKIP
    """
    sets = dict(generators)
    is_ref = dict.fromkeys(sets, False)
    if include_references:
        clash = sorted(set(sets) & set(REFERENCES))
        if clash:
            raise ParameterError(
                f"generator name {clash[0]!r} is reserved for a reference; rename it or pass "
                "include_references=False"
            )
        types = None if label_key is None else test.obs[label_key].astype(str).tolist()
        for name, cls in REFERENCES.items():
            ref = cls().fit(train, label_key=label_key)
            sets[name] = ref.generate(test.n_obs, cell_type=types, seed=seed)
            is_ref[name] = True
    options = dict(seed=seed, n_pcs=n_pcs, repeats=repeats, n_estimators=n_estimators,
                   n_jobs=n_jobs)
    rows = {name: {**evaluate(adata, train=train, test=test, **options),
                   "reference": is_ref[name]}
            for name, adata in sets.items()}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=[*METRIC_KEYS, "reference"])
    table.index.name = "generator"
    return table
