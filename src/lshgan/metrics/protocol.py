"""The protocol in one call: every metric for one generated set, or a table for several."""

from __future__ import annotations

import logging
import time
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..references import REFERENCES
from .cells import CELL_KEYS, cell_statistics
from .classifier import classifier_aucs, groundgan_protocol
from .coverage import prdc_scores, substate_scores
from .distance import NearestTraining, authenticity, dcr, earth_movers, mmd_rbf, wasserstein
from .genes import gene_statistics
from .markers import marker_scores
from .space import align_genes, generated_types, pooled_pca, real_types, subsample_rows

log = logging.getLogger(__name__)

#: Keys of :func:`evaluate`'s result, in the order of :func:`evaluate_generators`' columns.
METRIC_KEYS = ("rf_auc", "rf_auc_std", "knn_auc", "wasserstein_genes", "wasserstein_pca",
               "mmd", "dcr", "dcr_median_generated", "dcr_median_test", "dcr_pca",
               "authenticity_pca", "authenticity_pca_test", "mean_corr", "var_corr",
               "dropout_corr", "precision", "recall", "density", "coverage",
               "substate_coverage", "substate_mass", "marker_lfc_corr",
               "marker_top50_overlap", *CELL_KEYS, "n_generated", "n_test")

#: Optional protocols of :func:`evaluate` (``protocols=``) and the key each one adds.
PROTOCOL_KEYS = {"groundgan": "rf_auc_groundgan"}

#: Name of :func:`evaluate_generators`' real-vs-real control row.
REAL_VS_REAL = "real-vs-real"


def evaluate(
    generated: ad.AnnData,
    *,
    train: ad.AnnData,
    test: ad.AnnData,
    label_key: str | None = None,
    seed: int = 0,
    n_pcs: int = 50,
    repeats: int = 1,
    n_estimators: int = 300,
    n_jobs: int = -1,
    k: int = 5,
    protocols: Sequence[str] = (),
    train_index: NearestTraining | None = None,
) -> dict:
    """Every metric of the protocol for one generated set, against the held-out test split.

    Realism: :func:`rf_auc` and the k-NN classifier of :func:`knn_auc` (same subsamples,
    PCA and folds), Wasserstein-1 in genes and in the pooled PCA space, RBF MMD
    (:func:`mmd_rbf`), per-gene statistics.  Novelty: :func:`dcr` in gene space (``dcr``)
    and on the training cells' top principal components (``dcr_pca``, the novelty of the
    cell states, which per-gene noise cannot fake), and there the share of *authentic*
    cells (:func:`authenticity`: farther from their nearest training cell than that cell is
    from its own nearest neighbour), for the generated cells (``authenticity_pca``) and for
    the real test cells (``authenticity_pca_test``, the reference): a low state DCR with an
    authenticity near the test cells' is concentration, not copying.  Diversity, in the pooled
    PCA space: precision / recall / density / coverage (:func:`prdc`), per-type sub-state
    coverage (:func:`substate_coverage`).  Cell-type identity: marker preservation
    (:func:`marker_preservation`).  Per-cell summaries (:func:`cell_statistics`: detected
    genes, total, mean and spread of the detected levels): their KS statistics and a forest
    on the four (``cells_auc``).  One PCA of the pooled test and generated cells serves
    the Wasserstein (PCA), MMD and diversity metrics.

    Parameters
    ----------
    generated
        Generated cells (ideally as many as ``test``, in its cell-type proportions).
    train
        The cells the generator was trained on (only used for the DCR novelty check).
    test
        Real cells the generator never saw; all realism metrics compare against these.
    label_key
        Cell-type column of ``test.obs`` (generated types: see
        :func:`lshgan.metrics.space.generated_types`).  Without it the sub-states are
        found in all test cells together and the marker metrics are ``nan``.
    seed, n_pcs, repeats, n_estimators, n_jobs
        Passed to :func:`rf_auc` (``seed``/``n_pcs`` to every metric in PCA space); fewer
        trees only for quick checks, the reference numbers use 300.
    k
        Neighbours of the k-NN balls (:func:`prdc`, sub-states) and of the k-NN classifier.
    protocols
        Extra, slower protocols by name: ``"groundgan"`` adds ``rf_auc_groundgan``
        (:func:`groundgan_protocol`, a 1000-tree forest).
    train_index
        A :class:`~lshgan.metrics.distance.NearestTraining` of ``train`` to reuse across
        generators (:func:`evaluate_generators` passes one); built here if ``None``.

    Returns
    -------
    dict with the keys of :data:`METRIC_KEYS` (``rf_auc``, ``rf_auc_std``, ``knn_auc``,
    ``wasserstein_genes``, ``wasserstein_pca``, ``mmd``, ``dcr``, ``dcr_median_generated``,
    ``dcr_median_test``, ``dcr_pca``, ``authenticity_pca``, ``authenticity_pca_test``,
    ``mean_corr``, ``var_corr``, ``dropout_corr``, ``precision``,
    ``recall``, ``density``, ``coverage``, ``substate_coverage``, ``substate_mass``,
    ``marker_lfc_corr``, ``marker_top50_overlap``, ``cells_auc``, ``cells_ks_detected``,
    ``cells_ks_total``, ``cells_ks_level_mean``, ``cells_ks_level_sd``, ``n_generated``,
    ``n_test``), then the
    keys of the requested ``protocols`` (:data:`PROTOCOL_KEYS`); plain Python numbers,
    JSON-ready.

    Raises
    ------
    GeneMismatchError
        If ``generated``, ``train`` and ``test`` do not hold the same genes (the same set in
        another order is aligned by name).
    ParameterError
        For an unknown protocol, or a ``label_key`` that ``test.obs`` lacks.

    Examples
    --------
    >>> metrics = evaluate(model.generate(test.n_obs), train=train, test=test)   # doctest: +SKIP
    >>> lshgan.io.write_json(metrics, "reports/metrics.json")                     # doctest: +SKIP
    """
    protocols = _check_protocols(protocols)
    var_names = test.var_names
    generated = align_genes(generated, var_names, "generated")
    train = align_genes(train, var_names, "train")
    aucs = classifier_aucs(test, generated, classifiers=("rf", "knn"), n_pcs=n_pcs, seed=seed,
                           repeats=repeats, n_estimators=n_estimators, n_neighbors=k,
                           n_jobs=n_jobs)
    if train_index is None or train_index.X is not train.X:
        train_index = NearestTraining(train.X, seed=seed)
    novelty = dcr(generated, train, test, seed=seed, index=train_index)
    state_novelty = dcr(generated, train, test, seed=seed, index=train_index, space="pca")
    authentic = authenticity(generated, train, test, seed=seed, index=train_index)
    stats = gene_statistics(test, generated)
    per_cell = cell_statistics(test, generated, seed=seed, n_jobs=n_jobs)
    # the pooled-PCA metrics on at most POOLED_MAX_CELLS cells per side (seeded subsample)
    test_p, gen_p = (subsample_rows(a, POOLED_MAX_CELLS, seed + i) for i, a in enumerate((test, generated)))
    rt = real_types(test_p, label_key)
    Zr, Zg = pooled_pca(test_p.X, gen_p.X, n_pcs=n_pcs, seed=seed)
    gt = generated_types(gen_p, label_key, test_p, scores=(Zr, Zg))
    diversity = prdc_scores(Zr, Zg, k)
    states = substate_scores(Zr, Zg, rt, gt, diversity["radii"], seed=seed)
    markers = (marker_scores(test_p.X, rt, gen_p.X, gt) if label_key is not None
               else {"marker_lfc_corr": float("nan"), "marker_top50_overlap": float("nan")})
    result = {
        "rf_auc": aucs["rf"]["mean"],
        "rf_auc_std": aucs["rf"]["std"],
        "knn_auc": aucs["knn"]["mean"],
        "wasserstein_genes": wasserstein(test, generated, space="genes", seed=seed),
        "wasserstein_pca": earth_movers(Zr, Zg, seed=seed),
        "mmd": mmd_rbf(Zr, Zg, seed=seed),
        "dcr": novelty["ratio"],
        "dcr_median_generated": novelty["median_generated"],
        "dcr_median_test": novelty["median_test"],
        "dcr_pca": state_novelty["ratio"],
        "authenticity_pca": authentic["generated"],
        "authenticity_pca_test": authentic["test"],
        "mean_corr": stats["mean_corr"],
        "var_corr": stats["var_corr"],
        "dropout_corr": stats["dropout_corr"],
        **{key: diversity[key] for key in ("precision", "recall", "density", "coverage")},
        "substate_coverage": states["substate_coverage"],
        "substate_mass": states["substate_mass"],
        "marker_lfc_corr": markers["marker_lfc_corr"],
        "marker_top50_overlap": markers["marker_top50_overlap"],
        **{key: per_cell[key] for key in CELL_KEYS},
        "n_generated": int(generated.n_obs),
        "n_test": int(test.n_obs),
    }
    if "groundgan" in protocols:
        result["rf_auc_groundgan"] = groundgan_protocol(test, generated, seed=seed,
                                                        n_jobs=n_jobs)["auc"]
    return result


#: cells per side of the metrics in the pooled PCA space (Wasserstein-PCA, MMD, precision /
#: recall / density / coverage, sub-states, markers): a seeded subsample above it; every
#: shared dataset's test split is smaller
POOLED_MAX_CELLS = 5000


def _check_protocols(protocols: Sequence[str]) -> tuple[str, ...]:
    protocols = (protocols,) if isinstance(protocols, str) else tuple(protocols)
    unknown = sorted(set(protocols) - set(PROTOCOL_KEYS))
    if unknown:
        raise ParameterError(f"unknown protocol {unknown[0]!r}; known: {', '.join(PROTOCOL_KEYS)}")
    return tuple(p for p in PROTOCOL_KEYS if p in protocols)


def real_vs_real(train: ad.AnnData, test: ad.AnnData, *, label_key: str | None = None,
                 seed: int = 0) -> ad.AnnData:
    """The real-vs-real control: training cells standing in for generated ones.

    A random subset of ``train`` with as many cells as ``test`` (drawn without replacement
    while the training split has enough), with exactly the test split's count of each type
    when ``label_key`` is given (a type the training split lacks is drawn from all training
    cells).  Scored against ``test`` like a generator, it is what a perfect generator would
    get: the floor (or ceiling) of every realism and diversity metric at these sample sizes.
    Its DCR is 0 **by construction** (its cells are training cells, at distance 0 from
    themselves): for novelty compare with fresh real cells' 1 instead.

    Examples
    --------
    >>> control = real_vs_real(train, test, label_key="cell_type")   # doctest: +SKIP
    >>> control.n_obs == test.n_obs                                   # doctest: +SKIP
    True
    """
    rng = np.random.default_rng(seed)
    pool = np.arange(train.n_obs)
    if label_key is None:
        wanted = {None: test.n_obs}
    else:
        wanted = pd.Series(real_types(test, label_key)).value_counts(sort=False).to_dict()
        train_types = real_types(train, label_key)
    rows = []
    for t, count in wanted.items():
        mine = pool if t is None or not (train_types == t).any() else pool[train_types == t]
        rows.append(rng.choice(mine, count, replace=count > mine.size))
    rows = np.sort(np.concatenate(rows))
    obs = train.obs.iloc[rows].copy()
    obs.index = [f"{REAL_VS_REAL}_{i}" for i in range(rows.size)]  # rows may repeat
    return ad.AnnData(X=train.X[rows], obs=obs, var=train.var.copy())


def reference_cells(name: str, train: ad.AnnData, test: ad.AnnData, *,
                    label_key: str | None = None, seed: int = 0) -> ad.AnnData:
    """The reference generator ``name`` of :mod:`lshgan.references` fitted on ``train``,
    as many cells as ``test`` holds (with exactly its cell types when ``label_key`` is
    given): the cells :func:`evaluate_generators` scores for that reference and ``seed``.

    Examples
    --------
    >>> copies = reference_cells("copy", train, test, label_key="cell_type")   # doctest: +SKIP
    """
    types = None if label_key is None else test.obs[label_key].astype(str).tolist()
    return REFERENCES[name]().fit(train, label_key=label_key).generate(test.n_obs, cell_type=types,
                                                                        seed=seed)


def evaluate_generators(
    generators: dict[str, ad.AnnData],
    *,
    train: ad.AnnData,
    test: ad.AnnData,
    label_key: str | None = None,
    seed: int = 0,
    include_references: bool = True,
    include_real: bool | None = None,
    n_pcs: int = 50,
    repeats: int = 1,
    n_estimators: int = 300,
    n_jobs: int = -1,
    k: int = 5,
    protocols: Sequence[str] = (),
) -> pd.DataFrame:
    """Score several generated sets, the reference generators and a real-vs-real control.

    With ``include_references`` the ``copy`` and ``gaussian`` references of
    :mod:`lshgan.references` are fitted on ``train`` and generate as many cells as ``test``
    holds (with exactly the test split's cell types when ``label_key`` is given), using the
    same ``seed``.  With ``include_real`` (default: as ``include_references``) a
    ``real-vs-real`` row scores real training cells as if generated (:func:`real_vs_real`:
    as many as ``test``, in its type proportions, no model): the best any generator can do
    at these sample sizes on every realism and diversity metric.  Its DCR is 0 by
    construction (its cells *are* training cells), not a sign of copying.  Every row is
    scored by :func:`evaluate` with the same seed.

    Parameters
    ----------
    generators
        Name -> generated cells.  Names ``copy`` and ``gaussian`` are reserved when
        ``include_references`` is true, ``real-vs-real`` when ``include_real`` is.
    train, test
        The split the generators were trained on / never saw.
    label_key
        Cell-type column of ``train.obs`` and ``test.obs`` (references are then per type).
    include_references, include_real
        Add the reference rows / the real-vs-real row.
    seed, n_pcs, repeats, n_estimators, n_jobs, k, protocols
        See :func:`evaluate`.

    Returns
    -------
    DataFrame, one row per generator (index ``generator``; the references and the control
    last), the columns of :func:`evaluate` plus ``reference`` (True for the reference
    generators and the real-vs-real control).

    Examples
    --------
    >>> fake = model.generate(test.n_obs, cell_type=list(test.obs["cell_type"]))  # doctest: +SKIP
    >>> evaluate_generators({"lshgan": fake}, train=train, test=test,
    ...                     label_key="cell_type")                                # doctest: +SKIP
    """
    protocols = _check_protocols(protocols)
    include_real = include_references if include_real is None else include_real
    sets = dict(generators)
    is_ref = dict.fromkeys(sets, False)
    reserved = {name: "include_references" for name in REFERENCES if include_references}
    if include_real:
        reserved[REAL_VS_REAL] = "include_real"
    clash = sorted(set(sets) & set(reserved))
    if clash:
        raise ParameterError(
            f"generator name {clash[0]!r} is reserved for a reference; rename it or pass "
            f"{reserved[clash[0]]}=False"
        )
    if include_references:
        for name in REFERENCES:
            sets[name] = reference_cells(name, train, test, label_key=label_key, seed=seed)
            is_ref[name] = True
    if include_real:
        sets[REAL_VS_REAL] = real_vs_real(train, test, label_key=label_key, seed=seed)
        is_ref[REAL_VS_REAL] = True
    options = dict(label_key=label_key, seed=seed, n_pcs=n_pcs, repeats=repeats,
                   n_estimators=n_estimators, n_jobs=n_jobs, k=k, protocols=protocols)
    # one nearest-training-cell search (and one test-split DCR median) for every generator
    options["train_index"] = NearestTraining(align_genes(train, test.var_names, "train").X,
                                             seed=seed)
    rows = {}
    for i, (name, adata) in enumerate(sets.items(), 1):  # progress: a line per generator
        t = time.perf_counter()
        rows[name] = {**evaluate(adata, train=train, test=test, **options),
                      "reference": is_ref[name]}
        log.info("evaluated %s (%d of %d): %d cells against %d test cells, %.0f s", name, i,
                 len(sets), adata.n_obs, test.n_obs, time.perf_counter() - t)
    columns = [*METRIC_KEYS, *(PROTOCOL_KEYS[p] for p in protocols), "reference"]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    table.index.name = "generator"
    return table
