"""Preprocessing as in the LSH-GAN paper, with thresholds that follow the kind of data.

Steps (Lall et al. 2022, "Methods: preprocessing"):

1. keep cells with more than ``min_genes`` expressed (non-zero) genes (paper: 1000);
2. keep genes whose value is above ``min_count`` (paper: 5) in at least ``min_cells_frac``
   of the cells (paper: 10%); cells left with no value in the kept genes are dropped too;
3. library-size normalisation.  The paper used R's Linnorm, which is not available in
   Python; we use :func:`scanpy.pp.normalize_total` (each cell scaled to ``target_sum``,
   default the median library size of the kept cells).  This is a documented deviation;
4. ``log2(1 + x)``;
5. optionally, the ``n_top_genes`` most variable genes (:func:`scanpy.pp.highly_variable_genes`,
   ``flavor="seurat"`` on the log data, so it also works on non-count data such as Yan's RPKM).

The kind of data is detected first (:func:`lshgan.datakind.detect_data_kind`: UMI counts,
full-length read counts, continuous RPKM/TPM, or values already log-normalised) and every
threshold left at ``None`` comes from it (:meth:`lshgan.datakind.DataKind.defaults`);
log-normalised values skip steps 3 and 4.  Every run makes a :class:`FilterReport` (cells
and genes in, removed by each filter, kept), stored in ``.uns['lshgan_preprocess']`` and
logged (``lshgan.preprocess`` logger, INFO; the command line prints it); a filter that
removes more than half of the cells or genes warns (:class:`~lshgan.errors.DataWarning`),
and too few cells or genes left to train on is an :class:`~lshgan.errors.InputDataError`.

The fitted :class:`Preprocessor` keeps the gene names and the ``target_sum`` so that
generated cells (which live on the ``log2(1+x)`` scale) can be mapped back to the
normalised linear scale with :func:`normalized_values` (:meth:`Preprocessor.inverse_transform`).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass, field, fields, replace

import anndata as ad
import numpy as np
import scipy.sparse as sp

from .datakind import (PAPER_MIN_CELLS_FRAC, PAPER_MIN_COUNT, PAPER_MIN_GENES, DataKind, check_kind,
                       detect_data_kind)
from .errors import DataWarning, InputDataError, ParameterError, check_positive_float

log = logging.getLogger(__name__)

#: Fewest cells left after filtering: the 80/20 split leaves 16 to train on (LSH sampling
#: needs more than k=5) and 4 to evaluate with; fewer cannot be learnt from or judged.
MIN_CELLS_TO_TRAIN = 20
#: Fewest genes left after filtering: the latent space has at least 8 dimensions (one PCA
#: component per gene at most); below 10 genes no expression structure is left to learn.
MIN_GENES_TO_TRAIN = 10
#: The thresholds that ``None`` (or ``"auto"``) derives from the kind of data.
AUTO_THRESHOLDS = ("min_genes", "min_count", "min_cells_frac")
#: Kinds of data whose values are counts: :func:`preprocess` keeps them (``.layers['counts']``,
#: ``.obs['n_counts']``, ``.obs['n_genes']``) and a model trained on them also generates counts.
COUNT_KINDS = ("umi_counts", "read_counts")


@dataclass
class PreprocessConfig:
    """Settings of :func:`preprocess`; ``None`` (or ``"auto"``) means "from the kind of data".

    ``min_genes``, ``min_count`` and ``min_cells_frac`` left at ``None`` come from the kind
    of data (:meth:`lshgan.datakind.DataKind.defaults`: the paper's gene filter for
    full-length read counts, "expressed = non-zero" and depth-aware filters for UMI data,
    no count threshold for continuous or log-normalised values); given values override.
    ``data_kind``: one of :data:`lshgan.datakind.KINDS` to override the detection.
    ``layer``: read the values from ``adata.layers[layer]`` instead of ``.X``.
    ``transpose``, ``obs``: how a file is read when a path is preprocessed
    (:func:`lshgan.read_dataset`: a genes x cells text or ``.mtx`` file; a table of cell
    annotations, e.g. the cell types of a matrix file).
    ``log_base``: the base of already log-normalised input (``None``: e, what scanpy's and
    Seurat's ``log1p`` use); such values are rescaled to ``log2(1+x)``, the scale every
    other kind ends on, so inverse transforms and the ``normalized`` layer stay right.
    :meth:`paper` gives the paper's exact thresholds.
    """

    min_genes: int | None = None
    min_count: float | None = None
    min_cells_frac: float | None = None
    target_sum: float | None = None
    n_top_genes: int | None = None
    data_kind: str | None = None
    layer: str | None = None
    log_base: float | None = None
    transpose: bool = False
    obs: str | None = None

    def __post_init__(self) -> None:
        if self.log_base is not None and (float(self.log_base) <= 1 or not np.isfinite(float(self.log_base))):
            raise ParameterError(f"log_base must be a number above 1 (e.g. 2, 10; default e), got {self.log_base}")
        for name in AUTO_THRESHOLDS:
            if isinstance(getattr(self, name), str) and getattr(self, name).lower() == "auto":
                setattr(self, name, None)
        self.data_kind = check_kind(self.data_kind)
        if self.min_genes is not None and int(self.min_genes) < 0:
            raise ParameterError(f"min_genes must be >= 0, got {self.min_genes}")
        if self.min_count is not None:
            check_positive_float("min_count", self.min_count, allow_zero=True)
        if self.min_cells_frac is not None and not 0 <= float(self.min_cells_frac) <= 1:
            raise ParameterError(f"min_cells_frac must be in [0, 1], got {self.min_cells_frac}")
        if self.target_sum is not None:
            check_positive_float("target_sum", self.target_sum)
        if self.n_top_genes is not None and int(self.n_top_genes) < 2:
            raise ParameterError(f"n_top_genes must be >= 2 or None, got {self.n_top_genes}")

    @classmethod
    def paper(cls, **overrides) -> "PreprocessConfig":
        """The paper's thresholds: min_genes 1000, min_count 5, min_cells_frac 0.1."""
        return cls(**{"min_genes": PAPER_MIN_GENES, "min_count": PAPER_MIN_COUNT,
                      "min_cells_frac": PAPER_MIN_CELLS_FRAC, **overrides})

    def resolve(self, kind: DataKind, n_cells: int) -> tuple["PreprocessConfig", tuple[str, ...]]:
        """(this config with every automatic threshold set from ``kind``, their names)."""
        defaults = kind.defaults(n_cells)
        auto = tuple(name for name in AUTO_THRESHOLDS if getattr(self, name) is None)
        resolved = replace(self, data_kind=kind.kind,
                           **{name: defaults[name] for name in auto})
        resolved.min_genes, resolved.min_count = int(resolved.min_genes), float(resolved.min_count)
        resolved.min_cells_frac = float(resolved.min_cells_frac)
        return resolved, auto


@dataclass
class FilterReport:
    """Cells and genes in, removed by each filter, and kept, of one :func:`preprocess` run."""

    name: str
    data_kind: str
    data_kind_source: str
    min_genes: int
    min_count: float
    min_cells_frac: float
    auto_thresholds: str
    n_cells_in: int
    n_genes_in: int
    cells_removed_min_genes: int
    cells_removed_empty: int
    genes_removed_min_cells: int
    genes_removed_n_top_genes: int
    n_cells_out: int
    n_genes_out: int

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One line: cells and genes in, removed by each filter, kept."""
        empty = (f", {self.cells_removed_empty} left without any kept gene"
                 if self.cells_removed_empty else "")
        hvg = (f", {self.genes_removed_n_top_genes} not among the n_top_genes most variable"
               if self.genes_removed_n_top_genes else "")
        return (f"{self.name}: cells {self.n_cells_in} in, {self.cells_removed_min_genes} removed "
                f"by min_genes={self.min_genes}{empty}, {self.n_cells_out} kept; genes "
                f"{self.n_genes_in} in, {self.genes_removed_min_cells} removed by "
                f"min_count={self.min_count:g} in min_cells_frac={self.min_cells_frac:.3g}{hvg}, "
                f"{self.n_genes_out} kept")


@dataclass
class Preprocessor:
    """What was fitted: the config (thresholds resolved), the kept genes, the normalisation
    target (NaN when the input was already log-normalised) and the :class:`FilterReport`
    as a dict."""

    config: PreprocessConfig = field(default_factory=PreprocessConfig)
    var_names: list[str] = field(default_factory=list)
    target_sum: float = 1e4
    report: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"config": asdict(self.config), "var_names": list(self.var_names),
                "target_sum": float(self.target_sum), "report": dict(self.report)}

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessor":
        known = {f.name for f in fields(PreprocessConfig)}
        config = PreprocessConfig(**{k: v for k, v in d["config"].items() if k in known})
        return cls(config, list(d["var_names"]), float(d["target_sum"]), dict(d.get("report", {})))

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        """Map ``log2(1+x)`` values back to the library-size-normalised linear scale
        (:func:`normalized_values`).

        Input that was already log-normalised was rescaled to ``log2(1+x)`` from its
        ``log_base`` (default e), so this gives its normalised values back when that base
        was right.
        """
        return normalized_values(X)


def normalized_values(X) -> np.ndarray:
    """``log2(1+x)`` values (dense or CSR) back on the library-size-normalised linear scale:
    ``2^x - 1`` as a dense float64 array.

    The inverse of the log transform of :func:`preprocess` (what its
    ``.layers['normalized']`` holds), and the one place that inverts it: generated cells'
    ``normalized`` layer, the baselines' and the metrics' linear scale.  Negative values
    (a generator's) stay below 0; callers that need non-negative values clip.

    Examples
    --------
    >>> normalized_values(np.array([[0.0, 1.0, 3.0]]))
    array([[0., 1., 7.]])
    """
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    return np.exp2(X.astype(np.float64, copy=False)) - 1.0


def variable_genes(X, n_top_genes: int) -> np.ndarray:
    """Boolean mask of the ``n_top_genes`` most variable genes of ``log2(1+x)`` values
    ``X`` (dense or CSR): :func:`scanpy.pp.highly_variable_genes`, ``flavor="seurat"``
    (dispersion normalised within mean bins), which works on non-count data too."""
    import scanpy as sc

    # scanpy's "seurat" flavour expects natural-log data; rescale a copy for ranking only
    tmp = ad.AnnData(X=X * np.float32(np.log(2.0)))  # works for dense and CSR
    sc.pp.highly_variable_genes(tmp, n_top_genes=int(n_top_genes), flavor="seurat")
    return tmp.var["highly_variable"].to_numpy(dtype=bool)


def preprocess(
    adata: ad.AnnData,
    config: PreprocessConfig | None = None,
    *,
    name: str = "data",
) -> tuple[ad.AnnData, Preprocessor]:
    """Filter, normalise and log-transform ``adata``; return a new AnnData and the fit.

    The input is not modified.  The kind of data is detected (or taken from
    ``config.data_kind``) and logged, thresholds left at ``None`` follow it (see
    :class:`PreprocessConfig`).  The result has ``.X`` = ``log2(1 + normalised)`` as float32
    (CSR when under 30% of the values are non-zero, dense otherwise),
    ``.layers['normalized']`` the linear normalised values, the kept genes in
    ``.var_names``, ``.obs`` of the kept cells, and in ``.uns['lshgan_preprocess']`` the
    resolved thresholds, the data kind and its evidence, and the :class:`FilterReport`
    (``n_cells_in``, ``cells_removed_min_genes``, ..., ``n_genes_out``).  Log-normalised
    input keeps its values (no ``normalized`` layer).  Counts (the kinds of
    :data:`COUNT_KINDS`) also keep ``.layers['counts']`` (the raw counts of the kept genes,
    same storage as ``.X``) and ``.obs['n_counts']`` / ``.obs['n_genes']``: each cell's raw
    library size (the total that normalisation divides by) and detected genes, over every
    gene kept by the gene filter, *before* the ``n_top_genes`` selection (so with HVG they
    exceed the sums of the counts layer; existing columns of these names are replaced).

    Warns (:class:`~lshgan.errors.DataWarning`) when a filter removes more than half of the
    cells or genes.

    Raises
    ------
    InputDataError
        If fewer than :data:`MIN_CELLS_TO_TRAIN` cells or :data:`MIN_GENES_TO_TRAIN` genes
        pass the filters (the message names the thresholds to lower), or if the values are
        scaled (negative).

    Examples
    --------
    >>> from lshgan.io import read_dataset
    >>> pp, fit = preprocess(read_dataset("pbmc68k_reduced"))
    >>> fit.report["data_kind"], fit.report["n_cells_out"]
    ('continuous', 700)
    """
    config = config or PreprocessConfig()
    X = _values(adata, config.layer, name)
    detected = detect_data_kind(X)
    kind = detected.with_kind(config.data_kind)
    if kind.kind != detected.kind and "log_normalized" in (kind.kind, detected.kind):
        # the one override that changes the transform: log values logged again, or counts not
        warnings.warn(f"{name}: data kind {kind.kind!r} given, but {kind.reason}; the values "
                      "will be " + ("kept as log values" if kind.kind == "log_normalized" else
                                    "normalised and log-transformed") + ": check --data-kind",
                      DataWarning, stacklevel=2)
    if kind.min_value < 0:
        raise InputDataError(
            f"{name}: negative values (min {kind.min_value:.3g}): scaled or centred data cannot "
            "be trained on; give log-normalised values or counts (e.g. a layer: --layer NAME)")
    n_in = X.shape[0]
    if n_in < MIN_CELLS_TO_TRAIN:
        raise InputDataError(f"{name}: {n_in} cells; at least {MIN_CELLS_TO_TRAIN} are needed "
                             "to train and evaluate a generator")
    cfg, auto = config.resolve(kind, n_in)
    how = ("library-size normalisation and log2(1+x)" if kind.normalizes
           else f"log values kept, rescaled from base {cfg.log_base or 'e'} to log2(1+x) "
                "(no normalisation)")
    log.info(f"{name}: {kind.describe()}; min_genes={cfg.min_genes}, min_count={cfg.min_count:g}, "
             f"min_cells_frac={cfg.min_cells_frac:.3g} ({_sources(auto)}); {how}")

    n_expr = np.asarray((X > 0).sum(axis=1)).ravel()
    cell_mask = n_expr > cfg.min_genes
    removed_min_genes = int(n_in - cell_mask.sum())
    _check_left(name, int(cell_mask.sum()), n_in, "cells",
                f"have more than min_genes={cfg.min_genes} expressed genes (median "
                f"{np.median(n_expr):g} per cell)", "lower --min-genes (min_genes)")
    Xc = X[cell_mask]
    n_cells = Xc.shape[0]
    above = np.asarray((Xc > cfg.min_count).sum(axis=0)).ravel()
    need = math.ceil(cfg.min_cells_frac * n_cells)
    gene_mask = (above >= need) & (np.asarray((Xc != 0).sum(axis=0)).ravel() > 0)
    gene_rule = (f"have a value above min_count={cfg.min_count:g} in at least "
                 f"min_cells_frac={cfg.min_cells_frac:.3g} of the {n_cells} cells ({need} cells)")
    _check_left(name, int(gene_mask.sum()), X.shape[1], "genes", gene_rule,
                "lower --min-count or --min-cells-frac (min_count, min_cells_frac)")
    Xg = Xc[:, gene_mask].tocsr().astype(np.float64)
    Xg.eliminate_zeros()
    filled = np.diff(Xg.indptr) > 0
    keep_cells = np.flatnonzero(cell_mask)[filled]
    _check_left(name, int(filled.sum()), n_in, "cells",
                f"have more than min_genes={cfg.min_genes} expressed genes and a value in the "
                "kept genes", "lower --min-genes, --min-count or --min-cells-frac")
    Xg = Xg[filled]

    if kind.normalizes:
        lib = np.asarray(Xg.sum(axis=1)).ravel()
        target = float(cfg.target_sum) if cfg.target_sum else float(np.median(lib))
        norm = sp.diags(target / lib) @ Xg  # sparse: zeros stay zeros
        logx = norm.copy()
        logx.data = np.log2(1.0 + logx.data)
    else:  # already log-normalised: rescaled from log_base to log2(1+x)
        base = float(cfg.log_base) if cfg.log_base is not None else float(np.e)
        target, norm, logx = float("nan"), None, Xg * (np.log(base) / np.log(2.0))
    density = logx.nnz / max(1, logx.shape[0] * logx.shape[1])
    as_out = (lambda m: m.astype(np.float32).tocsr()) if density < 0.3 else (
        lambda m: m.toarray().astype(np.float32))
    var = adata.var.iloc[np.flatnonzero(gene_mask)].copy()
    out = ad.AnnData(X=as_out(logx), obs=adata.obs.iloc[keep_cells].copy(), var=var)
    if norm is not None:
        out.layers["normalized"] = as_out(norm)
    if kind.kind in COUNT_KINDS:
        # the raw counts and the library sizes they were normalised by (over every gene kept
        # by the gene filter, before any HVG selection): what a count decoder learns from
        out.layers["counts"] = as_out(Xg)
        out.obs["n_counts"] = np.asarray(Xg.sum(axis=1)).ravel()
        out.obs["n_genes"] = np.diff(Xg.indptr).astype(np.int64)
    n_filtered = out.n_vars
    if cfg.n_top_genes is not None and cfg.n_top_genes < out.n_vars:
        out = out[:, variable_genes(out.X, int(cfg.n_top_genes))].copy()

    report = FilterReport(
        name=name, data_kind=kind.kind, data_kind_source=kind.source, min_genes=cfg.min_genes,
        min_count=cfg.min_count, min_cells_frac=cfg.min_cells_frac,
        auto_thresholds=",".join(auto) or "none", n_cells_in=int(n_in),
        n_genes_in=int(X.shape[1]), cells_removed_min_genes=removed_min_genes,
        cells_removed_empty=int((~filled).sum()),
        genes_removed_min_cells=int(X.shape[1] - gene_mask.sum()),
        genes_removed_n_top_genes=int(n_filtered - out.n_vars),
        n_cells_out=int(out.n_obs), n_genes_out=int(out.n_vars))
    log.info(report.summary())
    _warn_if_most_removed(report, np.median(n_expr), need)
    fit = Preprocessor(config=cfg, var_names=list(map(str, out.var_names)), target_sum=target,
                       report=report.to_dict())
    out.uns["lshgan_preprocess"] = {
        **report.to_dict(),
        "target_sum": target if kind.normalizes else "none (log-normalised input kept)",
        "n_top_genes": cfg.n_top_genes if cfg.n_top_genes is not None else "none",
        "layer": cfg.layer if cfg.layer is not None else "X",
        "normalization": how,
        "data_kind_evidence": kind.evidence(),
    }
    return out, fit


def raw_counts(adata: ad.AnnData) -> tuple[np.ndarray | sp.csr_matrix, np.ndarray] | None:
    """``(counts, library sizes)`` of cells written by :func:`preprocess` from count data;
    ``None`` for other data (another kind, or not from :func:`preprocess`).

    The counts are ``.layers['counts']`` or, for files written before that layer existed,
    ``.layers['normalized'] * n_counts / target_sum`` rounded to integers (exact up to float32
    rounding: at most 0.007 off on Pollen's read counts, 1e-4 on UMI data).  The library
    sizes are ``.obs['n_counts']`` (the totals before HVG selection), else the counts' sums.
    """
    info = adata.uns.get("lshgan_preprocess", {})
    if info.get("data_kind") not in COUNT_KINDS:
        return None
    has_lib = "n_counts" in adata.obs.columns
    if "counts" in adata.layers:
        counts = adata.layers["counts"]
    elif "normalized" in adata.layers and has_lib and isinstance(info.get("target_sum"), (int, float)):
        scale = adata.obs["n_counts"].to_numpy(dtype=np.float64) / float(info["target_sum"])
        norm = adata.layers["normalized"]
        if sp.issparse(norm):
            counts = sp.csr_matrix(sp.diags(scale) @ norm.astype(np.float64))
            counts.data = np.round(counts.data)
            counts.eliminate_zeros()
            counts = counts.astype(np.float32)
        else:
            counts = np.round(np.asarray(norm, np.float64) * scale[:, None]).astype(np.float32)
    else:
        return None
    sums = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    library = adata.obs["n_counts"].to_numpy(dtype=np.float64) if has_lib else sums
    return counts, np.maximum(np.maximum(library, sums), 1.0)


def _values(adata: ad.AnnData, layer: str | None, name: str) -> sp.csr_matrix:
    """``.X`` or ``.layers[layer]`` as CSR."""
    from .io import matrix_of

    M = matrix_of(adata, layer, name=name)
    return M.tocsr() if sp.issparse(M) else sp.csr_matrix(np.asarray(M))


def _sources(auto: tuple[str, ...]) -> str:
    if len(auto) == len(AUTO_THRESHOLDS):
        return "all from the data kind"
    if not auto:
        return "all given"
    return f"{', '.join(auto)} from the data kind, the rest given"


def _check_left(name: str, left: int, n_in: int, what: str, rule: str, fix: str) -> None:
    """Refuse when fewer cells or genes than training needs pass a filter."""
    need = MIN_CELLS_TO_TRAIN if what == "cells" else MIN_GENES_TO_TRAIN
    if left < need:
        raise InputDataError(
            f"{name}: only {left} of {n_in} {what} {rule}; at least {need} are needed to "
            f"train a generator: {fix}")


def _warn_if_most_removed(report: FilterReport, median_genes: float, need: int) -> None:
    r = report
    cells_lost = r.cells_removed_min_genes + r.cells_removed_empty
    if cells_lost * 2 > r.n_cells_in:
        empty = (f" ({r.cells_removed_empty} of them had no value in the kept genes)"
                 if r.cells_removed_empty else "")
        warnings.warn(
            f"{r.name}: preprocessing removed {cells_lost} of {r.n_cells_in} cells "
            f"({cells_lost / r.n_cells_in:.0%}){empty}: kept cells need more than "
            f"min_genes={r.min_genes} expressed genes (the median cell has {median_genes:g}; "
            f"data kind {r.data_kind}); lower --min-genes (min_genes) to keep more",
            DataWarning, stacklevel=3)
    if r.genes_removed_min_cells * 2 > r.n_genes_in:
        warnings.warn(
            f"{r.name}: the gene filter removed {r.genes_removed_min_cells} of {r.n_genes_in} "
            f"genes ({r.genes_removed_min_cells / r.n_genes_in:.0%}): kept genes need a value "
            f"above min_count={r.min_count:g} in at least min_cells_frac={r.min_cells_frac:.3g} "
            f"of the cells ({need} cells; data kind {r.data_kind}); lower --min-count or "
            "--min-cells-frac (min_count, min_cells_frac) to keep more",
            DataWarning, stacklevel=3)


def stratified_split(
    adata: ad.AnnData,
    *,
    test_size: float = 0.2,
    label_key: str | None = None,
    seed: int = 0,
    name: str = "data",
) -> tuple[ad.AnnData, ad.AnnData]:
    """Split cells into train and test, stratified by ``label_key`` when given.

    Types with a single cell go to the training side (they cannot be stratified).
    ``obs['split']`` records the side of each cell.  A split scikit-learn refuses (e.g.
    fewer test cells than cell types) raises :class:`ParameterError` naming ``name``.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise ParameterError(f"test_size must be in (0, 1), got {test_size}")
    idx = np.arange(adata.n_obs)
    strat = None
    single = np.zeros(adata.n_obs, bool)
    if label_key is not None:
        labels = adata.obs[label_key].astype(str).to_numpy()
        vals, counts = np.unique(labels, return_counts=True)
        single = np.isin(labels, vals[counts < 2])
        strat = labels[~single]
    try:
        tr, te = train_test_split(idx[~single], test_size=test_size, random_state=seed,
                                  stratify=strat)
    except ValueError as err:
        raise ParameterError(f"{name}: cannot split {adata.n_obs} cells with test_size={test_size}"
                             f"{f' by {label_key!r}' if label_key else ''}: {err}") from None
    tr = np.sort(np.concatenate([tr, idx[single]]))
    te = np.sort(te)
    train, test = adata[tr].copy(), adata[te].copy()
    train.obs["split"] = "train"
    test.obs["split"] = "test"
    return train, test
