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
import sys
from dataclasses import asdict, fields
from pathlib import Path

from . import __version__
from .errors import LSHGANError, ParameterError

EXIT_USER_ERROR = 2


# --------------------------------------------------------------------------- helpers
def _add_preprocess_args(p: argparse.ArgumentParser) -> None:
    from .preprocess import PreprocessConfig

    d = PreprocessConfig()
    g = p.add_argument_group("preprocessing (the paper's thresholds are the defaults, except min-genes)")
    g.add_argument("--min-genes", type=int, default=d.min_genes,
                   help=f"keep cells with more than this many expressed genes (default {d.min_genes}; paper 1000)")
    g.add_argument("--min-count", type=float, default=d.min_count,
                   help=f"a gene counts as expressed in a cell above this value (default {d.min_count:g})")
    g.add_argument("--min-cells-frac", type=float, default=d.min_cells_frac,
                   help=f"keep genes expressed in at least this fraction of cells (default {d.min_cells_frac:g})")
    g.add_argument("--target-sum", type=float, default=None,
                   help="library size after normalisation (default: median library size)")
    g.add_argument("--n-top-genes", type=int, default=None,
                   help="keep only this many highly variable genes (default: all kept genes)")


def _preprocess_config(args):
    from .preprocess import PreprocessConfig

    return PreprocessConfig(min_genes=args.min_genes, min_count=args.min_count,
                            min_cells_frac=args.min_cells_frac, target_sum=args.target_sum,
                            n_top_genes=args.n_top_genes)


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
    g.add_argument("--paper", action="store_true",
                   help="the paper-faithful configuration (16-16 MLPs, BCE loss, mixture input)")
    g.add_argument("--g-hidden", type=_widths, default=m.g_hidden, help="generator widths, e.g. 256,256")
    g.add_argument("--d-hidden", type=_widths, default=m.d_hidden, help="discriminator widths")
    g.add_argument("--noise-dim", type=int, default=m.noise_dim)
    g.add_argument("--unconditional", action="store_true", help="ignore cell types even if labels are given")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=t.epochs, help=f"passes over the training cells (default {t.epochs})")
    g.add_argument("--batch-size", type=int, default=t.batch_size)
    g.add_argument("--lr", type=float, default=None, help="learning rate of G and D")
    g.add_argument("--loss", choices=["wgan-gp", "hinge", "bce"], default=None,
                   help=f"adversarial objective (default {t.loss}; --paper: bce)")
    g.add_argument("--n-critic", type=int, default=None, help="D steps per G step")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
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
                            d_hidden=args.d_hidden, noise_dim=args.noise_dim)
        train = dict(batch_size=args.batch_size)
    if args.unconditional:
        model.conditional = False
    if args.loss:
        train["loss"] = args.loss
    if args.n_critic:
        train["n_critic"] = args.n_critic
    if args.lr:
        train["lr_g"] = train["lr_d"] = args.lr
    tc = TrainConfig(**{**asdict(TrainConfig()), **train, "epochs": args.epochs, "seed": args.seed,
                        "checkpoint_every": args.checkpoint_every})
    return model, tc


def _read(path, label_key=None):
    from .io import read_dataset

    return read_dataset(path, label_key=label_key)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


# --------------------------------------------------------------------------- commands
def cmd_preprocess(args) -> int:
    from .io import write_h5ad, check_writable
    from .preprocess import preprocess

    check_writable(args.output, force=args.force)
    adata = _read(args.input, args.label_key)
    out, _ = preprocess(adata, _preprocess_config(args), name=str(args.input))
    write_h5ad(out, args.output, force=args.force)
    _say(f"preprocessed {adata.n_obs} x {adata.n_vars} -> {out.n_obs} cells x {out.n_vars} genes: {args.output}")
    return 0


def cmd_split(args) -> int:
    from .io import check_writable, write_h5ad
    from .preprocess import stratified_split

    for p in (args.train, args.test):
        check_writable(p, force=args.force)
    adata = _read(args.input, args.label_key)
    train, test = stratified_split(adata, test_size=args.test_size, label_key=args.label_key, seed=args.seed)
    write_h5ad(train, args.train, force=args.force)
    write_h5ad(test, args.test, force=args.force)
    _say(f"split {adata.n_obs} cells: {train.n_obs} train ({args.train}), {test.n_obs} test ({args.test})")
    return 0


def train_model(train_path, label_key, args, output: Path, force: bool):
    """Read, build, train and save a model; return (model, adata). Used by train and run."""
    from .io import check_writable
    from .model import LSHGAN
    from .plotting import plot_losses

    if not (args.resume and output.exists()):
        check_writable(output, force=force)
    model_cfg, train_cfg = model_and_train_configs(args)
    adata = _read(train_path, label_key)
    model = LSHGAN(adata, label_key=label_key, config=model_cfg)
    ckpt = output.parent / f".{output.name}.checkpoint.pt" if args.checkpoint_every or args.resume else None
    model.train(config=train_cfg, device=args.device, progress=not args.quiet,
                checkpoint_path=ckpt, resume=args.resume)
    model.save(output, force=force or args.resume)
    plot_losses(model.history, output / "losses.png", force=True)
    if ckpt is not None and ckpt.exists():
        ckpt.unlink()
    return model, adata


def cmd_train(args) -> int:
    model, adata = train_model(args.input, args.label_key, args, Path(args.output), args.force)
    sub = "" if model.subsample_ is None else f", LSH subsample {len(model.subsample_)} of {adata.n_obs} cells"
    _say(f"trained {model!r} in {model.train_seconds:.1f} s{sub}: {args.output}")
    return 0


def cmd_generate(args) -> int:
    from .io import check_writable, write_h5ad
    from .model import LSHGAN

    check_writable(args.output, force=args.force)
    model = LSHGAN.load(args.model)
    cells = model.generate(args.n_cells, cell_type=args.cell_type, seed=args.seed)
    if args.scale == "normalized":
        import numpy as np

        cells.X = (np.exp2(cells.X.astype("float64")) - 1).astype("float32")
    cells.uns["lshgan_generate"] = {"model": str(args.model), "seed": args.seed, "scale": args.scale}
    write_h5ad(cells, args.output, force=args.force)
    _say(f"generated {cells.n_obs} cells x {cells.n_vars} genes: {args.output}")
    return 0


def evaluate_files(generated, train, test, *, label_key, seed, output, plots, force,
                   include_references=True, extra=None):
    """Score generated cells against the held-out test cells; write JSON (+ PNGs)."""
    from .io import check_writable, write_json
    from .metrics import evaluate_generators
    from .model import check_genes
    from .plotting import plot_gene_statistics, plot_umap

    check_writable(output, force=force)
    check_genes(generated, list(train.var_names), what=f"training data")
    check_genes(test, list(train.var_names), what=f"training data")
    table = evaluate_generators({"lshgan": generated}, train=train, test=test,
                                label_key=label_key, seed=seed, include_references=include_references)
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
    return result, table


def cmd_evaluate(args) -> int:
    gen = _read(args.generated)
    train = _read(args.train, args.label_key)
    test = _read(args.test, args.label_key)
    _, table = evaluate_files(gen, train, test, label_key=args.label_key, seed=args.seed,
                              output=args.output, plots=args.plots, force=args.force,
                              include_references=not args.no_references)
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


def cmd_run(args) -> int:
    """preprocess -> split -> train -> generate -> evaluate, into one folder."""
    from .io import check_writable, write_h5ad
    from .preprocess import preprocess, stratified_split

    out = Path(args.out)
    check_writable(out, force=args.force)
    out.mkdir(parents=True, exist_ok=True)
    adata = _read(args.input, args.label_key)
    pp, _ = preprocess(adata, _preprocess_config(args), name=str(args.input))
    train, test = stratified_split(pp, label_key=args.label_key, seed=args.seed)
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
    _say(f"results in {out}/ (metrics.json, umap.png, losses in model/losses.png)")
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    p.add_argument("--plots", default=None, help="folder for PNG pictures (UMAP, gene statistics)")
    p.add_argument("--no-references", action="store_true", help="skip the copy and gaussian references")
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args.func(args) or 0)
    except LSHGANError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
