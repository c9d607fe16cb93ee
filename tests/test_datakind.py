"""Kind of data (lshgan.datakind), thresholds that follow it, and the filter report.

Measured filter reports with the automatic thresholds (``-s`` prints them again)::

    dataset                kind            thresholds (genes/count/frac)  cells in/removed/kept  genes in/removed/kept
    klein_subset           umi_counts      200 / 0 / 0.01                 1000 / 0 / 1000        900 / 0 / 900
    mouse_bladder_top2000  umi_counts      30 / 0 / 0.0036 (10 cells)     2746 / 0 / 2746        2003 / 359 / 1644
    pbmc4k_top2000         umi_counts      44 / 0 / 0.0023 (10 cells)     4271 / 0 / 4271        2000 / 260 / 1740
    pbmc_sorted_zheng      umi_counts      200 / 0 / 0.0047 (10 cells)    2140 / 0 / 2140        8863 / 2 / 8861
    pollen                 read_counts     200 / 5 / 0.1                  299 / 0 / 299          23794 / 14244 / 9550 (warns)
    worm_neuron_top2000    umi_counts      4 / 0 / 0.0024 (10 cells)      4186 / 78 / 4108       2000 / 683 / 1317
    yan                    continuous      200 / 0 / 0.1                  90 / 0 / 90            20214 / 4035 / 16179
    pbmc68k_reduced        continuous      60 / 0 / 0.1                   700 / 0 / 700          765 / 129 / 636
"""

from __future__ import annotations

import logging
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from lshgan import PreprocessConfig, Preprocessor, preprocess, read_dataset
from lshgan.cli import main
from lshgan.datakind import KINDS, detect_data_kind
from lshgan.datasets import synthetic_log_expression
from lshgan.errors import DataWarning, InputDataError, ParameterError
from lshgan.preprocess import FilterReport

SHARED_KINDS = {
    "yan": "continuous",
    "pollen": "read_counts",
    "klein_subset": "umi_counts",
    "pbmc_sorted_zheng": "umi_counts",
    "pbmc4k_top2000": "umi_counts",
    "mouse_bladder_top2000": "umi_counts",
    "worm_neuron_top2000": "umi_counts",
}


def _umi(n_cells=200, n_genes=60, seed=0, mean=1.0) -> ad.AnnData:
    """Poisson counts (UMI-like), two cell types."""
    rng = np.random.default_rng(seed)
    X = rng.poisson(mean * rng.lognormal(0, 1, size=n_genes), size=(n_cells, n_genes))
    a = ad.AnnData(X=sp.csr_matrix(X.astype(np.float32)))
    a.var_names = [f"g{i}" for i in range(n_genes)]
    a.obs_names = [f"c{i}" for i in range(n_cells)]
    a.obs["cell_type"] = pd.Categorical(np.where(np.arange(n_cells) % 2, "A", "B"))
    return a


def _reads(n_cells=100, n_genes=300, seed=0) -> ad.AnnData:
    """Full-length-like read counts: molecules amplified 10-100x, deep libraries."""
    rng = np.random.default_rng(seed)
    molecules = rng.poisson(3 * rng.lognormal(0, 1.5, size=n_genes), size=(n_cells, n_genes))
    X = molecules * rng.integers(10, 100, size=(n_cells, n_genes))
    return ad.AnnData(X=sp.csr_matrix(X.astype(np.float32)))


def _preprocess_quietly(adata, config=None, name="data"):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, fit = preprocess(adata, config, name=name)
    return out, fit, [w for w in caught if issubclass(w.category, DataWarning)]


# ---------------------------------------------------------------------------- detection
@pytest.mark.parametrize("name, kind", SHARED_KINDS.items())
def test_detects_every_shared_dataset(name, kind, shared_data_file):
    detected = detect_data_kind(read_dataset(shared_data_file(name)).X)
    print(f"{name}: {detected.describe()}")
    assert detected.kind == kind and detected.source == "detected"
    assert detected.integer_fraction == pytest.approx(0.085 if name == "yan" else 1.0, abs=0.01)


def test_pbmc68k_reduced_as_scanpy_ships_it_and_as_read_dataset_loads_it():
    import scanpy as sc

    bundled = sc.datasets.pbmc68k_reduced()
    scaled = detect_data_kind(bundled.X)  # z-scored: negatives
    assert scaled.kind == "log_normalized" and scaled.min_value < 0
    assert detect_data_kind(bundled.raw.X).kind == "log_normalized"  # log1p, max 6.5
    # read_dataset returns expm1(.raw): library-size-normalised values on a linear scale
    linear = detect_data_kind(read_dataset("pbmc68k_reduced"))
    assert linear.kind == "continuous" and linear.integer_fraction < 0.01


def test_detection_rules_on_synthetic_data():
    assert detect_data_kind(_umi().X).kind == "umi_counts"
    reads = detect_data_kind(_reads().X)
    assert reads.kind == "read_counts" and reads.dispersion > 10 and reads.q99_nonzero > 1000
    rpkm = _reads().X.toarray() / 7.3
    assert detect_data_kind(rpkm).kind == "continuous"
    assert detect_data_kind(synthetic_log_expression(50, 30, 2, seed=0).X).kind == "log_normalized"
    with pytest.raises(InputDataError, match="every value is zero"):
        detect_data_kind(np.zeros((5, 4)))


# ---------------------------------------------------------------------------- defaults on real data
@pytest.mark.parametrize("name", [*SHARED_KINDS, "pbmc68k_reduced"])
def test_automatic_thresholds_on_every_dataset_warn_when_most_is_removed(name, shared_data_file):
    path = "pbmc68k_reduced" if name == "pbmc68k_reduced" else shared_data_file(name)
    adata = read_dataset(path)
    out, fit, caught = _preprocess_quietly(adata, name=name)
    r = out.uns["lshgan_preprocess"]
    print(f"\n{fit.report['data_kind']}: {FilterReport(**fit.report).summary()}")
    cells_half = (r["n_cells_in"] - r["n_cells_out"]) * 2 > r["n_cells_in"]
    genes_half = r["genes_removed_min_cells"] * 2 > r["n_genes_in"]
    assert any("preprocessing removed" in str(w.message) for w in caught) == cells_half
    assert any("gene filter" in str(w.message) for w in caught) == genes_half
    assert not cells_half  # the automatic thresholds keep most cells of every dataset
    assert genes_half == (name == "pollen")  # the paper's own gene filter on read counts
    assert r["data_kind"] == SHARED_KINDS.get(name, "continuous")
    assert out.n_obs == r["n_cells_out"] and out.n_vars == r["n_genes_out"]


def test_worm_neurons_keep_most_cells(shared_data_file):
    out, fit, caught = _preprocess_quietly(read_dataset(shared_data_file("worm_neuron_top2000")))
    assert fit.report["min_genes"] < 10 and fit.report["min_count"] == 0
    assert out.n_obs >= 0.95 * 4186 and out.n_vars >= 1000
    assert not caught


# ---------------------------------------------------------------------------- warnings and errors
def test_warns_when_a_filter_removes_most_cells_or_genes():
    a = _umi(n_cells=100)
    n_expr = np.asarray((a.X > 0).sum(axis=1)).ravel()
    cut = int(np.quantile(n_expr, 0.7))  # about 70% of the cells have at most this many
    with pytest.warns(DataWarning, match=rf"small\.h5ad: preprocessing removed \d+ of 100 cells.*"
                                         rf"min_genes={cut}.*--min-genes"):
        out, _ = preprocess(a, PreprocessConfig(min_genes=cut), name="small.h5ad")
    assert 20 <= out.n_obs < 50
    with pytest.warns(DataWarning, match=r"gene filter removed 43 of 60 genes.*min_count=1.*"
                                         r"min_cells_frac=0\.5"):
        out, _ = preprocess(a, PreprocessConfig(min_count=1, min_cells_frac=0.5), name="small.h5ad")
    assert out.n_vars == 17


def test_too_few_cells_or_genes_left_is_an_error_naming_the_thresholds():
    a = _umi(n_cells=100)
    n_expr = np.asarray((a.X > 0).sum(axis=1)).ravel()
    with pytest.raises(InputDataError, match=r"x\.h5ad: only \d+ of 100 cells have more than "
                                             rf"min_genes={int(np.sort(n_expr)[-5])}.*at least 20.*--min-genes"):
        preprocess(a, PreprocessConfig(min_genes=int(np.sort(n_expr)[-5])), name="x.h5ad")
    with pytest.raises(InputDataError, match=r"only \d+ of 60 genes .*min_count=20.*at least 10.*"
                                             r"--min-count or --min-cells-frac"):
        preprocess(a, PreprocessConfig(min_count=20, min_cells_frac=0.3), name="x.h5ad")
    with pytest.raises(InputDataError, match="12 cells; at least 20"):
        preprocess(_umi(n_cells=12))


def test_scaled_values_are_refused_with_a_pointer_to_layers():
    a = synthetic_log_expression(40, 20, 2, seed=0)
    a.X = a.X - a.X.mean(axis=0)
    with pytest.raises(InputDataError, match="negative values.*--layer"):
        preprocess(a)


# ---------------------------------------------------------------------------- overrides
def test_explicit_thresholds_override_the_kind():
    a = _umi()
    _, auto, _ = _preprocess_quietly(a)
    assert auto.report["auto_thresholds"] == "min_genes,min_count,min_cells_frac"
    assert auto.report["min_count"] == 0 and auto.report["min_cells_frac"] == pytest.approx(0.01)
    _, given, _ = _preprocess_quietly(a, PreprocessConfig(min_genes=3, min_count=1, min_cells_frac="auto"))
    assert (given.report["min_genes"], given.report["min_count"]) == (3, 1.0)
    assert given.report["auto_thresholds"] == "min_cells_frac"
    assert given.config.min_genes == 3 and given.config.data_kind == "umi_counts"
    paper = PreprocessConfig.paper(min_genes=5)
    assert (paper.min_genes, paper.min_count, paper.min_cells_frac) == (5, 5.0, 0.1)


def test_data_kind_override():
    a = _umi()
    _, fit, _ = _preprocess_quietly(a, PreprocessConfig(data_kind="read_counts", min_count=1))
    assert fit.report["data_kind"] == "read_counts" and fit.report["data_kind_source"] == "given"
    assert fit.report["min_cells_frac"] == 0.1  # the read-count default, not the UMI one
    with pytest.raises(ParameterError, match="data_kind must be auto or one of"):
        PreprocessConfig(data_kind="rpkm")
    assert PreprocessConfig(data_kind="auto").data_kind is None and "umi_counts" in KINDS


def test_a_given_kind_that_changes_the_transform_warns():
    """Forcing counts on log values logs them twice (and the reverse skips the log): a
    warning, not an info line; overrides between count kinds only change thresholds."""
    logged = synthetic_log_expression(60, 30, 2, seed=1)
    with pytest.warns(DataWarning, match="'umi_counts' given, but the data look like "
                                         "log_normalized.*normalised and log-transformed"):
        preprocess(logged, PreprocessConfig(data_kind="umi_counts"))
    with pytest.warns(DataWarning, match="'log_normalized' given, but the data look like umi_counts"):
        preprocess(_umi(), PreprocessConfig(data_kind="log_normalized"))
    _, fit, caught = _preprocess_quietly(_umi(), PreprocessConfig(data_kind="read_counts", min_count=1))
    assert fit.report["data_kind_source"] == "given"
    assert not [w for w in caught if "given, but" in str(w.message)]


def test_log_normalized_values_pass_through_and_layers_give_the_counts():
    a = synthetic_log_expression(60, 30, 2, seed=1)
    out, fit, _ = _preprocess_quietly(a)
    assert fit.report["data_kind"] == "log_normalized" and "normalized" not in out.layers
    kept = a[out.obs_names, out.var_names].X
    dense = lambda m: np.asarray(m.toarray() if sp.issparse(m) else m)  # noqa: E731
    # natural log (scanpy's and Seurat's log1p) by default, rescaled to log2(1+x)
    np.testing.assert_allclose(dense(out.X), kept / np.log(2.0), rtol=1e-5)
    assert out.uns["lshgan_preprocess"]["normalization"].startswith("log values kept")
    out2, _, _ = _preprocess_quietly(a, PreprocessConfig(log_base=2))
    np.testing.assert_allclose(dense(out2.X), kept, rtol=1e-6)
    with pytest.raises(ParameterError, match="log_base"):
        PreprocessConfig(log_base=1)
    counts, fit2, _ = _preprocess_quietly(a, PreprocessConfig(layer="counts"))
    assert fit2.report["data_kind"] == "umi_counts" and "normalized" in counts.layers
    assert counts.uns["lshgan_preprocess"]["layer"] == "counts"
    with pytest.raises(InputDataError, match="no layer 'spliced' \\(layers: counts\\)"):
        preprocess(a, PreprocessConfig(layer="spliced"))


# ---------------------------------------------------------------------------- the report
def test_report_lands_in_uns_and_in_the_model_config():
    from lshgan import LSHGAN

    out, fit, _ = _preprocess_quietly(_umi(), name="umi.h5ad")
    rec = out.uns["lshgan_preprocess"]
    for key in ("data_kind", "n_cells_in", "n_genes_in", "cells_removed_min_genes",
                "genes_removed_min_cells", "n_cells_out", "n_genes_out", "min_genes", "min_count",
                "min_cells_frac", "data_kind_evidence"):
        assert key in rec, key
    assert rec["n_cells_in"] - rec["cells_removed_min_genes"] - rec["cells_removed_empty"] == rec["n_cells_out"]
    assert fit.report == {k: rec[k] for k in fit.report}
    assert LSHGAN(out, label_key="cell_type").preprocess_info["data_kind"] == "umi_counts"
    again = Preprocessor.from_dict(fit.to_dict())
    assert again.config == fit.config and again.report == fit.report
    old = Preprocessor.from_dict({"config": {"min_genes": 200, "min_count": 5.0, "min_cells_frac": 0.1,
                                             "target_sum": None, "n_top_genes": None},
                                  "var_names": ["a"], "target_sum": 1e4})
    assert old.config.min_genes == 200 and old.report == {}


def test_detection_and_report_are_logged(caplog):
    with caplog.at_level(logging.INFO, logger="lshgan"):
        _preprocess_quietly(_umi(), name="umi.h5ad")
    text = caplog.text
    assert "umi.h5ad: umi_counts (detected: integers" in text
    assert "umi.h5ad: cells 200 in, 0 removed by min_genes=" in text


def test_cli_prints_kind_and_report_and_takes_the_flags(tmp_path, capsys):
    a = synthetic_log_expression(80, 40, 2, seed=2)
    path = tmp_path / "cells.h5ad"
    a.write_h5ad(path)
    out = tmp_path / "pp.h5ad"
    assert main(["preprocess", str(path), "--label-key", "cell_type", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    info = [line for line in err.splitlines() if line.startswith("info: ")]
    assert len(info) == 2, err
    assert f"{path}: log_normalized (detected" in info[0] and "no normalisation" in info[0]
    assert f"{path}: cells 80 in," in info[1]
    assert ad.read_h5ad(out).uns["lshgan_preprocess"]["data_kind"] == "log_normalized"

    assert main(["preprocess", str(path), "--layer", "counts", "--data-kind", "read_counts",
                 "--min-genes", "3", "--min-count", "1", "-o", str(out), "--force"]) == 0
    err = capsys.readouterr().err
    assert "read_counts (given: the data look like umi_counts" in err
    assert "min_genes=3, min_count=1, min_cells_frac=0.1 (min_cells_frac from the data kind" in err
    rec = ad.read_h5ad(out).uns["lshgan_preprocess"]
    assert rec["layer"] == "counts" and rec["data_kind_source"] == "given"

    assert main(["preprocess", str(path), "--layer", "counts", "--paper-preprocessing",
                 "-o", str(out), "--force"]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "min_genes=1000" in err and "--min-genes" in err

    half = int(np.median(np.asarray((a.layers["counts"] > 0).sum(axis=1)).ravel())) + 1
    assert main(["preprocess", str(path), "--layer", "counts", "--min-genes", str(half),
                 "-o", str(out), "--force"]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("warning: ")], err
    assert f"min_genes={half}" in err


def test_stage_script_null_and_auto_thresholds(tmp_path, capsys):
    """``-S key=${item.key}`` of a null in params.yaml arrives as ``None``: automatic."""
    from lshgan.config import preprocess_config
    from lshgan.mlops import pipeline

    assert pipeline.parse_assignments(["min_genes=None", "min_count=null", "min_cells_frac=auto"]) == {
        "min_genes": None, "min_count": None, "min_cells_frac": "auto"}
    config = preprocess_config({"min_genes": None, "min_count": "auto", "min_cells_frac": "auto",
                                "data_kind": "auto", "layer": None})
    assert config == PreprocessConfig()
