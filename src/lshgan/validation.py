"""Scoring generators on a validation split of the *training* cells (never the test split).

:class:`ValidationSplit` carves the training cells into cells to fit on and cells to score
on (stratified by cell type), and scores generated cells with
:func:`lshgan.objective.objective`: the random-forest AUC of validation vs generated cells
plus the penalty on memorisation (DCR ratio).  The Optuna objective of ``lshgan tune``
(:mod:`lshgan.mlops.tuning`) trains on ``fit`` and ranks trials by this score; it uses only
the core, so it lives here.

Examples
--------
>>> split = ValidationSplit.carve(train, val_size=0.2, label_key="cell_type")  # doctest: +SKIP
>>> model = lshgan.LSHGAN(split.fit, label_key="cell_type")                    # doctest: +SKIP
>>> model.train(progress=False)                                                # doctest: +SKIP
>>> split.score(model.generate(split.val.n_obs, split.cell_types(True)))      # doctest: +SKIP
{'objective': 0.71, 'rf_auc': 0.71, 'dcr': 1.02}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ParameterError

if TYPE_CHECKING:
    import anndata as ad
    import pandas as pd


@dataclass
class ValidationSplit:
    """The training cells, split into cells to fit on and cells to score on.

    The score is :func:`lshgan.objective.objective` of the random-forest AUC (validation
    cells vs generated cells) and the DCR ratio (generated cells' distance to the fitting
    cells, relative to the validation cells').  The test split is never involved.
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
