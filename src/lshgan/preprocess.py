"""Preprocessing as in the LSH-GAN paper, with every threshold a parameter.

Steps (Lall et al. 2022, "Methods: preprocessing"):

1. keep cells with more than ``min_genes`` expressed (non-zero) genes (paper: 1000);
2. keep genes whose value is above ``min_count`` (paper: 5) in at least ``min_cells_frac``
   of the cells (paper: 10%);
3. library-size normalisation.  The paper used R's Linnorm, which is not available in
   Python; we use :func:`scanpy.pp.normalize_total` (each cell scaled to ``target_sum``,
   default the median library size of the kept cells).  This is a documented deviation;
4. ``log2(1 + x)``;
5. optionally, the ``n_top_genes`` most variable genes (:func:`scanpy.pp.highly_variable_genes`,
   ``flavor="seurat"`` on the log data, so it also works on non-count data such as Yan's RPKM).

The fitted :class:`Preprocessor` keeps the gene names and the ``target_sum`` so that
generated cells (which live on the ``log2(1+x)`` scale) can be mapped back to the
normalised linear scale with :meth:`Preprocessor.inverse_transform`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import anndata as ad
import numpy as np
import scipy.sparse as sp

from .errors import InputDataError, ParameterError, check_positive_float


@dataclass
class PreprocessConfig:
    """Thresholds of :func:`preprocess`; the defaults are the paper's unless noted.

    ``min_genes`` defaults to 200 rather than the paper's 1000 because droplet data (the
    sorted PBMC set, the embedded PBMC 68k subset) and gene subsets (Klein: 900 genes) have
    few cells with 1000 expressed genes; pass ``min_genes=1000`` for the paper's setting.
    """

    min_genes: int = 200
    min_count: float = 5.0
    min_cells_frac: float = 0.10
    target_sum: float | None = None
    n_top_genes: int | None = None

    def __post_init__(self) -> None:
        if int(self.min_genes) < 0:
            raise ParameterError(f"min_genes must be >= 0, got {self.min_genes}")
        check_positive_float("min_count", self.min_count, allow_zero=True)
        if not 0 <= float(self.min_cells_frac) <= 1:
            raise ParameterError(f"min_cells_frac must be in [0, 1], got {self.min_cells_frac}")
        if self.target_sum is not None:
            check_positive_float("target_sum", self.target_sum)
        if self.n_top_genes is not None and int(self.n_top_genes) < 2:
            raise ParameterError(f"n_top_genes must be >= 2 or None, got {self.n_top_genes}")


@dataclass
class Preprocessor:
    """What was fitted: the config, the kept genes and the normalisation target."""

    config: PreprocessConfig = field(default_factory=PreprocessConfig)
    var_names: list[str] = field(default_factory=list)
    target_sum: float = 1e4

    def to_dict(self) -> dict:
        return {"config": asdict(self.config), "var_names": list(self.var_names),
                "target_sum": float(self.target_sum)}

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessor":
        return cls(PreprocessConfig(**d["config"]), list(d["var_names"]), float(d["target_sum"]))

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        """Map ``log2(1+x)`` values back to the library-size-normalised linear scale."""
        return np.exp2(np.asarray(X, dtype=np.float64)) - 1.0


def preprocess(
    adata: ad.AnnData,
    config: PreprocessConfig | None = None,
    *,
    name: str = "data",
) -> tuple[ad.AnnData, Preprocessor]:
    """Filter, normalise and log-transform ``adata``; return a new AnnData and the fit.

    The input is not modified.  The result has ``.X`` = ``log2(1 + normalised)`` as float32
    (CSR when under 30% of the values are non-zero, dense otherwise), ``.layers['normalized']`` the linear normalised values, the kept genes in
    ``.var_names``, ``.obs`` of the kept cells, and the config in ``.uns['lshgan_preprocess']``.

    Raises
    ------
    InputDataError
        If no cell or no gene passes a filter (the message names which threshold).

    Examples
    --------
    >>> from lshgan.io import read_dataset
    >>> pp, fit = preprocess(read_dataset("pbmc68k_reduced"), PreprocessConfig(min_count=1))
    """
    config = config or PreprocessConfig()
    X = adata.X.tocsr() if sp.issparse(adata.X) else sp.csr_matrix(adata.X)
    n_expr = np.asarray((X > 0).sum(axis=1)).ravel()
    cell_mask = n_expr > config.min_genes
    if not cell_mask.any():
        raise InputDataError(
            f"{name}: no cell has more than min_genes={config.min_genes} expressed genes "
            f"(max {int(n_expr.max()) if n_expr.size else 0}); lower min_genes"
        )
    Xc = X[cell_mask]
    n_cells = Xc.shape[0]
    above = np.asarray((Xc > config.min_count).sum(axis=0)).ravel()
    gene_mask = above >= np.ceil(config.min_cells_frac * n_cells)
    gene_mask &= np.asarray(Xc.sum(axis=0)).ravel() > 0
    if gene_mask.sum() < 2:
        raise InputDataError(
            f"{name}: {int(gene_mask.sum())} genes have a value above min_count={config.min_count} "
            f"in at least min_cells_frac={config.min_cells_frac} of the {n_cells} cells; "
            "lower min_count or min_cells_frac"
        )
    Xg = Xc[:, gene_mask].tocsr().astype(np.float64)
    lib = np.asarray(Xg.sum(axis=1)).ravel()
    if (lib <= 0).any():
        n0 = int((lib <= 0).sum())
        raise InputDataError(f"{name}: {n0} cells have no value in the kept genes")
    target = float(config.target_sum) if config.target_sum else float(np.median(lib))
    norm = sp.diags(target / lib) @ Xg  # sparse: zeros stay zeros
    logx = norm.copy()
    logx.data = np.log2(1.0 + logx.data)
    density = norm.nnz / max(1, norm.shape[0] * norm.shape[1])
    as_out = (lambda m: m.astype(np.float32).tocsr()) if density < 0.3 else (
        lambda m: m.toarray().astype(np.float32))
    var = adata.var.iloc[np.flatnonzero(gene_mask)].copy()
    out = ad.AnnData(X=as_out(logx), obs=adata.obs.iloc[np.flatnonzero(cell_mask)].copy(), var=var)
    out.layers["normalized"] = as_out(norm)
    if config.n_top_genes is not None and config.n_top_genes < out.n_vars:
        import scanpy as sc

        # scanpy's "seurat" flavour expects natural-log data; rescale a copy for ranking only.
        tmp = ad.AnnData(X=out.X * np.float32(np.log(2.0)))  # works for dense and CSR
        tmp.var_names = out.var_names
        sc.pp.highly_variable_genes(tmp, n_top_genes=int(config.n_top_genes), flavor="seurat")
        out = out[:, tmp.var["highly_variable"].values].copy()
    fit = Preprocessor(config=config, var_names=list(map(str, out.var_names)), target_sum=target)
    out.uns["lshgan_preprocess"] = {
        "min_genes": config.min_genes, "min_count": config.min_count,
        "min_cells_frac": config.min_cells_frac, "target_sum": target,
        "n_top_genes": config.n_top_genes if config.n_top_genes is not None else "none",
        "n_cells_in": int(adata.n_obs), "n_genes_in": int(adata.n_vars),
    }
    return out, fit


def stratified_split(
    adata: ad.AnnData,
    *,
    test_size: float = 0.2,
    label_key: str | None = None,
    seed: int = 0,
) -> tuple[ad.AnnData, ad.AnnData]:
    """Split cells into train and test, stratified by ``label_key`` when given.

    Types with a single cell go to the training side (they cannot be stratified).
    ``obs['split']`` records the side of each cell.
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
    tr, te = train_test_split(idx[~single], test_size=test_size, random_state=seed, stratify=strat)
    tr = np.sort(np.concatenate([tr, idx[single]]))
    te = np.sort(te)
    train, test = adata[tr].copy(), adata[te].copy()
    train.obs["split"] = "train"
    test.obs["split"] = "test"
    return train, test
