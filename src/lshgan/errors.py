"""Exceptions raised for bad input.

Every error a *user* can cause (a missing file, a malformed matrix, a parameter out of
range, a checkpoint for other genes) is an :class:`LSHGANError` subclass.  The command
line catches exactly these and prints one line, without a traceback, and exits with a
non-zero status; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LSHGANError(Exception):
    """Base class of every user-facing error in lshgan."""


class InputDataError(LSHGANError, ValueError):
    """A dataset cannot be read or fails validation (names the file and the problem)."""


class ParameterError(LSHGANError, ValueError):
    """A parameter is out of range or inconsistent with the data."""


class GeneMismatchError(LSHGANError, ValueError):
    """Genes of a dataset do not match those a model was trained on."""


class CheckpointError(LSHGANError, RuntimeError):
    """A saved model directory is missing, incomplete or from another version."""


class OutputExistsError(LSHGANError, FileExistsError):
    """An output exists and ``force`` was not given: nothing is overwritten silently."""


class TrainingDivergedError(LSHGANError, RuntimeError):
    """Training produced non-finite losses; the last good checkpoint is kept."""


class OutputBusyError(LSHGANError, RuntimeError):
    """Another process is writing the same output (its lock is held): nothing was changed."""


class DataWarning(UserWarning):
    """Usable but suspicious input (a cell type with one cell, genes zero in every cell).

    The command line prints it as one ``warning: ...`` line.
    """


def check_positive_int(name: str, value, *, minimum: int = 1) -> int:
    """Return ``value`` as int, or raise :class:`ParameterError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        hasattr(value, "__index__")
    ):
        raise ParameterError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ParameterError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_positive_float(name: str, value, *, allow_zero: bool = False) -> float:
    """Return ``value`` as float, or raise :class:`ParameterError` naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not (v == v) or v in (float("inf"), float("-inf")):
        raise ParameterError(f"{name} must be finite, got {value!r}")
    if v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ParameterError(f"{name} must be {bound}, got {value!r}")
    return v


def check_genes(genes, reference, *, what: str = "model", name: str | None = None,
                ordered: bool = True) -> list[int] | None:
    """Raise :class:`GeneMismatchError` unless ``genes`` (a dataset's) are the ``reference`` genes.

    The one gene-set check of lshgan (a model's genes, the training cells' genes, a
    reference dataset's).

    Parameters
    ----------
    genes, reference
        Gene names (compared as strings).
    what
        What the reference genes belong to, for the message (``"model"``, ...).
    name
        The dataset (its file, say): the message starts with ``"{name}: "``.
    ordered
        Also require the same order; otherwise the same genes (none twice) in any order.

    Returns
    -------
    None when ``genes`` equal ``reference`` in order; with ``ordered=False``, otherwise the
    positions in ``genes`` of the reference genes, in reference order (to align by name).

    Raises
    ------
    GeneMismatchError
        Naming how many genes are missing, unknown (not in the reference) or duplicated,
        with up to three of each, or saying that the order differs.

    Examples
    --------
    >>> check_genes(["b", "a"], ["a", "b"], ordered=False)
    [1, 0]
    >>> check_genes(["a", "c"], ["a", "b"], name="cells.h5ad")
    Traceback (most recent call last):
    ...
    lshgan.errors.GeneMismatchError: cells.h5ad: genes of the data do not match the model: 1 gene missing (e.g. b); 1 unknown gene (e.g. c)
    """
    genes, reference = [str(g) for g in genes], [str(g) for g in reference]
    if genes == reference:
        return None
    position = {g: i for i, g in enumerate(genes)}
    known = set(reference)
    missing = [g for g in reference if g not in position]
    unknown = [g for g in genes if g not in known]
    duplicated = _repeated(genes) + _repeated(reference)
    if not (missing or unknown or duplicated):
        if not ordered:
            return [position[g] for g in reference]
        detail = "same genes in a different order"
    else:
        detail = "; ".join(f"{len(found)} {label} (e.g. {', '.join(found[:3])})" for found, label in (
            (missing, _genes(len(missing)) + " missing"), (unknown, "unknown " + _genes(len(unknown))),
            (duplicated, "duplicated " + _genes(len(duplicated)))) if found)
    prefix = f"{name}: " if name else ""
    raise GeneMismatchError(f"{prefix}genes of the data do not match the {what}: {detail}")


def _repeated(names: list[str]) -> list[str]:
    """Second and later occurrences of names in ``names``."""
    seen: set[str] = set()
    return [g for g in names if g in seen or seen.add(g)]


def _genes(n: int) -> str:
    return "gene" if n == 1 else "genes"
