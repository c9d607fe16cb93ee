"""Figures for reports: UMAP of real vs generated cells, training losses, per-gene and
per-cell statistics, diversity metrics per generator, count statistics (count data).

Every function draws on its own :class:`matplotlib.figure.Figure` with the Agg canvas (no
pyplot, no global backend switch, safe in scripts and servers), writes a 150-dpi PNG
atomically through :func:`lshgan.io.atomic_path` (an existing file is replaced only with
``force=True``) and returns the path.

Examples
--------
>>> from lshgan.plotting import plot_umap
>>> plot_umap(test, fake, "reports/umap.png", title="LSH-GAN on Pollen")   # doctest: +SKIP
PosixPath('reports/umap.png')
"""

from __future__ import annotations

import os
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .errors import ParameterError
from .io import atomic_path, check_writable
from .metrics import REAL_VS_REAL, align_genes, gene_statistics, pooled_pca
from .metrics.space import subsample_rows

DPI = 150
REAL_COLOUR, GENERATED_COLOUR = "#3b75af", "#ef8636"


def _new_figure(n_panels: int, *, width: float = 5.0, height: float = 4.5):
    fig = Figure(figsize=(width * n_panels, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, n_panels, squeeze=False)[0]


def _save(fig: Figure, path, force: bool) -> Path:
    with atomic_path(path, force=force) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return Path(path)


def _labels(adata: ad.AnnData, label_key: str) -> np.ndarray:
    if label_key in adata.obs.columns:
        return adata.obs[label_key].astype(str).to_numpy()
    return np.full(adata.n_obs, "unlabelled", dtype=object)


def plot_umap(
    real: ad.AnnData,
    generated: ad.AnnData,
    path: str | os.PathLike,
    *,
    label_key: str = "cell_type",
    title: str = "Real and generated cells (UMAP)",
    n_pcs: int = 50,
    seed: int = 0,
    max_cells: int = 5000,
    force: bool = False,
) -> Path:
    """UMAP of real (held-out) and generated cells together, in two panels.

    Left: coloured by origin (real vs generated): well-mixed colours mean the generator
    covers the same states as the real cells.  Right: coloured by cell type, real cells as
    dots and generated cells as crosses: each type's generated cells should land on its real
    ones.  The embedding is computed on the pooled cells (PCA with ``n_pcs`` components, then
    :class:`umap.UMAP` with ``random_state=seed``, so the layout is reproducible).

    Parameters
    ----------
    real, generated
        Cells on the ``log2(1+x)`` scale with the same genes.
    path, title, force
        Output PNG; figure title; overwrite an existing ``path``.
    label_key
        ``obs`` column with the cell type (cells without it are shown as "unlabelled").
    n_pcs, seed
        PCA size and seed of PCA, UMAP and the subsample.
    max_cells
        At most this many cells of each side are drawn (a seeded subsample of a larger
        side: UMAP of 40,000 cells costs minutes and draws an unreadable cloud).

    Returns
    -------
    The path written.

    Examples
    --------
    >>> plot_umap(test, model.generate(test.n_obs), "umap.png", force=True)   # doctest: +SKIP
    PosixPath('umap.png')
    """
    check_writable(path, force=force)  # fail before the (slow, JIT-compiled) embedding
    import umap

    generated = align_genes(generated, real.var_names, "generated")
    real, generated = subsample_rows(real, max_cells, seed), subsample_rows(generated, max_cells, seed + 1)
    pcs = np.vstack(pooled_pca(real.X, generated.X, n_pcs=n_pcs, seed=seed))
    n = pcs.shape[0]
    reducer = umap.UMAP(n_neighbors=max(2, min(15, n - 1)), min_dist=0.3, random_state=seed,
                        n_jobs=1, init="spectral" if n > 10 else "random")
    emb = reducer.fit_transform(pcs)
    is_real = np.arange(n) < real.n_obs
    types = np.concatenate([_labels(real, label_key), _labels(generated, label_key)])

    fig, (ax_src, ax_type) = _new_figure(2)
    order = np.random.default_rng(seed).permutation(n)  # neither side is drawn on top
    colours = np.where(is_real, REAL_COLOUR, GENERATED_COLOUR)[order]
    ax_src.scatter(emb[order, 0], emb[order, 1], c=colours, s=12, alpha=0.75, linewidths=0)
    for name, colour, count in (("Real (held-out)", REAL_COLOUR, int(is_real.sum())),
                                ("Generated", GENERATED_COLOUR, int((~is_real).sum()))):
        ax_src.scatter([], [], c=colour, s=20, label=f"{name}, n={count}")
    ax_src.legend(loc="best", fontsize=8, frameon=False)
    ax_src.set_title("Coloured by origin")

    palette = _palette(len(np.unique(types)))
    for colour, t in zip(palette, np.unique(types)):
        m = types == t
        ax_type.scatter(emb[m & is_real, 0], emb[m & is_real, 1], color=colour, s=14,
                        alpha=0.8, linewidths=0, label=t)
        ax_type.scatter(emb[m & ~is_real, 0], emb[m & ~is_real, 1], color=colour, s=18,
                        alpha=0.8, marker="x", linewidths=0.9)
    ax_type.scatter([], [], c="grey", s=14, label="dot = real")
    ax_type.scatter([], [], c="grey", s=18, marker="x", label="cross = generated")
    ax_type.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False,
                   title="Cell type")
    ax_type.set_title("Coloured by cell type")
    for ax in (ax_src, ax_type):
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    return _save(fig, path, force)


def _palette(k: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if k <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(k)]


def plot_losses(history, path: str | os.PathLike, *, title: str = "Training losses",
                force: bool = False) -> Path:
    """Discriminator and generator loss per epoch.

    Parameters
    ----------
    history
        An object with lists ``epoch``, ``d_loss``, ``g_loss`` (e.g.
        :class:`lshgan.module.training.History`) or a dict with those keys.
    path, title, force
        Output PNG; figure title; overwrite an existing ``path``.

    Returns
    -------
    The path written.

    Examples
    --------
    >>> plot_losses({"epoch": [1, 2, 3], "d_loss": [1.4, 1.2, 1.3],
    ...              "g_loss": [0.7, 0.9, 0.8]}, "losses.png")        # doctest: +SKIP
    PosixPath('losses.png')
    """
    get = history.get if isinstance(history, dict) else lambda k: getattr(history, k)
    epoch, d_loss, g_loss = (np.asarray(get(k), dtype=float) for k in ("epoch", "d_loss", "g_loss"))
    fig, (ax,) = _new_figure(1, width=6.0, height=4.0)
    marker = "o" if len(epoch) <= 30 else None
    ax.plot(epoch, d_loss, marker=marker, ms=3, label="Discriminator (critic)")
    ax.plot(epoch, g_loss, marker=marker, ms=3, label="Generator")
    if min(d_loss.min(initial=0), g_loss.min(initial=0)) < 0:  # e.g. Wasserstein losses
        ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Loss (mean over the epoch)")
    ax.legend(frameon=False)
    ax.set_title(title)
    return _save(fig, path, force)


def plot_gene_statistics(
    real: ad.AnnData,
    generated: ad.AnnData,
    path: str | os.PathLike,
    *,
    title: str = "Per-gene statistics: real vs generated cells",
    force: bool = False,
) -> Path:
    """Per-gene mean, variance and dropout of generated cells against real cells.

    Three panels, one dot per gene: generated vs real mean expression; generated vs real
    variance (the dashed diagonal is perfect agreement, Pearson r in the corner); and the
    fraction of cells in which a gene is not detected (dropout) against its mean expression,
    real and generated overlaid -- real scRNA-seq shows the typical falling curve, which a
    generator should reproduce.  See :func:`lshgan.metrics.gene_statistics`.

    Parameters
    ----------
    real, generated
        Cells on the ``log2(1+x)`` scale with the same genes.
    path, title, force
        Output PNG; figure title; overwrite an existing ``path``.

    Returns
    -------
    The path written.

    Examples
    --------
    >>> plot_gene_statistics(test, fake, "genes.png")    # doctest: +SKIP
    PosixPath('genes.png')
    """
    st = gene_statistics(real, generated)
    fig, axes = _new_figure(3, width=4.6, height=4.3)
    panels = ((axes[0], "mean", "mean expression", "mean of log2(1 + x)"),
              (axes[1], "var", "variance", "variance of log2(1 + x)"))
    for ax, key, what, unit in panels:
        x, y = st[f"real_{key}"], st[f"generated_{key}"]
        ax.scatter(x, y, s=6, alpha=0.5, color=GENERATED_COLOUR, linewidths=0)
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        ax.plot([lo, hi], [lo, hi], ls="--", color="grey", lw=1)
        ax.text(0.04, 0.95, f"Pearson r = {st[f'{key}_corr']:.3f}", transform=ax.transAxes,
                va="top", fontsize=9)
        ax.set_xlabel(f"Real cells: {unit}")
        ax.set_ylabel(f"Generated cells: {unit}")
        ax.set_title(f"Per-gene {what}")
    ax = axes[2]
    ax.scatter(st["real_mean"], st["real_dropout"], s=6, alpha=0.5, color=REAL_COLOUR,
               linewidths=0, label="Real (held-out)")
    ax.scatter(st["generated_mean"], st["generated_dropout"], s=6, alpha=0.5,
               color=GENERATED_COLOUR, linewidths=0, label="Generated")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("Mean expression, log2(1 + normalised)")
    ax.set_ylabel("Dropout: fraction of cells with zero expression")
    ax.set_title(f"Dropout vs expression (r = {st['dropout_corr']:.3f})")
    ax.legend(frameon=False, markerscale=2)
    fig.suptitle(title)
    return _save(fig, path, force)


def _ecdf(ax, st: dict, refs: dict, key: str, ks: str, what: str) -> None:
    """ECDF panel of the per-cell values ``<who>_<key>`` of a statistics dict ``st`` (real,
    generated) and of each reference's (dashed), KS statistics ``ks`` in the legend."""
    curves = [("Real (held-out)", st[f"real_{key}"], REAL_COLOUR, "-"),
              (f"Generated (KS {st[ks]:.2f})", st[f"generated_{key}"], GENERATED_COLOUR, "-")]
    curves += [(f"{name} (KS {refs[name][ks]:.2f})", refs[name][f"generated_{key}"], colour, "--")
               for name, colour in zip(refs, _palette(len(refs) + 2)[2:])]
    for label, values, colour, ls in curves:
        v = np.sort(np.asarray(values, np.float64))
        ax.step(v, np.arange(1, v.size + 1) / max(v.size, 1), where="post", color=colour,
                ls=ls, lw=1.3, label=label)
    ax.set_xlabel(what)
    ax.set_ylabel("Fraction of cells (ECDF)")
    ax.set_title(what.split(" (")[0])
    ax.legend(frameon=False, fontsize=7, loc="lower right")


def plot_cell_statistics(
    real: ad.AnnData,
    generated: ad.AnnData,
    path: str | os.PathLike,
    *,
    references: dict[str, ad.AnnData] | None = None,
    title: str = "Per-cell summaries: real (held-out) vs generated cells",
    seed: int = 0,
    force: bool = False,
) -> Path:
    """The per-cell summaries of :func:`lshgan.metrics.cell_statistics` (detected genes,
    total, mean and spread of the detected levels): four ECDF panels, real, generated and
    each of ``references`` (e.g. ``copy``), the Kolmogorov-Smirnov statistics in the
    legends and the forest's AUC on the four summaries in the title (``seed``: its
    subsample and forest, as in the evaluation's ``cells_auc``).

    Returns
    -------
    The path written.

    Examples
    --------
    >>> plot_cell_statistics(test, fake, "cells.png", references={"copy": copies})   # doctest: +SKIP
    PosixPath('cells.png')
    """
    from .metrics.cells import CELL_SUMMARIES, cell_statistics

    check_writable(path, force=force)
    st = cell_statistics(real, generated, seed=seed)
    refs = {name: cell_statistics(real, cells, seed=seed) for name, cells in (references or {}).items()}
    what = {"detected": "Detected genes (fraction of genes)", "total": "Total (sum of log2(1 + x))",
            "level_mean": "Mean detected level (log2(1 + x))",
            "level_sd": "Spread of detected levels (sd)"}
    fig, axes = _new_figure(len(CELL_SUMMARIES), width=4.2, height=4.0)
    for ax, key in zip(axes, CELL_SUMMARIES):
        _ecdf(ax, st, refs, key, f"cells_ks_{key}", what[key])
    aucs = ", ".join([f"generated {st['cells_auc']:.2f}",
                      *(f"{name} {refs[name]['cells_auc']:.2f}" for name in refs)])
    fig.suptitle(f"{title}\nforest on the four summaries, AUC (0.5 = indistinguishable): {aucs}")
    return _save(fig, path, force)


#: Metrics drawn by :func:`plot_diversity` (columns of :func:`lshgan.metrics.evaluate_generators`).
DIVERSITY_METRICS = ("precision", "recall", "density", "coverage", "substate_coverage",
                     "substate_mass", "marker_top50_overlap", "marker_lfc_corr")


def plot_diversity(
    table,
    path: str | os.PathLike,
    *,
    metrics: tuple[str, ...] = DIVERSITY_METRICS,
    title: str = "Diversity and cell-type identity per generator",
    force: bool = False,
) -> Path:
    """Bar chart of the diversity metrics of every generator, side by side.

    One group of bars per metric (precision / recall / density / coverage of
    :func:`lshgan.metrics.prdc`, sub-state coverage and mass of
    :func:`lshgan.metrics.substate_coverage`, marker overlap and LFC correlation of
    :func:`lshgan.metrics.marker_preservation`), one bar per generator; the
    ``real-vs-real`` control is hatched: it is what a perfect generator scores at these
    sample sizes.  Each bar carries its value; the dashed line marks 1 (density can exceed
    it: generated cells crowding the dense regions).  Missing values (``nan``, e.g. markers
    without labels) leave a gap.

    Parameters
    ----------
    table
        :func:`lshgan.metrics.evaluate_generators`' DataFrame, or a dict name -> metrics
        dict (e.g. the ``lshgan`` and ``references`` entries of ``metrics.json`` merged).
    path, title, force
        Output PNG; figure title; overwrite an existing ``path``.
    metrics
        Which columns to draw, in order (those absent from ``table`` are skipped).

    Returns
    -------
    The path written.

    Examples
    --------
    >>> table = evaluate_generators({"lshgan": fake}, train=train, test=test,
    ...                             label_key="cell_type")                  # doctest: +SKIP
    >>> plot_diversity(table, "reports/diversity.png")                      # doctest: +SKIP
    PosixPath('reports/diversity.png')
    """
    check_writable(path, force=force)
    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame.from_dict(
        table, orient="index")
    metrics = [m for m in metrics if m in frame.columns]
    if not metrics or frame.empty:
        raise ParameterError(f"nothing to draw: no generator has any of {', '.join(metrics)}")
    values = frame[metrics].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    names = [str(n) for n in frame.index]
    fig, (ax,) = _new_figure(1, width=max(7.0, len(metrics) * (0.6 + 0.2 * len(names))),
                             height=4.5)
    width = 0.8 / len(names)
    x = np.arange(len(metrics))
    for i, (name, colour) in enumerate(zip(names, _palette(len(names)))):
        bars = ax.bar(x + (i - (len(names) - 1) / 2) * width, values[i], width, color=colour,
                      label=name, hatch="//" if name == REAL_VS_REAL else None,
                      edgecolor="white", linewidth=0.5)
        ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.2f}" for v in values[i]],
                     fontsize=6, rotation=90, padding=2)  # a 0 is read, not missed
    ax.axhline(1.0, ls="--", color="grey", lw=1)
    top = np.nanmax(values) if np.isfinite(values).any() else 1.0
    bottom = min(0.0, np.nanmin(values)) if np.isfinite(values).any() else 0.0
    ax.set_ylim(bottom * 1.1, max(1.15, top * 1.15))  # room for the value labels
    ax.set_xticks(x, [m.replace("_", "\n", 1) for m in metrics], fontsize=8)
    ax.set_ylabel("Score (compare with real-vs-real)")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False,
              title="Generator")
    ax.set_title(title)
    return _save(fig, path, force)


def plot_count_statistics(
    real: ad.AnnData,
    generated: ad.AnnData,
    path: str | os.PathLike,
    *,
    references: dict[str, ad.AnnData] | None = None,
    title: str = "Counts: real (held-out) vs generated cells",
    force: bool = False,
) -> Path:
    """Count-level statistics of generated cells against real cells (both with
    ``.layers['counts']``; see :mod:`lshgan.metrics.counts`).

    Five panels: the distributions (ECDF) of library size and of detected genes per cell,
    real, generated and each of ``references`` (e.g. ``copy``: training cells' counts),
    with the Kolmogorov-Smirnov statistics in the legend; per-gene variance against mean
    (log-log, the Poisson line dashed); per-gene zero fraction against mean (the Poisson
    curve ``exp(-mean)`` dashed); and the gene-gene correlations of the 200 most expressed
    genes, generated against real (one dot per gene pair; Pearson r in the title).

    Returns
    -------
    The path written.

    Examples
    --------
    >>> plot_count_statistics(test, fake, "counts.png",
    ...                       references=reference_counts(train, test))   # doctest: +SKIP
    PosixPath('counts.png')
    """
    from .metrics.counts import count_statistics

    check_writable(path, force=force)
    st = count_statistics(real, generated)
    refs = {name: count_statistics(real, cells) for name, cells in (references or {}).items()}
    fig, axes = _new_figure(5, width=4.2, height=4.0)
    for ax, key, what, ks in ((axes[0], "library", "Library size (total counts)", "counts_library_ks"),
                              (axes[1], "genes", "Detected genes (non-zero counts)", "counts_genes_ks")):
        _ecdf(ax, st, refs, key, ks, what)
        if key == "library":
            ax.set_xscale("log")
    ax = axes[2]
    for who, colour in (("real", REAL_COLOUR), ("generated", GENERATED_COLOUR)):
        m, v = st[f"{who}_mean"], st[f"{who}_var"]
        ok = (m > 0) & (v > 0)
        ax.scatter(m[ok], v[ok], s=5, alpha=0.5, color=colour, linewidths=0,
                   label=f"{'Real' if who == 'real' else 'Generated'} (slope "
                         f"{st['counts_mv_slope_test' if who == 'real' else 'counts_mv_slope']:.2f})")
    pos = st["real_mean"][st["real_mean"] > 0]
    if pos.size:
        grid = np.geomspace(pos.min(), pos.max(), 50)
        ax.plot(grid, grid, ls="--", color="grey", lw=1, label="Poisson")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Per-gene mean count")
    ax.set_ylabel("Per-gene variance")
    ax.set_title(f"Mean-variance (log var r = {st['counts_log_var_corr']:.3f})")
    ax.legend(frameon=False, fontsize=7, markerscale=2)
    ax = axes[3]
    for who, colour in (("real", REAL_COLOUR), ("generated", GENERATED_COLOUR)):
        m = st[f"{who}_mean"]
        ok = m > 0
        ax.scatter(m[ok], st[f"{who}_zero"][ok], s=5, alpha=0.5, color=colour, linewidths=0,
                   label="Real" if who == "real" else "Generated")
    if pos.size:
        ax.plot(grid, np.exp(-grid), ls="--", color="grey", lw=1, label="Poisson")
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("Per-gene mean count")
    ax.set_ylabel("Fraction of cells with zero counts")
    ax.set_title(f"Zeros vs mean (r = {st['counts_zero_frac_corr']:.3f})")
    ax.legend(frameon=False, fontsize=7, markerscale=2)
    ax = axes[4]
    cr, cg = st["real_gene_corr"], st["generated_gene_corr"]
    ok = np.isfinite(cr) & np.isfinite(cg)
    if ok.sum() > 20000:  # a readable, reproducible subset of the pairs
        keep = np.random.default_rng(0).choice(np.flatnonzero(ok), 20000, replace=False)
        ok = np.zeros_like(ok)
        ok[keep] = True
    ax.scatter(cr[ok], cg[ok], s=2, alpha=0.3, color=GENERATED_COLOUR, linewidths=0)
    ax.plot([-1, 1], [-1, 1], ls="--", color="grey", lw=1)
    ax.set_xlabel("Real: gene-gene correlation")
    ax.set_ylabel("Generated: gene-gene correlation")
    ax.set_title(f"Gene-gene correlations (r = {st['counts_gene_corr']:.3f})")
    fig.suptitle(title)
    return _save(fig, path, force)
