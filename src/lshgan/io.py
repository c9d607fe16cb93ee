"""Reading, validating and writing single-cell datasets.

Everything that touches a file lives here: :func:`read_dataset` reads any format scanpy
reads (``.h5ad``, 10x ``.mtx`` folders and ``.h5``, ``.csv``/``.tsv``/``.txt``, ``.loom``)
or the embedded default ``pbmc68k_reduced`` that ships inside scanpy's wheel, and
:func:`validate_matrix` checks it before any work starts.  Writers are atomic (temporary
file in the same folder, then :func:`os.replace`) and refuse to overwrite without
``force``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import DataWarning, InputDataError, OutputBusyError, OutputExistsError, ParameterError

log = logging.getLogger(__name__)

#: Name accepted wherever a dataset path is expected: scanpy's bundled PBMC 68k subset.
EMBEDDED_DEFAULT = "pbmc68k_reduced"


def load_embedded_default() -> ad.AnnData:
    """Return scanpy's bundled ``pbmc68k_reduced`` (700 cells x 765 genes) on a linear scale.

    The bundled ``.X`` is z-scored; ``.raw`` holds ``log1p`` of library-size-normalised
    counts.  We return ``expm1(raw)``: non-negative, library-size-normalised values, so the
    usual preprocessing (filtering, normalisation, ``log2(1+x)``) applies to it like to any
    other dataset.  Labels are in ``obs['cell_type']`` (from ``bulk_labels``).  Nothing is
    downloaded.
    """
    import scanpy as sc

    bundled = sc.datasets.pbmc68k_reduced()
    raw = bundled.raw.to_adata()
    X = raw.X.toarray() if sp.issparse(raw.X) else np.asarray(raw.X)
    X = np.expm1(X.astype(np.float64)).clip(min=0).astype(np.float32)
    adata = ad.AnnData(
        X=sp.csr_matrix(X),
        obs=pd.DataFrame({"cell_type": bundled.obs["bulk_labels"].astype(str).values},
                         index=bundled.obs_names.copy()),
        var=pd.DataFrame(index=raw.var_names.copy()),
    )
    adata.uns["source_info"] = {
        "name": EMBEDDED_DEFAULT,
        "origin": "scanpy.datasets.pbmc68k_reduced() (ships inside the scanpy wheel)",
        "values": "expm1 of the bundled .raw (library-size normalised, linear scale)",
    }
    return adata


def read_dataset(
    path: str | os.PathLike,
    *,
    label_key: str | None = None,
    transpose: bool = False,
    layer: str | None = None,
    obs: str | os.PathLike | None = None,
) -> ad.AnnData:
    """Read a cells x genes dataset and check that it is usable.

    Parameters
    ----------
    path
        ``.h5ad``, ``.loom``, a 10x ``.h5`` file, a 10x folder holding ``matrix.mtx(.gz)``,
        a ``.mtx`` file, a delimited text file (``.csv``, ``.tsv``, ``.txt``, optionally
        gzipped) with cells as rows and gene names as header, or the string
        ``"pbmc68k_reduced"`` for the embedded default.
    label_key
        Column of ``.obs`` holding cell types; it must exist.  Labels are stored as strings.
    transpose
        Text and ``.mtx`` files only: the file is genes x cells (as R, GEO tables and a bare
        10x ``matrix.mtx`` are).  Not given, a file whose gene names look like cell
        barcodes, or a bare ``.mtx`` (no names to tell), gets a :class:`DataWarning`.
    layer
        Use ``.layers[layer]`` as the matrix (e.g. raw counts beside a scaled ``.X``): it
        replaces ``.X`` before the checks, the layers stay as they are.  ``"raw"``, when no
        layer has that name: ``.raw`` (scanpy's place for the values of every gene), with
        its genes.
    obs
        A ``.csv``/``.tsv``/``.txt`` table of cell annotations (e.g. the cell types of a
        matrix file that has none): first column the cell names, one row per cell; its
        columns are joined into ``.obs`` (replacing columns of the same name, with a
        warning) before ``label_key`` is checked.  Every cell needs a row; rows of other
        cells are ignored (counted in a log line).

    Repeated cell names (e.g. barcodes of several samples) are made unique with
    :meth:`anndata.AnnData.obs_names_make_unique`, and repeated gene symbols of a 10x
    folder or ``.h5`` (normal in Cell Ranger output) with ``var_names_make_unique``, as
    scanpy does; both with a :class:`DataWarning` naming how many.

    Returns
    -------
    AnnData with a float32 CSR ``.X``; the file on disk is never modified.

    Raises
    ------
    InputDataError
        Naming the file and the problem.

    Examples
    --------
    >>> adata = read_dataset("pbmc68k_reduced", label_key="cell_type")
    >>> adata.shape
    (700, 765)
    """
    name = str(path)
    if name == EMBEDDED_DEFAULT:
        adata = load_embedded_default()
    else:
        adata = _read_file(Path(path), transpose=transpose)
    from_raw = layer == RAW and RAW not in adata.layers and adata.raw is not None
    if from_raw:  # scanpy keeps the counts of every gene in .raw, .X often a subset of them
        log.info(f"{name}: the values of .raw ({adata.raw.n_vars} genes; .X has {adata.n_vars})")
        adata = adata.raw.to_adata()
    adata.X = _as_float32_csr(adata.X if from_raw else matrix_of(adata, layer, name=name), name)
    if from_raw:
        adata.layers[RAW] = adata.X  # what --layer raw names from here on (one matrix, not two)
    if adata.obs_names.has_duplicates:
        dup = adata.obs_names[adata.obs_names.duplicated()]
        warnings.warn(f"{name}: {len(dup)} repeated cell names (e.g. {dup[0]!r}); made unique by "
                      "appending -1, -2, ... (obs_names_make_unique)", DataWarning, stacklevel=2)
        adata.obs_names_make_unique()
    if obs is not None:
        _join_obs(adata, Path(obs), name)
    if label_key is not None:
        if label_key not in adata.obs.columns:
            cols = ", ".join(map(str, adata.obs.columns)) or "none"
            raise InputDataError(
                f"{name}: label column {label_key!r} not found in .obs (columns: {cols})"
            )
        labels = adata.obs[label_key]
        if labels.isna().any():
            raise InputDataError(
                f"{name}: label column {label_key!r} has {int(labels.isna().sum())} missing values"
            )
        adata.obs[label_key] = pd.Categorical(labels.astype(str))
    validate_matrix(adata, name=name)
    return adata


#: the ``layer`` that names ``adata.raw`` when no layer has that name (scanpy's counts of every gene)
RAW = "raw"


def matrix_of(adata: ad.AnnData, layer: str | None = None, *, name: str = "data"):
    """``adata.X``, or ``adata.layers[layer]`` (an :class:`InputDataError` naming the layers
    there if it is missing); ``layer="raw"`` without such a layer: ``adata.raw.X`` when it
    has the genes of ``.X``."""
    if layer is None:
        return adata.X
    if layer == RAW and RAW not in adata.layers and adata.raw is not None:
        if adata.raw.n_vars == adata.n_vars and (adata.raw.var_names == adata.var_names).all():
            return adata.raw.X
        raise InputDataError(f"{name}: .raw holds {adata.raw.n_vars} genes and .X {adata.n_vars}: "
                             "read the file with lshgan.read_dataset(path, layer='raw'), which "
                             "takes the genes of .raw")
    if layer not in adata.layers:
        have = ", ".join(map(str, adata.layers)) or "none"
        raise InputDataError(f"{name}: no layer {layer!r} (layers: {have})")
    return adata.layers[layer]


def _read_file(path: Path, *, transpose: bool) -> ad.AnnData:
    import scanpy as sc

    if not path.exists():
        raise InputDataError(f"{path}: file not found")
    suffixes = "".join(path.suffixes[-2:]).lower()
    try:
        if path.is_dir():
            if any((path / f).exists() for f in ("matrix.mtx", "matrix.mtx.gz")):
                return _unique_genes(sc.read_10x_mtx(path, var_names="gene_symbols",
                                                     make_unique=False), path)
            raise InputDataError(f"{path}: folder without matrix.mtx(.gz); not a 10x folder")
        if path.stat().st_size == 0:
            raise InputDataError(f"{path}: file is empty")
        if suffixes.endswith(".h5ad"):
            _check_hdf5_signature(path)
            return ad.read_h5ad(path)
        if suffixes.endswith(".loom"):
            return sc.read_loom(path)
        if suffixes.endswith(".h5"):
            _check_hdf5_signature(path)
            return _unique_genes(sc.read_10x_h5(path), path)
        if suffixes.endswith(".mtx") or suffixes.endswith(".mtx.gz"):
            adata = sc.read_mtx(path)
            if not transpose:
                warnings.warn(f"{path}: a bare .mtx names neither cells nor genes: read as "
                              f"{adata.n_obs} cells (rows) x {adata.n_vars} genes (columns); 10x "
                              "writes genes x cells: pass --transpose (transpose=True) if the rows "
                              "are genes, or read the whole 10x folder", DataWarning, stacklevel=3)
            return adata.T if transpose else adata
        if any(suffixes.endswith(s) for s in (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")):
            adata = _read_text(path, transpose=transpose)
            if not transpose and _look_like_barcodes(adata.var_names):
                warnings.warn(f"{path}: the gene names (header) look like cell barcodes, e.g. "
                              f"{adata.var_names[0]!r}: if the file is genes x cells, pass "
                              "--transpose (transpose=True)", DataWarning, stacklevel=3)
            return adata
    except (InputDataError, MemoryError, KeyboardInterrupt):
        raise
    except ModuleNotFoundError as err:
        raise InputDataError(f"{path}: reading this format needs the Python package "
                             f"{err.name!r} (pip install {err.name})") from None
    except Exception as err:  # noqa: BLE001 - whatever a parser raises, the file is at fault
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if suffixes.endswith((".h5ad", ".h5")):
            raise InputDataError(f"{path}: truncated, corrupt or not written by anndata/10x; "
                                 f"cannot be read ({type(err).__name__}: {detail[:300]})") from None
        raise InputDataError(f"{path}: cannot be read ({type(err).__name__}: {detail[:300]})") from None
    raise InputDataError(
        f"{path}: unknown format {suffixes or '(no extension)'}; "
        "use .h5ad, .loom, .h5, .mtx, a 10x folder, or .csv/.tsv/.txt"
    )


def _unique_genes(adata: ad.AnnData, path: Path) -> ad.AnnData:
    """Repeated gene symbols of 10x output made unique (scanpy's ``var_names_make_unique``)."""
    if adata.var_names.has_duplicates:
        dup = adata.var_names[adata.var_names.duplicated()].unique()
        warnings.warn(f"{path}: {len(dup)} repeated gene symbols (e.g. "
                      f"{', '.join(map(str, dup[:3]))}); made unique by appending -1, -2, ... "
                      "(var_names_make_unique)", DataWarning, stacklevel=4)
        adata.var_names_make_unique()
    return adata


#: a 10x / Drop-seq style cell barcode, optionally with a sample suffix (AAACCTGAGAAGGCCT-1)
_BARCODE = r"^(?:[A-Za-z0-9]+[_:#.-])?[ACGTN]{10,}(?:[-_.][0-9A-Za-z]+)?$"


def _look_like_barcodes(names: pd.Index) -> bool:
    """Whether most of ``names`` are cell barcodes rather than gene names."""
    if len(names) == 0:
        return False
    sample = pd.Series(names[:1000].astype(str))
    return bool(sample.str.match(_BARCODE).mean() >= 0.9)


def _join_obs(adata: ad.AnnData, path: Path, name: str) -> None:
    """Join the cell annotation table ``path`` into ``adata.obs`` (see :func:`read_dataset`)."""
    if not path.is_file():
        raise InputDataError(f"{path}: cell annotation table not found")
    sep = "," if ".csv" in path.name.lower() else "\t"
    try:
        table = pd.read_csv(path, sep=sep, index_col=0)
    except Exception as err:  # noqa: BLE001 - whatever the parser raises, the file is at fault
        raise InputDataError(f"{path}: cannot be read as a cell annotation table "
                             f"({type(err).__name__}: {str(err).strip()[:200]})") from None
    table.index = table.index.astype(str).str.strip()
    if table.shape[1] == 0:
        raise InputDataError(f"{path}: no annotation columns (the first column holds the cell names)")
    if table.index.has_duplicates:
        dup = table.index[table.index.duplicated()].unique()
        raise InputDataError(f"{path}: {len(dup)} cells with more than one row, e.g. {', '.join(dup[:3])}")
    missing = adata.obs_names.difference(table.index, sort=False)
    if len(missing):
        flipped = len(missing) == adata.n_obs and adata.var_names.isin(table.index).mean() > 0.5
        hint = ("; the table names the matrix's genes as cells: is the matrix genes x cells? "
                "pass --transpose" if flipped else " (the first column must hold the cell names)")
        raise InputDataError(f"{path}: no row for {len(missing)} of the {adata.n_obs} cells of {name}, "
                             f"e.g. {', '.join(map(str, missing[:3]))}{hint}")
    replaced = [c for c in table.columns if c in adata.obs.columns]
    if replaced:
        warnings.warn(f"{path}: replaces the column(s) {', '.join(map(str, replaced))} of {name}",
                      DataWarning, stacklevel=3)
    extra = len(table.index) - adata.n_obs
    if extra:
        log.info(f"{path}: {extra} rows of cells not in {name} ignored")
    for col in table.columns:
        adata.obs[col] = table.loc[adata.obs_names, col].to_numpy()


def _check_hdf5_signature(path: Path) -> None:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head != b"\x89HDF\r\n\x1a\n":
        raise InputDataError(f"{path}: not an HDF5 file (truncated or wrong format)")


def _read_text(path: Path, *, transpose: bool) -> ad.AnnData:
    sep = "," if ".csv" in path.name.lower() else "\t"
    df = pd.read_csv(path, sep=sep, index_col=0)
    # pandas renames a repeated header ("g1" -> "g1.1") and fills an empty one ("Unnamed: 2"):
    # check the names as written in the file
    if transpose:
        names, what = pd.Index(df.index.astype(str).str.strip()), "gene names (first column)"
    else:
        header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str,
                             keep_default_na=False).iloc[0, 1:]
        names, what = pd.Index([str(h).strip() for h in header]), "gene names (header)"
    if (names == "").any():
        raise InputDataError(f"{path}: {int((names == '').sum())} missing {what}")
    if names.has_duplicates:
        dup = names[names.duplicated()].unique()
        raise InputDataError(f"{path}: {len(dup)} duplicated {what}, e.g. {', '.join(dup[:3])}")
    if transpose:
        df = df.T
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise InputDataError(f"{path}: matrix is empty ({df.shape[0]} cells x {df.shape[1]} genes)")
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        col = bad[0]
        coerced = pd.to_numeric(df[col], errors="coerce")
        row = df.index[coerced.isna() & df[col].notna()]
        where = f" (row {row[0]!r})" if len(row) else ""
        raise InputDataError(
            f"{path}: non-numeric values in {len(bad)} column(s), first {col!r}{where}"
        )
    adata = ad.AnnData(X=df.to_numpy(dtype=np.float32))
    adata.obs_names = df.index.astype(str)
    adata.var_names = df.columns.astype(str)
    return adata


def _as_float32_csr(X, name: str) -> sp.csr_matrix:
    try:
        if sp.issparse(X):
            return sp.csr_matrix(X, dtype=np.float32)
        return sp.csr_matrix(np.asarray(X, dtype=np.float32))
    except (TypeError, ValueError) as err:
        raise InputDataError(f"{name}: matrix is not numeric ({err})") from None


def validate_matrix(adata: ad.AnnData, *, name: str = "data") -> None:
    """Check the things every later step relies on; raise :class:`InputDataError` if not.

    Non-empty, finite, non-negative values; unique, non-empty gene names; no cell whose
    values are all zero (after which no gene can be expressed in it).
    """
    n_obs, n_vars = adata.shape
    if n_obs == 0 or n_vars == 0:
        raise InputDataError(f"{name}: matrix is empty ({n_obs} cells x {n_vars} genes)")
    data = adata.X.data if sp.issparse(adata.X) else np.asarray(adata.X).ravel()
    if data.size and not np.isfinite(data).all():
        n_bad = int((~np.isfinite(data)).sum())
        raise InputDataError(f"{name}: {n_bad} NaN or infinite values in the matrix")
    if data.size and data.min() < 0:
        layers = (f"; read counts or log-normalised values from a layer with --layer NAME "
                  f"(layers here: {', '.join(map(str, adata.layers))})" if len(adata.layers) else "")
        if adata.raw is not None and RAW not in adata.layers:
            layers += f"; --layer raw reads .raw ({adata.raw.n_vars} genes)"
        raise InputDataError(
            f"{name}: negative values (min {data.min():.3g}); expected counts or "
            f"non-negative expression (e.g. RPKM/TPM), not scaled or centred data{layers}"
        )
    names = pd.Index(adata.var_names.astype(str))
    if (names.str.strip() == "").any() or names.isna().any():
        raise InputDataError(f"{name}: {int((names.str.strip() == '').sum())} missing gene names")
    if names.has_duplicates:
        dup = names[names.duplicated()].unique()
        raise InputDataError(
            f"{name}: {len(dup)} duplicated gene names, e.g. {', '.join(map(str, dup[:3]))}"
        )
    if data.size == 0 or not np.any(data):
        raise InputDataError(f"{name}: every value is zero")


def dataset_hash(adata: ad.AnnData) -> str:
    """A short SHA-256 of the matrix, gene names and cell names (recorded with every run)."""
    h = hashlib.sha256()
    X = adata.X.tocsr() if sp.issparse(adata.X) else sp.csr_matrix(adata.X)
    for arr in (X.indptr, X.indices, X.data.astype(np.float32)):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update("\0".join(map(str, adata.var_names)).encode())
    h.update("\0".join(map(str, adata.obs_names)).encode())
    return h.hexdigest()[:16]


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_writable(path: str | os.PathLike, *, force: bool = False,
                   suffix: str | None = None) -> Path:
    """Raise :class:`OutputExistsError` if ``path`` exists and ``force`` is false, and
    :class:`~lshgan.errors.ParameterError` if ``suffix`` is given and ``path`` does not end
    in it (an ``.h5ad`` written under a ``.csv`` name misleads whoever opens it)."""
    path = Path(path)
    if suffix is not None and path.suffix.lower() != suffix:
        raise ParameterError(f"{path}: this output is written as {suffix}; name it *{suffix}")
    if path.exists() and not force:
        raise OutputExistsError(f"{path}: already exists; pass --force (force=True) to overwrite")
    return path


def check_training_cells(adata: ad.AnnData, *, name: str = "training data",
                         label_key: str | None = None, k: int | None = None) -> None:
    """Checks of training cells beyond :func:`validate_matrix`; named after ``name``.

    Raises :class:`InputDataError` for cells with no expressed gene (empty droplets:
    :func:`lshgan.preprocess` removes them) and for ``k`` or fewer cells (LSH sampling needs
    more than ``k``).  Warns (:class:`DataWarning`) for genes that are zero in every cell
    and for cell types with a single cell, which are usable but suspicious.
    """
    X = adata.X.tocsr() if sp.issparse(adata.X) else sp.csr_matrix(np.asarray(adata.X))
    if k is not None and adata.n_obs <= k:
        raise InputDataError(f"{name}: {adata.n_obs} cells; LSH sampling with k={k} needs more "
                             "than k cells (lower --k)")
    X = X.copy()
    X.eliminate_zeros()
    empty = np.flatnonzero(np.diff(X.indptr) == 0)
    if empty.size:
        eg = ", ".join(map(str, adata.obs_names[empty[:3]]))
        raise InputDataError(f"{name}: {empty.size} cells with no expressed gene (e.g. {eg}); "
                             "train on preprocessed cells (lshgan preprocess removes them)")
    zero_genes = np.flatnonzero(np.bincount(X.indices, minlength=X.shape[1]) == 0)
    if zero_genes.size:
        eg = ", ".join(map(str, adata.var_names[zero_genes[:3]]))
        warnings.warn(f"{name}: {zero_genes.size} genes are zero in every cell (e.g. {eg}); "
                      "generated cells will leave them at zero", DataWarning, stacklevel=2)
    if label_key is not None and label_key in adata.obs:
        counts = adata.obs[label_key].astype(str).value_counts()
        single = sorted(counts.index[counts == 1])
        if single:
            warnings.warn(f"{name}: {len(single)} cell types have a single cell "
                          f"({', '.join(single[:5])}); generated cells of these types can only "
                          "imitate that one cell", DataWarning, stacklevel=2)


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of an output: ``.<name>.lock`` in the same folder."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


_HELD_LOCKS: dict[Path, int] = {}


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive lock of output ``path`` (a file or a folder) while writing it.

    The lock is the file ``.<name>.lock`` next to ``path`` (:func:`lock_path`), created on
    entry with the holder's pid, host and start time, locked with :func:`fcntl.flock` and
    removed on exit.  The kernel drops a flock when its process dies, even by SIGKILL, so a
    lock file left behind by a killed process is stale and simply taken over; a lock held by
    a live process raises :class:`OutputBusyError` at once, before anything is written.  The
    same process may nest locks on one path.

    Examples
    --------
    >>> with output_lock("models/pollen"):          # doctest: +SKIP
    ...     model.save("models/pollen", force=True)
    """
    import json
    import socket
    import time

    path = Path(path)
    lock = lock_path(path).absolute()
    if lock in _HELD_LOCKS:  # nested use in the same process
        _HELD_LOCKS[lock] += 1
        try:
            yield lock
        finally:
            _HELD_LOCKS[lock] -= 1
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        yield lock
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(20):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise OutputBusyError(
                f"{path}: another process{holder} is writing it (lock {lock.name}); wait for it "
                "to finish or choose another output; nothing was changed") from None
        try:  # the holder before us may have removed the file we opened: lock the new one
            if os.path.samestat(os.fstat(fd), os.stat(lock)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    else:  # pragma: no cover - 20 lost races in a row
        raise OutputBusyError(f"{path}: could not take its lock {lock}")
    _HELD_LOCKS[lock] = 1
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        yield lock
    finally:
        del _HELD_LOCKS[lock]
        try:
            if os.path.samestat(os.fstat(fd), os.stat(lock)):
                os.unlink(lock)
        except FileNotFoundError:
            pass
        os.close(fd)


def _lock_holder(fd: int) -> str:
    import json

    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f" (pid {info['pid']} on {info['host']}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    A crash or an exception leaves no partial output behind, and an existing ``path`` is
    only replaced when ``force`` is true.
    """
    path = check_writable(path, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes),
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if not force and path.exists():
            raise OutputExistsError(f"{path}: appeared while writing; not overwritten")
        if tmp.is_file():  # mkstemp makes it 0600: give it the mode a plain open() would
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write ``adata`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, force=force) as tmp:
        adata.write_h5ad(tmp)
    return Path(path)


def write_json(obj, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write JSON atomically, with sorted keys and indentation."""
    import json

    with atomic_path(path, force=force) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
    return Path(path)


def _json_default(o):
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
