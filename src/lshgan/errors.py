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
