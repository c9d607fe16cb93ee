"""Shared test fixtures: a tiny synthetic dataset and the real Pollen split.

Fixtures
--------
``synthetic_adata`` (function scope, cheap)
    200 cells x 100 genes, three cell types, on the ``log2(1+x)`` scale of
    :func:`lshgan.preprocess`; a fresh object per test, so tests may modify it.
``pollen_split`` (session scope)
    ``(train, test)`` of the real Pollen data (:func:`lshgan.preprocess` with
    ``PreprocessConfig(n_top_genes=2000)``, :func:`lshgan.stratified_split` on
    ``cell_type``, seed 0): 239 + 60 cells x 2000 genes.  Shared by all tests of the
    session: do not modify it (``.copy()`` first).  Skips when the data are absent.
``shared_data_file``
    The :func:`shared_data` helper as a fixture, for tests that prefer not to import
    from ``conftest``.

Helper
------
``shared_data(name)``: path of a shared dataset (``"pollen"`` or ``"pollen.h5ad"``), looked
up in ``$LSHGAN_SHARED_DATA``, then ``<repo>/../shared/data``; the calling test is skipped
when it is in neither.

The machine running the tests is small and shared: BLAS/OpenMP are limited to one thread
unless ``OMP_NUM_THREADS`` is already set.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA_ENV = "LSHGAN_SHARED_DATA"


def shared_data(name: str) -> Path:
    """Path of a shared dataset file, or skip the calling test if it cannot be found.

    Parameters
    ----------
    name
        File name in the shared data folder; ``.h5ad`` is added when there is no suffix.

    Examples
    --------
    >>> path = shared_data("pollen")     # doctest: +SKIP
    """
    fname = name if Path(name).suffix else f"{name}.h5ad"
    folders = [Path(p) for p in [os.environ.get(SHARED_DATA_ENV)] if p]
    folders.append(REPO.parent / "shared" / "data")
    for folder in folders:
        if (folder / fname).is_file():
            return folder / fname
    pytest.skip(f"shared dataset {fname} not found in {', '.join(map(str, folders))} "
                f"(set ${SHARED_DATA_ENV})")


@pytest.fixture
def shared_data_file():
    """:func:`shared_data` as a fixture: ``shared_data_file("pollen")`` -> Path (or skip)."""
    return shared_data


def make_synthetic_adata(n_cells: int = 200, n_genes: int = 100, n_types: int = 3,
                         seed: int = 0) -> ad.AnnData:
    """Negative-binomial counts per cell type, library-size normalised, ``log2(1+x)``.

    Each type up- or down-regulates a random 20% of the genes (log fold change N(0, 1.5));
    cells have log-normal library sizes and gamma-Poisson noise (dispersion 2), which gives
    realistic dropout (about 10-90% zeros per gene, falling with mean expression).  ``.X``
    is dense float32; ``.layers['counts']`` holds the counts; ``obs['cell_type']`` is
    categorical with types ``type_0``, ``type_1``, ... in proportions n:...:2:1
    (101/66/33 cells by default).
    """
    rng = np.random.default_rng(seed)
    weights = np.arange(n_types, 0, -1)  # unequal sizes: 3:2:1 for three types
    sizes = (n_cells * weights / weights.sum()).astype(int)
    sizes[0] += n_cells - sizes.sum()
    labels = np.repeat([f"type_{i}" for i in range(n_types)], sizes)
    base = rng.lognormal(mean=0.0, sigma=1.2, size=n_genes)
    mu = np.empty((n_cells, n_genes))
    for i, t in enumerate(np.unique(labels)):
        markers = rng.random(n_genes) < 0.2
        lfc = np.where(markers, rng.normal(0.0, 1.5, n_genes), 0.0)
        mu[labels == t] = base * np.exp(lfc)
    mu *= rng.lognormal(0.0, 0.3, size=(n_cells, 1))
    dispersion = 2.0
    counts = rng.poisson(rng.gamma(dispersion, mu / dispersion)).astype(np.float32)
    counts[counts.sum(axis=1) == 0, 0] = 1.0  # no empty cell
    lib = counts.sum(axis=1, keepdims=True)
    X = np.log2(1.0 + counts / lib * np.median(lib)).astype(np.float32)
    adata = ad.AnnData(
        X=X,
        obs=pd.DataFrame({"cell_type": pd.Categorical(labels)},
                         index=[f"cell_{i}" for i in range(n_cells)]),
        var=pd.DataFrame(index=[f"gene_{j}" for j in range(n_genes)]),
    )
    adata.layers["counts"] = counts
    return adata


@pytest.fixture
def synthetic_adata() -> ad.AnnData:
    """200 cells x 100 genes, 3 types, log2 scale with realistic zeros (seeded, see
    :func:`make_synthetic_adata`); a new object for every test."""
    return make_synthetic_adata()


@pytest.fixture(scope="session")
def pollen_split() -> tuple[ad.AnnData, ad.AnnData]:
    """Real Pollen cells, preprocessed to 2000 genes, split 80/20 by cell type (seed 0)."""
    from lshgan import PreprocessConfig, preprocess, read_dataset, stratified_split

    adata = read_dataset(shared_data("pollen"), label_key="cell_type")
    pp, _ = preprocess(adata, PreprocessConfig(n_top_genes=2000), name="pollen")
    return stratified_split(pp, label_key="cell_type", seed=0)
