"""Realism table of issue 12: one command, every number computed here.

For each dataset: preprocess with the automatic defaults of :func:`lshgan.preprocess` (the
thresholds follow the detected kind of data) and 2000 highly variable genes, stratified
80/20 split (seed 0; ``--split-seed``), then, per seed, train and score on the held-out
test split:

* ``lshgan``: the library defaults (``LSHGAN(train, label_key=...)``, ``model.train()``:
  the default training budget, unless ``--epochs`` overrides it);
* ``plain``: the same architecture and budget fed pure noise (the LSH ablation);
* the references of :func:`lshgan.metrics.evaluate_generators`: ``copy`` (resampled training
  cells), ``gaussian`` (per-type Gaussian in PCA) and the ``real-vs-real`` control (training
  cells scored as if generated: what a perfect generator gets at these sample sizes);
* optionally ``scvi`` (``--with-scvi``) and, through ``--variants``, ``lsh-uncond`` /
  ``plain-uncond`` (no cell-type conditioning), ``paper`` (16-16 MLPs, BCE, mixture input)
  and ``genes`` (G and D on all genes, the default before the latent space).

Every row gets every column of :func:`lshgan.metrics.evaluate` (RF-AUC and k-NN AUC, DCR,
MMD, precision / recall / density / coverage, sub-state coverage, marker preservation;
``--groundgan`` adds the published GRouNdGAN RF-AUC protocol).  Nothing is tuned on the
test split.  Writes, after each dataset, ``OUT/realism.json`` (filter report, per-seed rows,
mean and sd over seeds, the done-when checks), ``OUT/README.md`` (headline table, checks,
one detailed table per dataset), ``OUT/<dataset>_diversity.png`` and ``OUT/rf_auc.png``.

    python scripts/realism_table.py --out reports/realism            # every dataset
    python scripts/realism_table.py --datasets yan path/to/any.h5ad --seeds 0 --out /tmp/r
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

import lshgan
from lshgan.metrics import REAL_VS_REAL, evaluate_generators
from lshgan.objective import DCR_TARGET, objective

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: Datasets of ../shared/data in table order (small to large); any other .h5ad there follows.
PREFERRED = ["yan", "pollen", "klein_subset", "pbmc_sorted_zheng", "pbmc4k_top2000",
             "mouse_bladder_top2000", "worm_neuron_top2000"]
N_TOP_GENES = 2000

VARIANTS = {
    "lshgan": dict(model={}, train={}),
    "plain": dict(model={"input_mode": "plain"}, train={}),
    "lsh-uncond": dict(model={"conditional": False}, train={}),
    "plain-uncond": dict(model={"input_mode": "plain", "conditional": False}, train={}),
    "paper": dict(model="paper", train={"loss": "bce", "n_critic": 1}),
    # the default before latent space (2026-11-22): G and D on all genes, zero-inflated head
    "genes": dict(model={"space": "genes"}, train={"ema_decay": 0.999}),
}
DEFAULT_VARIANTS = ["lshgan", "plain"]
SCVI = "scvi"

#: Summary columns: mean and sd over seeds.
SUMMARY = ("rf_auc", "dcr", "dcr_pca", "authenticity_pca", "authenticity_pca_test", "knn_auc",
           "precision", "recall", "coverage", "substate_coverage", "marker_lfc_corr",
           "marker_top50_overlap", "cells_auc", "cells_ks_level_sd", "objective", "train_seconds")
GROUNDGAN = "rf_auc_groundgan"

# Done-when checks of issue 12 (LSH-GAN against the references, per dataset, seed means).
AUC_MARGIN = 0.10   # RF-AUC at most copy's + this ...
DCR_MIN = DCR_TARGET  # ... with DCR at least this (no copying)
REAL_FRACTION = 0.8  # recall and sub-state coverage at least this x real-vs-real's
CHECKS = {
    "auc_near_copy": f"RF-AUC <= copy + {AUC_MARGIN:.2f} and DCR >= {DCR_MIN:g}",
    "beats_gaussian": "objective < gaussian's",
    "recall_vs_real": f"recall >= {REAL_FRACTION:g} x real-vs-real",
    "substates_vs_real": f"sub-state coverage >= {REAL_FRACTION:g} x real-vs-real",
}


def default_datasets() -> list[str]:
    found = {p.stem for p in SHARED.glob("*.h5ad")}
    return [d for d in PREFERRED if d in found] + sorted(found - set(PREFERRED))


def dataset_path(ds: str) -> str:
    if Path(ds).exists():
        return ds
    if (SHARED / f"{ds}.h5ad").exists():
        return str(SHARED / f"{ds}.h5ad")
    raise SystemExit(f"error: {ds}: neither a file nor a dataset of {SHARED}")


def fit_variant(name: str, train, types, n_cells: int, *, label_key: str, seed: int,
                epochs: int | None):
    """Train one variant on ``train``; return (generated cells, training seconds)."""
    if name == SCVI:
        from lshgan.baselines import SCVIGenerator
        from lshgan.paper.config import FULL

        t0 = time.perf_counter()
        gen = SCVIGenerator(steps=FULL.scvi_steps, seed=seed).fit(train, label_key=label_key)
        seconds = time.perf_counter() - t0
        return gen.generate(n_cells, cell_type=types, seed=seed), seconds
    spec = VARIANTS[name]
    if spec["model"] == "paper":
        config = lshgan.ModelConfig.paper()
    else:
        config = lshgan.ModelConfig(**spec["model"]) if spec["model"] else None
    model = lshgan.LSHGAN(train, label_key=label_key, config=config)
    kw = dict(spec["train"], seed=seed)
    if epochs is not None:  # otherwise the library's default budget
        kw["epochs"] = epochs
    model.train(progress=False, **kw)
    cells = model.generate(n_cells, cell_type=types if model.config.conditional else None,
                           seed=seed)
    return cells, model.train_seconds


def run_dataset(pp, *, seeds, label_key: str, epochs: int | None, variants, jobs: int,
                protocols, log, split_seed: int = 0) -> pd.DataFrame:
    """Per-seed table (index: generator) of every variant and reference on one dataset."""
    train, test = lshgan.stratified_split(pp, label_key=label_key, seed=split_seed)
    types = list(test.obs[label_key].astype(str))
    rows = []
    for seed in seeds:
        sets, seconds = {}, {}
        for name in variants:
            sets[name], seconds[name] = fit_variant(name, train, types, test.n_obs,
                                                    label_key=label_key, seed=seed, epochs=epochs)
            log(f"  seed {seed} {name}: trained in {seconds[name]:.0f} s")
        table = evaluate_generators(sets, train=train, test=test, label_key=label_key,
                                    seed=seed, n_jobs=jobs, protocols=protocols)
        table["train_seconds"] = pd.Series(seconds, dtype=float)
        table["seed"] = seed
        rows.append(table)
    out = pd.concat(rows)
    # real-vs-real's cells are training cells: its DCR is 0 by construction, its objective
    # (a copying penalty) is meaningless
    out["objective"] = [np.nan if g == REAL_VS_REAL else objective(a, d)
                        for g, a, d in zip(out.index, out["rf_auc"], out["dcr"])]
    return out


def summarise(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd (``<column>_sd``, over seeds) of :data:`SUMMARY` (+ GRouNdGAN's AUC)."""
    g = per_seed.groupby(level=0, sort=False)
    cols = [c for c in (*SUMMARY, GROUNDGAN) if c in per_seed.columns]
    out = {}
    for c in cols:
        out[c] = g[c].mean()
        out[f"{c}_sd"] = g[c].std(ddof=0).where(g[c].count() > 1)  # no sd of one seed
    return pd.DataFrame(out)


def _ok(condition, *values) -> bool | None:
    """``condition``, or None when any value is missing."""
    if any(v is None or not math.isfinite(float(v)) for v in values):
        return None
    return bool(condition)


def checks(summ: pd.DataFrame, generator: str) -> dict:
    """The done-when checks of issue 12 for ``generator`` (None: a reference is missing)."""
    g, nan = summ.loc[generator], float("nan")
    row = lambda name: summ.loc[name] if name in summ.index else None  # noqa: E731
    copy, gauss, real = row("copy"), row("gaussian"), row(REAL_VS_REAL)
    c_auc = nan if copy is None else copy.rf_auc
    g_obj = nan if gauss is None else gauss.objective
    r_rec = nan if real is None else real.recall
    r_sub = nan if real is None else real.substate_coverage
    return {
        "auc_near_copy": _ok(g.rf_auc <= c_auc + AUC_MARGIN and g.dcr >= DCR_MIN,
                             g.rf_auc, c_auc, g.dcr),
        "beats_gaussian": _ok(g.objective < g_obj, g.objective, g_obj),
        "recall_vs_real": _ok(g.recall >= REAL_FRACTION * r_rec, g.recall, r_rec),
        "substates_vs_real": _ok(g.substate_coverage >= REAL_FRACTION * r_sub,
                                 g.substate_coverage, r_sub),
    }


# ---------------------------------------------------------------------------- writing
def _num(v, fmt: str = ".3f") -> str:
    return "–" if v is None or not math.isfinite(float(v)) else format(float(v), fmt)


def _yes(v) -> str:
    return "–" if v is None else ("yes" if v else "**no**")


def _get(summ: pd.DataFrame, gen: str, col: str) -> float:
    if gen not in summ.index or col not in summ.columns:
        return float("nan")
    return float(summ.loc[gen, col])


def headline(results: dict, groundgan: bool) -> list[str]:
    with_scvi = any(SCVI in res["summary"] for res in results.values())
    head = ["dataset", "seeds", "cells x genes", "LSH-GAN RF-AUC / DCR", "LSH-GAN DCR states",
            "LSH-GAN authentic states (test cells)", "plain GAN",
            *(["scVI"] if with_scvi else []), "copy", "gaussian",
            "real-vs-real RF-AUC", "LSH-GAN recall (real)", "sub-state coverage (real)",
            "marker top-50 overlap (real)", "LSH-GAN per-cell AUC (copy)"]
    if groundgan:
        head.append("GRouNdGAN RF-AUC (real)")
    head.append("LSH-GAN train s")
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in results.items():
        s = pd.DataFrame.from_dict(res["summary"], orient="index")
        pp = res["preprocess"]
        pair = lambda g: (f"{_num(_get(s, g, 'rf_auc'))} / {_num(_get(s, g, 'dcr'), '.2f')}"  # noqa: E731
                          if g in s.index else "–")
        beside = lambda col, fmt=".2f": (f"{_num(_get(s, 'lshgan', col), fmt)} "  # noqa: E731
                                         f"({_num(_get(s, REAL_VS_REAL, col), fmt)})")
        seeds = sorted({int(r["seed"]) for r in res["per_seed"]})
        cells = [name, ", ".join(map(str, seeds)), f"{pp['n_cells_out']} x {pp['n_genes_out']}",
                 pair("lshgan"), _num(_get(s, "lshgan", "dcr_pca"), ".2f"),
                 f"{_num(_get(s, 'lshgan', 'authenticity_pca'), '.2f')} "
                 f"({_num(_get(s, 'lshgan', 'authenticity_pca_test'), '.2f')})", pair("plain"),
                 *([pair(SCVI)] if with_scvi else []),
                 pair("copy"), pair("gaussian"), _num(_get(s, REAL_VS_REAL, "rf_auc")),
                 beside("recall"), beside("substate_coverage"), beside("marker_top50_overlap"),
                 f"{_num(_get(s, 'lshgan', 'cells_auc'), '.2f')} "
                 f"({_num(_get(s, 'copy', 'cells_auc'), '.2f')})"]
        if groundgan:
            cells.append(beside(GROUNDGAN, ".3f"))
        cells.append(_num(_get(s, "lshgan", "train_seconds"), ".0f"))
        md.append("| " + " | ".join(cells) + " |")
    return md


def check_table(results: dict) -> list[str]:
    md = ["| dataset | " + " | ".join(CHECKS.values()) + " | all |",
          "|" + "---|" * (len(CHECKS) + 2)]
    for name, res in results.items():
        c = res["checks"].get("lshgan")
        if c is None:
            continue
        verdicts = [c[k] for k in CHECKS]
        every = None if None in verdicts else all(verdicts)
        md.append(f"| {name} | " + " | ".join(map(_yes, verdicts)) + f" | {_yes(every)} |")
    return md


def detail(name: str, res: dict, groundgan: bool) -> list[str]:
    pp = res["preprocess"]
    s = pd.DataFrame.from_dict(res["summary"], orient="index")
    md = [f"## {name}", "",
          f"{pp['data_kind']} ({pp['data_kind_source']}); cells {pp['n_cells_in']} -> "
          f"{pp['n_cells_out']} (min_genes={pp['min_genes']}), genes {pp['n_genes_in']} -> "
          f"{pp['n_genes_out']} (min_count={pp['min_count']:g} in min_cells_frac="
          f"{pp['min_cells_frac']:.3g}, then {N_TOP_GENES} highly variable); "
          f"{res['n_train']} train / {res['n_test']} test cells.", ""]
    head = ["generator", "RF-AUC", "k-NN AUC", "DCR", "DCR states", "authentic states",
            "precision", "recall", "coverage", "sub-state coverage", "marker LFC r",
            "marker top-50", "per-cell AUC", "objective", "train s"]
    if groundgan:
        head.insert(3, "GRouNdGAN RF-AUC")
    md += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g, r in s.iterrows():
        cells = [g, f"{_num(r.rf_auc)} ({_num(r.rf_auc_sd)})", _num(r.knn_auc),
                 f"{_num(r.dcr, '.2f')} ({_num(r.dcr_sd, '.2f')})"
                 + (" *" if g == REAL_VS_REAL else ""),
                 _num(r.get("dcr_pca"), ".2f"), _num(r.get("authenticity_pca"), ".2f"),
                 *(_num(r[c]) for c in ("precision", "recall", "coverage", "substate_coverage",
                                        "marker_lfc_corr", "marker_top50_overlap")),
                 _num(r.get("cells_auc")), _num(r.objective),
                 _num(r.train_seconds, ".0f")]
        if groundgan:
            cells.insert(3, _num(r.get(GROUNDGAN)))
        md.append("| " + " | ".join(cells) + " |")
    md += ["", f"![{name}: diversity per generator]({name}_diversity.png)", ""]
    return md


def write_readme(path: Path, results: dict, args) -> None:
    groundgan = bool(args.groundgan)
    md = ["# Realism on held-out cells (issue 12; generated by `scripts/realism_table.py`)", "",
          f"Seeds per dataset in the headline (this run: {list(args.seeds)}); preprocessing with the automatic defaults of "
          f"`lshgan.preprocess` (thresholds from the detected kind of data) and {N_TOP_GENES} "
          f"highly variable genes; stratified 80/20 split (seed {args.split_seed}); training budget "
          + (f"{args.epochs} epochs (--epochs)" if args.epochs else "the library default")
          + f"; lshgan {lshgan.__version__}, CPU.  Every metric compares generated cells with "
          "the held-out test split, mean over seeds (sd in the detailed tables). RF-AUC "
          "(pooled PCA(50), 5-fold; 0.5 = indistinguishable) with DCR (memorisation: 0 = "
          "copies, about 1 = new cells; on genes); DCR states: the same ratio on the training "
          "cells' top 16 principal components (the novelty of the cell states, which per-gene "
          "noise cannot fake); authentic states: the share of cells farther from their "
          "nearest training cell than that cell is from its own nearest training neighbour, "
          "on the same components (copies 0; the real test cells' share in parentheses is "
          "what unseen cells score: a low DCR states with authentic states near it is "
          "concentration, not copying); objective = RF-AUC + 2 max(0, 0.9 - DCR), lower is "
          "better. Recall / coverage / sub-state coverage: how much of the real cells' "
          "variety the generated cells reach (collapse lowers them); marker top-50: overlap "
          "of each type's top-50 marker genes; per-cell AUC: a forest on four per-cell "
          "summaries (detected genes, total, mean and spread of the detected levels; "
          "`lshgan.metrics.cell_statistics`), `copy`'s in parentheses. `real-vs-real` scores "
          "training cells as if "
          "generated: the best a generator can do at these sample sizes (values in "
          "parentheses); its DCR is 0 by construction (*), so it has no objective.", "",
          "## Headline", "", *headline(results, groundgan), "",
          "## Done-when checks of issue 12 (LSH-GAN, seed means)", "", *check_table(results), "",
          "![RF-AUC per dataset and generator](rf_auc.png)", ""]
    for name, res in results.items():
        md += detail(name, res, groundgan)
    path.write_text("\n".join(md) + "\n")


def plot_rf_auc(results: dict, path: Path) -> Path:
    """Bars: RF-AUC (mean, sd as error bar) per dataset, one bar per generator."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from lshgan.io import atomic_path

    names = list(results)
    gens = list(dict.fromkeys(g for r in results.values() for g in r["summary"]))
    cmap = colormaps["tab10" if len(gens) <= 10 else "tab20"]
    fig = Figure(figsize=(max(7.0, len(names) * (0.5 + 0.25 * len(gens))), 4.5),
                 layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    width, x = 0.8 / len(gens), np.arange(len(names))
    for i, g in enumerate(gens):
        mean = [results[n]["summary"].get(g, {}).get("rf_auc") for n in names]
        sd = [results[n]["summary"].get(g, {}).get("rf_auc_sd") for n in names]
        mean = np.array([np.nan if v is None else v for v in mean], dtype=float)
        sd = np.array([0.0 if v is None else v for v in sd], dtype=float)
        ax.bar(x + (i - (len(gens) - 1) / 2) * width, mean, width, yerr=sd, capsize=2,
               color=cmap(i % cmap.N), label=g, hatch="//" if g == REAL_VS_REAL else None,
               edgecolor="white", linewidth=0.5, error_kw={"elinewidth": 0.8})
    ax.axhline(0.5, ls="--", color="grey", lw=1)
    ax.set_ylim(0.0, 1.05)
    ax.set_xticks(x, names, fontsize=8, rotation=15)
    ax.set_ylabel("RF-AUC, real test vs generated (0.5 = indistinguishable)")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False,
              title="Generator")
    ax.set_title("Realism per dataset: random-forest AUC (mean, sd over seeds)")
    with atomic_path(path, force=True) as tmp:
        fig.savefig(tmp, dpi=150, format="png")
    return path


def _json(frame: pd.DataFrame, orient: str):
    return json.loads(frame.to_json(orient=orient))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=None,
                   help=f"names in {SHARED} or paths to any dataset (default: every .h5ad there)")
    p.add_argument("--label-key", default="cell_type")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=None,
                   help="override the training budget (default: the library's, not passed)")
    p.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=[*VARIANTS, SCVI],
                   help=f"generators to train (default {' '.join(DEFAULT_VARIANTS)}); the copy, "
                        "gaussian and real-vs-real references are always scored")
    p.add_argument("--with-scvi", action="store_true",
                   help="add the scVI baseline of lshgan.baselines (1000 steps, as the paper "
                        "report; needs scvi-tools). Slow: about 0.5 to 12 minutes per dataset and "
                        "seed on 2 CPU cores (28-692 s per fit in reports/paper)")
    p.add_argument("--groundgan", action="store_true",
                   help="also score the published GRouNdGAN RF-AUC protocol (a 1000-tree forest)")
    p.add_argument("--jobs", type=int, default=-1,
                   help="n_jobs of the random forests (default -1: every core)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads for training (default 1, as `lshgan train`; 0: torch's)")
    p.add_argument("--split-seed", type=int, default=0,
                   help="seed of the stratified 80/20 train/test split (default 0, the table's "
                        "split; others measure how much one split of a small dataset decides)")
    p.add_argument("--out", default="reports/realism")
    p.add_argument("--resume", action="store_true",
                   help="keep the datasets and seeds already in OUT/realism.json and run only the "
                        "missing ones (a long table in pieces; the settings must be the same)")
    args = p.parse_args(argv)
    variants = list(dict.fromkeys(args.variants + ([SCVI] if args.with_scvi else [])))
    if SCVI in variants:
        from lshgan.baselines import scvi_available

        if not scvi_available():
            raise SystemExit("error: --with-scvi needs scvi-tools: pip install scvi-tools")
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    protocols = ("groundgan",) if args.groundgan else ()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    if args.resume and (out / "realism.json").exists():
        saved = json.loads((out / "realism.json").read_text())
        if saved["settings"].get("split_seed", 0) != args.split_seed:
            raise SystemExit(f"error: {out / 'realism.json'} was made with --split-seed "
                             f"{saved['settings'].get('split_seed', 0)}, not {args.split_seed}")
        results = saved["datasets"]
    for ds in args.datasets or default_datasets():
        path = dataset_path(ds)
        name = Path(path).stem
        kept = None
        if name in results:
            kept = pd.DataFrame(results[name]["per_seed"]).set_index("generator")
            kept.index.name = None
            todo = [s for s in args.seeds if s not in set(kept["seed"].astype(int))]
            if not todo:
                print(f"{name}: kept from {out / 'realism.json'} (--resume)", flush=True)
                continue
            print(f"{name}: seeds {sorted(set(kept['seed'].astype(int)))} kept from "
                  f"{out / 'realism.json'}, running seeds {todo} (--resume)", flush=True)
        else:
            todo = list(args.seeds)
        t0 = time.time()
        adata = lshgan.read_dataset(path, label_key=args.label_key)
        pp, _ = lshgan.preprocess(adata, lshgan.PreprocessConfig(n_top_genes=N_TOP_GENES),
                                  name=name)
        report = dict(pp.uns["lshgan_preprocess"])
        print(f"{name}: {pp.n_obs} cells x {pp.n_vars} genes kept ({report['data_kind']})",
              flush=True)
        per_seed = run_dataset(pp, seeds=todo, label_key=args.label_key,
                               epochs=args.epochs, variants=variants, jobs=args.jobs,
                               protocols=protocols, log=lambda m: print(m, flush=True),
                               split_seed=args.split_seed)
        if kept is not None:
            per_seed = pd.concat([kept[per_seed.columns.intersection(kept.columns)], per_seed])
        seeds_done = sorted(set(per_seed["seed"].astype(int)))
        summ = summarise(per_seed)
        n_test = int(per_seed["n_test"].iloc[0])
        results[name] = {
            "path": str(path), "preprocess": report, "n_train": int(pp.n_obs - n_test),
            "n_test": n_test,
            "per_seed": _json(per_seed.reset_index(names="generator"), "records"),
            "summary": _json(summ, "index"),
            "checks": {g: checks(summ, g) for g in summ.index
                       if not per_seed.loc[[g], "reference"].any()},
        }
        means = per_seed.drop(columns=["reference", "seed"]).groupby(level=0, sort=False).mean()
        from lshgan.plotting import plot_diversity

        plot_diversity(means, out / f"{name}_diversity.png", force=True,
                       title=f"{name}: diversity and cell-type identity (mean over "
                             f"seed{'s' * (len(seeds_done) > 1)} {', '.join(map(str, seeds_done))})")
        plot_rf_auc(results, out / "rf_auc.png")
        (out / "realism.json").write_text(json.dumps(
            {"settings": {"seeds": args.seeds, "split_seed": args.split_seed,
                          "epochs": args.epochs, "variants": variants,
                          "n_top_genes": N_TOP_GENES, "groundgan": args.groundgan,
                          "version": lshgan.__version__, "checks": CHECKS},
             "datasets": results}, indent=2, default=str))
        write_readme(out / "README.md", results, args)
        print(f"{name}: done in {time.time() - t0:.0f} s", flush=True)
    if results:  # also when every dataset was kept (--resume): the README of this code
        plot_rf_auc(results, out / "rf_auc.png")
        write_readme(out / "README.md", results, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
