"""From a low-dimensional cell state back to genes: a hurdle (zero-inflated) decoder.

With ``ModelConfig(space="latent")`` the GAN works in the whitened PCA space of the training
cells (a few dozen dimensions instead of thousands of genes) and :class:`HurdleDecoder`
maps each generated cell state ``s`` back to log expression.  For each gene ``g``:

* detection: ``detected ~ Bernoulli(sigmoid(s . a_g + c_g))`` (a logistic regression of
  "gene g is non-zero" on the cell state);
* level: ``value = max(s . w_g + b_g + sigma_g * eps, floor_g)`` when detected, else exactly 0
  (a linear regression of the non-zero log expression on the cell state, with the
  residual spread ``sigma_g`` measured on the training cells' non-zero values);
* cell types (a conditional model): both regressions get a per-type offset of each gene
  (``c_g`` and ``b_g`` become ``c_g + c_kg``, ``b_g + b_kg``), as in MAST's models with a
  group term; the cell state may hold the cell's detection rate (``LSHGAN``'s
  ``detection_state``), MAST's cellular detection rate covariate;
* local detection (``LSHGAN``'s ``detection_neighbors``, :meth:`HurdleDecoder.fit_neighbors`):
  the detection probability of each gene becomes the share of the ``K`` nearest training
  states that detect it, shrunk towards the logistic, so that a generated cell detects the
  genes that cells like it detect (which genes are zero together, beyond what a logistic
  in a small state says).

Both regressions are fitted once, on the training cells, by maximum likelihood with a
small ridge penalty (mini-batches, so a sparse matrix is never densified whole); they are
not adversarial.  Why a hurdle model: single-cell log expression is exactly zero in 10-90%
of entries and continuous elsewhere; a linear map back from PCA space (what the per-type
Gaussian reference does) gives smooth cells without zeros, and a classifier spots them.
The sampled detection events and residuals give each generated cell its own dropout
pattern and noise, as real cells have, while the GAN decides *which* cell states occur.

This is the two-part model of MAST (Finak et al. 2015) used as a decoder; the latent-GAN
idea follows Lopez et al.'s scVI and ACTIVA's VAE-GAN in spirit (generate in a small space,
decode to genes), with a fitted rather than learned-end-to-end decoder.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F


class HurdleDecoder(nn.Module):
    """Per-gene logistic detection and linear level on a latent cell state.

    Parameters
    ----------
    n_latent
        Dimension of the cell state.
    n_genes
        Number of genes.

    Examples
    --------
    >>> dec = HurdleDecoder(8, 100).fit(latent, X)          # doctest: +SKIP
    >>> cells = dec(torch.randn(5, 8))                       # doctest: +SKIP
    """

    def __init__(self, n_latent: int, n_genes: int, n_groups: int = 1):
        super().__init__()
        self.detect = nn.Linear(n_latent, n_genes)
        self.level = nn.Linear(n_latent, n_genes)
        # per-type offsets of both regressions (cell types of a conditional model)
        self.group_detect = nn.Parameter(torch.zeros(n_groups, n_genes))
        self.group_level = nn.Parameter(torch.zeros(n_groups, n_genes))
        self.register_buffer("sigma", torch.zeros(n_genes))
        self.register_buffer("floor", torch.zeros(n_genes))
        # local detection (fit_neighbors): reference states, their detection pattern as
        # bits (little-endian bytes of each cell's row), K and the shrinkage weight
        self._init_neighbors(n_latent, n_genes, n_ref=0)

    def _init_neighbors(self, n_latent: int, n_genes: int, n_ref: int) -> None:
        self.register_buffer("ref_states", torch.zeros(n_ref, n_latent))
        self.register_buffer("ref_detected", torch.zeros(n_ref, (n_genes + 7) // 8, dtype=torch.uint8))
        self.register_buffer("ref_k", torch.zeros((), dtype=torch.long))
        self.register_buffer("ref_weight", torch.zeros(()))

    @classmethod
    def from_state_dict(cls, state: dict) -> "HurdleDecoder":
        """A decoder shaped after a saved ``state_dict`` (one saved before the per-type
        offsets or local detection existed loads without them), with its weights loaded."""
        n_genes, n_latent = state["detect.weight"].shape
        n_groups = int(state["group_detect"].shape[0]) if "group_detect" in state else 1
        dec = cls(int(n_latent), int(n_genes), n_groups)
        state = dict(state)
        for key in ("group_detect", "group_level"):
            state.setdefault(key, torch.zeros(n_groups, n_genes))
        if "ref_states" in state:
            dec._init_neighbors(int(n_latent), int(n_genes), int(state["ref_states"].shape[0]))
        else:
            state.update({k: v for k, v in dec.state_dict().items() if k.startswith("ref_")})
        dec.load_state_dict(state)
        return dec.eval()

    @property
    def neighbors(self) -> int:
        """``K`` of local detection (0: off, the logistic alone)."""
        return int(self.ref_k) if self.ref_states.shape[0] else 0

    @property
    def n_groups(self) -> int:
        return int(self.group_detect.shape[0])

    def _offsets(self, param: torch.Tensor, groups: torch.Tensor | None) -> torch.Tensor | float:
        if groups is None or self.n_groups == 1:
            return 0.0
        return param.index_select(0, groups)

    def fit(self, latent: np.ndarray, X, groups: np.ndarray | None = None, *, steps: int = 400,
            lr: float = 0.05, ridge: float = 0.01, prior_cells: float = 2.0,
            batch_size: int | None = None, max_cells: int = 5000,
            seed: int = 0) -> "HurdleDecoder":
        """Fit both regressions on training cells (``latent``: n x d, ``X``: n x genes,
        ``groups``: n cell-type codes below ``n_groups``, for the per-type offsets).

        ``X`` may be dense or CSR (densified ``batch_size`` rows at a time; default: 8
        million matrix entries per step, 256 to 4096 cells).  Full-batch Adam when the
        cells fit in one batch, mini-batches otherwise; at most
        ``max_cells`` cells (a random subset) are used.  Adam from the independent
        per-gene model for a fixed number of steps is deliberate: an exact penalised
        maximum-likelihood fit (Newton's method, ridge 1 to 300) was tried and gave
        clearly less realistic cells on a validation split of Klein (RF-AUC 0.81-1.00
        against 0.70): the detection probabilities become too confident.

        Per-type offsets (``n_groups > 1``): a gene on in one type and off in the others
        is a step that a linear map of a small state smooths over, more so the more genes
        are kept.  They carry a ridge worth ``prior_cells`` cells, which matters only for
        the types with a handful of cells.  Measured (validation split of the training
        cells, training cells' own states decoded, RF-AUC against the validation cells,
        two draws): sorted PBMC with all 8861 genes 0.749 / 0.744 without, 0.685 / 0.661
        with; Pollen (2000 genes) 0.578 / 0.549 without, 0.573 / 0.579 with.
        """
        n = X.shape[0]
        groups_all = None
        if groups is not None and self.n_groups > 1:
            groups_all = torch.as_tensor(np.asarray(groups, dtype=np.int64))
        if batch_size is None:
            batch_size = int(np.clip(8_000_000 // max(1, X.shape[1]), 256, 4096))
        gen = torch.Generator().manual_seed(int(seed))
        if n > max_cells:
            keep = np.sort(np.random.default_rng(seed).choice(n, max_cells, replace=False))
            latent, X, n = np.asarray(latent)[keep], X[keep], max_cells
            if groups_all is not None:
                groups_all = groups_all[torch.as_tensor(keep)]
        L = torch.as_tensor(np.asarray(latent, dtype=np.float32))
        Xc = X.tocsr().astype(np.float32) if sp.issparse(X) else np.asarray(X, dtype=np.float32)

        def rows(idx: np.ndarray) -> torch.Tensor:
            block = Xc[idx]
            return torch.from_numpy(block.toarray() if sp.issparse(block) else np.ascontiguousarray(block))

        # start from the independent per-gene model: detection rate and mean non-zero level
        det_sum = np.zeros(X.shape[1])
        lev_sum = np.zeros(X.shape[1])
        for start in range(0, n, batch_size):
            xb = rows(np.arange(start, min(start + batch_size, n))).double()
            det_sum += (xb > 0).sum(0).numpy()
            lev_sum += xb.sum(0).numpy()
        rate = (det_sum / n).clip(1e-3, 1 - 1e-3)
        with torch.no_grad():
            for layer in (self.detect, self.level):
                layer.weight.zero_()
            self.detect.bias.copy_(torch.as_tensor(np.log(rate / (1 - rate))))
            self.level.bias.copy_(torch.as_tensor(lev_sum / np.maximum(det_sum, 1)))
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        full = n <= batch_size
        if full:
            x_all = rows(np.arange(n))
            mask_all = (x_all > 0).float()
        n_genes = X.shape[1]
        for _ in range(int(steps)):
            if full:
                lb, xb, mask, gb = L, x_all, mask_all, groups_all
            else:
                idx = torch.randint(0, n, (batch_size,), generator=gen).numpy()
                lb, xb = L[idx], rows(idx)
                mask = (xb > 0).float()
                gb = None if groups_all is None else groups_all[torch.as_tensor(idx)]
            opt.zero_grad()
            bce = F.binary_cross_entropy_with_logits(self.detection_logits(lb, gb), mask)
            mse = (((xb - self.mean_level(lb, gb)) ** 2) * mask).sum() / mask.sum().clamp(min=1)
            penalty = ridge * (self.detect.weight.pow(2).mean() + self.level.weight.pow(2).mean())
            if gb is not None:
                penalty = penalty + prior_cells / (n * n_genes) * (
                    self.group_detect.pow(2).sum() + self.group_level.pow(2).sum())
            (bce + mse + penalty).backward()
            opt.step()
        # residual spread and the smallest non-zero value of each gene, on all training cells
        sq = np.zeros(X.shape[1])
        floor = np.full(X.shape[1], np.inf)
        with torch.no_grad():
            for start in range(0, n, batch_size):
                idx = np.arange(start, min(start + batch_size, n))
                xb = rows(idx)
                mask = xb > 0
                gb = None if groups_all is None else groups_all[torch.as_tensor(idx)]
                sq += (((xb - self.mean_level(L[idx], gb)) ** 2) * mask).sum(0).double().numpy()
                floor = np.minimum(floor, torch.where(mask, xb, torch.inf).min(0).values.numpy())
            self.sigma.copy_(torch.as_tensor(np.sqrt(sq / np.maximum(det_sum, 1))))
            self.floor.copy_(torch.as_tensor(np.where(np.isfinite(floor), floor, 0.0)))
        return self

    def fit_neighbors(self, latent: np.ndarray, X, k: int, *, weight: float = 2.0,
                      max_cells: int = 5000, seed: int = 0) -> "HurdleDecoder":
        """Turn on local detection: keep the training states ``latent`` (n x d) and which
        genes each of those cells detects (``X``: n x genes, dense or CSR; at most
        ``max_cells`` cells, a random subset), so that :meth:`detection_probability` at a
        state is ``(detected among its k nearest training states + weight * p) / (k +
        weight)``, ``p`` the logistic's probability.  ``k=0`` turns it off.

        Why: on droplet data the zero pattern is what gives decoded cells away (the real
        cells' own zero pattern with decoded levels: RF-AUC at the copy floor; decoded
        zeros: 0.07-0.10 above it), and a logistic in a 10-17-dimensional state cannot say
        which genes are zero *together*; the neighbours' patterns can.  Measured on
        validation splits of the training cells (``scripts/decoder_ceiling.py
        --knn-detection``; see :func:`lshgan.model.default_detection_neighbors`).
        The pattern is kept as bits (5000 cells x 20,000 genes: 12.5 MB), so generation
        stays on the model's device.
        """
        k = int(k)
        n, n_genes = X.shape
        if k < 0 or k > min(n, max_cells):
            raise ValueError(f"k={k} neighbours for {min(n, max_cells)} reference cells")
        if k == 0:
            self._init_neighbors(self.detect.in_features, n_genes, n_ref=0)
            return self
        rows = np.arange(n)
        if n > max_cells:
            rows = np.sort(np.random.default_rng(seed).choice(n, max_cells, replace=False))
        Xc = X.tocsr() if sp.issparse(X) else np.asarray(X)
        packed = np.empty((len(rows), (n_genes + 7) // 8), dtype=np.uint8)
        step = max(1, 8_000_000 // max(1, n_genes))
        for start in range(0, len(rows), step):
            block = Xc[rows[start:start + step]]
            block = block.toarray() if sp.issparse(block) else block
            packed[start:start + step] = np.packbits(block > 0, axis=1, bitorder="little")
        self._init_neighbors(self.detect.in_features, n_genes, n_ref=len(rows))
        with torch.no_grad():
            self.ref_states.copy_(torch.as_tensor(np.asarray(latent, dtype=np.float32)[rows]))
            self.ref_detected.copy_(torch.from_numpy(packed))
            self.ref_k.fill_(k)
            self.ref_weight.fill_(float(weight))
        return self

    def nearest_references(self, latent: torch.Tensor) -> torch.Tensor:
        """Indices (n x K) of the ``K`` nearest reference states of each state (Euclidean),
        in blocks of at most 2^24 distances."""
        k, m = self.neighbors, self.ref_states.shape[0]
        step = max(1, 2**24 // max(1, m))
        return torch.cat([torch.cdist(latent[i:i + step], self.ref_states).topk(k, dim=1, largest=False).indices
                          for i in range(0, latent.shape[0], step)])

    def detection_probability(self, latent: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """Probability that each gene is detected at each state: the logistic, or with
        local detection (:meth:`fit_neighbors`) its blend with the nearest training
        cells' detection pattern."""
        p = torch.sigmoid(self.detection_logits(latent, groups))
        k = self.neighbors
        if not k:
            return p
        idx = self.nearest_references(latent)
        shifts = torch.arange(8, device=latent.device, dtype=torch.uint8)
        hits = torch.zeros((latent.shape[0], self.ref_detected.shape[1], 8), device=latent.device,
                           dtype=torch.uint8 if k < 256 else torch.int32)
        for j in range(k):  # one neighbour at a time: n x genes, not n x K x genes
            hits += (self.ref_detected[idx[:, j]].unsqueeze(-1) >> shifts) & 1
        hits = hits.reshape(latent.shape[0], -1)[:, :p.shape[1]].to(p.dtype)
        w = self.ref_weight.to(p.dtype)
        return (hits + w * p) / (k + w)

    def detection_logits(self, latent: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """Logit of "gene detected" for each cell state (and cell-type code), from the
        logistic regression (local detection, if on, is in :meth:`detection_probability`)."""
        return self.detect(latent) + self._offsets(self.group_detect, groups)

    def mean_level(self, latent: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """Expected log expression of each gene when detected."""
        return self.level(latent) + self._offsets(self.group_level, groups)

    def forward(self, latent: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """Sample genes for each cell state (uses torch's global random generator);
        ``groups``: the cells' type codes (the per-type offsets; None: none)."""
        p = self.detection_probability(latent, groups)
        detected = torch.rand_like(p) < p
        value = self.mean_level(latent, groups) + self.sigma * torch.randn_like(p)
        return torch.where(detected, torch.maximum(value, self.floor), torch.zeros_like(p))



# ---------------------------------------------------------------------------- counts
#: A gene gets a zero-inflation term when its observed zero fraction exceeds the fitted
#: negative binomial's by more than this (absolute) and by 3 standard errors.
ZI_MIN_EXCESS = 0.05
#: ``zi_logit`` of the genes without zero inflation (``pi = 1e-13``; the mask makes it 0).
_NO_ZI = -30.0
#: entries per block of :meth:`CountDecoder.sample`'s float64 gamma-Poisson draws (8 MiB
#: per temporary array, whatever the generation batch)
SAMPLE_ENTRIES = 2**20


class _Entries(NamedTuple):
    """The non-zero entries of a block of cells: row, column, value."""

    rows: torch.Tensor
    cols: torch.Tensor
    values: torch.Tensor


def _entries(block) -> _Entries:
    """Non-zero entries of a dense or CSR block."""
    if sp.issparse(block):
        block = block.tocsr()
        rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
        cols, vals = block.indices, block.data
    else:
        rows, cols = np.nonzero(block)
        vals = block[rows, cols]
    return _Entries(torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long),
                    torch.as_tensor(np.asarray(vals, dtype=np.float32)))


class CountDecoder(nn.Module):
    """Counts from a latent cell state: a per-gene negative binomial, zero-inflated where
    the data need it, with library sizes drawn per cell type.

    For a cell with state ``s``, group (cell type) ``k`` and library size ``L`` (its raw
    total before normalisation, over the genes the training cells had before any
    highly-variable-gene selection):

    * library: ``log L ~ Normal(m_k + s . v, sd_k)`` (a log-normal per type whose centre
      follows the cell state, since deeper cells sit elsewhere in the state space, e.g.
      more genes detected), clipped to the training cells' range;
    * gene ``g``: ``x_g ~ NB(mean = L * exp(s . w_g + b_g + c_kg), theta_g)`` (variance
      ``mean + mean^2 / theta_g``): a log-linear map from the state, as scVI's linear
      decoder (LDVAE, Svensson et al. 2020) but with ``exp`` instead of a softmax, because
      the kept genes hold only part of ``L``; ``c_kg`` is a per-type offset (types of a
      conditional model), which a linear map of a small state misses for genes that are on
      in one type and off in the others (Pollen: gene-gene correlation of counts sampled
      at the training cells' states 0.51 without it, 0.56 with it; Klein unchanged);
    * zero inflation: ``x_g = 0`` with probability ``pi_g`` for the genes whose observed
      zero fraction exceeds the fitted NB's by more than :data:`ZI_MIN_EXCESS` and by 3
      standard errors; ``pi_g = 0`` elsewhere.  Measured (2000 HVG, training split): the
      NB alone explains the zeros of UMI data (flagged: Klein 2 of 900 genes, sorted PBMC
      5 of 2000, PBMC 4k 0 of 1740, bladder 4 of 1644, worm neurons 0 of 1317; median
      ``theta`` 1-18, 0.02 for the 1%-dense worm neurons) and of all but 27 of Pollen's
      2000 genes of read counts, whose ``theta`` is small instead (median 0.12: amplified
      full-length reads are far more overdispersed).  A zero inflation logistic in the
      state for every gene was tried on Pollen: the gene-gene correlations of its counts
      get closer to the real ones (0.81 against 0.56 at the training states) but the
      held-out log-likelihood is worse (by 1.3 nats per entry: over-confident zeros, as
      with the hurdle decoder's exact fit), so it was not kept.

    Fitted once on the training cells by maximum likelihood (:meth:`fit`), not
    adversarially, like :class:`HurdleDecoder`.

    Parameters
    ----------
    n_latent, n_genes
        Dimensions of the cell state and the number of genes.
    n_groups
        Library-size groups (cell types of a conditional model; 1 otherwise).
    """

    def __init__(self, n_latent: int, n_genes: int, n_groups: int = 1):
        super().__init__()
        self.rate = nn.Linear(n_latent, n_genes)
        self.group_rate = nn.Parameter(torch.zeros(n_groups, n_genes))
        self.log_theta = nn.Parameter(torch.zeros(n_genes))
        self.zi_logit = nn.Parameter(torch.full((n_genes,), _NO_ZI))
        self.register_buffer("zi_mask", torch.zeros(n_genes, dtype=torch.bool))
        self.register_buffer("lib_mean", torch.zeros(n_groups))
        self.register_buffer("lib_sd", torch.ones(n_groups))
        self.register_buffer("lib_coef", torch.zeros(n_latent))
        self.register_buffer("lib_range", torch.tensor([0.0, 30.0]))

    @classmethod
    def from_state_dict(cls, state: dict) -> "CountDecoder":
        """A decoder shaped after a saved ``state_dict``, with its weights loaded."""
        n_genes, n_latent = state["rate.weight"].shape
        dec = cls(int(n_latent), int(n_genes), int(state["lib_mean"].shape[0]))
        dec.load_state_dict(state)
        return dec.eval()

    @property
    def n_groups(self) -> int:
        return int(self.lib_mean.shape[0])

    # ------------------------------------------------------------------ fitting
    def fit(self, latent: np.ndarray, counts, library: np.ndarray, groups: np.ndarray | None = None,
            *, steps: int = 100, zi_steps: int = 50, lr: float = 0.05, ridge: float = 200.0,
            batch_size: int | None = None, max_cells: int = 5000, seed: int = 0) -> "CountDecoder":
        """Fit on training cells: ``latent`` (n x d), ``counts`` (n x genes, dense or CSR,
        integers), ``library`` (n raw library sizes), ``groups`` (n codes < ``n_groups``).

        The library-size model is fitted on all cells (least squares); the NB on at most
        ``max_cells`` of them (a random subset) with Adam: ``steps`` mini-batch steps of
        ``batch_size`` cells (default: a million matrix entries, 128 to 2048 cells) from
        the independent per-gene model (each gene's share of the library, moment
        dispersion); then the zero-inflated genes are chosen (see the class doc) and
        ``zi_steps`` more steps fit their ``pi_g`` together with the rest.  The likelihood
        touches only the non-zero entries beyond one dense ``softplus`` per entry.
        ``ridge`` penalises the squared state weights with ``ridge / n_cells`` (a prior
        worth about ``ridge`` cells).  Chosen on held-out log-likelihood (test cells'
        states): 100 steps are as good as 200-400 on Klein and PBMC 4k and better on
        Pollen, whose 239 cells overfit 16 state weights per gene without the ridge
        (a fixed weight of 1 helped Pollen and hurt PBMC 4k: hence per cell).
        """
        n, n_genes = counts.shape
        latent = np.asarray(latent, dtype=np.float64)
        library = np.asarray(library, dtype=np.float64).ravel()
        if library.shape[0] != n or latent.shape[0] != n:
            raise ValueError(f"{n} cells of counts, {latent.shape[0]} states, {library.shape[0]} library sizes")
        if not np.all(np.isfinite(library)) or np.any(library <= 0):
            raise ValueError("library sizes must be positive")
        groups = np.zeros(n, np.int64) if groups is None else np.asarray(groups, np.int64)
        self._fit_library(latent, np.log(library), groups)
        G_all = torch.as_tensor(groups)
        if batch_size is None:
            batch_size = int(np.clip(1_000_000 // max(1, n_genes), 128, 2048))
        rng = np.random.default_rng(seed)
        if n > max_cells:
            keep = np.sort(rng.choice(n, max_cells, replace=False))
            latent, counts, library, n = latent[keep], counts[keep], library[keep], max_cells
            G_all = G_all[keep]
        C = counts.tocsr().astype(np.float32) if sp.issparse(counts) else np.asarray(counts, np.float32)
        L = torch.as_tensor(latent, dtype=torch.float32)
        log_lib = torch.as_tensor(np.log(library), dtype=torch.float32)
        total = np.asarray(C.sum(axis=0), dtype=np.float64).ravel()
        x2 = np.asarray(C.multiply(C).sum(axis=0) if sp.issparse(C)
                        else (C.astype(np.float64) ** 2).sum(0), dtype=np.float64).ravel()
        zeros = n - np.asarray((C > 0).sum(axis=0)).ravel()
        share = np.maximum(total, 0.5) / library.sum()
        mu2 = share ** 2 * (library ** 2).sum()  # sum over cells of the squared means
        theta0 = 1.0 / np.clip((x2 - total - mu2) / np.maximum(mu2, 1e-12), 1e-2, 1e3)
        with torch.no_grad():
            self.rate.weight.zero_()
            self.group_rate.zero_()
            self.rate.bias.copy_(torch.as_tensor(np.log(share)))
            self.log_theta.copy_(torch.as_tensor(np.log(theta0)))
            self.zi_logit.fill_(_NO_ZI)
            self.zi_mask.zero_()
        gen = torch.Generator().manual_seed(int(seed))
        full = n <= batch_size
        everything = _entries(C) if full else None

        def run(n_steps: int, params) -> None:
            opt = torch.optim.Adam(params, lr=lr)
            for _ in range(int(n_steps)):
                if full:
                    lb, nz, lib, gb = L, everything, log_lib, G_all
                else:
                    idx = torch.randint(0, n, (batch_size,), generator=gen).numpy()
                    lb, nz, lib, gb = L[idx], _entries(C[idx]), log_lib[idx], G_all[idx]
                opt.zero_grad()
                loss = -self.log_likelihood(nz, lb, lib, gb) / (lb.shape[0] * n_genes)
                penalty = self.rate.weight.pow(2).mean() + self.group_rate.pow(2).mean()
                (loss + ridge / n * penalty).backward()
                opt.step()

        weights = [self.rate.weight, self.rate.bias, self.log_theta]
        if self.n_groups > 1:
            weights.append(self.group_rate)
        run(steps, weights)
        # which genes have more zeros than the negative binomial explains
        p0 = np.zeros(n_genes)
        with torch.no_grad():
            for start in range(0, n, 1024):
                idx = np.arange(start, min(start + 1024, n))
                log_mu = self.log_rate(L[idx], G_all[idx]) + log_lib[idx, None]
                p0 += self._log_p0(log_mu).exp().sum(0).double().numpy()
        p0 /= n
        z = zeros / n
        se = np.sqrt(np.maximum(z * (1 - z), 1.0 / n) / n)
        extra = z - p0
        flagged = (extra > ZI_MIN_EXCESS) & (extra > 3 * se)
        #: per gene: observed zero fraction minus the fitted NB's (before zero inflation)
        self.zero_excess_ = extra
        if flagged.any() and zi_steps > 0:
            pi = np.clip(extra / np.maximum(1 - p0, 1e-6), 1e-3, 0.99)
            with torch.no_grad():
                self.zi_mask.copy_(torch.as_tensor(flagged))
                self.zi_logit.copy_(torch.as_tensor(np.where(flagged, np.log(pi / (1 - pi)), _NO_ZI)))
            run(zi_steps, [*weights, self.zi_logit])
            with torch.no_grad():  # genes not flagged keep no zero inflation
                self.zi_logit.copy_(torch.where(self.zi_mask, self.zi_logit,
                                                torch.full_like(self.zi_logit, _NO_ZI)))
        return self

    def _fit_library(self, latent: np.ndarray, log_lib: np.ndarray, groups: np.ndarray) -> None:
        """``log L = m_k + s . v + N(0, sd_k)``: one slope ``v`` (within-group least
        squares), a centre and a spread per group."""
        k = self.n_groups
        counts = np.bincount(groups, minlength=k)
        centred, lat = log_lib.copy(), latent.copy()
        for g in np.flatnonzero(counts):
            rows = groups == g
            centred[rows] -= log_lib[rows].mean()
            lat[rows] -= latent[rows].mean(0)
        coef = np.linalg.solve(lat.T @ lat + np.eye(latent.shape[1]), lat.T @ centred)
        resid = centred - lat @ coef
        pooled = float(resid.std()) if resid.size > 1 else 0.0
        means = np.full(k, log_lib.mean() - latent.mean(0) @ coef)  # a type without cells
        sds = np.full(k, pooled)
        for g in np.flatnonzero(counts):
            rows = groups == g
            means[g] = log_lib[rows].mean() - latent[rows].mean(0) @ coef
            if counts[g] > 2:
                sds[g] = resid[rows].std(ddof=1)
        with torch.no_grad():
            self.lib_mean.copy_(torch.as_tensor(means))
            self.lib_sd.copy_(torch.as_tensor(sds))
            self.lib_coef.copy_(torch.as_tensor(coef))
            self.lib_range.copy_(torch.as_tensor([log_lib.min(), log_lib.max()]))

    def _log_p0(self, log_mu: torch.Tensor) -> torch.Tensor:
        """log NB(0) = ``theta * log(theta / (theta + mu))`` of every entry."""
        return -self.log_theta.exp() * F.softplus(log_mu - self.log_theta)

    def log_rate(self, latent: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """``log(mean / L)`` of every gene: ``s . w_g + b_g`` plus the type's ``c_{k,g}``."""
        eta = self.rate(latent)
        if groups is not None and self.n_groups > 1:
            eta = eta + self.group_rate.index_select(0, groups)
        return eta

    def log_likelihood(self, nz: _Entries, latent: torch.Tensor, log_lib: torch.Tensor,
                       groups: torch.Tensor | None = None) -> torch.Tensor:
        """Sum over every entry of a block of cells of the (zero-inflated) NB log
        probability, without the constant ``-lgamma(x + 1)`` terms.

        ``nz``: the block's non-zero entries (:func:`_entries`), ``latent``: its states,
        ``log_lib``: its log library sizes, ``groups``: its types (codes; None: no type
        offsets).  Dense work is one ``softplus`` per entry; the
        ``lgamma`` terms are evaluated at the non-zero entries only (they vanish at 0).
        """
        log_mu = self.log_rate(latent, groups) + log_lib[:, None]
        log_p0 = self._log_p0(log_mu)
        r, c, x = nz
        flat = r * log_mu.shape[1] + c  # index_select: a far cheaper backward than [r, c]
        theta_log = self.log_theta.index_select(0, c)
        mu_nz = log_mu.reshape(-1).index_select(0, flat)
        lse = theta_log + F.softplus(mu_nz - theta_log)  # log(theta + mu)
        theta = theta_log.exp()
        # log NB(x) - log NB(0) at the non-zero entries
        rest = x * (mu_nz - lse) + torch.lgamma(x + theta) - torch.lgamma(theta)
        if not bool(self.zi_mask.any()):
            return log_p0.sum() + rest.sum()
        log_pi = F.logsigmoid(self.zi_logit)
        log_1m_pi = F.logsigmoid(-self.zi_logit)
        zero = torch.logaddexp(log_pi.expand_as(log_p0), log_1m_pi + log_p0)
        nb_nz = log_p0.reshape(-1).index_select(0, flat) + rest
        return zero.sum() + (log_1m_pi.index_select(0, c) + nb_nz
                             - zero.reshape(-1).index_select(0, flat)).sum()

    # ------------------------------------------------------------------ sampling
    def library(self, latent: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw a raw library size for each cell state (``groups``: codes < ``n_groups``)."""
        mean = self.lib_mean.numpy()[groups] + latent @ self.lib_coef.numpy()
        log_lib = mean + self.lib_sd.numpy()[groups] * rng.standard_normal(len(groups))
        lo, hi = self.lib_range.numpy()
        return np.exp(np.clip(log_lib, lo, hi))

    def sample(self, latent: np.ndarray, groups: np.ndarray | None, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
        """``(counts, library)`` for the cell states ``latent`` (n x d): float32 integer
        counts (n x genes) and the drawn library sizes.  ``rng`` is a NumPy generator, so
        sampling never touches torch's random state (the hurdle decoder's)."""
        latent = np.asarray(latent, dtype=np.float64)
        groups = np.zeros(len(latent), np.int64) if groups is None else np.asarray(groups, np.int64)
        lib = self.library(latent, groups, rng)
        with torch.no_grad():
            eta = self.log_rate(torch.as_tensor(latent, dtype=torch.float32),
                                torch.as_tensor(groups)).numpy()
            theta = self.log_theta.exp().double().numpy()
            pi = torch.sigmoid(self.zi_logit).double().numpy() * self.zi_mask.numpy()
        counts = np.empty(eta.shape, np.float32)
        step = max(1, SAMPLE_ENTRIES // max(1, eta.shape[1]))  # float64 work in small blocks
        for start in range(0, len(eta), step):
            rows = slice(start, start + step)
            mu = lib[rows, None] * np.exp(np.minimum(eta[rows].astype(np.float64), 30.0))
            # the gamma-Poisson mixture is the negative binomial with mean mu, inverse
            # dispersion theta
            rate = rng.gamma(np.broadcast_to(theta, mu.shape), mu / theta)
            counts[rows] = rng.poisson(np.minimum(rate, 1e12))
            if pi.any():
                counts[rows][rng.random(mu.shape) < pi] = 0.0
        return counts, lib
