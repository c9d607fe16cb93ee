"""``python -m lshgan.paper``: regenerate the paper-reproduction report.

Examples
--------
``python -m lshgan.paper --out reports/paper`` (the four shared datasets, full budget);
``python -m lshgan.paper --datasets my.h5ad --label-key cell_type --quick --out /tmp/r``.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from .report import EXPERIMENTS

    p = argparse.ArgumentParser(
        prog="python -m lshgan.paper",
        description="Reproduce the LSH-GAN paper's tables against its peers and write "
                    "Markdown + PNG to --out.")
    p.add_argument("--datasets", nargs="+", metavar="PATH",
                   help="labelled datasets (any format lshgan reads); default: the four "
                        "shared ones (yan, pollen, klein_subset, pbmc_sorted_zheng)")
    p.add_argument("--label-key", default="cell_type", help="obs column with cell types")
    p.add_argument("--quick", action="store_true",
                   help="tiny budgets: a smoke run of every experiment in minutes")
    p.add_argument("--out", default="reports/paper", help="output folder")
    p.add_argument("--only", nargs="+", choices=EXPERIMENTS, default=list(EXPERIMENTS),
                   help="run only these experiments")
    p.add_argument("--generators", nargs="+", metavar="NAME",
                   help="generators of Tables 2-3 (default: all but scgan)")
    p.add_argument("--seeds", nargs="+", type=int, metavar="S", help="generator seeds")
    p.add_argument("--activa-seeds", nargs="+", type=int, metavar="S",
                   help="seeds of the rare-population test (default 0-4)")
    p.add_argument("--activa-dataset", help="dataset name of the rare-population test "
                                            "(default: the largest file given)")
    p.add_argument("--activa-type", help="cell type made rare (default: the most abundant)")
    p.add_argument("--jobs", type=int, default=1, help="random-forest jobs")
    p.add_argument("--cache", type=Path,
                   help="reuse generated cells stored here (development only)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    import torch

    from ..baselines import GENERATORS
    from ..errors import LSHGANError
    from .config import FULL, QUICK
    from .data import default_dataset_paths
    from .report import run_report

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    budget = QUICK if args.quick else FULL
    if args.generators:
        unknown = sorted(set(args.generators) - set(GENERATORS))
        if unknown:
            print(f"error: unknown generator(s) {', '.join(unknown)}; choose from "
                  f"{', '.join(GENERATORS)}", file=sys.stderr)
            return 2
        budget = replace(budget, generators=tuple(args.generators))
    if args.seeds:
        budget = replace(budget, seeds=tuple(args.seeds))
    if args.activa_seeds:
        budget = replace(budget, activa_seeds=tuple(args.activa_seeds))
    paths = args.datasets or [str(p) for p in default_dataset_paths()]
    try:
        run_report(paths, args.out, budget, label_key=args.label_key, experiments=args.only,
                   jobs=args.jobs, cache=args.cache, activa_dataset=args.activa_dataset,
                   activa_type=args.activa_type, mode="quick" if args.quick else "full")
    except LSHGANError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
