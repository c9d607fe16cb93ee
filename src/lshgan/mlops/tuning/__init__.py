"""Hyperparameter studies of LSH-GAN with Optuna: ``lshgan tune``.

A study searches the hyperparameters listed in a search-space file
(``conf/search_space.yaml``: ``k``, ``t``, epochs, learning rate, network width) for the
lowest :func:`lshgan.objective.objective`: realism (random-forest AUC) plus a penalty on
memorisation (DCR ratio), so that copying training cells can never win.

* **Validation, never test.**  Every score comes from a validation split carved out of the
  *training* cells (``val_size``, stratified by cell type; :class:`lshgan.validation.ValidationSplit`):
  the model trains on the rest.  The test split of the pipeline is never read.
* **Cross-validation.**  With ``folds=K`` (``--folds K``, K >= 2) each trial trains one model
  per fold of a stratified K-fold cross-validation of the training cells
  (:meth:`lshgan.validation.ValidationSplit.folds`; ``val_size`` is then not used) and its
  value is the mean objective over folds: on small data one split's score is too noisy to
  rank settings (RF-AUC moves by up to 0.1 between splits), at K times the training time.
  The per-fold scores are the trial's user attributes ``fold_objective``, ``fold_rf_auc``,
  ``fold_dcr``.
* **Pruning.**  Every ``report_every`` epochs (search-space file) the generator being
  trained is scored on the validation split (with a cheaper forest) inside the training
  callback: ``LSHGAN.generate`` samples its running average there, the generator the final
  score comes from.  ``trial.report`` and ``trial.should_prune`` let the pruner of the
  search space (``MedianPruner`` by default; steps are epochs) stop hopeless trials early.
  With folds, only the first fold reports and is pruned (steps must mean the same epoch of
  the same cells in every trial).
* **Seeded and resumable.**  ``TPESampler`` seeded from ``seed`` (plus the number of trials
  already in the study, so that a resumed study does not replay its first draws); running
  the command again with the same ``study_name`` and storage adds trials to the same study.
* **Storage.**  A local SQLite file by default (``sqlite:///optuna.db``), a journal file
  (``*.log``, ``*.jsonl`` or ``journal:PATH``), or a database server
  (``postgresql+psycopg2://user@host:5432/db``) that any number of worker processes or
  machines share: run the same command on each.  Workers must tune the same training cells
  with the same ``label_key``, ``seed``, ``folds`` and ``val_size`` (checked against the
  study).
* **Tracking.**  The study is an MLflow run; each trial is an MLflow run nested under it
  (parameters, per-epoch losses, intermediate and final validation scores, its Optuna
  state).  The tracking store is the project's (``sqlite:///mlflow.db``) unless
  ``MLFLOW_TRACKING_URI`` says otherwise.
* **Best parameters** go to a YAML file whose ``train`` section holds the keys of the
  ``train`` section of ``params.yaml``, for DVC.

Modules: :mod:`~lshgan.mlops.tuning.search_space` (what a study searches),
:mod:`~lshgan.mlops.tuning.storage` (where studies live: storage URLs, creating or joining a
study), :mod:`~lshgan.mlops.tuning.tracking` (the study's MLflow runs),
:mod:`~lshgan.mlops.tuning.study` (the objective, :func:`tune`, the best parameters) and
:mod:`~lshgan.mlops.tuning.cli` (``lshgan tune``).  Importing them imports neither Optuna
nor MLflow: they are imported when a study runs.

Examples
--------
>>> from lshgan.io import read_dataset
>>> from lshgan.mlops.tuning import tune
>>> train = read_dataset("data/split/train.h5ad", label_key="cell_type")   # doctest: +SKIP
>>> study = tune(train, label_key="cell_type", n_trials=20, study_name="pbmc",
...              params_out="best_params.yaml")                              # doctest: +SKIP
>>> study.best_params                                                        # doctest: +SKIP
{'k': 7, 't': 2, 'epochs': 250, 'lr': 0.00031, 'width': 256}
"""


from .search_space import SearchSpace
from .storage import open_storage
from .study import best_train_params, tune, write_best_params

__all__ = ["SearchSpace", "best_train_params", "open_storage", "tune", "write_best_params"]
