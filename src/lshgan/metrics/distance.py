"""Distances between sets of cells: exact Euclidean blocks, optimal transport, DCR novelty."""

from __future__ import annotations

from typing import Iterator

import anndata as ad
import numpy as np
import scipy.sparse as sp
from scipy.spatial.distance import cdist, pdist

from ..errors import ParameterError, check_positive_int
from .space import align_genes, pooled_pca, subsample_rows


#: candidates per query measured exactly by :func:`nearest_distances`
RERANK = 8
#: cells per side of the optimal-transport terms (a seeded subsample above it)
OT_MAX_CELLS = 2000
#: cells x cells x genes up to which the transport cost is computed exactly (every shared
#: dataset's test split is below it)
EXACT_OT_WORK = 4e9
#: query cells of the DCR medians (a seeded subsample above it)
DCR_MAX_CELLS = 1000
#: principal components of the training cells in which :func:`dcr` measures the novelty of
#: cell *states* (``space="pca"``): the size of LSH-GAN's latent cell state at the defaults
#: (:func:`lshgan.model.default_n_latent`), the space where a generator could copy states
DCR_PCS = 16


def _dense_blocks(X, size: int) -> Iterator[tuple[slice, np.ndarray]]:
    """Row blocks of ``X`` as dense float64 arrays (a sparse ``X`` is never densified whole)."""
    for start in range(0, X.shape[0], size):
        rows = slice(start, min(start + size, X.shape[0]))
        block = X[rows]
        yield rows, (block.toarray() if sp.issparse(block) else np.asarray(block)).astype(
            np.float64)


def _distance_blocks(A, B) -> Iterator[tuple[slice, slice, np.ndarray]]:
    """Exact Euclidean distances between the rows of ``A`` and ``B``, block by block.

    ``scipy.spatial.distance.cdist`` is exact (a copy is at distance 0, not ~1e-3 as with the
    ``|a|^2 + |b|^2 - 2ab`` shortcut), which :func:`dcr_ratio` relies on.  Dense blocks hold
    at most about 2**22 values (32 MB) whatever the number of genes.
    """
    size = max(16, 2**22 // max(1, A.shape[1]))
    for rows, a in _dense_blocks(A, size):
        for cols, b in _dense_blocks(B, size):
            yield rows, cols, cdist(a, b)


def pairwise_distances(A, B) -> np.ndarray:
    """Exact Euclidean distance matrix between the rows of ``A`` and ``B`` (dense or CSR).

    Examples
    --------
    >>> pairwise_distances(np.zeros((2, 3)), np.ones((1, 3))).round(3).ravel().tolist()
    [1.732, 1.732]
    """
    D = np.empty((A.shape[0], B.shape[0]))
    for rows, cols, block in _distance_blocks(A, B):
        D[rows, cols] = block
    return D


def nearest_distances(query, reference) -> np.ndarray:
    """Distance from each row of ``query`` to its nearest row of ``reference`` (exact).

    Candidates come from matrix products (``|q|^2 + |r|^2 - 2 q.r``, BLAS, a sparse
    ``reference`` stays sparse); the best :data:`RERANK` of each query are then measured
    exactly with ``cdist``, so a copy is at distance exactly 0.  The product's rounding
    (about 1e-3 of the distances) can only reorder near-ties, which the exact re-ranking
    of several candidates absorbs.

    Examples
    --------
    >>> nearest_distances(np.array([[0.0, 0.0], [3.0, 4.0]]), np.zeros((1, 2))).tolist()
    [0.0, 5.0]
    """
    n_ref = reference.shape[0]
    r_sq = (np.asarray(reference.multiply(reference).sum(axis=1)).ravel() if sp.issparse(reference)
            else np.einsum("ij,ij->i", np.asarray(reference, np.float64),
                           np.asarray(reference, np.float64)))
    best = np.full(query.shape[0], np.inf)
    size = max(16, 2**24 // max(1, n_ref))  # d2 blocks of at most 128 MB
    for rows, q in _dense_blocks(query, size):
        d2 = r_sq[None, :] - 2.0 * np.asarray(reference @ q.T).T  # + |q|^2: same per row
        m = min(RERANK, n_ref)
        cand = np.argpartition(d2, m - 1, axis=1)[:, :m] if m < n_ref else \
            np.broadcast_to(np.arange(n_ref), d2.shape)
        uniq, at = np.unique(cand, return_inverse=True)
        at = at.reshape(cand.shape)
        R = reference[uniq]
        R = (R.toarray() if sp.issparse(R) else np.asarray(R)).astype(np.float64)
        for i in range(q.shape[0]):
            best[rows.start + i] = cdist(q[i:i + 1], R[at[i]]).min()
    return best


#: training matrices above this many entries are searched through PCA candidates
#: (:class:`NearestTraining`); every shared dataset is below it (exact search)
CANDIDATE_SEARCH_LIMIT = 1e8
#: PCA components and candidates per query of the candidate search
CANDIDATE_PCS, CANDIDATES = 50, 64


class NearestTraining:
    """Distance from cells to their nearest training cell, built once for several queries.

    Up to :data:`CANDIDATE_SEARCH_LIMIT` entries in the training matrix: exact
    (:func:`nearest_distances`).  Above (e.g. 80k x 20k sparse, where an exact search costs
    minutes per thousand queries on 2 cores): the training cells are projected once on a
    randomized PCA(50) of themselves; each query's :data:`CANDIDATES` nearest training cells
    in that space are then measured exactly in gene space.  A copy of a training cell is at
    0 in both spaces, so it is always found at exactly 0; for other cells the result can
    only be at or above the exact nearest distance (when the nearest cell in gene space is
    not among the PCA candidates).  Medians and authentic shares over query sets are cached
    by the query object's identity (the test split, scored against several generators).
    """

    def __init__(self, train_X, *, seed: int = 0) -> None:
        self.X = train_X
        self.seed = seed
        self.candidates = train_X.shape[0] * train_X.shape[1] > CANDIDATE_SEARCH_LIMIT
        self._cache: dict = {}
        self._state_spaces: dict = {}
        self._state_trees: dict = {}
        if self.candidates:
            from ..pca import fit_pca, project

            self._pca = fit_pca(train_X, CANDIDATE_PCS, seed=seed, method="randomized")
            self._Z = project(train_X, *self._pca).astype(np.float32)
            self._z_sq = np.einsum("ij,ij->i", self._Z, self._Z)
            self._project = project

    def distances(self, query) -> np.ndarray:
        if not self.candidates:
            return nearest_distances(query, self.X)
        Zq = self._project(query, *self._pca).astype(np.float32)
        m = min(CANDIDATES, self._Z.shape[0])
        best = np.empty(query.shape[0])
        for start in range(0, query.shape[0], 256):
            rows = slice(start, min(start + 256, query.shape[0]))
            d2 = self._z_sq[None, :] - 2.0 * Zq[rows] @ self._Z.T
            cand = np.argpartition(d2, m - 1, axis=1)[:, :m]
            q = query[rows]
            q = (q.toarray() if sp.issparse(q) else np.asarray(q)).astype(np.float64)
            for i in range(q.shape[0]):
                R = self.X[cand[i]]
                R = (R.toarray() if sp.issparse(R) else np.asarray(R)).astype(np.float64)
                best[start + i] = cdist(q[i:i + 1], R).min()
        return best

    def _state_space(self, n_pcs: int) -> tuple:
        from ..pca import fit_pca, project

        if n_pcs not in self._state_spaces:
            if self.candidates and n_pcs <= CANDIDATE_PCS:  # the candidate search's PCA
                mean, comps = self._pca[0], self._pca[1][:n_pcs]
                Z = self._Z[:, :n_pcs].astype(np.float64)
            else:
                mean, comps = fit_pca(self.X, n_pcs, seed=self.seed)
                Z = project(self.X, mean, comps)
            self._state_spaces[n_pcs] = (mean, comps, Z)
        return self._state_spaces[n_pcs]

    def state_distances(self, query, n_pcs: int) -> np.ndarray:
        """Distance from each query cell to its nearest training cell on the training
        cells' top ``n_pcs`` principal components (fitted once per ``n_pcs``, exact search)."""
        from ..pca import project

        mean, comps, Z = self._state_space(n_pcs)
        return nearest_distances(project(query, mean, comps), Z)

    def state_authentic(self, query, n_pcs: int) -> np.ndarray:
        """Whether each query cell is *authentic* on the top ``n_pcs`` principal components
        (Alaa et al. 2022): farther from its nearest training cell than that training cell
        is from its own nearest other training cell.  A copy, or a copy moved by less than
        the local spacing of the training cells, is not; a cell in a dense region is judged
        against the spacing there (see :func:`authenticity`)."""
        from sklearn.neighbors import NearestNeighbors

        from ..pca import project

        mean, comps, Z = self._state_space(n_pcs)
        if n_pcs not in self._state_trees:  # each training cell's own nearest-neighbour distance
            tree = NearestNeighbors(n_neighbors=2).fit(Z)
            self._state_trees[n_pcs] = (tree, tree.kneighbors(Z, 2)[0][:, 1])
        tree, spacing = self._state_trees[n_pcs]
        dist, idx = tree.kneighbors(project(query, mean, comps), 1)
        return dist[:, 0] > spacing[idx[:, 0]]

    def _statistic(self, kind: str, query, *, max_cells: int, seed: int,
                   n_pcs: int | None) -> float:
        key = (kind, id(query), max_cells, seed, n_pcs)
        if key not in self._cache:
            rows = subsample_rows(query, max_cells, seed)
            if kind == "authentic":
                value = float(np.mean(self.state_authentic(rows, n_pcs)))
            else:
                d = self.distances(rows) if n_pcs is None else self.state_distances(rows, n_pcs)
                value = float(np.median(d))
            self._cache[key] = (query, value)
        return self._cache[key][1]

    def median(self, query, *, max_cells: int, seed: int, n_pcs: int | None = None) -> float:
        """Median nearest-training distance of (a seeded subsample of) ``query``: in gene
        space, or on ``n_pcs`` principal components (:meth:`state_distances`)."""
        return self._statistic("median", query, max_cells=max_cells, seed=seed, n_pcs=n_pcs)

    def authentic_share(self, query, *, max_cells: int, seed: int, n_pcs: int) -> float:
        """Share of (a seeded subsample of) ``query`` that is authentic on ``n_pcs``
        principal components (:meth:`state_authentic`)."""
        return self._statistic("authentic", query, max_cells=max_cells, seed=seed, n_pcs=n_pcs)


def wasserstein(
    real: ad.AnnData,
    generated: ad.AnnData,
    *,
    space: str = "genes",
    n_pcs: int = 50,
    seed: int = 0,
) -> float:
    """Exact optimal-transport (earth mover's) distance between two sets of cells.

    Each cell weighs ``1/n`` of its set (uniform weights); the ground cost is the
    **Euclidean** (not squared) distance between cells, so the result is the Wasserstein-1
    distance, in the units of the ``log2(1+x)`` expression (the average distance a cell has
    to travel).  Solved exactly by the network simplex (:func:`ot.emd2`), not by Sinkhorn.

    A low distance alone can mean blurry, averaged cells: a smooth per-type Gaussian beats
    copied real cells on it.  Read it next to :func:`rf_auc` and :func:`dcr_ratio`.

    Parameters
    ----------
    real, generated
        The two sets (any sizes), same genes.
    space
        ``"genes"``: all genes; ``"pca"``: the first ``n_pcs`` components of a PCA fitted on
        the pooled cells of both sets.
    n_pcs
        Components for ``space="pca"``.
    seed
        Seed of the PCA solver.

    Returns
    -------
    float, 0 for identical sets.

    Examples
    --------
    >>> wasserstein(test, test)                  # doctest: +SKIP
    0.0
    """
    generated = align_genes(generated, real.var_names, "generated")
    A, B = real.X, generated.X
    if space == "pca":
        A, B = pooled_pca(A, B, n_pcs=n_pcs, seed=seed)
    elif space != "genes":
        raise ParameterError(f"space must be 'genes' or 'pca', got {space!r}")
    return earth_movers(A, B, seed=seed)


def earth_movers(A, B, *, max_cells: int = OT_MAX_CELLS, seed: int = 0) -> float:
    """Exact Wasserstein-1 distance between the rows of ``A`` and ``B`` (uniform weights).

    The computation of :func:`wasserstein` on matrices (dense or CSR), e.g. on PCA scores
    already computed.  A side with more than ``max_cells`` rows is replaced by a seeded
    random ``max_cells`` of them: exact transport between 20,000 and 20,000 cells would
    need a 400-million-entry cost matrix; on subsamples the value is an estimate, slightly
    above the full sets' distance (fewer cells match less closely).

    Examples
    --------
    >>> round(earth_movers(np.zeros((2, 3)), np.full((4, 3), 2.0)), 3)
    3.464
    """
    import ot

    from sklearn.metrics.pairwise import euclidean_distances

    A, B = subsample_rows(A, max_cells, seed), subsample_rows(B, max_cells, seed + 1)
    # exact distances (cdist: identical sets at exactly 0) up to EXACT_OT_WORK products;
    # above, BLAS products (|a|^2 + |b|^2 - 2ab, rounding ~1e-6 of the cost), 20x faster
    if A.shape[0] * B.shape[0] * A.shape[1] <= EXACT_OT_WORK:
        M = pairwise_distances(A, B)
    else:
        M = euclidean_distances(A, B)
    a = np.full(M.shape[0], 1.0 / M.shape[0])
    b = np.full(M.shape[1], 1.0 / M.shape[1])
    return float(max(ot.emd2(a, b, M, numItermax=max(100_000, 50 * M.size)), 0.0))


def mmd(
    real: ad.AnnData,
    generated: ad.AnnData,
    *,
    n_pcs: int = 50,
    max_cells: int = 2000,
    scales=(1.0,),
    seed: int = 0,
) -> float:
    """Maximum mean discrepancy (squared, RBF kernel) between two sets of cells.

    Computed on the scores of a PCA fitted on the pooled cells (the space of
    :func:`rf_auc` and ``wasserstein(space="pca")``) by :func:`mmd_rbf`: unbiased estimator,
    kernel bandwidth by the median heuristic (times ``scales``; see the caveat there), at
    most ``max_cells`` cells per side (a seeded subsample).  About 0 when both sets come from one distribution (it can be slightly
    negative: the estimator is unbiased), larger the further apart they are.

    Examples
    --------
    >>> mmd(test, model.generate(test.n_obs))      # doctest: +SKIP
    0.012
    """
    generated = align_genes(generated, real.var_names, "generated")
    A, B = pooled_pca(real.X, generated.X, n_pcs=n_pcs, seed=seed)
    return mmd_rbf(A, B, max_cells=max_cells, scales=scales, seed=seed)


def mmd_rbf(X: np.ndarray, Y: np.ndarray, *, max_cells: int = 2000, scales=(1.0,),
            seed: int = 0) -> float:
    """Unbiased squared MMD between the rows of ``X`` and ``Y`` with a Gaussian (RBF) kernel.

    ``k(x, y) = exp(-|x - y|^2 / (2 s^2))`` with ``s`` the median Euclidean distance between
    the pooled rows (median heuristic, on at most 1000 of them); the estimator (Gretton et
    al. 2012, eq. 3) averages ``k`` over pairs of distinct rows within each side and over all
    cross pairs: ``mean k(X, X') + mean k(Y, Y') - 2 mean k(X, Y)``.  Each side is
    subsampled (seeded) to ``max_cells`` rows first.

    Caveat: with several well-separated cell types the median distance is a distance
    *between* types, and at that bandwidth the kernel hardly sees how cells spread within a
    type (a generator collapsed onto each type's centre can score about 0).  ``scales``
    multiplies the bandwidth; several scales average their kernels (e.g. ``(0.25, 0.5, 1)``;
    GRouNdGAN uses half, one and two times the median 25-NN distance, a local scale).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> same = mmd_rbf(rng.normal(size=(300, 5)), rng.normal(size=(300, 5)))
    >>> shifted = mmd_rbf(rng.normal(size=(300, 5)), rng.normal(1.0, 1.0, size=(300, 5)))
    >>> abs(same) < 0.01 < shifted
    True
    """
    rng = np.random.default_rng(seed)
    X, Y = (np.asarray(Z, np.float64) for Z in (X, Y))
    X, Y = (Z[np.sort(rng.choice(len(Z), max_cells, replace=False))] if len(Z) > max_cells
            else Z for Z in (X, Y))
    if len(X) < 2 or len(Y) < 2:
        return float("nan")
    pooled = np.vstack([X, Y])
    if len(pooled) > 1000:
        pooled = pooled[rng.choice(len(pooled), 1000, replace=False)]
    median = float(np.median(pdist(pooled)))
    if median == 0:
        return 0.0
    gammas = [1.0 / (2.0 * (median * float(c)) ** 2) for c in scales]

    def mean_kernel(A, B, *, same: bool) -> float:
        D2 = cdist(A, B, "sqeuclidean")
        K = np.mean([np.exp(-g * D2) for g in gammas], axis=0)
        if same:  # pairs of distinct rows only
            return float((K.sum() - np.trace(K)) / (len(A) * (len(A) - 1)))
        return float(K.mean())

    return (mean_kernel(X, X, same=True) + mean_kernel(Y, Y, same=True)
            - 2.0 * mean_kernel(X, Y, same=False))


def dcr(generated: ad.AnnData, train: ad.AnnData, test: ad.AnnData, *, seed: int = 0,
        index: NearestTraining | None = None, space: str = "genes",
        n_pcs: int = DCR_PCS) -> dict:
    """Distance to the closest training record, for generated and for real test cells.

    Medians over at most :data:`DCR_MAX_CELLS` generated and test cells (a seeded subsample
    of larger sets), each measured against every training cell (:class:`NearestTraining`;
    pass ``index``, built on ``train.X``, to reuse it and the test median across
    generators).

    ``space="genes"`` (default) measures Euclidean distances on every gene.  ``space="pca"``
    measures them on the top ``n_pcs`` principal components of the training cells (default
    :data:`DCR_PCS`): the novelty of the cell *states*.  A generator can copy training
    states and add per-gene noise (a decoder's dropout and residuals): in gene space the
    noise makes every cell look new, on the principal components, where the noise averages
    out, the copied states show.

    Returns
    -------
    dict with ``median_generated`` (median over generated cells of the Euclidean distance to
    the nearest training cell), ``median_test`` (the same for the real test cells) and
    ``ratio`` = ``median_generated / median_test`` (see :func:`dcr_ratio`).

    Raises
    ------
    ParameterError
        For an unknown ``space``.

    Examples
    --------
    >>> dcr(fake, train, test)["median_test"]    # doctest: +SKIP
    31.4
    >>> dcr(fake, train, test, space="pca")["ratio"]    # doctest: +SKIP
    0.93
    """
    if space not in ("genes", "pca"):
        raise ParameterError(f"space must be 'genes' or 'pca', got {space!r}")
    pcs = None if space == "genes" else check_positive_int("n_pcs", n_pcs)
    var_names = train.var_names
    generated = align_genes(generated, var_names, "generated")
    test = align_genes(test, var_names, "test")
    if index is None or index.X is not train.X:
        index = NearestTraining(train.X, seed=seed)
    med_gen = index.median(generated.X, max_cells=DCR_MAX_CELLS, seed=seed, n_pcs=pcs)
    med_test = index.median(test.X, max_cells=DCR_MAX_CELLS, seed=seed + 1, n_pcs=pcs)
    ratio = med_gen / med_test if med_test > 0 else float("nan")
    return {"ratio": ratio, "median_generated": med_gen, "median_test": med_test}


def authenticity(generated: ad.AnnData, train: ad.AnnData, test: ad.AnnData, *, seed: int = 0,
                 index: NearestTraining | None = None, n_pcs: int = DCR_PCS) -> dict:
    """Copying or concentration?  The authenticity of generated cell states, beside real ones'.

    A cell is *authentic* (Alaa et al., ICML 2022, "How faithful is your synthetic data?")
    when it is farther from its nearest training cell than that training cell is from its
    own nearest other training cell; here on the training cells' top ``n_pcs`` principal
    components (default :data:`DCR_PCS`, where :func:`dcr` with ``space="pca"`` looks for
    copied states).  Copies score 0, and so do copies moved by less than the local spacing
    of the training cells.  A low state DCR alone cannot tell copying from concentration
    (generated cells in the dense parts of the data, where every distance is short);
    authenticity judges each cell against the spacing where it lies.  Real cells the
    generator never saw are the reference: ``test`` is their share (0.48-0.62 on the shared
    datasets, 0.22 on Yan, where test cells have siblings from the same embryo among the
    training cells; it depends on the data, the dimension and the number of training
    cells), so compare ``generated`` with ``test``, not with 1.

    Shares over at most :data:`DCR_MAX_CELLS` cells of each set (seeded subsamples, the
    same as :func:`dcr`'s); ``index``: a :class:`NearestTraining` of ``train.X`` to reuse.

    Returns
    -------
    dict with ``generated`` and ``test``, the shares of authentic cells.

    Examples
    --------
    >>> authenticity(copies, train, test)    # doctest: +SKIP
    {'generated': 0.0, 'test': 0.61}
    """
    pcs = check_positive_int("n_pcs", n_pcs)
    var_names = train.var_names
    generated = align_genes(generated, var_names, "generated")
    test = align_genes(test, var_names, "test")
    if index is None or index.X is not train.X:
        index = NearestTraining(train.X, seed=seed)
    return {"generated": index.authentic_share(generated.X, max_cells=DCR_MAX_CELLS, seed=seed,
                                               n_pcs=pcs),
            "test": index.authentic_share(test.X, max_cells=DCR_MAX_CELLS, seed=seed + 1,
                                          n_pcs=pcs)}


def dcr_ratio(generated: ad.AnnData, train: ad.AnnData, test: ad.AnnData) -> float:
    """Novelty: how far generated cells are from the training cells, relative to real ones.

    Median distance from each generated cell to its nearest training cell, divided by the
    same median for the held-out real test cells (Euclidean, gene space).  Copying training
    cells scores 0; a fresh sample from the cells' distribution scores about 1; well below 1
    means memorisation, well above 1 means cells off the data manifold.  ``nan`` when the
    test cells' median is 0 (test cells duplicated in the training set).  :func:`dcr` also
    gives the two medians.

    Examples
    --------
    >>> from lshgan.references import CopyGenerator
    >>> copies = CopyGenerator().fit(train).generate(test.n_obs)    # doctest: +SKIP
    >>> dcr_ratio(copies, train, test)                              # doctest: +SKIP
    0.0
    """
    return dcr(generated, train, test)["ratio"]
