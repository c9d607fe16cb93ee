"""Generator and discriminator as plain :class:`torch.nn.Module` s.

They take and return tensors and know nothing about AnnData (scvi-tools' module/model
split).  Both are multilayer perceptrons of configurable width and depth.

Generator ``G(z, y)``
    input ``z`` (noise, or noise concatenated with an LSH-subsample anchor, or the
    paper's gene-dimensional mixture: see :mod:`lshgan.module.inputs`), optional
    cell-type ``y`` through a learned embedding concatenated to ``z``; hidden layers
    Linear -> (BatchNorm) -> LeakyReLU; output head ``relu`` (non-negative with exact
    zeros, like log-expression) or ``linear`` (the paper's).

Discriminator ``D(x, y)``
    hidden layers Linear (spectral-normalised if asked) -> LeakyReLU; optional
    mini-batch standard-deviation feature (Karras et al. 2018) against mode collapse;
    output ``w . h + <embed(y), h>``: the projection discriminator of Miyato & Koyama
    (2018) for cell-type conditioning.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


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
        ``"relu"`` or ``"linear"``.
    """

    def __init__(self, input_dim: int, output_dim: int, hidden: Sequence[int] = (256, 256),
                 *, n_classes: int = 0, embed_dim: int = 16, batch_norm: bool = True,
                 output: str = "relu"):
        super().__init__()
        if output not in ("relu", "linear"):
            raise ValueError(f"output must be 'relu' or 'linear', got {output!r}")
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
        layers.append(nn.Linear(d, output_dim))
        if output == "relu":
            layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if y is None:
                raise ValueError("this generator is conditional: pass cell-type codes y")
            z = torch.cat([z, self.embed(y)], dim=1)
        return self.net(z)


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
