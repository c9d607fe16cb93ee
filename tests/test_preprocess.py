"""Preprocessing thresholds, normalisation and the inverse map (lshgan.preprocess)."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from lshgan import PreprocessConfig, preprocess, stratified_split
from lshgan.errors import InputDataError, ParameterError


def _counts(n_cells=50, n_genes=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.poisson(8.0, size=(n_cells, n_genes)).astype(np.float32)
    a = ad.AnnData(X=sp.csr_matrix(X))
    a.var_names = [f"g{i}" for i in range(n_genes)]
    a.obs_names = [f"c{i}" for i in range(n_cells)]
    a.obs["cell_type"] = pd.Categorical(np.where(np.arange(n_cells) % 2, "A", "B"))
    return a


def test_cell_filter_keeps_cells_with_more_than_min_genes():
    a = _counts()
    X = a.X.toarray()
    X[:5, 10:] = 0  # five cells express only 10 genes
    a.X = sp.csr_matrix(X)
    out, _ = preprocess(a, PreprocessConfig(min_genes=10, min_count=0, min_cells_frac=0))
    assert out.n_obs == 45  # "more than 10": cells with exactly 10 are dropped
    assert not set(out.obs_names) & {f"c{i}" for i in range(5)}


def test_gene_filter_count_above_min_count_in_fraction_of_cells():
    a = _counts()
    X = a.X.toarray()
    X[:, 0] = 0
    X[:4, 0] = 10  # 4/50 = 8% of cells above 5: dropped at 10%
    X[:, 1] = 0
    X[:5, 1] = 10  # 5/50 = 10%: kept
    X[:, 2] = 5  # equal to min_count, never above: dropped
    a.X = sp.csr_matrix(X)
    out, fit = preprocess(a, PreprocessConfig(min_genes=0, min_count=5, min_cells_frac=0.1))
    assert "g0" not in out.var_names and "g2" not in out.var_names
    assert "g1" in out.var_names
    assert fit.var_names == list(out.var_names)


def test_normalisation_then_log2_and_inverse():
    a = _counts()
    raw = a.X.toarray().copy()
    out, fit = preprocess(a, PreprocessConfig(min_genes=0, min_count=0, min_cells_frac=0, target_sum=1000))
    norm = out.layers["normalized"]
    norm = norm.toarray() if sp.issparse(norm) else norm
    np.testing.assert_allclose(norm.sum(axis=1), 1000, rtol=1e-4)
    X = out.X.toarray() if sp.issparse(out.X) else out.X
    np.testing.assert_allclose(X, np.log2(1 + norm), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fit.inverse_transform(X), norm, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(a.X.toarray(), raw)  # the input was not modified


def test_highly_variable_subset_and_uns_record():
    out, fit = preprocess(_counts(n_genes=60), PreprocessConfig(min_genes=0, min_count=0,
                                                                min_cells_frac=0, n_top_genes=20))
    assert out.n_vars == 20 and len(fit.var_names) == 20
    assert out.uns["lshgan_preprocess"]["n_top_genes"] == 20


def test_thresholds_that_remove_everything_name_the_threshold():
    with pytest.raises(InputDataError, match="min_genes"):
        preprocess(_counts(), PreprocessConfig(min_genes=1000), name="x.h5ad")
    with pytest.raises(InputDataError, match="min_count"):
        preprocess(_counts(), PreprocessConfig(min_genes=0, min_count=1000))
    with pytest.raises(ParameterError):
        PreprocessConfig(min_cells_frac=1.5)


def test_rpkm_input_works(shared_data_file):
    """Yan is RPKM (continuous values), not counts: preprocessing must accept it."""
    from lshgan import read_dataset

    a = read_dataset(shared_data_file("yan"), label_key="cell_type")
    assert not np.allclose(a.X.data, np.round(a.X.data))  # really non-integer
    out, _ = preprocess(a)
    assert out.n_obs == 90 and out.n_vars > 1000
    X = out.X.toarray() if sp.issparse(out.X) else out.X
    assert np.isfinite(X).all() and X.min() >= 0


def test_stratified_split_keeps_types_and_never_overlaps():
    a = _counts(n_cells=100)
    tr, te = stratified_split(a, test_size=0.2, label_key="cell_type", seed=0)
    assert tr.n_obs == 80 and te.n_obs == 20
    assert not set(tr.obs_names) & set(te.obs_names)
    assert set(te.obs["cell_type"]) == {"A", "B"}
    tr2, _ = stratified_split(a, test_size=0.2, label_key="cell_type", seed=0)
    assert list(tr2.obs_names) == list(tr.obs_names)
