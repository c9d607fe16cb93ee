"""A study in MLflow: one parent run per study, one nested run per trial
(:class:`StudyTracker`).

Each trial run holds the trial's parameters, its per-epoch losses, its intermediate and
final validation scores and its Optuna state; the parent run the study's settings and,
once a worker finishes, the state counts, the best objective and the best-parameters
file.  The tracking store is the project's (:func:`lshgan.mlops.tracking.tracking_uri`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .storage import PARENT_RUN_ATTR, best_trial, state_counts, wait_for_attr

if TYPE_CHECKING:  # heavy imports stay out of `lshgan --help`
    import optuna

#: MLflow experiment of the studies' runs.
DEFAULT_EXPERIMENT = "lshgan-tune"


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

        from .. import tracking

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
        run_id = None if created else wait_for_attr(study, PARENT_RUN_ATTR)
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

        from .. import tracking

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

        from .. import tracking

        client = MlflowClient(tracking.tracking_uri())
        metrics = {f"n_{state.lower()}": n for state, n in state_counts(study).items()}
        best = best_trial(study)
        if best is not None:
            metrics["best_objective"] = best.value
            client.set_tag(self.parent_run_id, "best_trial", str(best.number))
        tracking.log_metrics(metrics, self.parent_run_id)
        if params_file is not None and params_file.exists():
            client.log_artifact(self.parent_run_id, str(params_file))
        if self.own_parent:
            client.set_terminated(self.parent_run_id, "FINISHED")
