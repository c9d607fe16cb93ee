"""Splatter-style simulation (Zappia, Phipson & Oshlack, Genome Biology 2017) in Python.

Splatter's ``splatSimulate`` is a gamma-Poisson hierarchy; :class:`SplatterGenerator`
estimates its parameters from the training cells (as ``splatEstimate`` does) and runs the
same steps, per cell type.  Steps, and how each is estimated here:

1. **gene means** ~ Gamma(shape, rate), fitted by maximum likelihood to the training genes'
   means (linear normalised scale) -- included.
2. **expression outliers**: with probability ``out_prob`` a gene mean is multiplied by a
   log-normal factor; ``out_prob`` is the fraction of genes above Q3 + 1.5 IQR of the
   log means, the factor's location/scale are fitted to those genes -- included.
3. **library sizes** ~ log-normal fitted to the training cells' totals -- included.
4. **group differential expression**: Splatter draws each group's DE factors at random
   (``de.prob``, ``de.facLoc``, ``de.facScale``); ``splatEstimate`` does not estimate them.
   Random factors would make simulated "types" unrelated to the real ones, so each type's
   factor per gene is **estimated from the data**: the ratio of the type's mean to the
   overall mean, shrunk towards 1 by one pseudo-cell -- adapted.
5. **biological coefficient of variation**: cell means ~ Gamma with BCV
   ``(bcv_common + 1/sqrt(mean)) * sqrt(bcv_df / chi2(bcv_df))``; as in ``splatEstBCV``,
   ``bcv_common = 0.1 + 0.25 * phi`` with ``phi`` the common negative-binomial dispersion,
   here the maximum-likelihood one around the type means (edgeR's conditional likelihood
   is not available; around the type means because the group factors of step 4 already
   carry the differences between types); ``bcv_df`` keeps Splatter's default 60 (its
   estimate needs limma's prior degrees of freedom) -- included.
6. **counts** ~ Poisson(cell mean) -- included.
7. **dropout** (``dropout.type = "experiment"``): a logistic curve of the zero fraction
   against log mean expression is fitted to the training genes (``splatEstDropout``) and,
   with ``dropout=True``, zeroes counts -- estimated, off by default as in Splatter
   (``dropout.type = "none"``): the gamma-Poisson step already produces the zeros.
8. Batch effects, paths (``splatSimulatePaths``) -- not included (no batches, no
   trajectories in these data).

Gene identity: Splatter's simulated genes are anonymous.  So that simulated cells can be
compared gene by gene with real ones, the simulated base means are assigned to the real
genes **by rank** (the gene with the i-th largest training mean gets the i-th largest
draw).  Everything runs on the linear normalised scale (``2^x - 1`` of the training
cells); the counts are returned as ``log2(1 + counts)``.

Examples
--------
>>> from lshgan.baselines.splatter import SplatterGenerator
>>> sim = SplatterGenerator().fit(train, label_key="cell_type")   # doctest: +SKIP
>>> sim.params_["bcv_common"]                                       # doctest: +SKIP
0.41
"""

from __future__ import annotations

import anndata as ad
import numpy as np

from ..preprocess import normalized_values
from ..references import _ReferenceGenerator
from ._common import log_scale


def _fit_gamma(values: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood Gamma(shape, rate) of positive values."""
    from scipy import stats

    v = values[values > 0]
    if v.size < 2 or np.ptp(v) == 0:
        m = float(v.mean()) if v.size else 1.0
        return 100.0, 100.0 / max(m, 1e-12)
    shape, _, scale = stats.gamma.fit(v, floc=0)
    return float(shape), float(1.0 / scale)


def _common_dispersion(counts: np.ndarray, means: np.ndarray) -> float:
    """Maximum-likelihood common negative-binomial dispersion of ``counts`` around ``means``.

    What ``edgeR::estimateDisp``'s common dispersion estimates (by conditional likelihood
    there, by plain likelihood here).
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import gammaln

    m = np.maximum(means, 1e-8)

    def nll(log_phi):
        r = np.exp(-log_phi)
        return -(gammaln(counts + r) - gammaln(r) + r * np.log(r / (r + m))
                 + counts * np.log(m / (r + m))).sum()

    return float(np.exp(minimize_scalar(nll, bounds=(-8.0, 5.0), method="bounded").x))


def _fit_dropout(mean: np.ndarray, zero_frac: np.ndarray) -> tuple[float, float] | None:
    """Logistic zero fraction = 1 / (1 + exp(-shape (log mean - mid))); ``None`` if unfit."""
    from scipy.optimize import curve_fit

    keep = mean > 0
    x, y = np.log(mean[keep]), zero_frac[keep]
    if x.size < 4 or np.ptp(y) < 1e-3:
        return None

    def logistic(x, shape, mid):
        return 1.0 / (1.0 + np.exp(-shape * (x - mid)))

    try:
        (shape, mid), _ = curve_fit(logistic, x, y, p0=(-1.0, float(np.median(x))), maxfev=5000)
    except RuntimeError:
        return None
    return (float(shape), float(mid)) if shape < 0 else None


class SplatterGenerator(_ReferenceGenerator):
    """Splatter's gamma-Poisson simulation with parameters estimated from the training cells.

    Parameters
    ----------
    bcv_df
        Degrees of freedom of the BCV's inverse chi-squared (Splatter's default 60).
    dropout
        Apply the fitted logistic dropout (Splatter's ``dropout.type = "experiment"``);
        off by default, as in Splatter.

    Attributes
    ----------
    params_
        The estimated parameters (``mean_shape``, ``mean_rate``, ``out_prob``,
        ``out_fac_loc``, ``out_fac_scale``, ``lib_loc``, ``lib_scale``, ``dispersion``,
        ``bcv_common``, ``bcv_df``, ``dropout_mid``, ``dropout_shape``).
    """

    def __init__(self, *, bcv_df: float = 60.0, dropout: bool = False, seed: int = 0):
        super().__init__()
        self.bcv_df = float(bcv_df)
        self.dropout = bool(dropout)
        self.seed = int(seed)
        self.conditional = False

    def fit(self, adata: ad.AnnData, label_key: str | None = None) -> "SplatterGenerator":
        """Estimate the simulation's parameters from ``adata`` (``log2(1+x)`` cells)."""
        super().fit(adata, label_key)
        self.conditional = label_key is not None
        L = normalized_values(adata.X)
        gene_mean = L.mean(axis=0)
        lib = L.sum(axis=1)
        p = {"bcv_df": self.bcv_df}
        p["mean_shape"], p["mean_rate"] = _fit_gamma(gene_mean)
        # expression outliers (splatEstOutlier): high log means beyond Q3 + 1.5 IQR
        logm = np.log(gene_mean[gene_mean > 0])
        q1, q3 = np.percentile(logm, [25, 75])
        high = logm > q3 + 1.5 * (q3 - q1)
        p["out_prob"] = float(high.mean())
        fac = logm[high] - np.median(logm)
        p["out_fac_loc"] = float(fac.mean()) if fac.size else 0.0
        p["out_fac_scale"] = float(fac.std()) if fac.size > 1 else 0.0
        loglib = np.log(lib[lib > 0])
        p["lib_loc"], p["lib_scale"] = float(loglib.mean()), float(loglib.std())
        # group factors, and the common dispersion around the type means (BCV)
        self._factors = {}
        type_mean = np.empty_like(L)
        for t in np.unique(self._labels):
            rows = self._labels == t
            m_t = L[rows].mean(axis=0)
            n_t = int(rows.sum())
            self._factors[t] = (m_t * n_t + gene_mean) / (n_t + 1) / np.maximum(gene_mean, 1e-12)
            type_mean[rows] = m_t
        phi = _common_dispersion(np.rint(L), type_mean)
        p["dispersion"] = phi
        p["bcv_common"] = 0.1 + 0.25 * phi  # Splatter's correction of the edgeR estimate
        drop = _fit_dropout(gene_mean, (L <= 0).mean(axis=0))
        p["dropout_shape"], p["dropout_mid"] = drop if drop else (float("nan"), float("nan"))
        self.params_ = p
        self._base = self._base_means(gene_mean, np.random.default_rng(self.seed))
        return self

    def _base_means(self, gene_mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Steps 1-2 (drawn once per fit: one simulated experiment), assigned to genes by rank."""
        p = self.params_
        g = len(gene_mean)
        draws = rng.gamma(p["mean_shape"], 1.0 / p["mean_rate"], size=g)
        outlier = rng.random(g) < p["out_prob"]
        draws[outlier] *= rng.lognormal(p["out_fac_loc"], max(p["out_fac_scale"], 1e-8),
                                        size=int(outlier.sum()))
        rank = np.argsort(np.argsort(-gene_mean, kind="stable"), kind="stable")
        return np.sort(draws)[::-1][rank]

    def _sample(self, types: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = self.params_
        base = self._base
        n, g = len(types), len(base)
        lib = rng.lognormal(p["lib_loc"], max(p["lib_scale"], 1e-8), size=n)
        means = np.empty((n, g))
        for t in np.unique(types):
            rows = types == t
            m = base * self._factors[t]
            means[rows] = m / m.sum()
        means *= lib[:, None]
        bcv = (p["bcv_common"] + 1.0 / np.sqrt(np.maximum(means, 1e-12))) * np.sqrt(
            p["bcv_df"] / rng.chisquare(p["bcv_df"], size=g))
        shape = 1.0 / bcv**2
        true_mean = rng.gamma(shape, means / shape)
        counts = rng.poisson(true_mean).astype(np.float64)
        if self.dropout and np.isfinite(p["dropout_mid"]):
            logit = -p["dropout_shape"] * (np.log(np.maximum(true_mean, 1e-12)) - p["dropout_mid"])
            counts[rng.random((n, g)) < 1.0 / (1.0 + np.exp(logit))] = 0.0
        return log_scale(counts)
