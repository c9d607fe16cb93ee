"""Adversarial objectives.  ``d_real``/``d_fake`` are raw discriminator scores.

* ``"bce"``: the original GAN (the paper's), discriminator maximises
  ``log D(x) + log(1 - D(G(z)))``; generator uses the non-saturating
  ``max log D(G(z))``.
* ``"hinge"``: ``E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]`` for D, ``-E[D(G(z))]`` for G
  (Miyato et al. 2018; use with spectral normalisation).
* ``"wgan-gp"``: Wasserstein critic ``E[D(G(z))] - E[D(x)]`` plus
  ``lambda * E[(||grad D(x_hat)|| - 1)^2]`` (Gulrajani et al. 2017).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("bce", "hinge", "wgan-gp")


def discriminator_loss(kind: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    if kind == "bce":
        return (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    if kind == "hinge":
        return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
    if kind == "wgan-gp":
        return d_fake.mean() - d_real.mean()
    raise ValueError(f"unknown loss {kind!r}; choose from {LOSSES}")


def generator_loss(kind: str, d_fake: torch.Tensor) -> torch.Tensor:
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    if kind in ("hinge", "wgan-gp"):
        return -d_fake.mean()
    raise ValueError(f"unknown loss {kind!r}; choose from {LOSSES}")


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor,
                     y: torch.Tensor | None = None) -> torch.Tensor:
    """``E[(||grad_x D(x_hat)||_2 - 1)^2]`` on random interpolates ``x_hat``."""
    alpha = torch.rand(real.shape[0], 1, device=real.device, dtype=real.dtype)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    score = critic(x_hat, y)
    (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
    return ((grad.norm(2, dim=1) - 1.0) ** 2).mean()
