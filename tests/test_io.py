"""Reading and validating inputs: one clear error naming the file and the problem."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from lshgan.errors import InputDataError, OutputExistsError
from lshgan.io import atomic_path, read_dataset, write_h5ad


def _write(tmp_path, X, name="d.h5ad", var=None, obs=None):
    a = ad.AnnData(X=np.asarray(X, dtype=np.float32))
    a.var_names = var or [f"g{i}" for i in range(a.n_vars)]
    if obs is not None:
        for k, v in obs.items():
            a.obs[k] = v
    p = tmp_path / name
    a.write_h5ad(p)
    return p


def test_embedded_default_needs_no_download():
    a = read_dataset("pbmc68k_reduced", label_key="cell_type")
    assert a.shape == (700, 765)
    assert a.X.min() >= 0 and a.obs["cell_type"].nunique() == 10


@pytest.mark.parametrize("X,match", [
    (np.full((3, 3), np.nan), "NaN or infinite"),
    (np.array([[1.0, -2.0], [3.0, 4.0]]), "negative"),
    (np.zeros((3, 3)), "every value is zero"),
    (np.zeros((0, 3)), "empty"),
])
def test_bad_matrices_are_refused_with_the_file_name(tmp_path, X, match):
    p = _write(tmp_path, X)
    with pytest.raises(InputDataError, match=match) as err:
        read_dataset(p)
    assert str(p) in str(err.value)


def test_duplicated_gene_names(tmp_path):
    a = ad.AnnData(X=np.ones((2, 3), np.float32))
    a.var_names = ["A", "B", "A"]
    p = tmp_path / "dup.h5ad"
    a.write_h5ad(p)
    with pytest.raises(InputDataError, match="duplicated gene names"):
        read_dataset(p)


def test_missing_file_truncated_file_and_label_column(tmp_path):
    with pytest.raises(InputDataError, match="file not found"):
        read_dataset(tmp_path / "nope.h5ad")
    p = _write(tmp_path, np.ones((4, 3)), obs={"type": ["a", "b", "a", "b"]})
    trunc = tmp_path / "trunc.h5ad"
    trunc.write_bytes(p.read_bytes()[:200])
    with pytest.raises(InputDataError, match="trunc.h5ad"):
        read_dataset(trunc)
    text = tmp_path / "text.h5ad"
    text.write_text("hello")
    with pytest.raises(InputDataError, match="not an HDF5 file"):
        read_dataset(text)
    with pytest.raises(InputDataError, match="label column 'cell_type' not found"):
        read_dataset(p, label_key="cell_type")


def test_csv_with_text_in_numeric_cells(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("cell,g1,g2\nc1,1,2\nc2,x,3\n")
    with pytest.raises(InputDataError, match="non-numeric.*'g1'.*c2"):
        read_dataset(p)
    ok = tmp_path / "ok.csv"
    ok.write_text("cell,g1,g2\nc1,1,2\nc2,0,3\n")
    a = read_dataset(ok)
    assert a.shape == (2, 2) and list(a.var_names) == ["g1", "g2"]


def test_10x_mtx_folder(tmp_path):
    import scipy.io

    d = tmp_path / "tenx"
    d.mkdir()
    X = sp.random(5, 4, density=0.6, format="coo", random_state=0) * 10
    scipy.io.mmwrite(d / "matrix.mtx", X.T.tocoo())  # 10x stores genes x cells
    (d / "genes.tsv").write_text("".join(f"ENSG{i}\tG{i}\n" for i in range(4)))
    (d / "barcodes.tsv").write_text("".join(f"BC{i}\n" for i in range(5)))
    a = read_dataset(d)
    assert a.shape == (5, 4) and list(a.var_names) == ["G0", "G1", "G2", "G3"]


def test_writes_are_atomic_and_never_clobber(tmp_path):
    a = ad.AnnData(X=np.ones((2, 2), np.float32))
    out = tmp_path / "o.h5ad"
    write_h5ad(a, out)
    before = out.read_bytes()
    with pytest.raises(OutputExistsError, match="--force"):
        write_h5ad(a, out)
    assert out.read_bytes() == before
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "partial.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert not (tmp_path / "partial.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["o.h5ad"]


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    """The temporary file is private (0600); the result is readable like any written file."""
    import os

    mask = os.umask(0o022)
    try:
        out = write_h5ad(ad.AnnData(X=np.ones((2, 2), np.float32)), tmp_path / "m.h5ad")
        assert out.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)
