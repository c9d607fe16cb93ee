"""Datasets of the reproduction: read, preprocess, split (one protocol for every experiment).

Protocol (the core issue's, see ``QUALITY.md``): genes expressed (value above 0) in at least
10% of the cells, cells with more than 200 expressed genes (a fifth of the genes for files
with fewer than 1000 genes), library-size normalisation to
the median, ``log2(1+x)``, the ``n_genes`` most variable genes; stratified 80/20 split with
seed 0.  The paper's own filter (value above 5 in 10% of cells) keeps only ~200 genes of the
droplet PBMC data, hence the non-zero threshold.  Any file :func:`lshgan.read_dataset`
reads can be given, with its labels in ``obs[label_key]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

from ..io import read_dataset
from ..preprocess import PreprocessConfig, stratified_split
from ..workflow import read_and_preprocess

#: The four shared datasets of the default report.
DEFAULT_DATASETS = ("yan", "pollen", "klein_subset", "pbmc_sorted_zheng")


@dataclass
class PreparedData:
    """One preprocessed dataset and its split."""

    name: str
    full: ad.AnnData
    train: ad.AnnData
    test: ad.AnnData
    label_key: str

    @property
    def n_types(self) -> int:
        return int(self.full.obs[self.label_key].astype(str).nunique())

    def describe(self) -> str:
        return (f"{self.name}: {self.full.n_obs} cells x {self.full.n_vars} genes, "
                f"{self.n_types} types, train {self.train.n_obs} / test {self.test.n_obs}")


def default_dataset_paths() -> list[Path]:
    """The shared datasets (``$LSHGAN_SHARED_DATA`` or ``../shared/data`` of the repository)."""
    env = os.environ.get("LSHGAN_SHARED_DATA")
    folder = Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return [folder / f"{name}.h5ad" for name in DEFAULT_DATASETS]


def prepare(path: str | os.PathLike, *, n_genes: int, label_key: str = "cell_type",
            name: str | None = None) -> PreparedData:
    """Read ``path``, preprocess to ``n_genes`` genes (dense), split 80/20 by type (seed 0)."""
    name = name or Path(str(path)).name.split(".")[0]
    raw = read_dataset(path, label_key=label_key)  # its gene count sets min_genes
    config = PreprocessConfig(min_genes=min(200, raw.n_vars // 5), min_count=0.0, min_cells_frac=0.10,
                              n_top_genes=n_genes)
    _, pp = read_and_preprocess(raw, config, label_key=label_key, name=name)
    if sp.issparse(pp.X):
        pp.X = pp.X.toarray()
    pp.X = np.asarray(pp.X, dtype=np.float32)
    for key in list(pp.layers):
        del pp.layers[key]
    pp.obs[label_key] = pp.obs[label_key].astype(str)
    train, test = stratified_split(pp, label_key=label_key, seed=0, name=name)
    return PreparedData(name=name, full=pp, train=train, test=test, label_key=label_key)
