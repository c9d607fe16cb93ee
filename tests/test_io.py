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


def test_10x_repeated_gene_symbols_are_made_unique_with_a_warning(tmp_path):
    import scipy.io

    from lshgan.errors import DataWarning

    d = tmp_path / "tenx"
    d.mkdir()
    X = sp.random(5, 4, density=0.6, format="coo", random_state=0) * 10
    scipy.io.mmwrite(d / "matrix.mtx", X.T.tocoo())
    (d / "genes.tsv").write_text("ENSG0\tG0\nENSG1\tG1\nENSG2\tG0\nENSG3\tG3\n")
    (d / "barcodes.tsv").write_text("".join(f"BC{i}\n" for i in range(5)))
    with pytest.warns(DataWarning, match="1 repeated gene symbols \\(e.g. G0\\).*var_names_make_unique"):
        a = read_dataset(d)
    assert list(a.var_names) == ["G0", "G1", "G0-1", "G3"]


def test_genes_x_cells_files_read_with_transpose_and_warned_without(tmp_path):
    import scipy.io

    from lshgan.errors import DataWarning

    cells = ["AAACCTGAGAAG" + format(i, "04b").translate(str.maketrans("01", "AC")) + "-1"
             for i in range(10)]
    df = pd.DataFrame(np.arange(30, dtype=float).reshape(3, 10) + 1, index=["CD3E", "MS4A1", "LYZ"],
                      columns=cells)
    path = tmp_path / "gxc.csv"
    df.to_csv(path)
    with pytest.warns(DataWarning, match="look like cell barcodes.*--transpose"):
        read_dataset(path)
    a = read_dataset(path, transpose=True)
    assert a.shape == (10, 3) and list(a.var_names) == ["CD3E", "MS4A1", "LYZ"]
    assert a.X[0].toarray().ravel().tolist() == [1.0, 11.0, 21.0]
    # a bare .mtx has no names to tell: always said which way it was read
    scipy.io.mmwrite(tmp_path / "m.mtx", sp.coo_matrix(df.to_numpy()))
    with pytest.warns(DataWarning, match="read as 3 cells \\(rows\\) x 10 genes"):
        assert read_dataset(tmp_path / "m.mtx").shape == (3, 10)
    assert read_dataset(tmp_path / "m.mtx", transpose=True).shape == (10, 3)


def test_cell_annotations_from_a_table(tmp_path):
    from lshgan.errors import DataWarning

    df = pd.DataFrame(np.arange(1, 13, dtype=float).reshape(4, 3), index=[f"c{i}" for i in range(4)],
                      columns=["g0", "g1", "g2"])
    df.to_csv(tmp_path / "x.csv")
    table = pd.DataFrame({"cell_type": ["B", "T", "B", "NK", "T"], "donor": [1, 1, 2, 2, 3]},
                         index=["c3", "c1", "c0", "c2", "other"])  # any order, one extra cell
    table.to_csv(tmp_path / "types.csv")
    a = read_dataset(tmp_path / "x.csv", obs=tmp_path / "types.csv", label_key="cell_type")
    assert list(a.obs["cell_type"]) == ["B", "T", "NK", "B"] and list(a.obs["donor"]) == [2, 1, 2, 1]
    # a cell without a row is named; so is a cell with two rows
    table.drop(index="c2").to_csv(tmp_path / "short.csv")
    with pytest.raises(InputDataError, match=r"short.csv: no row for 1 of the 4 cells .*c2"):
        read_dataset(tmp_path / "x.csv", obs=tmp_path / "short.csv")
    pd.concat([table, table.iloc[:1]]).to_csv(tmp_path / "twice.csv")
    with pytest.raises(InputDataError, match=r"twice.csv: 1 cells with more than one row, e.g. c3"):
        read_dataset(tmp_path / "x.csv", obs=tmp_path / "twice.csv")
    with pytest.raises(InputDataError, match="nope.csv: cell annotation table not found"):
        read_dataset(tmp_path / "x.csv", obs=tmp_path / "nope.csv")
    # a column of the same name is replaced, with a warning
    p = _write(tmp_path, df.to_numpy(), obs={"cell_type": ["x"] * 4})
    ad.read_h5ad(p)  # obs names 0..3
    pd.DataFrame({"cell_type": list("abcd")}, index=[str(i) for i in range(4)]).to_csv(tmp_path / "t2.csv")
    with pytest.warns(DataWarning, match="replaces the column\\(s\\) cell_type"):
        assert list(read_dataset(p, obs=tmp_path / "t2.csv").obs["cell_type"]) == list("abcd")


def test_repeated_cell_names_are_made_unique_with_a_warning(tmp_path):
    from lshgan.errors import DataWarning

    df = pd.DataFrame(np.ones((3, 2)), index=["c0", "c0", "c1"], columns=["g0", "g1"])
    df.to_csv(tmp_path / "d.csv")
    with pytest.warns(DataWarning, match="1 repeated cell names \\(e.g. 'c0'\\)"):
        a = read_dataset(tmp_path / "d.csv")
    assert list(a.obs_names) == ["c0", "c0-1", "c1"]


def test_outputs_must_carry_their_format_suffix(tmp_path):
    from lshgan.errors import ParameterError
    from lshgan.io import check_writable

    with pytest.raises(ParameterError, match=r"x.csv: this output is written as .h5ad; name it \*.h5ad"):
        check_writable(tmp_path / "x.csv", suffix=".h5ad")
    assert check_writable(tmp_path / "x.H5AD", suffix=".h5ad").name == "x.H5AD"


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


def test_ingest_joins_a_cell_table_and_refuses_read_options_in_the_preprocess_params(tmp_path):
    """The DVC pipeline reads the source file once, in its ingest stage: the read options
    go there (stages/ingest.py --transpose --obs), never into params.yaml's preprocess."""
    from lshgan import workflow
    from lshgan.config import preprocess_config
    from lshgan.errors import ParameterError

    df = pd.DataFrame(np.arange(1, 13, dtype=float).reshape(3, 4), index=["g0", "g1", "g2"],
                      columns=[f"c{i}" for i in range(4)])
    df.to_csv(tmp_path / "gxc.csv")
    pd.DataFrame({"cell_type": list("ABAB")}, index=df.columns).to_csv(tmp_path / "t.csv")
    with pytest.raises(InputDataError, match="names the matrix's genes as cells: .*--transpose"):
        workflow.ingest(tmp_path / "gxc.csv", tmp_path / "raw.h5ad", obs=tmp_path / "t.csv")
    out = workflow.ingest(tmp_path / "gxc.csv", tmp_path / "raw.h5ad", label_key="cell_type",
                          transpose=True, obs=tmp_path / "t.csv")
    back = ad.read_h5ad(tmp_path / "raw.h5ad")
    assert back.shape == out.shape == (4, 3) and list(back.obs["cell_type"]) == list("ABAB")
    # an .h5ad source with a table: written with the annotations, the source untouched
    before = (tmp_path / "raw.h5ad").read_bytes()
    workflow.ingest(tmp_path / "raw.h5ad", tmp_path / "again.h5ad", obs=tmp_path / "t.csv")
    assert (tmp_path / "raw.h5ad").read_bytes() == before
    assert list(ad.read_h5ad(tmp_path / "again.h5ad").obs["cell_type"]) == list("ABAB")
    with pytest.raises(ParameterError, match="preprocess: obs, transpose say how a matrix file is read"):
        preprocess_config({"transpose": True, "obs": "t.csv"})


def test_layer_raw_reads_scanpys_raw_with_its_genes(tmp_path):
    counts = np.arange(1, 25, dtype=np.float32).reshape(4, 6)
    a = ad.AnnData(X=counts)
    a.var_names = [f"g{i}" for i in range(6)]
    a.raw = a.copy()
    sub = a[:, :3].copy()  # scanpy after HVG selection: .X a subset, .raw every gene
    sub.X = np.log1p(sub.X)
    sub.write_h5ad(tmp_path / "d.h5ad")
    r = read_dataset(tmp_path / "d.h5ad", layer="raw")
    assert r.shape == (4, 6) and list(r.var_names) == list(a.var_names)
    np.testing.assert_array_equal(r.X.toarray(), counts)
    np.testing.assert_array_equal(r.layers["raw"].toarray(), counts)  # for preprocess(layer="raw")
    from lshgan.io import matrix_of

    with pytest.raises(InputDataError, match=r"\.raw holds 6 genes and \.X 3"):
        matrix_of(sub, "raw", name="d")
    np.testing.assert_array_equal(matrix_of(a, "raw").toarray() if sp.issparse(a.raw.X) else
                                  matrix_of(a, "raw"), counts)
    with pytest.raises(InputDataError, match="no layer 'counts'"):
        read_dataset(tmp_path / "d.h5ad", layer="counts")
    sub.X = sub.X - 1.0  # scaled, as after sc.pp.scale: the error points at .raw
    sub.write_h5ad(tmp_path / "scaled.h5ad")
    with pytest.raises(InputDataError, match=r"negative values.*--layer raw reads \.raw \(6 genes\)"):
        read_dataset(tmp_path / "scaled.h5ad")
