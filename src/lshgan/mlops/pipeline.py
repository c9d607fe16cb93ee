"""The DVC and MLflow glue of the pipeline: ``params.yaml``, stage scripts, one tracked run.

``ingest -> preprocess -> split -> train -> generate -> evaluate -> register``: the DVC
stage scripts (``stages/*.py``) read their own section of ``params.yaml``
(:func:`load_params`, ``-S`` overrides: :func:`parse_assignments`) and call the step of
:mod:`lshgan.workflow` (the same functions as the ``lshgan`` command line); the Kubeflow
components run the stage scripts.  This module adds what needs MLflow: :func:`register`
(the ``register`` stage), :func:`track_experiment` (``lshgan track``, the MLproject's
``main`` and ``train``: the workflow's steps in one MLflow run) and :func:`summarise`
(all-datasets).

``params.yaml`` sections (keys, and who reads them):

* ``preprocess`` -- fields of :class:`~lshgan.PreprocessConfig`
  (:func:`lshgan.config.preprocess_config`);
* ``split`` -- ``test_size``, ``seed``;
* ``train`` -- the flat settings of :func:`lshgan.config.train_configs`: fields of
  :class:`~lshgan.ModelConfig` and :class:`~lshgan.TrainConfig` (``k``, ``t``, ``epochs``,
  ``seed``, ...), plus ``lr`` (both learning rates), ``width`` and ``depth`` (``depth``
  hidden layers of ``width`` units in G and D), ``paper`` or ``preset`` (the settings to
  start from), ``device`` and ``threads`` (CPU threads of torch; 0 or absent: torch's
  default): the keys ``lshgan tune`` writes;
* ``generate`` -- ``n_cells`` (``test``: as many as the test split, with its cell types),
  ``seed``;
* ``evaluate`` -- ``seed``, ``references`` (also score the copy/gaussian references and the
  real-vs-real control);
* ``register`` -- ``max_cells`` (the served model's bound per request).

Examples
--------
>>> params = load_params("train", overrides={"epochs": 2})            # doctest: +SKIP
>>> workflow.train("data/split/pollen/train.h5ad", "models/pollen", label_key="cell_type",
...                settings=params, plots="reports/pollen", force=True)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from .. import workflow
from ..errors import LSHGANError, ParameterError

#: The parameters file of the project (relative to the current folder).
PARAMS_FILE = "params.yaml"


# ---------------------------------------------------------------------------- parameters
def load_params(section: str, *, path: str | os.PathLike = PARAMS_FILE,
                overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """One section of ``params.yaml`` as a dict, with ``overrides`` applied on top."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ParameterError(f"{path}: parameters file not found (run from the project root)") from None
    except yaml.YAMLError as err:
        raise ParameterError(f"{path}: not valid YAML ({err})") from None
    if section not in data:
        raise ParameterError(f"{path}: no {section!r} section (sections: {', '.join(data)})")
    return {**(data[section] or {}), **(overrides or {})}


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``["epochs=5", "g_hidden=[64,64]"]`` -> ``{"epochs": 5, "g_hidden": [64, 64]}`` (YAML values).

    ``None`` (what DVC writes for a ``null`` of params.yaml in ``-S key=${item.key}``) is
    ``None``, like YAML's ``null`` and ``~``.

    Examples
    --------
    >>> parse_assignments(["epochs=5", "lr=1e-3", "device=cpu", "min_genes=None", "min_count=auto"])
    {'epochs': 5, 'lr': 0.001, 'device': 'cpu', 'min_genes': None, 'min_count': 'auto'}
    """
    import yaml

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"expected KEY=VALUE, got {item!r}")
        parsed = yaml.safe_load(value) if value.strip() else None
        if isinstance(parsed, str) and _is_float(parsed):  # YAML 1.1 reads 1e-3 as text
            parsed = float(parsed)
        elif parsed == "None":
            parsed = None
        out[key.strip()] = parsed
    return out


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------- register
def register(model_dir: str | os.PathLike, evaluation_path: str | os.PathLike, *, dataset: str,
             params: dict[str, Any], train_path: str | os.PathLike | None = None,
             plots: str | os.PathLike | None = None, output: str | os.PathLike | None = None):
    """Log a trained model and its evaluation as an MLflow run; register it; maybe promote it.

    ``evaluation_path`` is the full evaluation JSON of :func:`lshgan.workflow.evaluate`.  The run holds the
    parameters, the per-epoch losses (from the saved history), the final metrics, the
    pictures in ``plots``, the evaluation JSON and the pyfunc model; the model
    becomes a version of ``lshgan-<dataset>`` and the ``champion`` if its objective beats
    the current champion's.  ``output`` receives the registration as JSON.
    """
    from ..io import dataset_hash, read_dataset, write_json
    from ..model import LSHGAN
    from . import tracking

    model = LSHGAN.load(model_dir)
    result = json.loads(Path(evaluation_path).read_text())
    train_cells = read_dataset(train_path) if train_path else None
    data_hash = dataset_hash(train_cells) if train_cells is not None else None
    with tracking.start_run(dataset, run_name=f"dvc-{tracking.dataset_name(dataset)}",
                            tags={"lshgan.source": "dvc"}) as run:
        tracking.log_params(tracking.run_params(model, dataset=dataset, dataset_hash=data_hash,
                                                n_train_cells=None if train_cells is None else train_cells.n_obs))
        if model.history is not None:
            tracking.log_history(model.history)
        reg = log_and_register(model_dir, result, dataset=dataset, plots=plots,
                               evaluation_path=evaluation_path,
                               max_cells=int(params.get("max_cells", 20_000)), register=True,
                               tags={"dataset_hash": data_hash or ""}, run_id=run.info.run_id)
    if output is not None:
        write_json(reg.to_dict(), output, force=True)
    workflow.say(f"register: {reg.name} version {reg.version}, objective {reg.objective}; "
         + ("now the champion" if reg.champion else f"champion stays version {reg.previous_champion} "
            f"(objective {reg.previous_objective})"))
    return reg


def log_and_register(model_dir, result: dict, *, dataset: str, plots=None, evaluation_path=None,
                     max_cells: int = 20_000, register: bool = True,
                     tags: dict[str, str] | None = None, run_id: str | None = None):
    """In the active run: log final metrics, pictures and the pyfunc model; maybe register.

    Returns the :class:`~lshgan.mlops.registry.Registration`, or the logged model's
    ``ModelInfo`` when ``register`` is false.
    """
    from . import registry, tracking
    from .serving.log_model import log_model

    metrics = tracking.evaluation_metrics(result)
    tracking.log_metrics(metrics)
    if plots is not None:
        tracking.log_pictures(sorted(Path(plots).glob("*.png")))
    if evaluation_path is not None:
        tracking.log_pictures([evaluation_path], artifact_path="evaluation")
    info = log_model(model_dir, max_cells=max_cells)
    if not register:
        return info
    return registry.register(info.model_uri, dataset=dataset, objective=metrics.get("objective"),
                             tags=tags, run_id=run_id)


def summarise(folder: str | os.PathLike, output: str | os.PathLike,
              table: str | os.PathLike | None = None) -> dict:
    """Collect ``<folder>/<dataset>/metrics.json`` into one metrics JSON (+ a Markdown table).

    Per dataset: the generator's ``objective``, ``rf_auc``, ``dcr``, ``recall`` and
    ``substate_coverage``, and the references' when they were scored (``copy_rf_auc``, ...;
    the ``real-vs-real`` control only with its ``rf_auc``, ``recall`` and
    ``substate_coverage``: its DCR is 0 by construction and it has no objective).
    """
    from ..io import atomic_path, write_json
    from ..metrics import REAL_VS_REAL

    core, diversity = ("objective", "rf_auc", "dcr"), ("recall", "substate_coverage")
    rows = {}
    for path in sorted(Path(folder).glob("*/metrics.json")):
        result = json.loads(path.read_text())
        row = {k: result.get(k) for k in core}
        row.update({k: result[k] for k in diversity if k in result})  # not in older files
        for ref, values in (result.get("references") or {}).items():
            if ref == REAL_VS_REAL:
                row.update({f"{ref}_{k}": values[k] for k in ("rf_auc", *diversity) if k in values})
            else:
                row.update({f"{ref}_{k}": values.get(k) for k in core})
        rows[path.parent.name] = row
    if not rows:
        raise ParameterError(f"{folder}: no <dataset>/metrics.json to summarise")
    write_json(rows, output, force=True)
    if table is not None:
        cols = list(dict.fromkeys(k for row in rows.values() for k in row))
        lines = ["| dataset | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for name, row in rows.items():
            cells = [f"{row[c]:.3f}" if isinstance(row.get(c), float) else str(row.get(c, ""))
                     for c in cols]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        with atomic_path(table, force=True) as tmp:
            tmp.write_text("\n".join(lines) + "\n")
    workflow.say(f"summary: {len(rows)} datasets -> {output}")
    return rows


# ---------------------------------------------------------------------------- one tracked run
def track_experiment(source: str, *, label_key: str | None = "cell_type",
                     params: dict[str, dict[str, Any]], dataset: str | None = None,
                     out: str | os.PathLike | None = None, register: bool = False,
                     progress: bool = False) -> dict:
    """preprocess -> split -> train -> generate -> evaluate in one MLflow run (+ register).

    Losses are logged live, every epoch.  ``params`` maps section names to sections (see
    :func:`load_params`); ``out`` keeps the files (a temporary folder otherwise: the run
    holds everything).  Returns a summary (run id, metrics, registration).
    """
    from ..config import preprocess_config, runtime, train_configs
    from ..io import dataset_hash, write_h5ad
    from ..preprocess import stratified_split
    from . import tracking

    name = tracking.dataset_name(dataset or source)
    tmp = None if out is not None else tempfile.mkdtemp(prefix="lshgan-track-")
    out = Path(out or tmp)
    try:
        raw, pp = workflow.read_and_preprocess(source, preprocess_config(params.get("preprocess", {})),
                                               label_key=label_key)
        sp = {"test_size": 0.2, "seed": 0, **params.get("split", {})}
        train_cells, test_cells = stratified_split(pp, test_size=float(sp["test_size"]),
                                                   label_key=label_key, seed=int(sp["seed"]),
                                                   name=str(source))
        out.mkdir(parents=True, exist_ok=True)
        workflow.write_split(train_cells, test_cells, out / "train.h5ad", out / "test.h5ad", force=True)
        data_hash = dataset_hash(train_cells)
        section = params.get("train", {})
        model_cfg, train_cfg = train_configs(section, n_cells=train_cells.n_obs)
        device, threads = runtime(section)
        workflow.set_threads(threads)
        with tracking.start_run(name, tags={"lshgan.source": "track"}) as run:
            model = workflow.build_model(train_cells, model_cfg, label_key=label_key,
                                         name=f"{source} (training split)")
            tracking.log_params(tracking.run_params(
                model, dataset=name, dataset_hash=data_hash, train_config=train_cfg,
                n_train_cells=train_cells.n_obs,
                extra={"source": str(source), "device": device, "test_size": sp["test_size"],
                       "split_seed": sp["seed"], "raw_hash": dataset_hash(raw)}))
            workflow.fit(model, train_cfg, device=device, progress=progress,
                         callback=tracking.epoch_logger())
            model.save(out / "model", force=True)
            workflow.write_loss_plots(model.history, out / "plots")
            gp = {"n_cells": "test", "seed": 0, **params.get("generate", {})}
            cells = workflow.generate_cells(model, gp["n_cells"], test=test_cells,
                                            label_key=label_key, seed=int(gp["seed"]))
            write_h5ad(cells, out / "generated.h5ad", force=True)
            ep = {"seed": 0, "references": True, **params.get("evaluate", {})}
            result, _ = workflow.evaluate(cells, train_cells, test_cells, out / "evaluation.json",
                                          label_key=label_key, seed=ep["seed"],
                                          references=ep["references"], plots=out / "plots",
                                          summary=out / "metrics.json", force=True)
            result["train_seconds"] = model.train_seconds
            outcome = log_and_register(out / "model", result, dataset=name, plots=out / "plots",
                                       evaluation_path=out / "evaluation.json", register=register,
                                       max_cells=int(params.get("register", {}).get("max_cells", 20_000)),
                                       tags={"dataset_hash": data_hash}, run_id=run.info.run_id)
            summary = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
                       "objective": result["objective"], "rf_auc": result["lshgan"]["rf_auc"],
                       "dcr": result["lshgan"]["dcr"]}
            if register:
                summary["registration"] = outcome.to_dict()
            else:
                summary["model_uri"] = outcome.model_uri
        return summary
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------- stage scripts
def run_stage(main: Callable[[list[str] | None], Any], argv: list[str] | None = None) -> int:
    """Run a stage script's ``main``: user errors print ``error: ...`` and exit 2, no traceback."""
    try:
        with workflow.user_warnings():
            main(argv)
    except LSHGANError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def add_stage_arguments(parser, *, label_key: bool = True) -> None:
    """``--label-key``, ``--params`` and ``-S KEY=VALUE`` (overrides of the stage's section)."""
    if label_key:
        parser.add_argument("--label-key", default=None, help="obs column with cell types")
    parser.add_argument("--params", default=PARAMS_FILE, help=f"parameters file (default {PARAMS_FILE})")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of this stage's params section (repeatable)")
