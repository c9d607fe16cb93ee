"""The paper's simulated experiments: Table 1 (two-class Gaussians) and Figure 2 (toy 2-d).

Both train the paper's networks (16-16 MLPs, linear output, binary cross-entropy, full
batch, Adam lr 1e-3) with :func:`lshgan.module.training.train_gan` and read the generator
at several epochs during one run (a callback on a generator copy updated every step,
``ema_decay = 0``), so a budget of ``max(epochs)`` trains once and reports every
checkpoint.  LSH-GAN is fed the paper's input (:mod:`lshgan.module.inputs`, mode
``"paper"``: noise rows mixed with LSH-subsample rows); the GAN is fed noise of the same
dimension (``N(0, 1)`` where the authors used ``U(-1, 1)``).

Wasserstein distance (Table 1): exact optimal transport between the test samples and as
many generated samples, Euclidean ground cost (:func:`lshgan.metrics.wasserstein`, the
``W1`` distance in feature units).  The authors' script divides both sets by their sizes
before the cost matrix, with set sizes we cannot recover, so only orderings are compared.
One "epoch" here is one full-batch update of D and of G; the authors ran 10 D and 10 G
updates per epoch for 10000-25000 epochs.
"""

from __future__ import annotations

import copy
from typing import Callable

import anndata as ad
import numpy as np
import pandas as pd
import torch

from ..lsh import lsh_subsample
from ..metrics import wasserstein
from ..module.inputs import GeneratorInput
from ..module.networks import Discriminator, Generator
from ..module.training import BatchSource, TrainConfig, train_gan


def two_class_gaussians(n: int = 100, p: int = 1000, *, rho: float = 0.5,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The paper's simulation: two equal classes, means in [5, 15] and [-15, -5],
    covariance ``rho^|i-j|`` (an AR(1) process along the features, unit variance).

    Examples
    --------
    >>> X, y = two_class_gaussians(10, 4, seed=0)
    >>> X.shape, sorted(set(y.tolist()))
    ((10, 4), [0, 1])
    """
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], [n - n // 2, n // 2])
    means = np.stack([rng.uniform(5, 15, p), rng.uniform(-15, -5, p)])
    e = rng.standard_normal((n, p))
    Z = np.empty((n, p))
    Z[:, 0] = e[:, 0]
    for j in range(1, p):
        Z[:, j] = rho * Z[:, j - 1] + np.sqrt(1 - rho**2) * e[:, j]
    return (means[y] + Z).astype(np.float32), y


def parabola(n: int = 1024, *, seed: int = 0) -> np.ndarray:
    """The authors' toy data (Figure 2): ``y = 10 + x^2`` with ``x ~ U(-50, 50)``."""
    x = 100 * (np.random.default_rng(seed).random(n) - 0.5)
    return np.column_stack([x, 10 + x * x]).astype(np.float32)


def train_snapshots(X: np.ndarray, *, lsh_k: int | None, epochs: tuple[int, ...],
                    n_generate: int, seed: int = 0, batch_size: int | None = None,
                    lr: float = 1e-3) -> dict[int, np.ndarray]:
    """Train the paper's 16-16 GAN on ``X``; generated samples at each epoch of ``epochs``.

    ``lsh_k=None`` is the traditional GAN (noise only); an integer is LSH-GAN with that k
    (one LSH round, t = 1).  Epoch 0 means the untrained generator.
    """
    X = np.asarray(X, dtype=np.float32)
    n, p = X.shape
    if lsh_k is None:
        inputs = GeneratorInput("plain", noise_dim=p, n_train=n)
    else:
        sub = lsh_subsample(X, k=lsh_k, t=1, seed=seed)
        inputs = GeneratorInput("paper", anchors=torch.as_tensor(X[sub]), n_train=n)
    torch.manual_seed(seed)
    G = Generator(inputs.dim, p, (16, 16), batch_norm=False, output="linear")
    D = Discriminator(p, (16, 16), minibatch_std=False)
    G_now = copy.deepcopy(G)
    snaps: dict[int, np.ndarray] = {}

    def sample(epoch: int, *_):
        if epoch in epochs:
            with torch.no_grad():
                z = inputs.sample(n_generate, generator=torch.Generator().manual_seed(seed + 7))
                snaps[epoch] = G_now(z).numpy().copy()

    sample(0)
    cfg = TrainConfig(epochs=max(max(epochs), 1), batch_size=batch_size or n, loss="bce",
                      n_critic=1, lr_g=lr, lr_d=lr, ema_decay=0.0, seed=seed)
    if max(epochs) > 0:
        train_gan(G, D, BatchSource(X, None, torch.device("cpu")), inputs, cfg, G_ema=G_now,
                  progress=False, callback=sample)
    return snaps


def _as_adata(X: np.ndarray) -> ad.AnnData:
    return ad.AnnData(X=np.asarray(X, dtype=np.float32),
                      var=pd.DataFrame(index=[f"f{j}" for j in range(X.shape[1])]))


def run_table1(*, epochs: tuple[int, ...], seeds: tuple[int, ...], ks: tuple[int, ...],
               n_samples: int = 100, n_features: int = 1000, data_seed: int = 0,
               lr: float = 1e-2, log: Callable[[str], None] = print) -> list[dict]:
    """Table 1: Wasserstein(test, generated) for LSH-GAN (each k) and the GAN, by epoch.

    One dataset (``data_seed``), split 80/20 by class; each model trained once per seed;
    at each checkpoint, as many samples as the test set are generated.  A reference row
    ``"training samples (copy)"`` gives the distance of as many *training* samples: what a
    perfect generator would score at this sample size.  The learning rate defaults to
    1e-2, ten times the authors', because the budget has about 100 times fewer updates.
    """
    from sklearn.model_selection import train_test_split

    X, y = two_class_gaussians(n_samples, n_features, seed=data_seed)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, random_state=data_seed,
                              stratify=y)
    test = _as_adata(X[te])
    floor = wasserstein(test, _as_adata(X[tr][: len(te)]), space="genes")
    rows = [{"model": "training samples (copy)", "k": None, "seed": 0, "epoch": e,
             "wasserstein": floor} for e in epochs]
    for k in (*ks, None):
        model = "GAN" if k is None else f"LSH-GAN k={k}"
        for seed in seeds:
            snaps = train_snapshots(X[tr], lsh_k=k, epochs=epochs, n_generate=len(te), seed=seed,
                                    lr=lr)
            for epoch in epochs:
                w = wasserstein(test, _as_adata(snaps[epoch]), space="genes")
                rows.append({"model": model, "k": k, "seed": seed, "epoch": epoch,
                             "wasserstein": w})
            log(f"  {model} seed {seed}: " + ", ".join(
                f"{r['epoch']}: {r['wasserstein']:.1f}" for r in rows[-len(epochs):]))
    return rows


def run_figure2(*, epochs: tuple[int, ...], seed: int = 0, n: int = 512) -> dict:
    """Figure 2's samples: ``{"real": X, "LSH-GAN": {epoch: Y}, "GAN": {epoch: Y}}``.

    The authors' setting (16-16 networks, batch 256, LSH with 4 neighbours, one round,
    lr 1e-3) on a fixed sample of ``n`` points (they drew a fresh batch every iteration).
    """
    X = parabola(n, seed=seed)
    return {"real": X,
            "LSH-GAN": train_snapshots(X, lsh_k=4, epochs=epochs, n_generate=512, seed=seed,
                                       batch_size=256),
            "GAN": train_snapshots(X, lsh_k=None, epochs=epochs, n_generate=512, seed=seed,
                                   batch_size=256)}
