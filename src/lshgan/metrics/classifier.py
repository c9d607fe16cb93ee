"""Can a classifier tell generated cells from real held-out cells?"""

from __future__ import annotations

import anndata as ad
import numpy as np

from ..errors import ParameterError, check_positive_int
from ..preprocess import normalized_values
from .space import align_genes, pooled_pca


#: cells per class of the real-vs-generated classifiers (a seeded subsample above it)
MAX_CELLS_PER_CLASS = 1000


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
    chance), both to at most :data:`MAX_CELLS_PER_CLASS` (the AUC of 1000 + 1000 cells has
    a standard error of about 0.01; more cells cost forest time, not precision), the pooled cells are projected on a PCA fitted on **this pooled classification
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
    return classifier_aucs(real, generated, classifiers=("rf",), n_pcs=n_pcs, n_splits=n_splits,
                           n_estimators=n_estimators, seed=seed, repeats=repeats,
                           n_jobs=n_jobs)["rf"]


def knn_auc(
    real: ad.AnnData,
    generated: ad.AnnData,
    *,
    n_neighbors: int = 5,
    n_pcs: int = 50,
    n_splits: int = 5,
    seed: int = 0,
    repeats: int = 1,
) -> dict:
    """k-nearest-neighbour AUC for telling real (held-out) cells from generated cells.

    The protocol of :func:`rf_auc` (balanced classes, PCA fitted on the pooled
    classification set, stratified cross-validation, the same subsamples and folds for the
    same ``seed``) with a ``n_neighbors``-NN classifier (Euclidean, on the PC scores) in
    place of the forest.  A local view: it flags generated cells that sit off the real
    cells' neighbourhoods even when no axis-aligned split separates them.

    Returns
    -------
    dict with ``mean``, ``std`` and ``n_per_class``, as :func:`rf_auc`.

    Examples
    --------
    >>> knn_auc(test, fake, seed=0)["mean"]      # doctest: +SKIP
    0.58
    """
    return classifier_aucs(real, generated, classifiers=("knn",), n_pcs=n_pcs,
                           n_splits=n_splits, n_neighbors=n_neighbors, seed=seed,
                           repeats=repeats)["knn"]


#: Classifiers :func:`classifier_aucs` knows: random forest and k-nearest neighbours.
CLASSIFIERS = ("rf", "knn")


def classifier_aucs(
    real: ad.AnnData,
    generated: ad.AnnData,
    *,
    classifiers=CLASSIFIERS,
    n_pcs: int = 50,
    n_splits: int = 5,
    n_estimators: int = 300,
    n_neighbors: int = 5,
    seed: int = 0,
    repeats: int = 1,
    n_jobs: int = -1,
) -> dict[str, dict]:
    """Real-vs-generated AUC of several classifiers on the same subsamples, PCA and folds.

    The protocol of :func:`rf_auc` (see there), run once for all ``classifiers`` (names of
    :data:`CLASSIFIERS`): the subsample and the pooled PCA are computed once per repeat.

    Returns
    -------
    dict: classifier name -> dict with ``mean``, ``std`` and ``n_per_class``.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    unknown = sorted(set(classifiers) - set(CLASSIFIERS))
    if unknown:
        raise ParameterError(f"unknown classifier {unknown[0]!r}; known: {', '.join(CLASSIFIERS)}")
    generated = align_genes(generated, real.var_names, "generated")
    repeats = check_positive_int("repeats", repeats)
    n_neighbors = check_positive_int("n_neighbors", n_neighbors)
    n = min(_cells_per_class(real, generated, "rf_auc", 2), MAX_CELLS_PER_CLASS)
    folds = min(check_positive_int("n_splits", n_splits, minimum=2), n)
    y = np.repeat([1, 0], n)
    aucs: dict[str, list[float]] = {name: [] for name in classifiers}
    for r in range(repeats):
        s = seed + r
        ri, gi = _balanced_rows(real, generated, n, s)
        Z = np.vstack(pooled_pca(real.X[ri], generated.X[gi], n_pcs=n_pcs, seed=s))
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=s)
        for tr, te in cv.split(Z, y):
            for name in classifiers:
                model = _classifier(name, n_estimators=n_estimators, seed=s, n_jobs=n_jobs,
                                    n_neighbors=min(n_neighbors, len(tr)))
                model.fit(Z[tr], y[tr])
                aucs[name].append(roc_auc_score(y[te], model.predict_proba(Z[te])[:, 1]))
    return {name: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n_per_class": int(n)}
            for name, v in aucs.items()}


def _cells_per_class(real: ad.AnnData, generated: ad.AnnData, what: str, minimum: int) -> int:
    """Cells per class once the bigger side is subsampled to the smaller (checked)."""
    n = min(real.n_obs, generated.n_obs)
    if n < minimum:
        raise ParameterError(f"{what} needs at least {minimum} cells per side, got {n}")
    return n


def _balanced_rows(real: ad.AnnData, generated: ad.AnnData, n: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sorted random rows of each side (the seeded subsample of the classifiers)."""
    rng = np.random.default_rng(seed)
    return (np.sort(rng.choice(real.n_obs, n, replace=False)),
            np.sort(rng.choice(generated.n_obs, n, replace=False)))


def _classifier(name: str, *, n_estimators: int, seed: int, n_jobs: int, n_neighbors: int):
    if name == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=n_jobs)
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=n_neighbors)


def groundgan_protocol(
    real: ad.AnnData,
    generated: ad.AnnData,
    *,
    n_top_genes: int = 1000,
    library_size: float = 20_000,
    n_pcs: int = 50,
    n_estimators: int = 1000,
    test_size: float = 0.3,
    log1p: bool = False,
    seed: int = 0,
    n_jobs: int = -1,
) -> dict:
    """Random-forest AUC as published with GRouNdGAN (Zinati et al. 2024, Nat. Commun. 15:4055).

    Their evaluation (``src/evaluation/data_quality.py: compute_RF_AUROC`` and
    ``src/preprocessing/preprocess.py`` of Emad-COMBINE-lab/GRouNdGAN), on our data:

    1. back to the linear scale: ``2**x - 1`` (our cells are ``log2(1+x)`` of
       library-normalised values; negative generated values are clipped to 0);
    2. ``n_top_genes`` highly variable genes of the **real** cells (scanpy's ``seurat``
       flavour on ``log1p`` of cells normalised to ``library_size``, as their preprocessing);
    3. each cell renormalised to ``library_size`` over those genes.  Their classifier sees
       these **linear** values (their test files hold ``normalize_per_cell`` output, not its
       logarithm); ``log1p=True`` takes ``log1p`` first instead;
    4. equal classes (the bigger side subsampled; they truncate the simulated cells to the
       real count), a 70/30 split (``test_size``; stratified here, theirs is not), PCA
       (``n_pcs``) fitted on the 70 % only, a ``n_estimators``-tree random forest, ROC AUC on
       the 30 %.

    One split, one forest: noisier than :func:`rf_auc` (5-fold), and the PCA is fitted on
    the classifier's training part (which mixes both classes, so it leaks nothing either).

    Returns
    -------
    dict with ``auc``, ``n_per_class`` and ``n_genes`` (genes used).

    Examples
    --------
    >>> groundgan_protocol(test, fake)["auc"]      # doctest: +SKIP
    0.71
    """
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    generated = align_genes(generated, real.var_names, "generated")
    n = _cells_per_class(real, generated, "groundgan_protocol", 4)
    if not 0 < test_size < 1:
        raise ParameterError(f"test_size must be in (0, 1), got {test_size}")
    ri, gi = _balanced_rows(real, generated, n, seed)
    R, G = _linear(real.X[ri], library_size), _linear(generated.X[gi], library_size)
    genes = _highly_variable(R, n_top_genes)
    X = np.vstack([_normalise(R[:, genes], library_size), _normalise(G[:, genes], library_size)])
    if log1p:
        X = np.log1p(X)
    y = np.repeat([1, 0], n)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, shuffle=True,
                                              stratify=y, random_state=seed)
    pca = PCA(n_components=max(1, min(n_pcs, *X_tr.shape)), random_state=seed).fit(X_tr)
    rf = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=n_jobs)
    rf.fit(pca.transform(X_tr), y_tr)
    auc = roc_auc_score(y_te, rf.predict_proba(pca.transform(X_te))[:, 1])
    return {"auc": float(auc), "n_per_class": int(n), "n_genes": int(genes.size)}


def _linear(X, library_size: float) -> np.ndarray:
    """``log2(1+x)`` cells back on the linear scale, each normalised to ``library_size``."""
    return _normalise(np.maximum(normalized_values(X), 0.0), library_size)


def _normalise(X: np.ndarray, library_size: float) -> np.ndarray:
    totals = X.sum(axis=1, keepdims=True)
    return X / np.where(totals > 0, totals, 1.0) * library_size


def _highly_variable(X: np.ndarray, n_top_genes: int) -> np.ndarray:
    """Indices of the ``n_top_genes`` most variable genes (scanpy, ``seurat`` flavour)."""
    if X.shape[1] <= n_top_genes:
        return np.arange(X.shape[1])
    import scanpy as sc

    hvg = sc.pp.highly_variable_genes(ad.AnnData(np.log1p(X)), n_top_genes=n_top_genes,
                                      flavor="seurat", inplace=False)
    return np.flatnonzero(hvg["highly_variable"].to_numpy())
