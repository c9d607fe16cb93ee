"""The DVC pipeline: its definition (fast), and ``dvc repro`` on a fresh copy of the project (slow).

The slow tests copy the project's files (what ``git ls-files`` lists plus untracked files
that are not ignored) into ``tmp_path``, make it a git repository, and run the real
commands there: ``dvc repro``, ``dvc status``, ``dvc metrics show``, ``dvc plots show
--json``, ``dvc params diff``, ``dvc exp run -S train.epochs=...`` and one dataset of the
all-datasets pipeline.  The MLflow store is the embedded default, ``sqlite:///mlflow.db`` in
the copy.  Training is shortened (a few epochs) so that CI stays fast.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

for _var, _value in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                     "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1"}.items():
    os.environ.setdefault(_var, _value)

import pytest  # noqa: E402
import yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
STAGES = ["ingest", "preprocess", "split", "train", "generate", "evaluate", "register"]
DVC = str(Path(sys.executable).with_name("dvc"))


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _sections_read(script: Path) -> set[str]:
    return set(re.findall(r'load_params\(\s*"(\w+)"', script.read_text()))


def _param_roots(stage: dict) -> set[str]:
    names = [p if isinstance(p, str) else next(iter(p)) for p in stage.get("params", [])]
    return {n.split(".")[0] for n in names}


# ---------------------------------------------------------------------------- definitions (fast)
def test_stages_in_order_and_each_lists_only_the_params_it_reads():
    stages = _load(REPO / "dvc.yaml")["stages"]
    assert list(stages) == STAGES
    params = _load(REPO / "params.yaml")
    for name, stage in stages.items():
        script = REPO / "stages" / f"{name}.py"
        assert f"stages/{name}.py" in stage["cmd"] and script.is_file()
        assert f"stages/{name}.py" in stage["deps"]
        assert _param_roots(stage) == _sections_read(script), name
        for section in _param_roots(stage):
            assert section in params, (name, section)


def test_metrics_are_json_outside_the_cache_and_plots_are_declared():
    spec = _load(REPO / "dvc.yaml")
    (metrics,) = spec["stages"]["evaluate"]["metrics"]
    ((path, opts),) = metrics.items()
    assert path.endswith("metrics.json") and opts == {"cache": False}
    plots = json.dumps(spec["plots"])
    for name in ("losses.csv", "umap.png", "losses.png"):
        assert name in plots
    assert spec["artifacts"]["generator"]["type"] == "model"


def test_outputs_go_to_data_models_reports():
    for stage in _load(REPO / "dvc.yaml")["stages"].values():
        for out in [*stage.get("outs", []), *stage.get("metrics", [])]:
            path = out if isinstance(out, str) else next(iter(out))
            assert path.split("/")[0] in ("data", "models", "reports"), path


def test_analytics_off_in_the_repository_config():
    config = (REPO / ".dvc" / "config").read_text()
    assert re.search(r"analytics\s*=\s*false", config)


def test_all_datasets_pipeline_covers_every_shared_dataset():
    spec = _load(REPO / "all-datasets" / "dvc.yaml")
    datasets = _load(REPO / "params.yaml")["all_datasets"]["datasets"]
    assert set(spec["stages"]) == {*STAGES, "summary", "paper"}
    # the paper report (issue 4) reads the four datasets of the paper's comparison
    paper = spec["stages"]["paper"]
    assert paper["cmd"].startswith("python -m lshgan.paper --out reports/paper")
    assert [next(iter(o)) for o in paper["outs"]] == ["reports/paper"]
    for name in ("yan", "pollen", "klein_subset", "pbmc_sorted_zheng"):
        assert f"${{all_datasets.datasets.{name}.source}}" in paper["deps"]
    for name, stage in spec["stages"].items():
        if name not in ("summary", "paper"):
            assert stage["foreach"] == "${all_datasets.datasets}"
            assert _param_roots(stage["do"]) <= _sections_read(REPO / "stages" / f"{name}.py") | {"all_datasets"}
    for item in datasets.values():
        assert item["source"].startswith("../shared/data/") and item["label_key"]
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not here")
    assert {p.stem for p in SHARED.glob("*.h5ad")} <= set(datasets)


def _all_stages():
    """(file, name, stage body) of every stage of both pipelines (``do`` of a ``foreach``)."""
    for path in (REPO / "dvc.yaml", REPO / "all-datasets" / "dvc.yaml"):
        for name, stage in _load(path)["stages"].items():
            yield path.relative_to(REPO).as_posix(), name, stage.get("do", stage)


def test_every_stage_depends_on_the_whole_package_and_its_script():
    # issue 14: a code change must make the stages stale, so each stage depends on the folder
    # src/lshgan as a whole (one directory hash) instead of a hand-kept list of its files
    for path, name, stage in _all_stages():
        deps = stage["deps"]
        assert "src/lshgan" in deps, (path, name)
        assert not [d for d in deps if d.startswith("src/lshgan/")], (path, name, deps)
        if name != "paper":  # `python -m lshgan.paper`: no script under stages/
            script = f"stages/{name}.py"
            assert script in deps and (REPO / script).is_file(), (path, name)


def test_bytecode_is_dvc_ignored_so_the_package_hash_is_stable():
    paths = ["src/lshgan/__pycache__/cli.cpython-312.pyc", "src/lshgan/module/__pycache__/x.pyc",
             "src/lshgan/stray.pyc"]
    out = subprocess.run([DVC, "check-ignore", *paths], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == paths
    assert subprocess.run([DVC, "check-ignore", "src/lshgan/model.py"], cwd=REPO,
                          capture_output=True, timeout=120).returncode == 1


def test_dvc_reads_both_pipelines():
    out = subprocess.run([DVC, "stage", "list", "--all"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in STAGES:
        assert re.search(rf"^{name}\s", out.stdout, re.M)
    assert "all-datasets/dvc.yaml:evaluate@pollen" in out.stdout


# ---------------------------------------------------------------------------- fresh clone (slow)
def _dvc(repo: Path, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env.pop("MLFLOW_RUN_ID", None)
    proc = subprocess.run([DVC, *args], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"dvc {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args],
                   cwd=repo, check=True, capture_output=True)


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """The project's files in a new git repository, with a short training, after ``dvc repro``."""
    root = tmp_path_factory.mktemp("clone")
    repo = root / "lshgan"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        src = REPO / rel
        if src.is_file() and not rel.startswith(("data/", "models/", "reports/")):
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / rel)
    params = _load(repo / "params.yaml")
    params["train"]["epochs"] = 3
    params["evaluate"]["references"] = False
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if SHARED.is_dir():
        (root / "shared").symlink_to(SHARED.parent)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "fresh clone")
    _dvc(repo, "repro")
    return repo


@pytest.mark.slow
def test_repro_runs_the_whole_pipeline_on_the_embedded_default(clone):
    reports = clone / "reports" / "pbmc68k_reduced"
    metrics = json.loads((reports / "metrics.json").read_text())
    assert 0 <= metrics["rf_auc"] <= 1 and metrics["objective"] > 0 and "dcr" in metrics
    evaluation = json.loads((reports / "evaluation.json").read_text())
    assert evaluation["objective"] == pytest.approx(metrics["objective"])
    assert evaluation["n_test"] > 0 and evaluation["lshgan"]["n_generated"] == evaluation["n_test"]
    registration = json.loads((reports / "registry.json").read_text())
    assert registration["name"] == "lshgan-pbmc68k_reduced" and registration["champion"]
    assert (clone / "mlflow.db").is_file() and (clone / "mlartifacts").is_dir()
    assert not (clone / "mlruns").exists()
    assert "up to date" in _dvc(clone, "status", "dvc.yaml").stdout


def _stale(repo: Path) -> dict:
    """``dvc status --json dvc.yaml``: stage name -> what changed (empty when up to date)."""
    return json.loads(_dvc(repo, "status", "--json", "dvc.yaml").stdout or "{}")


# a file of the package -> the first stage that runs it (preprocess.py also holds the split)
CODE_RUN_BY = {"src/lshgan/preprocess.py": "preprocess", "src/lshgan/model.py": "train",
               "src/lshgan/metrics/protocol.py": "evaluate", "src/lshgan/plotting.py": "train"}


@pytest.mark.slow
@pytest.mark.parametrize("code", list(CODE_RUN_BY))
def test_status_notices_a_code_change(clone, code):
    # bytecode (Python writes it into src/lshgan while stages run) is .dvcignore'd: no change
    for pyc in ("src/lshgan/__pycache__/stray.cpython-312.pyc", "src/lshgan/module/stray.pyc"):
        (clone / pyc).parent.mkdir(parents=True, exist_ok=True)
        (clone / pyc).write_bytes(b"not bytecode")
    assert _stale(clone) == {}
    path = clone / code
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n# an edit dvc must notice\n")
        stale = _stale(clone)
    finally:
        path.write_bytes(original)
    first = STAGES.index(CODE_RUN_BY[code])
    assert set(STAGES[first:]) <= set(stale), stale
    # the package is one dependency: every stage, also those before the one that runs the
    # file, is stale (the price of the simple rule, see docs/mlops.md)
    assert set(stale) == set(STAGES), stale
    for name in STAGES:
        assert {"changed deps": {"src/lshgan": "modified"}} in stale[name], (name, stale[name])
    assert _stale(clone) == {}


@pytest.mark.slow
def test_registry_holds_the_champion(clone):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{clone / 'mlflow.db'}")
    version = client.get_model_version_by_alias("lshgan-pbmc68k_reduced", "champion")
    run = client.get_run(version.run_id)
    for key in ("k", "t", "epochs", "seed", "dataset_hash"):
        assert key in run.data.params
    assert run.data.params["epochs"] == "3"
    assert {"objective", "rf_auc", "dcr", "d_loss", "g_loss"} <= set(run.data.metrics)


@pytest.mark.slow
def test_metrics_and_plots_show(clone):
    shown = json.loads(_dvc(clone, "metrics", "show", "--json").stdout)
    text = json.dumps(shown)
    assert "reports/pbmc68k_reduced/metrics.json" in text and '"objective"' in text
    plots = json.loads(_dvc(clone, "plots", "show", "--json").stdout)
    names = json.dumps(list(plots.get("data", plots)))
    assert "Losses per epoch" in names and "umap.png" in names


@pytest.mark.slow
def test_params_diff_and_exp_run(clone):
    params = _load(clone / "params.yaml")
    params["train"]["k"] = 4
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    diff = json.loads(_dvc(clone, "params", "diff", "--json").stdout)
    change = diff["params.yaml"]["train.k"]
    assert (change["old"], change["new"]) == (5, 4)
    _git(clone, "checkout", "params.yaml")
    _dvc(clone, "exp", "run", "-S", "train.epochs=2", "--name", "two-epochs")
    shown = _dvc(clone, "exp", "show", "--json").stdout
    assert "two-epochs" in shown


@pytest.mark.slow
def test_all_datasets_pipeline_runs_one_shared_dataset(clone):
    if not (clone.parent / "shared" / "data" / "yan.h5ad").is_file():
        pytest.skip("shared datasets not here")
    _dvc(clone, "repro", "all-datasets/dvc.yaml:evaluate@yan")
    reports = clone / "reports" / "all-datasets" / "yan"
    assert "objective" in json.loads((reports / "metrics.json").read_text())
    assert json.loads((reports / "evaluation.json").read_text())["n_test"] > 0
