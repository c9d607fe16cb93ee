"""Where studies live: Optuna storage URLs (SQLite, journal files, database servers),
opening with retries, creating or joining a study, and reading its trials.

Workers that share a storage share the study: the first creates it and records what every
worker must agree on (the training cells' hash, ``label_key``, ``seed``, ``folds``,
``val_size``); the others check it before they run a trial.  A study created before
``folds`` was recorded counts as ``folds=1`` (one validation split).
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import ParameterError

if TYPE_CHECKING:  # heavy imports stay out of `lshgan --help`
    import optuna

#: Storage used when none is given: a SQLite file in the current (project) folder.
DEFAULT_STORAGE = "sqlite:///optuna.db"
#: Study user attributes: what every worker must agree on, and the MLflow parent run.
STUDY_ATTR = "lshgan"
PARENT_RUN_ATTR = "mlflow_parent_run_id"
#: The study attributes every worker must agree on (``folds`` before ``val_size``, which is
#: None with folds >= 2: the error names the setting that differs).
MUST_AGREE = ("dataset_hash", "label_key", "seed", "folds", "val_size")
#: Seconds a joining worker waits for the creating worker to record the parent run.
JOIN_TIMEOUT = 60.0


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


def open_study(storage, study_name: str, attrs: dict) -> tuple["optuna.Study", bool]:
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
    theirs = wait_for_attr(study, STUDY_ATTR)
    if theirs is not None:
        theirs = {"folds": 1, **theirs}  # studies from before --folds: one validation split
        for key in MUST_AGREE:
            if theirs.get(key) != attrs.get(key):
                raise ParameterError(
                    f"study {study_name!r} was created with {key}={theirs.get(key)!r}, this worker "
                    f"has {attrs.get(key)!r}: every worker must tune the same training cells with "
                    "the same --label-key, --seed, --folds and --val-size (or use another "
                    "--study-name)")
    return study, False


def wait_for_attr(study: "optuna.Study", key: str, timeout: float = JOIN_TIMEOUT):
    """The study's user attribute ``key``, waiting up to ``timeout`` seconds for another
    worker to set it (None if it never does)."""
    deadline = time.monotonic() + timeout
    while True:
        value = study.user_attrs.get(key)
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def state_counts(study: "optuna.Study") -> dict[str, int]:
    """Number of the study's trials in each state (``COMPLETE``, ``PRUNED``, ``FAIL``, ...)."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    return {s.name: sum(t.state == s for t in trials) for s in optuna.trial.TrialState}


def best_trial(study: "optuna.Study"):
    """The completed trial with the lowest finite objective, or None."""
    import optuna

    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]
    return min(done, key=lambda t: t.value) if done else None
