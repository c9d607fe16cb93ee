"""Generator and discriminator as plain :class:`torch.nn.Module` s.

They take and return tensors and know nothing about AnnData (scvi-tools' module/model
split).  Both are multilayer perceptrons of configurable width and depth.

Generator ``G(z, y)``
    input ``z`` (noise, or noise concatenated with an LSH-subsample anchor, or the
    paper's gene-dimensional mixture: see :mod:`lshgan.module.inputs`), optional
    cell-type ``y`` through a learned embedding concatenated to ``z``; hidden layers
    Linear -> (BatchNorm) -> LeakyReLU; output head ``relu`` (non-negative with exact
    zeros, like log-expression), ``linear`` (the paper's) or ``zinf`` (zero-inflated:
    a non-negative level times a sampled detection indicator, so a gene is exactly zero
    in a cell with a learned, cell-dependent probability, as dropouts are in real data).

Discriminator ``D(x, y)``
    hidden layers Linear (spectral-normalised if asked) -> LeakyReLU; optional
    mini-batch standard-deviation feature (Karras et al. 2018) against mode collapse;
    output ``w . h + <embed(y), h>``: the projection discriminator of Miyato & Koyama
    (2018) for cell-type conditioning.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

#: Output heads: non-negative with exact zeros (relu), the paper's (linear), zero-inflated (zinf).
OUTPUT_HEADS = ("relu", "linear", "zinf")


class Generator(nn.Module):
    """MLP generator ``G(z, y) -> x``.

    Parameters
    ----------
    input_dim
        Dimension of ``z``.
    output_dim
        Number of genes.
    hidden
        Widths of the hidden layers (the paper: ``(16, 16)``).
    n_classes
        Number of cell types for conditioning; 0 for unconditional.
    batch_norm
        Batch normalisation after each hidden linear layer.
    output
        ``"relu"``, ``"linear"`` or ``"zinf"``.
    residual_from
        If set, input columns ``residual_from : residual_from + output_dim`` are added to
        the output: the network writes a *displacement* from a point given in its input
        (the LSH anchor's own cell state), so a generated cell starts at its anchor and
        the subsample's coverage of the data becomes the generator's coverage.
    """

    def __init__(self, input_dim: int, output_dim: int, hidden: Sequence[int] = (256, 256),
                 *, n_classes: int = 0, embed_dim: int = 16, batch_norm: bool = True,
                 output: str = "relu", residual_from: int | None = None):
        super().__init__()
        if residual_from is not None and not 0 <= residual_from <= input_dim - output_dim:
            raise ValueError(f"residual_from={residual_from} leaves no {output_dim} input "
                             f"columns to add to the output (input_dim {input_dim})")
        self.residual_from = residual_from
        if output not in OUTPUT_HEADS:
            raise ValueError(f"output must be one of {OUTPUT_HEADS}, got {output!r}")
        self.output = output
        self.n_classes = int(n_classes)
        self.embed = nn.Embedding(n_classes, embed_dim) if n_classes > 0 else None
        layers: list[nn.Module] = []
        d = input_dim + (embed_dim if n_classes > 0 else 0)
        for h in hidden:
            layers.append(nn.Linear(d, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.LeakyReLU(0.2))
            d = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, output_dim)
        # zero-inflated head: a second linear layer gives each gene's log-odds of being detected
        self.detect = nn.Linear(d, output_dim) if output == "zinf" else None
        self.temperature = 0.3

    def init_output(self, X) -> None:
        """Start from the training cells' marginals instead of from zero.

        Log expression reaches 10-15 while a fresh network outputs values near 0.  The output
        bias is set to each gene's mean (``relu``/``linear``), or, for ``zinf``, to its mean
        over the cells that express it, and the detection bias to the log-odds of its
        detection rate: training then starts from an independent per-gene model with the
        right marginals and spends its steps on the structure between genes.
        """
        n = X.shape[0]
        if sp.issparse(X):  # a CSR matrix is never densified
            X = X.tocsr()
            total = np.asarray(X.sum(axis=0), dtype=np.float64).ravel()
            detected = np.bincount(X.indices[X.data > 0], minlength=X.shape[1]).astype(np.float64)
        else:
            X = np.asarray(X, dtype=np.float64)
            total, detected = X.sum(0), (X > 0).sum(0).astype(np.float64)
        with torch.no_grad():
            if self.output == "zinf":
                rate = (detected / n).clip(1e-3, 1 - 1e-3)
                self.head.bias.copy_(torch.as_tensor(total / np.maximum(detected, 1)))
                self.detect.bias.copy_(torch.as_tensor(np.log(rate / (1 - rate))))
            else:
                self.head.bias.copy_(torch.as_tensor(total / n))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        base = None
        if self.residual_from is not None:
            base = z[:, self.residual_from:self.residual_from + self.head.out_features]
        if self.embed is not None:
            if y is None:
                raise ValueError("this generator is conditional: pass cell-type codes y")
            z = torch.cat([z, self.embed(y)], dim=1)
        h = self.body(z)
        value = self.head(h)
        if base is not None:
            value = value + base
        if self.output == "linear":
            return value
        value = torch.relu(value)
        if self.output == "relu":
            return value
        # zinf: detected ~ Bernoulli(sigmoid(logit)), sampled with the straight-through
        # relaxed Bernoulli (forward: exact 0/1; backward: the gradient of the relaxation)
        logit = self.detect(h)
        u = torch.rand_like(logit).clamp_(1e-6, 1 - 1e-6)
        soft = torch.sigmoid((logit + torch.log(u) - torch.log1p(-u)) / self.temperature)
        hard = (soft > 0.5).to(soft.dtype)
        return value * (hard + soft - soft.detach())


class MinibatchStd(nn.Module):
    """Append the mean over features of the per-feature batch standard deviation."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        std = h.std(dim=0, unbiased=False).mean().expand(h.shape[0], 1) if h.shape[0] > 1 \
            else torch.zeros(h.shape[0], 1, device=h.device, dtype=h.dtype)
        return torch.cat([h, std], dim=1)


class Discriminator(nn.Module):
    """MLP discriminator / critic ``D(x, y) -> score`` (one real number per cell)."""

    def __init__(self, input_dim: int, hidden: Sequence[int] = (256, 256), *,
                 n_classes: int = 0, spectral_norm: bool = False, minibatch_std: bool = True,
                 dropout: float = 0.0):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        layers: list[nn.Module] = []
        d = input_dim
        for i, h in enumerate(hidden):
            if minibatch_std and i == len(hidden) - 1:
                layers.append(MinibatchStd())
                d += 1
            layers.append(sn(nn.Linear(d, h)))
            layers.append(nn.LeakyReLU(0.2))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d = h
        self.body = nn.Sequential(*layers)
        self.out = sn(nn.Linear(d, 1))
        self.n_classes = int(n_classes)
        self.proj = sn(nn.Embedding(n_classes, d)) if n_classes > 0 else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.body(x)
        score = self.out(h).squeeze(1)
        if self.proj is not None:
            if y is None:
                raise ValueError("this discriminator is conditional: pass cell-type codes y")
            score = score + (self.proj(y) * h).sum(dim=1)
        return score
