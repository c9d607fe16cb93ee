"""scGAN and cscGAN (Marouf et al., Nature Communications 2020), in this package's loop.

What is kept from the paper:

* WGAN-GP objective, gradient-penalty weight 10, 5 critic updates per generator update;
* generator 256-512-1024 (Linear -> BatchNorm -> ReLU), then a ReLU output layer followed
  by **library-size normalisation (LSN)**: each generated cell is rescaled so that its total
  expression equals a fixed library size, as the real cells are after normalisation;
* critic 1024-512-256 (Linear -> LeakyReLU), no batch norm;
* cscGAN: cell-type conditioning by **conditional batch normalisation** in the generator
  (a per-type scale and shift after each normalisation) and a **projection critic**
  (Miyato & Koyama 2018; :class:`lshgan.module.networks.Discriminator` with ``n_classes``).

Adapted: scGAN generates library-size-normalised counts; here cells live on the
``log2(1+x)`` scale of :func:`lshgan.preprocess`, so the LSN layer works on the linear
scale and its output is mapped back with ``log2(1 + x)``.  The library size is the median
total (linear-scale) expression of the training cells over the kept genes (the genes are a
highly-variable subset, so it is not the preprocessing's ``target_sum``).  Noise is 128-d
Gaussian; Adam (lr 1e-4, betas 0.5/0.9) replaces the paper's AMSGrad; training reuses
:func:`lshgan.module.training.train_gan` (so the budget, EMA and seeds are handled exactly
as for LSH-GAN).

Examples
--------
>>> from lshgan.baselines.scgan import CscGANGenerator
>>> gen = CscGANGenerator(steps=300).fit(train, label_key="cell_type")   # doctest: +SKIP
>>> gen.generate(50, cell_type="B", seed=0).shape                         # doctest: +SKIP
(50, 1000)
"""

from __future__ import annotations

from typing import Sequence

import anndata as ad
import numpy as np
import torch
from torch import nn

from ..errors import ParameterError
from ..model import LSHGAN, ModelConfig
from ..module.networks import Discriminator
from ..preprocess import normalized_values
from .gan import GANGenerator


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without its own affine part, then a per-class scale and shift."""

    def __init__(self, width: int, n_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(width, affine=False)
        self.gamma = nn.Embedding(n_classes, width)
        self.beta = nn.Embedding(n_classes, width)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.gamma(y) * self.bn(h) + self.beta(y)


class LSNGenerator(nn.Module):
    """scGAN's generator ``G(z[, y])``: MLP with (conditional) batch norm and an LSN output.

    Parameters
    ----------
    input_dim
        Noise dimension.
    output_dim
        Number of genes.
    library_size
        Total linear-scale expression every generated cell is rescaled to.
    hidden
        Hidden widths (scGAN: 256, 512, 1024).
    n_classes
        Number of cell types (0: scGAN, > 0: cscGAN with conditional batch norm).
    """

    def __init__(self, input_dim: int, output_dim: int, library_size: float,
                 hidden: Sequence[int] = (256, 512, 1024), *, n_classes: int = 0):
        super().__init__()
        self.n_classes = int(n_classes)
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        d = input_dim
        for h in hidden:
            self.linears.append(nn.Linear(d, h))
            self.norms.append(ConditionalBatchNorm(h, n_classes) if n_classes
                              else nn.BatchNorm1d(h))
            d = h
        self.out = nn.Linear(d, output_dim)
        self.register_buffer("library_size", torch.tensor(float(library_size)))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = z
        for lin, norm in zip(self.linears, self.norms):
            h = lin(h)
            h = norm(h, y) if self.n_classes else norm(h)
            h = torch.relu(h)
        linear = torch.relu(self.out(h))
        # LSN: rescale each cell to the library size (linear scale), then back to log2(1+x)
        total = linear.sum(dim=1, keepdim=True).clamp_min(1e-8)
        return torch.log2(1.0 + linear * (self.library_size / total))


class ScGANModel(LSHGAN):
    """:class:`~lshgan.LSHGAN` with scGAN's networks (noise in, LSN generator, 1024-512-256 critic).

    Only the networks differ (:meth:`~lshgan.LSHGAN.build_networks`), so training,
    conditioning and generation are the library's.  It works on the genes from pure noise
    (``space="genes"``, ``input_mode="plain"``: :attr:`ScGANGenerator.model_defaults`).  Not
    meant for :meth:`save`/:meth:`load` (the saved configuration describes LSH-GAN's
    networks).
    """

    def __init__(self, adata: ad.AnnData, *, label_key: str | None = None,
                 config: ModelConfig | None = None, **overrides):
        super().__init__(adata, label_key=label_key, config=config, **overrides)
        if (self.config.space, self.config.input_mode) != ("genes", "plain"):
            raise ParameterError("scGAN generates genes from noise: it needs space='genes' and "
                                 f"input_mode='plain', got {self.config.space!r} and "
                                 f"{self.config.input_mode!r}")

    def build_networks(self, input_dim: int, real) -> tuple[LSNGenerator, Discriminator]:
        cfg = self.config
        library = float(np.median(normalized_values(real).sum(axis=1)))
        G = LSNGenerator(input_dim, real.shape[1], library, cfg.g_hidden, n_classes=self.n_classes)
        D = Discriminator(real.shape[1], cfg.d_hidden, n_classes=self.n_classes,
                          minibatch_std=False)
        return G, D


class ScGANGenerator(GANGenerator):
    """scGAN: unconditional WGAN-GP with an LSN generator (see the module docstring)."""

    model_class = ScGANModel
    model_defaults = {"input_mode": "plain", "noise_dim": 128, "g_hidden": (256, 512, 1024),
                      "d_hidden": (1024, 512, 256), "conditional": False,
                      "space": "genes"}
    train_defaults = {"loss": "wgan-gp", "n_critic": 5, "gp_weight": 10.0, "lr_g": 1e-4,
                      "lr_d": 1e-4, "batch_size": 128}


class CscGANGenerator(ScGANGenerator):
    """cscGAN: scGAN with conditional batch norm in G and a projection critic."""

    model_defaults = {**ScGANGenerator.model_defaults, "conditional": True}
