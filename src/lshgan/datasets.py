"""Small synthetic datasets for tests, examples and benchmarks (scvi-tools' ``synthetic_iid``)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp


def synthetic_log_expression(n_cells: int = 200, n_genes: int = 100, n_types: int = 3, *,
                             seed: int = 0, sparse: bool = False) -> ad.AnnData:
    """Cells x genes on the ``log2(1+x)`` scale with cell types and realistic zeros.

    Counts are negative-binomial around type-specific gene means (each type has its own
    up-regulated genes), library-size normalised to 1e4 and log2-transformed, as
    :func:`lshgan.preprocess` would return them.  Types are in ``obs['cell_type']``.

    Examples
    --------
    >>> adata = synthetic_log_expression(100, 50, 2, seed=0)
    >>> adata.shape
    (100, 50)
    """
    rng = np.random.default_rng(seed)
    base = rng.lognormal(mean=0.0, sigma=1.0, size=n_genes)
    types = rng.integers(0, n_types, size=n_cells)
    means = np.tile(base, (n_types, 1))
    for t in range(n_types):
        up = rng.choice(n_genes, size=max(1, n_genes // 10), replace=False)
        means[t, up] *= rng.uniform(3, 8, size=up.size)
    lib = rng.lognormal(np.log(n_genes * 2.0), 0.3, size=n_cells)
    mu = means[types] / means[types].sum(1, keepdims=True) * lib[:, None]
    r = 2.0
    counts = rng.negative_binomial(r, r / (r + mu)).astype(np.float64)
    counts[counts.sum(1) == 0, 0] = 1
    norm = counts / counts.sum(1, keepdims=True) * 1e4
    X = np.log2(1 + norm).astype(np.float32)
    obs = pd.DataFrame({"cell_type": pd.Categorical([f"type{t}" for t in types])},
                       index=[f"cell{i}" for i in range(n_cells)])
    var = pd.DataFrame(index=[f"gene{j}" for j in range(n_genes)])
    adata = ad.AnnData(X=sp.csr_matrix(X) if sparse else X, obs=obs, var=var)
    adata.layers["counts"] = sp.csr_matrix(counts.astype(np.float32))
    return adata
