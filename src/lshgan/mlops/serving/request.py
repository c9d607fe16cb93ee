"""Requests to the served generator: their columns, and :func:`parse_requests`, which
validates a request table row by row.

A bad request raises :func:`bad_request` (:class:`mlflow.exceptions.MlflowException` with
error code ``INVALID_PARAMETER_VALUE``), which MLflow's scoring server answers with HTTP 400
and the message (naming the row, the field and, for an unknown cell type, the known ones),
never a stack trace.  The protocol: :mod:`lshgan.mlops.serving`.
"""

from __future__ import annotations

import math
import os
from numbers import Integral, Real
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

#: Columns a request may have (``n_cells`` is required).
INPUT_COLUMNS = ("n_cells", "cell_type", "seed", "encoding", "layer")
#: Layers a request may ask for (the first is the default; :data:`lshgan.model.LAYERS`).
LAYERS = ("log", "normalized", "counts")
#: Response encodings a request may ask for (the first is the default).
ENCODINGS = ("columns", "npz")
#: Most cells one request may ask for unless configured otherwise.
DEFAULT_MAX_CELLS = 20_000
#: Environment variable overriding ``max_cells`` where the model is served.
MAX_CELLS_ENV = "LSHGAN_MAX_CELLS"
_MAX_SEED = 2**63 - 1


class CellRequest(NamedTuple):
    """One validated request row."""

    n_cells: int
    cell_type: str | None
    seed: int
    encoding: str = ENCODINGS[0]
    layer: str = LAYERS[0]


def bad_request(message: str) -> MlflowException:
    """The exception MLflow's scoring server turns into HTTP 400 with ``message``."""
    return MlflowException.invalid_parameter_value(message)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _as_int(name: str, value: Any, row: int) -> int:
    """``value`` as an int, or a :func:`bad_request` naming the field and the row."""
    if isinstance(value, Integral) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, Real) and not isinstance(value, (bool, np.bool_)) \
            and math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise bad_request(f"row {row}: {name} must be an integer, got {value!r}")


def max_cells_setting(model_config: dict | None = None) -> int:
    """The bound on cells per request: ``LSHGAN_MAX_CELLS``, else ``model_config``, else default."""
    raw = os.environ.get(MAX_CELLS_ENV) or (model_config or {}).get("max_cells") or DEFAULT_MAX_CELLS
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise MlflowException(f"max_cells must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise MlflowException(f"max_cells must be a positive integer, got {raw!r}")
    return value


def _shared_choice(rec: dict, name: str, choices: tuple[str, ...], row: int,
                   first: CellRequest | None) -> str:
    """Field ``name`` of a request row: one of ``choices`` (null: the first), the same in
    every row (``first``: row 0's request, None for row 0)."""
    value = rec.get(name)
    if _missing(value) or value == "":
        value = choices[0]
    elif not isinstance(value, str) or value not in choices:
        raise bad_request(f"row {row}: {name} must be one of {', '.join(choices)} "
                          f"(or null: {choices[0]}), got {value!r}")
    if first is not None and value != getattr(first, name):
        raise bad_request(f"row {row}: {name} {value!r} differs from row 0's "
                          f"{getattr(first, name)!r}; all rows of a request share one {name} "
                          "(send separate requests)")
    return value


def parse_requests(frame: Any, *, cell_types: list[str], conditional: bool,
                   max_cells: int = DEFAULT_MAX_CELLS, counts: bool = False) -> list[CellRequest]:
    """Validate a request table; return one :class:`CellRequest` per row.

    Parameters
    ----------
    frame
        A DataFrame (or anything :class:`pandas.DataFrame` accepts) with the columns
        :data:`INPUT_COLUMNS`; only ``n_cells`` is required.
    cell_types
        The model's cell types.
    conditional
        Whether the model generates a requested type (otherwise ``cell_type`` must be null).
    max_cells
        Most cells all rows together may ask for.
    counts
        Whether the model generates counts (``layer="counts"`` is refused otherwise).

    Raises
    ------
    MlflowException
        ``INVALID_PARAMETER_VALUE`` (HTTP 400) naming the problem.

    Examples
    --------
    >>> parse_requests(pd.DataFrame({"n_cells": [3]}), cell_types=["B"], conditional=True)
    [CellRequest(n_cells=3, cell_type=None, seed=0, encoding='columns', layer='log')]
    """
    if not isinstance(frame, pd.DataFrame):
        try:
            frame = pd.DataFrame(frame)
        except (TypeError, ValueError) as err:
            raise bad_request(f"expected a table with columns {', '.join(INPUT_COLUMNS)}: {err}") from None
    unknown = [str(c) for c in frame.columns if c not in INPUT_COLUMNS]
    if unknown:
        raise bad_request(f"unknown column(s) {', '.join(unknown)}; "
                          f"a request has n_cells and optionally cell_type, seed, encoding and layer")
    if "n_cells" not in frame.columns:
        raise bad_request("missing column n_cells (the number of cells to generate)")
    if len(frame) == 0:
        raise bad_request("empty request: give at least one row")
    known = set(cell_types)
    requests, total = [], 0
    for row, rec in enumerate(frame.to_dict(orient="records")):
        n = _as_int("n_cells", rec["n_cells"], row) if not _missing(rec["n_cells"]) else None
        if n is None or n < 1:
            raise bad_request(f"row {row}: n_cells must be a positive integer, got {rec['n_cells']!r}")
        total += n
        if total > max_cells:
            raise bad_request(f"the request asks for {total if len(frame) > 1 else n} cells; this "
                              f"model generates at most max_cells={max_cells} per request "
                              "(split it into several requests)")
        cell_type = rec.get("cell_type")
        if _missing(cell_type) or cell_type == "":
            cell_type = None
        elif not isinstance(cell_type, str):
            raise bad_request(f"row {row}: cell_type must be a string or null, got {cell_type!r}")
        elif not conditional:
            raise bad_request(f"row {row}: this model does not generate a requested cell type "
                              f"(it was trained without cell-type conditioning); send cell_type null")
        elif cell_type not in known:
            raise bad_request(f"row {row}: unknown cell_type {cell_type!r}; known types: "
                              f"{', '.join(cell_types)}")
        seed = rec.get("seed")
        seed = 0 if _missing(seed) else _as_int("seed", seed, row)
        if not 0 <= seed <= _MAX_SEED:
            raise bad_request(f"row {row}: seed must be between 0 and {_MAX_SEED}, got {seed}")
        first = requests[0] if requests else None
        encoding = _shared_choice(rec, "encoding", ENCODINGS, row, first)
        layer = _shared_choice(rec, "layer", LAYERS, row, first)
        if layer == "counts" and not counts:
            raise bad_request(f"row {row}: this model generates no counts (it was not trained on "
                              "count data); ask for layer log or normalized")
        requests.append(CellRequest(n, cell_type, seed, encoding, layer))
    return requests
