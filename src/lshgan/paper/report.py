"""Run every experiment and write ``README.md`` (Markdown tables), ``results.json`` and PNGs.

Every number in the Markdown comes from the rows the experiments return in this run; the
published values (:mod:`lshgan.paper.config`) appear only in columns marked "paper".
"""

from __future__ import annotations

import platform
import resource
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..io import atomic_path, read_dataset, write_json
from . import pictures
from .activa import run_activa
from .augmentation import WITHOUT, run_gene_selection
from .config import (PAPER_ROW_FOR, PAPER_TABLE1, PAPER_TABLE1_EPOCHS, PAPER_TABLE2,
                     PAPER_TABLE3, Budget, paper_key)
from .data import PreparedData, prepare
from .realism import run_realism
from .selection import METHOD_LABELS, METHODS
from .simulated import run_figure2, run_table1

EXPERIMENTS = ("table1", "fig2", "table2", "table3", "activa", "pictures")


# ---------------------------------------------------------------------------- formatting
def fmt(values, digits: int = 2) -> str:
    """``mean ± sd`` over the values (sd with ddof=1); just the mean for one value."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return "–"
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _paper(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


# ---------------------------------------------------------------------------- sections
def table1_markdown(rows: list[dict], budget: Budget) -> str:
    df = pd.DataFrame(rows)
    epochs = list(budget.table1_epochs)
    header = ["model", *[f"ours, {e} ep." for e in epochs],
              *[f"paper, {e} ep." for e in PAPER_TABLE1_EPOCHS]]
    body = []
    for model, g in df.groupby("model", sort=False):
        ours = [fmt(g[g["epoch"] == e]["wasserstein"], 1) for e in epochs]
        paper = PAPER_TABLE1.get(model, {})
        body.append([model, *ours, *[_paper(paper.get(e)) for e in PAPER_TABLE1_EPOCHS]])
    last = df[df["epoch"] == epochs[-1]].groupby("model")["wasserstein"].mean()
    lsh = last[[m for m in last.index if m.startswith("LSH-GAN")]]
    verdict = (f"At {epochs[-1]} epochs the best LSH-GAN ({lsh.idxmin()}, W1 {lsh.min():.1f}) "
               f"is {'below' if lsh.min() < last.get('GAN', np.inf) else 'not below'} the GAN "
               f"({last.get('GAN', float('nan')):.1f}); LSH-GAN k=5 is "
               f"{'the best k' if lsh.idxmin() == 'LSH-GAN k=5' else 'not the best k'} "
               "(paper: k=5 best and every LSH-GAN below the GAN at 25000 epochs).")
    return md_table(header, body) + "\n\n" + verdict


def table2_markdown(rows: list[dict], datasets: list[str]) -> str:
    df = pd.DataFrame(rows)
    header = ["generator"]
    for ds in datasets:
        header += [f"{ds} AUC", f"{ds} DCR", f"{ds} AUC paper"]
    header.append("fit s (mean)")
    body = []
    for gen, g in df.groupby("generator", sort=False):
        line = [gen]
        for ds in datasets:
            d = g[g["dataset"] == ds]
            key = paper_key(ds)
            paper = PAPER_TABLE2.get(PAPER_ROW_FOR.get(gen, ""), {}).get(key) if key else None
            line += [fmt(d["rf_auc"]), fmt(d["dcr"]), _paper(paper)]
        line.append(f"{g['fit_seconds'].mean():.0f}")
        body.append(line)
    return md_table(header, body)


def table3_markdown(rows: list[dict], dataset: str) -> str:
    df = pd.DataFrame([r for r in rows if r["kind"] == "table" and r["dataset"] == dataset])
    if df.empty:
        return "_not run_"
    gens = list(dict.fromkeys(df["generator"]))
    header = ["method", *gens, "paper LSH-GAN", "paper without model"]
    key = paper_key(dataset)
    body = []
    for method in METHODS:
        d = df[df["method"] == method]
        paper = PAPER_TABLE3.get(method, {}).get(key) if key else None
        body.append([METHOD_LABELS[method], *[fmt(d[d["generator"] == g]["ari"]) for g in gens],
                     _paper(paper[0] if paper else None, 3),
                     _paper(paper[1] if paper else None, 3)])
    return md_table(header, body)


def sweep_markdown(rows: list[dict], budget: Budget) -> str:
    df = pd.DataFrame([r for r in rows if r["kind"] == "sweep"])
    if df.empty:
        return "_not run_"
    base = pd.DataFrame([r for r in rows if r["generator"] == WITHOUT])
    ratios = sorted(df["ratio"].unique())
    header = ["dataset", "method", "generator", "without model",
              *[f"{r:g}p" for r in ratios]]
    body = []
    for (ds, method, gen), g in df.groupby(["dataset", "method", "generator"], sort=False):
        b = base[(base["dataset"] == ds) & (base["method"] == method)]["ari"]
        body.append([ds, METHOD_LABELS[method], gen, fmt(b),
                     *[fmt(g[g["ratio"] == r]["ari"]) for r in ratios]])
    return md_table(header, body)


def activa_markdown(rows: list[dict]) -> str:
    df = pd.DataFrame(rows)
    fracs = sorted(df["fraction"].unique(), reverse=True)
    kept = {f: int(df[df["fraction"] == f]["n_rare_kept"].iloc[0]) for f in fracs}
    header = ["generator", *[f"{f:.1%} ({kept[f]} cells)" for f in fracs]]
    body = [[gen, *[fmt(g[g["fraction"] == f]["f1"]) for f in fracs]]
            for gen, g in df.groupby("generator", sort=False)]
    return md_table(header, body)


# ---------------------------------------------------------------------------- the run
@dataclass
class Report:
    """Everything one run produced (rows are plain dicts, JSON-ready)."""

    budget: Budget
    datasets: list[dict] = field(default_factory=list)
    table1: list[dict] = field(default_factory=list)
    table2: list[dict] = field(default_factory=list)
    table3: list[dict] = field(default_factory=list)
    activa: list[dict] = field(default_factory=list)
    activa_setup: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)


def _timer(report: Report, key: str, log: Callable[[str], None]):
    class _T:
        def __enter__(self):
            log(f"[{datetime.now():%H:%M:%S}] {key}")
            self.t0 = time.perf_counter()

        def __exit__(self, *exc):
            report.seconds[key] = round(time.perf_counter() - self.t0, 1)

    return _T()


def run_report(paths: Sequence[str | Path], out: str | Path, budget: Budget, *,
               label_key: str = "cell_type", experiments: Sequence[str] = EXPERIMENTS,
               jobs: int = 1, cache: Path | None = None, activa_dataset: str | None = None,
               activa_type: str | None = None, mode: str = "full",
               log: Callable[[str], None] = print) -> Report:
    """Run the chosen experiments on the datasets at ``paths``; write the report to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(budget=budget)
    t_start = time.perf_counter()
    if "table1" in experiments:
        with _timer(report, "table1", log):
            report.table1 = run_table1(epochs=budget.table1_epochs, seeds=budget.table1_seeds,
                                       ks=budget.table1_ks, n_samples=budget.table1_samples,
                                       n_features=budget.table1_features, log=log)
            report.figures["table1"] = pictures.plot_table1(report.table1, out / "table1.png")
    if "fig2" in experiments:
        with _timer(report, "fig2", log):
            report.figures["fig2"] = pictures.plot_figure2(
                run_figure2(epochs=budget.fig2_epochs), out / "figure2.png")
    prepared: list[PreparedData] = []
    if any(e in experiments for e in ("table2", "table3", "pictures")):
        for path in paths:
            data = prepare(path, n_genes=budget.n_genes, label_key=label_key)
            log(data.describe())
            report.datasets.append({"name": data.name, "path": str(path),
                                    "cells": data.full.n_obs, "genes": data.full.n_vars,
                                    "types": data.n_types, "train": data.train.n_obs,
                                    "test": data.test.n_obs})
            with _timer(report, f"table2 {data.name}", log):
                rows, sets = run_realism(data, budget, jobs=jobs, cache=cache, log=log)
                report.table2 += rows
            if "table3" in experiments:
                with _timer(report, f"table3 {data.name}", log):
                    report.table3 += run_gene_selection(data, sets, budget, log=log)
            if "pictures" in experiments:
                with _timer(report, f"pictures {data.name}", log):
                    first = {g: s[budget.seeds[0]].like_test for g, s in sets.items()}
                    report.figures[data.name] = pictures.draw_pictures(
                        data, first, out, n_markers=budget.n_markers)
            prepared.append(data)
            del sets
        if report.table3:
            report.figures["sweep"] = pictures.plot_sweep(report.table3, out / "table3_sweep.png")
    if "activa" in experiments:
        with _timer(report, "activa", log):
            target = _activa_path(paths, activa_dataset, report.datasets)
            data = prepare(target, n_genes=budget.activa_genes, label_key=label_key)
            rare, report.activa = run_activa(data, budget, rare=activa_type, jobs=jobs, log=log)
            report.activa_setup = {"dataset": data.name, "rare_type": rare,
                                   "genes": data.full.n_vars,
                                   "rare_train_cells": report.activa[0]["n_rare_train"]}
            report.figures["activa"] = pictures.plot_activa(report.activa, out / "activa.png")
    report.seconds["total"] = round(time.perf_counter() - t_start, 1)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report.seconds["cpu (user + system)"] = round(usage.ru_utime + usage.ru_stime, 1)
    write_json({"budget": budget.to_dict(), "mode": mode, "datasets": report.datasets,
                "table1": report.table1, "table2": report.table2, "table3": report.table3,
                "activa": report.activa, "activa_setup": report.activa_setup,
                "seconds": report.seconds}, out / "results.json", force=True)
    with atomic_path(out / "README.md", force=True) as tmp:
        tmp.write_text(render(report, mode=mode, experiments=experiments))
    log(f"report written to {out} in {report.seconds['total'] / 60:.1f} min")
    return report


def _activa_path(paths: Sequence, name: str | None, known: list[dict]):
    """The dataset of the rare-population test: ``name``, else the one with most cells."""
    if name:
        for p in paths:
            if Path(str(p)).name.split(".")[0] == name:
                return p
        return name
    cells = {d["path"]: d["cells"] for d in known}
    for p in paths:
        if str(p) not in cells:
            cells[str(p)] = read_dataset(p).n_obs
    return max(paths, key=lambda p: cells[str(p)])


# ---------------------------------------------------------------------------- Markdown
def render(report: Report, *, mode: str, experiments: Sequence[str]) -> str:
    """The Markdown report."""
    b = report.budget
    minutes = report.seconds.get("total", 0) / 60
    parts = [
        "# LSH-GAN paper reproduction",
        "",
        f"Written by `python -m lshgan.paper` ({mode} budget) on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in {minutes:.0f} min "
        f"({platform.machine()}, CPU). Every number below is computed by that command; "
        "columns marked *paper* are the values printed in Lall et al., *Communications "
        "Biology* 2022, shown for comparison only. `results.json` holds every row. "
        "A ± is the standard deviation over seeds. What reproduced and what did not, and "
        "why: [docs/paper.md](../../docs/paper.md).",
        "",
        f"**Budget (scaled down from the paper).** Every GAN gets {b.critic_updates} "
        "discriminator updates: as many generator updates for the models with one critic "
        f"step per generator step (`lshgan`, `gan`, the paper-style 16-16 models), "
        f"{b.critic_updates // 5} for the WGAN-GP `cscgan` (5 critic steps each); scVI: "
        f"{b.scvi_steps} steps; seeds {list(b.seeds)}; {b.n_genes} highly variable genes. "
        "The paper trained 10000-25000 epochs.",
    ]
    if report.datasets:
        parts += ["", md_table(["dataset", "cells", "genes", "types", "train", "test"],
                               [[d["name"], d["cells"], d["genes"], d["types"], d["train"],
                                 d["test"]] for d in report.datasets])]
    if report.table1:
        parts += ["", "## Table 1: simulated data (Wasserstein distance, lower is better)", "",
                  f"Two classes, {b.table1_samples} samples x {b.table1_features} features, "
                  "means in [5, 15] and [-15, -5], covariance 0.5^|i-j|, 80/20 split. "
                  "W1 = exact optimal transport between the test samples and as many generated "
                  "samples, Euclidean cost, in feature units (the paper's values are on an "
                  "unknown scale: compare orderings only). Our epochs are full-batch updates "
                  "with lr 1e-2 (the paper: 10000-25000 epochs of 10+10 updates at lr 1e-3). "
                  f"Seeds {list(b.table1_seeds)}.", "",
                  table1_markdown(report.table1, b), "", "![Table 1](table1.png)"]
    if "fig2" in report.figures:
        parts += ["", "## Figure 2: toy distribution", "",
                  "y = 10 + x², the authors' 16-16 networks, LSH with 4 neighbours; "
                  "real points blue, generated orange.", "", "![Figure 2](figure2.png)"]
    if report.table2:
        names = [d["name"] for d in report.datasets]
        parts += ["", "## Table 2: real vs generated (random-forest AUC, 0.5 is ideal)", "",
                  "AUC of a random forest (300 trees, 5-fold) telling the held-out test cells "
                  "from as many generated cells, on a PCA(50) fitted on the pooled "
                  "classification set; mean ± sd over generator seeds. **DCR** = median "
                  "distance of generated cells to their nearest training cell / the same for "
                  "real test cells: 0 = copies of training cells (memorisation), about 1 = as "
                  "novel as fresh real cells. `copy` and `gaussian` are the no-learning "
                  "references. The paper's GAN row is shown beside both `gan` and `gan-paper`, "
                  "its LSH-GAN beside both `lshgan` and `lshgan-paper`.", "",
                  table2_markdown(report.table2, names)]
    if report.table3:
        parts += ["", "## Table 3: gene selection on real + generated cells, then clustering "
                  "(ARI)", "",
                  f"{b.n_selected} genes selected on the training cells stacked with "
                  f"{b.augment_ratio:g} x p generated cells (p = genes), then SC3-like "
                  "consensus clustering of the real cells on those genes (at most "
                  f"{b.max_cluster_cells}, stratified), k = number of types; ARI against the "
                  "labels, mean ± sd over seeds (generator and k-means).", ""]
        for d in report.datasets:
            parts += [f"### {d['name']}", "", table3_markdown(report.table3, d["name"]), ""]
        parts += ["### Sample-size sweep", "", sweep_markdown(report.table3, b), "",
                  "![sweep](table3_sweep.png)"]
    if report.activa:
        s = report.activa_setup
        parts += ["", "## ACTIVA rare-population test (F1 of the rare type, test split)", "",
                  f"Dataset {s['dataset']} ({s['genes']} genes); rare type **{s['rare_type']}** "
                  f"({s['rare_train_cells']} training cells) cut to the fraction shown; the "
                  f"conditional generators ({b.activa_critic_updates} discriminator updates "
                  f"for the GANs) add "
                  f"{b.activa_n_generated} cells of it; random forest ({b.activa_trees} trees) "
                  "on genes; "
                  f"mean ± sd over seeds {list(b.activa_seeds)}.", "",
                  activa_markdown(report.activa), "", "![ACTIVA](activa.png)"]
    pics = [d["name"] for d in report.datasets if d["name"] in report.figures]
    if pics:
        parts += ["", "## Pictures", "",
                  "Per dataset (seed 0): UMAP of real held-out vs generated cells; marker "
                  "genes on those UMAPs; dropout vs mean expression; marker gene-gene "
                  "correlation."]
        for name in pics:
            parts += ["", f"### {name}", ""]
            parts += [f"![{kind} {name}]({kind}_{name}.png)"
                      for kind in ("umap", "markers", "dropout", "correlation")]
    parts += ["", "## Run time", "",
              "Wall-clock seconds per step; the last row is the CPU time this process used. "
              "On a machine shared with other jobs the wall time exceeds the CPU time.", "",
              md_table(["step", "seconds"], [[k, v] for k, v in report.seconds.items()]), ""]
    return "\n".join(parts)
