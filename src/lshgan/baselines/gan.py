"""LSH-GAN and the plain GAN behind the baseline interface, with a budget in generator steps.

Four flavours of :class:`lshgan.LSHGAN`, differing only in what the generator is fed and
in the networks:

``lshgan``
    This project's LSH-GAN with the library's defaults (:class:`~lshgan.ModelConfig`,
    :class:`~lshgan.TrainConfig`: LSH-subsample anchors plus Gaussian noise, cell-type
    conditioning, whatever objective and networks the library currently recommends).
``gan``
    The same networks and objective fed pure Gaussian noise (``input_mode="plain"``): the
    traditional GAN the paper compares with.
``lshgan-paper``
    The paper's formulation (:meth:`ModelConfig.paper`: 16-16 MLPs, linear output,
    gene-dimensional input rows mixing ``U(-1, 1)`` noise and LSH-subsample cells), trained
    as the authors' code trains it: binary cross-entropy, full batch.
``gan-paper``
    The paper's GAN: the same 16-16 networks fed gene-dimensional noise only.

The budget is counted in **generator updates** (``steps``), not epochs, so that datasets of
different sizes get the same amount of training; it is converted to the epochs
:meth:`LSHGAN.train` expects.  :attr:`GANGenerator.n_critic` tells how many discriminator
updates each generator update costs (to compare GANs at equal discriminator updates).  The exponential moving average of the generator weights
is set from the budget (``ema_decay = 1 - 10 / steps``, at most the library's default,
:attr:`TrainConfig.ema_decay`), so a short run averages about its last 10% of updates.

Examples
--------
>>> from lshgan.baselines import make_generator
>>> gen = make_generator("lshgan", steps=200).fit(train, label_key="cell_type")  # doctest: +SKIP
>>> fake = gen.generate(100, cell_type="K562", seed=0)                             # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Sequence

import anndata as ad

from ..config import FULL_BATCH, PRESETS
from ..errors import ParameterError, check_positive_int
from ..model import LSHGAN, ModelConfig
from ..module.training import TrainConfig


def epochs_for(steps: int, n_cells: int, batch_size: int) -> int:
    """Epochs of :meth:`LSHGAN.train` that give at least ``steps`` generator updates."""
    per_epoch = max(1, n_cells // max(1, min(batch_size, n_cells)))
    return max(1, math.ceil(steps / per_epoch))


def ema_for(steps: int) -> float:
    """EMA decay for a run of ``steps`` generator updates (averages about the last 10%)."""
    return float(min(TrainConfig().ema_decay, max(0.0, 1.0 - 10.0 / max(steps, 1))))


class GANGenerator:
    """A trained :class:`~lshgan.LSHGAN` (or subclass) with the baseline interface.

    Parameters
    ----------
    steps
        Generator updates to train for (converted to epochs).
    seed
        Seed of the network initialisation, LSH subsample and training.
    model
        :class:`~lshgan.ModelConfig` field overrides, on top of the flavour's defaults.
    train
        :class:`~lshgan.TrainConfig` field overrides, on top of the flavour's defaults.

    Attributes
    ----------
    conditional
        After :meth:`fit`: whether ``generate`` accepts ``cell_type``.
    model_
        The trained model.
    """

    #: model class trained by :meth:`fit`
    model_class: type[LSHGAN] = LSHGAN
    #: ModelConfig overrides of this flavour
    model_defaults: dict = {}
    #: TrainConfig overrides of this flavour
    train_defaults: dict = {}
    #: generator input = gene-dimensional noise (the paper's GAN), set at fit time
    noise_is_genes: bool = False
    #: base configuration of the flavour
    paper_config: bool = False

    def __init__(self, *, steps: int = 400, seed: int = 0, model: dict | None = None,
                 train: dict | None = None):
        self.steps = check_positive_int("steps", steps)
        self.seed = int(seed)
        self.model_overrides = dict(model or {})
        self.train_overrides = dict(train or {})
        self.model_: LSHGAN | None = None
        self.conditional = False

    @property
    def n_critic(self) -> int:
        """Discriminator updates per generator update of this flavour."""
        over = {**self.train_defaults, **self.train_overrides}
        return int(over.get("n_critic", TrainConfig().n_critic))

    def model_config(self, adata: ad.AnnData) -> ModelConfig:
        base = PRESETS["paper" if self.paper_config else "default"].model()
        over = {**self.model_defaults, **self.model_overrides}
        if self.noise_is_genes:
            over.setdefault("noise_dim", int(adata.n_vars))
        return ModelConfig(**{**asdict(base), **over})

    def train_config(self, adata: ad.AnnData) -> TrainConfig:
        over = {**self.train_defaults, **self.train_overrides}
        if over.get("batch_size") == FULL_BATCH:
            over["batch_size"] = max(2, int(adata.n_obs))
        base = TrainConfig(**{k: v for k, v in over.items() if k not in ("epochs", "ema_decay")})
        over.setdefault("ema_decay", ema_for(self.steps))
        over["epochs"] = epochs_for(self.steps, adata.n_obs, base.batch_size)
        over["max_steps"] = None  # the budget is self.steps, not the library's default cap
        over["seed"] = self.seed
        return TrainConfig(**{**asdict(base), **over})

    def fit(self, adata: ad.AnnData, label_key: str | None = None) -> "GANGenerator":
        """Train on ``adata`` (preprocessed ``log2(1+x)`` cells); labels enable conditioning."""
        cfg = self.model_config(adata)
        self.model_ = self.model_class(adata, label_key=label_key, config=cfg)
        self.model_.train(config=self.train_config(adata), progress=False, device="cpu")
        self.conditional = bool(self.model_.n_classes)
        return self

    def generate(self, n_cells: int, cell_type: str | Sequence[str] | None = None, *,
                 seed: int = 0) -> ad.AnnData:
        """``n_cells`` cells (``cell_type`` only if conditional); see :meth:`LSHGAN.generate`."""
        if self.model_ is None:
            raise ParameterError(f"{type(self).__name__} is not fitted: call fit(adata) first")
        return self.model_.generate(n_cells, cell_type=cell_type, seed=seed)


class LSHGANGenerator(GANGenerator):
    """This project's LSH-GAN (library defaults), trained for ``steps`` generator updates."""


class PlainGANGenerator(GANGenerator):
    """The same networks and loss as :class:`LSHGANGenerator`, fed pure Gaussian noise."""

    model_defaults = {"input_mode": "plain"}


class PaperLSHGANGenerator(GANGenerator):
    """The paper's LSH-GAN: the ``paper`` preset of :mod:`lshgan.config` (16-16 MLPs, mixture
    input, binary cross-entropy, lr 1e-3, full batch)."""

    paper_config = True
    train_defaults = dict(PRESETS["paper"].train)


class PaperGANGenerator(PaperLSHGANGenerator):
    """The paper's traditional GAN: :class:`PaperLSHGANGenerator` fed gene-dimensional noise."""

    model_defaults = {"input_mode": "plain"}
    noise_is_genes = True
