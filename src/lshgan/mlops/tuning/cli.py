"""``lshgan tune``: the subcommand's arguments, the checks of its input, and its summary.

See :mod:`lshgan.mlops.tuning` for what a study does and ``docs/tuning.md`` for how to run
one, on one machine or several.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import LSHGANError, ParameterError
from .search_space import DEFAULT_SEARCH_SPACE, SearchSpace, expand_layers
from .storage import DEFAULT_STORAGE, best_trial, state_counts
from .study import best_train_params, dvc_set_args, tune
from .tracking import DEFAULT_EXPERIMENT

if TYPE_CHECKING:  # heavy imports stay out of `lshgan --help`
    import anndata as ad


def _integer(text: str) -> int:
    """An integer, also written as a float (``mlflow run`` passes ``20.0`` for 20)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(value)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``tune`` to the ``lshgan`` subcommands (called by :mod:`lshgan.mlops.cli`)."""
    p = subparsers.add_parser(
        "tune", help="hyperparameter study (Optuna): k, t, epochs, learning rate, width",
        description="Search LSH-GAN hyperparameters for the lowest validation objective "
                    "(realism + memorisation penalty) on a validation split carved from the "
                    "training cells (or, with --folds K, the mean over a K-fold "
                    "cross-validation of them). Run the same command on several machines with "
                    "a shared --storage to distribute the study.")
    p.add_argument("input", metavar="DATASET",
                   help="preprocessed training cells (.h5ad), e.g. data/split/train.h5ad")
    p.add_argument("--label-key", default=None, help="obs column with cell types")
    p.add_argument("--n-trials", type=_integer, default=20,
                   help="trials this worker runs (default 20; 0: only write the best parameters)")
    p.add_argument("--study-name", default="lshgan", help="study to create or resume (default lshgan)")
    p.add_argument("--storage", default=DEFAULT_STORAGE,
                   help=f"Optuna storage: {DEFAULT_STORAGE} (default), FILE.log (journal), or "
                        "postgresql+psycopg2://USER@HOST:PORT/DB shared by several workers")
    p.add_argument("--search-space", default=None,
                   help=f"search-space YAML (default {DEFAULT_SEARCH_SPACE})")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--seed", type=_integer, default=0,
                   help="validation split, training and sampler seed (same on every worker)")
    p.add_argument("--sampler-seed", type=_integer, default=None,
                   help="TPE sampler seed (default: seed + trials already in the study); give "
                        "concurrent workers different ones")
    p.add_argument("--val-size", type=float, default=None,
                   help="fraction of the training cells held out for validation (default 0.2); "
                        "not with --folds K >= 2")
    p.add_argument("--folds", type=_integer, default=1, metavar="K",
                   help="K >= 2: K-fold cross-validation, each trial trains K models (one per "
                        "fold) and scores their mean objective, for small data where one "
                        "split is noisy (K times the training time); default 1: one split of "
                        "--val-size")
    p.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT,
                   help=f"MLflow experiment (default {DEFAULT_EXPERIMENT})")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--params", default="params.yaml",
                   help="trials start from the train section of this file (default params.yaml, "
                        "if present)")
    p.add_argument("--params-out", default="best_params.yaml",
                   help="write the best trial's train section here, for DVC (default "
                        "best_params.yaml; '' for none)")
    p.add_argument("--threads", type=_integer, default=None,
                   help="CPU threads of this worker (default: all cores; use 1 per worker when "
                        "several workers share a machine)")
    p.add_argument("--quiet", action="store_true", help="only warnings")
    p.set_defaults(func=cmd_tune)
    return p


def cmd_tune(args) -> int:
    from ...io import read_dataset

    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))
    space = SearchSpace.from_yaml(args.search_space)
    adata = read_dataset(args.input, label_key=args.label_key)
    check_tuning_input(adata, str(args.input))
    t0 = time.perf_counter()
    study = tune(adata, label_key=args.label_key, n_trials=args.n_trials, study_name=args.study_name,
                 storage=args.storage, search_space=space, device=args.device,
                 seed=args.seed, sampler_seed=args.sampler_seed, val_size=args.val_size,
                 folds=args.folds,
                 timeout=args.timeout, experiment=None if args.no_mlflow else args.experiment,
                 params_out=args.params_out or None, base_params=_base_params(args.params),
                 quiet=args.quiet)
    counts = {k: v for k, v in state_counts(study).items() if v}
    print(f"study {study.study_name!r}: {sum(counts.values())} trials "
          f"({', '.join(f'{v} {k.lower()}' for k, v in counts.items())}); this worker: "
          f"{args.n_trials} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    best = best_trial(study)
    if best is not None:
        params, _ = best_train_params(study)
        tuned = {k: params[k] for k in expand_layers({**space.fixed, **best.params})
                 if k in params}
        print(f"best: trial {best.number}, objective {best.value:.4f}: {tuned}", file=sys.stderr)
        if args.params_out:
            print(f"wrote {args.params_out} (the whole train section); or: dvc exp run "
                  f"{dvc_set_args(tuned)}", file=sys.stderr)
    return 0


def _base_params(path: str | None) -> dict[str, Any] | None:
    """The ``train`` section of a params file; None when the default file is absent."""
    from ..pipeline import PARAMS_FILE, load_params

    if path is None:
        return None
    if not Path(path).exists():
        if path == PARAMS_FILE:
            return None
        raise ParameterError(f"{path}: parameters file not found")
    return load_params("train", path=path)


def check_tuning_input(adata: "ad.AnnData", name: str) -> None:
    """Refuse data that is not preprocessed, or that holds test cells."""
    if "split" in adata.obs and (adata.obs["split"].astype(str) == "test").any():
        raise ParameterError(f"{name} holds test cells (obs['split'] == 'test'): tune on the "
                             "training split only; the objective uses a validation split of it")
    if "lshgan_preprocess" not in adata.uns:
        raise ParameterError(f"{name} is not preprocessed: tune expects the training cells "
                             "written by `lshgan split --train` (after `lshgan preprocess`)")


def main(argv: list[str] | None = None) -> int:
    """``python -m lshgan.mlops.tuning ...`` (the same as ``lshgan tune ...``)."""
    parser = argparse.ArgumentParser(prog="lshgan")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["tune", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except LSHGANError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
