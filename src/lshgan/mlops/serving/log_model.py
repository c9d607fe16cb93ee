"""Logging a saved generator to MLflow as a pyfunc model: its signature, input example,
requirements and metadata (:func:`log_model`).

The model's code is :mod:`lshgan.mlops.serving.model` (logged as a file, "models from code"):
a model logged here loads and serves wherever the installed ``lshgan`` package has that
module's imports.
"""

from __future__ import annotations

import os
from importlib import metadata as importlib_metadata
from pathlib import Path

import mlflow
import pandas as pd

from . import model as generator_code
from .encoding import CELL_TYPE_COLUMN, genes_sha1
from .model import ARTIFACT_KEY
from .request import DEFAULT_MAX_CELLS


def model_signature(var_names: list[str]):
    """Input: ``n_cells``, optional ``cell_type`` (string), ``seed`` (whole numbers),
    ``encoding`` and ``layer`` (strings).

    Output: one float column per gene, then ``cell_type``: the default ``columns`` response.
    An ``npz`` response has the columns :data:`NPZ_COLUMNS` instead; MLflow does not check
    answers against the output schema, and clients (``augment``, Spark UDFs) read the gene
    names from it, so it describes the default form.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    # n_cells and seed are "any" on purpose: with "long", MLflow's JSON parsing would cast
    # 2.5 to 2 before the model sees it; parse_requests checks them instead (whole numbers).
    inputs = Schema([ColSpec(AnyType(), "n_cells"),
                     ColSpec("string", "cell_type", required=False),
                     ColSpec(AnyType(), "seed", required=False),
                     ColSpec("string", "encoding", required=False),
                     ColSpec("string", "layer", required=False)])
    outputs = Schema([ColSpec("float", str(g)) for g in var_names]
                     + [ColSpec("string", CELL_TYPE_COLUMN)])
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example(model) -> pd.DataFrame:
    """A small valid request for ``model`` (a type it knows, if it is conditional)."""
    if model.config.conditional and model.cell_types:
        return pd.DataFrame({"n_cells": [5], "cell_type": [model.cell_types[0]], "seed": [0]})
    return pd.DataFrame({"n_cells": [5], "seed": [0]})


def pip_requirements() -> list[str]:
    """MLflow and the runtime requirements of the installed ``lshgan`` (not ``lshgan`` itself,
    which is not on PyPI: serve with ``--env-manager local`` where it is installed)."""
    reqs = [f"mlflow=={mlflow.__version__}"]
    try:
        reqs += [r for r in importlib_metadata.requires("lshgan") or [] if "extra ==" not in r]
    except importlib_metadata.PackageNotFoundError:
        pass
    return reqs


def log_model(model_dir: str | os.PathLike, *, name: str = "generator",
              max_cells: int = DEFAULT_MAX_CELLS, registered_model_name: str | None = None):
    """Log a saved LSHGAN folder as a pyfunc model in the active run; return its ModelInfo.

    The model carries a signature (request columns in, one column per gene out), an input
    example, ``model_config = {"max_cells": max_cells}`` and metadata (``cell_types``,
    ``label_key``, ``var_names`` count, ``genes_sha1``, ``counts``: whether it answers
    ``layer="counts"``) that clients such as
    :func:`lshgan.mlops.augment` read without downloading the weights.
    """
    from ...model import LSHGAN

    model_dir = Path(model_dir)
    model = LSHGAN.load(model_dir)
    if CELL_TYPE_COLUMN in model.var_names:
        raise ValueError(f"a gene is named {CELL_TYPE_COLUMN!r}, which the response reserves")
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(Path(generator_code.__file__).resolve()),
        artifacts={ARTIFACT_KEY: str(model_dir.resolve())},
        signature=model_signature(model.var_names),
        input_example=input_example(model),
        model_config={"max_cells": int(max_cells)},
        metadata={"cell_types": list(model.cell_types), "label_key": model.label_key,
                  "conditional": bool(model.config.conditional),
                  "counts": bool(model.has_counts),
                  "n_genes": len(model.var_names), "genes_sha1": genes_sha1(model.var_names)},
        pip_requirements=pip_requirements(),
        registered_model_name=registered_model_name,
    )
