"""Reproduction of the LSH-GAN paper's experiments (Lall et al., Communications Biology 2022).

One command writes the whole report (Markdown tables with the paper's numbers beside ours,
``results.json`` and PNGs)::

    python -m lshgan.paper [--datasets PATH ...] [--quick] --out reports/paper

=====================  =================================================================
module                 experiment
=====================  =================================================================
``simulated``          Table 1 (two-class Gaussians, Wasserstein by epoch), Figure 2 (toy)
``realism``            Table 2: every generator vs held-out cells (RF AUC, DCR)
``selection``          the five gene-selection methods (HVG, Fano, CV2, M3Drop, GLM-PCA)
``clustering``         SC3-like consensus clustering
``augmentation``       Table 3: genes selected on real + generated cells, clustering ARI
``activa``             ACTIVA's rare-population augmentation test
``pictures``           UMAPs, marker genes, dropout, gene-gene correlation (PNG)
``report``             runs the experiments, writes README.md / results.json
``config``             budgets (full / quick) and the paper's published numbers
``data``               reading, preprocessing and splitting the datasets
=====================  =================================================================

The generators compared live in :mod:`lshgan.baselines`.
"""

from .config import FULL, QUICK, Budget
from .report import EXPERIMENTS, run_report

__all__ = ["Budget", "FULL", "QUICK", "EXPERIMENTS", "run_report"]
