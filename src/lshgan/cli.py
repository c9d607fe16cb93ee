"""Command line: ``lshgan preprocess | split | train | generate | evaluate | run``.

Typical use, step by step (each step writes one output and refuses to overwrite it
without ``--force``)::

    lshgan preprocess data/raw/pollen.h5ad --label-key cell_type --n-top-genes 2000 -o data/processed/pollen.h5ad
    lshgan split data/processed/pollen.h5ad --label-key cell_type --train data/split/train.h5ad --test data/split/test.h5ad
    lshgan train data/split/train.h5ad --label-key cell_type --k 5 --t 1 --epochs 300 -o models/pollen
    lshgan generate models/pollen --n-cells 500 -o results/generated.h5ad
    lshgan evaluate results/generated.h5ad --train data/split/train.h5ad --test data/split/test.h5ad -o results/metrics.json --plots results/plots

or all at once, on the embedded default dataset (nothing to download)::

    lshgan run pbmc68k_reduced --label-key cell_type --out results/pbmc68k_reduced

User errors (bad files, bad parameters, existing outputs) print one line ``error: ...``
and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from dataclasses import asdict, fields
from pathlib import Path

from . import __version__
from .errors import (CheckpointError, DataWarning, LSHGANError, OutputExistsError, ParameterError,
                     check_positive_int)

EXIT_USER_ERROR = 2


# --------------------------------------------------------------------------- helpers
def _add_preprocess_args(p: argparse.ArgumentParser) -> None:
    from .datakind import KINDS, PAPER_MIN_CELLS_FRAC, PAPER_MIN_COUNT, PAPER_MIN_GENES

    g = p.add_argument_group("preprocessing (a threshold not given follows the kind of data)")
    g.add_argument("--data-kind", choices=["auto", *KINDS], default="auto",
                   help="what the values are (default auto: detected from the values)")
    g.add_argument("--layer", default=None,
                   help="read the values from this layer of the .h5ad instead of .X (e.g. counts)")
    g.add_argument("--paper-preprocessing", action="store_true",
                   help=f"the paper's thresholds: --min-genes {PAPER_MIN_GENES} --min-count "
                        f"{PAPER_MIN_COUNT:g} --min-cells-frac {PAPER_MIN_CELLS_FRAC:g} (flags given "
                        "as well override them)")
    g.add_argument("--min-genes", type=int, default=None,
                   help="keep cells with more than this many expressed genes (default: min(200, a "
                        f"quarter of the median cell's); paper {PAPER_MIN_GENES})")
    g.add_argument("--min-count", type=float, default=None,
                   help=f"a gene counts as expressed in a cell above this value (default: "
                        f"{PAPER_MIN_COUNT:g} for read counts, 0 otherwise)")
    g.add_argument("--min-cells-frac", type=float, default=None,
                   help=f"keep genes expressed in at least this fraction of cells (default: "
                        f"{PAPER_MIN_CELLS_FRAC:g} for read counts and continuous values, 1%% or 10 cells "
                        "for UMI counts and log-normalised values)")
    g.add_argument("--target-sum", type=float, default=None,
                   help="library size after normalisation (default: median library size)")
    g.add_argument("--n-top-genes", type=int, default=None,
                   help="keep only this many highly variable genes (default: all kept genes)")


def _preprocess_config(args):
    from .preprocess import PreprocessConfig

    given = {name: getattr(args, name) for name in ("min_genes", "min_count", "min_cells_frac")
             if getattr(args, name) is not None}
    make = PreprocessConfig.paper if args.paper_preprocessing else PreprocessConfig
    return make(**given, target_sum=args.target_sum, n_top_genes=args.n_top_genes,
                data_kind=args.data_kind, layer=args.layer)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    from .model import ModelConfig
    from .module.training import TrainConfig

    m, t = ModelConfig(), TrainConfig()
    g = p.add_argument_group("LSH sampling")
    g.add_argument("--k", type=int, default=m.k, help=f"neighbours marked per kept cell (default {m.k})")
    g.add_argument("--t", type=int, default=m.t, help=f"rounds of the greedy pass (default {m.t})")
    g = p.add_argument_group("model")
    g.add_argument("--input-mode", choices=["lsh", "plain", "paper"], default=m.input_mode,
                   help="generator input: LSH-subsample anchors + noise (lsh), pure noise (plain), "
                        "the paper's gene-dimensional mixture (paper)")
    g.add_argument("--space", choices=["genes", "latent"], default=m.space,
                   help=f"where the GAN works: every gene, or a whitened PCA cell state decoded to "
                        f"genes by a fitted hurdle model (default {m.space})")
    g.add_argument("--n-latent", type=int, default=None,
                   help="latent dimension with --space latent (default: training cells / 10, 8 to 16)")
    g.add_argument("--anchor-residual", action=argparse.BooleanOptionalAction, default=m.anchor_residual,
                   help="G writes a displacement from its LSH anchor's cell state (default; "
                        "--no-anchor-residual: a free cell state, the anchor only an input)")
    g.add_argument("--paper", action="store_true",
                   help="the paper-faithful configuration (16-16 MLPs, BCE loss, mixture input)")
    g.add_argument("--g-hidden", type=_widths, default=m.g_hidden, help="generator widths, e.g. 256,256")
    g.add_argument("--d-hidden", type=_widths, default=m.d_hidden, help="discriminator widths")
    g.add_argument("--noise-dim", type=int, default=m.noise_dim)
    g.add_argument("--unconditional", action="store_true", help="ignore cell types even if labels are given")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=t.epochs,
                   help=f"passes over the training cells (default {t.epochs}), at most --max-steps updates")
    g.add_argument("--max-steps", type=int, default=t.max_steps,
                   help=f"the budget's cap in generator updates (default {t.max_steps}: 300 epochs of "
                        "200 cells, 47 of 2,700; 0: no cap)")
    g.add_argument("--batch-size", type=int, default=t.batch_size)
    g.add_argument("--lr", type=float, default=None, help="learning rate of G and D")
    g.add_argument("--loss", choices=["wgan-gp", "hinge", "bce"], default=None,
                   help=f"adversarial objective (default {t.loss}; --paper: bce)")
    g.add_argument("--n-critic", type=int, default=None, help="D steps per G step")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    g.add_argument("--threads", type=int, default=1,
                   help="CPU threads of torch (default 1: fastest for these small networks, and "
                        "25x faster than torch's default on a busy 2-core machine; 0: torch's default)")
    g.add_argument("--checkpoint-every", type=int, default=0, help="write a resumable checkpoint every N epochs")
    g.add_argument("--resume", action="store_true", help="continue from the checkpoint in the output folder")


def _widths(text: str) -> tuple[int, ...]:
    try:
        w = tuple(int(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths must be integers separated by commas, got {text!r}")
    if not w or min(w) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return w


def model_and_train_configs(args):
    """(ModelConfig, TrainConfig) from parsed arguments (shared with the MLOps glue)."""
    from .model import ModelConfig
    from .module.training import TrainConfig

    over = dict(k=args.k, t=args.t)
    if args.paper:
        model = ModelConfig.paper(**over)
        train = dict(loss="bce", n_critic=1, lr_g=2e-4, lr_d=2e-4, batch_size=args.batch_size)
    else:
        model = ModelConfig(k=args.k, t=args.t, input_mode=args.input_mode, g_hidden=args.g_hidden,
                            d_hidden=args.d_hidden, noise_dim=args.noise_dim,
                            space=args.space, n_latent=args.n_latent,
                            anchor_residual=args.anchor_residual)
        train = dict(batch_size=args.batch_size)
    if args.unconditional:
        model.conditional = False
    if args.loss:
        train["loss"] = args.loss
    if args.n_critic is not None:  # 0 is refused by TrainConfig, not ignored
        train["n_critic"] = args.n_critic
    if args.lr is not None:
        train["lr_g"] = train["lr_d"] = args.lr
    check_positive_int("--checkpoint-every", args.checkpoint_every, minimum=0)
    tc = TrainConfig(**{**asdict(TrainConfig()), **train, "epochs": args.epochs, "seed": args.seed,
                        "max_steps": args.max_steps,
                        "checkpoint_every": args.checkpoint_every})
    return model, tc


def _read(path, label_key=None, layer=None):
    from .io import read_dataset

    return read_dataset(path, label_key=label_key, layer=layer)


def load_model(path, adata=None):
    """:meth:`LSHGAN.load`, with any unreadable model file as :class:`CheckpointError`.

    ``LSHGAN.load`` reports missing files and bad JSON itself; a weights file that is not a
    weights file (``UnpicklingError``) or a ``config.json`` from another version
    (``KeyError``/``TypeError``) would otherwise end in a traceback.
    """
    import pickle

    from .model import LSHGAN

    try:
        return LSHGAN.load(path, adata=adata)
    except LSHGANError:
        raise
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{path}: model files are corrupt or from another lshgan version "
                              f"({type(err).__name__}: {str(err).strip().splitlines()[0][:200] if str(err).strip() else ''})") from None


def split_cells(adata, *, name: str, test_size: float, label_key, seed: int):
    """:func:`lshgan.stratified_split`, with scikit-learn's refusals as :class:`ParameterError`."""
    from .preprocess import stratified_split

    try:
        return stratified_split(adata, test_size=test_size, label_key=label_key, seed=seed)
    except LSHGANError:
        raise
    except ValueError as err:  # e.g. fewer test cells than cell types
        raise ParameterError(f"{name}: cannot split {adata.n_obs} cells with test_size={test_size}"
                             f"{f' by {label_key!r}' if label_key else ''}: {err}") from None


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


# --------------------------------------------------------------------------- commands
def cmd_preprocess(args) -> int:
    from .io import check_writable, output_lock, write_h5ad
    from .preprocess import preprocess

    check_writable(args.output, force=args.force)
    with output_lock(args.output):
        config = _preprocess_config(args)
        adata = _read(args.input, args.label_key, config.layer)
        out, _ = preprocess(adata, config, name=str(args.input))
        write_h5ad(out, args.output, force=args.force)
    _say(f"preprocessed {adata.n_obs} x {adata.n_vars} -> {out.n_obs} cells x {out.n_vars} genes: {args.output}")
    return 0


def cmd_split(args) -> int:
    from .io import check_writable, output_lock, write_h5ad

    if Path(args.train).absolute() == Path(args.test).absolute():
        raise ParameterError(f"--train and --test are the same file: {args.train}")
    for p in (args.train, args.test):
        check_writable(p, force=args.force)
    with output_lock(args.train), output_lock(args.test):
        adata = _read(args.input, args.label_key)
        train, test = split_cells(adata, name=str(args.input), test_size=args.test_size,
                                  label_key=args.label_key, seed=args.seed)
        existed = Path(args.train).exists()
        write_h5ad(train, args.train, force=args.force)
        try:
            write_h5ad(test, args.test, force=args.force)
        except BaseException:
            if not existed:  # no half a split left behind
                Path(args.train).unlink(missing_ok=True)
            raise
    _say(f"split {adata.n_obs} cells: {train.n_obs} train ({args.train}), {test.n_obs} test ({args.test})")
    return 0


def checkpoint_paths(output: Path) -> tuple[Path, Path]:
    """(checkpoint, its settings record) of the model folder ``output``: hidden files beside it."""
    output = Path(output)
    return (output.parent / f".{output.name}.checkpoint.pt",
            output.parent / f".{output.name}.checkpoint.json")


def _resume_record(model_cfg, train_cfg, adata, label_key) -> dict:
    """What must not change between a checkpointed run and its ``--resume`` (epochs may)."""
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


def train_model(train_path, label_key, args, output: Path, force: bool):
    """Read, build, train and save a model; return (model, adata). Used by train and run.

    The output's lock is held throughout (a second writer is refused).  With
    ``--checkpoint-every N`` a checkpoint is written beside the output every N epochs; a
    killed run continues from it with ``--resume`` (same settings and data, checked), and a
    fresh run refuses to overwrite it without ``--force``.  The checkpoint is removed once
    the model is saved; a diverged run keeps it.
    """
    import json

    from .io import check_training_cells, check_writable, output_lock, write_json
    from .model import LSHGAN
    from .plotting import plot_losses

    output = Path(output)
    ckpt, record_path = checkpoint_paths(output)
    with output_lock(output):
        if output.exists() and not force and not (args.resume and ckpt.exists()):
            check_writable(output, force=force)
        if ckpt.exists() and not args.resume and not force:
            raise OutputExistsError(f"{ckpt}: a checkpoint of an interrupted run of {output} exists; "
                                    "pass --resume to continue it, or --force to start over")
        model_cfg, train_cfg = model_and_train_configs(args)
        if getattr(args, "threads", 0) and args.threads > 0:
            import torch

            torch.set_num_threads(args.threads)
        adata = _read(train_path, label_key)
        check_training_cells(adata, name=str(train_path), label_key=label_key, k=model_cfg.k)
        record = _resume_record(model_cfg, train_cfg, adata, label_key)
        if args.resume and ckpt.exists() and record_path.exists():
            try:
                old = json.loads(record_path.read_text())
            except ValueError:
                old = record
            changed = _changed_keys(old, record)
            if changed:
                raise CheckpointError(f"{ckpt}: written by a run with other settings or data "
                                      f"({', '.join(changed)}); resume with the same ones, or drop "
                                      "--resume and pass --force to start over")
        elif args.resume and not ckpt.exists():
            _say(f"{output}: no checkpoint to resume from; training from the first epoch")
        model = LSHGAN(adata, label_key=label_key, config=model_cfg)
        use_ckpt = bool(train_cfg.checkpoint_every) or (args.resume and ckpt.exists())
        if use_ckpt and not (args.resume and ckpt.exists()):
            ckpt.unlink(missing_ok=True)
            write_json(record, record_path, force=True)
        model.train(config=train_cfg, device=args.device, progress=not args.quiet,
                    checkpoint_path=ckpt if use_ckpt else None, resume=args.resume and ckpt.exists())
        model.save(output, force=True)
        plot_losses(model.history, output / "losses.png", force=True)
        for leftover in (ckpt, ckpt.with_name(ckpt.name + ".tmp"), record_path):
            leftover.unlink(missing_ok=True)
    return model, adata


def cmd_train(args) -> int:
    model, adata = train_model(args.input, args.label_key, args, Path(args.output), args.force)
    sub = "" if model.subsample_ is None else f", LSH subsample {len(model.subsample_)} of {adata.n_obs} cells"
    _say(f"trained {model!r} in {model.train_seconds:.1f} s{sub}: {args.output}")
    return 0


def cmd_generate(args) -> int:
    from .io import check_writable, output_lock, write_h5ad

    check_writable(args.output, force=args.force)
    with output_lock(args.output):
        model = load_model(args.model)
        cells = model.generate(args.n_cells, cell_type=args.cell_type, seed=args.seed)
        if args.scale == "normalized":
            import numpy as np

            cells.X = (np.exp2(cells.X.astype("float64")) - 1).astype("float32")
        cells.uns["lshgan_generate"] = {"model": str(args.model), "seed": args.seed, "scale": args.scale}
        write_h5ad(cells, args.output, force=args.force)
    _say(f"generated {cells.n_obs} cells x {cells.n_vars} genes: {args.output}")
    return 0


def evaluate_files(generated, train, test, *, label_key, seed, output, plots, force,
                   include_references=True, extra=None, protocols=()):
    """Score generated cells against the held-out test cells; write JSON (+ PNGs).

    The JSON holds the generator's metrics under ``lshgan`` and the rows of the copy and
    gaussian references and of the real-vs-real control under ``references`` (the control
    is the floor of every realism and diversity metric; its DCR is 0 by construction, so
    it never gets an objective).  ``protocols`` (e.g. ``("groundgan",)``) adds the
    optional protocols of :func:`lshgan.metrics.evaluate`.  ``plots``: a folder for
    ``umap.png``, ``gene_statistics.png`` and ``diversity.png``.
    """
    from .io import check_writable, write_json
    from .metrics import evaluate_generators
    from .model import check_genes
    from .plotting import plot_diversity, plot_gene_statistics, plot_umap

    check_writable(output, force=force)
    check_genes(generated, list(train.var_names), what=f"training data")
    check_genes(test, list(train.var_names), what=f"training data")
    table = evaluate_generators({"lshgan": generated}, train=train, test=test,
                                label_key=label_key, seed=seed, include_references=include_references,
                                protocols=protocols)
    result = {"lshgan": table.loc["lshgan"].to_dict() if "lshgan" in table.index else {},
              "references": {i: r.to_dict() for i, r in table.iterrows() if i != "lshgan"},
              "n_train": int(train.n_obs), "n_test": int(test.n_obs), "seed": seed}
    if extra:
        result.update(extra)
    write_json(result, output, force=force)
    if plots:
        plots = Path(plots)
        plots.mkdir(parents=True, exist_ok=True)
        plot_umap(test, generated, plots / "umap.png", label_key=label_key or "cell_type", force=True)
        plot_gene_statistics(test, generated, plots / "gene_statistics.png", force=True)
        plot_diversity(table, plots / "diversity.png", force=True)
    return result, table


def cmd_evaluate(args) -> int:
    from .errors import GeneMismatchError
    from .io import check_writable, output_lock
    from .model import check_genes

    check_writable(args.output, force=args.force)
    gen = _read(args.generated)
    train = _read(args.train, args.label_key)
    test = _read(args.test, args.label_key)
    for path, cells in ((args.generated, gen), (args.test, test)):
        try:
            check_genes(cells, list(train.var_names), what=f"training cells ({args.train})")
        except GeneMismatchError as err:
            raise GeneMismatchError(f"{path}: {err}") from None
    with output_lock(args.output):
        _, table = evaluate_files(gen, train, test, label_key=args.label_key, seed=args.seed,
                                  output=args.output, plots=args.plots, force=args.force,
                                  include_references=not args.no_references,
                                  protocols=("groundgan",) if args.groundgan else ())
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


def cmd_run(args) -> int:
    """preprocess -> split -> train -> generate -> evaluate, into one folder."""
    import shutil

    from .io import check_writable, output_lock

    out = Path(args.out)
    if not (args.resume and checkpoint_paths(out / "model")[0].exists()):
        check_writable(out, force=args.force)
    with output_lock(out):
        created = not out.exists()
        try:
            return _run_into(args, out)
        except BaseException:
            # a folder this run created holds only partial results: remove it, unless it
            # keeps a checkpoint to --resume from
            if created and out.is_dir() and not checkpoint_paths(out / "model")[0].exists():
                shutil.rmtree(out, ignore_errors=True)
            raise


def _run_into(args, out: Path) -> int:
    from .io import check_training_cells, write_h5ad
    from .preprocess import preprocess

    config = _preprocess_config(args)
    adata = _read(args.input, args.label_key, config.layer)
    pp, _ = preprocess(adata, config, name=str(args.input))
    train, test = split_cells(pp, name=str(args.input), test_size=0.2, label_key=args.label_key,
                              seed=args.seed)
    model_cfg, _ = model_and_train_configs(args)  # parameters checked before anything is written
    check_training_cells(train, name=f"{args.input} (training split)", label_key=args.label_key,
                         k=model_cfg.k)
    out.mkdir(parents=True, exist_ok=True)
    write_h5ad(train, out / "train.h5ad", force=True)
    write_h5ad(test, out / "test.h5ad", force=True)
    _say(f"{args.input}: {pp.n_obs} cells x {pp.n_vars} genes after preprocessing; "
         f"{train.n_obs} train / {test.n_obs} test")
    model, _ = train_model(out / "train.h5ad", args.label_key, args, out / "model", True)
    cells = model.generate(test.n_obs, cell_type=list(test.obs[args.label_key].astype(str))
                           if args.label_key and model.config.conditional else None, seed=args.seed)
    write_h5ad(cells, out / "generated.h5ad", force=True)
    _, table = evaluate_files(cells, train, test, label_key=args.label_key, seed=args.seed,
                              output=out / "metrics.json", plots=out, force=True,
                              extra={"train_seconds": model.train_seconds})
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    _say(f"results in {out}/ (metrics.json, umap.png, diversity.png, losses in model/losses.png)")
    return 0


# --------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """Argument errors in one line, like every other user error (exit status 2)."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lshgan",
        description="LSH-GAN for single-cell RNA-seq: train on real cells, generate realistic new "
                    "cells, and judge them honestly against held-out cells.",
        epilog="Start with: lshgan run pbmc68k_reduced --label-key cell_type --out results/demo",
    )
    parser.add_argument("--version", action="version", version=f"lshgan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def common(p, *, force=True):
        if force:
            p.add_argument("--force", action="store_true", help="overwrite existing outputs")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("preprocess", help="filter, normalise and log-transform a dataset")
    p.add_argument("input", help="dataset: .h5ad, .loom, .h5, .mtx, 10x folder, .csv/.tsv, or pbmc68k_reduced")
    p.add_argument("-o", "--output", required=True, help="output .h5ad")
    p.add_argument("--label-key", default=None, help="obs column with cell types (checked if given)")
    _add_preprocess_args(p)
    common(p)
    p.set_defaults(func=cmd_preprocess)

    p = sub.add_parser("split", help="stratified train/test split (the test cells are never trained on)")
    p.add_argument("input", help="preprocessed .h5ad")
    p.add_argument("--train", required=True, help="output .h5ad of training cells")
    p.add_argument("--test", required=True, help="output .h5ad of held-out test cells")
    p.add_argument("--label-key", default=None, help="obs column to stratify by")
    p.add_argument("--test-size", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    common(p)
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("train", help="train LSH-GAN (or the plain GAN) and save the model folder")
    p.add_argument("input", help="preprocessed training cells (.h5ad)")
    p.add_argument("-o", "--output", required=True, help="model folder to write")
    p.add_argument("--label-key", default=None, help="obs column with cell types (enables conditional generation)")
    _add_model_args(p)
    common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help="generate cells from a saved model")
    p.add_argument("model", help="model folder written by `lshgan train`")
    p.add_argument("-n", "--n-cells", type=int, required=True)
    p.add_argument("--cell-type", default=None, help="generate only this cell type (conditional models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", choices=["log", "normalized"], default="log",
                   help="log2(1+x) (the model's scale) or the library-size-normalised linear scale")
    p.add_argument("-o", "--output", required=True, help="output .h5ad")
    common(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("evaluate", help="score generated cells against held-out test cells")
    p.add_argument("generated", help="generated cells (.h5ad, log scale)")
    p.add_argument("--train", required=True, help="training cells (.h5ad): for memorisation (DCR) and references")
    p.add_argument("--test", required=True, help="held-out test cells (.h5ad)")
    p.add_argument("--label-key", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, help="metrics JSON")
    p.add_argument("--plots", default=None,
                   help="folder for PNG pictures (UMAP, gene statistics, diversity metrics)")
    p.add_argument("--no-references", action="store_true",
                   help="skip the copy and gaussian references and the real-vs-real control")
    p.add_argument("--groundgan", action="store_true",
                   help="also score the published GRouNdGAN RF-AUC protocol (rf_auc_groundgan; "
                        "a 1000-tree forest, slower)")
    common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("run", help="preprocess, split, train, generate and evaluate in one go")
    p.add_argument("input", help="dataset path, or pbmc68k_reduced (embedded, no download)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--label-key", default=None)
    _add_preprocess_args(p)
    _add_model_args(p)
    common(p)
    p.set_defaults(func=cmd_run)

    try:  # MLOps subcommands (tune, augment, ...) when that layer is installed
        from .mlops.cli import add_subcommands
    except ImportError:
        pass
    else:
        add_subcommands(sub)
    return parser


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        with user_warnings():
            return int(args.func(args) or 0)
    except LSHGANError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
