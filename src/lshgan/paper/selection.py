"""The five gene-selection methods of the paper's Table 3.

Every method takes cells x genes on the ``log2(1+x)`` scale of :func:`lshgan.preprocess`
(real cells, or real cells stacked with generated ones), scores every gene, and
:func:`select_genes` returns the indices of the ``n`` best-scoring genes.  Methods that
model counts work on the linear normalised scale ``2^x - 1`` (negative generated values
are clipped to 0).

``hvg``
    Highly variable genes, Seurat v3 flavour (:func:`scanpy.pp.highly_variable_genes`,
    ``flavor="seurat_v3"``: variance of standardised values after a loess fit of variance
    on mean), on the linear normalised values.
``fano``
    Fano factor ``var / mean`` (linear scale), largest first.  (The authors' R code orders
    it increasingly and keeps the *smallest*; we keep the largest, the usual meaning.)
``cv2``
    Squared coefficient of variation against its technical expectation (Brennecke et al.
    2013): a gamma GLM ``CV^2 ~ a0 + a1 / mean`` across genes, genes ranked by observed over
    fitted ``CV^2``.
``m3drop``
    M3Drop (Andrews & Hemberg 2019): the Michaelis-Menten model of dropout,
    ``P(zero) = K / (K + S)`` with ``S`` the mean expression, ``K`` fitted by maximum
    likelihood over genes; each gene's own ``K_g = S P / (1 - P)`` is compared with ``K``
    on the log scale with the delta-method standard error, genes ranked by the z-score
    (more dropouts than expected for their mean).  Our implementation of the package's
    ``M3DropFeatureSelection`` test.
``glmpca``
    GLM-PCA loadings (Townes et al. 2019), by the authors' fast approximation: PCA of the
    Poisson deviance residuals of the null model ``mu_ij = n_i p_j``, genes ranked by the
    norm of their loadings on the first ``L = 10`` components weighted by the singular
    values.  The exact iterative GLM-PCA (PyPI ``glmpca``) took 17 s per call on 1700 x
    1000 cells here against well under a second, and Table 3 needs hundreds of calls;
    ``exact=True`` uses the package when it is installed.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import ParameterError
from ..preprocess import normalized_values


def _linear(X) -> np.ndarray:
    return np.maximum(normalized_values(X), 0.0)


def hvg_scores(X) -> np.ndarray:
    """Seurat v3 standardised variance (scanpy); larger = more variable."""
    import warnings

    import anndata as ad
    import scanpy as sc

    tmp = ad.AnnData(X=_linear(X).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-integer values: scanpy warns, the fit is unchanged
        sc.pp.highly_variable_genes(tmp, flavor="seurat_v3", n_top_genes=min(tmp.n_vars, 2000),
                                    span=0.3)
    return np.nan_to_num(tmp.var["variances_norm"].to_numpy(np.float64), nan=-np.inf)


def fano_scores(X) -> np.ndarray:
    """Fano factor ``var / mean`` on the linear scale (0 for unexpressed genes)."""
    L = _linear(X)
    mean = L.mean(axis=0)
    return np.where(mean > 0, L.var(axis=0) / np.maximum(mean, 1e-12), 0.0)


def cv2_scores(X) -> np.ndarray:
    """Observed ``CV^2`` over the fitted ``a0 + a1 / mean`` (Brennecke et al. 2013)."""
    L = _linear(X)
    mean = L.mean(axis=0)
    cv2 = np.where(mean > 0, L.var(axis=0, ddof=1) / np.maximum(mean, 1e-12) ** 2, 0.0)
    ok = (mean > 0) & (cv2 > 0)
    if ok.sum() < 3:
        return cv2
    # gamma GLM with identity link, by iteratively reweighted least squares (weights 1/fit^2)
    A = np.column_stack([np.ones(ok.sum()), 1.0 / mean[ok]])
    coef = np.linalg.lstsq(A, cv2[ok], rcond=None)[0]
    for _ in range(25):
        fit = np.maximum(A @ coef, 1e-12)
        w = 1.0 / fit
        coef = np.linalg.lstsq(A * w[:, None], cv2[ok] * w, rcond=None)[0]
    expected = np.maximum(coef[0] + coef[1] / np.maximum(mean, 1e-12), 1e-12)
    return np.where(mean > 0, cv2 / expected, 0.0)


def m3drop_scores(X) -> np.ndarray:
    """M3Drop z-scores: excess dropout over the Michaelis-Menten fit (larger = selected)."""
    from scipy.optimize import minimize_scalar

    L = _linear(X)
    n = L.shape[0]
    S = L.mean(axis=0)
    P = (L <= 0).mean(axis=0)
    ok = (S > 0) & (P > 0) & (P < 1)
    z = np.full(L.shape[1], -np.inf)
    if ok.sum() < 3:
        return z
    zeros = P[ok] * n

    def nll(log_k):  # binomial likelihood of the zero counts, P = K / (K + S)
        p = np.clip(np.exp(log_k) / (np.exp(log_k) + S[ok]), 1e-12, 1 - 1e-12)
        return -(zeros * np.log(p) + (n - zeros) * np.log1p(-p)).sum()

    log_k = minimize_scalar(nll, bounds=(np.log(S[ok].min()) - 5, np.log(S[ok].max()) + 5),
                            method="bounded").x
    s, p = S[ok], P[ok]
    k_obs = s * p / (1 - p)
    s_err = L[:, ok].std(axis=0, ddof=1) / np.sqrt(n)
    p_err = np.sqrt(p * (1 - p) / n)
    k_err = np.sqrt((p / (1 - p) * s_err) ** 2 + (s / (1 - p) ** 2 * p_err) ** 2)
    z[ok] = (np.log(k_obs) - log_k) / np.maximum(k_err / k_obs, 1e-12)
    return z


def glmpca_scores(X, *, n_components: int = 10, exact: bool = False, seed: int = 0) -> np.ndarray:
    """Norm of the GLM-PCA loadings (null-residual approximation, or the exact package)."""
    L = np.rint(_linear(X))
    expressed = L.sum(axis=0) > 0
    scores = np.zeros(L.shape[1])
    Y = L[:, expressed]
    Y = Y[Y.sum(axis=1) > 0]
    n_comp = int(max(1, min(n_components, min(Y.shape) - 1)))
    if exact:
        from glmpca.glmpca import glmpca

        np.random.seed(seed)
        fit = glmpca(Y.T, n_comp, fam="poi", ctl={"maxIter": 100, "eps": 1e-4})
        load = np.asarray(fit["loadings"]) * np.asarray(fit["factors"]).std(axis=0)
    else:
        mu = Y.sum(axis=1, keepdims=True) * (Y.sum(axis=0) / Y.sum())[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            term = np.where(Y > 0, Y * np.log(Y / mu), 0.0)
        dev = 2.0 * (term - (Y - mu))
        resid = np.sign(Y - mu) * np.sqrt(np.maximum(dev, 0.0))
        resid -= resid.mean(axis=0)
        from sklearn.utils.extmath import randomized_svd

        _, sing, vt = randomized_svd(resid, n_comp, random_state=seed)
        load = vt.T * sing
    scores[expressed] = np.sqrt((load**2).sum(axis=1))
    return scores


#: Gene-selection methods by name (Table 3's rows).
METHODS: dict[str, Callable] = {
    "hvg": hvg_scores,
    "fano": fano_scores,
    "cv2": cv2_scores,
    "m3drop": m3drop_scores,
    "glmpca": glmpca_scores,
}

#: Names used in the report.
METHOD_LABELS = {"hvg": "HVG (Seurat v3)", "fano": "Fano factor", "cv2": "CV\u00b2",
                 "m3drop": "M3Drop", "glmpca": "GLM-PCA"}


def select_genes(X, method: str, n: int = 500) -> np.ndarray:
    """Indices (sorted) of the ``n`` genes ``method`` ranks highest on cells ``X``.

    Examples
    --------
    >>> X = np.log2(1 + np.random.default_rng(0).poisson(3.0, size=(40, 30)))
    >>> select_genes(X, "fano", n=5).shape
    (5,)
    """
    try:
        score = METHODS[method]
    except KeyError:
        raise ParameterError(f"unknown gene-selection method {method!r}; "
                             f"choose from {', '.join(METHODS)}") from None
    s = score(X)
    n = int(min(n, len(s)))
    order = np.lexsort((np.arange(len(s)), -s))  # ties broken by gene order: deterministic
    return np.sort(order[:n])
