"""The steps of the pipeline as functions of files and parameters.

``ingest -> preprocess -> split -> train -> generate -> evaluate -> register``: the DVC
stage scripts (``stages/*.py``) are a few lines each around these functions, each reading
its own section of ``params.yaml`` (:func:`load_params`); the Kubeflow components and
:func:`track_experiment` (``lshgan track``, the MLproject's ``main`` and ``train``) run the
same steps.

``params.yaml`` sections (keys, and who reads them):

* ``preprocess`` -- fields of :class:`~lshgan.PreprocessConfig`;
* ``split`` -- ``test_size``, ``seed``;
* ``train`` -- fields of :class:`~lshgan.ModelConfig` and :class:`~lshgan.TrainConfig`
  (``k``, ``t``, ``epochs``, ``seed``, ...), plus ``lr`` (both learning rates), ``width``
  and ``depth`` (``depth`` hidden layers of ``width`` units in G and D), ``paper`` (start
  from the paper-faithful configuration), ``device`` and ``threads`` (CPU threads of torch;
  0 or absent: torch's default): the keys ``lshgan tune`` writes;
* ``generate`` -- ``n_cells`` (``test``: as many as the test split, with its cell types),
  ``seed``;
* ``evaluate`` -- ``seed``, ``references`` (also score the copy/gaussian references and the
  real-vs-real control);
* ``register`` -- ``max_cells`` (the served model's bound per request).

Examples
--------
>>> params = load_params("train", overrides={"epochs": 2})            # doctest: +SKIP
>>> train("data/split/pollen/train.h5ad", "models/pollen", label_key="cell_type",
...       params=params, plots="reports/pollen")                       # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Callable

from ..errors import LSHGANError, ParameterError

#: The parameters file of the project (relative to the current folder).
PARAMS_FILE = "params.yaml"
#: ``train`` keys that are not config fields (see the module doc).
TRAIN_EXTRA_KEYS = ("device", "threads", "lr", "width", "depth", "paper")


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


def _build(cls, section: dict[str, Any], what: str):
    valid = {f.name for f in fields(cls)}
    unknown = sorted(set(section) - valid)
    if unknown:
        raise ParameterError(f"{what}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    try:
        return cls(**section)
    except TypeError as err:
        raise ParameterError(f"{what}: {err}") from None


def preprocess_config(section: dict[str, Any]):
    """:class:`~lshgan.PreprocessConfig` from the ``preprocess`` section."""
    from ..preprocess import PreprocessConfig

    return _build(PreprocessConfig, section, "preprocess")


def train_configs(section: dict[str, Any]):
    """``(ModelConfig, TrainConfig, device)`` from the ``train`` section (see the module doc).

    Examples
    --------
    >>> model, train, device = train_configs({"k": 3, "epochs": 2, "lr": 1e-3, "width": 64})
    >>> model.k, model.g_hidden, train.lr_g, device
    (3, (64, 64), 0.001, 'auto')
    """
    from ..model import ModelConfig
    from ..module.training import TrainConfig

    p = dict(section)
    device = str(p.pop("device", "auto"))
    p.pop("threads", None)  # see set_threads
    paper = bool(p.pop("paper", False))
    lr = p.pop("lr", None)
    if lr is not None:
        p.setdefault("lr_g", lr)
        p.setdefault("lr_d", lr)
    width, depth = p.pop("width", None), p.pop("depth", None)
    if width is not None or depth is not None:
        base = ModelConfig().g_hidden
        hidden = [int(width or base[0])] * int(depth or len(base))
        p.setdefault("g_hidden", hidden)
        p.setdefault("d_hidden", list(hidden))
    model_keys = {f.name for f in fields(ModelConfig)}
    base = asdict(ModelConfig.paper()) if paper else asdict(ModelConfig())
    model = _build(ModelConfig, {**base, **{k: v for k, v in p.items() if k in model_keys}}, "train")
    train = _build(TrainConfig, {k: v for k, v in p.items() if k not in model_keys}, "train")
    return model, train, device


def set_threads(section: dict[str, Any]) -> None:
    """Apply ``threads`` of the ``train`` section to torch (0 or absent: torch's default).

    The networks are small: one thread is about as fast as two on an idle machine, and on a
    shared one it does not fight other jobs for the cores (two threads spinning on two busy
    cores were measured 8x slower per step).
    """
    threads = int(section.get("threads") or 0)
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------- the stages
def ingest(source: str | os.PathLike, output: str | os.PathLike, *, label_key: str | None = None) -> Path:
    """Copy a raw dataset into ``output`` (``.h5ad``), after checking that it reads.

    ``source``: the embedded default ``pbmc68k_reduced``, a file of ``../shared/data/``, or
    any path :func:`lshgan.read_dataset` reads.  An ``.h5ad`` file is copied byte for byte
    (raw data stays immutable); other formats are converted.
    """
    from ..io import atomic_path, output_lock, read_dataset, write_h5ad

    adata = read_dataset(source, label_key=label_key)
    with output_lock(output):
        if str(source).endswith(".h5ad"):
            with atomic_path(output, force=True) as tmp:
                shutil.copyfile(source, tmp)
        else:
            write_h5ad(adata, output, force=True)
    _say(f"ingest: {source} ({adata.n_obs} cells x {adata.n_vars} genes) -> {output}")
    return Path(output)


def preprocess(input: str | os.PathLike, output: str | os.PathLike, *, label_key: str | None,
               params: dict[str, Any]) -> Path:
    """Filter, normalise and log-transform (``preprocess`` section)."""
    from ..io import output_lock, read_dataset, write_h5ad
    from ..preprocess import preprocess as run

    config = preprocess_config(params)
    with output_lock(output):
        adata = read_dataset(input, label_key=label_key, layer=config.layer)
        out, _ = run(adata, config, name=str(input))
        write_h5ad(out, output, force=True)
    _say(f"preprocess: {adata.n_obs} x {adata.n_vars} -> {out.n_obs} cells x {out.n_vars} genes")
    return Path(output)


def split(input: str | os.PathLike, train_out: str | os.PathLike, test_out: str | os.PathLike, *,
          label_key: str | None, params: dict[str, Any]) -> tuple[Path, Path]:
    """Stratified train/test split (``split`` section: ``test_size``, ``seed``)."""
    from ..cli import split_cells
    from ..io import output_lock, read_dataset, write_h5ad

    p = {"test_size": 0.2, "seed": 0, **params}
    with output_lock(train_out), output_lock(test_out):
        adata = read_dataset(input, label_key=label_key)
        train_cells, test_cells = split_cells(adata, name=str(input), test_size=float(p["test_size"]),
                                              label_key=label_key, seed=int(p["seed"]))
        write_h5ad(train_cells, train_out, force=True)
        write_h5ad(test_cells, test_out, force=True)
    _say(f"split: {train_cells.n_obs} train / {test_cells.n_obs} test cells")
    return Path(train_out), Path(test_out)


def train(train_path: str | os.PathLike, model_dir: str | os.PathLike, *, label_key: str | None,
          params: dict[str, Any], plots: str | os.PathLike | None = None,
          callback: Callable | None = None, progress: bool = False):
    """Train on the training split (``train`` section); save the model; write the loss curves.

    With ``plots``, writes ``losses.csv`` (epoch, d_loss, g_loss: a DVC plot) and
    ``losses.png`` there.  Returns the trained :class:`~lshgan.LSHGAN`.
    """
    from ..io import check_training_cells, output_lock, read_dataset
    from ..model import LSHGAN

    model_cfg, train_cfg, device = train_configs(params)
    set_threads(params)
    with output_lock(model_dir):
        adata = read_dataset(train_path, label_key=label_key)
        check_training_cells(adata, name=str(train_path), label_key=label_key, k=model_cfg.k)
        model = LSHGAN(adata, label_key=label_key, config=model_cfg)
        model.train(config=train_cfg, device=device, progress=progress, callback=callback)
        model.save(model_dir, force=True)
        if plots is not None:
            write_loss_plots(model.history, plots)
    _say(f"train: {model!r}, {train_cfg.epochs} epochs in {model.train_seconds:.1f} s -> {model_dir}")
    return model


def write_loss_plots(history, folder: str | os.PathLike) -> None:
    """``losses.csv`` and ``losses.png`` of a training history in ``folder``."""
    import pandas as pd

    from ..io import atomic_path
    from ..plotting import plot_losses

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame({"epoch": history.epoch, "d_loss": history.d_loss, "g_loss": history.g_loss})
    with atomic_path(folder / "losses.csv", force=True) as tmp:
        table.to_csv(tmp, index=False)
    plot_losses(history, folder / "losses.png", force=True)


def generate_cells(model, test, *, label_key: str | None, params: dict[str, Any]):
    """Generated cells for evaluation (``generate`` section: ``n_cells``, ``seed``).

    ``n_cells: test`` (default): as many cells as ``test`` holds, with exactly its cell
    types when the model is conditional (the fair protocol of :mod:`lshgan.metrics`).
    """
    p = {"n_cells": "test", "seed": 0, **params}
    seed = int(p["seed"])
    if p["n_cells"] in ("test", None):
        types = (list(test.obs[label_key].astype(str))
                 if label_key and label_key in test.obs and model.config.conditional else None)
        return model.generate(test.n_obs, cell_type=types, seed=seed)
    return model.generate(int(p["n_cells"]), seed=seed)


def generate(model_dir: str | os.PathLike, test_path: str | os.PathLike, output: str | os.PathLike, *,
             label_key: str | None, params: dict[str, Any]) -> Path:
    """Generate cells from a saved model (``generate`` section) into ``output``."""
    from ..cli import load_model
    from ..errors import GeneMismatchError
    from ..io import output_lock, read_dataset, write_h5ad
    from ..model import check_genes

    with output_lock(output):
        model = load_model(model_dir)
        test = read_dataset(test_path, label_key=label_key)
        try:
            check_genes(test, model.var_names, what=f"model {model_dir}")
        except GeneMismatchError as err:
            raise GeneMismatchError(f"{test_path}: {err}") from None
        cells = generate_cells(model, test, label_key=label_key, params=params)
        write_h5ad(cells, output, force=True)
    _say(f"generate: {cells.n_obs} cells -> {output}")
    return Path(output)


#: Generator metrics copied into the DVC metrics file (the full evaluation keeps them all).
SUMMARY_METRICS = ("rf_auc", "dcr", "wasserstein_genes", "wasserstein_pca", "mean_corr",
                   "var_corr", "dropout_corr", "recall", "coverage", "substate_coverage",
                   "marker_top50_overlap")


def summary_metrics(result: dict) -> dict:
    """The DVC metrics of an evaluation: ``objective``, the main metrics, the references'.

    The ``real-vs-real`` control (:data:`lshgan.metrics.REAL_VS_REAL`) gets no objective:
    its cells are training cells, so its DCR is 0 by construction and its objective would
    be a meaningless copying penalty; nothing may rank or register by it.

    Examples
    --------
    >>> summary_metrics({"lshgan": {"rf_auc": 0.9, "dcr": 1.0, "n_test": 5},
    ...                  "references": {"copy": {"rf_auc": 0.55, "dcr": 0.0},
    ...                                 "real-vs-real": {"rf_auc": 0.5, "dcr": 0.0}}})
    {'objective': 0.9, 'rf_auc': 0.9, 'dcr': 1.0, 'references': {'copy': {'objective': 2.35, 'rf_auc': 0.55, 'dcr': 0.0}, 'real-vs-real': {'rf_auc': 0.5, 'dcr': 0.0}}}
    """
    from ..metrics import REAL_VS_REAL
    from ..objective import objective_from_metrics

    def pick(values: dict, with_objective: bool = True) -> dict:
        out = {"objective": round(objective_from_metrics(values), 6)} if with_objective else {}
        out.update({k: values[k] for k in SUMMARY_METRICS if values.get(k) is not None})
        return out

    out = pick(result["lshgan"])
    refs = {name: pick(values, with_objective=name != REAL_VS_REAL)
            for name, values in (result.get("references") or {}).items()}
    if refs:
        out["references"] = refs
    return out


def evaluate(generated_path, train_path, test_path, metrics_out, *, label_key: str | None,
             params: dict[str, Any], evaluation_out: str | os.PathLike,
             plots: str | os.PathLike | None = None,
             generated=None, train_cells=None, test_cells=None) -> dict:
    """Score generated cells against the test split; write the evaluation, metrics and PNGs.

    ``evaluate`` section: ``seed``, ``references``.  ``evaluation_out`` receives the full
    JSON of ``lshgan evaluate`` plus ``objective`` (lower is better; :mod:`lshgan.objective`);
    ``metrics_out`` the DVC metrics (:func:`summary_metrics`).  Already loaded AnnData may be
    passed instead of reading the paths.  Returns the full evaluation.
    """
    from ..cli import evaluate_files
    from ..io import read_dataset, write_json
    from ..objective import objective_from_metrics

    p = {"seed": 0, "references": True, **params}
    generated = generated if generated is not None else read_dataset(generated_path)
    train_cells = train_cells if train_cells is not None else read_dataset(train_path, label_key=label_key)
    test_cells = test_cells if test_cells is not None else read_dataset(test_path, label_key=label_key)
    result, _ = evaluate_files(generated, train_cells, test_cells, label_key=label_key,
                               seed=int(p["seed"]), output=evaluation_out, plots=plots, force=True,
                               include_references=bool(p["references"]))
    result["objective"] = objective_from_metrics(result["lshgan"])
    write_json(result, evaluation_out, force=True)
    write_json(summary_metrics(result), metrics_out, force=True)
    m = result["lshgan"]
    _say(f"evaluate: rf_auc {m['rf_auc']:.3f}, dcr {m['dcr']:.3f}, objective "
         f"{result['objective']:.3f} -> {metrics_out}")
    return result


def register(model_dir: str | os.PathLike, evaluation_path: str | os.PathLike, *, dataset: str,
             params: dict[str, Any], train_path: str | os.PathLike | None = None,
             plots: str | os.PathLike | None = None, output: str | os.PathLike | None = None):
    """Log a trained model and its evaluation as an MLflow run; register it; maybe promote it.

    ``evaluation_path`` is the full evaluation JSON of :func:`evaluate`.  The run holds the
    parameters, the per-epoch losses (from the saved history), the final metrics, the
    pictures in ``plots``, the evaluation JSON and the pyfunc model; the model
    becomes a version of ``lshgan-<dataset>`` and the ``champion`` if its objective beats
    the current champion's.  ``output`` receives the registration as JSON.
    """
    from ..cli import load_model
    from ..io import dataset_hash, read_dataset, write_json
    from . import tracking

    model = load_model(model_dir)
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
    _say(f"register: {reg.name} version {reg.version}, objective {reg.objective}; "
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
    from . import pyfunc_model, registry, tracking

    metrics = tracking.evaluation_metrics(result)
    tracking.log_metrics(metrics)
    if plots is not None:
        tracking.log_pictures(sorted(Path(plots).glob("*.png")))
    if evaluation_path is not None:
        tracking.log_pictures([evaluation_path], artifact_path="evaluation")
    info = pyfunc_model.log_model(model_dir, max_cells=max_cells)
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
    _say(f"summary: {len(rows)} datasets -> {output}")
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
    from ..cli import split_cells
    from ..io import dataset_hash, read_dataset, write_h5ad
    from ..preprocess import preprocess as run_preprocess
    from . import tracking

    name = tracking.dataset_name(dataset or source)
    tmp = None if out is not None else tempfile.mkdtemp(prefix="lshgan-track-")
    out = Path(out or tmp)
    try:
        config = preprocess_config(params.get("preprocess", {}))
        raw = read_dataset(source, label_key=label_key, layer=config.layer)
        pp, _ = run_preprocess(raw, config, name=str(source))
        sp = {"test_size": 0.2, "seed": 0, **params.get("split", {})}
        train_cells, test_cells = split_cells(pp, name=str(source), test_size=float(sp["test_size"]),
                                              label_key=label_key, seed=int(sp["seed"]))
        out.mkdir(parents=True, exist_ok=True)
        write_h5ad(train_cells, out / "train.h5ad", force=True)
        write_h5ad(test_cells, out / "test.h5ad", force=True)
        data_hash = dataset_hash(train_cells)
        model_cfg, train_cfg, device = train_configs(params.get("train", {}))
        set_threads(params.get("train", {}))
        with tracking.start_run(name, tags={"lshgan.source": "track"}) as run:
            from ..model import LSHGAN

            model = LSHGAN(train_cells, label_key=label_key, config=model_cfg)
            tracking.log_params(tracking.run_params(
                model, dataset=name, dataset_hash=data_hash, train_config=train_cfg,
                n_train_cells=train_cells.n_obs,
                extra={"source": str(source), "device": device, "test_size": sp["test_size"],
                       "split_seed": sp["seed"], "raw_hash": dataset_hash(raw)}))
            model.train(config=train_cfg, device=device, progress=progress,
                        callback=tracking.epoch_logger())
            model.save(out / "model", force=True)
            write_loss_plots(model.history, out / "plots")
            cells = generate_cells(model, test_cells, label_key=label_key,
                                   params=params.get("generate", {}))
            write_h5ad(cells, out / "generated.h5ad", force=True)
            result = evaluate(None, None, None, out / "metrics.json", label_key=label_key,
                              params=params.get("evaluate", {}), plots=out / "plots",
                              evaluation_out=out / "evaluation.json",
                              generated=cells, train_cells=train_cells, test_cells=test_cells)
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
    from ..cli import user_warnings

    try:
        with user_warnings():
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


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)
