"""From a low-dimensional cell state back to genes: a hurdle (zero-inflated) decoder.

With ``ModelConfig(space="latent")`` the GAN works in the whitened PCA space of the training
cells (a few dozen dimensions instead of thousands of genes) and :class:`HurdleDecoder`
maps each generated cell state ``s`` back to log expression.  For each gene ``g``:

* detection: ``detected ~ Bernoulli(sigmoid(s . a_g + c_g))`` (a logistic regression of
  "gene g is non-zero" on the cell state);
* level: ``value = max(s . w_g + b_g + sigma_g * eps, floor_g)`` when detected, else exactly 0
  (a linear regression of the non-zero log expression on the cell state, with the
  residual spread ``sigma_g`` measured on the training cells' non-zero values).

Both regressions are fitted once, on the training cells, by penalised maximum likelihood
(closed-form weighted least squares and a few Newton steps, vectorised over genes; a
sparse matrix is densified a block of genes at a time); they are not adversarial.  Why a hurdle model: single-cell log expression is exactly zero in 10-90%
of entries and continuous elsewhere; a linear map back from PCA space (what the per-type
Gaussian reference does) gives smooth cells without zeros, and a classifier spots them.
The sampled detection events and residuals give each generated cell its own dropout
pattern and noise, as real cells have, while the GAN decides *which* cell states occur.

This is the two-part model of MAST (Finak et al. 2015) used as a decoder; the latent-GAN
idea follows Lopez et al.'s scVI and ACTIVA's VAE-GAN in spirit (generate in a small space,
decode to genes), with a fitted rather than learned-end-to-end decoder.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
import torch
from torch import nn


class HurdleDecoder(nn.Module):
    """Per-gene logistic detection and linear level on a latent cell state.

    Parameters
    ----------
    n_latent
        Dimension of the cell state.
    n_genes
        Number of genes.

    Examples
    --------
    >>> dec = HurdleDecoder(8, 100).fit(latent, X)          # doctest: +SKIP
    >>> cells = dec.sample(torch.randn(5, 8))                # doctest: +SKIP
    """

    def __init__(self, n_latent: int, n_genes: int):
        super().__init__()
        self.detect = nn.Linear(n_latent, n_genes)
        self.level = nn.Linear(n_latent, n_genes)
        self.register_buffer("sigma", torch.zeros(n_genes))
        self.register_buffer("floor", torch.zeros(n_genes))

    def fit(self, latent: np.ndarray, X, *, ridge: float = 1.0, newton_steps: int = 8,
            max_cells: int = 5000, gene_chunk: int = 2048, seed: int = 0) -> "HurdleDecoder":
        """Fit both regressions on training cells (``latent``: n x d, ``X``: n x genes).

        Exact penalised maximum likelihood, gene by gene but vectorised over genes:
        weighted least squares for the level (normal equations on the detected cells) and
        Newton's method (IRLS) for the detection.  ``ridge`` penalises the slopes, not the
        intercepts.  At most ``max_cells`` cells (a random subset) are used, ``gene_chunk``
        genes at a time, so a large CSR matrix is densified only in blocks.
        """
        n_all = X.shape[0]
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(n_all, max_cells, replace=False)) if n_all > max_cells else None
        L = np.asarray(latent, dtype=np.float64)
        if keep is not None:
            L, X = L[keep], X[keep]
        Xc = X.tocsc() if sp.issparse(X) else np.asarray(X)
        n, d = L.shape
        Z = np.hstack([L, np.ones((n, 1))])                         # design with intercept
        Z2 = (Z[:, :, None] * Z[:, None, :]).reshape(n, -1)         # n x D^2, for Gram matrices
        D = d + 1
        penalty = np.full(D, float(ridge))
        penalty[-1] = 1e-8                                          # intercept: not penalised
        penalty = np.diag(penalty)
        detect_w, level_w = [], []
        sigma, floor = [], []
        for start in range(0, X.shape[1], gene_chunk):
            block = Xc[:, start:start + gene_chunk]
            xb = np.asarray(block.toarray() if sp.issparse(block) else block, dtype=np.float64)
            m = (xb > 0).astype(np.float64)
            # level: weighted least squares on the detected cells
            gram = (Z2.T @ m).T.reshape(-1, D, D) + penalty
            beta = np.linalg.solve(gram, (Z.T @ (m * xb)).T[..., None])[..., 0]
            resid = (xb - Z @ beta.T) * m
            count = m.sum(0)
            sigma.append(np.sqrt((resid ** 2).sum(0) / np.maximum(count, 1)))
            floor.append(np.where(count > 0, np.where(m > 0, xb, np.inf).min(0), 0.0))
            level_w.append(beta)
            # detection: logistic regression by Newton's method from the per-gene rate
            rate = (count / n).clip(1e-3, 1 - 1e-3)
            gamma = np.zeros((xb.shape[1], D))
            gamma[:, -1] = np.log(rate / (1 - rate))
            for _ in range(int(newton_steps)):
                p = expit(Z @ gamma.T)
                hess = (Z2.T @ (p * (1 - p))).T.reshape(-1, D, D) + penalty
                grad = (Z.T @ (m - p)).T - gamma @ penalty
                gamma = gamma + np.linalg.solve(hess, grad[..., None])[..., 0]
            detect_w.append(gamma)
        gamma, beta = np.vstack(detect_w), np.vstack(level_w)
        with torch.no_grad():
            self.detect.weight.copy_(torch.as_tensor(gamma[:, :d]))
            self.detect.bias.copy_(torch.as_tensor(gamma[:, d]))
            self.level.weight.copy_(torch.as_tensor(beta[:, :d]))
            self.level.bias.copy_(torch.as_tensor(beta[:, d]))
            self.sigma.copy_(torch.as_tensor(np.concatenate(sigma)))
            self.floor.copy_(torch.as_tensor(np.concatenate(floor)))
        return self

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """Sample genes for each cell state (uses torch's global random generator)."""
        p = torch.sigmoid(self.detect(latent))
        detected = torch.rand_like(p) < p
        value = self.level(latent) + self.sigma * torch.randn_like(p)
        return torch.where(detected, torch.maximum(value, self.floor), torch.zeros_like(p))

    sample = forward
