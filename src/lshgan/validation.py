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
