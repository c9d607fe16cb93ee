"""The steps of LSH-GAN, file in and file out: read + preprocess, split, train, generate,
evaluate, and :func:`run` (all of them, into one folder).

Every front end calls these functions and none re-implements a step: the command line
(:mod:`lshgan.cli`), the DVC stage scripts (``stages/*.py``, which the Kubeflow components
of :mod:`lshgan.mlops.kubeflow` run), ``lshgan track``
(:func:`lshgan.mlops.pipeline.track_experiment`), the Optuna objective of ``lshgan tune``
(:func:`build_model`, :func:`fit`) and the paper report (:func:`read_and_preprocess`).
Settings come from :mod:`lshgan.config`.  This module is the core: it never imports
:mod:`lshgan.mlops`, MLflow, Optuna or DVC (the import-linter contracts of
``pyproject.toml``).

Each step writes its outputs atomically, under the output's lock
(:func:`lshgan.io.output_lock`), and refuses to overwrite an existing output unless
``force``.  User errors raise :class:`~lshgan.errors.LSHGANError` subclasses naming the
input and the problem.

Examples
--------
>>> from lshgan import workflow
>>> workflow.split("data/processed/pollen.h5ad", "train.h5ad", "test.h5ad",
...                label_key="cell_type")                                    # doctest: +SKIP
>>> model, _ = workflow.train("train.h5ad", "models/pollen", label_key="cell_type",
...                           settings={"epochs": 100, "k": 5})              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .errors import CheckpointError, DataWarning, InputDataError, OutputExistsError, ParameterError

if TYPE_CHECKING:  # heavy imports stay out of `lshgan --help`
    import anndata as ad

    from .model import LSHGAN, ModelConfig
    from .module.training import History, TrainConfig
    from .preprocess import PreprocessConfig

PathLike = str | os.PathLike


# ---------------------------------------------------------------------------- console
def say(msg: str) -> None:
    """A progress or result line on stderr (stdout stays for tables and JSON)."""
    print(msg, file=sys.stderr)


class _InfoLines(logging.Handler):
    """INFO records of the ``lshgan`` loggers as ``info: ...`` lines on (the current) stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"info: {record.getMessage()}", file=sys.stderr)


@contextlib.contextmanager
def _info_lines():
    """Print what the ``lshgan`` loggers say at INFO while inside (once, if nested)."""
    logger = logging.getLogger("lshgan")
    if any(isinstance(h, _InfoLines) for h in logger.handlers):
        yield
        return
    handler, level = _InfoLines(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextlib.contextmanager
def user_warnings():
    """Show :class:`~lshgan.errors.DataWarning` as one ``warning: ...`` line (no source line),
    and what lshgan logs at INFO (the detected kind of data and the filter report of
    :func:`lshgan.preprocess`) as ``info: ...`` lines."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, DataWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            default_show(message, category, filename, lineno, file, line)

    with _info_lines(), warnings.catch_warnings():
        default_show = warnings.showwarning
        warnings.showwarning = show
        warnings.simplefilter("always", DataWarning)
        # duplicated gene names get lshgan's own one-line error
        warnings.filterwarnings("ignore", message="Variable names are not unique")
        yield


# ---------------------------------------------------------------------------- read + preprocess
def read_and_preprocess(source, config: "PreprocessConfig | None" = None, *,
                        label_key: str | None = None, name: str | None = None):
    """``(raw, preprocessed)`` cells of ``source``: a path :func:`lshgan.read_dataset` reads
    (``config.layer``, ``transpose`` and ``obs`` say how), or cells already read (AnnData)."""
    import anndata as ad

    from .io import read_dataset
    from .preprocess import PreprocessConfig
    from .preprocess import preprocess as run

    config = config if config is not None else PreprocessConfig()
    if isinstance(source, ad.AnnData):
        raw, name = source, name or "data"
    else:
        raw = read_dataset(source, label_key=label_key, layer=config.layer,
                           transpose=config.transpose, obs=config.obs)
    out, _ = run(raw, config, name=str(name or source))
    return raw, out


def ingest(source: PathLike, output: PathLike, *, label_key: str | None = None,
           transpose: bool = False, obs: PathLike | None = None) -> "ad.AnnData":
    """Copy a raw dataset into ``output`` (``.h5ad``) after checking that it reads; return it.

    ``source``: the embedded ``pbmc68k_reduced``, a file of ``../shared/data/``, or any path
    :func:`lshgan.read_dataset` reads (``transpose``, ``obs``: see there).  An ``.h5ad``
    file is copied byte for byte (raw data stays immutable) unless ``obs`` adds annotations;
    other formats are converted.  Overwrites ``output``.
    """
    import shutil

    from .io import atomic_path, output_lock, read_dataset, write_h5ad

    adata = read_dataset(source, label_key=label_key, transpose=transpose, obs=obs)
    with output_lock(output):
        if str(source).endswith(".h5ad") and obs is None:
            with atomic_path(output, force=True) as tmp:
                shutil.copyfile(source, tmp)
        else:
            write_h5ad(adata, output, force=True)
    return adata


def preprocess(input: PathLike, output: PathLike, *, config: "PreprocessConfig | None" = None,
               label_key: str | None = None, force: bool = False):
    """Filter, normalise and log-transform ``input`` into ``output``; ``(raw, preprocessed)``."""
    from .io import check_writable, output_lock, write_h5ad

    check_writable(output, force=force, suffix=".h5ad")
    with output_lock(output):
        raw, out = read_and_preprocess(input, config, label_key=label_key)
        write_h5ad(out, output, force=force)
    return raw, out


# ---------------------------------------------------------------------------- split
def write_split(train: "ad.AnnData", test: "ad.AnnData", train_out: PathLike, test_out: PathLike,
                *, force: bool = False) -> None:
    """Write both sides of a split, or neither: a failed test write removes a new train file."""
    from .io import write_h5ad

    existed = Path(train_out).exists()
    write_h5ad(train, train_out, force=force)
    try:
        write_h5ad(test, test_out, force=force)
    except BaseException:
        if not existed:  # no half a split left behind
            Path(train_out).unlink(missing_ok=True)
        raise


def split(input: PathLike, train_out: PathLike, test_out: PathLike, *,
          label_key: str | None = None, test_size: float = 0.2, seed: int = 0,
          force: bool = False):
    """Stratified train/test split of ``input`` (by ``label_key``); ``(all, train, test)``."""
    from .io import check_writable, output_lock, read_dataset
    from .preprocess import stratified_split

    if Path(train_out).absolute() == Path(test_out).absolute():
        raise ParameterError(f"--train and --test are the same file: {train_out}")
    for p in (train_out, test_out):
        check_writable(p, force=force, suffix=".h5ad")
    with output_lock(train_out), output_lock(test_out):
        adata = read_dataset(input, label_key=label_key)
        train_cells, test_cells = stratified_split(adata, test_size=float(test_size),
                                                   label_key=label_key, seed=int(seed),
                                                   name=str(input))
        write_split(train_cells, test_cells, train_out, test_out, force=force)
    return adata, train_cells, test_cells


# ---------------------------------------------------------------------------- train
def checkpoint_paths(output: PathLike) -> tuple[Path, Path]:
    """(checkpoint, its settings record) of the model folder ``output``: hidden files beside it."""
    output = Path(output)
    return (output.parent / f".{output.name}.checkpoint.pt",
            output.parent / f".{output.name}.checkpoint.json")


def _resume_record(model_cfg, train_cfg, adata, label_key) -> dict:
    """What must not change between a checkpointed run and its ``resume`` (epochs may)."""
    import json

    from .io import dataset_hash

    train = {k: v for k, v in asdict(train_cfg).items() if k not in ("epochs", "checkpoint_every")}
    return json.loads(json.dumps({"model": asdict(model_cfg), "train": train, "label_key": label_key,
                                  "data": dataset_hash(adata)}, default=list))


def _changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def set_threads(threads: int) -> None:
    """CPU threads of torch (0: torch's default).

    The networks are small: one thread is about as fast as two on an idle machine, and on a
    shared one it does not fight other jobs for the cores (two threads spinning on two busy
    cores were measured 8x slower per step).
    """
    if threads and int(threads) > 0:
        import torch

        torch.set_num_threads(int(threads))


def build_model(adata: "ad.AnnData", model_cfg: "ModelConfig", *, label_key: str | None = None,
                name: str = "training data") -> "LSHGAN":
    """An untrained model on the training cells ``adata``, after checking them
    (:func:`lshgan.io.check_training_cells`, named after ``name``)."""
    from .io import check_training_cells
    from .model import LSHGAN

    check_training_cells(adata, name=name, label_key=label_key, k=model_cfg.k)
    return LSHGAN(adata, label_key=label_key, config=model_cfg)


def fit(model: "LSHGAN", train_cfg: "TrainConfig", *, device: str = "auto", progress: bool = False,
        callback: "Callable[[int, History], None] | None" = None,
        checkpoint: PathLike | None = None, resume: bool = False) -> "LSHGAN":
    """Train ``model`` (see :meth:`LSHGAN.train`); ``checkpoint``: a file to write every
    ``train_cfg.checkpoint_every`` epochs, and with ``resume`` to continue from."""
    model.train(config=train_cfg, device=device, progress=progress, callback=callback,
                checkpoint_path=checkpoint, resume=resume)
    return model


def write_loss_plots(history: "History", folder: PathLike, *, table: bool = True) -> None:
    """``losses.png`` (and with ``table``, ``losses.csv``: epoch, d_loss, g_loss) in ``folder``."""
    from .io import atomic_path
    from .plotting import plot_losses

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if table:
        import pandas as pd

        frame = pd.DataFrame({"epoch": history.epoch, "d_loss": history.d_loss,
                              "g_loss": history.g_loss})
        with atomic_path(folder / "losses.csv", force=True) as tmp:
            frame.to_csv(tmp, index=False)
    plot_losses(history, folder / "losses.png", force=True)


def train(train_path: PathLike, output: PathLike, *, settings: Mapping[str, Any] | None = None,
          label_key: str | None = None, force: bool = False, resume: bool = False,
          progress: bool = False, plots: PathLike | None = None, table: bool = False,
          callback: "Callable[[int, History], None] | None" = None):
    """Read the training cells, build, train and save a model; return ``(model, cells)``.

    ``settings``: flat settings of :func:`lshgan.config.train_configs` (and ``device``,
    ``threads``).  ``plots``: a folder for ``losses.png`` (and ``losses.csv`` with
    ``table``).  The output's lock is held throughout (a second writer is refused).  With
    ``checkpoint_every: N`` a checkpoint is written beside the output every N epochs; a
    killed run continues from it with ``resume`` (same settings and data, checked), and a
    fresh run refuses to overwrite it without ``force``.  The checkpoint is removed once
    the model is saved; a diverged run keeps it.
    """
    import json

    from .config import runtime, train_configs
    from .io import check_writable, output_lock, read_dataset, write_json

    settings = dict(settings or {})
    output = Path(output)
    ckpt, record_path = checkpoint_paths(output)
    with output_lock(output):
        if output.exists() and not force and not (resume and ckpt.exists()):
            check_writable(output, force=force)
        if ckpt.exists() and not resume and not force:
            raise OutputExistsError(f"{ckpt}: a checkpoint of an interrupted run of {output} exists; "
                                    "pass --resume to continue it, or --force to start over")
        device, threads = runtime(settings)
        set_threads(threads)
        adata = read_dataset(train_path, label_key=label_key)
        model_cfg, train_cfg = train_configs(settings, n_cells=adata.n_obs)
        model = build_model(adata, model_cfg, label_key=label_key, name=str(train_path))
        record = _resume_record(model_cfg, train_cfg, adata, label_key)
        if resume and ckpt.exists() and record_path.exists():
            try:
                old = json.loads(record_path.read_text())
            except ValueError:
                old = record
            changed = _changed_keys(old, record)
            if changed:
                raise CheckpointError(f"{ckpt}: written by a run with other settings or data "
                                      f"({', '.join(changed)}); resume with the same ones, or drop "
                                      "--resume and pass --force to start over")
        elif resume and not ckpt.exists():
            say(f"{output}: no checkpoint to resume from; training from the first epoch")
        use_ckpt = bool(train_cfg.checkpoint_every) or (resume and ckpt.exists())
        if use_ckpt and not (resume and ckpt.exists()):
            ckpt.unlink(missing_ok=True)
            write_json(record, record_path, force=True)
        fit(model, train_cfg, device=device, progress=progress, callback=callback,
            checkpoint=ckpt if use_ckpt else None, resume=resume and ckpt.exists())
        model.save(output, force=True)
        if plots is not None:
            write_loss_plots(model.history, plots, table=table)
        for leftover in (ckpt, ckpt.with_name(ckpt.name + ".tmp"), record_path):
            leftover.unlink(missing_ok=True)
    return model, adata


# ---------------------------------------------------------------------------- generate
def generate_cells(model: "LSHGAN", n_cells: int | str | None = "test", *,
                   test: "ad.AnnData | None" = None, label_key: str | None = None,
                   cell_type=None, seed: int = 0) -> "ad.AnnData":
    """Generated cells: ``n_cells`` of them (only ``cell_type`` if given), or with
    ``n_cells="test"`` as many as ``test`` holds, with exactly its cell types when the model
    is conditional (the fair protocol of :mod:`lshgan.metrics`)."""
    if n_cells in ("test", None):
        if test is None:
            raise ParameterError("n_cells 'test' needs the test cells")
        types = (list(test.obs[label_key].astype(str))
                 if label_key and label_key in test.obs and model.config.conditional else None)
        return model.generate(test.n_obs, cell_type=types, seed=seed)
    return model.generate(n_cells if isinstance(n_cells, int) else int(n_cells),
                          cell_type=cell_type, seed=seed)


def generate(model_dir: PathLike, output: PathLike, *, n_cells: int | str | None = "test",
             test: PathLike | None = None, label_key: str | None = None, cell_type=None,
             seed: int = 0, scale: str | None = None, layer: str | None = None,
             force: bool = False) -> "ad.AnnData":
    """Cells of the saved model ``model_dir`` into ``output`` (see :func:`generate_cells`;
    ``test``: the test split's file).  ``layer``: what ``.X`` holds, ``log`` (``log2(1+x)``,
    the model's; default), ``normalized`` (the library-size-normalised linear scale) or
    ``counts`` (models trained on counts, whose cells always keep ``.layers['counts']``);
    ``scale``: its older name (``log``/``normalized``), see :func:`lshgan.model.resolve_layer`."""
    from .errors import check_genes
    from .io import check_writable, output_lock, read_dataset, write_h5ad
    from .model import LSHGAN, check_layer, resolve_layer, with_layer

    layer = resolve_layer(layer, scale)
    check_writable(output, force=force, suffix=".h5ad")
    with output_lock(output):
        model = LSHGAN.load(model_dir)
        test_cells = None
        if test is not None:
            test_cells = read_dataset(test, label_key=label_key)
            check_genes(test_cells.var_names, model.var_names, what=f"model {model_dir}", name=str(test))
        check_layer(layer, model.has_counts)  # before generating
        cells = with_layer(generate_cells(model, n_cells, test=test_cells, label_key=label_key,
                                          cell_type=cell_type, seed=seed), layer)
        cells.uns["lshgan_generate"] = {"model": str(model_dir), "seed": seed, "layer": layer}
        write_h5ad(cells, output, force=force)
    return cells


# ---------------------------------------------------------------------------- evaluate
#: Generator metrics copied into the DVC metrics file (the full evaluation keeps them all).
SUMMARY_METRICS = ("rf_auc", "dcr", "dcr_pca", "authenticity_pca", "authenticity_pca_test",
                   "wasserstein_genes", "wasserstein_pca", "mean_corr", "var_corr",
                   "dropout_corr", "recall", "coverage", "substate_coverage",
                   "marker_top50_overlap", "cells_auc")


def summary_metrics(result: dict) -> dict:
    """The summary of an evaluation: ``objective``, the main metrics, the references'.

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
    from .metrics import REAL_VS_REAL
    from .objective import objective_from_metrics

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


def evaluate_files(generated, train, test, *, label_key, seed, output, plots, force,
                   include_references=True, extra=None, protocols=()):
    """Score generated cells against the held-out test cells; write JSON (+ PNGs).

    The JSON holds the generator's metrics under ``lshgan`` and the rows of the copy and
    gaussian references and of the real-vs-real control under ``references`` (the control
    is the floor of every realism and diversity metric; its DCR is 0 by construction, so
    it never gets an objective).  ``protocols`` (e.g. ``("groundgan",)``) adds the
    optional protocols of :func:`lshgan.metrics.evaluate`.  ``plots``: a folder for
    ``umap.png``, ``gene_statistics.png``, ``cell_statistics.png`` (beside the ``copy``
    reference's cells when ``include_references``) and ``diversity.png``.  When ``test`` has
    ``.layers['counts']`` (count data), every row with counts also gets the ``counts_*``
    metrics of :mod:`lshgan.metrics.counts` and the plots ``count_statistics.png``.
    """
    from .errors import check_genes
    from .io import check_writable, write_json
    from .metrics import evaluate_generators, reference_cells
    from .metrics.counts import has_counts, reference_counts, with_count_metrics
    from .plotting import (plot_cell_statistics, plot_count_statistics, plot_diversity,
                           plot_gene_statistics, plot_umap)

    check_writable(output, force=force)
    check_genes(generated.var_names, train.var_names, what="training data")
    check_genes(test.var_names, train.var_names, what="training data")
    table = evaluate_generators({"lshgan": generated}, train=train, test=test,
                                label_key=label_key, seed=seed, include_references=include_references,
                                protocols=protocols)
    # count data: the count-level columns (lshgan.metrics.counts), for copy and real-vs-real too
    table = with_count_metrics(table, generated, train=train, test=test, label_key=label_key, seed=seed)
    result = {"lshgan": table.loc["lshgan"].to_dict() if "lshgan" in table.index else {},
              "references": {i: r.to_dict() for i, r in table.iterrows() if i != "lshgan"},
              "n_train": int(train.n_obs), "n_test": int(test.n_obs), "seed": seed}
    report = train.uns.get("lshgan_preprocess")
    if report:  # the data kind and filter report of the preprocessing the cells went through
        result["preprocess"] = dict(report)  # write_json turns NumPy values into JSON
    if extra:
        result.update(extra)
    write_json(result, output, force=force)
    if plots:
        plots = Path(plots)
        plots.mkdir(parents=True, exist_ok=True)
        plot_umap(test, generated, plots / "umap.png", label_key=label_key or "cell_type", force=True)
        plot_gene_statistics(test, generated, plots / "gene_statistics.png", force=True)
        plot_cell_statistics(test, generated, plots / "cell_statistics.png", force=True, seed=seed,
                             references={"copy": reference_cells("copy", train, test,
                                                                 label_key=label_key, seed=seed)}
                             if include_references else None)
        plot_diversity(table, plots / "diversity.png", force=True)
        if has_counts(test) and has_counts(generated):
            plot_count_statistics(test, generated, plots / "count_statistics.png", force=True,
                                  references=reference_counts(train, test, label_key=label_key,
                                                              seed=seed) if has_counts(train) else None)
    return result, table


def log_scale(cells: ad.AnnData, *, name: str = "generated cells") -> ad.AnnData:
    """``cells`` with ``.X`` on the ``log2(1+x)`` scale every metric reads: a file written by
    ``lshgan generate --layer counts|normalized`` keeps its log values in
    ``.layers['log']``, which then become ``.X``; without them it is refused rather than
    scored as if its counts were log values."""
    layer = (cells.uns.get("lshgan_generate") or {}).get("layer", "log")
    if layer == "log":
        return cells
    if "log" not in cells.layers:
        raise InputDataError(f"{name}: .X holds {layer!r} values (written with --layer {layer}) "
                             "and there is no .layers['log'] to score; generate with --layer log")
    out = cells.copy()
    out.X = cells.layers["log"]
    return out


def evaluate(generated, train, test, output: PathLike, *, label_key: str | None = None,
             seed: int = 0, plots: PathLike | None = None, references: bool = True,
             protocols=(), summary: PathLike | None = None, force: bool = False):
    """Score generated cells against the test split into ``output``; ``(result, table)``.

    ``generated``, ``train``, ``test``: files (checked to hold the training genes, each
    error naming its file) or cells already read.  ``summary``: also give the evaluation
    its ``objective`` (:mod:`lshgan.objective`, lower is better) and write the summary of
    :func:`summary_metrics` there (the DVC metrics file).
    """
    import anndata as ad

    from .errors import check_genes
    from .io import check_writable, output_lock, read_dataset, write_json
    from .objective import objective_from_metrics

    check_writable(output, force=force)

    def cells(source, key=None):
        return source if isinstance(source, ad.AnnData) else read_dataset(source, label_key=key)

    gen, train_cells, test_cells = cells(generated), cells(train, label_key), cells(test, label_key)
    gen = log_scale(gen, name=str(generated) if not isinstance(generated, ad.AnnData) else "generated cells")
    what = "training cells" if isinstance(train, ad.AnnData) else f"training cells ({train})"
    for source, got in ((generated, gen), (test, test_cells)):
        if not isinstance(source, ad.AnnData):
            check_genes(got.var_names, train_cells.var_names, what=what, name=str(source))
    with output_lock(output):
        result, table = evaluate_files(gen, train_cells, test_cells, label_key=label_key,
                                       seed=int(seed), output=output, plots=plots, force=force,
                                       include_references=bool(references), protocols=protocols)
        if summary is not None:
            result["objective"] = objective_from_metrics(result["lshgan"])
            write_json(result, output, force=True)
            write_json(summary_metrics(result), summary, force=True)
    return result, table


# ---------------------------------------------------------------------------- run
def run(source, out: PathLike, *, label_key: str | None = None,
        preprocess: "PreprocessConfig | None" = None, settings: Mapping[str, Any] | None = None,
        seed: int = 0, test_size: float = 0.2, force: bool = False, resume: bool = False,
        progress: bool = False):
    """preprocess -> split -> train -> generate -> evaluate, into the folder ``out``.

    Writes ``train.h5ad``, ``test.h5ad``, ``model/`` (with ``losses.png``),
    ``generated.h5ad``, ``metrics.json``, the pictures of :func:`evaluate_files` and
    ``timings.json`` (wall time and peak memory per stage, :class:`StageClock`).
    ``seed``: the split's, the generated cells' and the evaluation's, and training's
    unless ``settings`` names one.  A folder this run created is removed if it fails,
    unless it keeps a checkpoint to ``resume`` from.  Returns ``(result, table)``.
    """
    import shutil

    from .io import check_writable, output_lock

    out = Path(out)
    if not (resume and checkpoint_paths(out / "model")[0].exists()):
        check_writable(out, force=force)
    with output_lock(out):
        created = not out.exists()
        try:
            return _run_into(source, out, label_key=label_key, preprocess=preprocess,
                             settings={"seed": seed, **(settings or {})}, seed=seed,
                             test_size=test_size, resume=resume, progress=progress)
        except BaseException:
            # a folder this run created holds only partial results: remove it, unless it
            # keeps a checkpoint to resume from
            if created and out.is_dir() and not checkpoint_paths(out / "model")[0].exists():
                shutil.rmtree(out, ignore_errors=True)
            raise


class StageClock:
    """Wall time and peak memory of each stage of :func:`run` (``timings.json``).

    ``peak_rss_mb`` is the process's peak resident memory *so far* when the stage ends
    (``ru_maxrss``): it rises at the stage that needed the memory.
    """

    def __init__(self) -> None:
        self.stages: list[dict] = []

    @contextlib.contextmanager
    def __call__(self, name: str):
        import resource
        import time

        t0 = time.perf_counter()
        yield
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.stages.append({"stage": name, "seconds": round(seconds, 3),
                            "peak_rss_mb": round(peak, 1)})

    def summary(self) -> str:
        return "; ".join(f"{s['stage']} {s['seconds']:.1f} s" for s in self.stages) + (
            f" (peak memory {max(s['peak_rss_mb'] for s in self.stages) / 1024:.2f} GB)")

    def as_dict(self) -> dict:
        return {"stages": self.stages,
                "total_seconds": round(sum(s["seconds"] for s in self.stages), 3)}


def _run_into(source, out: Path, *, label_key, preprocess, settings, seed, test_size, resume,
              progress):
    from .config import train_configs
    from .io import check_training_cells, write_h5ad, write_json
    from .preprocess import stratified_split

    clock = StageClock()
    with clock("read + preprocess"):
        _, pp = read_and_preprocess(source, preprocess, label_key=label_key)
    with clock("split"):
        train_cells, test_cells = stratified_split(pp, test_size=test_size, label_key=label_key,
                                                   seed=seed, name=str(source))
        # parameters checked before anything is written
        model_cfg, _ = train_configs(settings, n_cells=train_cells.n_obs)
        check_training_cells(train_cells, name=f"{source} (training split)", label_key=label_key,
                             k=model_cfg.k)
        out.mkdir(parents=True, exist_ok=True)
        write_split(train_cells, test_cells, out / "train.h5ad", out / "test.h5ad", force=True)
    say(f"{source}: {pp.n_obs} cells x {pp.n_vars} genes after preprocessing; "
        f"{train_cells.n_obs} train / {test_cells.n_obs} test")
    with clock("train"):
        model, _ = train(out / "train.h5ad", out / "model", settings=settings, label_key=label_key,
                         force=True, resume=resume, progress=progress, plots=out / "model")
    with clock("generate"):
        cells = generate_cells(model, "test", test=test_cells, label_key=label_key, seed=seed)
        write_h5ad(cells, out / "generated.h5ad", force=True)
    with clock("evaluate"):
        result = evaluate_files(cells, train_cells, test_cells, label_key=label_key, seed=seed,
                                output=out / "metrics.json", plots=out, force=True,
                                extra={"train_seconds": model.train_seconds})
    write_json(clock.as_dict(), out / "timings.json", force=True)
    say(f"time per stage: {clock.summary()}")
    return result
