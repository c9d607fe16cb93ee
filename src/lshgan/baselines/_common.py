"""Small helpers shared by the baselines (dense arrays, the ``log2(1+x)`` scale; its inverse is
:func:`lshgan.preprocess.normalized_values`)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def dense(X) -> np.ndarray:
    """``X`` as a dense float64 array (CSR is densified)."""
    return X.toarray().astype(np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64)


def log_scale(X: np.ndarray) -> np.ndarray:
    """Linear-scale values to the ``log2(1+x)`` scale of :func:`lshgan.preprocess` (float32)."""
    return np.log2(1.0 + np.maximum(X, 0.0)).astype(np.float32)
