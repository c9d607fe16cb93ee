"""Augment a real dataset with generated cells, up to the paper's sample:feature ratio.

The LSH-GAN paper grows small datasets until they hold ``ratio`` times as many cells as
genes (``ratio = 1.5`` by default), keeping the cell-type proportions.  The generator can be
a saved model folder, a registry or run URI (``models:/lshgan-pollen@champion``, loaded with
``mlflow.pyfunc``) or a served endpoint (``http://127.0.0.1:5000``, the ``/invocations`` of
``mlflow models serve``): :func:`open_generator` picks the right client.

Examples
--------
>>> from lshgan.mlops.augment import augment
>>> real = lshgan.read_dataset("data/processed/pollen.h5ad", label_key="cell_type")   # doctest: +SKIP
>>> more = augment("models:/lshgan-pollen@champion", real, ratio=1.5)                 # doctest: +SKIP
>>> more.n_obs >= 1.5 * more.n_vars, more.obs["synthetic"].sum()                       # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import sys
import urllib.error
from pathlib import Path
from typing import Protocol

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputDataError, ParameterError, check_genes, check_positive_int
from ..preprocess import normalized_values

#: Cells per request sent to a pyfunc model or a server (below the served default bound).
CHUNK_CELLS = 5_000
#: Largest value accepted in ``.X`` of the real data (which must be on the log2(1+x) scale).
MAX_LOG_VALUE = 64.0
#: The counts layer (scanpy's convention, as :func:`lshgan.preprocess` writes it).
COUNTS = "counts"


class Generator(Protocol):
    """What :func:`augment` needs from a model, wherever it lives."""

    cell_types: list[str] | None  # None: not known to the client (a server answers errors)
    label_key: str | None
    counts: bool | None  # generates counts (``layer="counts"``); None: not known to the client

    def generate(self, requests: pd.DataFrame) -> ad.AnnData: ...


class FolderGenerator:
    """A saved :class:`~lshgan.LSHGAN` folder, used in-process."""

    def __init__(self, path: str | os.PathLike):
        from ..model import LSHGAN

        self.model = LSHGAN.load(path)
        self.cell_types = list(self.model.cell_types) if self.model.config.conditional else []
        self.label_key = self.model.label_key
        self.var_names = list(self.model.var_names)
        self.counts = bool(self.model.has_counts)

    def generate(self, requests: pd.DataFrame) -> ad.AnnData:
        from .serving.encoding import frame_to_anndata, generate_frame
        from .serving.request import parse_requests

        return frame_to_anndata(generate_frame(self.model, parse_requests(
            requests, cell_types=list(self.model.cell_types),
            conditional=bool(self.model.config.conditional), max_cells=CHUNK_CELLS,
            counts=self.counts)))


class PyfuncGenerator:
    """A logged pyfunc model (``models:/...``, ``runs:/...`` or an MLflow model folder)."""

    def __init__(self, uri: str):
        import mlflow
        from mlflow.exceptions import MlflowException

        from . import tracking

        tracking.configure()
        try:
            self.model = mlflow.pyfunc.load_model(uri)
        except (MlflowException, OSError) as err:
            raise ParameterError(f"{uri}: cannot load the model ({_first_line(err)})") from None
        meta = self.model.metadata.metadata or {}
        self.cell_types = list(meta["cell_types"]) if meta.get("conditional") else []
        self.label_key = meta.get("label_key")
        self.counts = bool(meta.get("counts"))  # logged before counts existed: none
        self.uri = uri
        outputs = self.model.metadata.get_output_schema()
        self.var_names = ([n for n in outputs.input_names() if n != "cell_type"]
                          if outputs is not None else None)

    def generate(self, requests: pd.DataFrame) -> ad.AnnData:
        from mlflow.exceptions import MlflowException

        from .serving.encoding import frame_to_anndata

        try:
            return frame_to_anndata(self.model.predict(requests))
        except MlflowException as err:
            raise ParameterError(f"{self.uri}: {_first_line(err)}") from None


class EndpointGenerator:
    """A model served by ``mlflow models serve`` (``POST <url>/invocations``).

    Cells travel in the ``npz`` encoding (float32 CSR, about 18x smaller and 38x faster
    than JSON columns at 20k genes; see :mod:`lshgan.mlops.serving`); the model's
    genes are asked for once, on first use.  A model logged before ``npz`` existed
    ignores the ``encoding`` column and answers in ``columns``, which is read as well.
    """

    def __init__(self, url: str, timeout: float = 600.0, encoding: str = "npz"):
        from .serving.client import invocations_url
        from .serving.request import ENCODINGS

        if encoding not in ENCODINGS:
            raise ParameterError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
        self.url = invocations_url(url)
        self.timeout = timeout
        self.encoding = encoding
        self.cell_types = None
        self.label_key = None
        self.counts = None  # asked for when needed: a 400 or non-integer values mean no
        self._genes: list[str] | None = None

    @property
    def var_names(self) -> list[str]:
        """The served model's genes, in order (one small request, then remembered)."""
        if self._genes is None:
            from .serving.client import fetch_genes

            self._genes = self._call(fetch_genes, self.url, timeout=self.timeout)
        return self._genes

    def generate(self, requests: pd.DataFrame) -> ad.AnnData:
        from .serving.client import post_invocations
        from .serving.encoding import frame_to_anndata

        if self.encoding == "npz":
            body, genes = _split(requests.assign(encoding="npz")), self.var_names
        else:
            body, genes = _split(requests), None
        return frame_to_anndata(self._call(post_invocations, self.url, body, timeout=self.timeout),
                                genes=genes)

    def _call(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` with HTTP and network errors as one :class:`ParameterError`."""
        try:
            return fn(*args, **kwargs)
        except urllib.error.HTTPError as err:
            raise ParameterError(f"{self.url}: HTTP {err.code}: {_server_message(err)}") from None
        except (urllib.error.URLError, OSError) as err:
            raise ParameterError(f"{self.url}: cannot reach the server ({err})") from None


def _split(requests: pd.DataFrame) -> dict:
    """``requests`` as MLflow's ``dataframe_split`` JSON body (missing values as null)."""
    return {"dataframe_split": {"columns": list(requests.columns),
                                "data": requests.astype(object).where(requests.notna(), None)
                                .values.tolist()}}


def open_generator(model: str | os.PathLike) -> Generator:
    """The client for ``model``: an endpoint URL, a model folder, or an MLflow model URI."""
    text = str(model)
    if text.startswith(("http://", "https://")):
        return EndpointGenerator(text)
    path = Path(text)
    if path.is_dir() and (path / "config.json").exists():
        return FolderGenerator(path)
    if path.is_dir() and (path / "MLmodel").exists():
        return PyfuncGenerator(str(path))
    if "://" in text or text.startswith(("models:/", "runs:/")):
        return PyfuncGenerator(text)
    raise ParameterError(f"{text}: not a model folder, an MLflow model URI (models:/NAME@ALIAS, "
                         "runs:/ID/PATH) or an http(s):// endpoint")


def allocate(n: int, proportions: pd.Series) -> pd.Series:
    """Split ``n`` cells over categories in ``proportions`` (largest remainders; sums to ``n``).

    Examples
    --------
    >>> allocate(10, pd.Series({"a": 0.5, "b": 0.3, "c": 0.2})).to_dict()
    {'a': 5, 'b': 3, 'c': 2}
    """
    p = proportions[proportions > 0].astype(float)
    p = p / p.sum()
    exact = p * n
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts).to_numpy(), kind="stable")
    counts.iloc[order[: n - int(counts.sum())]] += 1
    return counts[counts > 0]


def augment(model: str | os.PathLike | Generator, adata: ad.AnnData, *, ratio: float = 1.5,
            seed: int = 0, label_key: str | None = None) -> ad.AnnData:
    """Real cells plus generated ones, until ``n_cells >= ratio * n_genes``.

    Parameters
    ----------
    model
        A saved model folder, an MLflow model URI (``models:/lshgan-pollen@champion``), a
        served endpoint (``http://host:port``), or a client from :func:`open_generator`.
    adata
        Real cells on the model's scale (``log2(1+x)``, as :func:`lshgan.preprocess` writes
        them) with the model's genes (any order).
    ratio
        Target cells per gene (the paper's sample:feature ratio).
    seed
        Seed of the generated cells.
    label_key
        ``obs`` column with cell types (default: the model's, else ``cell_type`` if
        present).  New cells follow the real data's type proportions; without labels or
        with an unconditional model, the model's training proportions.

    Returns
    -------
    A new AnnData: the real cells (``obs['synthetic'] = False``) then the generated ones
    (``True``, types in ``obs[label_key]``); the input is not modified.  If ``adata`` already
    has enough cells, a copy of it.  ``uns['lshgan_augment']`` records what was done.
    Layers: ``normalized`` is ``2^x - 1`` of the generated ``log2(1+x)`` values; ``counts``
    (real cells with ``.layers['counts']``, as :func:`lshgan.preprocess` keeps for count
    data) comes from the model's counts of the same cells (the same requests with
    ``layer="counts"``); then ``obs['n_counts']`` and ``obs['n_genes']`` are recomputed
    from that layer for every cell (the real cells' former values, which
    :func:`lshgan.preprocess` takes before HVG selection, move to ``obs['library_size']``).
    A layer the model cannot generate (counts from a model trained on other data, or
    logged or served before counts existed) is dropped, with a message.

    Raises
    ------
    ParameterError, GeneMismatchError
        Bad ratio, unknown model, genes that differ from the model's, a bad answer.
    """
    if not (isinstance(ratio, (int, float)) and math.isfinite(ratio) and ratio > 0):
        raise ParameterError(f"ratio must be a positive number, got {ratio!r}")
    gen = _as_generator(model)
    _check_scale(adata)
    if getattr(gen, "var_names", None) is not None:  # before anything is generated or returned
        check_genes(adata.var_names, gen.var_names, what="model", ordered=False)
    target = math.ceil(ratio * adata.n_vars)
    n_new = max(0, target - adata.n_obs)
    label_key = label_key or (gen.label_key if gen.label_key in adata.obs else None) or (
        "cell_type" if "cell_type" in adata.obs else None)
    real = adata.copy()
    real.obs["synthetic"] = False
    info = {"model": str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__,
            "ratio": float(ratio), "seed": int(seed), "n_real": int(adata.n_obs),
            "n_generated": int(n_new), "target_cells": int(target)}
    if n_new == 0:
        real.uns["lshgan_augment"] = info
        _say(f"augment: {adata.n_obs} cells already >= {ratio:g} x {adata.n_vars} genes; nothing added")
        return real
    check_fits_in_memory(n_new, adata.n_vars, what=f"augment to {ratio:g} x {adata.n_vars} genes")
    requests = _requests(n_new, real, gen, label_key, seed)
    parts = [gen.generate(chunk) for chunk in chunk_requests(requests)]
    synth = ad.concat(parts, index_unique=None) if len(parts) > 1 else parts[0]
    synth = _align_genes(synth, adata)
    synth.obs_names = [f"synthetic_{i}" for i in range(synth.n_obs)]
    if label_key:
        synth.obs[label_key] = synth.obs["cell_type"].astype(str)
    if sp.issparse(adata.X):
        synth.X = sp.csr_matrix(synth.X)
    elif sp.issparse(synth.X):  # npz answers are sparse; keep the real data's layout
        synth.X = synth.X.toarray()
    for layer in real.layers:
        if layer == "normalized":  # the linear scale that lshgan.preprocess keeps
            synth.layers[layer] = normalized_values(synth.X)
    if COUNTS in real.layers:
        counts = _generated_counts(gen, requests, adata)
        if counts is not None:
            synth.layers[COUNTS] = (sp.csr_matrix(counts) if sp.issparse(real.layers[COUNTS])
                                    else (counts.toarray() if sp.issparse(counts) else counts))
    dropped = [k for k in real.layers if k not in synth.layers]
    if dropped:
        _say(f"augment: layer(s) {', '.join(dropped)} are not generated; they are dropped")
    out = ad.concat([real, synth], join="outer", merge="first", uns_merge="first")
    out.obs["synthetic"] = out.obs["synthetic"].astype(bool)
    if COUNTS in out.layers:
        _count_totals(out, real)
    if label_key:
        out.obs[label_key] = pd.Categorical(out.obs[label_key].astype(str))
    out.uns["lshgan_augment"] = info
    _say(f"augment: {adata.n_obs} real + {synth.n_obs} generated cells = {out.n_obs} "
         f"(>= {ratio:g} x {adata.n_vars} genes)")
    return out


def _generated_counts(gen, requests: pd.DataFrame, real: ad.AnnData):
    """The counts of the cells that ``requests`` generate (same requests, same chunks and
    seeds, ``layer="counts"``), aligned to ``real``'s genes; None if the model has none."""
    if gen.counts is False:
        return None
    try:
        parts = [gen.generate(chunk.assign(layer=COUNTS)) for chunk in chunk_requests(requests)]
    except ParameterError as err:
        if gen.counts is None:  # a server: the same cells in log just came back, so it is the layer
            _say(f"augment: the model gives no counts ({err})")
            return None
        raise
    cells = ad.concat(parts, index_unique=None) if len(parts) > 1 else parts[0]
    X = _align_genes(cells, real).X
    values = X.data if sp.issparse(X) else np.asarray(X)
    if not np.array_equal(values, np.round(values)):  # a server that ignored the layer
        _say("augment: the model answered non-integer values for layer counts (served or "
             "logged before counts existed)")
        return None
    return X


def _count_totals(out: ad.AnnData, real: ad.AnnData) -> None:
    """``obs['n_counts']``/``obs['n_genes']`` of every cell from the counts layer; the real
    cells' former ``n_counts`` (library sizes before HVG selection) as ``library_size``."""
    C = out.layers[COUNTS]
    if "n_counts" in real.obs.columns and "library_size" not in real.obs.columns:
        lib = np.full(out.n_obs, np.nan)
        lib[: real.n_obs] = real.obs["n_counts"].to_numpy(dtype=np.float64)
        out.obs["library_size"] = lib
    out.obs["n_counts"] = np.asarray(C.sum(axis=1), dtype=np.float64).ravel()
    out.obs["n_genes"] = (np.diff(sp.csr_matrix(C).indptr) if sp.issparse(C)
                          else (np.asarray(C) > 0).sum(axis=1)).astype(np.int64)


def sample(model: str | os.PathLike | Generator, n_cells: int, *, cell_type: str | None = None,
           seed: int = 0, layer: str = "log") -> ad.AnnData:
    """``n_cells`` generated cells from any model reference (see :func:`open_generator`);
    ``.X`` holds ``layer`` (``log``, ``normalized`` or ``counts``: see
    :mod:`lshgan.mlops.serving`).

    Examples
    --------
    >>> cells = sample("http://127.0.0.1:5000", 100, cell_type="CD19+ B")   # doctest: +SKIP
    """
    n_cells = check_positive_int("n_cells", n_cells)
    gen = _as_generator(model)
    genes = getattr(gen, "var_names", None)
    if genes is not None:
        check_fits_in_memory(n_cells, len(genes))
    request = pd.DataFrame({"n_cells": [n_cells], "cell_type": [cell_type], "seed": [int(seed)]})
    if cell_type is None:
        request = request.drop(columns="cell_type")
    if layer != "log":  # models logged before layers existed keep answering log requests
        request["layer"] = layer
    parts = [gen.generate(chunk) for chunk in chunk_requests(request)]
    cells = ad.concat(parts, index_unique=None) if len(parts) > 1 else parts[0]
    cells.obs_names = [f"synthetic_{i}" for i in range(cells.n_obs)]
    return cells


def check_fits_in_memory(n_cells: int, n_genes: int, *, what: str = "generate") -> None:
    """Refuse, before any work, a request whose cells cannot fit in memory: ``n_cells x
    n_genes`` float32 values, twice (the parts and their concatenation), against the
    memory available now (:func:`psutil.virtual_memory`).  A typo such as ``-n 100000000``
    is one clear error instead of minutes of requests and a machine out of memory."""
    import psutil

    need = 2 * 4 * float(n_cells) * n_genes
    avail = psutil.virtual_memory().available
    if need > avail:
        most = int(avail // (2 * 4 * max(n_genes, 1)))
        raise ParameterError(f"{what}: {n_cells:,} cells x {n_genes:,} genes need about "
                             f"{need / 2**30:,.0f} GiB as float32, {avail / 2**30:.0f} GiB are "
                             f"available: ask for at most {most:,} cells at a time")


def _as_generator(model) -> Generator:
    if hasattr(model, "generate") and not isinstance(model, (str, os.PathLike)):
        return model
    return open_generator(model)


def _requests(n_new: int, real: ad.AnnData, gen, label_key: str | None, seed: int) -> pd.DataFrame:
    """One request row per cell type, in the real data's proportions."""
    if not label_key or gen.cell_types == []:
        return pd.DataFrame({"n_cells": [n_new], "seed": [seed]})
    counts = real.obs[label_key].astype(str).value_counts()
    if gen.cell_types is not None:
        unknown = [t for t in counts.index if t not in set(gen.cell_types)]
        if len(unknown) == len(counts):
            raise ParameterError(f"none of the cell types of {label_key!r} ({', '.join(counts.index[:5])}"
                                 f") is known to the model ({', '.join(gen.cell_types[:5])})")
        if unknown:
            _say(f"augment: cell types unknown to the model are not generated: {', '.join(unknown)}")
            counts = counts.drop(unknown)
    alloc = allocate(n_new, counts / counts.sum())
    return pd.DataFrame({"n_cells": alloc.to_numpy(dtype=np.int64), "cell_type": list(alloc.index),
                         "seed": np.arange(len(alloc), dtype=np.int64) + int(seed)})


def chunk_requests(requests: pd.DataFrame):
    """The requests cut into pieces and packed so that each asks for <= :data:`CHUNK_CELLS` cells.

    Pieces of one row get different seeds (``seed + 7919 * piece``), so they differ.
    """
    pieces = []
    for rec in requests.to_dict(orient="records"):
        left, part = int(rec["n_cells"]), 0
        while left > 0:
            take = min(left, CHUNK_CELLS)
            pieces.append({**rec, "n_cells": take, "seed": int(rec["seed"]) + 7919 * part})
            left, part = left - take, part + 1
    batch, total = [], 0
    for piece in pieces:
        if batch and total + piece["n_cells"] > CHUNK_CELLS:
            yield pd.DataFrame(batch, columns=requests.columns)
            batch, total = [], 0
        batch.append(piece)
        total += piece["n_cells"]
    if batch:
        yield pd.DataFrame(batch, columns=requests.columns)


def _align_genes(synth: ad.AnnData, real: ad.AnnData) -> ad.AnnData:
    """Generated cells in ``real``'s gene order (the same genes: checked before generating)."""
    order = check_genes(synth.var_names, real.var_names, what="real cells", ordered=False)
    return synth if order is None else synth[:, order].copy()


def _check_scale(adata: ad.AnnData) -> None:
    X = adata.X
    top = float(X.max()) if X.shape[0] and X.shape[1] else 0.0
    if top > MAX_LOG_VALUE:
        raise InputDataError(f"values up to {top:.3g}: augment expects cells on the model's "
                             "log2(1+x) scale (preprocess the data with `lshgan preprocess` first)")


def _server_message(err: urllib.error.HTTPError) -> str:
    raw = err.read().decode("utf-8", "replace")
    try:
        message = json.loads(raw).get("message", raw)
    except (ValueError, AttributeError):
        message = raw
    return _first_line(message.split("Error: ")[-1] if "Failed to predict" in message else message)


def _first_line(err) -> str:
    text = str(err).strip()
    return text.splitlines()[-1 if text.startswith("Failed to") else 0] if text else type(err).__name__


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)

