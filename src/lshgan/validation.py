"""Scoring generators on a validation split of the *training* cells (never the test split).

:class:`ValidationSplit` carves the training cells into cells to fit on and cells to score
on (stratified by cell type), and scores generated cells with
:func:`lshgan.objective.objective`: the random-forest AUC of validation vs generated cells
plus the penalty on memorisation (DCR ratio).  The Optuna objective of ``lshgan tune``
(:mod:`lshgan.mlops.tuning`) trains on ``fit`` and ranks trials by this score; it uses only
the core, so it lives here.

On small data (tens to hundreds of cells) one validation split is noisy: the RF-AUC moves by
up to 0.1 from one split to another.  :meth:`ValidationSplit.folds` gives the ``K`` splits of
a stratified K-fold cross-validation instead (every cell is scored on once), and
:func:`mean_scores` averages their scores, as scikit-learn's ``cross_val_score`` does.

Examples
--------
>>> split = ValidationSplit.carve(train, val_size=0.2, label_key="cell_type")  # doctest: +SKIP
>>> model = lshgan.LSHGAN(split.fit, label_key="cell_type")                    # doctest: +SKIP
>>> model.train(progress=False)                                                # doctest: +SKIP
>>> split.score(model.generate(split.val.n_obs, split.cell_types(True)))      # doctest: +SKIP
{'objective': 0.71, 'rf_auc': 0.71, 'dcr': 1.02}
>>> scores = []                                                                # doctest: +SKIP
>>> for split in ValidationSplit.folds(train, 5, label_key="cell_type"):      # doctest: +SKIP
...     model = lshgan.LSHGAN(split.fit, label_key="cell_type")
...     model.train(progress=False)
...     scores.append(split.score(model.generate(split.val.n_obs, split.cell_types(True))))
>>> mean_scores(scores)                                                        # doctest: +SKIP
{'objective': 0.69, 'rf_auc': 0.69, 'dcr': 1.01, 'objective_sd': 0.04, ...}
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from .errors import DataWarning, ParameterError, check_positive_int

if TYPE_CHECKING:
    import anndata as ad
    import pandas as pd


@dataclass
class ValidationSplit:
    """The training cells, split into cells to fit on and cells to score on.

    The score is :func:`lshgan.objective.objective` of the random-forest AUC (validation
    cells vs generated cells) and the DCR ratio (generated cells' distance to the fitting
    cells, relative to the validation cells').  The test split is never involved.

    Make one with :meth:`carve` (one split) or :meth:`folds` (the splits of a K-fold
    cross-validation).  ``seed`` seeds the random forest of :meth:`score` (its subsample,
    PCA and folds); the folds of a cross-validation all keep the seed they were made with.
    """

    fit: "ad.AnnData"
    val: "ad.AnnData"
    label_key: str | None = None
    seed: int = 0

    @classmethod
    def carve(cls, train: "ad.AnnData", *, val_size: float = 0.2, label_key: str | None = None,
              seed: int = 0) -> "ValidationSplit":
        """Split ``train`` (stratified by ``label_key``): ``val_size`` of it to score on, the
        rest to fit on; refuses a validation split of fewer than 4 cells."""
        from .preprocess import stratified_split

        fit, val = stratified_split(train, test_size=val_size, label_key=label_key, seed=seed)
        if val.n_obs < 4:
            raise ParameterError(f"the validation split has {val.n_obs} cells: raise val_size "
                                 f"or tune on more than {train.n_obs} cells")
        return cls(fit, val, label_key, seed)

    @classmethod
    def folds(cls, train: "ad.AnnData", n_folds: int = 5, *, label_key: str | None = None,
              seed: int = 0) -> list["ValidationSplit"]:
        """The ``n_folds`` splits of a K-fold cross-validation of ``train``.

        Parameters
        ----------
        train
            The training cells.
        n_folds
            Number of folds ``K`` (at least 2): each split scores on one fold and fits on
            the other ``K - 1``.
        label_key
            Cell-type column: folds stratified by it
            (``sklearn.model_selection.StratifiedKFold``); ``None``: plain ``KFold``.
        seed
            Shuffles the cells before they are dealt into folds; also the ``seed`` of every
            split (the random forest of :meth:`score`).

        Returns
        -------
        ``n_folds`` splits; every cell is a validation cell of exactly one of them, except
        the cells of a type with a single cell, which (as in :meth:`carve`) are fitting
        cells of every split: a model cannot generate a type it was not trained on.

        Raises
        ------
        ParameterError
            ``n_folds`` below 2 or above the number of cells, or a fold of fewer than 4
            cells (as :meth:`carve`).

        Warns
        -----
        DataWarning
            Cell types with fewer cells than ``n_folds``: the validation cells of some folds
            lack them (and single-cell types are never validated).
        """
        import numpy as np
        from sklearn.model_selection import KFold, StratifiedKFold

        n_folds = check_positive_int("n_folds", n_folds, minimum=2)
        n = train.n_obs
        pool = np.arange(n)  # the cells dealt into folds
        labels = rare = None
        if label_key is not None:
            labels = train.obs[label_key].astype(str).to_numpy()
            types, counts = np.unique(labels, return_counts=True)
            rare = [f"{t} ({c})" for t, c in zip(types, counts) if c < n_folds]
            keep = ~np.isin(labels, types[counts < 2])
            pool, labels = pool[keep], labels[keep]
        if n_folds > pool.size:
            raise ParameterError(f"n_folds={n_folds} is more than the {pool.size} cells to "
                                 "validate on: use fewer folds")
        if labels is None:
            splitter, strata = KFold(n_folds, shuffle=True, random_state=seed), None
        else:
            splitter, strata = StratifiedKFold(n_folds, shuffle=True, random_state=seed), labels
        try:
            with warnings.catch_warnings():  # the rare types were named above
                warnings.filterwarnings("ignore", "The least populated class", UserWarning)
                parts = [np.sort(pool[te]) for _, te in splitter.split(pool, strata)]
        except ValueError as err:  # e.g. every type has fewer cells than n_folds
            raise ParameterError(f"cannot split {n} cells into n_folds={n_folds} folds by "
                                 f"{label_key!r}: {err}") from None
        small = min(len(p) for p in parts)
        if small < 4:
            raise ParameterError(f"with n_folds={n_folds} a fold has {small} validation cells "
                                 f"(at least 4 needed): use fewer folds or tune on more than "
                                 f"{n} cells")
        if rare:
            warnings.warn(f"{len(rare)} cell types have fewer cells than n_folds={n_folds}: "
                          f"{', '.join(rare[:5])}{', ...' if len(rare) > 5 else ''}; the "
                          "validation cells of some folds lack them (a type with a single cell "
                          "is never validated)", DataWarning, stacklevel=2)
        splits = []
        for part in parts:
            is_val = np.zeros(n, bool)
            is_val[part] = True
            fit, val = train[~is_val].copy(), train[is_val].copy()
            fit.obs["split"] = "train"  # as carve's (stratified_split's) sides
            val.obs["split"] = "test"
            splits.append(cls(fit, val, label_key, seed))
        return splits

    def cell_types(self, conditional: bool) -> list[str] | None:
        """The validation cells' types (generated in the same proportions), if conditional."""
        if not conditional or self.label_key is None:
            return None
        return self.val.obs[self.label_key].astype(str).tolist()

    def score(self, generated: "ad.AnnData", *, n_estimators: int = 300,
              n_splits: int = 5) -> dict[str, float]:
        """``objective``, ``rf_auc`` and ``dcr`` of generated cells (lower objective is better)."""
        import torch

        from .metrics import dcr_ratio, rf_auc
        from .objective import objective

        auc = rf_auc(self.val, generated, n_estimators=n_estimators, n_splits=n_splits,
                     seed=self.seed, n_jobs=torch.get_num_threads())
        dcr = dcr_ratio(generated, self.fit, self.val)
        return {"objective": objective(auc["mean"], dcr), "rf_auc": auc["mean"], "dcr": dcr}


def mean_scores(scores: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean and standard deviation over folds of each score (of :meth:`ValidationSplit.score`).

    Returns, for every key of the first dict, its mean under the same key and its sample
    standard deviation (``ddof=1``; 0.0 for a single dict) under ``<key>_sd``: e.g.
    ``objective``, ``rf_auc``, ``dcr``, ``objective_sd``, ``rf_auc_sd``, ``dcr_sd``.  A NaN
    score (a diverged fold) makes that key's mean and sd NaN.
    """
    import numpy as np

    if not scores:
        raise ParameterError("mean_scores needs at least one dict of scores")
    table = {k: np.array([s[k] for s in scores], dtype=float) for k in scores[0]}
    out = {k: float(v.mean()) for k, v in table.items()}
    out.update({f"{k}_sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0 * float(v.mean())
                for k, v in table.items()})
    return out


#: what pairs two validation rows: the same data, split, training seed and measuring run
PAIR_KEYS = ("dataset", "val_seed", "seed", "measured")


def paired_differences(rows: list[dict], baseline: str = "default",
                       metrics: tuple[str, ...] = ("rf_auc", "authenticity_pca"),
                       *, confidence: float = 0.95) -> "pd.DataFrame":
    """Each variant against ``baseline`` on the draws both were measured on.

    ``rows``: one dict per (dataset, variant, draw), as ``scripts/validation_sweep.py``
    writes them (keys ``variant``, the metrics and those of :data:`PAIR_KEYS`; a missing
    key counts as one value).  Two rows pair when every key of :data:`PAIR_KEYS` agrees, so
    that one validation split's noise (RF-AUC moves by up to 0.1 between splits of a few
    hundred cells) cancels.  Returns one row per (variant, metric): ``n`` pairs,
    ``baseline`` and ``variant`` means, ``diff`` (variant minus baseline), a Student-t
    ``confidence`` interval of the mean difference (``low``, ``high``; NaN with one pair),
    ``n_lower`` (pairs where the variant is lower) and ``datasets``.
    """
    import numpy as np
    import pandas as pd
    from scipy import stats

    if not 0 < confidence < 1:
        raise ParameterError(f"confidence must be in (0, 1), got {confidence}")
    key = lambda r: tuple(r.get(k) for k in PAIR_KEYS)  # noqa: E731
    base = {key(r): r for r in rows if r.get("variant") == baseline}
    if not base:
        raise ParameterError(f"no rows of the baseline variant {baseline!r}")
    out = []
    for variant in dict.fromkeys(r["variant"] for r in rows if r.get("variant") != baseline):
        pairs = [(base[key(r)], r) for r in rows
                 if r.get("variant") == variant and key(r) in base]
        for metric in metrics:
            ok = [(b[metric], v[metric]) for b, v in pairs
                  if b.get(metric) is not None and v.get(metric) is not None]
            if not ok:
                continue
            b, v = np.array(ok, dtype=float).T
            d = v - b
            n = len(d)
            half = (stats.t.ppf(0.5 + confidence / 2, n - 1) * d.std(ddof=1) / np.sqrt(n)
                    if n > 1 else np.nan)
            out.append({"variant": variant, "metric": metric, "n": n,
                        "baseline": b.mean(), "value": v.mean(), "diff": d.mean(),
                        "low": d.mean() - half, "high": d.mean() + half,
                        "n_lower": int((d < 0).sum()),
                        "datasets": len({p[0]["dataset"] for p in pairs})})
    return pd.DataFrame(out, columns=["variant", "metric", "n", "baseline", "value", "diff",
                                      "low", "high", "n_lower", "datasets"])
