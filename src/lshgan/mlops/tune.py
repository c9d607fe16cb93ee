"""Hyperparameter studies of LSH-GAN with Optuna: ``lshgan tune``.

A study searches the hyperparameters listed in a search-space file
(``conf/search_space.yaml``: ``k``, ``t``, epochs, learning rate, network width) for the
lowest :func:`lshgan.objective.objective`: realism (random-forest AUC) plus a penalty on
memorisation (DCR ratio), so that copying training cells can never win.

* **Validation, never test.**  Every score comes from a validation split carved out of the
  *training* cells (``val_size``, stratified by cell type): the model trains on the rest.
  The test split of the pipeline is never read.
* **Pruning.**  Every ``report_every`` epochs (search-space file) the generator being
  trained is scored on the validation split (with a cheaper forest) inside the training
  callback: ``LSHGAN.generate`` samples its running average there, the generator the final
  score comes from.  ``trial.report`` and ``trial.should_prune`` let the pruner of the
  search space (``MedianPruner`` by default; steps are epochs) stop hopeless trials early.
* **Seeded and resumable.**  ``TPESampler`` seeded from ``seed`` (plus the number of trials
  already in the study, so that a resumed study does not replay its first draws); running
  the command again with the same ``study_name`` and storage adds trials to the same study.
* **Storage.**  A local SQLite file by default (``sqlite:///optuna.db``), a journal file
  (``*.log``, ``*.jsonl`` or ``journal:PATH``), or a database server
  (``postgresql+psycopg2://user@host:5432/db``) that any number of worker processes or
  machines share: run the same command on each.  Workers must tune the same training cells
  with the same ``label_key``, ``seed`` and ``val_size`` (checked against the study).
* **Tracking.**  The study is an MLflow run; each trial is an MLflow run nested under it
  (parameters, per-epoch losses, intermediate and final validation scores, its Optuna
  state).  The tracking store is the project's (``sqlite:///mlflow.db``) unless
  ``MLFLOW_TRACKING_URI`` says otherwise.
* **Best parameters** go to a YAML file whose ``train`` section holds the keys of the
  ``train`` section of ``params.yaml``, for DVC.

Examples
--------
>>> from lshgan.io import read_dataset
>>> train = read_dataset("data/split/train.h5ad", label_key="cell_type")   # doctest: +SKIP
>>> study = tune(train, label_key="cell_type", n_trials=20, study_name="pbmc",
...              params_out="best_params.yaml")                              # doctest: +SKIP
>>> study.best_params                                                        # doctest: +SKIP
{'k': 7, 't': 2, 'epochs': 250, 'lr': 0.00031, 'width': 256}
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import socket
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..errors import LSHGANError, ParameterError

if TYPE_CHECKING:  # heavy imports stay out of `lshgan --help`
    import anndata as ad
    import optuna

#: Storage used when none is given: a SQLite file in the current (project) folder.
DEFAULT_STORAGE = "sqlite:///optuna.db"
#: Search space used when none is given (relative to the current folder, then to the project).
DEFAULT_SEARCH_SPACE = Path("conf") / "search_space.yaml"
#: MLflow experiment of the studies' runs.
DEFAULT_EXPERIMENT = "lshgan-tune"
#: Study user attributes: what every worker must agree on, and the MLflow parent run.
STUDY_ATTR = "lshgan"
PARENT_RUN_ATTR = "mlflow_parent_run_id"
#: Seconds a joining worker waits for the creating worker to record the parent run.
JOIN_TIMEOUT = 60.0

#: Random forest of the validation score (final, and intermediate = quick).
SCORING = {"n_estimators": 300, "n_splits": 5, "quick_n_estimators": 50, "quick_n_splits": 3}
_NOT_SEARCHABLE = ("seed", "checkpoint_every", "device")  # set by the command, not by a trial
_DIST_KEYS = {"int": {"low", "high", "step", "log"}, "float": {"low", "high", "step", "log"},
              "categorical": {"choices"}}


def _train_keys() -> set[str]:
    """Keys of the ``train`` section of params.yaml (:func:`lshgan.config.train_configs`)."""
    from ..config import KEYS

    return set(KEYS)


# ---------------------------------------------------------------------------- search space
@dataclass
class SearchSpace:
    """What a study searches, read from YAML (see ``conf/search_space.yaml``).

    Parameters
    ----------
    params
        Name -> Optuna distribution: ``{"type": "int"|"float", "low", "high"[, "step",
        "log"]}`` or ``{"type": "categorical", "choices": [...]}``.  Names are keys of the
        ``train`` section of params.yaml (:mod:`lshgan.config`): fields of
        :class:`~lshgan.ModelConfig` or :class:`~lshgan.TrainConfig`, ``lr`` (both learning
        rates), ``width`` and ``depth`` (``depth`` hidden layers of ``width`` units in G and D).
    fixed
        Settings every trial uses (same names).
    pruner
        ``{"name": <class in optuna.pruners>, **arguments}``; steps are epochs.
    sampler
        Arguments of :class:`optuna.samplers.TPESampler` except ``seed``.
    report_every
        Epochs between intermediate validation scores.
    scoring
        Random forest of the validation score: ``n_estimators`` and ``n_splits`` (folds) of
        the final score, ``quick_n_estimators`` and ``quick_n_splits`` of intermediate ones.

    Examples
    --------
    >>> space = SearchSpace(params={"k": {"type": "int", "low": 2, "high": 9}},
    ...                     fixed={"epochs": 20})
    >>> space.configs({"k": 4}, seed=0)[0].k
    4
    """

    params: dict[str, dict]
    fixed: dict[str, Any] = field(default_factory=dict)
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "MedianPruner"})
    sampler: dict[str, Any] = field(default_factory=dict)
    report_every: int = 10
    scoring: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = _train_keys() - set(_NOT_SEARCHABLE)
        if not isinstance(self.params, dict) or not self.params:
            raise ParameterError("search space: 'params' must map at least one name to a distribution")
        for name in [*self.params, *self.fixed]:
            if name not in known:
                raise ParameterError(
                    f"search space: unknown name {name!r}; use keys of the train section of "
                    f"params.yaml (not {', '.join(_NOT_SEARCHABLE)})")
        for name, spec in self.params.items():
            kind = spec.get("type") if isinstance(spec, dict) else None
            if kind not in _DIST_KEYS:
                raise ParameterError(f"search space: {name!r} needs type int, float or categorical")
            extra = set(spec) - _DIST_KEYS[kind] - {"type"}
            if extra:
                raise ParameterError(f"search space: {name!r} ({kind}) has unknown keys {sorted(extra)}")
            if kind == "categorical":
                if not spec.get("choices"):
                    raise ParameterError(f"search space: {name!r} needs a non-empty 'choices' list")
            elif not ("low" in spec and "high" in spec and spec["low"] <= spec["high"]):
                raise ParameterError(f"search space: {name!r} needs low <= high")
        if not isinstance(self.report_every, int) or self.report_every < 1:
            raise ParameterError(f"search space: report_every must be a positive integer, got {self.report_every!r}")
        unknown = set(self.scoring) - set(SCORING)
        if unknown:
            raise ParameterError(f"search space: unknown scoring keys {sorted(unknown)}; "
                                 f"allowed: {', '.join(SCORING)}")
        self.scoring = {**SCORING, **self.scoring}
        if not all(isinstance(v, int) and v >= 2 for v in self.scoring.values()):
            raise ParameterError(f"search space: scoring values must be integers >= 2, got {self.scoring}")
        if "seed" in self.sampler:
            raise ParameterError("search space: the sampler seed comes from --seed, not the file")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike | None = None) -> "SearchSpace":
        """Read a search-space file (default :data:`DEFAULT_SEARCH_SPACE`)."""
        import yaml

        path = find_search_space(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ParameterError(f"{path}: not valid YAML ({err})") from None
        allowed = {f.name for f in fields(cls)}
        unknown = set(data) - allowed
        if unknown:
            raise ParameterError(f"{path}: unknown section(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        try:
            return cls(**data)
        except ParameterError as err:
            raise ParameterError(f"{path}: {err}") from None

    def suggest(self, trial: "optuna.Trial") -> dict[str, Any]:
        """Draw one value per searched name from ``trial``."""
        values = {}
        for name, spec in self.params.items():
            kw = {k: v for k, v in spec.items() if k != "type"}
            if spec["type"] == "int":
                values[name] = trial.suggest_int(name, **kw)
            elif spec["type"] == "float":
                values[name] = trial.suggest_float(name, **kw)
            else:
                values[name] = trial.suggest_categorical(name, kw["choices"])
        return values

    def train_params(self, values: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
        """A trial's ``train`` section: ``base`` (params.yaml's), then ``fixed``, then ``values``.

        ``width``/``depth`` become ``g_hidden``/``d_hidden``, so that they override the
        base's layer widths.
        """
        base = {k: v for k, v in (base or {}).items() if k not in _NOT_SEARCHABLE}
        return {**base, **expand_layers({**self.fixed, **values})}

    def configs(self, values: dict[str, Any], *, seed: int, base: dict[str, Any] | None = None,
                n_cells: int | None = None):
        """``(ModelConfig, TrainConfig)`` of a trial (:func:`lshgan.config.train_configs`);
        unnamed fields keep their defaults; ``n_cells``: the cells it trains on."""
        from ..config import train_configs

        return train_configs({**self.train_params(values, base), "seed": int(seed)}, n_cells=n_cells)

    def make_pruner(self) -> "optuna.pruners.BasePruner":
        import optuna

        spec = dict(self.pruner)
        name = spec.pop("name", "MedianPruner")
        cls = getattr(optuna.pruners, str(name), None)
        if not (isinstance(cls, type) and issubclass(cls, optuna.pruners.BasePruner)):
            raise ParameterError(f"search space: pruner {name!r} is not a class of optuna.pruners")
        try:
            return cls(**spec)
        except TypeError as err:
            raise ParameterError(f"search space: pruner {name}: {err}") from None

    def make_sampler(self, seed: int) -> "optuna.samplers.BaseSampler":
        import optuna

        try:
            return optuna.samplers.TPESampler(seed=seed, **self.sampler)
        except TypeError as err:
            raise ParameterError(f"search space: sampler: {err}") from None

    def to_dict(self) -> dict:
        return asdict(self)


def expand_layers(params: dict[str, Any]) -> dict[str, Any]:
    """``width`` and ``depth`` replaced by the ``g_hidden`` and ``d_hidden`` they stand for.

    Examples
    --------
    >>> expand_layers({"k": 3, "width": 64, "depth": 3})
    {'k': 3, 'g_hidden': [64, 64, 64], 'd_hidden': [64, 64, 64]}
    """
    from ..config import train_configs

    p = dict(params)
    layers = {k: p.pop(k) for k in ("width", "depth") if k in p}
    if layers:
        model, _ = train_configs(layers)
        p.setdefault("g_hidden", list(model.g_hidden))
        p.setdefault("d_hidden", list(model.d_hidden))
    return p


def find_search_space(path: str | os.PathLike | None = None) -> Path:
    """The search-space file: ``path``, else ``conf/search_space.yaml`` here or in the project."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ParameterError(f"{path}: search-space file not found")
        return path
    candidates = [Path.cwd() / DEFAULT_SEARCH_SPACE,
                  Path(__file__).resolve().parents[3] / DEFAULT_SEARCH_SPACE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ParameterError(f"no search-space file: {DEFAULT_SEARCH_SPACE} is missing here and in the "
                         "project; pass --search-space")


# ---------------------------------------------------------------------------- validation
@dataclass
class ValidationSplit:
    """The training cells, split into cells to fit on and cells to score on.

    The score is :func:`lshgan.objective.objective` of the random-forest AUC (validation
    cells vs generated cells) and the DCR ratio (generated cells' distance to the fitting
    cells, relative to the validation cells').  The test split is never involved.
    """

    fit: "ad.AnnData"
    val: "ad.AnnData"
    label_key: str | None = None
    seed: int = 0

    @classmethod
    def carve(cls, train: "ad.AnnData", *, val_size: float = 0.2, label_key: str | None = None,
              seed: int = 0) -> "ValidationSplit":
        from ..preprocess import stratified_split

        fit, val = stratified_split(train, test_size=val_size, label_key=label_key, seed=seed)
        if val.n_obs < 4:
            raise ParameterError(f"the validation split has {val.n_obs} cells: raise val_size "
                                 f"or tune on more than {train.n_obs} cells")
        return cls(fit, val, label_key, seed)

    def cell_types(self, conditional: bool) -> list[str] | None:
        """The validation cells' types (generated in the same proportions), if conditional."""
        if not conditional or self.label_key is None:
            return None
        return self.val.obs[self.label_key].astype(str).tolist()

    def score(self, generated: "ad.AnnData", *, n_estimators: int = 300,
              n_splits: int = 5) -> dict[str, float]:
        """``objective``, ``rf_auc`` and ``dcr`` of generated cells (lower objective is better)."""
        import torch

        from ..metrics import dcr_ratio, rf_auc
        from ..objective import objective

        auc = rf_auc(self.val, generated, n_estimators=n_estimators, n_splits=n_splits,
                     seed=self.seed, n_jobs=torch.get_num_threads())
        dcr = dcr_ratio(generated, self.fit, self.val)
        return {"objective": objective(auc["mean"], dcr), "rf_auc": auc["mean"], "dcr": dcr}


# ---------------------------------------------------------------------------- storage
def redact(url: str) -> str:
    """``url`` without its password (safe to log)."""
    if "://" not in url or url.startswith("sqlite"):
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL: keep the scheme only
        return url.split("://", 1)[0] + "://***"


def _journal_path(storage: str) -> str | None:
    if storage.startswith("journal:"):
        return storage[len("journal:"):]
    if "://" not in storage and storage.endswith((".log", ".jsonl", ".journal")):
        return storage
    return None


def open_storage(storage: str = DEFAULT_STORAGE, *, attempts: int = 5) -> "optuna.storages.BaseStorage":
    """An Optuna storage from a URL or a file name.

    ``sqlite:///FILE``, ``postgresql+psycopg2://...``, ``mysql+pymysql://...``: RDB storage,
    with a heartbeat so that trials of a killed worker are failed and retried by the others;
    ``FILE.db``: SQLite; ``FILE.log`` / ``FILE.jsonl`` / ``journal:FILE``: journal file.
    Workers that start together on a fresh database may race to create its tables: the
    loser retries.
    """
    import optuna

    journal = _journal_path(storage)
    if journal is not None:
        from optuna.storages.journal import JournalFileBackend

        Path(journal).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(journal))
    if "://" not in storage:
        if not storage.endswith((".db", ".sqlite", ".sqlite3")):
            raise ParameterError(f"storage {storage!r}: use a database URL (sqlite:///FILE, "
                                 "postgresql+psycopg2://...), FILE.db or a journal FILE.log")
        storage = f"sqlite:///{storage}"
    import sqlalchemy.exc

    with warnings.catch_warnings():  # the heartbeat is "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        kwargs = dict(heartbeat_interval=30, grace_period=120,
                      heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                          max_retry=1))
    if not storage.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"pool_pre_ping": True}
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(storage, **kwargs)
        except (sqlalchemy.exc.SQLAlchemyError, ImportError) as err:
            if isinstance(err, ImportError) or attempt == attempts - 1:
                raise ParameterError(f"cannot open the study storage {redact(storage)}: "
                                     f"{str(err).splitlines()[0]}") from None
            time.sleep(0.5 * 2 ** attempt)
    raise AssertionError("unreachable")


def _open_study(storage, study_name: str, attrs: dict) -> tuple["optuna.Study", bool]:
    """Create the study, or join it (``load_if_exists`` semantics); True if created here.

    Creation is the one atomic step workers can race on, so the creator alone records
    ``attrs`` and the MLflow parent run; the others check ``attrs`` against their own.
    """
    import optuna

    try:
        study = optuna.create_study(storage=storage, study_name=study_name, direction="minimize")
        study.set_user_attr(STUDY_ATTR, attrs)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=study_name, storage=storage)
    if study.direction != optuna.study.StudyDirection.MINIMIZE:
        raise ParameterError(f"study {study_name!r} maximises; lshgan tune minimises its objective")
    theirs = _wait_for_attr(study, STUDY_ATTR)
    if theirs is not None:
        for key in ("dataset_hash", "label_key", "seed", "val_size"):
            if theirs.get(key) != attrs.get(key):
                raise ParameterError(
                    f"study {study_name!r} was created with {key}={theirs.get(key)!r}, this worker "
                    f"has {attrs.get(key)!r}: every worker must tune the same training cells with "
                    "the same --label-key, --seed and --val-size (or use another --study-name)")
    return study, False


def _wait_for_attr(study: "optuna.Study", key: str, timeout: float = JOIN_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        value = study.user_attrs.get(key)
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


# ---------------------------------------------------------------------------- tracking
class StudyTracker:
    """MLflow runs of a study: one parent run, one nested run per trial.

    The store is :func:`lshgan.mlops.tracking.tracking_uri` (``sqlite:///mlflow.db``, or
    ``MLFLOW_TRACKING_URI``).  Inside ``mlflow run`` (``MLFLOW_RUN_ID`` set) the parent is the
    run ``mlflow run`` made.

    Parameters
    ----------
    experiment_id
        Experiment holding the runs.
    parent_run_id
        The study's run; trials are nested under it (tag ``mlflow.parentRunId``).
    tags
        Tags of every trial run (study name, dataset hash, ...).
    own_parent
        Whether this worker ends the parent run (not when ``mlflow run`` owns it).
    """

    def __init__(self, experiment_id: str, parent_run_id: str, tags: dict[str, str],
                 own_parent: bool = True):
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.tags = dict(tags)
        self.own_parent = own_parent

    @classmethod
    def for_study(cls, study: "optuna.Study", *, created: bool, experiment: str,
                  params: dict, tags: dict[str, str]) -> "StudyTracker":
        """Find the study's parent run (the creating worker makes it), or make it."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        from . import tracking

        client = MlflowClient(tracking.tracking_uri())
        if os.environ.get("MLFLOW_RUN_ID"):  # inside `mlflow run`: its run is the parent
            tracking.configure()
            # popped as mlflow.start_run does, or the first trial would resume this run
            run = client.get_run(os.environ.pop("MLFLOW_RUN_ID"))
            tracking.log_params(params, run.info.run_id)
            for key, value in {**tags, "lshgan.role": "study"}.items():
                client.set_tag(run.info.run_id, key, value)
            return cls(run.info.experiment_id, run.info.run_id, tags, own_parent=False)
        experiment_id = tracking.configure(experiment)
        run_id = None if created else _wait_for_attr(study, PARENT_RUN_ATTR)
        if run_id is not None:
            try:
                client.get_run(run_id)
            except MlflowException:  # recorded in another tracking store: start one here
                print(f"note: the study's MLflow run {run_id} is not in this tracking store; "
                      "logging under a new parent run", file=sys.stderr)
                run_id = None
            else:
                client.update_run(run_id, status="RUNNING")
        if run_id is None:
            run = client.create_run(experiment_id, run_name=f"study-{study.study_name}",
                                    tags={**tags, "lshgan.role": "study"})
            run_id = run.info.run_id
            tracking.log_params(params, run_id)
            if study.user_attrs.get(PARENT_RUN_ATTR) is None:
                study.set_user_attr(PARENT_RUN_ATTR, run_id)
        return cls(experiment_id, run_id, tags)

    @contextlib.contextmanager
    def trial_run(self, trial: "optuna.Trial", params: dict) -> Iterator[str]:
        """A nested MLflow run around one trial (yields its id); status follows the trial's state."""
        import mlflow
        import optuna

        from . import tracking

        run = mlflow.start_run(experiment_id=self.experiment_id, run_name=f"trial-{trial.number}",
                               parent_run_id=self.parent_run_id,
                               tags={**self.tags, "lshgan.role": "trial",
                                     "optuna.trial_number": str(trial.number)})
        trial.set_user_attr("mlflow_run_id", run.info.run_id)
        status, state = "FAILED", "FAIL"
        try:
            tracking.log_params(params, run.info.run_id)
            yield run.info.run_id
            status, state = "FINISHED", "COMPLETE"
        except optuna.TrialPruned:
            status, state = "KILLED", "PRUNED"
            raise
        finally:
            mlflow.set_tag("optuna.state", state)
            mlflow.end_run(status)

    def finish(self, study: "optuna.Study", params_file: Path | None) -> None:
        """Summarise the study on its parent run (each worker does; the last one wins)."""
        from mlflow import MlflowClient

        from . import tracking

        client = MlflowClient(tracking.tracking_uri())
        metrics = {f"n_{state.lower()}": n for state, n in _state_counts(study).items()}
        best = _best_trial(study)
        if best is not None:
            metrics["best_objective"] = best.value
            client.set_tag(self.parent_run_id, "best_trial", str(best.number))
        tracking.log_metrics(metrics, self.parent_run_id)
        if params_file is not None and params_file.exists():
            client.log_artifact(self.parent_run_id, str(params_file))
        if self.own_parent:
            client.set_terminated(self.parent_run_id, "FINISHED")


def _log_step_metrics(run_id: str, values: dict[str, float], step: int) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    MlflowClient().log_batch(run_id, metrics=[Metric(k, float(v), ts, step)
                                              for k, v in values.items() if math.isfinite(v)])


# ---------------------------------------------------------------------------- the study
def _state_counts(study: "optuna.Study") -> dict[str, int]:
    import optuna

    trials = study.get_trials(deepcopy=False)
    return {s.name: sum(t.state == s for t in trials) for s in optuna.trial.TrialState}


def _best_trial(study: "optuna.Study"):
    import optuna

    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]
    return min(done, key=lambda t: t.value) if done else None


def make_objective(validation: ValidationSplit, space: SearchSpace, *, seed: int, device: str,
                   base: dict[str, Any] | None = None,
                   tracker: StudyTracker | None = None) -> Callable[["optuna.Trial"], float]:
    """``objective(trial) -> float``: draw, train with pruning, score on the validation split.

    ``base``: the ``train`` section the trials start from (params.yaml's).
    """
    import optuna

    from .. import workflow
    from . import tracking

    sc = space.scoring

    def run_trial(trial: optuna.Trial) -> float:
        values = space.suggest(trial)
        params = space.train_params(values, base)
        trial.set_user_attr("train_params", params)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        model_cfg, train_cfg = space.configs(values, seed=seed, base=base,
                                             n_cells=validation.fit.n_obs)
        logged = {**params, **values, "seed": seed, "device": device}
        run = tracker.trial_run(trial, logged) if tracker else contextlib.nullcontext()
        with run as run_id:
            model = workflow.build_model(validation.fit, model_cfg, label_key=validation.label_key,
                                         name="the tuning split")
            types = validation.cell_types(model.config.conditional)
            n_val = validation.val.n_obs
            logged = 0  # epochs whose losses are in MLflow
            last_epoch = train_cfg.planned_epochs(validation.fit.n_obs)

            def callback(epoch: int, history) -> None:
                nonlocal logged
                if epoch % space.report_every and epoch != last_epoch:
                    return
                if run_id:
                    logged = tracking.log_history(history, run_id, start=logged)
                if epoch == last_epoch:
                    return  # the full score follows
                scores = validation.score(model.generate(n_val, cell_type=types, seed=seed),
                                          n_estimators=sc["quick_n_estimators"],
                                          n_splits=sc["quick_n_splits"])
                if run_id:
                    _log_step_metrics(run_id, {f"val_{k}": v for k, v in scores.items()}, epoch)
                if math.isfinite(scores["objective"]):
                    trial.report(scores["objective"], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch}: validation objective "
                                             f"{scores['objective']:.3f}")

            workflow.fit(model, train_cfg, device=device, callback=callback)
            generated = model.generate(n_val, cell_type=types, seed=seed)
            scores = validation.score(generated, n_estimators=sc["n_estimators"],
                                      n_splits=sc["n_splits"])
            trial.set_user_attr("rf_auc", scores["rf_auc"])
            trial.set_user_attr("dcr", scores["dcr"])
            if run_id:
                _log_step_metrics(run_id, {**scores, "train_seconds": model.train_seconds}, 0)
        return scores["objective"]

    return run_trial


def tune(
    adata: "ad.AnnData",
    *,
    label_key: str | None = None,
    n_trials: int = 20,
    study_name: str = "lshgan",
    storage: str = DEFAULT_STORAGE,
    search_space: SearchSpace | str | os.PathLike | None = None,
    device: str = "auto",
    seed: int = 0,
    sampler_seed: int | None = None,
    val_size: float = 0.2,
    timeout: float | None = None,
    experiment: str | None = DEFAULT_EXPERIMENT,
    params_out: str | os.PathLike | None = None,
    base_params: dict[str, Any] | None = None,
    quiet: bool = False,
) -> "optuna.Study":
    """Run ``n_trials`` trials of a study (created or resumed) on the training cells ``adata``.

    Parameters
    ----------
    adata
        Preprocessed **training** cells (``lshgan split``'s train output); a validation
        split is carved out of them.
    label_key
        Cell-type column (conditional models, stratified validation split).
    n_trials
        Trials this call runs (each worker runs its own ``n_trials``); 0 only exports the
        best parameters of the study so far.
    study_name, storage
        The study, created or resumed; see :func:`open_storage` for storage URLs.
    search_space
        :class:`SearchSpace` or a YAML file (default ``conf/search_space.yaml``).
    device
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    seed
        Validation split, training and sampler seed; all workers of a study use the same.
    sampler_seed
        Seed of the ``TPESampler`` (default ``seed`` + trials already in the study); give
        concurrent workers different ones so that their first random draws differ.
    val_size
        Fraction of the training cells held out for validation.
    timeout
        Stop starting new trials after this many seconds.
    experiment
        MLflow experiment of the runs; ``None``: no MLflow logging.
    params_out
        Write the best trial's ``train`` section here (YAML), overwriting the file.
    base_params
        The ``train`` section trials start from (``params.yaml``'s): settings neither
        searched nor fixed by the search space come from it (``seed`` and ``device`` do not).
    quiet
        Only warnings from Optuna.

    Returns
    -------
    The :class:`optuna.Study`.

    Raises
    ------
    ParameterError
        Bad search space or storage, a worker that disagrees with the study, or
        ``params_out`` with no completed trial in the study.
    """
    import optuna

    from ..io import dataset_hash
    from ..module.training import resolve_device

    if n_trials < 0:
        raise ParameterError(f"n_trials must be >= 0, got {n_trials}")
    if not 0 < val_size < 1:
        raise ParameterError(f"val_size must be in (0, 1), got {val_size}")
    space = search_space if isinstance(search_space, SearchSpace) else SearchSpace.from_yaml(search_space)
    optuna.logging.set_verbosity(optuna.logging.WARNING if quiet else optuna.logging.INFO)
    device = str(resolve_device(device)) if device == "auto" else device
    resolve_device(device)
    data_hash = dataset_hash(adata)
    attrs = {"dataset_hash": data_hash, "label_key": label_key, "seed": int(seed),
             "val_size": float(val_size), "n_cells": int(adata.n_obs), "n_genes": int(adata.n_vars)}
    storage_obj = open_storage(storage)
    study, created = _open_study(storage_obj, study_name, attrs)
    n_before = len(study.get_trials(deepcopy=False))
    study.sampler = space.make_sampler(seed + n_before if sampler_seed is None else sampler_seed)
    study.pruner = space.make_pruner()
    tracker = None
    if experiment:
        tags = {"lshgan.study": study_name, "lshgan.dataset_hash": data_hash,
                "optuna.storage": redact(storage)}
        tracker = StudyTracker.for_study(
            study, created=created, experiment=experiment, tags=tags,
            params={**attrs, "storage": redact(storage), "search_space": space.to_dict()})
    if n_trials:
        validation = ValidationSplit.carve(adata, val_size=val_size, label_key=label_key, seed=seed)
        objective = make_objective(validation, space, seed=seed, device=device, base=base_params,
                                   tracker=tracker)
        study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(LSHGANError,),
                       gc_after_trial=True)
    out = None
    if params_out is not None:
        out = write_best_params(study, params_out)
    if tracker:
        tracker.finish(study, out)
    return study


def best_train_params(study: "optuna.Study") -> tuple[dict[str, Any], Any]:
    """The ``train`` settings of the study's best completed trial, and that trial."""
    best = _best_trial(study)
    if best is None:
        raise ParameterError(f"study {study.study_name!r} has no completed trial yet "
                             f"({_state_counts(study)}); run more trials")
    params = best.user_attrs.get("train_params") or expand_layers(best.params)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}, best


def write_best_params(study: "optuna.Study", path: str | os.PathLike) -> Path:
    """Write the best trial's settings as the ``train`` section of a YAML params file."""
    import yaml

    from ..io import atomic_path

    params, best = best_train_params(study)
    seed = (study.user_attrs.get(STUDY_ATTR) or {}).get("seed")
    if seed is not None:
        params["seed"] = seed
    header = (f"# Best trial ({best.number}) of Optuna study {study.study_name!r}: validation "
              f"objective {best.value:.4f} (lower is better).\n"
              "# Written by `lshgan tune`: the train section of params.yaml the trial started from, "
              "with the tuned values.\n")
    with atomic_path(path, force=True) as tmp:
        tmp.write_text(header + yaml.safe_dump({"train": params}, sort_keys=False))
    return Path(path)


def dvc_set_args(params: dict[str, Any]) -> str:
    """``-S train.KEY=VALUE ...`` arguments of ``dvc exp run`` for these settings."""
    def fmt(v):
        return "[" + ",".join(map(str, v)) + "]" if isinstance(v, (list, tuple)) else str(v)

    return " ".join(f"-S 'train.{k}={fmt(v)}'" for k, v in params.items())


# ---------------------------------------------------------------------------- command line
def _integer(text: str) -> int:
    """An integer, also written as a float (``mlflow run`` passes ``20.0`` for 20)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(value)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``tune`` to the ``lshgan`` subcommands (called by :mod:`lshgan.mlops.cli`)."""
    p = subparsers.add_parser(
        "tune", help="hyperparameter study (Optuna): k, t, epochs, learning rate, width",
        description="Search LSH-GAN hyperparameters for the lowest validation objective "
                    "(realism + memorisation penalty) on a validation split carved from the "
                    "training cells. Run the same command on several machines with a shared "
                    "--storage to distribute the study.")
    p.add_argument("input", metavar="DATASET",
                   help="preprocessed training cells (.h5ad), e.g. data/split/train.h5ad")
    p.add_argument("--label-key", default=None, help="obs column with cell types")
    p.add_argument("--n-trials", type=_integer, default=20,
                   help="trials this worker runs (default 20; 0: only write the best parameters)")
    p.add_argument("--study-name", default="lshgan", help="study to create or resume (default lshgan)")
    p.add_argument("--storage", default=DEFAULT_STORAGE,
                   help=f"Optuna storage: {DEFAULT_STORAGE} (default), FILE.log (journal), or "
                        "postgresql+psycopg2://USER@HOST:PORT/DB shared by several workers")
    p.add_argument("--search-space", default=None,
                   help=f"search-space YAML (default {DEFAULT_SEARCH_SPACE})")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--seed", type=_integer, default=0,
                   help="validation split, training and sampler seed (same on every worker)")
    p.add_argument("--sampler-seed", type=_integer, default=None,
                   help="TPE sampler seed (default: seed + trials already in the study); give "
                        "concurrent workers different ones")
    p.add_argument("--val-size", type=float, default=0.2,
                   help="fraction of the training cells held out for validation (default 0.2)")
    p.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT,
                   help=f"MLflow experiment (default {DEFAULT_EXPERIMENT})")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--params", default="params.yaml",
                   help="trials start from the train section of this file (default params.yaml, "
                        "if present)")
    p.add_argument("--params-out", default="best_params.yaml",
                   help="write the best trial's train section here, for DVC (default "
                        "best_params.yaml; '' for none)")
    p.add_argument("--threads", type=_integer, default=None,
                   help="CPU threads of this worker (default: all cores; use 1 per worker when "
                        "several workers share a machine)")
    p.add_argument("--quiet", action="store_true", help="only warnings")
    p.set_defaults(func=cmd_tune)
    return p


def cmd_tune(args) -> int:
    from ..io import read_dataset

    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))
    space = SearchSpace.from_yaml(args.search_space)
    adata = read_dataset(args.input, label_key=args.label_key)
    check_tuning_input(adata, str(args.input))
    t0 = time.perf_counter()
    study = tune(adata, label_key=args.label_key, n_trials=args.n_trials, study_name=args.study_name,
                 storage=args.storage, search_space=space, device=args.device,
                 seed=args.seed, sampler_seed=args.sampler_seed, val_size=args.val_size,
                 timeout=args.timeout, experiment=None if args.no_mlflow else args.experiment,
                 params_out=args.params_out or None, base_params=_base_params(args.params),
                 quiet=args.quiet)
    counts = {k: v for k, v in _state_counts(study).items() if v}
    print(f"study {study.study_name!r}: {sum(counts.values())} trials "
          f"({', '.join(f'{v} {k.lower()}' for k, v in counts.items())}); this worker: "
          f"{args.n_trials} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    best = _best_trial(study)
    if best is not None:
        params, _ = best_train_params(study)
        tuned = {k: params[k] for k in expand_layers({**space.fixed, **best.params})
                 if k in params}
        print(f"best: trial {best.number}, objective {best.value:.4f}: {tuned}", file=sys.stderr)
        if args.params_out:
            print(f"wrote {args.params_out} (the whole train section); or: dvc exp run "
                  f"{dvc_set_args(tuned)}", file=sys.stderr)
    return 0


def _base_params(path: str | None) -> dict[str, Any] | None:
    """The ``train`` section of a params file; None when the default file is absent."""
    from .pipeline import PARAMS_FILE, load_params

    if path is None:
        return None
    if not Path(path).exists():
        if path == PARAMS_FILE:
            return None
        raise ParameterError(f"{path}: parameters file not found")
    return load_params("train", path=path)


def check_tuning_input(adata: "ad.AnnData", name: str) -> None:
    """Refuse data that is not preprocessed, or that holds test cells."""
    if "split" in adata.obs and (adata.obs["split"].astype(str) == "test").any():
        raise ParameterError(f"{name} holds test cells (obs['split'] == 'test'): tune on the "
                             "training split only; the objective uses a validation split of it")
    if "lshgan_preprocess" not in adata.uns:
        raise ParameterError(f"{name} is not preprocessed: tune expects the training cells "
                             "written by `lshgan split --train` (after `lshgan preprocess`)")


def main(argv: list[str] | None = None) -> int:
    """``python -m lshgan.mlops.tune ...`` (the same as ``lshgan tune ...``)."""
    parser = argparse.ArgumentParser(prog="lshgan")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["tune", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except LSHGANError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
