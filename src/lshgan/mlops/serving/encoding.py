"""The two encodings of generated cells in an answer, both ways: the server side
(:func:`generate_frame`: cells of validated requests as a ``columns`` or ``npz`` table) and
the client side (:func:`frame_to_anndata`: an answer back into AnnData).

``columns``: one row per cell, one ``float32`` column per gene (named, in the model's gene
order), then ``cell_type``.  ``npz``: one row per request row with :data:`NPZ_COLUMNS`: the
cell types as a JSON list, :func:`genes_sha1` of the model's genes, and base64 of
:func:`scipy.sparse.save_npz` of the cells as a ``float32`` CSR matrix.  Sizes and the
choice of :data:`NPZ_COMPRESSED`: :mod:`lshgan.mlops.serving`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json

import anndata as ad
import numpy as np
import pandas as pd

from .request import CellRequest, bad_request

#: Column of the response holding the cell type (all others are genes).
CELL_TYPE_COLUMN = "cell_type"
#: Columns of an ``npz`` response (one row per request row).
NPZ_COLUMNS = ("n_cells", "cell_types", "genes_sha1", "npz_b64")
#: Whether the ``npz`` payload is zip-deflated (see :mod:`lshgan.mlops.serving` for the measurement).
NPZ_COMPRESSED = False


def _generated(model, requests: list[CellRequest]):
    """The generated AnnData of each request, in order; a model error becomes a 400."""
    from ...errors import LSHGANError

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


def encode_npz(X, *, compressed: bool | None = None) -> str:
    """``X`` (cells x genes) as base64 of :func:`scipy.sparse.save_npz` of a float32 CSR;
    zip-deflated if ``compressed`` (default :data:`NPZ_COMPRESSED`)."""
    import scipy.sparse as sp

    buf = io.BytesIO()
    compressed = NPZ_COMPRESSED if compressed is None else bool(compressed)
    sp.save_npz(buf, sp.csr_matrix(X, dtype=np.float32), compressed=compressed)
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
