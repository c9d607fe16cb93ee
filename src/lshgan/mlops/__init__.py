"""The MLOps glue around the core library: DVC stages, MLflow tracking, registry, serving, tuning.

Nothing in :mod:`lshgan` outside this package imports MLflow, Optuna or DVC (dependencies
point one way: this glue imports the core, never the reverse; only
:func:`lshgan.cli.add_mlops_subcommands` reaches in, to attach the subcommands; the
import-linter contracts of ``pyproject.toml`` check it).  The steps themselves are the
core's, :mod:`lshgan.workflow`.  Modules:

* :mod:`~lshgan.mlops.pipeline` -- ``params.yaml`` and the stage scripts' helpers
  (``stages/*.py`` call :mod:`lshgan.workflow`), the ``register`` stage, and
  :func:`~lshgan.mlops.pipeline.track_experiment`, one tracked run end to end;
* :mod:`~lshgan.mlops.tracking` -- where runs go (``sqlite:///mlflow.db`` and ``mlartifacts/``
  by default, ``MLFLOW_TRACKING_URI`` for a team server) and what a run records;
* :mod:`~lshgan.mlops.serving` -- the generator served by MLflow: requests, the answers'
  encodings, the pyfunc model ("models from code"), the scoring server's fixes, model
  logging, an HTTP client;
* :mod:`~lshgan.mlops.registry` -- ``lshgan-<dataset>`` registered models and the ``champion``
  alias;
* :mod:`~lshgan.mlops.augment` -- augment a real dataset with cells from a model folder, a
  registry URI or a served endpoint;
* :mod:`~lshgan.mlops.tuning` -- Optuna studies (``lshgan tune``): search space, storage,
  the study's MLflow runs, the study loop, the subcommand;
* :mod:`~lshgan.mlops.cli` -- the subcommands.

Importing this package imports nothing heavy; MLflow is imported where it is used.
"""
