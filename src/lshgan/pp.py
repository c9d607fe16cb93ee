"""AnnData-level preprocessing helpers in the scanpy manner (``lshgan.pp``).

>>> import lshgan
>>> lshgan.pp.lsh_subsample(adata, k=5, t=1, groupby="cell_type")   # doctest: +SKIP
>>> adata.obs["lsh_subsample"].sum()                                # doctest: +SKIP
"""

from __future__ import annotations

import anndata as ad
import numpy as np

from .errors import InputDataError, ParameterError
from .lsh import lsh_space, lsh_subsample_by_group

__all__ = ["lsh_subsample"]


def lsh_subsample(adata: ad.AnnData, *, k: int = 5, t: int = 1, groupby: str | None = None,
                  use_rep: str | None = None, n_trees: int = 32, seed: int = 0,
                  key_added: str = "lsh_subsample", copy: bool = False) -> ad.AnnData | None:
    """Mark the cells of the paper's LSH subsample in ``adata.obs[key_added]``.

    The cells LSH-GAN draws its anchors from (Lall et al. 2022): an LSH forest finds each
    cell's ``k`` approximate neighbours, a greedy pass keeps a cell and marks its
    neighbours visited, ``t`` rounds.  What :class:`lshgan.LSHGAN` does before training,
    exposed so a user can see (e.g. on a UMAP) which cells LSH chose.

    Parameters
    ----------
    adata
        Cells x genes; not modified unless ``copy=False`` (then only ``obs`` and ``uns``
        gain the result).
    k, t
        The paper's neighbours per kept cell and rounds.
    groupby
        ``.obs`` column: one subsample per group (the model's per-cell-type subsample).
    use_rep
        ``.obsm`` key of the space to hash (e.g. ``"X_pca"``); ``None``: ``.X`` as the
        model hashes it (densified; 50 principal components for a sparse matrix of more
        than 2e8 entries).
    n_trees
        Trees of the LSH forest (the model's default, 32).
    key_added
        Boolean ``.obs`` column written; parameters go to ``.uns[key_added]``.
    copy
        Return a marked copy instead of writing into ``adata``.
    """
    if use_rep is None:
        X = lsh_space(adata.X)
    elif use_rep in adata.obsm:
        X = np.asarray(adata.obsm[use_rep])
    else:
        raise ParameterError(f"use_rep={use_rep!r} is not in .obsm (keys: {', '.join(adata.obsm) or 'none'})")
    groups = None
    if groupby is not None:
        if groupby not in adata.obs:
            raise InputDataError(f"groupby column {groupby!r} not found in .obs")
        groups = adata.obs[groupby].astype(str).to_numpy()
    keep = lsh_subsample_by_group(np.asarray(X, dtype=np.float32), groups, k=k, t=t,
                                  n_trees=n_trees, seed=seed)
    target = adata.copy() if copy else adata
    mask = np.zeros(adata.n_obs, dtype=bool)
    mask[keep] = True
    target.obs[key_added] = mask
    target.uns[key_added] = {"k": int(k), "t": int(t), "groupby": groupby, "use_rep": use_rep,
                             "n_trees": int(n_trees), "seed": int(seed), "n_kept": int(mask.sum())}
    return target if copy else None
