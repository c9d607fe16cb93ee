"""What kind of values a single-cell matrix holds, and the preprocessing that suits it.

:func:`detect_data_kind` looks at the values and returns a :class:`DataKind`: the kind and
the evidence it was decided on.  Four kinds are told apart:

``umi_counts``
    integer molecule counts of droplet/UMI protocols (10x, inDrop, Microwell-seq,
    sci-RNA-seq): shallow (median library size of hundreds to tens of thousands), small
    values per entry, variance close to the mean (Poisson-like) for weakly expressed genes.
``read_counts``
    integer read counts of full-length protocols (Smart-seq, Fluidigm C1): each captured
    molecule is amplified and sequenced many times, so libraries are deep (hundreds of
    thousands of reads), single entries reach thousands and the variance of weakly
    expressed genes is many times their mean (strong overdispersion).
``continuous``
    non-negative non-integer expression on a linear scale: RPKM/FPKM/TPM, or counts
    already library-size normalised.
``log_normalized``
    values already log-transformed (and perhaps scaled): non-integer with a small maximum,
    or negative values.

Rules (the thresholds are the module constants; each was chosen with a wide margin on
every dataset of ``../shared/data`` and scanpy's ``pbmc68k_reduced``, see the table):

1. any negative value: ``log_normalized`` (scaled or centred; counts and expression levels
   are never negative);
2. fewer than :data:`INTEGER_FRACTION` (99%) of the non-zero values are integers:
   ``log_normalized`` if the maximum is at most :data:`LOG_MAX` (30: ``log2(1 + x)`` of a
   value of a billion is 30; ``log1p`` of counts normalised to 10^4 or 10^6 stays below
   10 or 14), ``continuous`` otherwise;
3. integers: ``read_counts`` when at least two of these three hold, ``umi_counts``
   otherwise:

   * depth: the median library size (sum per cell) is at least :data:`READ_DEPTH`
     (100,000);
   * entry size: the 99th percentile of the non-zero values is at least
     :data:`READ_ENTRY` (1,000);
   * overdispersion: among the more weakly expressed half of the genes, the median
     variance-to-mean ratio is at least :data:`READ_DISPERSION` (10; Poisson: 1).

   Two of three, so that a shallow read-count library, or read counts of a gene subset
   (smaller sums), are still recognised by their entries and their dispersion.

Measured on the shared datasets (``integer`` = fraction of integer non-zero values; depth
= median library size; q99 = 99th percentile of non-zero values; disp. = variance/mean of
the weaker half of the genes; slope = of log variance against log mean over genes)::

    dataset                integer  max     depth    q99    disp.  slope  genes/cell  kind
    yan                    0.085    49960   553700   752    2.6    1.52   11004       continuous
    pollen                 1        329100  276500   4458   35     1.74   5384        read_counts
    klein_subset           1        2309    5648     66     3.6    1.50   801         umi_counts
    pbmc_sorted_zheng      1        248     3270     31     1.1    1.11   1101        umi_counts
    pbmc4k_top2000         1        777     895      73     1.3    1.12   179         umi_counts
    mouse_bladder_top2000  1        303     315      39     1.4    1.13   123         umi_counts
    worm_neuron_top2000    1        219     35       16     3.0    1.05   16          umi_counts
    pbmc68k_reduced .raw   0.001    6.5     460      4.3    1.3    0.79   243         log_normalized
    pbmc68k_reduced .X     (scaled: min -2.0, max 28.4)                                log_normalized

(``lshgan.read_dataset("pbmc68k_reduced")`` returns ``expm1`` of the bundled ``.raw``:
library-size-normalised values on a linear scale, which are ``continuous``.)

:meth:`DataKind.defaults` gives the preprocessing thresholds of each kind (see its doc):
the paper's for read counts, "expressed = non-zero" and depth-aware filters for UMI data,
no count threshold where values are not counts, no normalisation or log for values that
are already log-normalised.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import scipy.sparse as sp

from .errors import InputDataError, ParameterError

#: The kinds :func:`detect_data_kind` tells apart.
KINDS = ("umi_counts", "read_counts", "continuous", "log_normalized")
#: Integer data: at least this fraction of the non-zero values are whole numbers.
INTEGER_FRACTION = 0.99
#: Non-integer data with a maximum up to this are log-normalised.
LOG_MAX = 30.0
#: Read counts: median library size at least this (UMI data: hundreds to tens of thousands).
READ_DEPTH = 100_000.0
#: Read counts: 99th percentile of the non-zero values at least this (UMI data: tens).
READ_ENTRY = 1_000.0
#: Read counts: variance/mean of weakly expressed genes at least this (UMI data: 1 to 4).
READ_DISPERSION = 10.0
#: Evidence is computed on at most this many cells (evenly spaced rows) of a larger matrix.
MAX_CELLS_INSPECTED = 20_000

#: ``min_genes`` from the data: this fraction of the median detected genes per cell ...
MIN_GENES_FRACTION = 0.25
#: ... capped at the usual droplet threshold (the one this project used before).
MIN_GENES_CAP = 200
#: The paper's gene filter for read counts: a value above 5 in at least 10% of the cells.
PAPER_MIN_COUNT, PAPER_MIN_CELLS_FRAC, PAPER_MIN_GENES = 5.0, 0.10, 1000
#: Sparse kinds (UMI, log-normalised): a gene is kept when detected in 1% of the cells ...
SPARSE_MIN_CELLS_FRAC = 0.01
#: ... or in this many cells when 1% of the cells is more.
SPARSE_MIN_CELLS = 10


@dataclass(frozen=True)
class DataKind:
    """The kind of a matrix and the evidence it was decided on (see the module doc).

    ``source`` is ``"detected"``, or ``"given"`` when the caller overrode the kind
    (:meth:`with_kind`); the evidence is always that of the data.
    """

    kind: str
    integer_fraction: float
    min_value: float
    max_value: float
    median_total: float
    median_genes: float
    nonzero_fraction: float
    q99_nonzero: float
    dispersion: float
    mv_slope: float
    n_cells: int
    n_genes: int
    reason: str
    source: str = "detected"

    def with_kind(self, kind: str | None) -> "DataKind":
        """This evidence with ``kind`` imposed (``None`` or ``"auto"``: unchanged)."""
        kind = check_kind(kind)
        if kind is None or kind == self.kind:
            return self
        return replace(self, kind=kind, source="given",
                       reason=f"the data look like {self.kind}: {self.reason}")

    @property
    def normalizes(self) -> bool:
        """Whether :func:`lshgan.preprocess` normalises and log-transforms this kind."""
        return self.kind != "log_normalized"

    def defaults(self, n_cells: int | None = None) -> dict[str, float]:
        """The preprocessing thresholds of this kind (``n_cells``: before filtering).

        ``min_genes`` (every kind): ``min(200, 0.25 x median detected genes per cell)``,
        i.e. 200 (the usual cut for droplet data) unless the median cell detects fewer
        than 800 genes: a cell with under a quarter of the typical number of genes is an
        empty droplet or a broken cell at any depth, while a fixed 200 would remove most
        cells of shallow data (the worm neurons detect 16 genes in the median cell) and
        of gene subsets (2000 top genes).

        ``min_count`` and ``min_cells_frac`` (the gene filter: a value above
        ``min_count`` in at least ``min_cells_frac`` of the cells):

        * ``read_counts``: the paper's, 5 and 10%;
        * ``continuous``: 0 (no count threshold: values are not counts) and 10%
          (RPKM/TPM come from deep full-length protocols);
        * ``umi_counts`` and ``log_normalized``: 0 ("expressed" = non-zero) and 1% of
          the cells, or 10 cells when 1% is more: in sparse data a marker of a small
          population is detected in few cells, and 10% would remove most genes
          (pbmc4k: 669 of 2000 genes kept; worm neurons: 10).
        """
        n_cells = int(n_cells if n_cells is not None else self.n_cells)
        min_genes = int(min(MIN_GENES_CAP, math.floor(MIN_GENES_FRACTION * self.median_genes)))
        if self.kind == "read_counts":
            min_count, frac = PAPER_MIN_COUNT, PAPER_MIN_CELLS_FRAC
        elif self.kind == "continuous":
            min_count, frac = 0.0, PAPER_MIN_CELLS_FRAC
        else:
            min_count = 0.0
            frac = min(SPARSE_MIN_CELLS_FRAC, SPARSE_MIN_CELLS / max(1, n_cells))
        return {"min_genes": min_genes, "min_count": float(min_count), "min_cells_frac": float(frac)}

    def evidence(self) -> dict[str, float]:
        """The measured values (JSON- and h5ad-friendly: floats and ints)."""
        d = asdict(self)
        return {k: d[k] for k in ("integer_fraction", "min_value", "max_value", "median_total",
                                  "median_genes", "nonzero_fraction", "q99_nonzero",
                                  "dispersion", "mv_slope")}

    def describe(self) -> str:
        """One line: the kind and why."""
        how = "given" if self.source == "given" else "detected"
        return f"{self.kind} ({how}: {self.reason})"


def check_kind(kind: str | None) -> str | None:
    """``kind`` if it is one of :data:`KINDS`; ``None`` for ``None``/``"auto"``."""
    if kind is None or str(kind).lower() == "auto":
        return None
    if kind not in KINDS:
        raise ParameterError(f"data_kind must be auto or one of {', '.join(KINDS)}, got {kind!r}")
    return str(kind)


def detect_data_kind(X) -> DataKind:
    """The :class:`DataKind` of a cells x genes matrix (dense, sparse, or an AnnData's ``.X``).

    See the module doc for the rules and the values measured on the shared datasets.

    Examples
    --------
    >>> import numpy as np
    >>> detect_data_kind(np.random.default_rng(0).poisson(1.0, (50, 30))).kind
    'umi_counts'
    >>> detect_data_kind(np.log1p(np.random.default_rng(0).poisson(1.0, (50, 30)) * 1.5)).kind
    'log_normalized'
    """
    if hasattr(X, "X") and hasattr(X, "obs"):  # an AnnData
        X = X.X
    X = X.tocsr() if sp.issparse(X) else sp.csr_matrix(np.asarray(X))
    n_cells, n_genes = X.shape
    if n_cells > MAX_CELLS_INSPECTED:
        X = X[np.linspace(0, n_cells - 1, MAX_CELLS_INSPECTED).astype(int)]
    X = X.astype(np.float64)
    X.eliminate_zeros()
    nz = X.data
    if nz.size == 0:
        raise InputDataError("every value is zero: no kind of data to detect")
    if not np.isfinite(nz).all():
        raise InputDataError(f"{int((~np.isfinite(nz)).sum())} NaN or infinite values in the matrix")
    integer_fraction = float(np.mean(np.abs(nz - np.round(nz)) <= 1e-3))
    min_value = float(min(nz.min(), 0.0) if X.nnz < X.shape[0] * X.shape[1] else nz.min())
    max_value = float(nz.max())
    median_total = float(np.median(np.asarray(X.sum(axis=1)).ravel()))
    median_genes = float(np.median(np.diff(X.indptr)))
    nonzero_fraction = float(X.nnz / (X.shape[0] * X.shape[1]))
    q99 = float(np.quantile(nz, 0.99))
    mean = np.asarray(X.mean(axis=0)).ravel()
    var = np.asarray(X.multiply(X).mean(axis=0)).ravel() - mean ** 2
    ok = (mean > 0) & (var > 0)
    if ok.sum() >= 3:
        slope = float(np.polyfit(np.log10(mean[ok]), np.log10(var[ok]), 1)[0])
        low = ok & (mean <= np.median(mean[ok]))
        dispersion = float(np.median(var[low] / mean[low]))
    else:
        slope = dispersion = float("nan")

    if min_value < 0:
        kind, reason = "log_normalized", f"negative values (min {min_value:.3g}): scaled or centred"
    elif integer_fraction < INTEGER_FRACTION:
        share = f"{integer_fraction:.0%} of non-zero values are integers"
        if max_value <= LOG_MAX:
            kind, reason = "log_normalized", f"{share}, max {max_value:.3g} <= {LOG_MAX:g}"
        else:
            kind, reason = "continuous", f"{share}, max {max_value:.4g} > {LOG_MAX:g}"
    else:
        signs = (median_total >= READ_DEPTH, q99 >= READ_ENTRY, dispersion >= READ_DISPERSION)
        kind = "read_counts" if sum(signs) >= 2 else "umi_counts"
        reason = (f"integers, median library size {median_total:,.0f}, 99th percentile of "
                  f"non-zero values {q99:,.0f}, variance/mean {dispersion:.3g} at low means: "
                  f"{sum(signs)} of 3 signs of read counts")
    return DataKind(kind=kind, integer_fraction=integer_fraction, min_value=min_value,
                    max_value=max_value, median_total=median_total, median_genes=median_genes,
                    nonzero_fraction=nonzero_fraction, q99_nonzero=q99, dispersion=dispersion,
                    mv_slope=slope, n_cells=int(n_cells), n_genes=int(n_genes), reason=reason)
