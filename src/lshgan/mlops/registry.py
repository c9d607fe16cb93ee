"""The model registry: ``lshgan-<dataset>`` versions and the ``champion`` alias.

Every registered version keeps its evaluation ``objective`` (lower is better, see
:mod:`lshgan.objective`: realism plus a memorisation penalty) as a version tag.  A new
version takes the alias ``champion`` only when its objective is strictly lower than the
current champion's (or when there is none); the alias then moves and the old versions stay.
Aliases, not the deprecated stages.

Serve the champion with::

    mlflow models serve -m models:/lshgan-pbmc68k_reduced@champion --env-manager local

Examples
--------
>>> should_promote(0.7, None), should_promote(0.7, 0.9), should_promote(0.9, 0.7)
(True, True, False)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from . import tracking

#: The alias of the best version of a registered model.
CHAMPION = "champion"
#: Version tag holding the objective the champion decision compares.
OBJECTIVE_TAG = "objective"


@dataclass
class Registration:
    """What :func:`register` did."""

    name: str
    version: str
    objective: float | None
    champion: bool
    previous_champion: str | None
    previous_objective: float | None
    run_id: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def registered_name(dataset: str) -> str:
    """``lshgan-<dataset>`` (dataset names as in :func:`lshgan.mlops.tracking.dataset_name`)."""
    return tracking.experiment_name(dataset)


def champion_uri(dataset: str) -> str:
    """``models:/lshgan-<dataset>@champion``."""
    return f"models:/{registered_name(dataset)}@{CHAMPION}"


def should_promote(new_objective: float | None, champion_objective: float | None) -> bool:
    """Whether a new version with ``new_objective`` replaces the champion (lower is better).

    No champion yet: promote anything.  A version without a finite objective never
    replaces a champion.  Ties keep the current champion.
    """
    new_ok = new_objective is not None and math.isfinite(new_objective)
    if champion_objective is None or not math.isfinite(champion_objective):
        return new_ok or champion_objective is None
    return new_ok and new_objective < champion_objective


def _version_objective(client, version) -> float | None:
    """A version's objective: its tag, else the ``objective`` metric of its run."""
    raw = (version.tags or {}).get(OBJECTIVE_TAG)
    if raw is None and version.run_id:
        raw = client.get_run(version.run_id).data.metrics.get("objective")
    try:
        return None if raw is None else float(raw)
    except ValueError:
        return None


def current_champion(name: str, client=None):
    """``(version, objective)`` of the champion of ``name``, or ``(None, None)``."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = client or MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:  # no such model, or no alias yet
        return None, None
    return version, _version_objective(client, version)


def register(model_uri: str, *, dataset: str, objective: float | None,
             tags: dict[str, str] | None = None, run_id: str | None = None) -> Registration:
    """Register ``model_uri`` as a new version of ``lshgan-<dataset>``; maybe move the champion.

    Parameters
    ----------
    model_uri
        The logged pyfunc model (``models:/m-...`` from ``log_model``, or ``runs:/...``).
    dataset
        Dataset name; the registered model is ``lshgan-<dataset>``.
    objective
        The version's evaluation objective (lower is better), stored as a version tag.
    tags
        More version tags (e.g. the dataset hash).
    run_id
        The run that produced the model (recorded in the result).
    """
    import mlflow
    from mlflow import MlflowClient

    tracking.configure()
    client = MlflowClient()
    name = registered_name(dataset)
    previous, previous_objective = current_champion(name, client)
    version_tags = {OBJECTIVE_TAG: "" if objective is None else repr(float(objective)), **(tags or {})}
    version = mlflow.register_model(model_uri, name, tags=version_tags)
    promote = should_promote(objective, previous_objective) if previous is not None else True
    if promote:
        client.set_registered_model_alias(name, CHAMPION, version.version)
    return Registration(name=name, version=str(version.version),
                        objective=None if objective is None else float(objective),
                        champion=promote,
                        previous_champion=None if previous is None else str(previous.version),
                        previous_objective=previous_objective, run_id=run_id)
