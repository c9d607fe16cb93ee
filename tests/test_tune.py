"""`lshgan tune`: Optuna studies with pruning, resumption, MLflow nesting and DVC params.

Fast tests run tiny studies (2-4 epochs, a small forest) in-process on a journal or SQLite
file in ``tmp_path``.  The slow test starts a real PostgreSQL on loopback (``tests/pg.py``)
and runs two ``lshgan tune`` worker processes on one study.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

from lshgan.errors import ParameterError
from lshgan.io import write_h5ad
from lshgan.mlops.tuning.cli import _integer, main
from lshgan.mlops.tuning.search_space import SearchSpace
from lshgan.mlops.tuning.storage import open_storage, redact, state_counts
from lshgan.mlops.tuning.study import best_train_params, tune, write_best_params
from lshgan.mlops.tuning.tracking import DEFAULT_EXPERIMENT
from lshgan.preprocess import PreprocessConfig, preprocess, stratified_split

TINY_SPACE = {
    "params": {
        "k": {"type": "int", "low": 2, "high": 3},
        "epochs": {"type": "int", "low": 2, "high": 3},
        "lr": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True},
        "width": {"type": "categorical", "choices": [16, 32]},
    },
    "fixed": {"depth": 2, "batch_size": 32, "n_critic": 1},
    "pruner": {"name": "MedianPruner", "n_startup_trials": 1, "n_warmup_steps": 0},
    "sampler": {"n_startup_trials": 2},
    "report_every": 1,
    "scoring": {"n_estimators": 20, "n_splits": 3, "quick_n_estimators": 10, "quick_n_splits": 2},
}


@pytest.fixture(scope="module")
def tracking_db(tmp_path_factory) -> Path:
    """One MLflow store for the module (creating its tables takes seconds); tests use
    their own experiments."""
    return tmp_path_factory.mktemp("mlflow") / "mlflow.db"


@pytest.fixture(autouse=True)
def _offline_tracking(tmp_path, monkeypatch, tracking_db):
    """Telemetry off; MLflow in a temporary store; one torch thread (tiny nets, shared cores)."""
    import torch

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tracking_db}")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic_counts(n_cells: int = 240, n_genes: int = 60, n_types: int = 3, seed: int = 0) -> ad.AnnData:
    """Poisson counts with a per-type mean profile (a few hundred cells, ~60 genes)."""
    rng = np.random.default_rng(seed)
    types = np.repeat(np.arange(n_types), n_cells // n_types)
    profile = rng.gamma(2.0, 2.0, size=(n_types, n_genes))
    X = rng.poisson(3 * profile[types]).astype(np.float32)
    obs = pd.DataFrame({"cell_type": [f"type{t}" for t in types]},
                       index=[f"cell{i}" for i in range(len(types))])
    return ad.AnnData(sp.csr_matrix(X), obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(n_genes)]))


@pytest.fixture(scope="module")
def train_cells() -> ad.AnnData:
    """Preprocessed training cells, as `lshgan split --train` writes them."""
    pp, _ = preprocess(synthetic_counts(), PreprocessConfig(min_genes=5, min_count=1, min_cells_frac=0.1))
    train, _ = stratified_split(pp, label_key="cell_type", seed=0)
    return train


def space(**changes) -> SearchSpace:
    return SearchSpace(**{**TINY_SPACE, **changes})


def mlflow_runs(experiment: str) -> pd.DataFrame:
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return mlflow.search_runs(experiment_names=[experiment])


def states(study) -> dict[str, int]:
    return {k: v for k, v in state_counts(study).items() if v}


# ---------------------------------------------------------------------------- search space
def test_default_search_space_is_data_and_maps_to_configs():
    s = SearchSpace.from_yaml()  # conf/search_space.yaml of the project
    assert {"k", "t", "epochs", "lr", "width"} <= set(s.params)
    model, train = s.configs({"k": 7, "t": 2, "epochs": 50, "lr": 3e-4, "width": 64}, seed=5)
    assert (model.k, model.t, model.g_hidden, model.d_hidden) == (7, 2, (64, 64), (64, 64))
    assert (train.epochs, train.lr_g, train.lr_d, train.seed) == (50, 3e-4, 3e-4, 5)
    assert s.make_pruner().__class__.__name__ == "MedianPruner"


@pytest.mark.parametrize("bad, match", [
    ({"params": {"kk": {"type": "int", "low": 1, "high": 2}}}, "unknown name 'kk'"),
    ({"params": {"k": {"type": "int", "low": 5, "high": 2}}}, "low <= high"),
    ({"params": {"k": {"type": "gaussian"}}}, "type int, float or categorical"),
    ({"params": {"seed": {"type": "int", "low": 1, "high": 2}}}, "unknown name 'seed'"),
    ({"report_every": 0}, "report_every"),
    ({"scoring": {"trees": 3}}, "unknown scoring keys"),
])
def test_bad_search_space_is_refused(bad, match):
    with pytest.raises(ParameterError, match=match):
        space(**bad)


def test_unknown_pruner_is_refused():
    with pytest.raises(ParameterError, match="not a class of optuna.pruners"):
        space(pruner={"name": "os"}).make_pruner()


def test_storage_urls(tmp_path):
    import optuna

    assert isinstance(open_storage(str(tmp_path / "s.log")), optuna.storages.JournalStorage)
    assert isinstance(open_storage(f"journal:{tmp_path / 'x'}"), optuna.storages.JournalStorage)
    assert isinstance(open_storage(str(tmp_path / "s.db")), optuna.storages.RDBStorage)
    with pytest.raises(ParameterError, match="use a database URL"):
        open_storage("somewhere")
    assert redact("postgresql+psycopg2://u:secret@h:5432/db") == "postgresql+psycopg2://u:***@h:5432/db"


# ---------------------------------------------------------------------------- studies
def test_study_writes_best_params_logs_nested_runs_and_resumes(train_cells, tmp_path):
    storage = str(tmp_path / "study.log")  # a journal file
    out = tmp_path / "best_params.yaml"
    t0 = time.perf_counter()
    study = tune(train_cells, label_key="cell_type", n_trials=2, study_name="s", storage=storage,
                   search_space=space(), device="cpu", seed=0, params_out=out, experiment="e-study",
                   quiet=True)
    seconds = time.perf_counter() - t0
    assert len(study.trials) == 2 and states(study) == {"COMPLETE": 2}, states(study)
    print(f"2 trials in {seconds:.1f} s ({2 / seconds:.2f} trials/s)")

    # the params file: the best trial's setting as the train section, for DVC
    written = yaml.safe_load(out.read_text())
    best = study.best_trial
    assert set(written) == {"train"}
    train = written["train"]
    assert train["k"] == best.params["k"] and train["epochs"] == best.params["epochs"]
    assert train["lr"] == pytest.approx(best.params["lr"])
    assert train["g_hidden"] == train["d_hidden"] == [best.params["width"]] * 2
    assert train["batch_size"] == 32 and "width" not in train
    assert best.user_attrs["rf_auc"] >= 0 and best.user_attrs["dcr"] >= 0

    # scores come from the validation split carved out of the training cells
    assert best.intermediate_values, "no intermediate validation score was reported"
    assert set(best.intermediate_values) <= set(range(1, best.params["epochs"]))

    # resume: the same study gets more trials, under the same MLflow parent run
    study2 = tune(train_cells, label_key="cell_type", n_trials=1, study_name="s", storage=storage,
                    search_space=space(), device="cpu", seed=0, params_out=out, experiment="e-study",
                    quiet=True)
    assert [t.number for t in study2.trials] == [0, 1, 2]

    runs = mlflow_runs("e-study")
    parents = runs[runs["tags.lshgan.role"] == "study"]
    children = runs[runs["tags.lshgan.role"] == "trial"]
    assert len(parents) == 1 and len(children) == 3
    assert set(children["tags.mlflow.parentRunId"]) == {parents.run_id.iloc[0]}
    assert sorted(children["tags.optuna.trial_number"].astype(int)) == [0, 1, 2]
    status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}  # the resumed trial may be pruned
    assert list(children["status"]) == [status[x] for x in children["tags.optuna.state"]]
    assert {"params.k", "params.lr", "params.g_hidden", "metrics.objective", "metrics.rf_auc",
            "metrics.dcr", "metrics.d_loss", "metrics.val_objective"} <= set(runs.columns)
    assert parents["metrics.n_complete"].iloc[0] + parents["metrics.n_pruned"].iloc[0] == 3
    assert {t.user_attrs["mlflow_run_id"] for t in study2.trials} == set(children.run_id)


def test_pruning_is_wired_to_intermediate_validation_scores(train_cells, tmp_path):
    # objective >= 0 always, so a threshold of 0 prunes at the first report
    aggressive = space(pruner={"name": "ThresholdPruner", "upper": 0.0},
                       params={**TINY_SPACE["params"], "epochs": {"type": "int", "low": 3, "high": 3}})
    study = tune(train_cells, label_key="cell_type", n_trials=2, study_name="p",
                   storage=f"sqlite:///{tmp_path / 'optuna.db'}", search_space=aggressive,
                   device="cpu", params_out=None, experiment="e-pruned", quiet=True)
    assert states(study) == {"PRUNED": 2}
    assert all(list(t.intermediate_values) == [1] for t in study.trials)
    runs = mlflow_runs("e-pruned")
    trials = runs[runs["tags.lshgan.role"] == "trial"]
    assert set(trials["tags.optuna.state"]) == {"PRUNED"} and set(trials["status"]) == {"KILLED"}
    with pytest.raises(ParameterError, match="no completed trial"):
        write_best_params(study, tmp_path / "none.yaml")


def test_median_pruner_prunes_a_worse_trial(train_cells, tmp_path):
    """The default pruner, MedianPruner, against a finished trial that is hard to beat."""
    import optuna

    storage = str(tmp_path / "m.log")
    study = tune(train_cells, label_key="cell_type", n_trials=0, study_name="m", storage=storage,
                   search_space=space(), experiment=None, quiet=True)
    fixed = optuna.trial.FixedTrial({"k": 2, "epochs": 3, "lr": 1e-3, "width": 16})
    space().suggest(fixed)
    study.add_trial(optuna.trial.create_trial(params=fixed.params, distributions=fixed.distributions,
                                              value=0.0, intermediate_values={1: 0.0, 2: 0.0}))
    study = tune(train_cells, label_key="cell_type", n_trials=1, study_name="m", storage=storage,
                   search_space=space(), device="cpu", experiment=None, quiet=True)
    assert study.trials[-1].state == optuna.trial.TrialState.PRUNED
    assert list(study.trials[-1].intermediate_values) == [1]


def test_a_worker_with_other_data_or_seed_cannot_join(train_cells, tmp_path):
    storage = str(tmp_path / "j.log")
    tune(train_cells, label_key="cell_type", n_trials=0, study_name="j", storage=storage,
           search_space=space(), experiment=None, quiet=True)
    with pytest.raises(ParameterError, match="created with seed=0"):
        tune(train_cells, label_key="cell_type", n_trials=0, study_name="j", storage=storage,
               search_space=space(), seed=1, experiment=None, quiet=True)
    with pytest.raises(ParameterError, match="created with dataset_hash"):
        tune(train_cells[:100].copy(), label_key="cell_type", n_trials=0, study_name="j",
               storage=storage, search_space=space(), experiment=None, quiet=True)


def test_cross_validated_trials_score_the_mean_over_folds(train_cells, tmp_path):
    """--folds 2: one model per fold, the trial's value is the mean of the fold objectives."""
    storage = str(tmp_path / "cv.log")
    study = tune(train_cells, label_key="cell_type", n_trials=1, study_name="cv", storage=storage,
                 search_space=space(), device="cpu", folds=2, experiment="e-folds", quiet=True)
    (trial,) = study.trials
    assert states(study) == {"COMPLETE": 1}, states(study)
    attrs = trial.user_attrs
    assert len(attrs["fold_objective"]) == len(attrs["fold_rf_auc"]) == len(attrs["fold_dcr"]) == 2
    assert trial.value == pytest.approx(np.mean(attrs["fold_objective"]))
    assert attrs["rf_auc"] == pytest.approx(np.mean(attrs["fold_rf_auc"]))
    assert attrs["dcr"] == pytest.approx(np.mean(attrs["fold_dcr"]))
    assert attrs["objective_sd"] == pytest.approx(np.std(attrs["fold_objective"], ddof=1))
    # only the first fold reports to the pruner, at its epochs
    assert trial.intermediate_values
    assert set(trial.intermediate_values) <= set(range(1, trial.params["epochs"]))
    assert study.user_attrs["lshgan"]["folds"] == 2 and study.user_attrs["lshgan"]["val_size"] is None
    runs = mlflow_runs("e-folds")
    (run,) = runs[runs["tags.lshgan.role"] == "trial"].to_dict("records")
    assert run["metrics.objective"] == pytest.approx(trial.value)
    assert [run[f"metrics.fold{i}_objective"] for i in range(2)] == pytest.approx(attrs["fold_objective"])

    # workers must agree on the folds; with folds, val_size is not used
    with pytest.raises(ParameterError, match="created with folds=2, this worker has 3"):
        tune(train_cells, label_key="cell_type", n_trials=0, study_name="cv", storage=storage,
             search_space=space(), folds=3, experiment=None, quiet=True)
    with pytest.raises(ParameterError, match="created with folds=2, this worker has 1"):
        tune(train_cells, label_key="cell_type", n_trials=0, study_name="cv", storage=storage,
             search_space=space(), experiment=None, quiet=True)
    with pytest.raises(ParameterError, match="val_size=0.3 is not used with folds=2"):
        tune(train_cells, label_key="cell_type", n_trials=0, study_name="cv", storage=storage,
             search_space=space(), folds=2, val_size=0.3, experiment=None, quiet=True)


def test_a_study_from_before_folds_resumes_as_one_split(train_cells, tmp_path):
    """Studies created before --folds have no 'folds' attribute: they count as folds=1."""
    storage = str(tmp_path / "old.log")
    study = tune(train_cells, label_key="cell_type", n_trials=0, study_name="old", storage=storage,
                 search_space=space(), experiment=None, quiet=True)
    old = {k: v for k, v in study.user_attrs["lshgan"].items() if k != "folds"}
    study.set_user_attr("lshgan", old)
    tune(train_cells, label_key="cell_type", n_trials=0, study_name="old", storage=storage,
         search_space=space(), val_size=0.2, experiment=None, quiet=True)
    with pytest.raises(ParameterError, match="created with folds=1, this worker has 2"):
        tune(train_cells, label_key="cell_type", n_trials=0, study_name="old", storage=storage,
             search_space=space(), folds=2, experiment=None, quiet=True)


def test_command_line_refuses_test_cells_and_raw_data(train_cells, tmp_path, capsys):
    test_cells = train_cells.copy()
    test_cells.obs["split"] = "test"
    write_h5ad(test_cells, tmp_path / "test.h5ad")
    assert main([str(tmp_path / "test.h5ad"), "--label-key", "cell_type", "--no-mlflow"]) == 2
    assert "holds test cells" in capsys.readouterr().err
    write_h5ad(synthetic_counts(), tmp_path / "raw.h5ad")
    assert main([str(tmp_path / "raw.h5ad"), "--label-key", "cell_type", "--no-mlflow"]) == 2
    assert "not preprocessed" in capsys.readouterr().err


def test_command_line_tiny_study(train_cells, tmp_path, capsys):
    """Trials start from params.yaml's train section; the params file is that section, tuned."""
    import optuna

    write_h5ad(train_cells, tmp_path / "train.h5ad")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"train": {"k": 5, "noise_dim": 8, "loss": "hinge", "g_hidden": [99, 99], "device": "cpu"}}))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(TINY_SPACE))
    args = [str(tmp_path / "train.h5ad"), "--label-key", "cell_type", "--study-name", "cli",
            "--storage", f"sqlite:///{tmp_path / 'optuna.db'}", "--search-space",
            str(tmp_path / "space.yaml"), "--params-out", str(tmp_path / "p.yaml"), "--quiet",
            "--experiment", "e-cli"]
    assert main([*args, "--n-trials", "1", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "1 trials (1 complete)" in err and "dvc exp run " in err and "-S 'train.k=" in err
    # --n-trials 0 only exports the best parameters of the study so far
    (tmp_path / "p.yaml").unlink()
    assert main([*args, "--n-trials", "0"]) == 0
    train = yaml.safe_load((tmp_path / "p.yaml").read_text())["train"]
    best = best_train_params(optuna.load_study(study_name="cli", storage=f"sqlite:///{tmp_path / 'optuna.db'}"))[1]
    assert train["k"] == best.params["k"] and train["g_hidden"] == [best.params["width"]] * 2
    assert (train["noise_dim"], train["loss"], train["seed"]) == (8, "hinge", 0)
    assert "device" not in train
    # --folds reaches the study: a worker with other folds is refused, as is --val-size with it
    capsys.readouterr()
    assert main([*args, "--n-trials", "0", "--folds", "2"]) == 2
    assert "created with folds=1, this worker has 2" in capsys.readouterr().err
    assert main([*args, "--n-trials", "0", "--folds", "2", "--val-size", "0.3"]) == 2
    assert "val_size=0.3 is not used with folds=2" in capsys.readouterr().err


def test_inside_mlflow_run_trials_nest_under_its_run(train_cells, tmp_path, monkeypatch):
    """`mlflow run . -e tune` sets MLFLOW_RUN_ID: that run is the study's parent."""
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    client = mlflow.MlflowClient()
    outer = client.create_run(client.create_experiment("e-mlproject")).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", outer)
    study = tune(train_cells, label_key="cell_type", n_trials=1, study_name="r",
                   storage=str(tmp_path / "r.log"), search_space=space(), device="cpu",
                   experiment="ignored", quiet=True)
    child = client.get_run(study.trials[0].user_attrs["mlflow_run_id"])
    assert child.data.tags["mlflow.parentRunId"] == outer
    assert child.info.experiment_id == client.get_run(outer).info.experiment_id
    assert client.get_run(outer).info.status == "RUNNING"  # `mlflow run` ends it


def test_integers_written_as_floats_are_accepted():
    assert _integer("20.0") == 20 and _integer("3") == 3
    with pytest.raises(Exception, match="expected an integer"):
        _integer("2.5")


# ---------------------------------------------------------------------------- distributed
@pytest.mark.slow
def test_two_workers_share_one_study_on_postgresql(train_cells, tmp_path):
    """Two `lshgan tune` processes, one study in a real PostgreSQL, MLflow runs nested."""
    import mlflow
    import optuna

    from pg import postgres_server

    n_trials = 3
    write_h5ad(train_cells, tmp_path / "train.h5ad")
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(TINY_SPACE))
    with postgres_server() as server:
        storage = server.create_database("optuna")
        tracking = server.create_database("mlflow")
        # a team's tracking database exists before its workers start: create its tables once
        mlflow.MlflowClient(tracking).search_experiments()
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent.parent / "src"),
                                                           os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "lshgan.cli", "tune", str(tmp_path / "train.h5ad"),
               "--label-key", "cell_type", "--n-trials", str(n_trials), "--study-name", "shared",
               "--storage", storage, "--search-space", str(tmp_path / "space.yaml"),
               "--device", "auto", "--seed", "0", "--threads", "1"]
        t0 = time.perf_counter()
        workers = [subprocess.Popen([*cmd, "--sampler-seed", str(i), "--params-out",
                                     str(tmp_path / f"best{i}.yaml")], env=env, cwd=tmp_path,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                   for i in range(2)]
        outputs = [w.communicate(timeout=900)[0] for w in workers]
        seconds = time.perf_counter() - t0
        for w, out in zip(workers, outputs):
            assert w.returncode == 0, out[-3000:]

        study = optuna.load_study(study_name="shared", storage=storage)
        trials = study.get_trials()
        print(f"two workers, {len(trials)} trials on PostgreSQL in {seconds:.1f} s: "
              f"{states(study)}")
        assert len(trials) == 2 * n_trials
        assert sorted(t.number for t in trials) == list(range(2 * n_trials))
        assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
                   for t in trials), states(study)
        by_worker = pd.Series([t.user_attrs["worker"] for t in trials]).value_counts()
        assert sorted(by_worker) == [n_trials, n_trials], by_worker

        mlflow.set_tracking_uri(tracking)
        runs = mlflow.search_runs(experiment_names=[DEFAULT_EXPERIMENT])
        parents = runs[runs["tags.lshgan.role"] == "study"]
        children = runs[runs["tags.lshgan.role"] == "trial"]
        assert len(parents) == 1, parents[["run_id", "tags.mlflow.runName"]]
        assert len(children) == 2 * n_trials
        assert set(children["tags.mlflow.parentRunId"]) == {parents.run_id.iloc[0]}
        assert set(children.run_id) == {t.user_attrs["mlflow_run_id"] for t in trials}
        assert {t.number for t in trials} == set(children["tags.optuna.trial_number"].astype(int))
        for i in range(2):
            assert "train" in yaml.safe_load((tmp_path / f"best{i}.yaml").read_text())
