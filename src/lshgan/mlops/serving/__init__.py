"""LSH-GAN served over HTTP by MLflow: the protocol, the pyfunc model and its client.

Modules, one concern each:

* :mod:`~lshgan.mlops.serving.request` -- the request columns and :func:`parse_requests`
  (every bad request is an HTTP 400 with a message);
* :mod:`~lshgan.mlops.serving.encoding` -- the ``columns`` and ``npz`` answers, made from
  generated cells and read back into AnnData (:func:`frame_to_anndata`);
* :mod:`~lshgan.mlops.serving.model` -- the MLflow ``PythonModel`` (logged as code: "models
  from code");
* :mod:`~lshgan.mlops.serving.server` -- what it changes in MLflow's scoring server;
* :mod:`~lshgan.mlops.serving.log_model` -- logging a saved model to MLflow (signature,
  input example, metadata);
* :mod:`~lshgan.mlops.serving.client` -- a client of a served model over HTTP.

Request (one row per request; a DataFrame, or ``dataframe_split`` JSON over HTTP)::

    {"dataframe_split": {"columns": ["n_cells", "cell_type", "seed", "encoding", "layer"],
                         "data": [[500, "CD19+ B", 0, "npz", "counts"], [200, null, 1, "npz", "counts"]]}}

``n_cells`` (required) a positive integer; the rows of a request together may ask for at
most ``max_cells`` cells (default :data:`~lshgan.mlops.serving.request.DEFAULT_MAX_CELLS`; ``model_config`` when the
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
(:func:`~lshgan.mlops.serving.client.fetch_genes`: a one-cell ``columns`` request; or the artifact
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
saves, so :data:`~lshgan.mlops.serving.encoding.NPZ_COMPRESSED` is false.

A bad request raises :class:`mlflow.exceptions.MlflowException` with error code
``INVALID_PARAMETER_VALUE``, which the scoring server answers with HTTP 400 and the message
(naming the row, the field and, for an unknown cell type, the known ones), never a stack
trace.

Examples
--------
>>> from lshgan.mlops.serving import fetch_genes, frame_to_anndata, post_invocations
>>> url = "http://127.0.0.1:5000"                                  # lshgan serve --dataset ...
>>> genes = fetch_genes(url)                                       # doctest: +SKIP
>>> answer = post_invocations(url, {"dataframe_split": {"columns": ["n_cells", "encoding"],
...                                                     "data": [[500, "npz"]]}})  # doctest: +SKIP
>>> cells = frame_to_anndata(answer, genes=genes)                  # doctest: +SKIP
"""

from .client import fetch_genes, post_invocations
from .encoding import frame_to_anndata, genes_sha1
from .request import parse_requests

__all__ = ["fetch_genes", "frame_to_anndata", "genes_sha1", "parse_requests", "post_invocations"]
