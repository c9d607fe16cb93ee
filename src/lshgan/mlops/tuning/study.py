"""The study loop of ``lshgan tune``: the Optuna objective (draw a trial's settings, train
on the validation split's fitting cells with pruning, score on its validation cells), a
study run end to end (:func:`tune`), and its best settings as the ``train`` section of a
params file for DVC.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ...errors import LSHGANError, ParameterError
from ...validation import ValidationSplit
from .search_space import SearchSpace, expand_layers
from .storage import DEFAULT_STORAGE, STUDY_ATTR, best_trial, open_storage, open_study, redact, state_counts
from .tracking import DEFAULT_EXPERIMENT, StudyTracker

if TYPE_CHECKING:  # heavy imports stay out of `lshgan --help`
    import anndata as ad
    import optuna


def _finite(values: dict[str, float]) -> dict[str, float]:
    """The finite ones of ``values`` (a diverged trial's NaN scores are not logged)."""
    return {k: v for k, v in values.items() if math.isfinite(v)}


def make_objective(validation: ValidationSplit, space: SearchSpace, *, seed: int, device: str,
                   base: dict[str, Any] | None = None,
                   tracker: StudyTracker | None = None) -> Callable[["optuna.Trial"], float]:
    """``objective(trial) -> float``: draw, train with pruning, score on the validation split.

    ``base``: the ``train`` section the trials start from (params.yaml's).
    """
    import optuna

    from ... import workflow
    from .. import tracking

    sc = space.scoring

    def run_trial(trial: optuna.Trial) -> float:
        values = space.suggest(trial)
        params = space.train_params(values, base)
        trial.set_user_attr("train_params", params)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        model_cfg, train_cfg = space.configs(values, seed=seed, base=base,
                                             n_cells=validation.fit.n_obs)
        logged = {**params, **values, "seed": seed, "device": device}
        run = tracker.trial_run(trial, logged) if tracker else contextlib.nullcontext()
        with run as run_id:
            model = workflow.build_model(validation.fit, model_cfg, label_key=validation.label_key,
                                         name="the tuning split")
            types = validation.cell_types(model.config.conditional)
            n_val = validation.val.n_obs
            logged = 0  # epochs whose losses are in MLflow
            last_epoch = train_cfg.planned_epochs(validation.fit.n_obs)

            def callback(epoch: int, history) -> None:
                nonlocal logged
                if epoch % space.report_every and epoch != last_epoch:
                    return
                if run_id:
                    logged = tracking.log_history(history, run_id, start=logged)
                if epoch == last_epoch:
                    return  # the full score follows
                scores = validation.score(model.generate(n_val, cell_type=types, seed=seed),
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

            workflow.fit(model, train_cfg, device=device, callback=callback)
            generated = model.generate(n_val, cell_type=types, seed=seed)
            scores = validation.score(generated, n_estimators=sc["n_estimators"],
                                      n_splits=sc["n_splits"])
            trial.set_user_attr("rf_auc", scores["rf_auc"])
            trial.set_user_attr("dcr", scores["dcr"])
            if run_id:
                tracking.log_metrics(_finite({**scores, "train_seconds": model.train_seconds}), run_id)
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
    val_size: float = 0.2,
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
        Validation split, training and sampler seed; all workers of a study use the same.
    sampler_seed
        Seed of the ``TPESampler`` (default ``seed`` + trials already in the study); give
        concurrent workers different ones so that their first random draws differ.
    val_size
        Fraction of the training cells held out for validation.
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
    if not 0 < val_size < 1:
        raise ParameterError(f"val_size must be in (0, 1), got {val_size}")
    space = search_space if isinstance(search_space, SearchSpace) else SearchSpace.from_yaml(search_space)
    optuna.logging.set_verbosity(optuna.logging.WARNING if quiet else optuna.logging.INFO)
    device = str(resolve_device(device)) if device == "auto" else device
    resolve_device(device)
    data_hash = dataset_hash(adata)
    attrs = {"dataset_hash": data_hash, "label_key": label_key, "seed": int(seed),
             "val_size": float(val_size), "n_cells": int(adata.n_obs), "n_genes": int(adata.n_vars)}
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
        validation = ValidationSplit.carve(adata, val_size=val_size, label_key=label_key, seed=seed)
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
