"""The `lshgan` command line, end to end on real data (Yan), and its error behaviour."""

import json
import subprocess
import sys

import anndata as ad
import numpy as np
import pytest

from lshgan.cli import main


def run_subprocess(*args):
    """Run the CLI in a subprocess, as a user would; return (exit code, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "lshgan.cli", *map(str, args)],
                       capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def lshgan(capsys):
    """Run the CLI in this process (same code path as the console script, no start-up cost)."""

    def run(*args):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_user_errors_are_one_line_without_traceback(tmp_path):
    code, _, err = run_subprocess("preprocess", tmp_path / "missing.h5ad", "-o", tmp_path / "o.h5ad")
    assert code == 2
    assert err.strip() == f"error: {tmp_path / 'missing.h5ad'}: file not found"
    assert "Traceback" not in err
    assert not (tmp_path / "o.h5ad").exists()


def test_bad_parameter_values_exit_2(tmp_path, capsys):
    assert main(["train", "pbmc68k_reduced", "-o", str(tmp_path / "m"), "--k", "0", "--quiet"]) == 2
    assert "k must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_yan_preprocess_split_train_generate_evaluate(tmp_path, shared_data_file, lshgan):
    """The whole chain on Yan (RPKM, 90 cells), with the outputs a user looks at."""
    yan = shared_data_file("yan")
    pp, tr, te = tmp_path / "pp.h5ad", tmp_path / "train.h5ad", tmp_path / "test.h5ad"
    assert lshgan("preprocess", yan, "--label-key", "cell_type", "--n-top-genes", "500", "-o", pp)[0] == 0
    assert lshgan("split", pp, "--label-key", "cell_type", "--train", tr, "--test", te)[0] == 0
    model = tmp_path / "model"
    code, _, err = lshgan("train", tr, "--label-key", "cell_type", "--epochs", "3", "--k", "3",
                          "-o", model)
    assert code == 0, err
    assert "training" in err  # the progress bar
    assert (model / "generator.pt").exists() and (model / "losses.png").stat().st_size > 0
    # no silent overwrite
    code, _, err = lshgan("train", tr, "--label-key", "cell_type", "--epochs", "1", "-o", model)
    assert code == 2 and "already exists" in err
    gen = tmp_path / "gen.h5ad"
    types = ad.read_h5ad(tr).obs["cell_type"].astype(str).unique()
    code, _, err = lshgan("generate", model, "-n", "20", "--cell-type", types[0], "-o", gen)
    assert code == 0, err
    g = ad.read_h5ad(gen)
    assert g.shape == (20, 500) and (g.obs["cell_type"] == types[0]).all()
    assert list(g.var_names) == list(ad.read_h5ad(tr).var_names)
    metrics, plots = tmp_path / "metrics.json", tmp_path / "plots"
    code, out, err = lshgan("evaluate", gen, "--train", tr, "--test", te, "--label-key", "cell_type",
                            "-o", metrics, "--plots", plots, "--groundgan")
    assert code == 0, err
    m = json.loads(metrics.read_text())
    assert 0 <= m["lshgan"]["rf_auc"] <= 1 and m["lshgan"]["dcr"] > 0
    assert {"copy", "gaussian", "real-vs-real"} <= set(m["references"])
    assert m["references"]["copy"]["dcr"] < 0.05  # copies are caught as copies
    for key in ("recall", "coverage", "substate_coverage", "marker_top50_overlap",
                "rf_auc_groundgan"):
        assert key in m["lshgan"] and key in m["references"]["real-vs-real"]
    assert (plots / "umap.png").stat().st_size > 10_000
    assert (plots / "diversity.png").stat().st_size > 10_000
    assert (plots / "cell_statistics.png").stat().st_size > 10_000
    assert "lshgan" in out and "copy" in out
    assert "info: evaluated lshgan (1 of 4)" in err and "evaluated real-vs-real (4 of 4)" in err
    assert m["references"]["copy"]["authenticity_pca"] == 0.0  # copies: not authentic
    assert 0 < m["lshgan"]["authenticity_pca_test"] < 1


def test_generate_refuses_unknown_type(tmp_path, lshgan):
    from lshgan import LSHGAN
    from lshgan.datasets import synthetic_log_expression

    m = LSHGAN(synthetic_log_expression(60, 20, 2), label_key="cell_type", g_hidden=(8,), d_hidden=(8,))
    m.train(epochs=1, progress=False)
    m.save(tmp_path / "m")
    code, _, err = lshgan("generate", tmp_path / "m", "-n", "5", "--cell-type", "neuron",
                          "-o", tmp_path / "g.h5ad")
    assert code == 2 and "unknown cell_type 'neuron'; known types: type0, type1" in err
    assert not (tmp_path / "g.h5ad").exists()
    # an .h5ad is never written under another format's name
    code, _, err = lshgan("generate", tmp_path / "m", "-n", "5", "-o", tmp_path / "g.csv")
    assert code == 2 and "g.csv: this output is written as .h5ad; name it *.h5ad" in err
    assert not (tmp_path / "g.csv").exists()


def test_matrix_file_with_a_cell_type_table_and_genes_as_rows(tmp_path, lshgan):
    """A GEO-style genes x cells table plus a cell annotation table: --transpose --obs."""
    import numpy as np
    import pandas as pd

    from lshgan.datasets import synthetic_log_expression

    a = synthetic_log_expression(60, 30, 2, seed=0)
    counts = np.rint(np.expm1(np.asarray(a.X)) * 3)
    cells = [f"cell{i}" for i in range(a.n_obs)]
    pd.DataFrame(counts.T, index=list(a.var_names), columns=cells).to_csv(tmp_path / "gxc.csv")
    pd.DataFrame({"cell_type": list(a.obs["cell_type"].astype(str))},
                 index=cells).to_csv(tmp_path / "types.csv")
    code, _, err = lshgan("preprocess", tmp_path / "gxc.csv", "--transpose", "--obs",
                          tmp_path / "types.csv", "--label-key", "cell_type", "-o", tmp_path / "pp.h5ad")
    assert code == 0, err
    import anndata as ad

    pp = ad.read_h5ad(tmp_path / "pp.h5ad")
    assert pp.n_obs == 60 and set(pp.var_names) <= set(a.var_names)
    assert list(pp.obs["cell_type"].astype(str)) == list(a.obs["cell_type"].astype(str))
