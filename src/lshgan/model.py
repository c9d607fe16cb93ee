"""The user-facing model: :class:`LSHGAN` owns the AnnData side (scvi-tools style).

Examples
--------
>>> import lshgan
>>> adata = lshgan.read_dataset("pbmc68k_reduced", label_key="cell_type")
>>> pp, _ = lshgan.preprocess(adata, lshgan.PreprocessConfig(min_count=1))
>>> model = lshgan.LSHGAN(pp, label_key="cell_type")
>>> model.train(epochs=5, progress=False)          # doctest: +SKIP
>>> fake = model.generate(100, cell_type="CD14+ Monocyte", seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from . import __version__
from .errors import (CheckpointError, InputDataError, LSHGANError, OutputExistsError,
                     ParameterError, check_genes, check_positive_int)
from .lsh import lsh_pcs, lsh_space, lsh_subsample_by_group
from .module.decoder import CountDecoder, HurdleDecoder
from .module.inputs import INPUT_MODES, GeneratorInput
from .module.networks import Discriminator, Generator
from .pca import fit_pca, project
from .module.training import BatchSource, History, TrainConfig, resolve_device, train_gan

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "generator.pt"
GENES_FILE = "var_names.json"
HISTORY_FILE = "history.json"

#: What ``.X`` of generated cells can hold (:func:`with_layer`): ``log2(1+x)`` values (the
#: model's scale, default), library-size-normalised values, or integer counts (count data).
LAYERS = ("log", "normalized", "counts")

#: Where the GAN works: ``"genes"`` (G outputs every gene; D sees genes) or ``"latent"`` (G
#: outputs a whitened PCA cell state, D sees cell states, a fitted
#: :class:`~lshgan.module.decoder.HurdleDecoder` maps states back to genes).
SPACES = ("genes", "latent")


def default_n_latent(n_cells: int) -> int:
    """Latent dimension for ``space="latent"``: one per 10 training cells, from 8 to 16.

    A decoder fitted on few cells with many dimensions memorises them, and the GAN matches
    a small space better: on validation splits carved from the training cells (never the
    test cells), 50 dimensions gave RF-AUC 0.96 (sorted PBMC) and 0.87 (Klein), 20 gave
    0.74 / 0.81, 16 gave 0.71 / 0.70, 10 gave 0.64 / 0.82; Yan (57 cells) 0.91 with 50,
    0.47 with 10.

    Tried and rejected (current model, validation splits, 3 seeds): keeping only the
    components whose variance holds up on held-out training cells (at least half of the
    fitted cells' variance), which gives Yan 4, Pollen 8, Klein 7 dimensions: RF-AUC 0.73
    (Yan), 0.72 (Pollen), 0.60 (Klein, 1 seed) against 0.62 / 0.55 / 0.62 with this rule.
    Held-out cells do have less variance along the later components (sorted PBMC with all
    8861 genes: standard deviation 0.57-0.87 on components 5-16, whitened), but dropping
    those components costs more than the GAN reproducing their noise.  Nor 16 below 160
    cells (5 folds of Yan's training cells, and of Pollen, Klein and sorted PBMC subsampled
    to ~100 cells): RF-AUC 0.03-0.05 lower on three of four (0.13 higher on Pollen), but DCR
    0.79-0.94 against 0.90-1.05: the gain comes from nearing the training cells
    (``docs/realism.md``).
    """
    return int(min(16, max(8, n_cells // 10)))


#: Training cells from which local detection is on by default (:func:`default_detection_neighbors`).
LOCAL_DETECTION_MIN_CELLS = 1000
#: Neighbours of local detection when it is on by default.
LOCAL_DETECTION_K = 10


def default_detection_neighbors(n_cells: int) -> int:
    """``detection_neighbors`` for ``detection_neighbors=None``: :data:`LOCAL_DETECTION_K`
    from :data:`LOCAL_DETECTION_MIN_CELLS` training cells, 0 (off) below.

    Local detection (:meth:`~lshgan.module.decoder.HurdleDecoder.fit_neighbors`) takes each
    gene's detection probability from the nearest training states.  Chosen on validation
    splits carved from the training cells, never the test cells (the GAN's own generated
    states decoded with and without it, same states and random draws, 2 validation splits
    x 2 seeds, ``reports/validation/knn_detection.json``): RF-AUC worm neurons 0.715 ->
    0.652, mouse bladder 0.657 -> 0.604, pbmc4k 0.650 -> 0.619, sorted PBMC 0.615 -> 0.592
    (1,369-2,733 fitted cells: 15 of 16 draws lower), but Klein 0.623 -> 0.647 (640 cells)
    and Pollen 0.584 -> 0.646 (191 cells) worse, Yan 0.536 either way.  With a few hundred
    cells the nearest training cells are too far from a generated state to say which of
    its genes are zero; the threshold sits between the sizes measured (640 and 1,369).
    On 5 folds of the small sets' training cells (20 draws each) it is neutral there:
    Pollen 0.624 against 0.633, Yan 0.586 against 0.544 (``docs/realism.md``).

    Tried and not kept (same states and draws, ad hoc): the local probabilities shifted on
    the logit scale so that each cell expects as many detected genes as the logistic gives
    it (local detection narrows the spread of detected genes per cell: Klein sd 157 -> 139,
    real 150): Klein 0.631 and Pollen 0.623 (4 draws each; logistic 0.623 / 0.585, local
    0.647 / 0.646), and it gave back part of the gain on the large sets (one draw each:
    worm neurons 0.682, mouse bladder 0.603, pbmc4k 0.611 against local 0.653 / 0.599 /
    0.600 and logistic 0.700 / 0.622 / 0.651).
    """
    return LOCAL_DETECTION_K if int(n_cells) >= LOCAL_DETECTION_MIN_CELLS else 0


@dataclass
class ModelConfig:
    """Architecture and LSH settings of :class:`LSHGAN` (everything saved with the model).

    ``input_mode``: ``"lsh"`` (default), ``"plain"`` (traditional GAN, pure noise) or
    ``"paper"`` (the paper's gene-dimensional mixture); see :mod:`lshgan.module.inputs`.
    ``k``, ``t``: the paper's LSH-sampling parameters.  ``conditional``: condition G and D
    on cell type (needs ``label_key``).  ``space``: ``"genes"`` or ``"latent"`` (the GAN
    works on an ``n_latent``-dimensional whitened PCA cell state, decoded to genes by a
    fitted hurdle model; ``n_latent=None``: :func:`default_n_latent`).
    ``anchor_residual`` (``input_mode="lsh"``, ``space="latent"``): the generator writes a
    displacement from its anchor's own cell state instead of a free cell state, so every
    generated cell starts next to an LSH-subsample cell (the anchor is a local prior the
    generator cannot ignore).  ``anchor_noise``: the sd of the Gaussian jitter added to
    every anchor (whitened coordinates); with ``anchor_noise_local`` in units of each
    anchor's own spacing (:func:`anchor_spacing`: its distance to the nearest training cell
    of its type in the latent state, per coordinate), so sparse regions get more jitter and
    tight ones less.
    ``type_offsets`` (``space="latent"``, conditional): the hurdle decoder adds a per-type
    offset to each gene's detection and level (:class:`~lshgan.module.decoder.HurdleDecoder`).
    ``detection_state`` (``space="latent"``): the cell state gets one more coordinate, the
    cell's standardised log number of detected genes (MAST's cellular detection rate), which
    the GAN generates with the rest and the decoders read.  ``None`` (the default) for both:
    :func:`decoder_terms`: ``type_offsets`` on for UMI counts (``data_kind`` of the
    preprocessing report in ``adata.uns['lshgan_preprocess']``), off otherwise;
    ``detection_state`` on.
    ``detection_neighbors`` (``space="latent"``): the decoder's detection probability of a
    gene at a state blends in the share of this many nearest training states that detect
    it (:meth:`~lshgan.module.decoder.HurdleDecoder.fit_neighbors`); 0: the logistic alone;
    ``None`` (the default): :func:`default_detection_neighbors` (10 from 1000 training
    cells, off below).
    ``state_genes``: the principal components (LSH space of large data, anchors, latent
    state) are fitted on this many most variable genes when the cells have more
    (:func:`lshgan.preprocess.variable_genes`); None or 0: on every gene.
    """

    k: int = 5
    t: int = 1
    input_mode: str = "lsh"
    noise_dim: int = 64
    anchor_dim: int = 32
    anchor_noise: float = 0.1
    anchor_noise_local: bool = False
    g_hidden: tuple[int, ...] = (256, 256)
    d_hidden: tuple[int, ...] = (256, 256)
    batch_norm: bool = True
    output: str = "zinf"
    spectral_norm: bool = True
    minibatch_std: bool = True
    conditional: bool = True
    lsh_trees: int = 32
    lsh_space_pcs: int | None = None
    space: str = "latent"
    n_latent: int | None = None
    anchor_residual: bool = True
    type_offsets: bool | None = None
    detection_state: bool | None = None
    detection_neighbors: int | None = None
    state_genes: int | None = 2000

    def __post_init__(self) -> None:
        check_positive_int("k", self.k)
        check_positive_int("t", self.t)
        check_positive_int("noise_dim", self.noise_dim)
        check_positive_int("anchor_dim", self.anchor_dim)
        if self.input_mode not in INPUT_MODES:
            raise ParameterError(f"input_mode must be one of {INPUT_MODES}, got {self.input_mode!r}")
        if self.space not in SPACES:
            raise ParameterError(f"space must be one of {SPACES}, got {self.space!r}")
        if self.n_latent is not None:
            check_positive_int("n_latent", self.n_latent)
        if self.detection_neighbors is not None:
            self.detection_neighbors = check_positive_int("detection_neighbors",
                                                          self.detection_neighbors, minimum=0)
        if self.state_genes is not None:  # 0: every gene
            self.state_genes = check_positive_int("state_genes", self.state_genes, minimum=0) or None
        self.g_hidden = tuple(int(h) for h in self.g_hidden)
        self.d_hidden = tuple(int(h) for h in self.d_hidden)
        for name, widths in (("g_hidden", self.g_hidden), ("d_hidden", self.d_hidden)):
            if not widths or min(widths) < 1:
                raise ParameterError(f"{name} must be non-empty positive widths, got {widths}")

    @classmethod
    def paper(cls, **overrides) -> "ModelConfig":
        """The paper-faithful configuration: 16-16 MLPs, linear output, stacked mixture input."""
        base = dict(input_mode="paper", g_hidden=(16, 16), d_hidden=(16, 16), batch_norm=False,
                    output="linear", spectral_norm=False, minibatch_std=False, conditional=False,
                    space="genes")
        base.update(overrides)
        return cls(**base)


def umi_terms(data_kind: str | None) -> bool:
    """The default of ``type_offsets``: on for UMI counts (``detection_state`` is on for every
    kind of data, see :func:`decoder_terms`).

    In droplet (UMI) data many genes are detected in one type only, a step that a linear
    map of a small state smooths over; full-length data (read counts, RPKM) detect most of
    a type's genes in every cell.  Chosen on validation splits carved from the training
    cells, never the test cells (``reports/validation/umi_terms_sweep.json``, 2
    validation splits x 2 seeds per set; Klein's first split with 3 seeds in
    ``decoder_sweep.json``): offsets and the detection rate on against off, mean RF-AUC
    sorted PBMC 0.615 vs 0.641, pbmc4k 0.650 vs 0.678, Klein 0.624 vs 0.639, mouse bladder
    0.657 vs 0.670, worm neurons 0.715 vs 0.710 (a tie).  On the full-length sets the
    offsets do not help (5-fold cross-validation of the training cells x 2 seeds,
    ``reports/validation/small_sets_folds.json``): Yan 0.601 vs 0.605, Pollen 0.683 vs
    0.694.  Data preprocessed elsewhere carries no data kind: off (give the switch to
    choose).
    """
    return data_kind == "umi_counts"


def decoder_terms(data_kind: str | None) -> dict[str, bool]:
    """Defaults of ``type_offsets`` (:func:`umi_terms`) and ``detection_state`` (on).

    The detection rate (the standardised log number of genes a cell detects, MAST's
    cellular detection rate) is a large axis of variation in every protocol: technical
    capture in droplets, cell size and RNA content in full-length data.  It was first on
    for UMI counts only (2 random validation splits of Yan and Pollen x 3 seeds had it at
    no help); 5-fold cross-validation of the training cells x 2 seeds (every training
    cell a validation cell once; ``reports/validation/small_sets_folds.json``) then had it
    lower RF-AUC on both full-length sets, two deals of 5 folds (15 draws per set): Yan
    0.631 -> 0.536, Pollen 0.684 -> 0.632; paired mean -0.074, 95% interval [-0.126,
    -0.022], 22 of 30 draws lower; DCR within 0.01.  Both terms on scored as the detection
    rate alone (Yan 0.509, Pollen 0.646 over 10 draws each).
    """
    return {"type_offsets": umi_terms(data_kind), "detection_state": True}


def _detected_genes(X) -> np.ndarray:
    """Number of non-zero genes of every cell (float64; dense or CSR ``X``)."""
    if sp.issparse(X):
        return np.diff(X.tocsr().indptr).astype(np.float64)
    return (np.asarray(X) > 0).sum(axis=1).astype(np.float64)


def _cell_state(X, rows: np.ndarray) -> np.ndarray:
    """Standardised detection rate and total log expression of ``rows`` (2 columns).

    PCA coordinates miss how many genes a cell detects, which varies a lot between real
    cells (capture efficiency, cell size); anchors carry it explicitly.
    """
    total = np.asarray(X.sum(axis=1)).ravel()
    state = np.column_stack([_detected_genes(X), total])
    state = (state - state.mean(0)) / (state.std(0) + 1e-6)
    return state[rows]


def anchor_spacing(space: np.ndarray, anchors: np.ndarray,
                   codes: np.ndarray | None) -> np.ndarray:
    """Each anchor's distance to its nearest other training cell of its cell type in
    ``space``, per coordinate (divided by the square root of the dimension): the scale of
    the data around it.  An anchor alone in its type gets the median of the others (1 when
    none has a neighbour)."""
    from sklearn.neighbors import NearestNeighbors

    groups = np.zeros(space.shape[0], dtype=np.int64) if codes is None else np.asarray(codes)
    anchors = np.asarray(anchors)
    out = np.full(len(anchors), np.nan)
    for g in np.unique(groups[anchors]):
        members = np.flatnonzero(groups == g)
        mine = np.flatnonzero(groups[anchors] == g)
        if len(members) < 2:
            continue
        dist, _ = NearestNeighbors(n_neighbors=2).fit(space[members]).kneighbors(
            space[anchors[mine]])
        out[mine] = dist[:, 1]  # the first is the anchor itself
    out /= np.sqrt(space.shape[1])
    fill = np.nanmedian(out) if np.isfinite(out).any() else 1.0
    return np.where(np.isfinite(out), out, fill).astype(np.float32)


def _detection_rate(X) -> np.ndarray:
    """Standardised log number of detected genes of every cell (1 column, float32): the
    latent state's last coordinate with ``detection_state``."""
    rate = np.log1p(_detected_genes(X))
    return ((rate - rate.mean()) / (rate.std() + 1e-6)).astype(np.float32)[:, None]


def _dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X)


#: share of non-zero counts under which generated counts are stored as CSR
COUNTS_CSR_DENSITY = 0.3


class _CountBlocks:
    """Generated counts, batch by batch: sparse batches are kept as CSR at once, so the
    counts of many cells never sit in memory as one dense matrix beside ``.X`` (100,000
    cells x 2000 genes: 763 MiB dense); :meth:`matrix` is CSR when under
    :data:`COUNTS_CSR_DENSITY` of all entries are non-zero, dense otherwise."""

    def __init__(self, n_cells: int) -> None:
        self.blocks: list = []
        self.totals = np.empty(n_cells)
        self.detected = np.empty(n_cells, np.int64)
        self.library = np.empty(n_cells)

    def add(self, start: int, counts: np.ndarray, library: np.ndarray) -> None:
        rows = slice(start, start + len(counts))
        nonzero = counts > 0
        self.detected[rows] = nonzero.sum(axis=1)
        self.totals[rows] = counts.sum(axis=1, dtype=np.float64)
        self.library[rows] = library
        sparse = nonzero.sum() < COUNTS_CSR_DENSITY * counts.size
        self.blocks.append(sp.csr_matrix(counts) if sparse else counts)

    def matrix(self):
        n_genes = self.blocks[0].shape[1]
        if self.detected.sum() < COUNTS_CSR_DENSITY * len(self.detected) * n_genes:
            return sp.vstack([sp.csr_matrix(b) for b in self.blocks], format="csr",
                             dtype=np.float32)
        out = np.empty((len(self.detected), n_genes), np.float32)
        start = 0
        for b in self.blocks:
            out[start:start + b.shape[0]] = b.toarray() if sp.issparse(b) else b
            start += b.shape[0]
        return out


class LSHGAN:
    """LSH-GAN for single-cell expression (Lall, Ray & Bandyopadhyay 2022).

    Parameters
    ----------
    adata
        Preprocessed training cells (``log2(1+x)`` scale, see :func:`lshgan.preprocess`);
        dense or CSR ``.X``.
    label_key
        ``.obs`` column with cell types: enables cell-type-conditional generation and a
        per-type LSH subsample.
    config
        :class:`ModelConfig`; keyword arguments override its fields.

    Examples
    --------
    >>> model = LSHGAN(adata, label_key="cell_type", k=5, t=1)    # doctest: +SKIP
    >>> model.train(epochs=200)                                     # doctest: +SKIP
    >>> new = model.generate(500, cell_type="B", seed=0)            # doctest: +SKIP
    >>> model.save("models/pbmc"); LSHGAN.load("models/pbmc")     # doctest: +SKIP
    """

    def __init__(self, adata: ad.AnnData, *, label_key: str | None = None,
                 config: ModelConfig | None = None, **overrides):
        # a copy: training resolves n_latent (and labels decide conditional) on it
        config = ModelConfig(**asdict(config)) if config is not None else ModelConfig()
        if overrides:
            valid = {f.name for f in fields(ModelConfig)}
            unknown = set(overrides) - valid
            if unknown:
                raise ParameterError(f"unknown model option(s): {', '.join(sorted(unknown))}")
            config = ModelConfig(**{**asdict(config), **overrides})
        if label_key is None:
            config.conditional = False
        self.preprocess_info = dict(adata.uns.get("lshgan_preprocess", {}))
        kind = self.preprocess_info.get("data_kind")
        terms = decoder_terms(kind)
        auto = [name for name in terms if getattr(config, name) is None]
        for name in auto:
            setattr(config, name, terms[name])
        if auto and config.space == "latent":
            said = ", ".join(f"{name} {'on' if terms[name] else 'off'}" for name in auto)
            log.info(f"{said} (data kind {kind or 'not recorded'}; the defaults: type_offsets "
                     "on for UMI counts only, detection_state on)")
        if config.detection_neighbors is None:  # only the latent model's decoder has it
            config.detection_neighbors = (default_detection_neighbors(adata.n_obs)
                                          if config.space == "latent" else 0)
            if config.space == "latent":
                how = (f"from the {config.detection_neighbors} nearest training cells"
                       if config.detection_neighbors else "off")
                log.info(f"local detection {how} ({adata.n_obs} training cells; the default: "
                         f"on from {LOCAL_DETECTION_MIN_CELLS})")
        self.config = config
        self.label_key = label_key
        self.var_names = [str(v) for v in adata.var_names]
        if len(set(self.var_names)) != len(self.var_names):
            raise InputDataError("training data has duplicated gene names")
        if adata.n_obs <= config.k:
            raise InputDataError(
                f"training data has {adata.n_obs} cells; LSH sampling with k={config.k} needs more than k"
            )
        self._adata = adata
        if label_key is not None:
            if label_key not in adata.obs:
                raise InputDataError(f"label column {label_key!r} not found in .obs")
            cats = pd.Categorical(adata.obs[label_key].astype(str))
            self.cell_types: list[str] = [str(c) for c in cats.categories]
            self._codes = np.asarray(cats.codes, dtype=np.int64)
        else:
            self.cell_types = []
            self._codes = None
        self.history: History | None = None
        self.train_config: TrainConfig | None = None
        self.train_seconds: float | None = None
        self.subsample_: np.ndarray | None = None
        self._G: torch.nn.Module | None = None
        self._inputs: GeneratorInput | None = None
        self._decoder: HurdleDecoder | None = None
        self._counts: CountDecoder | None = None

    # ------------------------------------------------------------------ building
    @property
    def n_classes(self) -> int:
        return len(self.cell_types) if self.config.conditional else 0

    def lsh_subsample(self, seed: int = 0, *, space: np.ndarray | None = None) -> np.ndarray:
        """Indices of the LSH subsample of the training cells (per cell type if conditional).

        ``space``: the matrix hashed (one row per training cell); default
        :func:`lshgan.lsh.lsh_space` of the cells (the genes; principal components for a
        large sparse matrix or with ``lsh_space_pcs``).  Training passes the first
        components of its one shared PCA instead of fitting a second one.
        """
        cfg = self.config
        groups = self._codes if cfg.conditional else None
        if space is None:
            space = lsh_space(self._adata.X, cfg.lsh_space_pcs, seed=seed)
        return lsh_subsample_by_group(space, groups, k=cfg.k, t=cfg.t, n_trees=cfg.lsh_trees,
                                      seed=seed)

    def _build(self, seed: int, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
        """The generator's input and the cells D sees (LSH subsample, PCA, decoders), then
        :meth:`build_networks`."""
        cfg = self.config
        X = self._adata.X
        codes = self._codes if cfg.conditional else None
        # one randomized PCA for everything that needs one: the LSH space (large sparse
        # data), the anchors and the latent space (an anchor's first n_latent coordinates
        # are its own cell state)
        lsh_pc = lsh_pcs(X, cfg.lsh_space_pcs) if cfg.input_mode != "plain" else None
        n_pca = max(cfg.anchor_dim if cfg.input_mode == "lsh" else 0, lsh_pc or 0)
        # the PCA sees the most variable genes (as scanpy's PCA after HVG selection); the
        # decoders still output every gene
        on = X
        wants_pca = bool(n_pca) or cfg.space == "latent"
        if wants_pca and cfg.state_genes is not None and X.shape[1] > cfg.state_genes:
            from .preprocess import variable_genes

            on = X[:, variable_genes(X, cfg.state_genes)]
        if cfg.space == "latent":
            if cfg.n_latent is None:
                cfg.n_latent = default_n_latent(X.shape[0])
            cfg.n_latent = int(min(cfg.n_latent, X.shape[0] - 1, on.shape[1]))
            n_pca = max(n_pca, cfg.n_latent)
        pcs = None
        if n_pca:
            pcs = project(on, *fit_pca(on, n_pca, seed=seed, method="randomized"))
        if cfg.input_mode != "plain":
            space = None if lsh_pc is None else np.ascontiguousarray(pcs[:, :lsh_pc], np.float32)
            self.subsample_ = self.lsh_subsample(seed=seed, space=space)
        coords = None if pcs is None else (pcs / (pcs.std(axis=0) + 1e-6)).astype(np.float32)
        state = None
        if cfg.space == "latent":  # the cells D sees: whitened PCs (+ the detection rate)
            state = coords[:, :cfg.n_latent]
            if cfg.detection_state:
                state = np.hstack([state, _detection_rate(X)])
            state = np.ascontiguousarray(state)
        scale = None
        if cfg.input_mode == "lsh":
            # an anchor's first coordinates are its own latent state (the residual's base)
            n_anchor = max(cfg.anchor_dim, cfg.n_latent) if self._residual else cfg.anchor_dim
            parts = [coords[self.subsample_, :n_anchor]]
            if self._residual and state.shape[1] > cfg.n_latent:
                parts = [state[self.subsample_], coords[self.subsample_, cfg.n_latent:n_anchor]]
            anchors = torch.as_tensor(np.hstack([*parts, _cell_state(X, self.subsample_)]),
                                      dtype=torch.float32)
            if cfg.anchor_noise_local:
                scale = torch.as_tensor(anchor_spacing(
                    state if state is not None else coords[:, :n_anchor], self.subsample_, codes))
        elif cfg.input_mode == "paper":
            anchors = torch.as_tensor(_dense(X[self.subsample_]), dtype=torch.float32)
        else:
            anchors = None
        labels = None if codes is None or anchors is None else torch.as_tensor(codes[self.subsample_])
        self._inputs = GeneratorInput(cfg.input_mode, noise_dim=cfg.noise_dim, anchors=anchors,
                                      anchor_labels=labels, n_train=X.shape[0],
                                      anchor_noise=cfg.anchor_noise, anchor_scale=scale)
        torch.manual_seed(seed)
        if cfg.space == "latent":
            self._real = state
            typed = codes is not None and cfg.type_offsets
            self._decoder = HurdleDecoder(state.shape[1], X.shape[1],
                                          len(self.cell_types) if typed else 1).fit(
                self._real, X, codes if typed else None, seed=seed).eval()
            if cfg.detection_neighbors:
                self._decoder.fit_neighbors(self._real, X, min(cfg.detection_neighbors, X.shape[0] - 1),
                                            seed=seed)
            self._counts = self._fit_counts(seed)
        else:
            self._real = X
        return self.build_networks(self._inputs.dim, self._real)

    def build_networks(self, input_dim: int, real) -> tuple[torch.nn.Module, torch.nn.Module]:
        """The generator and the discriminator that :meth:`train` fits: the one hook for
        other networks in the same training loop.

        :meth:`train` calls it once per run, after seeding torch with the training seed and
        preparing the generator's input; override it in a subclass to train other networks
        with the same data, conditioning, losses, EMA and generation (the scGAN baseline,
        :class:`lshgan.baselines.scgan.ScGANModel`, does).

        Parameters
        ----------
        input_dim
            Width of the generator's input ``z`` (noise, plus the LSH anchor with
            ``input_mode="lsh"``).
        real
            The cells the discriminator sees (cells x features, dense or CSR): the
            ``n_latent`` whitened cell states with ``space="latent"``, the genes (on the
            ``log2(1+x)`` scale) with ``space="genes"``.  The generator must output as many
            features.

        Returns
        -------
        ``(G, D)``: ``G(z, y)`` and ``D(x, y)`` modules, ``y`` the cell-type codes (``None``
        unless :attr:`n_classes` > 0, conditional).  A model with other networks than the
        default ones cannot be reloaded by :meth:`load` (the saved configuration describes
        these).
        """
        cfg = self.config
        G = self._make_generator(real.shape[1], input_dim)
        if cfg.space == "genes" and cfg.output != "linear":
            G.init_output(real)  # the paper-faithful configuration keeps PyTorch's init
        D = Discriminator(real.shape[1], cfg.d_hidden, n_classes=self.n_classes,
                          spectral_norm=cfg.spectral_norm, minibatch_std=cfg.minibatch_std)
        return G, D

    def _fit_counts(self, seed: int) -> CountDecoder | None:
        """The count decoder of count data (:func:`lshgan.preprocess.raw_counts`), or None."""
        from .preprocess import raw_counts

        found = raw_counts(self._adata)
        if found is None:
            return None
        counts, library = found
        groups = self._codes if self.config.conditional else None
        n_groups = len(self.cell_types) if groups is not None else 1
        # forked: the decoder's initial weights must not move torch's global stream, so a
        # count dataset trains the same generator as the same cells without counts
        with torch.random.fork_rng(devices=[]):
            return CountDecoder(self._real.shape[1], counts.shape[1], n_groups).fit(
                self._real, counts, library, groups, seed=seed).eval()

    @property
    def has_counts(self) -> bool:
        """Whether generated cells carry ``.layers['counts']`` (a latent-space model trained
        on count data preprocessed by :func:`lshgan.preprocess`)."""
        return self._counts is not None

    @property
    def n_state(self) -> int:
        """Width of the latent cell state (``space="latent"``): ``n_latent`` whitened
        principal components, plus the detection rate with ``detection_state``."""
        return int(self.config.n_latent) + int(bool(self.config.detection_state))

    @property
    def _residual(self) -> bool:
        cfg = self.config
        return bool(cfg.anchor_residual and cfg.input_mode == "lsh" and cfg.space == "latent")

    def _make_generator(self, output_dim: int, input_dim: int | None = None) -> Generator:
        cfg = self.config
        head = "linear" if cfg.space == "latent" else cfg.output
        input_dim = self._inputs.dim if input_dim is None else input_dim
        return Generator(input_dim, output_dim, cfg.g_hidden, n_classes=self.n_classes,
                         batch_norm=cfg.batch_norm, output=head,
                         residual_from=cfg.noise_dim if self._residual else None)

    # ------------------------------------------------------------------ training
    def train(self, epochs: int | None = None, *, config: TrainConfig | None = None,
              device: str = "auto", progress: bool = True,
              callback: Callable[[int, History], None] | None = None,
              checkpoint_path: str | os.PathLike | None = None, resume: bool = False,
              **train_overrides) -> History:
        """Train the GAN on the cells given at construction; return the loss history.

        Parameters
        ----------
        epochs
            Passes over the training cells (overrides ``config.epochs``).
        config
            :class:`~lshgan.module.training.TrainConfig`; keyword arguments override it.
        device
            ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        callback
            ``callback(epoch, history)`` after every epoch (may raise to stop); it may call
            :meth:`generate`, which then samples the current averaged generator.
        checkpoint_path, resume
            Periodic checkpoints (``checkpoint_every`` epochs) and resuming from one.
        """
        tc = config or TrainConfig()
        over = dict(train_overrides)
        if epochs is not None:
            over["epochs"] = epochs
        if over:
            valid = {f.name for f in fields(TrainConfig)}
            unknown = set(over) - valid
            if unknown:
                raise ParameterError(f"unknown training option(s): {', '.join(sorted(unknown))}")
            tc = TrainConfig(**{**asdict(tc), **over})
        dev = resolve_device(device)
        t0 = time.perf_counter()
        G, D = self._build(tc.seed, dev)
        data = BatchSource(self._real, self._codes if self.config.conditional else None, dev)
        # the averaged generator is live during training, so a callback can call generate()
        # (validation scores for early stopping, pruning, tracking)
        self._G = copy.deepcopy(G)
        self.history, G_ema = train_gan(G, D, data, self._inputs, tc, G_ema=self._G,
                                        progress=progress, callback=callback,
                                        checkpoint_path=checkpoint_path, resume=resume)
        self._G = G_ema.cpu().eval()
        self._inputs.to("cpu")
        self.train_config = tc
        self.train_seconds = time.perf_counter() - t0
        return self.history

    @property
    def is_trained(self) -> bool:
        return self._G is not None

    # ------------------------------------------------------------------ generation
    def generate(self, n_cells: int, cell_type: str | Sequence[str] | None = None, *,
                 seed: int = 0, batch_size: int | None = None, layer: str = "log") -> ad.AnnData:
        """Generate ``n_cells`` new cells (``.X`` on the ``log2(1+x)`` scale by default).

        Parameters
        ----------
        n_cells
            Number of cells.
        cell_type
            A type (all cells of it), a sequence of ``n_cells`` types, or ``None``: types
            drawn in training proportions (conditional model) / unlabelled.
        seed
            Same seed (and ``batch_size``), same cells.
        batch_size
            Cells per forward pass; ``None``: 8192, fewer when a batch would hold more
            than 2^24 values (at 20,000 genes, 838 cells: 8192 cells would make 655 MB
            output blocks and several times that in decoder temporaries).
        layer
            What ``.X`` holds: ``"log"`` (default), ``"normalized"`` or ``"counts"`` (see
            :func:`with_layer`; ``"counts"`` needs :attr:`has_counts`).

        Returns
        -------
        AnnData with the training ``var_names``, ``obs['cell_type']`` and
        ``obs['synthetic'] = True``.  A model trained on counts (:attr:`has_counts`) also
        gives ``.layers['counts']`` (integer counts as float32, CSR when under 30% of them
        are non-zero) and ``obs['n_counts']``, ``obs['n_genes']`` (their totals and
        detected genes) and ``obs['library_size']`` (the drawn raw library size, over the
        genes the training cells had before HVG selection: what ``obs['n_counts']`` of
        :func:`lshgan.preprocess` holds for real cells).  ``.X`` and the counts are two
        samples of the same cell state: ``.X`` from the hurdle decoder, the counts from the
        count decoder (:class:`~lshgan.module.decoder.CountDecoder`), drawn from their own
        random stream, so ``.X`` is the same with or without them.
        """
        if not self.is_trained:
            raise ParameterError("the model is not trained: call train() or LSHGAN.load()")
        check_layer(layer, self.has_counts)
        cells = self._generate_with(self._G, n_cells, cell_type, seed=seed, batch_size=batch_size)
        return with_layer(cells, layer)

    def _generate_with(self, G: torch.nn.Module, n_cells: int, cell_type, *, seed: int = 0,
                       batch_size: int | None = None) -> ad.AnnData:
        """:meth:`generate` with generator ``G`` (the averaged one, or a live one in training).

        Torch's global random state is forked, so sampling never disturbs a training run.
        """
        n_cells = check_positive_int("n_cells", n_cells)
        if batch_size is None:
            batch_size = min(8192, max(256, 2**24 // max(1, len(self.var_names))))
        batch_size = check_positive_int("batch_size", batch_size)
        gen = torch.Generator().manual_seed(int(seed))
        y = self._labels_for(n_cells, cell_type, gen)
        X = np.empty((n_cells, len(self.var_names)), dtype=np.float32)  # filled batch by batch
        count_dec = self._counts if self._decoder is not None else None
        if count_dec is not None:  # counts: their own NumPy stream, .X stays as without them
            counts = _CountBlocks(n_cells)
            rng = np.random.default_rng([int(seed), 0xC0C0])
        was_training = G.training
        G.eval()
        device = next(G.parameters()).device
        # the zero-inflated head samples detection noise from torch's global generator
        try:
            cuda = [device.index or 0] if device.type == "cuda" else []
            decoder = None if self._decoder is None else self._decoder.to(device)
            with torch.no_grad(), torch.random.fork_rng(devices=cuda):
                torch.manual_seed(int(seed))
                for start in range(0, n_cells, batch_size):
                    stop = min(start + batch_size, n_cells)
                    yy = None if y is None else y[start:stop].to(device)
                    z = self._inputs.sample(stop - start, yy, generator=gen).to(device)
                    x = G(z, yy)
                    if count_dec is not None:
                        counts.add(start, *count_dec.sample(
                            x.cpu().numpy(), None if yy is None else yy.cpu().numpy(), rng))
                    if decoder is not None:
                        x = decoder(x, yy)
                    X[start:stop] = x.cpu().numpy()
        finally:
            G.train(was_training)
        if y is not None:
            types = np.asarray(self.cell_types, dtype=object)[y.numpy()]
        elif isinstance(cell_type, str):
            types = np.full(n_cells, cell_type, dtype=object)
        else:
            types = np.full(n_cells, "unlabelled", dtype=object)
        obs = pd.DataFrame({"cell_type": pd.Categorical(types), "synthetic": True},
                           index=[f"synthetic_{i}" for i in range(n_cells)])
        cells = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(self.var_names)))
        if count_dec is not None:
            cells.obs["n_counts"] = counts.totals
            cells.obs["n_genes"] = counts.detected
            cells.obs["library_size"] = counts.library
            cells.layers["counts"] = counts.matrix()
        return cells

    def _labels_for(self, n: int, cell_type, gen: torch.Generator) -> torch.Tensor | None:
        if not self.config.conditional:
            if cell_type is not None and self.cell_types and not isinstance(cell_type, str):
                raise ParameterError("this model is unconditional: cell_type must be None")
            if cell_type is not None:
                raise ParameterError(
                    "this model was trained without cell-type conditioning (unconditional, "
                    "or no label_key); retrain it conditional, with a label_key, to generate "
                    "a requested type"
                )
            return None
        lookup = {c: i for i, c in enumerate(self.cell_types)}
        if cell_type is None:
            probs = torch.as_tensor(np.bincount(self._codes_or_counts(), minlength=len(lookup)),
                                    dtype=torch.float64)
            return torch.multinomial(probs / probs.sum(), n, replacement=True, generator=gen)
        types = [cell_type] * n if isinstance(cell_type, str) else list(cell_type)
        if len(types) != n:
            raise ParameterError(f"cell_type has {len(types)} entries for n_cells={n}")
        unknown = sorted({str(t) for t in types} - set(lookup))
        if unknown:
            raise ParameterError(
                f"unknown cell_type {unknown[0]!r}; known types: {', '.join(self.cell_types)}"
            )
        return torch.as_tensor([lookup[str(t)] for t in types], dtype=torch.long)

    def _codes_or_counts(self) -> np.ndarray:
        if self._codes is not None:
            return self._codes
        counts = self._type_counts
        return np.repeat(np.arange(len(counts)), counts)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, *, force: bool = False) -> Path:
        """Write weights, configuration, gene names, preprocessing and history to a folder.

        The folder is written next to ``path`` and renamed into place, so a crash leaves
        no half-written model; an existing folder is replaced only with ``force=True``.
        """
        import shutil
        import tempfile

        if not self.is_trained:
            raise ParameterError("nothing to save: the model is not trained")
        path = Path(path)
        if path.exists() and not force:
            raise OutputExistsError(f"{path}: already exists; pass --force (force=True) to overwrite")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            state = {"G": self._G.state_dict()}
            if self._decoder is not None:
                state["decoder"] = self._decoder.cpu().state_dict()
            if self._counts is not None:
                state["counts"] = self._counts.state_dict()
            if self._inputs.anchors is not None:
                state["anchors"] = self._inputs.anchors.cpu()
            if self._inputs.anchor_labels is not None:
                state["anchor_labels"] = self._inputs.anchor_labels.cpu()
            if self._inputs.anchor_scale is not None:
                state["anchor_scale"] = self._inputs.anchor_scale.cpu()
            torch.save(state, tmp / WEIGHTS_FILE)
            counts = (np.bincount(self._codes, minlength=len(self.cell_types)).tolist()
                      if self._codes is not None else [])
            meta = {
                "lshgan_version": __version__,
                "model": asdict(self.config),
                "train": asdict(self.train_config) if self.train_config else None,
                "label_key": self.label_key,
                "cell_types": self.cell_types,
                "cell_type_counts": counts,
                "preprocess": self.preprocess_info,
                "counts": self._counts_summary(),
                "n_train_cells": int(self._adata.n_obs) if self._adata is not None else self._n_train,
                "train_seconds": self.train_seconds,
                "torch_version": torch.__version__,
            }
            (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, default=_jsonable))
            (tmp / GENES_FILE).write_text(json.dumps(self.var_names))
            if self.history is not None:
                (tmp / HISTORY_FILE).write_text(json.dumps(self.history.to_dict()))
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, adata: ad.AnnData | None = None) -> "LSHGAN":
        """Load a saved model; with ``adata``, refuse it unless its genes match exactly.

        Missing, corrupt or foreign model files raise :class:`CheckpointError`: bad JSON,
        a weights file that is not one (``UnpicklingError``) or a ``config.json`` of another
        lshgan version (``KeyError``/``TypeError``) would otherwise end in a traceback.
        """
        import pickle

        try:
            return cls._load(path, adata)
        except LSHGANError:
            raise
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError,
                AttributeError) as err:
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            raise CheckpointError(f"{path}: model files are corrupt or from another lshgan "
                                  f"version ({type(err).__name__}: {first})") from None

    @classmethod
    def _load(cls, path: str | os.PathLike, adata: ad.AnnData | None) -> "LSHGAN":
        path = Path(path)
        try:
            meta = json.loads((path / CONFIG_FILE).read_text())
            var_names = json.loads((path / GENES_FILE).read_text())
            state = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        except FileNotFoundError as err:
            raise CheckpointError(f"{path}: not a saved lshgan model ({Path(err.filename).name} missing)") from None
        except (json.JSONDecodeError, RuntimeError, OSError) as err:
            raise CheckpointError(f"{path}: model files are corrupt ({err})") from None
        if adata is not None:
            check_genes(adata.var_names, var_names, what=f"model {path}")
        self = cls.__new__(cls)
        cfg = meta["model"]
        cfg["g_hidden"] = tuple(cfg["g_hidden"])
        cfg["d_hidden"] = tuple(cfg["d_hidden"])
        cfg.setdefault("anchor_residual", False)  # saved before the option: free cell states
        cfg.setdefault("type_offsets", False)  # saved before the decoder's per-type offsets
        cfg.setdefault("detection_state", False)  # saved before the detection-rate coordinate
        cfg.setdefault("state_genes", None)  # saved before: PCA on every gene
        cfg.setdefault("detection_neighbors", 0)  # saved before local detection: off
        self.config = ModelConfig(**cfg)
        self.label_key = meta["label_key"]
        self.var_names = var_names
        self.cell_types = meta["cell_types"]
        self._type_counts = np.asarray(meta.get("cell_type_counts") or [], dtype=np.int64)
        self._codes = None
        self._adata = None
        self._n_train = meta.get("n_train_cells")
        self.preprocess_info = meta.get("preprocess", {})
        self.train_config = TrainConfig(**meta["train"]) if meta.get("train") else None
        self.train_seconds = meta.get("train_seconds")
        self.subsample_ = None
        hist = path / HISTORY_FILE
        self.history = History.from_dict(json.loads(hist.read_text())) if hist.exists() else None
        anchors = state.get("anchors")
        labels = state.get("anchor_labels")
        self._inputs = GeneratorInput(self.config.input_mode, noise_dim=self.config.noise_dim,
                                      anchors=anchors, anchor_labels=labels,
                                      n_train=self._n_train or 0,
                                      anchor_noise=self.config.anchor_noise,
                                      anchor_scale=state.get("anchor_scale"))
        self._decoder = None
        self._counts = None  # models saved before the count decoder generate no counts
        try:
            if self.config.space == "latent":
                G = self._make_generator(self.n_state)
                self._decoder = HurdleDecoder.from_state_dict(state["decoder"])
                if "counts" in state:
                    self._counts = CountDecoder.from_state_dict(state["counts"])
            else:
                G = self._make_generator(len(var_names))
            G.load_state_dict(state["G"])
        except (RuntimeError, KeyError) as err:
            raise CheckpointError(f"{path}: weights do not match the saved configuration ({err})") from None
        self._G = G.eval()
        return self

    def _counts_summary(self) -> dict | None:
        """What ``config.json`` records of the count decoder (None: no counts)."""
        dec = self._counts
        if dec is None:
            return None
        return {"decoder": "negative binomial, zero-inflated where the data need it",
                "n_groups": dec.n_groups, "zero_inflated_genes": int(dec.zi_mask.sum()),
                "median_theta": float(dec.log_theta.detach().exp().median()),
                "library_size_range": [float(v) for v in dec.lib_range.exp()]}

    def __repr__(self) -> str:
        state = "trained" if self.is_trained else "untrained"
        return (f"LSHGAN({len(self.var_names)} genes, {len(self.cell_types)} cell types, "
                f"input_mode={self.config.input_mode!r}, k={self.config.k}, t={self.config.t}, {state})")


def check_layer(layer: str, has_counts: bool = True) -> str:
    """``layer`` if it is one of :data:`LAYERS` (``"counts"`` only when ``has_counts``)."""
    if layer not in LAYERS:
        raise ParameterError(f"layer must be one of {', '.join(LAYERS)}, got {layer!r}")
    if layer == "counts" and not has_counts:
        raise ParameterError("this model generates no counts (it was not trained on count data "
                             "preprocessed by lshgan, or it was saved before counts existed); "
                             "use layer log or normalized")
    return layer


def resolve_layer(layer: str | None = None, scale: str | None = None) -> str:
    """What ``.X`` of written cells holds: ``layer`` (one of :data:`LAYERS`), else the older
    ``scale`` option (``"log"`` or ``"normalized"``: the layers of the same names), else
    ``"log"``; both given must agree."""
    if scale is not None and scale not in ("log", "normalized"):
        raise ParameterError(f"scale must be log or normalized, got {scale!r}")
    if layer is not None:
        check_layer(layer)
        if scale is not None and scale != layer:
            raise ParameterError(f"--scale {scale} contradicts --layer {layer}: give --layer only")
        return layer
    return scale or "log"


def with_layer(cells: ad.AnnData, layer: str = "log") -> ad.AnnData:
    """Generated ``cells`` with ``.X`` = ``layer``: ``"log"`` (as generated, returned as it
    is), ``"normalized"`` (``2^x - 1``: the library-size-normalised linear scale) or
    ``"counts"`` (``.layers['counts']``).  Otherwise a copy whose ``.layers['log']`` keeps
    the ``log2(1+x)`` values (and ``.layers['counts']`` stays)."""
    check_layer(layer, "counts" in cells.layers)
    if layer == "log":
        return cells
    out = cells.copy()
    out.layers["log"] = cells.X
    if layer == "counts":
        out.X = cells.layers["counts"].copy()
    else:
        from .preprocess import normalized_values

        out.X = normalized_values(cells.X).astype(np.float32)
    return out


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(type(o).__name__)
