"""Tensor-level parts of LSH-GAN: networks, losses and generator inputs (no AnnData)."""

from .networks import Discriminator, Generator
from .losses import discriminator_loss, generator_loss, gradient_penalty

__all__ = ["Generator", "Discriminator", "discriminator_loss", "generator_loss", "gradient_penalty"]
