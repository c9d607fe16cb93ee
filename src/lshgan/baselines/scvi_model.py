"""scVI (Lopez et al., Nature Methods 2018) as a cell generator, through scvi-tools.

scVI is the generative model many single-cell users already have installed.  Generation
uses its **posterior predictive** distribution: for each new cell a training cell is
drawn (of the requested type, or in training proportions), its latent ``z`` is sampled
from the encoder's ``q(z | x)``, and counts are drawn from the decoder's negative
binomial ``p(x | z, library)``.  A new cell is therefore a noisy re-synthesis of one
training cell's latent state (scVI has no cell-type conditioning of its own; drawing the
seed cell by type makes it conditional).

Input scale: scVI models counts, but the cells reaching a generator here are
``log2(1+x)`` of library-size-normalised values (raw counts are not kept by
:func:`lshgan.preprocess`).  The model is fitted on the pseudo-counts
``round(2^x - 1)`` (normalised counts at the median library size; for Yan's RPKM, rounded
RPKM) and its samples are returned as ``log2(1 + counts)``, on the training scale.

Needs the optional ``scvi-tools`` package (``pip install scvi-tools``, 1.4.x installs beside
``torch==2.13.0`` without replacing it).

Examples
--------
>>> from lshgan.baselines.scvi_model import SCVIGenerator
>>> gen = SCVIGenerator(steps=1000).fit(train, label_key="cell_type")   # doctest: +SKIP
>>> gen.generate(100, cell_type="K562", seed=0).n_obs                     # doctest: +SKIP
100
"""

from __future__ import annotations

import logging
import warnings

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from ..errors import ParameterError, check_positive_int
from ..preprocess import normalized_values
from ..references import _ReferenceGenerator
from ._common import log_scale
from .gan import epochs_for


def scvi_available() -> bool:
    """Whether scvi-tools can be imported."""
    try:
        import scvi  # noqa: F401
    except Exception:  # ImportError, or a broken install raising at import time
        return False
    return True


class SCVIGenerator(_ReferenceGenerator):
    """Posterior-predictive samples of an SCVI model trained on the training cells.

    Parameters
    ----------
    steps
        Gradient steps (mini-batches of ``batch_size``), converted to epochs.
    n_latent
        Latent dimension (scvi-tools' default 10).
    batch_size
        Mini-batch size (scvi-tools' default 128).
    seed
        ``scvi.settings.seed`` for training.
    """

    def __init__(self, *, steps: int = 2000, n_latent: int = 10, batch_size: int = 128,
                 seed: int = 0):
        super().__init__()
        self.steps = check_positive_int("steps", steps)
        self.n_latent = check_positive_int("n_latent", n_latent)
        self.batch_size = check_positive_int("batch_size", batch_size, minimum=2)
        self.seed = int(seed)
        self.conditional = False
        self.model_ = None

    def fit(self, adata: ad.AnnData, label_key: str | None = None) -> "SCVIGenerator":
        """Train SCVI on ``round(2^x - 1)`` of the training cells."""
        if not scvi_available():
            raise ParameterError("the scvi baseline needs scvi-tools: pip install scvi-tools")
        import scvi

        super().fit(adata, label_key)
        self.conditional = label_key is not None
        counts = np.rint(normalized_values(adata.X)).astype(np.float32)
        data = ad.AnnData(X=sp.csr_matrix(counts),
                          obs=adata.obs[[]].copy(), var=adata.var[[]].copy())
        logging.getLogger("scvi").setLevel(logging.ERROR)
        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
        scvi.settings.seed = self.seed
        scvi.settings.verbosity = logging.ERROR
        scvi.model.SCVI.setup_anndata(data)
        model = scvi.model.SCVI(data, n_latent=self.n_latent)
        bs = min(self.batch_size, data.n_obs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.train(max_epochs=epochs_for(self.steps, data.n_obs, bs), batch_size=bs,
                        train_size=1.0, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, logger=False, enable_checkpointing=False)
        self.model_ = model
        return self

    def _sample(self, types: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        seeds = np.empty(len(types), dtype=np.int64)
        for t in np.unique(types):
            where = np.flatnonzero(types == t)
            seeds[where] = rng.choice(np.flatnonzero(self._labels == t), size=len(where))
        torch.manual_seed(int(rng.integers(2**31)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.model_.posterior_predictive_sample(indices=seeds, n_samples=1)
        out = out.todense() if hasattr(out, "todense") else np.asarray(out)
        out = np.asarray(out, dtype=np.float64).reshape(len(types), -1)
        return log_scale(out)
