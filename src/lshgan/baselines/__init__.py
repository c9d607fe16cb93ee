"""Cell generators LSH-GAN is compared with, all behind one interface.

Every generator has ``.fit(adata, label_key=None) -> self`` (``adata``: preprocessed
``log2(1+x)`` training cells) and ``.generate(n_cells, cell_type=None, seed=0) -> AnnData``
(training ``var_names``, ``obs['cell_type']``, ``obs['synthetic'] = True``), and after
``fit`` an attribute ``conditional`` telling whether ``cell_type`` may be requested.

=================  ==========================================================  ===========
name               what                                                        conditional
=================  ==========================================================  ===========
``lshgan``         this project's LSH-GAN (library defaults)                   yes
``gan``            the same networks fed pure noise                            yes
``lshgan-paper``   the paper's 16-16 LSH-GAN, BCE, full batch                  no
``gan-paper``      the paper's 16-16 GAN fed gene-dimensional noise            no
``scgan``          scGAN (Marouf et al. 2020): WGAN-GP, LSN generator          no
``cscgan``         cscGAN: scGAN + conditional batch norm, projection critic   yes
``splatter``       Splatter's gamma-Poisson simulation, estimated parameters   yes
``sugar``          SUGAR: local-covariance Gaussians + one diffusion step      yes
``scvi``           scVI posterior predictive samples (needs scvi-tools)        yes
``copy``           reference: resampled training cells                         yes
``gaussian``       reference: per-type Gaussian in PCA(50)                     yes
=================  ==========================================================  ===========

"conditional" holds when fitted with a ``label_key``.  Options are passed to the
constructor; :func:`make_generator` keeps only those a generator accepts, so one budget
(``steps``, ``seed``) can be handed to all of them.

Examples
--------
>>> from lshgan.baselines import GENERATORS, make_generator
>>> sorted(GENERATORS)[:3]
['copy', 'cscgan', 'gan']
>>> gen = make_generator("splatter", steps=100, seed=1)   # 'steps' is ignored by Splatter
>>> type(gen).__name__
'SplatterGenerator'
"""

from __future__ import annotations

import inspect

from ..errors import ParameterError
from ..references import REFERENCES
from .gan import (GANGenerator, LSHGANGenerator, PaperGANGenerator, PaperLSHGANGenerator,
                  PlainGANGenerator)
from .scgan import CscGANGenerator, ScGANGenerator
from .scvi_model import SCVIGenerator, scvi_available
from .splatter import SplatterGenerator
from .sugar import SugarGenerator

#: Every generator by name (the baselines, LSH-GAN and the two references).
GENERATORS: dict[str, type] = {
    "lshgan": LSHGANGenerator,
    "gan": PlainGANGenerator,
    "lshgan-paper": PaperLSHGANGenerator,
    "gan-paper": PaperGANGenerator,
    "scgan": ScGANGenerator,
    "cscgan": CscGANGenerator,
    "splatter": SplatterGenerator,
    "sugar": SugarGenerator,
    "scvi": SCVIGenerator,
    **REFERENCES,
}


def make_generator(name: str, **options):
    """An unfitted generator ``name``, given those of ``options`` its constructor accepts."""
    try:
        cls = GENERATORS[name]
    except KeyError:
        raise ParameterError(
            f"unknown generator {name!r}; choose from {', '.join(GENERATORS)}") from None
    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in options.items() if k in accepted})


__all__ = ["GENERATORS", "make_generator", "is_conditional", "scvi_available", "GANGenerator",
           "LSHGANGenerator", "PlainGANGenerator", "PaperLSHGANGenerator", "PaperGANGenerator",
           "ScGANGenerator", "CscGANGenerator", "SplatterGenerator", "SugarGenerator",
           "SCVIGenerator"]


def is_conditional(generator) -> bool:
    """Whether a fitted generator accepts ``cell_type`` (the references: fitted with labels)."""
    fitted_with_labels = getattr(generator, "label_key", None) is not None
    return bool(getattr(generator, "conditional", fitted_with_labels))
