"""MLflow glue: request validation of the served model, the champion decision, tracking,
augmentation, the ``lshgan`` MLOps subcommands, and (slow) ``mlflow run -e train``.

Fast tests call the functions directly on a tiny model (2 epochs on 40 genes); MLflow stores
live in ``tmp_path``, never in the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

for _var, _value in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                     "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1"}.items():
    os.environ.setdefault(_var, _value)

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

pytest.importorskip("mlflow")
from mlflow.exceptions import MlflowException  # noqa: E402

from lshgan import LSHGAN, config, workflow  # noqa: E402
from lshgan.cli import main as lshgan_main  # noqa: E402
from lshgan.errors import GeneMismatchError, InputDataError, ParameterError  # noqa: E402
from lshgan.mlops import pipeline, tracking  # noqa: E402
from lshgan.mlops.augment import allocate, augment, chunk_requests, sample  # noqa: E402
from lshgan.mlops.serving.encoding import frame_to_anndata, genes_sha1  # noqa: E402
from lshgan.mlops.serving.model import LSHGANGenerator  # noqa: E402
from lshgan.mlops.serving.request import max_cells_setting, parse_requests  # noqa: E402
from lshgan.mlops.registry import champion_uri, registered_name, should_promote  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TYPES = ["alpha", "beta", "gamma"]


def tiny_cells(n_cells: int = 90, n_genes: int = 40, seed: int = 0) -> ad.AnnData:
    """Cells on the log2(1+x) scale, three types with their own marker genes."""
    rng = np.random.default_rng(seed)
    types = rng.integers(0, len(TYPES), n_cells)
    means = rng.uniform(0.2, 3.0, (len(TYPES), n_genes))
    X = np.log2(1 + rng.poisson(means[types] * 4)).astype(np.float32)
    obs = pd.DataFrame({"cell_type": pd.Categorical([TYPES[t] for t in types])},
                       index=[f"cell{i}" for i in range(n_cells)])
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"gene{j}" for j in range(n_genes)]))


def train_tiny_model(path: Path, *, conditional: bool = True) -> Path:
    """A 2-epoch LSHGAN with small networks, saved to ``path``."""
    model = LSHGAN(tiny_cells(), label_key="cell_type" if conditional else None,
                   g_hidden=(16,), d_hidden=(16,), noise_dim=8, anchor_dim=4)
    model.train(epochs=2, batch_size=32, progress=False)
    model.save(path, force=True)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return train_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def generator(model_dir) -> LSHGANGenerator:
    g = LSHGANGenerator()
    g.load_context(SimpleNamespace(artifacts={"lshgan_model": str(model_dir)},
                                   model_config={"max_cells": 100}))
    return g


@pytest.fixture
def tracking_dir(tmp_path, monkeypatch) -> Path:
    """An empty SQLite tracking store in tmp_path (artifacts in tmp_path/mlartifacts)."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv(tracking.ARTIFACT_LOCATION_ENV, raising=False)
    yield tmp_path
    # tracking.configure() set MLflow's process-wide URI (and MLFLOW_TRACKING_URI): forget it
    # before monkeypatch restores the environment, so no later test writes to this store.
    mlflow.set_tracking_uri(None)


# ---------------------------------------------------------------------------- request validation
def _error(frame, **kw) -> MlflowException:
    kw = {"cell_types": TYPES, "conditional": True, "max_cells": 100, **kw}
    with pytest.raises(MlflowException) as info:
        parse_requests(pd.DataFrame(frame), **kw)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert info.value.get_http_status_code() == 400
    return info.value


def test_valid_requests_get_defaults():
    reqs = parse_requests(pd.DataFrame({"n_cells": [3, 2], "cell_type": ["beta", None],
                                        "seed": [7, np.nan]}),
                          cell_types=TYPES, conditional=True)
    assert [tuple(r) for r in reqs] == [(3, "beta", 7, "columns", "log"), (2, None, 0, "columns", "log")]
    reqs = parse_requests(pd.DataFrame({"n_cells": [3, 2], "encoding": ["npz", "npz"]}),
                          cell_types=TYPES, conditional=True)
    assert [r.encoding for r in reqs] == ["npz", "npz"]


@pytest.mark.parametrize("frame, words", [
    ({"n_cells": [-5]}, ["n_cells", "positive", "-5"]),
    ({"n_cells": [0]}, ["n_cells", "positive"]),
    ({"n_cells": [10**9]}, ["1000000000", "max_cells=100"]),
    ({"n_cells": [60, 60]}, ["120", "max_cells=100"]),
    ({"n_cells": [5], "cell_type": ["delta"]}, ["unknown cell_type 'delta'", "alpha, beta, gamma"]),
    ({"n_cells": ["five"]}, ["n_cells must be an integer", "'five'"]),
    ({"n_cells": [2.5]}, ["n_cells must be an integer", "2.5"]),
    ({"n_cells": [True]}, ["n_cells must be an integer"]),
    ({"n_cells": [3], "cell_type": [4]}, ["cell_type must be a string"]),
    ({"n_cells": [3], "seed": [-1]}, ["seed must be between 0"]),
    ({"n_cells": [3], "seed": ["x"]}, ["seed must be an integer"]),
    ({"n_cells": [3], "colour": ["red"]}, ["unknown column(s) colour"]),
    ({"cell_type": ["alpha"]}, ["missing column n_cells"]),
    ({"n_cells": []}, ["empty request"]),
    ({"n_cells": [3], "encoding": ["json"]}, ["row 0", "encoding must be one of columns, npz",
                                              "'json'"]),
    ({"n_cells": [3], "encoding": [1]}, ["encoding must be one of"]),
    ({"n_cells": [3, 2], "encoding": ["npz", None]}, ["row 1", "encoding 'columns' differs",
                                                      "'npz'", "separate requests"]),
])
def test_bad_requests_are_400_with_a_message(frame, words):
    message = _error(frame).message
    for word in words:
        assert word in message


def test_unconditional_model_refuses_a_cell_type():
    assert "trained without cell-type conditioning" in _error(
        {"n_cells": [3], "cell_type": ["alpha"]}, conditional=False).message


def test_max_cells_from_config_and_environment(monkeypatch):
    monkeypatch.delenv("LSHGAN_MAX_CELLS", raising=False)
    assert max_cells_setting({"max_cells": 50}) == 50
    assert max_cells_setting(None) == 20_000
    monkeypatch.setenv("LSHGAN_MAX_CELLS", "7")
    assert max_cells_setting({"max_cells": 50}) == 7


def test_predict_returns_genes_then_cell_type_as_float32(generator, model_dir):
    out = generator.predict(None, pd.DataFrame({"n_cells": [4, 3], "cell_type": ["gamma", None],
                                                "seed": [0, 1]}))
    genes = json.loads((model_dir / "var_names.json").read_text())
    assert list(out.columns) == [*genes, "cell_type"]
    assert (out[genes].dtypes == np.float32).all()
    assert len(out) == 7 and list(out["cell_type"][:4]) == ["gamma"] * 4
    cells = frame_to_anndata(out)
    assert list(cells.var_names) == genes and cells.X.dtype == np.float32
    assert cells.obs["synthetic"].all()
    # the JSON form a server answers with turns back into the same cells
    records = json.loads(out.to_json(orient="records"))
    again = frame_to_anndata({"predictions": records})
    np.testing.assert_allclose(again.X, cells.X, rtol=1e-6)
    assert list(again.obs["cell_type"]) == list(cells.obs["cell_type"])


def test_npz_encoding_gives_the_same_cells_as_columns(generator, model_dir):
    genes = json.loads((model_dir / "var_names.json").read_text())
    req = pd.DataFrame({"n_cells": [4, 3], "cell_type": ["gamma", None], "seed": [0, 1]})
    columns = frame_to_anndata(generator.predict(None, req))
    out = generator.predict(None, req.assign(encoding="npz"))
    assert list(out.columns) == ["n_cells", "cell_types", "genes_sha1", "npz_b64"]
    assert list(out["n_cells"]) == [4, 3] and set(out["genes_sha1"]) == {genes_sha1(genes)}
    # what a server answers: JSON records
    answer = json.loads(json.dumps({"predictions": out.to_dict(orient="records")}))
    for form in (out, answer):
        cells = frame_to_anndata(form, genes=genes)
        assert list(cells.var_names) == genes and cells.X.dtype == np.float32
        np.testing.assert_array_equal(cells.X.toarray(), columns.X)
        assert list(cells.obs["cell_type"]) == list(columns.obs["cell_type"])
        assert cells.obs["synthetic"].all()
    with pytest.raises(ValueError, match="pass genes="):
        frame_to_anndata(answer)
    with pytest.raises(ValueError, match="genes_sha1"):
        frame_to_anndata(answer, genes=genes[::-1])
    with pytest.raises(ValueError, match="not the"):
        frame_to_anndata(generator.predict(None, req), genes=genes[::-1])


def test_predict_is_deterministic_and_bounded(generator):
    req = pd.DataFrame({"n_cells": [5], "seed": [3]})
    pd.testing.assert_frame_equal(generator.predict(None, req), generator.predict(None, req))
    with pytest.raises(MlflowException, match="max_cells=100"):
        generator.predict(None, pd.DataFrame({"n_cells": [101]}))


# ---------------------------------------------------------------------------- champion decision
@pytest.mark.parametrize("new, champion, promote", [
    (0.8, None, True),            # no champion yet
    (0.7, 0.9, True),             # better (lower) objective
    (0.9, 0.7, False),            # worse
    (0.7, 0.7, False),            # a tie keeps the champion
    (float("nan"), 0.7, False),   # no valid objective never replaces a champion
    (None, 0.7, False),
    (0.9, float("nan"), True),    # a champion without a valid objective is replaced
])
def test_should_promote(new, champion, promote):
    assert should_promote(new, champion) is promote


def test_copying_training_cells_cannot_become_champion():
    from lshgan.objective import objective

    copy = objective(rf_auc=0.55, dcr=0.0)      # indistinguishable, but memorised
    honest = objective(rf_auc=0.95, dcr=1.0)    # separable, but new cells
    assert not should_promote(copy, honest) and should_promote(honest, copy)


def test_names():
    assert registered_name("../shared/data/pollen.h5ad") == "lshgan-pollen"
    assert champion_uri("pbmc68k_reduced") == "models:/lshgan-pbmc68k_reduced@champion"


# ---------------------------------------------------------------------------- tracking
def test_artifact_location_follows_the_sqlite_store(tmp_path, monkeypatch):
    monkeypatch.delenv(tracking.ARTIFACT_LOCATION_ENV, raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == "sqlite:///mlflow.db"
    assert tracking.artifact_location(f"sqlite:///{tmp_path}/x/mlflow.db") == \
        (tmp_path / "x" / "mlartifacts").as_uri()
    assert tracking.artifact_location("http://tracking.example:5000") is None
    monkeypatch.setenv(tracking.ARTIFACT_LOCATION_ENV, "s3://bucket/lshgan")
    assert tracking.artifact_location("postgresql://u@h/db") == "s3://bucket/lshgan"


def test_evaluation_metrics_add_the_objective():
    result = {"lshgan": {"rf_auc": 0.8, "dcr": 0.5, "reference": False, "wasserstein_genes": float("nan")},
              "references": {"copy": {"rf_auc": 0.55, "dcr": 0.0}}, "n_test": 20}
    m = tracking.evaluation_metrics(result)
    assert m["objective"] == pytest.approx(0.8 + 2 * 0.4)
    assert m["copy.rf_auc"] == 0.55 and m["n_test"] == 20
    assert "wasserstein_genes" not in m and "reference" not in m


def test_dvc_metrics_file_is_short_and_reads_back_the_same():
    full = {"lshgan": {"rf_auc": 0.8, "dcr": 0.5, "n_test": 20, "reference": False},
            "references": {"copy": {"rf_auc": 0.55, "dcr": 0.0, "n_test": 20}}, "n_train": 80}
    short = workflow.summary_metrics(full)
    assert set(short) == {"objective", "rf_auc", "dcr", "references"}
    assert short["references"]["copy"]["objective"] == pytest.approx(2.35)
    from_short, from_full = tracking.evaluation_metrics(short), tracking.evaluation_metrics(full)
    for key in ("objective", "rf_auc", "dcr", "copy.rf_auc", "copy.dcr"):
        assert from_short[key] == pytest.approx(from_full[key])


def test_real_vs_real_never_gets_an_objective(tmp_path):
    """Its DCR is 0 by construction: its objective would be a meaningless copying penalty."""
    full = {"lshgan": {"rf_auc": 0.8, "dcr": 1.0, "recall": 0.7, "substate_coverage": 0.9},
            "references": {"copy": {"rf_auc": 0.55, "dcr": 0.0},
                           "real-vs-real": {"rf_auc": 0.5, "dcr": 0.0, "recall": 0.9,
                                            "substate_coverage": 1.0}}}
    short = workflow.summary_metrics(full)
    assert short["recall"] == 0.7 and short["substate_coverage"] == 0.9
    assert "objective" not in short["references"]["real-vs-real"]
    assert short["references"]["real-vs-real"]["recall"] == 0.9
    for result in (full, short):
        m = tracking.evaluation_metrics(result)
        assert m["objective"] == pytest.approx(0.8) and "real-vs-real.objective" not in m
    (tmp_path / "yan").mkdir()
    (tmp_path / "yan" / "metrics.json").write_text(json.dumps(short))
    rows = pipeline.summarise(tmp_path, tmp_path / "summary.json")
    assert rows["yan"]["real-vs-real_rf_auc"] == 0.5 and rows["yan"]["recall"] == 0.7
    assert not any(k.startswith("real-vs-real_") and k.endswith(("objective", "dcr"))
                   for k in rows["yan"])


def test_a_training_run_records_params_losses_and_metrics(tracking_dir, model_dir):
    from mlflow import MlflowClient

    model = LSHGAN.load(model_dir)
    with tracking.start_run("tiny") as run:
        tracking.log_params(tracking.run_params(model, dataset="tiny", dataset_hash="abc123",
                                                n_train_cells=90))
        tracking.log_history(model.history)
        tracking.log_metrics({"objective": 1.2})
    client = MlflowClient(tracking_uri=tracking.tracking_uri())
    data = client.get_run(run.info.run_id).data
    for key, value in {"k": "5", "t": "1", "epochs": "2", "seed": "0", "dataset": "tiny",
                       "dataset_hash": "abc123", "g_hidden": "16", "n_train_cells": "90"}.items():
        assert data.params[key] == value
    assert [m.step for m in client.get_metric_history(run.info.run_id, "d_loss")] == [1, 2]
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == "lshgan-tiny"
    assert exp.artifact_location == (tracking_dir / "mlartifacts").as_uri()


def test_params_mlflow_run_logged_first_are_kept_and_ours_go_beside_them(tracking_dir):
    """``mlflow run -P dataset=path/x.h5ad`` logs the path as ``dataset`` before lshgan logs
    the dataset's name: the run must not fail (MLflow refuses to change a parameter)."""
    from mlflow import MlflowClient

    with tracking.start_run("tiny") as run:
        MlflowClient().log_param(run.info.run_id, "dataset", "/data/tiny.h5ad")
        MlflowClient().log_param(run.info.run_id, "k", "5")
        tracking.log_params({"dataset": "tiny", "k": 5, "t": 1})
    params = MlflowClient(tracking_uri=tracking.tracking_uri()).get_run(run.info.run_id).data.params
    assert params["dataset"] == "/data/tiny.h5ad" and params["lshgan.dataset"] == "tiny"
    assert params["k"] == "5" and "lshgan.k" not in params and params["t"] == "1"


# ---------------------------------------------------------------------------- augmentation
def test_allocate_sums_exactly():
    alloc = allocate(7, pd.Series({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}))
    assert alloc.sum() == 7 and set(alloc) <= {2, 3}


def test_chunks_stay_under_the_bound(monkeypatch):
    import lshgan.mlops.augment as aug

    monkeypatch.setattr(aug, "CHUNK_CELLS", 10)
    chunks = list(chunk_requests(pd.DataFrame({"n_cells": [25, 4], "cell_type": ["a", "b"],
                                               "seed": [0, 1]})))
    assert [int(c["n_cells"].sum()) for c in chunks] == [10, 10, 9]
    seeds = pd.concat(chunks)["seed"].tolist()
    assert len(set(seeds)) == len(seeds)  # pieces of one row differ


def test_augment_reaches_the_ratio_in_type_proportions(model_dir):
    real = tiny_cells(n_cells=30, seed=1)
    real = real[:, real.var_names[::-1]].copy()  # other gene order than the model's
    out = augment(model_dir, real, ratio=1.5, seed=0)
    assert out.n_obs == 60 == int(np.ceil(1.5 * real.n_vars))
    assert list(out.var_names) == list(real.var_names)
    synth = out[out.obs["synthetic"]]
    assert synth.n_obs == 30 and not out.obs["synthetic"][:30].any()
    want = allocate(30, real.obs["cell_type"].value_counts(normalize=True))
    assert synth.obs["cell_type"].value_counts().reindex(want.index).tolist() == want.tolist()
    assert out.uns["lshgan_augment"]["n_generated"] == 30
    assert real.n_obs == 30  # input untouched


def test_augment_with_enough_cells_adds_nothing(model_dir):
    real = tiny_cells(n_cells=70)
    out = augment(model_dir, real, ratio=1.5)
    assert out.n_obs == 70 and not out.obs["synthetic"].any()


def test_augment_refuses_other_genes_and_raw_counts(model_dir):
    real = tiny_cells(n_cells=20)
    real.var_names = [f"other{j}" for j in range(real.n_vars)]
    with pytest.raises(GeneMismatchError):
        augment(model_dir, real)
    counts = tiny_cells(n_cells=20)
    counts.X = counts.X * 100
    with pytest.raises(InputDataError, match="log2\\(1\\+x\\) scale"):
        augment(model_dir, counts)
    with pytest.raises(ParameterError, match="not a model folder"):
        augment("no/such/model", real)
    with pytest.raises(ParameterError, match="cannot reach the server"):
        augment("http://127.0.0.1:9", tiny_cells(n_cells=20))  # nothing listens on port 9
    from lshgan.mlops.augment import EndpointGenerator

    with pytest.raises(ParameterError, match="encoding must be one of columns, npz"):
        EndpointGenerator("http://127.0.0.1:9", encoding="json")


def test_sample_from_a_folder(model_dir):
    cells = sample(model_dir, 12, cell_type="beta", seed=2)
    assert cells.n_obs == 12 and set(cells.obs["cell_type"]) == {"beta"}


def test_requests_that_cannot_fit_in_memory_are_refused_before_any_work(model_dir):
    """A typo such as ``-n 100000000`` (or a huge ratio) is one clear error, not minutes of
    generation and a machine out of memory."""
    import psutil

    genes = len(LSHGAN.load(model_dir).var_names)
    too_many = int(psutil.virtual_memory().total // (4 * genes)) + 1  # more than all the RAM
    with pytest.raises(ParameterError, match=r"cells x .* genes need about .* GiB.*at most"):
        sample(model_dir, too_many)
    with pytest.raises(ParameterError, match=r"augment to 1e\+12 x .* genes: .* at most"):
        augment(model_dir, tiny_cells(n_cells=20), ratio=1e12)


def test_cli_augment_and_sample(model_dir, tmp_path, capsys):
    real_path = tmp_path / "real.h5ad"
    tiny_cells(n_cells=20).write_h5ad(real_path)
    out = tmp_path / "augmented.h5ad"
    assert lshgan_main(["augment", "--model", str(model_dir), "--input", str(real_path),
                        "--ratio", "1.0", "--output", str(out)]) == 0
    assert ad.read_h5ad(out).n_obs == 40
    assert lshgan_main(["augment", "--model", str(model_dir), "--input", str(real_path),
                        "--output", str(out)]) == 2  # exists, no --force
    assert "already exists" in capsys.readouterr().err
    assert lshgan_main(["sample", "--model", str(model_dir), "-n", "5", "--cell-type", "nope",
                        "-o", str(tmp_path / "s.h5ad")]) == 2
    assert "unknown cell_type 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------------------- parameters
def test_params_yaml_builds_every_config():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    config.preprocess_config(params["preprocess"])
    model, train = config.train_configs(params["train"])
    assert (model.k, model.t, train.epochs) == (params["train"]["k"], params["train"]["t"],
                                                params["train"]["epochs"])
    assert train.lr_g == train.lr_d == params["train"]["lr"]


def test_train_section_accepts_what_tune_writes():
    model, train = config.train_configs({"k": 3, "width": 32, "depth": 3, "lr": 1e-3,
                                         "epochs": 4, "paper": False})
    assert model.g_hidden == (32, 32, 32) and train.lr_d == 1e-3
    with pytest.raises(ParameterError, match="unknown key"):
        config.train_configs({"epochz": 3})


def test_mlproject_defaults_agree_with_params_yaml():
    spec = yaml.safe_load((REPO / "MLproject").read_text())
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    entries = spec["entry_points"]
    assert set(entries) >= {"main", "train", "tune", "generate", "evaluate"}
    for entry in ("main", "train"):
        p = entries[entry]["parameters"]
        for key in ("epochs", "k", "t", "seed"):
            assert float(p[key]["default"]) == float(params["train"][key]), (entry, key)
        assert p["dataset"]["default"] == params["dataset"]["source"]
        assert all("type" in v for v in p.values())
    assert float(entries["train"]["parameters"]["lr"]["default"]) == params["train"]["lr"]


# ---------------------------------------------------------------------------- mlflow run (slow)
@pytest.mark.slow
def test_mlflow_run_train_entry_point_logs_a_run(tmp_path):
    """``mlflow run . --env-manager local -e train -P dataset=... -P epochs=...``, for real."""
    from mlflow import MlflowClient

    project = tmp_path / "project"
    project.mkdir()
    for name in ("MLproject", "python_env.yaml"):
        shutil.copy(REPO / name, project / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["evaluate"]["references"] = False  # the references are not what this test checks
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    env.pop("MLFLOW_RUN_ID", None)
    # the experiment created by lshgan's tracking keeps artifacts next to the store
    subprocess.run([sys.executable, "-c", "from lshgan.mlops import tracking; "
                    "tracking.configure('lshgan-pbmc68k_reduced')"], env=env, check=True, cwd=tmp_path)
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    # a file path, as users give it (the README's example): MLflow logs it as `dataset`
    data = tmp_path / "pbmc68k_reduced.h5ad"
    subprocess.run([sys.executable, "-c", "import lshgan; lshgan.read_dataset('pbmc68k_reduced')"
                    f".write_h5ad({str(data)!r})"], check=True)
    proc = subprocess.run(
        [str(mlflow_cli), "run", str(project), "--env-manager", "local", "-e", "train",
         "--experiment-name", "lshgan-pbmc68k_reduced",
         "-P", f"dataset={data}", "-P", "epochs=2"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("lshgan-pbmc68k_reduced")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "2" and run.data.params["k"] == "5"
    assert run.data.params["dataset"] == str(data)
    assert run.data.params["lshgan.dataset"] == "pbmc68k_reduced"
    assert len(run.data.params["dataset_hash"]) == 16
    assert {"objective", "rf_auc", "dcr"} <= set(run.data.metrics)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "g_loss")] == [1, 2]
    plots = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"losses.png", "umap.png"} <= plots
    models = client.search_logged_models([exp.experiment_id])
    assert len(models) == 1 and models[0].source_run_id == run.info.run_id
    assert (tmp_path / "mlartifacts").is_dir()
