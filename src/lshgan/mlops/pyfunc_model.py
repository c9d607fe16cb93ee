"""LSH-GAN as an MLflow pyfunc model ("models from code"): requests in, generated cells out.

This file is logged as the model's code (``python_model=<this file>``): MLflow runs it when
the model loads, so a server needs the installed ``lshgan`` package but not the module that
logged the model.  The saved :class:`~lshgan.LSHGAN` folder travels as the artifact
``lshgan_model``.

Request (one row per request; a DataFrame, or ``dataframe_split`` JSON over HTTP)::

    {"dataframe_split": {"columns": ["n_cells", "cell_type", "seed", "encoding", "layer"],
                         "data": [[500, "CD19+ B", 0, "npz", "counts"], [200, null, 1, "npz", "counts"]]}}

``n_cells`` (required) a positive integer; the rows of a request together may ask for at
most ``max_cells`` cells (default :data:`DEFAULT_MAX_CELLS`; ``model_config`` when the
model is logged, or ``LSHGAN_MAX_CELLS`` where it is served).  ``cell_type`` (optional) one
of the model's cell types, or null: types in training proportions.  ``seed`` (optional,
default 0) a non-negative integer; same seed, same cells.  ``encoding`` (optional)
``"columns"`` (default, also for null) or ``"npz"``; all rows of a request use the same one.
``layer`` (optional) what the values are: ``"log"`` (default, also for null: ``log2(1+x)``,
the model's scale), ``"normalized"`` (``2^x - 1``) or ``"counts"`` (integer counts, as
float32; only from a model trained on count data, which the logged metadata's ``counts``
says); all rows of a request use the same one.  The same request with another ``layer``
gives the same cells (the counts and the log values are drawn from the same cell states).
A model logged before ``layer`` existed drops the column (MLflow warns) and answers
``log``: a client asking for counts should check that the values are integers.

Response, ``encoding="columns"``: one row per generated cell, in request order: one
``float32`` column per gene (of the requested ``layer``), named by the gene and in the model's gene order, then
``cell_type``.  Over HTTP it is ``{"predictions": [{"GENE1": 0.0, ..., "cell_type": "B"},
...]}``: every value of every gene, with its name, as JSON text.

Response, ``encoding="npz"``: one row per *request* row, with the columns ``n_cells``,
``cell_types`` (a JSON list, one type per cell), ``genes_sha1`` (:func:`genes_sha1` of the
model's genes: the names are not repeated in each answer) and ``npz_b64``: base64 of
:func:`scipy.sparse.save_npz` of the cells as a ``float32`` CSR matrix (cells x genes, the
model's gene order; uncompressed, see below).  A client gets the genes once per model
(:func:`fetch_genes`: a one-cell ``columns`` request; or the artifact
``lshgan_model/var_names.json``; the logged model's metadata also has ``genes_sha1``) and
passes them to :func:`frame_to_anndata`, which checks the fingerprint.

:func:`frame_to_anndata` turns either form, as a DataFrame or as the JSON answer, back into
AnnData (``.X`` dense for ``columns``, CSR for ``npz``).  The logged signature's output
schema describes the ``columns`` form (MLflow does not check answers against it; clients
read the gene names from it).  A model logged before ``encoding`` existed has no such input
column: MLflow drops it with a warning and answers in the ``columns`` form, which
:func:`frame_to_anndata` recognises.

Sizes (``bench/serving.py``, 20,000 genes, generated cells with about 10% non-zero values;
JSON bytes of the HTTP answer per cell): ``columns`` about
377,000 bytes per cell (1000 cells: 360 MiB, 64 s from request to AnnData on 2 busy
cores); ``npz`` about 21,000 bytes per cell (8 bytes per non-zero value as float32 data +
int32 column index, plus a third for base64; 1000 cells: 20 MiB, 1.7 s).  Zip compression
(``save_npz(compressed=True)``) makes it 14,100 bytes per cell but encoding 1000 cells
took 1.6 s instead of 0.4 s, far more than sending the extra 7 MB on loopback or a LAN
saves, so :data:`NPZ_COMPRESSED` is false.

A bad request raises :class:`mlflow.exceptions.MlflowException` with error code
``INVALID_PARAMETER_VALUE``, which the scoring server answers with HTTP 400 and the message
(naming the row, the field and, for an unknown cell type, the known ones), never a stack
trace.

Examples
--------
>>> import mlflow
>>> generator = mlflow.pyfunc.load_model("models:/lshgan-pbmc68k_reduced@champion")  # doctest: +SKIP
>>> cells = frame_to_anndata(generator.predict(
...     pd.DataFrame({"n_cells": [100], "cell_type": ["CD19+ B"], "seed": [0]})))    # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
from importlib import metadata as importlib_metadata
from numbers import Integral, Real
from pathlib import Path
from typing import Any, NamedTuple

import anndata as ad
import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel

# Imports of lshgan are absolute: MLflow runs this file outside the package when it loads
# the model.

#: Name of the saved LSHGAN folder among the pyfunc model's artifacts.
ARTIFACT_KEY = "lshgan_model"
#: Columns a request may have (``n_cells`` is required).
INPUT_COLUMNS = ("n_cells", "cell_type", "seed", "encoding", "layer")
#: Column of the response holding the cell type (all others are genes).
CELL_TYPE_COLUMN = "cell_type"
#: Layers a request may ask for (the first is the default; :data:`lshgan.model.LAYERS`).
LAYERS = ("log", "normalized", "counts")
#: Response encodings a request may ask for (the first is the default).
ENCODINGS = ("columns", "npz")
#: Columns of an ``npz`` response (one row per request row).
NPZ_COLUMNS = ("n_cells", "cell_types", "genes_sha1", "npz_b64")
#: Whether the ``npz`` payload is zip-deflated (see the module doc for the measurement).
NPZ_COMPRESSED = False
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


def _generated(model, requests: list[CellRequest]):
    """The generated AnnData of each request, in order; a model error becomes a 400."""
    from lshgan.errors import LSHGANError

    for req in requests:
        try:
            yield model.generate(req.n_cells, cell_type=req.cell_type, seed=req.seed,
                                 layer=req.layer)
        except LSHGANError as err:
            raise bad_request(str(err)) from None


def generate_columns_frame(model, requests: list[CellRequest]) -> pd.DataFrame:
    """The ``columns`` response: one row per cell, one float32 column per gene, ``cell_type``."""
    blocks, types = [], []
    for cells in _generated(model, requests):
        X = cells.X.toarray() if hasattr(cells.X, "toarray") else cells.X  # counts may be CSR
        blocks.append(np.asarray(X, dtype=np.float32))
        types.append(cells.obs["cell_type"].astype(str).to_numpy())
    frame = pd.DataFrame(np.concatenate(blocks), columns=list(model.var_names))
    frame[CELL_TYPE_COLUMN] = np.concatenate(types)
    return frame


def genes_sha1(genes) -> str:
    """SHA-1 (hex) of the gene names joined by newlines: a short fingerprint of the gene order.

    >>> genes_sha1(["A", "B"])
    'df8d16104912b6e1f715a89d08a02ecb30c8e1ac'
    """
    return hashlib.sha1("\n".join(map(str, genes)).encode("utf-8")).hexdigest()


def encode_npz(X) -> str:
    """``X`` (cells x genes) as base64 of :func:`scipy.sparse.save_npz` of a float32 CSR."""
    import scipy.sparse as sp

    buf = io.BytesIO()
    sp.save_npz(buf, sp.csr_matrix(X, dtype=np.float32), compressed=NPZ_COMPRESSED)
    return base64.b64encode(buf.getbuffer()).decode("ascii")


def decode_npz(text: str):
    """The CSR matrix of :func:`encode_npz`'s text."""
    import scipy.sparse as sp

    return sp.load_npz(io.BytesIO(base64.b64decode(text))).tocsr()


def generate_frame(model, requests: list[CellRequest]) -> pd.DataFrame:
    """Generate the cells of ``requests`` in their ``encoding`` (see the module doc)."""
    if requests and requests[0].encoding == "npz":
        return generate_npz_frame(model, requests)
    return generate_columns_frame(model, requests)


def generate_npz_frame(model, requests: list[CellRequest]) -> pd.DataFrame:
    """The ``npz`` response: one row per request with the columns :data:`NPZ_COLUMNS`."""
    fingerprint = genes_sha1(model.var_names)
    rows = []
    for req, cells in zip(requests, _generated(model, requests)):
        rows.append((req.n_cells, json.dumps(cells.obs["cell_type"].astype(str).tolist()),
                     fingerprint, encode_npz(cells.X)))
    return pd.DataFrame(rows, columns=list(NPZ_COLUMNS))


def _records(frame) -> pd.DataFrame | list[dict]:
    if isinstance(frame, dict):
        frame = frame.get("predictions", frame)
    return frame


def _is_npz(frame) -> bool:
    if isinstance(frame, pd.DataFrame):
        return "npz_b64" in frame.columns
    return bool(frame) and isinstance(frame[0], dict) and "npz_b64" in frame[0]


def frame_to_anndata(frame: pd.DataFrame | list[dict] | dict, *,
                     genes: list[str] | None = None) -> ad.AnnData:
    """Generated cells (a response DataFrame, or the JSON ``predictions``) as AnnData.

    Either encoding (told apart by the response's columns).  ``columns``: gene columns
    keep their order in ``var_names`` (checked against ``genes`` when given); ``.X`` is a
    dense ``float32`` array.  ``npz``: ``genes`` (the model's genes in order, e.g. from
    :func:`fetch_genes`, once per model) is required and checked against each row's
    ``genes_sha1``; ``.X`` is a ``float32`` CSR matrix.  Either way ``obs`` gets
    ``cell_type`` and ``synthetic = True``, values of the requested ``layer`` (default the
    model's ``log2(1+x)`` scale).

    Raises
    ------
    ValueError
        ``npz`` without ``genes``, or ``genes`` that are not the response's.
    """
    frame = _records(frame)
    if _is_npz(frame):
        return _npz_to_anndata(frame, genes)
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame.from_records(frame)
    names = [c for c in frame.columns if c != CELL_TYPE_COLUMN]
    if genes is not None and [str(g) for g in genes] != [str(c) for c in names]:
        raise ValueError(f"the response has {len(names)} gene columns that are not the "
                         f"{len(genes)} genes given (names or order differ)")
    X = frame[names].to_numpy(dtype=np.float32)
    types = (frame[CELL_TYPE_COLUMN].astype(str).to_numpy() if CELL_TYPE_COLUMN in frame
             else np.full(len(frame), "unlabelled", dtype=object))
    return _cells(X, types, names)


def _cells(X, types, genes) -> ad.AnnData:
    obs = pd.DataFrame({"cell_type": pd.Categorical(types), "synthetic": True},
                       index=[f"synthetic_{i}" for i in range(X.shape[0])])
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(map(str, genes))))


def _npz_to_anndata(frame, genes: list[str] | None) -> ad.AnnData:
    import scipy.sparse as sp

    if genes is None:
        raise ValueError("an npz response carries no gene names: pass genes= (the model's "
                         "genes in order, e.g. fetch_genes(url) once per model)")
    records = frame.to_dict(orient="records") if isinstance(frame, pd.DataFrame) else frame
    genes = [str(g) for g in genes]
    expected = genes_sha1(genes)
    blocks, types = [], []
    for i, rec in enumerate(records):
        if rec.get("genes_sha1") != expected:
            raise ValueError(f"row {i}: genes_sha1 {rec.get('genes_sha1')!r} is not that of the "
                             f"{len(genes)} genes given ({expected}): the model has other genes "
                             "or another order; fetch them again")
        X = decode_npz(rec["npz_b64"])
        row_types = json.loads(rec["cell_types"])
        if X.shape[1] != len(genes) or X.shape[0] != len(row_types):
            raise ValueError(f"row {i}: a {X.shape[0]} x {X.shape[1]} matrix with "
                             f"{len(row_types)} cell types for {len(genes)} genes")
        blocks.append(X.astype(np.float32, copy=False))
        types.extend(row_types)
    X = (sp.vstack(blocks, format="csr", dtype=np.float32) if blocks
         else sp.csr_matrix((0, len(genes)), dtype=np.float32))
    return _cells(X, np.asarray(types, dtype=object), genes)


def invocations_url(url: str) -> str:
    """``url`` (a server root or its ``/invocations``) as the scoring endpoint."""
    url = url.rstrip("/")
    return url if url.endswith("/invocations") else url + "/invocations"


def post_invocations(url: str, body: dict, *, timeout: float = 120.0):
    """POST ``body`` as JSON to the scoring endpoint of ``url``; the decoded JSON answer.

    Raises urllib's errors (``HTTPError`` for 4xx/5xx, ``URLError`` when unreachable).
    """
    import urllib.request

    req = urllib.request.Request(invocations_url(url), data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def fetch_genes(url: str, *, timeout: float = 120.0) -> list[str]:
    """The genes (in order) of the model served at ``url``: the columns of a one-cell
    ``columns`` answer (about 20 bytes per gene; ask once per model, then use ``npz``)."""
    rows = post_invocations(url, {"dataframe_split": {"columns": ["n_cells", "encoding"],
                                                      "data": [[1, "columns"]]}},
                            timeout=timeout)["predictions"]
    return [g for g in rows[0] if g != CELL_TYPE_COLUMN]


def harden_scoring_server() -> bool:
    """Answer two malformed requests with 4xx where MLflow's scoring server answers 500.

    ``mlflow models serve`` (3.x) fails with an internal error on a request without a
    ``Content-Type`` header (it splits ``None``) and on JSON nested deeper than Python's
    recursion limit (``RecursionError`` escapes its decoder).  When the server has loaded
    this model, its module is wrapped so that the first gets 415 and the second 400, like
    every other bad request; nothing else changes.  Returns whether it was applied (only
    inside a server process).
    """
    import sys

    ss = sys.modules.get("mlflow.pyfunc.scoring_server")
    if ss is None or getattr(ss, "_lshgan_hardened", False):
        return False
    if not all(hasattr(ss, name) for name in ("invocations", "_decode_json_input", "InvocationsResponse")):
        return False  # another MLflow layout: leave it alone
    invocations, decode = ss.invocations, ss._decode_json_input

    def checked_invocations(data, content_type, *args, **kwargs):
        if not content_type:
            return ss.InvocationsResponse(response="missing Content-Type header: send application/json",
                                          status=415, mimetype="text/plain")
        return invocations(data, content_type, *args, **kwargs)

    def checked_decode(json_input):
        try:
            return decode(json_input)
        except RecursionError:
            raise bad_request("the JSON is nested too deeply") from None

    ss.invocations, ss._decode_json_input = checked_invocations, checked_decode
    ss._lshgan_hardened = True
    return True


class LSHGANGenerator(PythonModel):
    """The pyfunc model: ``predict(requests) -> generated cells`` (see the module doc)."""

    def load_context(self, context) -> None:
        from lshgan.model import LSHGAN

        self.model = LSHGAN.load(context.artifacts[ARTIFACT_KEY])
        self.max_cells = max_cells_setting(getattr(context, "model_config", None))
        harden_scoring_server()

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        requests = parse_requests(model_input, cell_types=list(self.model.cell_types),
                                  conditional=bool(self.model.config.conditional),
                                  max_cells=self.max_cells,
                                  counts=bool(getattr(self.model, "has_counts", False)))
        return generate_frame(self.model, requests)


# ---------------------------------------------------------------------------- logging
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
    from lshgan.model import LSHGAN

    model_dir = Path(model_dir)
    model = LSHGAN.load(model_dir)
    if CELL_TYPE_COLUMN in model.var_names:
        raise ValueError(f"a gene is named {CELL_TYPE_COLUMN!r}, which the response reserves")
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(Path(__file__).resolve()),
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


# MLflow executes this file under another module name when it loads the model ("models from
# code"); an ordinary `import lshgan.mlops.pyfunc_model` must not register a model.
if __name__ != "lshgan.mlops.pyfunc_model":
    mlflow.models.set_model(LSHGANGenerator())
