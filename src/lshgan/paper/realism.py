"""Fit every generator on a dataset's training split and score it (the paper's Table 2).

For each generator and seed, :func:`fit_and_generate` trains once and draws two sets:

* ``like_test``: as many cells as the test split, with the test split's cell types when
  the generator is conditional (unconditional ones draw freely);
* ``augment``: ``augment_ratio x p`` cells in training proportions, for Table 3.

:func:`score` then gives the realism protocol of :mod:`lshgan.metrics`: random-forest AUC
real test vs generated (5-fold, PCA fitted on the pooled classification set), the DCR
memorisation ratio, and exact Wasserstein distances (genes and PCA).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import anndata as ad

from ..baselines import (GENERATORS, GANGenerator, is_conditional, make_generator,
                         scvi_available)
from ..io import dataset_hash, write_h5ad
from ..metrics import dcr, rf_auc, wasserstein
from .config import Budget
from .data import PreparedData

def build(name: str, budget: Budget, seed: int, *, critic_updates: int | None = None):
    """An unfitted generator with the budget's training length and ``seed``.

    GANs get ``critic_updates`` discriminator updates (default ``budget.critic_updates``),
    i.e. that many divided by their critic updates per generator update; scVI gets
    ``budget.scvi_steps``; the others have no training length.
    """
    updates = critic_updates or budget.critic_updates
    cls = GENERATORS[name]
    if issubclass(cls, GANGenerator):
        return make_generator(name, steps=max(1, updates // cls().n_critic), seed=seed)
    return make_generator(name, steps=budget.scvi_steps, seed=seed)


def draw(generator, n_cells: int, cell_type, seed: int) -> ad.AnnData:
    """``n_cells`` cells; the requested types only if the generator is conditional."""
    return generator.generate(n_cells, cell_type=cell_type if is_conditional(generator) else None,
                              seed=seed)


@dataclass
class GeneratedSets:
    """What one fitted generator produced for the experiments."""

    like_test: ad.AnnData
    augment: ad.AnnData
    fit_seconds: float


def _cache_key(data: PreparedData, name: str, seed: int, budget: Budget) -> str:
    fields = {"data": dataset_hash(data.train), "test": dataset_hash(data.test), "gen": name,
              "seed": seed, "updates": budget.critic_updates, "scvi": budget.scvi_steps,
              "ratio": budget.augment_ratio, "sweep": max(budget.sweep_ratios)}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def fit_and_generate(data: PreparedData, name: str, seed: int, budget: Budget, *,
                     cache: Path | None = None) -> GeneratedSets:
    """Train generator ``name`` on ``data.train`` with ``seed``; draw the two sets.

    With ``cache`` (a folder), the sets are stored there and reused when the data, budget
    and seed are unchanged (for developing the report; the committed report runs without).
    """
    n_aug = int(round(max(budget.augment_ratio, *budget.sweep_ratios) * data.full.n_vars))
    if cache is not None:
        key = _cache_key(data, name, seed, budget)
        folder = Path(cache) / data.name / f"{name}_s{seed}_{key}"
        if (folder / "meta.json").exists():
            meta = json.loads((folder / "meta.json").read_text())
            return GeneratedSets(ad.read_h5ad(folder / "like_test.h5ad"),
                                 ad.read_h5ad(folder / "augment.h5ad"), meta["fit_seconds"])
    t0 = time.perf_counter()
    gen = build(name, budget, seed).fit(data.train, label_key=data.label_key)
    seconds = time.perf_counter() - t0
    types = data.test.obs[data.label_key].astype(str).tolist()
    sets = GeneratedSets(draw(gen, data.test.n_obs, types, seed=seed + 1000),
                         draw(gen, n_aug, None, seed=seed + 2000), seconds)
    if cache is not None:
        folder.mkdir(parents=True, exist_ok=True)
        write_h5ad(sets.like_test, folder / "like_test.h5ad", force=True)
        write_h5ad(sets.augment, folder / "augment.h5ad", force=True)
        (folder / "meta.json").write_text(json.dumps({"fit_seconds": seconds}))
    return sets


def score(generated: ad.AnnData, data: PreparedData, *, seed: int, budget: Budget,
          jobs: int = 1) -> dict:
    """Table 2's metrics for one generated set (against the held-out test split)."""
    auc = rf_auc(data.test, generated, n_estimators=budget.rf_trees, seed=seed, n_jobs=jobs)
    novelty = dcr(generated, data.train, data.test)
    return {"rf_auc": auc["mean"], "rf_auc_fold_sd": auc["std"], "dcr": novelty["ratio"],
            "wasserstein_genes": wasserstein(data.test, generated, space="genes"),
            "wasserstein_pca": wasserstein(data.test, generated, space="pca", seed=seed)}


def run_realism(data: PreparedData, budget: Budget, *, jobs: int = 1,
                cache: Path | None = None,
                log: Callable[[str], None] = print) -> tuple[list[dict], dict]:
    """Fit every generator of the budget for every seed; score each (Table 2).

    Returns
    -------
    rows
        One dict per (generator, seed): dataset, generator, seed, the metrics of
        :func:`score`, ``fit_seconds``.
    sets
        ``sets[generator][seed]`` -> :class:`GeneratedSets` (for Table 3 and the pictures).
    """
    rows, sets = [], {}
    for name in budget.generators:
        if name == "scvi" and not scvi_available():
            log("  scvi: skipped (scvi-tools is not installed)")
            continue
        for seed in budget.seeds:
            got = fit_and_generate(data, name, seed, budget, cache=cache)
            metrics = score(got.like_test, data, seed=seed, budget=budget, jobs=jobs)
            sets.setdefault(name, {})[seed] = got
            rows.append({"dataset": data.name, "generator": name, "seed": seed, **metrics,
                         "fit_seconds": got.fit_seconds})
            log(f"  {name} seed {seed}: AUC {metrics['rf_auc']:.3f}  DCR {metrics['dcr']:.2f}"
                f"  W(pca) {metrics['wasserstein_pca']:.2f}  fit {got.fit_seconds:.0f}s")
    return rows, sets
