"""Where MLflow runs go, and what a training run records.

Tracking store
    ``MLFLOW_TRACKING_URI`` when set (a team's tracking server, ``http://mlflow.example:5000``,
    or a database, ``postgresql://user@host/mlflow``), else the embedded default
    ``sqlite:///mlflow.db`` in the current folder (the project root for ``dvc repro`` and
    ``mlflow run``).
Artifacts
    For a SQLite store, in ``mlartifacts/`` next to the database file (MLflow would otherwise
    put them in ``./mlruns`` of whatever folder a run starts in).  For a tracking server,
    where the server puts them (its ``--artifacts-destination``).
    ``LSHGAN_ARTIFACT_LOCATION`` overrides both for experiments created from here (e.g.
    ``s3://bucket/lshgan`` with a bare database URI).
Experiments
    ``lshgan-<dataset>`` (:func:`experiment_name`), the name of the registered model too.

A training run records its parameters (model and training settings, including ``k``, ``t``,
``epochs``, ``seed``, and the dataset's name and hash), the per-epoch losses (``d_loss``,
``g_loss`` with ``step`` = epoch), the final metrics of :mod:`lshgan.metrics` plus the
``objective`` that ranks generators, the pictures (UMAP, losses, gene statistics) and the
model (:mod:`lshgan.mlops.serving`).

Examples
--------
>>> from lshgan.mlops import tracking
>>> with tracking.start_run("pbmc68k_reduced") as run:                 # doctest: +SKIP
...     tracking.log_params(tracking.run_params(model, dataset="pbmc68k_reduced"))
...     model.train(callback=tracking.epoch_logger())
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

if TYPE_CHECKING:
    import mlflow

    from ..model import LSHGAN
    from ..module.training import History

#: The embedded default tracking store (relative to the current folder).
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
#: Folder, next to a SQLite store, that holds the artifacts of its runs.
ARTIFACTS_DIR = "mlartifacts"
#: Environment variable overriding the artifact location of new experiments.
ARTIFACT_LOCATION_ENV = "LSHGAN_ARTIFACT_LOCATION"
#: Prefix of experiment and registered-model names.
NAME_PREFIX = "lshgan-"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else :data:`DEFAULT_TRACKING_URI`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def artifact_location(uri: str | None = None) -> str | None:
    """Artifact root for new experiments in the store ``uri`` (``None``: the store decides).

    Examples
    --------
    >>> artifact_location("sqlite:////srv/lshgan/mlflow.db")
    'file:///srv/lshgan/mlartifacts'
    >>> artifact_location("http://mlflow.example:5000") is None
    True
    """
    if os.environ.get(ARTIFACT_LOCATION_ENV):
        return os.environ[ARTIFACT_LOCATION_ENV]
    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        db = uri[len("sqlite:///"):]
        if db and db != ":memory:":
            return (Path(db).expanduser().resolve().parent / ARTIFACTS_DIR).as_uri()
    return None


def dataset_name(source: str | os.PathLike) -> str:
    """A short name for a dataset: ``pbmc68k_reduced``, or a file's stem (``pollen``).

    Examples
    --------
    >>> dataset_name("../shared/data/pollen.h5ad"), dataset_name("pbmc68k_reduced")
    ('pollen', 'pbmc68k_reduced')
    """
    name = Path(str(source)).name
    for suffix in (".gz", ".h5ad", ".loom", ".h5", ".mtx", ".csv", ".tsv", ".txt"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    return name or "dataset"


def experiment_name(dataset: str) -> str:
    """``lshgan-<dataset>``: the experiment of a dataset's runs (and its registered model)."""
    return NAME_PREFIX + dataset_name(dataset)


def configure(experiment: str | None = None) -> str | None:
    """Point MLflow at :func:`tracking_uri`; create ``experiment`` if needed; return its id.

    New experiments get :func:`artifact_location`.  Concurrent processes creating the same
    experiment are fine (the loser of the race reads the winner's).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri())
    _initialise_sqlite_store(tracking_uri())
    if experiment is None:
        return None
    for attempt in range(5):
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is not None:
            return exp.experiment_id
        try:
            return mlflow.create_experiment(experiment, artifact_location=artifact_location())
        except MlflowException:
            if attempt == 4:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


_INITIALISED: set[str] = set()


def _initialise_sqlite_store(uri: str) -> None:
    """Create (or upgrade) a SQLite store's tables in one process at a time.

    MLflow creates the tables of a new SQLite store on first use, without a lock: several
    processes starting at once on a new ``mlflow.db`` (parallel ``lshgan track``, Optuna
    workers, DVC stages) fail with "duplicate column" errors and lose their runs.  The first
    use in each process is serialised with a file lock (in the temporary folder, keyed by the
    database path); later uses find the tables made.
    """
    if uri in _INITIALISED or not uri.startswith("sqlite:///"):
        return
    db = uri[len("sqlite:///"):]
    if not db or db == ":memory:":
        return
    import hashlib
    import tempfile

    from mlflow import MlflowClient

    key = hashlib.sha256(str(Path(db).expanduser().resolve()).encode()).hexdigest()[:16]
    lock = Path(tempfile.gettempdir()) / f"lshgan-mlflow-{key}.lock"
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        fcntl = None
    with open(lock, "a") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)  # waits for the process creating the tables
        try:
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            client.search_experiments(max_results=1)  # tracking tables
            client.search_registered_models(max_results=1)  # registry tables
        finally:
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_UN)
    _INITIALISED.add(uri)


@contextlib.contextmanager
def start_run(dataset: str, *, run_name: str | None = None,
              tags: dict[str, str] | None = None) -> Iterator["mlflow.ActiveRun"]:
    """An MLflow run for ``dataset`` in experiment ``lshgan-<dataset>``.

    Inside ``mlflow run`` (``MLFLOW_RUN_ID`` set) this is the run ``mlflow run`` created,
    in the experiment it chose (``--experiment-name lshgan-<dataset>`` to keep them
    together).  The run ends FINISHED, or FAILED on an exception.
    """
    import mlflow

    tags = {"lshgan.dataset": dataset_name(dataset), **(tags or {})}
    if os.environ.get("MLFLOW_RUN_ID"):
        configure()
        run = mlflow.start_run(tags=tags)
    else:
        exp_id = configure(os.environ.get("MLFLOW_EXPERIMENT_NAME") or experiment_name(dataset))
        run = mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=tags)
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    finally:
        mlflow.end_run(status)


# ---------------------------------------------------------------------------- what a run records
def run_params(model: "LSHGAN", *, dataset: str, dataset_hash: str | None = None,
               train_config=None, n_train_cells: int | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters of a training run: model and training settings, data, versions.

    Keys are the :class:`~lshgan.ModelConfig` and :class:`~lshgan.TrainConfig` field names
    (``k``, ``t``, ``epochs``, ``seed``, ``lr_g``, ...; ``train_config`` defaults to the
    model's), ``preprocess.*`` from the preprocessing record, and ``dataset``,
    ``dataset_hash`` (of the training cells), ``n_train_cells``, ``n_genes``,
    ``n_cell_types``, ``label_key``, ``lshgan_version``, ``torch_version``, and
    ``version.<package>`` for every package that decides the result
    (:func:`package_versions`).
    """
    import torch

    from .. import __version__

    params: dict[str, Any] = dict(asdict(model.config))
    train_config = train_config or model.train_config
    if train_config is not None:
        params.update(asdict(train_config))
    params.update({f"preprocess.{k}": v for k, v in (model.preprocess_info or {}).items()})
    params.update(dataset=dataset_name(dataset), dataset_hash=dataset_hash,
                  n_train_cells=n_train_cells, n_genes=len(model.var_names),
                  n_cell_types=len(model.cell_types), label_key=model.label_key,
                  lshgan_version=__version__, torch_version=torch.__version__)
    params.update({f"version.{name}": v for name, v in package_versions().items()})
    params.update(extra or {})
    return {k: v for k, v in params.items() if v is not None}


#: Packages whose versions a run records (they decide the generated cells and the metrics).
RECORDED_PACKAGES = ("lshgan", "torch", "numpy", "scipy", "pandas", "anndata", "scanpy",
                     "scikit-learn", "pot", "umap-learn", "mlflow")


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`RECORDED_PACKAGES`, Python and the platform."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in RECORDED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _param_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def log_params(params: dict[str, Any], run_id: str | None = None) -> None:
    """Log parameters as text (lists as ``a,b``), in one batch.

    A key the run already holds with another value (MLflow refuses to change one) is logged
    as ``lshgan.<key>``: under ``mlflow run -P dataset=path/x.h5ad`` MLflow logs the path as
    ``dataset`` first, and the run's dataset name goes to ``lshgan.dataset``."""
    from mlflow import MlflowClient
    from mlflow.entities import Param

    client = MlflowClient()
    run_id = run_id or _active_run_id()
    have = client.get_run(run_id).data.params
    texts = {k: _param_text(v)[:6000] for k, v in params.items()}
    client.log_batch(run_id, params=[Param(k if have.get(k, t) == t else f"lshgan.{k}", t)
                                     for k, t in texts.items()])


def epoch_logger(run_id: str | None = None) -> Callable[[int, "History"], None]:
    """A :meth:`LSHGAN.train` callback logging ``d_loss`` and ``g_loss`` after every epoch.

    Losses are logged with ``step`` = epoch, live, so the MLflow UI shows the curves while
    a long run trains.  A failing tracking store does not stop training: it warns once and
    the epochs it missed are sent with the next epoch that logs.
    """
    state = {"logged": 0, "warned": False}

    def callback(epoch: int, history: "History") -> None:
        try:
            state["logged"] = log_history(history, run_id, start=state["logged"])
        except Exception as err:  # noqa: BLE001 - tracking must not kill a training run
            if not state["warned"]:
                import sys

                print(f"warning: could not log losses to MLflow ({err})", file=sys.stderr)
                state["warned"] = True

    return callback


def log_history(history: "History", run_id: str | None = None, *, start: int = 0) -> int:
    """Log the per-epoch losses from index ``start`` on in one batch; return the next index."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    run_id = run_id or _active_run_id()
    end = len(history.epoch)
    ts = int(time.time() * 1000)
    metrics = [Metric(name, float(getattr(history, name)[i]), ts, int(history.epoch[i]))
               for i in range(start, end) for name in ("d_loss", "g_loss")
               if math.isfinite(getattr(history, name)[i])]
    for chunk in range(0, len(metrics), 1000):  # log_batch takes at most 1000 metrics
        MlflowClient().log_batch(run_id, metrics=metrics[chunk:chunk + 1000])
    return end


def evaluation_metrics(result: dict) -> dict[str, float]:
    """Flat, finite metrics of an evaluation JSON (:func:`lshgan.workflow.evaluate_files`).

    The generator's metrics keep their names (``rf_auc``, ``dcr``, ...), references are
    prefixed (``copy.rf_auc``); ``objective`` is added when ``rf_auc`` and ``dcr`` exist.
    The DVC metrics file (:func:`lshgan.workflow.summary_metrics`: the generator's
    metrics at the top level) is read the same way.
    """
    from ..objective import objective_from_metrics

    out: dict[str, float] = {}

    def add(prefix: str, values: dict) -> None:
        for key, value in (values or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                out[prefix + key] = float(value)

    generator = result["lshgan"] if "lshgan" in result else {
        k: v for k, v in result.items() if k not in ("references", "objective")}
    add("", generator)
    for name, values in (result.get("references") or {}).items():
        add(f"{name}.", values)
    add("", {k: v for k, v in result.items() if k in ("n_train", "n_test", "train_seconds")})
    if "rf_auc" in out and "dcr" in out:
        out["objective"] = objective_from_metrics(out)
    return out


def log_metrics(metrics: dict[str, float], run_id: str | None = None, *, step: int = 0) -> None:
    """Log metrics in one batch: final ones at step 0, intermediate ones at their ``step``."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    MlflowClient().log_batch(run_id or _active_run_id(),
                             metrics=[Metric(k, float(v), ts, int(step)) for k, v in metrics.items()])


def log_pictures(paths: Iterable[str | os.PathLike], run_id: str | None = None,
                 artifact_path: str = "plots") -> list[str]:
    """Log the pictures that exist among ``paths`` under ``artifact_path``; return their names."""
    from mlflow import MlflowClient

    run_id = run_id or _active_run_id()
    logged = []
    for path in map(Path, paths):
        if path.is_file():
            MlflowClient().log_artifact(run_id, str(path), artifact_path)
            logged.append(path.name)
    return logged


def _active_run_id() -> str:
    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run: pass run_id or use tracking.start_run()")
    return run.info.run_id
