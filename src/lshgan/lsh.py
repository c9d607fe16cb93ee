"""Locality-sensitive hashing: approximate k nearest neighbours and the LSH subsample.

The authors' code used scikit-learn's ``LSHForest`` (Bawa et al. 2005), removed in
scikit-learn 0.21.  :class:`LSHForest` re-implements that index, vectorised over cells:

* each of ``n_trees`` trees draws ``n_bits`` random hyperplanes through the mean (sign
  random projections, the angular LSH family of Charikar 2002) and gives every cell an
  ``n_bits``-bit hash;
* the cells are sorted by hash, so cells whose hashes share the longest prefixes sit
  next to each other (LSHForest's synchronous descent with a fixed candidate budget);
* a cell's candidates in one tree are the cells around it in that order.  They are
  scored in *blocks*: the ``block`` consecutive cells of a block are compared with the
  ``block + 2 * window`` cells around the block by one dense matrix product, so every
  cell sees at least ``window`` cells on each side of it.  A block product is
  compute-bound BLAS work on rows gathered once per block, where per-cell candidate
  lists would be a memory-bound gather of ``n_trees * 2 * window`` rows per cell;
* distances are exact Euclidean distances in the full space (float32); the ``k`` best of
  each tree are merged over the trees (duplicates removed).

No n x n matrix is ever built: time is O(n log n) for the sorts plus
O(n * n_trees * (block + 2 * window) * d) of matrix products, memory O(n * k) beyond the
data.  The work runs on torch tensors, so ``device="cuda"`` moves it to a GPU.

Why not a library index: ``bench/lsh_knn.py`` measures this forest beside faiss's LSH
(``IndexLSH`` codes, Hamming search, exact re-ranking) and pynndescent on the same data and
recall definition.  faiss's Hamming search scans every code (quadratic): 2.3x slower at 10k
cells and 3.2x at 100k; this forest is 0.87x pynndescent's time at 100k cells with recall@5
0.958 (0.923 at 10k).  See ``bench/README.md``.

:func:`lsh_subsample` is the paper's greedy pass on top of the index: visit the cells
in order; an unvisited cell is kept and its k neighbours are marked visited; the pass
is repeated ``t`` times on the kept set.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import ParameterError, check_positive_int

_MAX_BITS = 62
#: default half-width of the candidate window (per tree, per side), at least k
DEFAULT_WINDOW = 12
#: bytes of rows gathered per chunk of blocks in :meth:`LSHForest.kneighbors`
_CHUNK_BYTES = 64 * 2**20


def _default_window(k: int) -> int:
    return max(DEFAULT_WINDOW, k)


class LSHForest:
    """Approximate Euclidean k-NN index over the rows of a dense matrix.

    Parameters
    ----------
    n_trees
        Number of independent hash trees (more trees: higher recall, more time).
    n_bits
        Bits per hash (at most 62).
    window
        Cells compared on each side of a cell in each tree's hash order; ``None``
        chooses ``max(12, k)`` at query time (recall@5 >= 0.9 from 10k to 100k cells in
        ``bench/lsh_knn.py``).
    seed
        Seed of the projection and the hyperplanes: the same seed gives the same
        neighbours.
    block
        Cells scored together by one matrix product (default ``8 * window``); larger
        blocks see more candidates per cell for the same gathers, at more arithmetic.
    device
        Torch device of the computation (``"cpu"`` or ``"cuda"``).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(500, 50))
    >>> idx, dist = LSHForest(seed=0).fit(X).kneighbors(k=5)
    >>> idx.shape
    (500, 5)
    """

    def __init__(self, n_trees: int = 16, n_bits: int = 32, window: int | None = None,
                 seed: int = 0, *, block: int | None = None,
                 device: str | torch.device = "cpu"):
        self.n_trees = check_positive_int("n_trees", n_trees)
        self.n_bits = check_positive_int("n_bits", n_bits)
        if self.n_bits > _MAX_BITS:
            raise ParameterError(f"n_bits must be <= {_MAX_BITS}, got {n_bits}")
        self.window = None if window is None else check_positive_int("window", window)
        self.block = None if block is None else check_positive_int("block", block)
        self.seed = int(seed)
        self.device = torch.device(device)

    def fit(self, X: np.ndarray) -> "LSHForest":
        """Hash every row of ``X`` (cells x features) into each tree."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] < 2:
            raise ParameterError(f"LSHForest needs a 2-d matrix with >= 2 rows, got {X.shape}")
        # float32 C-contiguous input is shared with torch, not copied
        Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(self.device)
        n, d = Xt.shape
        rng = np.random.default_rng(self.seed)
        mu = Xt.mean(dim=0)  # float32: a float64 mean would copy X in float64
        planes = torch.from_numpy(
            rng.standard_normal((d, self.n_trees * self.n_bits), dtype=np.float32)
        ).to(self.device)
        offset = mu @ planes  # hyperplanes through the mean: sign((x - mu) . w)
        hashes = np.empty((n, self.n_trees), dtype=np.uint64)
        rows = max(1, _CHUNK_BYTES // (4 * planes.shape[1]))
        for s in range(0, n, rows):
            bits = torch.addmm(offset[None, :], Xt[s:s + rows], planes, alpha=1.0, beta=-1.0) > 0
            hashes[s:s + rows] = _pack(bits.view(-1, self.n_trees, self.n_bits).cpu().numpy())
        # cells in hash order, per tree (trees x n); stable: ties keep index order
        self.order_ = np.ascontiguousarray(np.argsort(hashes, axis=0, kind="stable").T)
        self.X_ = Xt
        self.sqnorm_ = torch.einsum("ij,ij->i", Xt, Xt)
        return self

    def kneighbors(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate ``k`` nearest neighbours of every indexed cell (itself excluded).

        Returns ``(indices, distances)``, each n x k, sorted by increasing distance.
        """
        k = check_positive_int("k", k)
        n = self.X_.shape[0]
        if k >= n:
            raise ParameterError(f"k={k} needs more than k cells to search, got {n}")
        window, block = self._geometry(k)
        if self._exhaustive(k):
            best_d, best_i = self._brute(k)
            return best_i.cpu().numpy(), best_d.clamp_min(0).sqrt().cpu().numpy()
        lay = _Layout(self.order_, block, window, self.sqnorm_)
        rows = max(block, _CHUNK_BYTES // (4 * self.X_.shape[1]) // block * block)
        res_d = torch.empty((lay.n_blocks * block, k), device=self.device)
        res_i = torch.empty((lay.n_blocks * block, k), dtype=torch.long, device=self.device)
        bufs = None
        for q0 in range(0, lay.n_blocks * block, rows):
            q1 = min(q0 + rows, lay.n_blocks * block)
            bufs = self._score_blocks(lay, q0 // block, q1 // block, k, res_d[q0:q1], res_i[q0:q1], bufs)
        # results of tree t for rank r sit at t * seg + r: regroup per cell, merge trees
        per_tree = (self.n_trees, lay.seg, k)
        cand_d = torch.empty((n, self.n_trees, k), device=self.device)
        cand_i = torch.empty((n, self.n_trees, k), dtype=torch.long, device=self.device)
        trees = torch.arange(self.n_trees, device=self.device)[:, None]
        cand_d[lay.order, trees] = res_d.view(per_tree)[:, :n]
        cand_i[lay.order, trees] = res_i.view(per_tree)[:, :n]
        best_d, best_i = _k_smallest_unique(cand_d.view(n, -1), cand_i.view(n, -1), k)
        if not torch.isfinite(best_d).all():
            raise ParameterError(f"too few LSH candidates for k={k}; raise n_trees or window")
        return best_i.cpu().numpy(), best_d.clamp_min(0).sqrt().cpu().numpy()

    def _geometry(self, k: int) -> tuple[int, int]:
        """``(window, block)`` used for ``k`` neighbours."""
        n = self.X_.shape[0]
        window = min(self.window or _default_window(k), n)
        return window, min(max(self.block or 8 * window, k + 1), n)

    def _exhaustive(self, k: int) -> bool:
        """Whether brute force costs less than hashing and scoring the trees' candidates.

        Hashing costs ``n_trees * n_bits`` and scoring about ``2 * n_trees * span`` dot
        products per cell, against ``n`` for brute force; when brute force is cheaper,
        :meth:`kneighbors` returns the exact neighbours.
        """
        window, block = self._geometry(k)
        return self.X_.shape[0] <= self.n_trees * (self.n_bits + 2 * (block + 2 * window))

    def _brute(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact k nearest neighbours by blocks of queries against all cells (small n)."""
        X, sq = self.X_, self.sqnorm_
        n = X.shape[0]
        rows = max(1, _CHUNK_BYTES // (4 * n))
        best_d = torch.empty((n, k), device=self.device)
        best_i = torch.empty((n, k), dtype=torch.long, device=self.device)
        for s in range(0, n, rows):
            e = min(s + rows, n)
            d2 = torch.addmm(sq[None, :], X[s:e], X.T, beta=1.0, alpha=-2.0)
            d2[torch.arange(e - s), torch.arange(s, e)] = float("inf")  # not itself
            vals, at = _smallest(d2, k)
            vals += sq[s:e, None]
            order = torch.argsort(vals, dim=1, stable=True)
            best_d[s:e] = torch.gather(vals, 1, order)
            best_i[s:e] = torch.gather(at, 1, order)
        return best_d, best_i

    def _score_blocks(self, lay: "_Layout", j0: int, j1: int, k: int, out_d, out_i, bufs):
        """Exact k best (squared distances, ids) of the query rows of blocks ``j0..j1-1``.

        Block ``j`` queries the ``block`` rows at ``window + j * block`` of the layout and
        compares them with the ``block + 2 * window`` rows from ``j * block``: one
        batched product over rows gathered once (the spans overlap, as strided views).
        """
        block, window = lay.block, lay.window
        nb, span = j1 - j0, block + 2 * window
        ids = lay.ids[j0 * block:j1 * block + 2 * window]
        sq = lay.sq[j0 * block:j1 * block + 2 * window]
        if bufs is None or bufs[1].shape[0] < nb:  # reused: fresh big allocations page-fault
            bufs = (torch.empty((ids.shape[0], self.X_.shape[1]), device=self.device),
                    torch.empty((nb, block, span), device=self.device))
        R = torch.index_select(self.X_, 0, ids, out=bufs[0][:ids.shape[0]])
        d = R.shape[1]
        Q = R[window:window + nb * block].view(nb, block, d)
        spans = R.as_strided((nb, span, d), (block * d, d, 1))
        # |q - c|^2 = |q|^2 + (|c|^2 - 2 q.c): the bracket in one fused batched product,
        # padding made +inf through |c|^2; |q|^2 is added back to the k kept
        d2 = torch.baddbmm(sq.as_strided((nb, block, span), (block, 0, 1)), Q,
                           spans.transpose(1, 2), beta=1.0, alpha=-2.0, out=bufs[1][:nb])
        sq_q = sq[window:window + nb * block].view(nb, block, 1)
        if d2.device.type == "cpu":
            _select_numpy(d2.numpy(), ids.numpy(), sq_q.numpy(), window, k,
                          out_d.numpy().reshape(nb, block, k), out_i.numpy().reshape(nb, block, k))
        else:
            d2.diagonal(offset=window, dim1=1, dim2=2).fill_(float("inf"))  # not itself
            vals, at = torch.topk(d2, k, dim=2, largest=False, sorted=False)
            torch.gather(ids.as_strided((nb, block, span), (block, 0, 1)), 2, at,
                         out=out_i.view(nb, block, k))
            torch.add(vals, sq_q, out=out_d.view(nb, block, k))
        return bufs


def _select_numpy(d2, ids, sq_q, window, k, out_d, out_i) -> None:
    """CPU selection of :meth:`LSHForest._score_blocks`, in NumPy.

    Single-threaded introselect is ~1.5x faster than ``torch.topk`` here, and NumPy's
    small steps do not wait on a thread barrier as OpenMP regions do on a busy machine.
    """
    nb, block, span = d2.shape
    # query i of a block is candidate window + i of its span: not itself
    d2.reshape(nb, -1)[:, window:window + block * (span + 1):span + 1] = np.inf
    at = np.argpartition(d2, k - 1, axis=2)[:, :, :k]
    np.add(np.take_along_axis(d2, at, axis=2), sq_q, out=out_d)
    out_i[...] = ids[(np.arange(nb) * block)[:, None, None] + at]


def _smallest(d: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest values along the last axis and their positions, unsorted."""
    if d.device.type != "cpu":
        return torch.topk(d, k, dim=-1, largest=False, sorted=False)
    # NumPy's introselect is single-threaded and ~1.5x faster than torch.topk on CPU
    at = np.argpartition(d.numpy(), k - 1, axis=-1)[..., :k]
    at = torch.from_numpy(np.ascontiguousarray(at))
    return torch.gather(d, -1, at), at


class _Layout:
    """All trees' hash orders laid end to end, padded so that blocks never straddle two.

    Tree ``t`` occupies ``seg`` slots from ``t * seg``: ``window`` padding slots (id
    ``-1``), its cells in hash order, padding up to ``seg`` (a multiple of ``block``).
    The query rows of block ``j`` are slots ``window + j * block ...``; its span is slots
    ``j * block ... j * block + block + 2 * window``, inside its own tree's segment
    whenever the block holds a real cell.
    """

    def __init__(self, order: np.ndarray, block: int, window: int, sqnorm: torch.Tensor):
        n_trees, n = order.shape
        self.block, self.window = block, window
        self.seg = -(-(-(-n // block) * block + 2 * window) // block) * block
        self.n_blocks = n_trees * self.seg // block
        ids = np.full((n_trees, self.seg), -1, dtype=np.int64)
        ids[:, window:window + n] = order
        # trailing padding so that the last block's span exists
        ids = torch.from_numpy(np.concatenate([ids.ravel(), np.full(2 * window, -1)]))
        ids = ids.to(sqnorm.device)
        pad = ids < 0
        self.ids = ids.clamp_min(0)  # padding gathers cell 0 ...
        self.sq = sqnorm[self.ids].masked_fill_(pad, float("inf"))  # ... at infinite distance
        self.order = torch.from_numpy(order).to(sqnorm.device)


def _k_smallest_unique(d: torch.Tensor, i: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the k smallest distances and their ids, each id once, sorted."""
    i_sorted, perm = torch.sort(i, dim=1, stable=True)
    d_sorted = torch.gather(d, 1, perm)
    dup = torch.zeros_like(i_sorted, dtype=torch.bool)
    dup[:, 1:] = i_sorted[:, 1:] == i_sorted[:, :-1]
    d_sorted.masked_fill_(dup, float("inf"))
    vals, pos = torch.topk(d_sorted, k, dim=1, largest=False, sorted=True)
    return vals, torch.gather(i_sorted, 1, pos)


def _pack(bits: np.ndarray) -> np.ndarray:
    """n x trees x n_bits booleans -> n x trees uint64 hashes (first plane = MSB)."""
    n, n_trees, _ = bits.shape
    packed = np.packbits(bits, axis=2, bitorder="big")  # n x trees x ceil(bits / 8)
    padded = np.zeros((n, n_trees, 8), dtype=np.uint8)
    padded[:, :, : packed.shape[2]] = packed
    return padded.view(">u8")[:, :, 0].astype(np.uint64)


def exact_knn(X: np.ndarray, k: int) -> np.ndarray:
    """Exact k nearest neighbours (scikit-learn brute force), self excluded."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(X)
    idx = nn.kneighbors(X, return_distance=False)
    # drop self; where an exact duplicate took its place, self is absent: drop the last
    is_self = idx == np.arange(X.shape[0])[:, None]
    keep = np.argsort(is_self, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(idx, keep, axis=1)


def knn_recall(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of the exact neighbours found by ``approx`` (recall@k)."""
    approx, exact = np.asarray(approx), np.asarray(exact)
    found = (exact[:, :, None] == approx[:, None, :]).any(axis=2)
    return float(found.sum() / exact.size)


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


def lsh_subsample(X: np.ndarray, *, k: int = 5, t: int = 1, n_trees: int = 16,
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


def lsh_subsample_by_group(X: np.ndarray, groups: np.ndarray | None = None, *, k: int = 5,
                           t: int = 1, n_trees: int = 16, seed: int = 0) -> np.ndarray:
    """:func:`lsh_subsample` within each group of ``groups`` (e.g. cell types); sorted indices.

    A group with at most ``k + 1`` cells is too small to hash: all its cells stay, so no
    type is lost from the subsample.  ``groups=None``: one subsample of all rows.
    """
    if groups is None:
        return lsh_subsample(X, k=k, t=t, n_trees=n_trees, seed=seed)
    groups = np.asarray(groups)
    keep = []
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        if rows.size > k + 1:
            keep.append(rows[lsh_subsample(X[rows], k=k, t=t, n_trees=n_trees, seed=seed)])
        else:
            keep.append(rows)
    return np.sort(np.concatenate(keep))


#: A sparse matrix of more entries than this is hashed on :data:`LARGE_PCS` principal
#: components: a dense copy of it would not fit in memory (100k x 20k is 8 GB).
DENSE_LIMIT = 2e8
LARGE_PCS = 50


def lsh_pcs(X, pcs: int | None = None) -> int | None:
    """Principal components of the LSH space of ``X``: ``pcs`` if given, else
    :data:`LARGE_PCS` for a sparse matrix of more than :data:`DENSE_LIMIT` entries, else
    ``None`` (the genes themselves, as in the paper)."""
    import scipy.sparse as sp

    if pcs is None and sp.issparse(X) and X.shape[0] * X.shape[1] > DENSE_LIMIT:
        return LARGE_PCS
    return pcs


def lsh_space(X, pcs: int | None = None, *, seed: int = 0) -> np.ndarray:
    """The dense float32 matrix the LSH forest hashes: the genes, or the first
    :func:`lsh_pcs` principal components (randomized PCA, :func:`lshgan.pca.fit_pca`)."""
    import scipy.sparse as sp

    from .pca import fit_pca, project

    pcs = lsh_pcs(X, pcs)
    if pcs is None:
        return (X.toarray() if sp.issparse(X) else np.asarray(X)).astype(np.float32)
    mean, comps = fit_pca(X, pcs, seed=seed, method="randomized")
    return project(X, mean, comps).astype(np.float32)
