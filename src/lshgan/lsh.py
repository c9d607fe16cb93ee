"""Locality-sensitive hashing: approximate k nearest neighbours and the LSH subsample.

The authors' code used scikit-learn's ``LSHForest`` (Bawa et al. 2005), removed in
scikit-learn 0.21.  :class:`LSHForest` re-implements that index with NumPy, vectorised
over cells:

* each of ``n_trees`` trees draws ``n_bits`` random hyperplanes through the data mean
  (sign random projections, the angular LSH family of Charikar 2002) and gives every cell
  an ``n_bits``-bit hash;
* the cells are sorted by hash, so cells whose hashes share the longest prefixes sit
  next to each other; a cell's candidates in one tree are the ``window`` cells on each
  side of it in that order (LSHForest's synchronous descent, with a fixed candidate
  budget instead of a prefix-length loop);
* candidates of all trees are pooled and re-ranked by exact Euclidean distance.

No dense n x n matrix is ever built: time is O(n log n) for the sort plus
O(n * n_trees * window * d) for the re-ranking, memory O(n * n_trees * window).

:func:`lsh_subsample` is the paper's greedy pass on top of the index: visit the cells
in order; an unvisited cell is kept and its k neighbours are marked visited; the pass
is repeated ``t`` times on the kept set.
"""

from __future__ import annotations

import numpy as np

from .errors import ParameterError, check_positive_int

_MAX_BITS = 62


class LSHForest:
    """Approximate Euclidean k-NN index over the rows of a dense matrix.

    Parameters
    ----------
    n_trees
        Number of independent hash trees (more trees: higher recall, more time).
    n_bits
        Bits per hash (at most 62).
    window
        Candidates taken on each side of a cell in each tree's sorted order; ``None``
        chooses ``max(2 * k, 8)`` at query time.
    seed
        Seed of the random hyperplanes: the same seed gives the same neighbours.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(500, 50))
    >>> idx, dist = LSHForest(seed=0).fit(X).kneighbors(k=5)
    >>> idx.shape
    (500, 5)
    """

    def __init__(self, n_trees: int = 32, n_bits: int = 32, window: int | None = None,
                 seed: int = 0):
        self.n_trees = check_positive_int("n_trees", n_trees)
        self.n_bits = check_positive_int("n_bits", n_bits)
        if self.n_bits > _MAX_BITS:
            raise ParameterError(f"n_bits must be <= {_MAX_BITS}, got {n_bits}")
        self.window = None if window is None else check_positive_int("window", window)
        self.seed = int(seed)

    def fit(self, X: np.ndarray) -> "LSHForest":
        """Hash every row of ``X`` (cells x features) into each tree."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[0] < 2:
            raise ParameterError(f"LSHForest needs a 2-d matrix with >= 2 rows, got {X.shape}")
        n, d = X.shape
        rng = np.random.default_rng(self.seed)
        planes = rng.standard_normal((d, self.n_trees * self.n_bits)).astype(np.float32)
        centred = X - X.mean(axis=0, keepdims=True)
        bits = (centred @ planes) > 0  # n x (trees * bits)
        bits = bits.reshape(n, self.n_trees, self.n_bits)
        weights = (1 << np.arange(self.n_bits - 1, -1, -1, dtype=np.int64))
        hashes = (bits.astype(np.int64) * weights).sum(axis=2)  # n x trees, MSB = first plane
        self.order_ = np.argsort(hashes, axis=0, kind="stable").T  # trees x n
        self.rank_ = np.empty_like(self.order_)
        rows = np.arange(self.n_trees)[:, None]
        self.rank_[rows, self.order_] = np.arange(n)[None, :]
        self.X_ = X
        self.sqnorm_ = np.einsum("ij,ij->i", X, X)
        return self

    def candidates(self, window: int) -> np.ndarray:
        """Candidate neighbours of every indexed cell: n x (n_trees * (2 * window + 1)).

        In each tree, a cell's candidates are the ``2 * window + 1`` cells around it in
        hash order (shifted inwards at the ends); the cell itself is among them and is
        dropped at re-ranking.
        """
        n = self.X_.shape[0]
        width = min(2 * window + 1, n)
        offsets = np.arange(width)
        out = np.empty((n, self.n_trees, width), dtype=np.int64)
        for t in range(self.n_trees):
            start = np.clip(self.rank_[t] - window, 0, n - width)
            out[:, t, :] = self.order_[t][start[:, None] + offsets[None, :]]
        return out.reshape(n, -1)

    def kneighbors(self, k: int, *, max_bytes: int = 256 * 2**20) -> tuple[np.ndarray, np.ndarray]:
        """Approximate ``k`` nearest neighbours of every indexed cell (itself excluded).

        Returns ``(indices, distances)``, each n x k, sorted by increasing distance.
        """
        k = check_positive_int("k", k)
        n = self.X_.shape[0]
        if k >= n:
            raise ParameterError(f"k={k} needs more than k cells to search, got {n}")
        window = self.window or max(4 * k, 16)
        cand = self.candidates(window)
        # rows per chunk so that the gathered candidate vectors stay under max_bytes
        chunk = max(1, int(max_bytes // (cand.shape[1] * self.X_.shape[1] * 4)))
        idx_out = np.empty((n, k), dtype=np.int64)
        dist_out = np.empty((n, k), dtype=np.float32)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            c = np.sort(cand[start:stop], axis=1)
            # drop duplicates and self, keeping a rectangular array (masked with +inf)
            dup = np.zeros_like(c, dtype=bool)
            dup[:, 1:] = c[:, 1:] == c[:, :-1]
            dup |= c == np.arange(start, stop)[:, None]
            Xq = self.X_[start:stop]
            dots = np.einsum("id,icd->ic", Xq, self.X_[c], optimize=True)
            d2 = self.sqnorm_[start:stop, None] + self.sqnorm_[c] - 2.0 * dots
            d2 = np.where(dup, np.inf, np.maximum(d2, 0.0))
            kk = min(k, c.shape[1])
            part = np.argpartition(d2, kk - 1, axis=1)[:, :kk]
            pd2 = np.take_along_axis(d2, part, axis=1)
            o = np.argsort(pd2, axis=1, kind="stable")
            idx_out[start:stop] = np.take_along_axis(np.take_along_axis(c, part, 1), o, 1)
            dist_out[start:stop] = np.sqrt(np.take_along_axis(pd2, o, 1))
        if not np.isfinite(dist_out).all():
            raise ParameterError(
                f"too few LSH candidates for k={k}; raise n_trees or window"
            )
        return idx_out, dist_out


def approximate_knn(X: np.ndarray, k: int, *, n_trees: int = 32, n_bits: int = 32,
                    window: int | None = None, seed: int = 0) -> np.ndarray:
    """Indices (n x k) of the approximate k nearest neighbours of each row of ``X``."""
    return LSHForest(n_trees=n_trees, n_bits=n_bits, window=window, seed=seed).fit(X).kneighbors(k)[0]


def exact_knn(X: np.ndarray, k: int) -> np.ndarray:
    """Exact k nearest neighbours (scikit-learn brute force), self excluded."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(X)
    idx = nn.kneighbors(X, return_distance=False)
    # drop self (the first column unless an exact duplicate took its place)
    out = np.empty((X.shape[0], k), dtype=np.int64)
    for i, row in enumerate(idx):
        row = row[row != i]
        out[i] = row[:k]
    return out


def knn_recall(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of the exact neighbours found by ``approx`` (recall@k)."""
    hits = [len(np.intersect1d(a, e, assume_unique=False)) for a, e in zip(approx, exact)]
    return float(np.sum(hits) / exact.size)


def greedy_pass(neighbors: np.ndarray) -> np.ndarray:
    """The paper's greedy selection: indices kept, in visiting order.

    Visit cells 0..n-1; an unvisited cell is kept and it and its neighbours are marked
    visited.
    """
    n = neighbors.shape[0]
    visited = np.zeros(n, dtype=bool)
    kept = []
    nb = neighbors.tolist()
    for i in range(n):
        if visited[i]:
            continue
        kept.append(i)
        visited[i] = True
        visited[nb[i]] = True
    return np.asarray(kept, dtype=np.int64)


def lsh_subsample(X: np.ndarray, *, k: int = 5, t: int = 1, n_trees: int = 32,
                  n_bits: int = 32, window: int | None = None, seed: int = 0) -> np.ndarray:
    """Indices of the LSH subsample of the rows of ``X`` (the paper's k and t).

    Each of the ``t`` rounds builds an :class:`LSHForest` on the cells kept so far and
    applies :func:`greedy_pass`.  Stops early when fewer than ``k + 2`` cells remain.
    The result is sorted; it shrinks as ``k`` or ``t`` grow.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(300, 20))
    >>> len(lsh_subsample(X, k=5, t=1)) < 300
    True
    """
    k = check_positive_int("k", k)
    t = check_positive_int("t", t)
    X = np.asarray(X, dtype=np.float32)
    if X.shape[0] <= k:
        raise ParameterError(f"LSH sampling with k={k} needs more than {k} cells, got {X.shape[0]}")
    keep = np.arange(X.shape[0])
    for r in range(t):
        if keep.size <= k + 1:
            break
        nb, _ = LSHForest(n_trees=n_trees, n_bits=n_bits, window=window,
                          seed=seed + r).fit(X[keep]).kneighbors(k)
        keep = keep[greedy_pass(nb)]
    return np.sort(keep)
