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

This module only parses arguments and prints: every step is a function of
:mod:`lshgan.workflow`, every setting goes through :mod:`lshgan.config`.  The MLOps
subcommands (``track``, ``tune``, ``serve``, ...) are attached in one place,
:func:`add_mlops_subcommands`; nothing of the core imports them.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__, workflow
from .errors import LSHGANError, check_positive_int
from .workflow import say as _say
from .workflow import user_warnings

EXIT_USER_ERROR = 2


# --------------------------------------------------------------------------- helpers
def _add_preprocess_args(p: argparse.ArgumentParser) -> None:
    from .datakind import KINDS, PAPER_MIN_CELLS_FRAC, PAPER_MIN_COUNT, PAPER_MIN_GENES

    g = p.add_argument_group("preprocessing (a threshold not given follows the kind of data)")
    g.add_argument("--data-kind", choices=["auto", *KINDS], default="auto",
                   help="what the values are (default auto: detected from the values)")
    g.add_argument("--layer", default=None,
                   help="read the values from this layer of the .h5ad instead of .X (e.g. counts)")
    g.add_argument("--transpose", action="store_true",
                   help="the text or .mtx file is genes x cells (R and GEO tables, a bare 10x matrix.mtx)")
    g.add_argument("--obs", default=None, metavar="TABLE",
                   help="a .csv/.tsv of cell annotations joined into .obs (first column: cell "
                        "names), e.g. the cell types of a matrix file: --obs types.csv --label-key cell_type")
    g.add_argument("--log-base", type=float, default=None,
                   help="base of already log-normalised input (default e, as scanpy's and Seurat's "
                        "log1p; e.g. 2 or 10); rescaled to log2(1+x)")
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
                data_kind=args.data_kind, layer=args.layer, log_base=args.log_base,
                transpose=args.transpose, obs=args.obs)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    """Flags of the model and training settings (:mod:`lshgan.config`).

    Their defaults are ``None``, "not given": the preset's value applies (``--paper``), else
    the field's default, which the help shows.
    """
    from .config import PRESETS
    from .model import ModelConfig
    from .module.training import TrainConfig

    m, t = ModelConfig(), TrainConfig()
    dests = []
    p.set_defaults(setting_flags=dests)  # what settings() reads

    class Group:  # an argument group that records the settings' flags
        def __init__(self, title):
            self.group = p.add_argument_group(title)

        def add_argument(self, *flags, setting=True, **kw):
            action = self.group.add_argument(*flags, **kw)
            if setting:
                dests.append(action.dest)

    g = Group("LSH sampling")
    g.add_argument("--k", type=int, default=None, help=f"neighbours marked per kept cell (default {m.k})")
    g.add_argument("--t", type=int, default=None, help=f"rounds of the greedy pass (default {m.t})")
    g = Group("model")
    g.add_argument("--input-mode", choices=["lsh", "plain", "paper"], default=None,
                   help="generator input: LSH-subsample anchors + noise (lsh, the default), pure "
                        "noise (plain), the paper's gene-dimensional mixture (paper)")
    g.add_argument("--space", choices=["genes", "latent"], default=None,
                   help=f"where the GAN works: every gene, or a whitened PCA cell state decoded to "
                        f"genes by a fitted hurdle model (default {m.space})")
    g.add_argument("--n-latent", type=int, default=None,
                   help="latent dimension with --space latent (default: training cells / 10, 8 to 16)")
    g.add_argument("--anchor-residual", action=argparse.BooleanOptionalAction, default=None,
                   help="G writes a displacement from its LSH anchor's cell state (default; "
                        "--no-anchor-residual: a free cell state, the anchor only an input)")
    g.add_argument("--type-offsets", action=argparse.BooleanOptionalAction, default=None,
                   help="the latent model's decoder adds a per-cell-type offset to each gene's "
                        "detection and level (conditional models; default: on for UMI counts, "
                        "off for other kinds of data)")
    g.add_argument("--detection-state", action=argparse.BooleanOptionalAction, default=None,
                   help="the latent cell state also holds the cell's detection rate (number "
                        "of detected genes), generated by the GAN and read by the decoder "
                        "(default: on)")
    g.add_argument("--detection-neighbors", type=int, default=None, metavar="K",
                   help="the latent model's decoder takes each gene's detection probability "
                        "partly from the K nearest training cells (0: off; default: 10 from "
                        "1000 training cells, off below)")
    g.add_argument("--state-genes", type=int, default=None,
                   help=f"the cell state's PCA is fitted on this many most variable genes when "
                        f"there are more (default {m.state_genes}; 0: every gene); the "
                        f"generated cells carry every gene either way")
    g.add_argument("--paper", action="store_true",
                   help=f"start from the paper preset ({PRESETS['paper'].doc}); flags given as "
                        "well override it")
    g.add_argument("--g-hidden", type=_widths, default=None,
                   help=f"generator widths, e.g. 256,256 (default {_fmt(m.g_hidden)})")
    g.add_argument("--d-hidden", type=_widths, default=None,
                   help=f"discriminator widths (default {_fmt(m.d_hidden)})")
    g.add_argument("--noise-dim", type=int, default=None, help=f"(default {m.noise_dim})")
    g.add_argument("--unconditional", action="store_true", help="ignore cell types even if labels are given")
    g = Group("training")
    g.add_argument("--epochs", type=int, default=None,
                   help=f"passes over the training cells (default {t.epochs}), at most --max-steps updates")
    g.add_argument("--max-steps", type=int, default=None,
                   help=f"the budget's cap in generator updates (default {t.max_steps}: 300 epochs of "
                        "200 cells, 48 (the last one partial) of 2,700; 0: no cap)")
    g.add_argument("--batch-size", type=_batch_size, default=None,
                   help=f"cells per batch, or 'full' (every cell; --paper) (default {t.batch_size})")
    g.add_argument("--lr", type=float, default=None,
                   help=f"learning rate of G and D (default {t.lr_g:g})")
    g.add_argument("--loss", choices=["wgan-gp", "hinge", "bce"], default=None,
                   help=f"adversarial objective (default {t.loss}; --paper: bce)")
    g.add_argument("--n-critic", type=int, default=None,
                   help=f"D steps per G step (default {t.n_critic})")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    g.add_argument("--threads", type=int, default=1,
                   help="CPU threads of torch (default 1: fastest for these small networks, and "
                        "25x faster than torch's default on a busy 2-core machine; 0: torch's default)")
    g.add_argument("--checkpoint-every", type=int, default=0, help="write a resumable checkpoint every N epochs")
    g.add_argument("--resume", action="store_true", setting=False,
                   help="continue from the checkpoint in the output folder")


def _fmt(widths) -> str:
    return ",".join(map(str, widths))


def _batch_size(text: str):
    from .config import FULL_BATCH

    if text == FULL_BATCH:
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or {FULL_BATCH!r}, got {text!r}") from None


def _widths(text: str) -> tuple[int, ...]:
    try:
        w = tuple(int(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths must be integers separated by commas, got {text!r}")
    if not w or min(w) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return w


def settings(args) -> dict:
    """The flat settings (:func:`lshgan.config.train_configs`) of ``train``/``run`` arguments:
    the flags of :func:`_add_model_args` that were given (not ``None``)."""
    check_positive_int("--checkpoint-every", args.checkpoint_every, minimum=0)
    return {name: getattr(args, name) for name in args.setting_flags
            if getattr(args, name) is not None}


# --------------------------------------------------------------------------- commands
def cmd_preprocess(args) -> int:
    adata, out = workflow.preprocess(args.input, args.output, config=_preprocess_config(args),
                                     label_key=args.label_key, force=args.force)
    _say(f"preprocessed {adata.n_obs} x {adata.n_vars} -> {out.n_obs} cells x {out.n_vars} genes: {args.output}")
    return 0


def cmd_split(args) -> int:
    adata, train, test = workflow.split(args.input, args.train, args.test, label_key=args.label_key,
                                        test_size=args.test_size, seed=args.seed, force=args.force)
    _say(f"split {adata.n_obs} cells: {train.n_obs} train ({args.train}), {test.n_obs} test ({args.test})")
    return 0


def cmd_train(args) -> int:
    model, adata = workflow.train(args.input, args.output, settings=settings(args),
                                  label_key=args.label_key, force=args.force, resume=args.resume,
                                  progress=not args.quiet, plots=args.output)
    sub = "" if model.subsample_ is None else f", LSH subsample {len(model.subsample_)} of {adata.n_obs} cells"
    _say(f"trained {model!r} in {model.train_seconds:.1f} s{sub}: {args.output}")
    return 0


def cmd_generate(args) -> int:
    check_positive_int("--n-cells", args.n_cells)  # named as the user typed it
    cells = workflow.generate(args.model, args.output, n_cells=args.n_cells, cell_type=args.cell_type,
                              seed=args.seed, scale=args.scale, layer=args.layer, force=args.force)
    _say(f"generated {cells.n_obs} cells x {cells.n_vars} genes: {args.output}")
    return 0


def cmd_evaluate(args) -> int:
    _, table = workflow.evaluate(args.generated, args.train, args.test, args.output,
                                 label_key=args.label_key, seed=args.seed, plots=args.plots,
                                 references=not args.no_references,
                                 protocols=("groundgan",) if args.groundgan else (),
                                 force=args.force)
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


def cmd_run(args) -> int:
    """preprocess -> split -> train -> generate -> evaluate, into one folder."""
    _, table = workflow.run(args.input, args.out, label_key=args.label_key,
                            preprocess=_preprocess_config(args), settings=settings(args),
                            seed=args.seed, force=args.force, resume=args.resume,
                            progress=not args.quiet)
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    _say(f"results in {args.out}/ (metrics.json, umap.png, diversity.png, gene_statistics.png, "
         "cell_statistics.png, losses in model/losses.png)")
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
    p.add_argument("--layer", choices=["log", "normalized", "counts"], default=None,
                   help="what .X of the output holds: log2(1+x) (default, the model's scale), the "
                        "library-size-normalised linear scale, or integer counts (models trained "
                        "on counts; their output always keeps them in .layers['counts'])")
    p.add_argument("--scale", choices=["log", "normalized"], default=None,
                   help="the older name of --layer log|normalized")
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

    add_mlops_subcommands(sub)
    return parser


def add_mlops_subcommands(subparsers) -> None:
    """The one place the MLOps layer joins the command line: ``track``, ``register``,
    ``log-metrics``, ``sample``, ``augment``, ``serve`` and ``tune`` of
    :mod:`lshgan.mlops.cli` (imported here, lazily; it imports nothing of the CLI)."""
    from .mlops.cli import add_subcommands

    add_subcommands(subparsers)


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
