"""The protocol in one call: every metric for one generated set, or a table for several."""

from __future__ import annotations

import anndata as ad
import pandas as pd

from ..errors import ParameterError
from ..references import REFERENCES
from .classifier import rf_auc
from .distance import dcr, wasserstein
from .genes import gene_statistics
from .space import align_genes

#: Keys of :func:`evaluate`'s result, in the order of :func:`evaluate_generators`' columns.
METRIC_KEYS = ("rf_auc", "rf_auc_std", "wasserstein_genes", "wasserstein_pca", "dcr",
               "dcr_median_generated", "dcr_median_test", "mean_corr", "var_corr",
               "dropout_corr", "n_generated", "n_test")


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
