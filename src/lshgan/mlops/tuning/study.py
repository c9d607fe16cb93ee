"""The study loop of ``lshgan tune``: the Optuna objective (draw a trial's settings, train
on the validation split's fitting cells with pruning, score on its validation cells; or the
same on each fold of a cross-validation, the value being the mean), a study run end to end
(:func:`tune`), and its best settings as the ``train`` section of a params file for DVC.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ...errors import LSHGANError, ParameterError, check_positive_int
from ...validation import ValidationSplit, mean_scores
from .search_space import SearchSpace, expand_layers
from .storage import DEFAULT_STORAGE, STUDY_ATTR, best_trial, open_storage, open_study, redact, state_counts
from .tracking import DEFAULT_EXPERIMENT, StudyTracker

if TYPE_CHECKING:  # heavy imports stay out of `lshgan --help`
    import anndata as ad
    import optuna


def _finite(values: dict[str, float]) -> dict[str, float]:
    """The finite ones of ``values`` (a diverged trial's NaN scores are not logged)."""
    return {k: v for k, v in values.items() if math.isfinite(v)}


def make_objective(validation: ValidationSplit | Sequence[ValidationSplit], space: SearchSpace, *,
                   seed: int, device: str, base: dict[str, Any] | None = None,
                   tracker: StudyTracker | None = None) -> Callable[["optuna.Trial"], float]:
    """``objective(trial) -> float``: draw, train with pruning, score on the validation split.

    Parameters
    ----------
    validation
        One :class:`ValidationSplit` (its objective is the trial's value), or the folds of
        a cross-validation (:meth:`ValidationSplit.folds`): one model per fold, with the
        trial's settings and the same ``seed``, each scored on its fold; the trial's value
        is the mean objective over folds.  User attributes ``fold_objective``,
        ``fold_rf_auc`` and ``fold_dcr`` hold the scores of each fold; ``rf_auc``, ``dcr``
        (as with one split) and ``objective_sd``, ``rf_auc_sd``, ``dcr_sd`` their means and
        standard deviations (:func:`lshgan.validation.mean_scores`).
    space, seed, device
        The search space, the training seed and the device of every trial.
    base
        The ``train`` section the trials start from (params.yaml's).
    tracker
        The study's MLflow runs (None: no logging).

    Notes
    -----
    Pruning with folds: only the **first** fold reports intermediate scores
    (``trial.report`` at its epochs) and may be pruned.  Optuna's pruners compare a
    trial's value at a step with other trials' values at the same step, and a step may be
    reported once per trial, so the steps must mean the same in every trial: epochs of the
    first fold do (every trial has the same first fold, and its epochs are numbered from
    1).  A running mean over folds would need steps past the first fold's epochs, whose
    number is searched and differs between trials.  The later folds run only for trials
    the first fold did not prune.  In MLflow, the per-epoch losses and intermediate
    ``val_*`` scores are the first fold's; the final ``objective``, ``rf_auc`` and ``dcr``
    are the means over folds, with ``*_sd`` and ``fold<i>_*`` per fold, and
    ``train_seconds`` the sum.
    """
    import optuna

    from ... import workflow
    from .. import tracking

    sc = space.scoring
    cross = not isinstance(validation, ValidationSplit)
    splits = list(validation) if cross else [validation]
    if not splits:
        raise ParameterError("make_objective needs at least one validation split")

    def train_and_score(trial: optuna.Trial, values: dict[str, Any], split: ValidationSplit,
                        run_id: str | None, *, report: bool,
                        name: str) -> tuple[dict[str, float], float]:
        """Train on ``split.fit`` and score on ``split.val``; with ``report``, log the
        losses and report intermediate scores to the pruner."""
        model_cfg, train_cfg = space.configs(values, seed=seed, base=base, n_cells=split.fit.n_obs)
        model = workflow.build_model(split.fit, model_cfg, label_key=split.label_key, name=name)
        types = split.cell_types(model.config.conditional)
        n_val = split.val.n_obs
        logged = 0  # epochs whose losses are in MLflow
        last_epoch = train_cfg.planned_epochs(split.fit.n_obs)

        def callback(epoch: int, history) -> None:
            nonlocal logged
            if epoch % space.report_every and epoch != last_epoch:
                return
            if run_id:
                logged = tracking.log_history(history, run_id, start=logged)
            if epoch == last_epoch:
                return  # the full score follows
            scores = split.score(model.generate(n_val, cell_type=types, seed=seed),
                                 n_estimators=sc["quick_n_estimators"],
                                 n_splits=sc["quick_n_splits"])
            if run_id:
                tracking.log_metrics(_finite({f"val_{k}": v for k, v in scores.items()}),
                                     run_id, step=epoch)
            if math.isfinite(scores["objective"]):
                trial.report(scores["objective"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}: validation objective "
                                         f"{scores['objective']:.3f}")

        workflow.fit(model, train_cfg, device=device, callback=callback if report else None)
        generated = model.generate(n_val, cell_type=types, seed=seed)
        scores = split.score(generated, n_estimators=sc["n_estimators"], n_splits=sc["n_splits"])
        return scores, model.train_seconds

    def run_trial(trial: optuna.Trial) -> float:
        values = space.suggest(trial)
        params = space.train_params(values, base)
        trial.set_user_attr("train_params", params)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        logged = {**params, **values, "seed": seed, "device": device}
        if cross:
            logged["folds"] = len(splits)
        run = tracker.trial_run(trial, logged) if tracker else contextlib.nullcontext()
        with run as run_id:
            per_fold, seconds = [], 0.0
            for i, split in enumerate(splits):
                name = f"fold {i} of the tuning cells" if cross else "the tuning split"
                scores, t = train_and_score(trial, values, split, run_id, report=i == 0, name=name)
                per_fold.append(scores)
                seconds += t
            if cross:
                scores = mean_scores(per_fold)
                for key in ("objective", "rf_auc", "dcr"):
                    trial.set_user_attr(f"fold_{key}", [float(s[key]) for s in per_fold])
                for key in ("rf_auc", "dcr", "objective_sd", "rf_auc_sd", "dcr_sd"):
                    trial.set_user_attr(key, scores[key])
                metrics = {**scores, **{f"fold{i}_{k}": v for i, s in enumerate(per_fold)
                                        for k, v in s.items()}}
            else:
                (scores,) = per_fold
                trial.set_user_attr("rf_auc", scores["rf_auc"])
                trial.set_user_attr("dcr", scores["dcr"])
                metrics = dict(scores)
            if run_id:
                tracking.log_metrics(_finite({**metrics, "train_seconds": seconds}), run_id)
        return scores["objective"]

    return run_trial


def tune(
    adata: "ad.AnnData",
    *,
    label_key: str | None = None,
    n_trials: int = 20,
    study_name: str = "lshgan",
    storage: str = DEFAULT_STORAGE,
    search_space: SearchSpace | str | os.PathLike | None = None,
    device: str = "auto",
    seed: int = 0,
    sampler_seed: int | None = None,
    val_size: float | None = None,
    folds: int = 1,
    timeout: float | None = None,
    experiment: str | None = DEFAULT_EXPERIMENT,
    params_out: str | os.PathLike | None = None,
    base_params: dict[str, Any] | None = None,
    quiet: bool = False,
) -> "optuna.Study":
    """Run ``n_trials`` trials of a study (created or resumed) on the training cells ``adata``.

    Parameters
    ----------
    adata
        Preprocessed **training** cells (``lshgan split``'s train output); a validation
        split is carved out of them.
    label_key
        Cell-type column (conditional models, stratified validation split).
    n_trials
        Trials this call runs (each worker runs its own ``n_trials``); 0 only exports the
        best parameters of the study so far.
    study_name, storage
        The study, created or resumed; see :func:`open_storage` for storage URLs.
    search_space
        :class:`SearchSpace` or a YAML file (default ``conf/search_space.yaml``).
    device
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    seed
        Validation split (or folds), training and sampler seed; all workers of a study use
        the same.
    sampler_seed
        Seed of the ``TPESampler`` (default ``seed`` + trials already in the study); give
        concurrent workers different ones so that their first random draws differ.
    val_size
        With ``folds=1``: fraction of the training cells held out for validation (default
        0.2).  Not used with ``folds >= 2`` (each fold holds out ``1 / folds`` of the
        cells): giving both is an error.
    folds
        1 (default): one validation split of ``val_size``.  ``K >= 2``: K-fold
        cross-validation (:meth:`ValidationSplit.folds`, stratified by ``label_key``): each
        trial trains ``K`` models, one per fold, and its value is their mean objective (K
        times the training time; only the first fold is pruned, see
        :func:`make_objective`).  For small data, where one split's score is noisy.
    timeout
        Stop starting new trials after this many seconds.
    experiment
        MLflow experiment of the runs; ``None``: no MLflow logging.
    params_out
        Write the best trial's ``train`` section here (YAML), overwriting the file.
    base_params
        The ``train`` section trials start from (``params.yaml``'s): settings neither
        searched nor fixed by the search space come from it (``seed`` and ``device`` do not).
    quiet
        Only warnings from Optuna.

    Returns
    -------
    The :class:`optuna.Study`.

    Raises
    ------
    ParameterError
        Bad search space or storage, a worker that disagrees with the study, or
        ``params_out`` with no completed trial in the study.
    """
    import optuna

    from ...io import dataset_hash
    from ...module.training import resolve_device

    if n_trials < 0:
        raise ParameterError(f"n_trials must be >= 0, got {n_trials}")
    folds = check_positive_int("folds", folds)
    if val_size is None:
        val_size = 0.2
    elif folds > 1:
        raise ParameterError(f"val_size={val_size} is not used with folds={folds} (each fold "
                             f"holds out 1/{folds} of the cells): give one or the other")
    if not 0 < val_size < 1:
        raise ParameterError(f"val_size must be in (0, 1), got {val_size}")
    space = search_space if isinstance(search_space, SearchSpace) else SearchSpace.from_yaml(search_space)
    optuna.logging.set_verbosity(optuna.logging.WARNING if quiet else optuna.logging.INFO)
    device = str(resolve_device(device)) if device == "auto" else device
    resolve_device(device)
    data_hash = dataset_hash(adata)
    attrs = {"dataset_hash": data_hash, "label_key": label_key, "seed": int(seed), "folds": folds,
             "val_size": float(val_size) if folds == 1 else None, "n_cells": int(adata.n_obs),
             "n_genes": int(adata.n_vars)}
    storage_obj = open_storage(storage)
    study, created = open_study(storage_obj, study_name, attrs)
    n_before = len(study.get_trials(deepcopy=False))
    study.sampler = space.make_sampler(seed + n_before if sampler_seed is None else sampler_seed)
    study.pruner = space.make_pruner()
    tracker = None
    if experiment:
        tags = {"lshgan.study": study_name, "lshgan.dataset_hash": data_hash,
                "optuna.storage": redact(storage)}
        tracker = StudyTracker.for_study(
            study, created=created, experiment=experiment, tags=tags,
            params={**attrs, "storage": redact(storage), "search_space": space.to_dict()})
    if n_trials:
        if folds == 1:
            validation = ValidationSplit.carve(adata, val_size=val_size, label_key=label_key,
                                               seed=seed)
        else:
            validation = ValidationSplit.folds(adata, folds, label_key=label_key, seed=seed)
        objective = make_objective(validation, space, seed=seed, device=device, base=base_params,
                                   tracker=tracker)
        study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(LSHGANError,),
                       gc_after_trial=True)
    out = None
    if params_out is not None:
        out = write_best_params(study, params_out)
    if tracker:
        tracker.finish(study, out)
    return study


def best_train_params(study: "optuna.Study") -> tuple[dict[str, Any], Any]:
    """The ``train`` settings of the study's best completed trial, and that trial."""
    best = best_trial(study)
    if best is None:
        raise ParameterError(f"study {study.study_name!r} has no completed trial yet "
                             f"({state_counts(study)}); run more trials")
    params = best.user_attrs.get("train_params") or expand_layers(best.params)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}, best


def write_best_params(study: "optuna.Study", path: str | os.PathLike) -> Path:
    """Write the best trial's settings as the ``train`` section of a YAML params file."""
    import yaml

    from ...io import atomic_path

    params, best = best_train_params(study)
    seed = (study.user_attrs.get(STUDY_ATTR) or {}).get("seed")
    if seed is not None:
        params["seed"] = seed
    header = (f"# Best trial ({best.number}) of Optuna study {study.study_name!r}: validation "
              f"objective {best.value:.4f} (lower is better).\n"
              "# Written by `lshgan tune`: the train section of params.yaml the trial started from, "
              "with the tuned values.\n")
    with atomic_path(path, force=True) as tmp:
        tmp.write_text(header + yaml.safe_dump({"train": params}, sort_keys=False))
    return Path(path)


def dvc_set_args(params: dict[str, Any]) -> str:
    """``-S train.KEY=VALUE ...`` arguments of ``dvc exp run`` for these settings."""
    def fmt(v):
        return "[" + ",".join(map(str, v)) + "]" if isinstance(v, (list, tuple)) else str(v)

    return " ".join(f"-S 'train.{k}={fmt(v)}'" for k, v in params.items())
