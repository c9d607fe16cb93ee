"""Each experiment of the paper reproduction on a tiny input: shapes, determinism, and the
metric moving the right way; plus the report command end to end on a tiny dataset."""

from __future__ import annotations

import json
from dataclasses import replace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from lshgan.datasets import synthetic_log_expression
from lshgan.paper import QUICK
from lshgan.paper.activa import make_rare, rare_f1, run_activa
from lshgan.paper.augmentation import WITHOUT, cluster_cells, run_gene_selection, selection_ari
from lshgan.paper.clustering import consensus_clustering
from lshgan.paper.config import PAPER_TABLE2, paper_key
from lshgan.paper.data import PreparedData, prepare
from lshgan.paper.realism import GeneratedSets, run_realism
from lshgan.paper.report import fmt, md_table, table1_markdown
from lshgan.paper.selection import METHODS, select_genes
from lshgan.paper.simulated import parabola, run_table1, train_snapshots, two_class_gaussians
from lshgan.preprocess import stratified_split

torch.set_num_threads(1)
TINY = replace(QUICK, seeds=(0,), generators=("splatter", "copy"), rf_trees=10,
               n_selected=20, max_cluster_cells=40, sweep_ratios=(0.5, 1.5),
               sweep_generators=("splatter",), activa_fractions=(1.0, 0.02), activa_seeds=(0,),
               activa_generators=("copy",), activa_n_generated=30,
               activa_trees=20)


@pytest.fixture(scope="module")
def data() -> PreparedData:
    full = synthetic_log_expression(160, 60, 3, seed=2)
    full.obs["cell_type"] = full.obs["cell_type"].astype(str)
    train, test = stratified_split(full, label_key="cell_type", seed=0)
    return PreparedData("synthetic", full, train, test, "cell_type")


# ---------------------------------------------------------------------- gene selection
def _informative(seed=0, n=120, p=40, informative=(3, 7, 11, 20, 27, 33)):
    """Counts where a few genes differ strongly between two groups (the rest is noise).

    Gene means vary (gamma), half of the informative genes are up in each group.
    """
    rng = np.random.default_rng(seed)
    mu = np.tile(rng.gamma(2.0, 5.0, size=p), (n, 1))
    group = np.arange(n) % 2 == 0
    for i, j in enumerate(informative):
        up = group if i % 2 == 0 else ~group
        mu[up, j] *= 8.0
        mu[~up, j] /= 8.0
    return np.log2(1 + rng.poisson(mu)).astype(np.float32), list(informative)


@pytest.mark.parametrize("method", list(METHODS))
def test_selection_finds_the_informative_genes(method):
    X, informative = _informative()
    picked = select_genes(X, method, n=8)
    assert picked.shape == (8,) and np.all(np.diff(picked) > 0)
    assert len(set(informative) & set(picked.tolist())) >= 5
    np.testing.assert_array_equal(picked, select_genes(X, method, n=8))


def test_selection_rejects_unknown_method():
    with pytest.raises(ValueError, match="unknown gene-selection method"):
        select_genes(np.ones((3, 3)), "nope")


def test_m3drop_prefers_excess_dropouts():
    rng = np.random.default_rng(1)
    X = rng.poisson(8.0, size=(200, 30)).astype(float)
    X[:150, 4] = 0  # same mean level in the rest, far more zeros than Michaelis-Menten allows
    X[150:, 4] = rng.poisson(32.0, size=50)
    from lshgan.paper.selection import m3drop_scores

    assert int(np.argmax(m3drop_scores(np.log2(1 + X)))) == 4


# ---------------------------------------------------------------------- clustering
def test_consensus_clustering_separates_clear_groups_deterministically():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 6, size=(3, 20))
    X = np.repeat(centres, 30, axis=0) + rng.normal(size=(90, 20))
    truth = np.repeat([0, 1, 2], 30)
    a = consensus_clustering(X, 3, seed=0)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, a) == pytest.approx(1.0)
    np.testing.assert_array_equal(a, consensus_clustering(X, 3, seed=0))
    noisy = consensus_clustering(X + rng.normal(0, 8, size=X.shape), 3, seed=0)
    assert adjusted_rand_score(truth, noisy) < 1.0  # the score moves with the signal


def test_cluster_cells_caps_and_stratifies(data):
    idx = cluster_cells(data, 60)
    assert len(idx) == 60 and len(set(idx)) == 60
    types = data.full.obs["cell_type"].to_numpy()[idx]
    assert set(types) == set(data.full.obs["cell_type"])
    np.testing.assert_array_equal(cluster_cells(data, 1000), np.arange(data.full.n_obs))


def test_selection_ari_better_with_informative_genes():
    X, informative = _informative(n=80, p=40)
    labels = np.where(np.arange(80) % 2 == 0, "a", "b")
    good = selection_ari(X, None, X, labels, method="fano", n_selected=6, seed=0)
    # "generated" cells that make the noise genes look variable push the informative ones out
    rng = np.random.default_rng(0)
    junk = np.log2(1 + rng.poisson(5.0, size=(400, 40)) * rng.integers(0, 300, size=(400, 40)))
    junk[:, informative] = np.log2(1 + X[:, informative].mean(axis=0))
    bad = selection_ari(X, junk, X, labels, method="fano", n_selected=6, seed=0)
    assert good == pytest.approx(1.0) and bad < good


# ---------------------------------------------------------------------- Table 1 / Figure 2
def test_two_class_gaussians_matches_the_paper_design():
    X, y = two_class_gaussians(100, 300, rho=0.5, seed=0)
    assert X.shape == (100, 300) and (y == 0).sum() == 50
    assert X[y == 0].mean() > 5 and X[y == 1].mean() < -5
    Z = X[y == 0] - X[y == 0].mean(axis=0)
    lag1 = np.mean([np.corrcoef(Z[:, j], Z[:, j + 1])[0, 1] for j in range(299)])
    assert lag1 == pytest.approx(0.5, abs=0.08)
    X2, _ = two_class_gaussians(100, 300, rho=0.5, seed=0)
    np.testing.assert_array_equal(X, X2)


def test_train_snapshots_learn_and_are_reproducible():
    X, _ = two_class_gaussians(60, 10, seed=0)
    a = train_snapshots(X, lsh_k=5, epochs=(0, 150), n_generate=30, seed=0, lr=1e-2)
    b = train_snapshots(X, lsh_k=5, epochs=(0, 150), n_generate=30, seed=0, lr=1e-2)
    assert set(a) == {0, 150} and a[150].shape == (30, 10)
    np.testing.assert_allclose(a[150], b[150])
    gap = {e: abs(np.abs(a[e]).mean() - np.abs(X).mean()) for e in a}
    assert gap[150] < gap[0]  # the generated scale approaches the data's


def test_table1_rows_and_verdict():
    rows = run_table1(epochs=(5, 10), seeds=(0,), ks=(5,), n_samples=40, n_features=8,
                      log=lambda m: None)
    models = {r["model"] for r in rows}
    assert models == {"training samples (copy)", "LSH-GAN k=5", "GAN"}
    assert all(r["wasserstein"] >= 0 for r in rows)
    text = table1_markdown(rows, replace(QUICK, table1_epochs=(5, 10)))
    assert "| LSH-GAN k=5 |" in text and "0.46" in text  # ours beside the paper's


def test_parabola():
    P = parabola(50, seed=0)
    np.testing.assert_allclose(P[:, 1], 10 + P[:, 0] ** 2, rtol=1e-5)
    assert np.abs(P[:, 0]).max() <= 50


# ---------------------------------------------------------------------- Tables 2 and 3
def test_realism_rows_and_copy_memorises(data):
    rows, sets = run_realism(data, TINY, log=lambda m: None)
    by = {r["generator"]: r for r in rows}
    assert set(by) == {"splatter", "copy"}
    assert by["copy"]["dcr"] == 0.0 and by["splatter"]["dcr"] > 0.3
    assert 0.0 <= by["splatter"]["rf_auc"] <= 1.0
    assert sets["copy"][0].like_test.n_obs == data.test.n_obs
    assert sets["copy"][0].augment.n_obs == round(1.5 * data.full.n_vars)


def test_gene_selection_rows(data):
    fake = synthetic_log_expression(120, 60, 3, seed=9)
    fake.var_names = data.full.var_names
    sets = {"fake": {0: GeneratedSets(fake[:10], fake, 0.0)}}
    budget = replace(TINY, sweep_generators=("fake",))
    rows = run_gene_selection(data, sets, budget, log=lambda m: None)
    table = [r for r in rows if r["kind"] == "table"]
    assert {r["generator"] for r in table} == {WITHOUT, "fake"}
    assert {r["method"] for r in table} == set(METHODS)
    assert all(-1 <= r["ari"] <= 1 for r in rows)
    sweep = [r for r in rows if r["kind"] == "sweep"]
    assert {r["n_generated"] for r in sweep} == {30, 90}


# ---------------------------------------------------------------------- ACTIVA
def test_make_rare_keeps_the_fraction_and_at_least_two(data):
    labels = data.train.obs["cell_type"].to_numpy()
    n = int((labels == "type0").sum())
    keep = make_rare(data, "type0", 0.5, seed=0)
    assert (labels[keep] == "type0").sum() == round(0.5 * n)
    assert (labels[keep] != "type0").sum() == (labels != "type0").sum()
    assert (labels[make_rare(data, "type0", 0.001, seed=0)] == "type0").sum() == 2


def test_rare_f1_drops_when_the_type_is_cut(data):
    labels = data.train.obs["cell_type"].to_numpy()
    X, tX = np.asarray(data.train.X), np.asarray(data.test.X)
    ty = data.test.obs["cell_type"].to_numpy()
    full = rare_f1(X, labels, tX, ty, "type1", seed=0, n_trees=50)
    keep = make_rare(data, "type1", 0.02, seed=0)
    cut = rare_f1(X[keep], labels[keep], tX, ty, "type1", seed=0, n_trees=50)
    assert full > cut


def test_run_activa_rows(data):
    rare, rows = run_activa(data, TINY, rare="type1", log=lambda m: None)
    assert rare == "type1"
    assert {r["generator"] for r in rows} == {"no augmentation", "copy"}
    assert {r["fraction"] for r in rows} == {1.0, 0.02}
    assert all(0 <= r["f1"] <= 1 for r in rows)


# ---------------------------------------------------------------------- report
def test_formatting_helpers():
    assert fmt([0.5]) == "0.50"
    assert fmt([0.5, 0.7]) == "0.60 ± 0.14"
    assert fmt([]) == "–"
    assert md_table(["a", "b"], [[1, 2]]).splitlines()[2] == "| 1 | 2 |"
    assert paper_key("klein_subset") == "klein" and paper_key("pbmc_sorted_zheng") is None
    assert PAPER_TABLE2["lshgan"]["pollen"] == 0.58


def _write_counts(path, seed=0):
    rng = np.random.default_rng(seed)
    types = np.repeat(["a", "b", "c"], [50, 40, 30])
    mu = rng.gamma(2.0, 3.0, size=(3, 300))
    counts = rng.poisson(mu[np.searchsorted(["a", "b", "c"], types)] * 4).astype(np.float32)
    adata = ad.AnnData(counts, obs=pd.DataFrame({"cell_type": types},
                                                index=[f"c{i}" for i in range(120)]),
                       var=pd.DataFrame(index=[f"g{j}" for j in range(300)]))
    adata.write_h5ad(path)
    return path


def test_prepare_reads_any_dataset(tmp_path):
    d = prepare(_write_counts(tmp_path / "toy.h5ad"), n_genes=40)
    assert d.name == "toy" and d.full.n_vars == 40
    assert d.train.n_obs + d.test.n_obs == d.full.n_obs
    assert isinstance(d.full.X, np.ndarray)


def test_report_command_end_to_end(tmp_path, monkeypatch):
    from lshgan.paper import __main__ as cli
    from lshgan.paper import config

    monkeypatch.setattr(config, "QUICK", replace(
        TINY, generators=("copy",), sweep_generators=(), table1_epochs=(3,),
        table1_features=6, table1_ks=(5,), fig2_epochs=(0, 2)))
    path = _write_counts(tmp_path / "toy.h5ad")
    out = tmp_path / "report"
    code = cli.main(["--quick", "--datasets", str(path), "--out", str(out), "--only",
                     "table1", "fig2", "table2", "table3", "activa"])
    assert code == 0
    text = (out / "README.md").read_text()
    for heading in ("Table 1", "Figure 2", "Table 2", "Table 3", "ACTIVA"):
        assert heading in text
    assert "AUC paper" in text and "| copy |" in text
    results = json.loads((out / "results.json").read_text())
    assert {r["generator"] for r in results["table2"]} == {"copy"}
    for png in ("table1.png", "figure2.png", "table3_sweep.png", "activa.png"):
        assert (out / png).stat().st_size < 300_000


def test_report_command_rejects_unknown_generator(tmp_path, capsys):
    from lshgan.paper import __main__ as cli

    assert cli.main(["--quick", "--generators", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown generator" in capsys.readouterr().err


@pytest.mark.slow
def test_pictures_on_a_tiny_dataset(data, tmp_path):
    from lshgan.paper.pictures import draw_pictures

    fake = {"copy": data.train[: data.test.n_obs].copy(), "other": data.test.copy()}
    paths = draw_pictures(data, fake, tmp_path, n_markers=2)
    assert len(paths) == 4 and all(p.stat().st_size < 300_000 for p in paths)
