"""The LSH-GAN pipeline on Kubeflow Pipelines (KFP v2): the DVC stages, at scale.

The same steps as ``dvc.yaml``, each a container component that runs the stage script
(``stages/*.py``, reading ``params.yaml``) or ``lshgan tune`` in the project's Docker image::

    ingest -> preprocess -> split -> tune (N workers, one Optuna study) -> train
           -> generate -> evaluate -> register

* ``tune``: one task per item of ``tune_workers`` (in parallel) runs ``n_trials`` trials on
  the study ``study_name`` in ``study_storage`` (PostgreSQL: every worker shares it); one
  more task writes the study's best ``train`` section, which ``train`` then reads
  (``folds`` >= 2: each trial's value is a K-fold cross-validation's mean).  With
  ``n_trials = 0`` there is no study: ``train`` reads the image's ``params.yaml``.
* ``register`` logs the model to ``tracking_uri`` as ``lshgan-<dataset_name>`` and moves the
  ``champion`` alias when the new version is better; the tune workers log their trials there.
* Datasets travel between tasks as artifacts (a folder holding ``cells.h5ad``).  Tuning and
  registering have side effects, so they are never cached.

Compile and submit::

    python -m lshgan.mlops.kubeflow compile -o lshgan_pipeline.yaml --image REGISTRY/lshgan:0.1.0
    python -m lshgan.mlops.kubeflow submit lshgan_pipeline.yaml --host https://KFP_HOST \\
        -p tracking_uri=http://mlflow.mlops:5000 \\
        -p study_storage=postgresql+psycopg2://optuna:PASSWORD@postgres.mlops:5432/optuna

Examples
--------
>>> from lshgan.mlops.kubeflow import compile_pipeline
>>> compile_pipeline("lshgan_pipeline.yaml", image="ghcr.io/me/lshgan:0.1.0")   # doctest: +SKIP
"""

# no `from __future__ import annotations`: KFP reads the components' annotations as types
import argparse
import os
import sys
from pathlib import Path
from typing import Callable

#: Image the components run in (the project's Dockerfile); ``LSHGAN_IMAGE`` or ``--image``.
DEFAULT_IMAGE = os.environ.get("LSHGAN_IMAGE", "lshgan:0.1.0")
#: Where the Dockerfile puts the project (stage scripts, params.yaml, conf/).
APP_DIR = "/app"
#: The file inside every dataset artifact folder.
CELLS = "cells.h5ad"
PIPELINE_NAME = "lshgan"

#: Pipeline parameters and their defaults (the order of the compiled pipeline's inputs).
PARAMETERS = {
    "dataset_name": "pbmc68k_reduced",
    "source": "pbmc68k_reduced",
    "label_key": "cell_type",
    "tracking_uri": "http://mlflow.mlops.svc.cluster.local:5000",
    "study_storage": "postgresql+psycopg2://optuna@postgres.mlops.svc.cluster.local:5432/optuna",
    "study_name": "lshgan-pbmc68k_reduced",
    "n_trials": 10,
    "folds": 1,
    "tune_workers": [0, 1, 2, 3],
    "seed": 0,
}


def _script(*lines: str) -> str:
    """A ``sh -c`` script run in the project folder; arguments are ``$1``, ``$2``, ..."""
    return "\n".join(["set -eu", f"cd {APP_DIR}", *lines])


def build_pipeline(image: str = DEFAULT_IMAGE) -> Callable:
    """The ``@dsl.pipeline`` function, with every component running in ``image``."""
    from kfp import dsl
    from kfp.dsl import Artifact, Dataset, Input, Model, Output

    def spec(script: str, *args) -> dsl.ContainerSpec:
        return dsl.ContainerSpec(image=image, command=["sh", "-c", script, "lshgan-step"],
                                 args=list(args))

    @dsl.container_component
    def ingest(source: str, label_key: str, raw: Output[Dataset]):
        """Copy the raw dataset (embedded default, a path or URL the image can read)."""
        return spec(_script('mkdir -p "$3"',
                            f'python stages/ingest.py "$1" "$3/{CELLS}" --label-key "$2"'),
                    source, label_key, raw.path)

    @dsl.container_component
    def preprocess(raw: Input[Dataset], label_key: str, processed: Output[Dataset]):
        """Filter, normalise, log-transform (``preprocess`` section of params.yaml)."""
        return spec(_script('mkdir -p "$3"',
                            f'python stages/preprocess.py "$1/{CELLS}" "$3/{CELLS}" --label-key "$2"'),
                    raw.path, label_key, processed.path)

    @dsl.container_component
    def split(processed: Input[Dataset], label_key: str, train: Output[Dataset],
              test: Output[Dataset]):
        """Stratified train/test split (``split`` section); the test cells are never tuned on."""
        return spec(_script('mkdir -p "$3" "$4"',
                            f'python stages/split.py "$1/{CELLS}" "$3/{CELLS}" "$4/{CELLS}" '
                            '--label-key "$2"'),
                    processed.path, label_key, train.path, test.path)

    @dsl.container_component
    def tune_worker(train: Input[Dataset], label_key: str, study_storage: str, study_name: str,
                    tracking_uri: str, n_trials: int, folds: int, seed: int, worker: int,
                    done: dsl.OutputPath(str)):
        """One Optuna worker: ``n_trials`` trials on the shared study (sampler seed = worker;
        ``folds`` >= 2: each trial's value is a K-fold cross-validation's mean)."""
        # integers may arrive as "10.0" (JSON numbers): printf makes them integers again
        return spec(_script('n=$(printf "%.0f" "$6"); folds=$(printf "%.0f" "$7")',
                            'seed=$(printf "%.0f" "$8"); worker=$(printf "%.0f" "$9")',
                            'MLFLOW_TRACKING_URI="$5" lshgan tune "$1/' + CELLS + '" --label-key "$2" '
                            '--storage "$3" --study-name "$4" --n-trials "$n" --folds "$folds" '
                            '--seed "$seed" --sampler-seed "$worker" --params-out ""',
                            'echo "worker $worker done" > "${10}"'),
                    train.path, label_key, study_storage, study_name, tracking_uri, n_trials,
                    folds, seed, worker, done)

    @dsl.container_component
    def tune_best(train: Input[Dataset], label_key: str, study_storage: str, study_name: str,
                  tracking_uri: str, folds: int, seed: int, workers_done: list,
                  params: Output[Artifact]):
        """The study's best train section (after every worker), as a params file."""
        return spec(_script('mkdir -p "$8"; folds=$(printf "%.0f" "$6"); seed=$(printf "%.0f" "$7")',
                            'MLFLOW_TRACKING_URI="$5" lshgan tune "$1/' + CELLS + '" --label-key "$2" '
                            '--storage "$3" --study-name "$4" --n-trials 0 --folds "$folds" '
                            '--seed "$seed" --params-out "$8/params.yaml"'),
                    train.path, label_key, study_storage, study_name, tracking_uri, folds, seed,
                    params.path)

    @dsl.container_component
    def default_params(params: Output[Artifact]):
        """The image's params.yaml, when nothing is tuned."""
        return spec(_script('mkdir -p "$1"', 'cp params.yaml "$1/params.yaml"'), params.path)

    @dsl.container_component
    def train(train: Input[Dataset], params: Input[Artifact], label_key: str,
              model: Output[Model], losses: Output[Artifact]):
        """Train LSH-GAN with the ``train`` section of ``params`` (tuned or default)."""
        return spec(_script(f'python stages/train.py "$1/{CELLS}" "$4" --plots "$5" '
                            '--label-key "$3" --params "$2/params.yaml"'),
                    train.path, params.path, label_key, model.path, losses.path)

    @dsl.container_component
    def generate(model: Input[Model], test: Input[Dataset], label_key: str,
                 generated: Output[Dataset]):
        """As many cells as the test split, with its cell types (``generate`` section)."""
        return spec(_script('mkdir -p "$4"',
                            f'python stages/generate.py "$1" "$2/{CELLS}" "$4/{CELLS}" --label-key "$3"'),
                    model.path, test.path, label_key, generated.path)

    @dsl.container_component
    def evaluate(generated: Input[Dataset], train: Input[Dataset], test: Input[Dataset],
                 label_key: str, metrics: Output[Artifact], plots: Output[Artifact]):
        """Realism and novelty against the held-out test cells (``evaluate`` section)."""
        return spec(_script('mkdir -p "$5" "$6"',
                            f'python stages/evaluate.py "$1/{CELLS}" "$2/{CELLS}" "$3/{CELLS}" '
                            '"$5/metrics.json" --plots "$6" --label-key "$4"'),
                    generated.path, train.path, test.path, label_key, metrics.path, plots.path)

    @dsl.container_component
    def register(model: Input[Model], metrics: Input[Artifact], train: Input[Dataset],
                 losses: Input[Artifact], plots: Input[Artifact], dataset_name: str,
                 tracking_uri: str, registration: Output[Artifact]):
        """Log and register ``lshgan-<dataset_name>``; move ``champion`` if better."""
        return spec(_script('mkdir -p "$8" /tmp/plots',
                            'cp "$4"/*.png "$5"/*.png /tmp/plots/ 2>/dev/null || true',
                            'MLFLOW_TRACKING_URI="$7" python stages/register.py "$1" '
                            f'"$2/metrics.json" "$8/registry.json" --dataset "$6" '
                            f'--train "$3/{CELLS}" --plots /tmp/plots'),
                    model.path, metrics.path, train.path, losses.path, plots.path, dataset_name,
                    tracking_uri, registration.path)

    @dsl.pipeline(name=PIPELINE_NAME,
                  description="LSH-GAN: ingest, preprocess, split, tune (distributed Optuna "
                              "study), train, generate, evaluate, register (MLflow champion)")
    def lshgan_pipeline(
        dataset_name: str = PARAMETERS["dataset_name"],
        source: str = PARAMETERS["source"],
        label_key: str = PARAMETERS["label_key"],
        tracking_uri: str = PARAMETERS["tracking_uri"],
        study_storage: str = PARAMETERS["study_storage"],
        study_name: str = PARAMETERS["study_name"],
        n_trials: int = PARAMETERS["n_trials"],
        folds: int = PARAMETERS["folds"],
        tune_workers: list = PARAMETERS["tune_workers"],
        seed: int = PARAMETERS["seed"],
    ):
        raw = ingest(source=source, label_key=label_key).set_display_name("ingest")
        processed = preprocess(raw=raw.outputs["raw"], label_key=label_key)
        parts = split(processed=processed.outputs["processed"], label_key=label_key)
        train_cells, test_cells = parts.outputs["train"], parts.outputs["test"]

        with dsl.If(n_trials > 0, name="tune"):
            with dsl.ParallelFor(items=tune_workers, name="tune-workers") as worker:
                work = tune_worker(train=train_cells, label_key=label_key,
                                   study_storage=study_storage, study_name=study_name,
                                   tracking_uri=tracking_uri, n_trials=n_trials, folds=folds,
                                   seed=seed, worker=worker)
                work.set_caching_options(False)
            best = tune_best(train=train_cells, label_key=label_key, study_storage=study_storage,
                             study_name=study_name, tracking_uri=tracking_uri, folds=folds,
                             seed=seed, workers_done=dsl.Collected(work.outputs["done"]))
            best.set_caching_options(False)
        with dsl.Else(name="no-tune"):
            default = default_params()

        model = train(train=train_cells, label_key=label_key,
                      params=dsl.OneOf(best.outputs["params"], default.outputs["params"]))
        cells = generate(model=model.outputs["model"], test=test_cells, label_key=label_key)
        scores = evaluate(generated=cells.outputs["generated"], train=train_cells, test=test_cells,
                          label_key=label_key)
        reg = register(model=model.outputs["model"], metrics=scores.outputs["metrics"],
                       train=train_cells, losses=model.outputs["losses"],
                       plots=scores.outputs["plots"], dataset_name=dataset_name,
                       tracking_uri=tracking_uri)
        reg.set_caching_options(False)

    return lshgan_pipeline


def compile_pipeline(path: str | os.PathLike, *, image: str = DEFAULT_IMAGE) -> Path:
    """Compile the pipeline to a KFP v2 pipeline YAML at ``path``."""
    from kfp import compiler

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(image), package_path=str(path))
    return path


def submit(package: str | os.PathLike, *, host: str, arguments: dict | None = None,
           experiment: str = PIPELINE_NAME, run_name: str | None = None) -> str:
    """Start a run of a compiled pipeline on a KFP endpoint; return the run id."""
    import kfp

    client = kfp.Client(host=host)
    run = client.create_run_from_pipeline_package(str(package), arguments=arguments or {},
                                                  experiment_name=experiment, run_name=run_name)
    return run.run_id


def _parse_arguments(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in PARAMETERS:
            raise SystemExit(f"error: -p {item!r}: use NAME=VALUE with NAME among {', '.join(PARAMETERS)}")
        out[key] = yaml.safe_load(value) if not isinstance(PARAMETERS[key], str) else value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lshgan.mlops.kubeflow",
                                     description="Compile or submit the LSH-GAN Kubeflow pipeline.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compile", help="write the pipeline YAML")
    p.add_argument("-o", "--output", default="lshgan_pipeline.yaml")
    p.add_argument("--image", default=DEFAULT_IMAGE, help=f"component image (default {DEFAULT_IMAGE})")
    p = sub.add_parser("submit", help="run a compiled pipeline on a KFP endpoint")
    p.add_argument("package", help="compiled pipeline YAML")
    p.add_argument("--host", required=True, help="KFP API endpoint, e.g. https://kfp.example.org")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help=f"pipeline parameter ({', '.join(PARAMETERS)})")
    p.add_argument("--experiment", default=PIPELINE_NAME)
    args = parser.parse_args(argv)
    if args.command == "compile":
        path = compile_pipeline(args.output, image=args.image)
        print(f"wrote {path} (image {args.image})", file=sys.stderr)
    else:
        run_id = submit(args.package, host=args.host, arguments=_parse_arguments(args.param),
                        experiment=args.experiment)
        print(f"started run {run_id}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
