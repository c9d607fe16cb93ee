"""The MLOps subcommands of ``lshgan``: track, register, log-metrics, sample, augment, serve, tune.

:func:`add_subcommands` is called by :func:`lshgan.cli.add_mlops_subcommands`, the one place
the MLOps layer joins the command line (this package imports nothing of :mod:`lshgan.cli`)::

    lshgan track pbmc68k_reduced --epochs 30 --register     # one tracked run (MLproject main)
    lshgan register models/pbmc68k_reduced --metrics reports/pbmc68k_reduced/metrics.json \\
        --dataset pbmc68k_reduced                             # log + register a trained model
    lshgan serve --dataset pbmc68k_reduced --port 5000       # serve the champion
    lshgan sample --model http://127.0.0.1:5000 -n 500 --cell-type "CD19+ B" -o cells.h5ad
    lshgan augment --model models:/lshgan-pbmc68k_reduced@champion \\
        --input data/processed/pbmc68k_reduced.h5ad --ratio 1.5 --output augmented.h5ad
    lshgan tune data/split/pbmc68k_reduced/train.h5ad --label-key cell_type --n-trials 20

Tracking goes to ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///mlflow.db`` here
(:mod:`lshgan.mlops.tracking`).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
from pathlib import Path

from ..errors import LSHGANError, check_positive_int


class TrackingError(LSHGANError):
    """MLflow refused an operation (unreachable server, unknown model, ...)."""


def _mlflow_errors_as_user_errors(func):
    """Report MLflow's errors (bad URIs, unreachable stores) in one line, like other user errors."""

    @functools.wraps(func)
    def wrapper(args):
        try:
            from mlflow.exceptions import MlflowException
        except ImportError:  # pragma: no cover - mlflow is a dependency of this package
            return func(args)
        try:
            return func(args)
        except MlflowException as err:
            raise TrackingError(str(err.message).strip().splitlines()[0]) from None

    return wrapper


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


# ---------------------------------------------------------------------------- commands
@_mlflow_errors_as_user_errors
def cmd_track(args) -> int:
    from .pipeline import PARAMS_FILE, load_params, parse_assignments, track_experiment

    sections = ("preprocess", "split", "train", "generate", "evaluate", "register")
    params_file = Path(args.params)
    if args.params != PARAMS_FILE and not params_file.exists():
        raise TrackingError(f"{params_file}: parameters file not found")
    params = {s: (load_params(s, path=params_file) if params_file.exists() else {}) for s in sections}
    for key, value in parse_assignments(args.set).items():
        section, _, name = key.partition(".")
        if section not in sections or not name:
            raise TrackingError(f"-S {key}: use SECTION.KEY with a section among {', '.join(sections)}")
        params[section][name] = value
    for name in ("epochs", "k", "t", "seed", "device"):
        if getattr(args, name) is not None:
            params["train"][name] = getattr(args, name)
    summary = track_experiment(args.dataset, label_key=args.label_key or None, params=params,
                               dataset=args.name, out=args.out, register=args.register,
                               progress=not args.quiet)
    print(json.dumps(summary, indent=2, default=str))
    return 0


@_mlflow_errors_as_user_errors
def cmd_register(args) -> int:
    from .pipeline import register

    register(args.model, args.metrics, dataset=args.dataset, params={"max_cells": args.max_cells},
             train_path=args.train, plots=args.plots, output=args.output)
    return 0


@_mlflow_errors_as_user_errors
def cmd_log_metrics(args) -> int:
    from . import tracking

    path = Path(args.metrics)
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise TrackingError(f"{path}: cannot read the metrics JSON ({err})") from None
    with tracking.start_run(args.dataset, tags={"lshgan.source": "evaluate"}) as run:
        metrics = tracking.evaluation_metrics(result)
        tracking.log_metrics(metrics)
        tracking.log_pictures([path], artifact_path="evaluation")
        if args.plots:
            tracking.log_pictures(sorted(Path(args.plots).glob("*.png")))
    _say(f"logged {len(metrics)} metrics to run {run.info.run_id}")
    return 0


@_mlflow_errors_as_user_errors
def cmd_sample(args) -> int:
    from ..io import check_writable, output_lock, write_h5ad
    from .augment import sample

    check_positive_int("--n-cells", args.n_cells)  # named as the user typed it
    check_writable(args.output, force=args.force, suffix=".h5ad")
    with output_lock(args.output):
        cells = sample(args.model, args.n_cells, cell_type=args.cell_type, seed=args.seed,
                       layer=args.layer)
        cells.uns["lshgan_sample"] = {"model": str(args.model), "seed": args.seed,
                                      "layer": args.layer}
        write_h5ad(cells, args.output, force=args.force)
    _say(f"generated {cells.n_obs} cells x {cells.n_vars} genes: {args.output}")
    return 0


@_mlflow_errors_as_user_errors
def cmd_augment(args) -> int:
    from ..errors import GeneMismatchError
    from ..io import check_writable, output_lock, read_dataset, write_h5ad
    from .augment import augment

    check_writable(args.output, force=args.force, suffix=".h5ad")
    with output_lock(args.output):
        real = read_dataset(args.input, label_key=args.label_key)
        try:
            out = augment(args.model, real, ratio=args.ratio, seed=args.seed, label_key=args.label_key)
        except GeneMismatchError as err:
            raise GeneMismatchError(f"{args.input}: {err} ({args.model})") from None
        write_h5ad(out, args.output, force=args.force)
    _say(f"wrote {out.n_obs} cells ({int(out.obs['synthetic'].sum())} generated): {args.output}")
    return 0


def serve_command(model_uri: str, *, host: str = "127.0.0.1", port: int = 5000,
                  workers: int = 1) -> list[str]:
    """The ``mlflow models serve`` command line for ``model_uri`` (local environment)."""
    mlflow = shutil.which("mlflow") or "mlflow"
    return [mlflow, "models", "serve", "-m", model_uri, "--env-manager", "local",
            "-h", host, "-p", str(port), "--workers", str(workers)]


def serve_environment() -> dict[str, str]:
    """The environment of a model server: tracking URI, no telemetry, no job workers."""
    from .tracking import tracking_uri

    return {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(),
            "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"),
            "DO_NOT_TRACK": os.environ.get("DO_NOT_TRACK", "true"),
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def cmd_serve(args) -> int:
    from .registry import champion_uri

    uri = args.model or champion_uri(args.dataset)
    cmd = serve_command(uri, host=args.host, port=args.port, workers=args.workers)
    _say("serving: " + " ".join(cmd))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(cmd[0], cmd, serve_environment())
    return 0  # pragma: no cover - exec does not return


# ---------------------------------------------------------------------------- parsers
def add_subcommands(subparsers) -> None:
    """Add the MLOps subcommands, ``tune`` included, to ``lshgan``."""
    p = subparsers.add_parser(
        "track", help="preprocess, split, train, generate, evaluate in one MLflow run (+ register)",
        description="One MLflow run end to end: parameters, per-epoch losses, metrics, pictures "
                    "and the pyfunc model; with --register, a new version of lshgan-<dataset> "
                    "that becomes the champion if its objective is better. Settings come from "
                    "params.yaml (if present), then -S, then the flags.")
    p.add_argument("dataset", help="dataset path, or pbmc68k_reduced (embedded, no download)")
    p.add_argument("--label-key", default="cell_type", help="obs column with cell types ('' for none)")
    p.add_argument("--name", default=None, help="dataset name for the experiment and registered model "
                                               "(default: from the path)")
    p.add_argument("--params", default="params.yaml", help="parameters file (default params.yaml)")
    p.add_argument("-S", "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a parameter, e.g. -S train.lr=0.001 (repeatable)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--k", type=int, default=None)
    p.add_argument("--t", type=int, default=None)
    p.add_argument("--seed", type=int, default=None, help="training seed")
    p.add_argument("--device", default=None, help="auto, cpu or cuda")
    p.add_argument("--out", default=None, help="keep the files here (default: a temporary folder)")
    p.add_argument("--register", action="store_true", help="register the model; move the champion if better")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_track)

    p = subparsers.add_parser(
        "register", help="log a trained model and its metrics to MLflow and register it",
        description="Log a model folder (lshgan train) and its metrics JSON (lshgan evaluate) as an "
                    "MLflow run, register it as lshgan-<dataset>, and give it the champion alias "
                    "if its objective beats the current champion's.")
    p.add_argument("model", help="model folder")
    p.add_argument("--metrics", required=True,
                   help="evaluation JSON of the model (lshgan evaluate -o, or the evaluate stage's "
                        "evaluation.json / metrics.json)")
    p.add_argument("--dataset", required=True, help="dataset name (registered model lshgan-<dataset>)")
    p.add_argument("--train", default=None, help="training cells (.h5ad), for the dataset hash")
    p.add_argument("--plots", default=None, help="folder of PNG pictures to log")
    p.add_argument("--output", default=None, help="write the registration here (JSON)")
    p.add_argument("--max-cells", type=int, default=20_000, help="most cells per request when served")
    p.set_defaults(func=cmd_register)

    p = subparsers.add_parser("log-metrics", help="log a metrics JSON (lshgan evaluate) to MLflow")
    p.add_argument("metrics", help="metrics JSON")
    p.add_argument("--dataset", default="dataset", help="dataset name (experiment lshgan-<dataset>)")
    p.add_argument("--plots", default=None, help="folder of PNG pictures to log")
    p.set_defaults(func=cmd_log_metrics)

    model_help = ("model: a folder (lshgan train), an MLflow URI (models:/lshgan-NAME@champion) "
                  "or a served endpoint (http://127.0.0.1:5000)")
    p = subparsers.add_parser("sample", help="generate cells from a registered, served or saved model")
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument("-n", "--n-cells", type=int, required=True)
    p.add_argument("--cell-type", default=None, help="only this cell type")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layer", default="log", choices=["log", "normalized", "counts"],
                   help="what .X holds: log2(1+x) (default), the normalised linear scale, or "
                        "integer counts (models trained on count data)")
    p.add_argument("-o", "--output", required=True, help="output .h5ad")
    p.add_argument("--force", action="store_true", help="overwrite the output")
    p.set_defaults(func=cmd_sample)

    p = subparsers.add_parser(
        "augment", help="add generated cells to a real dataset up to RATIO cells per gene",
        description="Add generated cells, in the real data's cell-type proportions, until the "
                    "dataset holds RATIO x n_genes cells (the LSH-GAN paper's sample:feature ratio).")
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument("--input", required=True, help="real cells (.h5ad, preprocessed: log2(1+x) scale)")
    p.add_argument("--ratio", type=float, default=1.5, help="target cells per gene (default 1.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label-key", default=None, help="obs column with cell types (default: the model's)")
    p.add_argument("-o", "--output", required=True, help="output .h5ad")
    p.add_argument("--force", action="store_true", help="overwrite the output")
    p.set_defaults(func=cmd_augment)

    p = subparsers.add_parser(
        "serve", help="serve a model (default: the champion of a dataset) over HTTP",
        description="Run `mlflow models serve --env-manager local` on the project's tracking store "
                    "(POST /invocations, GET /ping).")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="model URI, e.g. models:/lshgan-pollen@champion")
    which.add_argument("--dataset", help="serve models:/lshgan-<dataset>@champion")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=cmd_serve)

    from .tuning.cli import add_parser as add_tune  # optuna is imported when a study runs

    add_tune(subparsers)
