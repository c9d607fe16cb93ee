"""The pictures a biologist would look at, for every generator on one dataset.

* ``umap_<dataset>.png``: one UMAP per generator of the held-out real cells (blue) and as
  many generated cells (orange), on a PCA fitted on the pooled cells
  (:func:`lshgan.metrics.pooled_pca`); well-mixed colours = the generator covers the
  real states, separate islands = a classifier will tell them apart.
* ``markers_<dataset>.png``: on the same embeddings, the expression of marker genes (the
  top differentially expressed gene of the largest cell types, chosen on the real training
  cells), real cells beside generated cells.
* ``dropout_<dataset>.png``: per gene, fraction of zero values against mean expression,
  real vs each generator (:func:`lshgan.metrics.gene_statistics`).
* ``correlation_<dataset>.png``: gene-gene Pearson correlation of the marker genes (two
  per type), real cells vs each generator.

PNGs are written at low resolution (``DPI``) to stay small enough to commit.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..baselines._common import dense
from ..io import atomic_path
from ..metrics import gene_statistics, pooled_pca

DPI = 72
REAL, GENERATED = "#3b75af", "#ef8636"


def figure(n_rows: int, n_cols: int, *, size: float = 2.4) -> tuple[Figure, np.ndarray]:
    """A figure of ``n_rows x n_cols`` panels on the Agg canvas (no pyplot state)."""
    fig = Figure(figsize=(size * n_cols, size * n_rows + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(n_rows, n_cols, squeeze=False)


def panel_grid(names: list, n_cols: int, *, size: float = 2.4):
    """A grid with one panel per name (unused panels hidden): ``fig, [(ax, name), ...]``."""
    n_cols = min(n_cols, len(names))
    fig, axes = figure(int(np.ceil(len(names) / n_cols)), n_cols, size=size)
    for ax in axes.ravel()[len(names):]:
        ax.set_axis_off()
    return fig, axes, list(zip(axes.ravel(), names))


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a small PNG, atomically, replacing an older one."""
    with atomic_path(path, force=True) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return Path(path)


def marker_genes(train: ad.AnnData, label_key: str, per_type: int = 2) -> dict[str, list[str]]:
    """Top ``per_type`` genes by mean difference (type minus rest), largest types first."""
    X = dense(train.X)
    labels = train.obs[label_key].astype(str).to_numpy()
    types, counts = np.unique(labels, return_counts=True)
    out: dict[str, list[str]] = {}
    taken: set[int] = set()
    for t in types[np.argsort(-counts, kind="stable")]:
        diff = X[labels == t].mean(axis=0) - X[labels != t].mean(axis=0) if len(types) > 1 \
            else X.mean(axis=0)
        picks = [int(j) for j in np.argsort(-diff) if int(j) not in taken][:per_type]
        taken.update(picks)
        out[str(t)] = [str(train.var_names[j]) for j in picks]
    return out


def _embed(real: ad.AnnData, generated: ad.AnnData, seed: int) -> np.ndarray:
    import warnings

    import umap

    a, b = pooled_pca(real.X, generated.X, n_pcs=30, seed=seed)
    pcs = np.vstack([a, b])
    reducer = umap.UMAP(n_neighbors=max(2, min(15, len(pcs) - 1)), min_dist=0.3,
                        random_state=seed, n_epochs=200,
                        init="spectral" if len(pcs) > 10 else "random")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state": intended
        return reducer.fit_transform(pcs)


def embeddings(real: ad.AnnData, sets: dict[str, ad.AnnData], seed: int = 0) -> dict:
    """Pooled UMAP of the real cells with each generated set: name -> (n_real + n_gen) x 2."""
    return {name: _embed(real, gen, seed) for name, gen in sets.items()}


def _clean(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def plot_umaps(real: ad.AnnData, sets: dict, emb: dict, path: Path, title: str) -> Path:
    """One panel per generator: real (blue) and generated (orange) cells."""
    fig, _, panels = panel_grid(list(sets), 5)
    for ax, name in panels:
        e = emb[name]
        is_real = np.arange(len(e)) < real.n_obs
        order = np.random.default_rng(0).permutation(len(e))
        ax.scatter(e[order, 0], e[order, 1], s=4, linewidths=0, alpha=0.7,
                   c=np.where(is_real, REAL, GENERATED)[order])
        _clean(ax)
        ax.set_title(name, fontsize=9)
    fig.suptitle(f"{title}: real held-out cells (blue) vs generated (orange)", fontsize=10)
    return save(fig, path)


def plot_markers(real: ad.AnnData, sets: dict, emb: dict, genes: list[str], path: Path,
                 title: str) -> Path:
    """Rows: marker genes; columns: for each generator, real cells then generated cells."""
    names = list(sets)
    fig, axes = figure(len(genes), 2 * len(names), size=1.7)
    for i, gene in enumerate(genes):
        j = list(real.var_names).index(gene)
        for c, name in enumerate(names):
            e = emb[name]
            vals = [dense(real.X[:, j]).ravel(), dense(sets[name].X[:, j]).ravel()]
            hi = max(float(np.percentile(np.concatenate(vals), 99)), 1e-6)
            for s, (part, v) in enumerate(zip((slice(0, real.n_obs), slice(real.n_obs, None)),
                                              vals)):
                ax = axes[i, 2 * c + s]
                ax.scatter(e[:, 0], e[:, 1], s=2, c="#dddddd", linewidths=0)
                ax.scatter(e[part, 0], e[part, 1], s=3, c=v, cmap="viridis", vmin=0, vmax=hi,
                           linewidths=0)
                _clean(ax)
                if i == 0:
                    ax.set_title(f"{name}\n{'real' if s == 0 else 'generated'}", fontsize=7)
                if c == 0 and s == 0:
                    ax.set_ylabel(gene, fontsize=8)
    fig.suptitle(f"{title}: marker expression on the pooled UMAP (yellow = high)", fontsize=9)
    return save(fig, path)


def plot_dropout(real: ad.AnnData, sets: dict, path: Path, title: str) -> Path:
    """Dropout rate against mean expression per gene, real vs each generator."""
    fig, axes, panels = panel_grid(list(sets), 5)
    for ax, name in panels:
        st = gene_statistics(real, sets[name])
        ax.scatter(st["real_mean"], st["real_dropout"], s=3, c=REAL, linewidths=0, alpha=0.6)
        ax.scatter(st["generated_mean"], st["generated_dropout"], s=3, c=GENERATED,
                   linewidths=0, alpha=0.6)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"{name} (r = {st['dropout_corr']:.2f})", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("mean log2(1+x)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("fraction of zeros", fontsize=8)
    fig.suptitle(f"{title}: dropout vs mean expression, real (blue) vs generated (orange)",
                 fontsize=10)
    return save(fig, path)


def plot_correlations(real: ad.AnnData, sets: dict, genes: list[str], path: Path,
                      title: str) -> Path:
    """Gene-gene correlation of ``genes``: real cells, then each generator."""
    cols = [list(real.var_names).index(g) for g in genes]
    cells_of = {"real (held-out)": real, **sets}
    fig, axes, panels = panel_grid(list(cells_of), 6, size=2.2)
    im = None
    for ax, name in panels:
        X = dense(cells_of[name].X[:, cols])
        with np.errstate(invalid="ignore", divide="ignore"):
            C = np.nan_to_num(np.corrcoef(X, rowvar=False), nan=0.0)
        im = ax.imshow(C, vmin=-1, vmax=1, cmap="RdBu_r", interpolation="nearest")
        _clean(ax)
        ax.set_title(name, fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=[ax for ax, _ in panels], shrink=0.6, label="Pearson r")
    fig.suptitle(f"{title}: correlation of {len(genes)} marker genes (2 per type)", fontsize=10)
    return save(fig, path)


def draw_pictures(data, sets: dict[str, ad.AnnData], out: Path, *, n_markers: int = 3,
                  seed: int = 0) -> list[Path]:
    """All four pictures of one dataset; ``sets``: generator -> cells like the test split."""
    markers = marker_genes(data.train, data.label_key, per_type=2)
    top = [genes[0] for genes in markers.values()][:n_markers]
    corr_genes = [g for genes in markers.values() for g in genes]
    emb = embeddings(data.test, sets, seed=seed)
    name = data.name
    marker_sets = {k: v for k, v in sets.items()
                   if k in ("lshgan", "lshgan-paper", "cscgan", "scvi", "splatter", "sugar")}
    paths = [plot_umaps(data.test, sets, emb, out / f"umap_{name}.png", name),
             plot_markers(data.test, marker_sets or sets, emb, top, out / f"markers_{name}.png",
                          name),
             plot_dropout(data.test, sets, out / f"dropout_{name}.png", name),
             plot_correlations(data.test, sets, corr_genes, out / f"correlation_{name}.png",
                               name)]
    return paths


def _lines_with_range(ax, rows: list[dict], by: str, x: str, y: str) -> None:
    """One line per ``by`` group: mean of ``y`` against ``x``, shaded min-max over seeds."""
    import pandas as pd

    for name, g in pd.DataFrame(rows).groupby(by, sort=False):
        s = g.groupby(x)[y].agg(["mean", "min", "max"])
        style = dict(ls="--", color="grey") if "copy" in str(name) else {}
        line, = ax.plot(s.index, s["mean"], marker="o", ms=3, label=name, **style)
        ax.fill_between(s.index, s["min"], s["max"], alpha=0.15, color=line.get_color())
    ax.legend(fontsize=7, frameon=False)


def _range_figure(rows: list[dict], path: Path, *, by: str, x: str, y: str, xlabel: str,
                  ylabel: str, title: str, log_x: bool = False) -> Path:
    fig, axes = figure(1, 1, size=4.2)
    ax = axes[0, 0]
    _lines_with_range(ax, rows, by, x, y)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    return save(fig, path)


def plot_table1(rows: list[dict], path: Path) -> Path:
    """Wasserstein distance against epochs, mean and range over seeds, one line per model."""
    return _range_figure(rows, path, by="model", x="epoch", y="wasserstein",
                         xlabel="epochs (full-batch updates)", ylabel="W1(test, generated)",
                         title="Table 1: simulated two-class data")


def plot_figure2(samples: dict, path: Path) -> Path:
    """Rows LSH-GAN and GAN, columns epochs: real (blue) and generated (orange) points."""
    models = ["LSH-GAN", "GAN"]
    epochs = sorted(samples["LSH-GAN"])
    fig, axes = figure(2, len(epochs), size=2.3)
    real = samples["real"]
    for i, model in enumerate(models):
        for j, epoch in enumerate(epochs):
            ax = axes[i, j]
            Y = samples[model][epoch]
            ax.scatter(real[:, 0], real[:, 1], s=2, c=REAL, linewidths=0)
            ax.scatter(Y[:, 0], Y[:, 1], s=2, c=GENERATED, linewidths=0)
            ax.set_xlim(-60, 60)
            ax.set_ylim(-300, 2700)
            ax.tick_params(labelsize=6)
            ax.set_title(f"{model}, epoch {epoch}", fontsize=8)
    fig.suptitle("Figure 2: y = 10 + x\u00b2, real (blue) vs generated (orange)", fontsize=9)
    return save(fig, path)


def plot_sweep(rows: list[dict], path: Path) -> Path:
    """ARI against the number of generated cells (x p), per dataset and method."""
    import pandas as pd

    df = pd.DataFrame([r for r in rows
                       if r["kind"] == "sweep" or r["generator"] == "without model"])
    datasets = list(dict.fromkeys(df["dataset"]))
    fig, axes = figure(1, len(datasets), size=2.8)
    for ax, ds in zip(axes[0], datasets):
        d = df[df["dataset"] == ds]
        for (method, gen), g in d[d["kind"] == "sweep"].groupby(["method", "generator"]):
            s = g.groupby("ratio")["ari"].mean()
            line, = ax.plot(s.index, s.values, marker="o", ms=3, label=f"{gen}, {method}")
            base = d[(d["generator"] == "without model") & (d["method"] == method)]["ari"].mean()
            ax.axhline(base, ls="--", lw=0.8, color=line.get_color())
        ax.set_title(ds, fontsize=9)
        ax.set_xlabel("generated cells / genes", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("ARI (dashed: without model)", fontsize=8)
    axes[0, -1].legend(fontsize=6, frameon=False)
    return save(fig, path)


def plot_activa(rows: list[dict], path: Path) -> Path:
    """Rare type F1 against the kept fraction, per generator (mean and range over seeds)."""
    return _range_figure(rows, path, by="generator", x="fraction", y="f1", log_x=True,
                         xlabel="fraction of the rare type's training cells kept",
                         ylabel="F1 of the rare type (test)", title="ACTIVA rare-population test")
