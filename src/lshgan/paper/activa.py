"""ACTIVA's rare-population test (Heydari et al., Bioinformatics 2022), for any dataset.

One cell type is made rare: only a fraction (10%, 5%, 1%, 0.5%; at least 2 cells) of its
training cells are kept, the other types are untouched.  A conditional generator is
trained on that reduced training set, generates ``n_generated`` cells of the rare type,
and a random-forest cell-type classifier is trained on the reduced set with and without
those cells.  The score is the rare type's F1 on the untouched test split (one-vs-rest:
predicted rare vs truly rare), for each fraction and seed (the seed draws the kept cells
and trains generator and classifier).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score

from ..baselines import is_conditional
from ..baselines._common import dense
from .config import Budget
from .data import PreparedData
from .realism import build, draw

NONE = "no augmentation"


def default_rare_type(data: PreparedData) -> str:
    """The type with most training cells (so that even 0.5% of it is more than 2 cells)."""
    counts = data.train.obs[data.label_key].astype(str).value_counts()
    return str(counts.index[0])


def make_rare(data: PreparedData, rare: str, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the training cells kept when ``rare`` is cut to ``fraction`` (>= 2)."""
    labels = data.train.obs[data.label_key].astype(str).to_numpy()
    rows = np.flatnonzero(labels == rare)
    n_keep = int(min(rows.size, max(2, round(fraction * rows.size))))
    keep = np.ones(labels.size, dtype=bool)
    keep[rows] = False
    keep[np.random.default_rng(seed).choice(rows, n_keep, replace=False)] = True
    return keep


def rare_f1(train_X, train_y, test_X, test_y, rare: str, *, seed: int, jobs: int = 1,
            n_trees: int = 200) -> float:
    """F1 of ``rare`` on the test cells for a random forest trained on the given cells."""
    rf = RandomForestClassifier(n_estimators=n_trees, random_state=seed, n_jobs=jobs)
    rf.fit(train_X, train_y)
    return float(f1_score(test_y == rare, rf.predict(test_X) == rare, zero_division=0.0))


def run_activa(data: PreparedData, budget: Budget, *, rare: str | None = None, jobs: int = 1,
               log: Callable[[str], None] = print) -> tuple[str, list[dict]]:
    """The rare-population test: the rare type, and one row per (fraction, seed, generator)."""
    rare = rare or default_rare_type(data)
    labels = data.train.obs[data.label_key].astype(str).to_numpy()
    X, test_X = dense(data.train.X), dense(data.test.X)
    test_y = data.test.obs[data.label_key].astype(str).to_numpy()
    n_rare = int((labels == rare).sum())
    rows = []
    for frac in budget.activa_fractions:
        for seed in budget.activa_seeds:
            keep = make_rare(data, rare, frac, seed)
            reduced = data.train[keep].copy()
            base = dict(dataset=data.name, rare_type=rare, fraction=frac, seed=seed,
                        n_rare_kept=int((labels[keep] == rare).sum()), n_rare_train=n_rare)
            f1 = rare_f1(X[keep], labels[keep], test_X, test_y, rare, seed=seed, jobs=jobs,
                         n_trees=budget.activa_trees)
            rows.append({**base, "generator": NONE, "f1": f1})
            line = [f"none {f1:.2f}"]
            for name in budget.activa_generators:
                gen = build(name, budget, seed, critic_updates=budget.activa_critic_updates)
                gen.fit(reduced, label_key=data.label_key)
                if not is_conditional(gen):  # it cannot be asked for the rare type
                    continue
                fake = dense(draw(gen, budget.activa_n_generated, rare, seed=seed).X)
                f1 = rare_f1(np.vstack([X[keep], fake]),
                             np.concatenate([labels[keep], np.full(len(fake), rare)]),
                             test_X, test_y, rare, seed=seed, jobs=jobs,
                             n_trees=budget.activa_trees)
                rows.append({**base, "generator": name, "f1": f1})
                line.append(f"{name} {f1:.2f}")
            log(f"  {rare} at {frac:.1%} ({base['n_rare_kept']} cells), seed {seed}: "
                + ", ".join(line))
    return rare, rows
