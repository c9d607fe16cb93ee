"""Shared test fixtures: a tiny synthetic dataset and the real Pollen split.

Fixtures
--------
``synthetic_adata`` (function scope, cheap)
    200 cells x 100 genes, three cell types (``type0``-``type2`` in ``obs['cell_type']``),
    on the ``log2(1+x)`` scale of :func:`lshgan.preprocess` with realistic zeros (from
    :func:`lshgan.datasets.synthetic_log_expression`, seed 0); a fresh object per test, so
    tests may modify it.
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
import pytest  # noqa: E402

from lshgan.datasets import synthetic_log_expression  # noqa: E402

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


@pytest.fixture
def synthetic_adata() -> ad.AnnData:
    """200 cells x 100 genes, types ``type0``-``type2``, log2 scale with realistic zeros.

    :func:`lshgan.datasets.synthetic_log_expression` with seed 0 (dense ``.X``, counts in
    ``.layers['counts']``); a new object for every test.
    """
    return synthetic_log_expression(200, 100, 3, seed=0)


@pytest.fixture(scope="session")
def pollen_split() -> tuple[ad.AnnData, ad.AnnData]:
    """Real Pollen cells, preprocessed to 2000 genes, split 80/20 by cell type (seed 0)."""
    from lshgan import PreprocessConfig, preprocess, read_dataset, stratified_split

    adata = read_dataset(shared_data("pollen"), label_key="cell_type")
    pp, _ = preprocess(adata, PreprocessConfig(n_top_genes=2000), name="pollen")
    return stratified_split(pp, label_key="cell_type", seed=0)
