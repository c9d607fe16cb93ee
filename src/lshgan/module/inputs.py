"""What the generator sees: the three input distributions compared in this project.

``"plain"`` (a traditional GAN)
    ``z ~ N(0, I)`` of dimension ``noise_dim``.

``"lsh"`` (LSH-GAN, this project's default)
    ``[z, a]``: Gaussian noise ``z`` concatenated with an *anchor* ``a``, a cell drawn
    uniformly from the LSH subsample (of the requested cell type when conditioning), given
    by its whitened coordinates in the PCA of the training cells (``anchor_dim``
    components) plus ``anchor_noise`` x N(0, I) jitter.  The generator thus starts from
    the neighbourhood structure that LSH sampling preserves, while ``z`` supplies the
    variation; it is the paper's idea (replace pure noise by the LSH subsample augmented
    with prior noise) in a form that scales to many genes.

``"paper"`` (the paper's formulation, kept for comparison)
    Gene-dimensional input rows drawn from the mixture of the two distributions the
    paper describes: with probability ``m / (m + n)`` a row is an LSH-subsample cell
    (``m`` cells, on the log scale), otherwise a ``U(-1, 1)`` noise row (``n`` = number of
    training cells).  This is what the authors' code does when it stacks ``n`` noise rows
    and the ``m`` subsample rows into one input batch.
"""

from __future__ import annotations

import torch

INPUT_MODES = ("lsh", "plain", "paper")


class GeneratorInput:
    """Draws generator inputs; ``sample(n, y)`` returns an ``n x dim`` tensor.

    Parameters
    ----------
    mode
        One of :data:`INPUT_MODES`.
    noise_dim
        Dimension of the Gaussian noise (``"plain"`` and ``"lsh"``).
    anchors
        ``m x a`` tensor: whitened PCA coordinates of the LSH-subsample cells (``"lsh"``)
        or their log expression (``"paper"``).
    anchor_labels
        Cell-type codes of the anchors (length ``m``), for conditional sampling.
    n_train
        Number of training cells (the ``"paper"`` mixture weight).
    """

    def __init__(self, mode: str, *, noise_dim: int = 64, anchors: torch.Tensor | None = None,
                 anchor_labels: torch.Tensor | None = None, n_train: int = 0,
                 anchor_noise: float = 0.1, anchor_scale: torch.Tensor | None = None):
        if mode not in INPUT_MODES:
            raise ValueError(f"input mode must be one of {INPUT_MODES}, got {mode!r}")
        if mode != "plain" and (anchors is None or anchors.shape[0] == 0):
            raise ValueError(f"input mode {mode!r} needs a non-empty LSH subsample")
        self.mode = mode
        self.noise_dim = int(noise_dim)
        self.anchors = anchors
        self.anchor_labels = anchor_labels
        self.n_train = int(n_train)
        self.anchor_noise = float(anchor_noise)
        if anchor_scale is not None and (anchors is None or anchor_scale.shape != anchors.shape[:1]):
            raise ValueError("anchor_scale must hold one value per anchor")
        self.anchor_scale = anchor_scale
        if anchor_labels is not None:
            self._by_label = {int(c): torch.nonzero(anchor_labels == c).squeeze(1)
                              for c in torch.unique(anchor_labels)}

    @property
    def dim(self) -> int:
        if self.mode == "plain":
            return self.noise_dim
        if self.mode == "lsh":
            return self.noise_dim + self.anchors.shape[1]
        return self.anchors.shape[1]

    def to(self, device) -> "GeneratorInput":
        if self.anchors is not None:
            self.anchors = self.anchors.to(device)
        if self.anchor_scale is not None:
            self.anchor_scale = self.anchor_scale.to(device)
        return self

    def _anchor_index(self, n: int, y: torch.Tensor | None, gen: torch.Generator) -> torch.Tensor:
        m = self.anchors.shape[0]
        if y is None or self.anchor_labels is None:
            return torch.randint(m, (n,), generator=gen)
        idx = torch.empty(n, dtype=torch.long)
        y_cpu = y.cpu()
        for c in torch.unique(y_cpu):
            rows = torch.nonzero(y_cpu == c).squeeze(1)
            pool = self._by_label.get(int(c))
            if pool is None:  # no subsample cell of this type: any anchor
                pool = torch.arange(m)
            idx[rows] = pool[torch.randint(len(pool), (len(rows),), generator=gen)]
        return idx

    def sample(self, n: int, y: torch.Tensor | None = None, *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` generator inputs (on the anchors' device), reproducible with ``generator``."""
        gen = generator or torch.Generator().manual_seed(0)
        device = self.anchors.device if self.anchors is not None else torch.device("cpu")
        if self.mode == "plain":
            return torch.randn(n, self.noise_dim, generator=gen).to(device)
        if self.mode == "lsh":
            idx = self._anchor_index(n, y, gen)
            a = self.anchors[idx.to(device)]
            jitter = self.anchor_noise * torch.randn(a.shape, generator=gen).to(device)
            if self.anchor_scale is not None:  # in units of each anchor's own spacing
                jitter = jitter * self.anchor_scale[idx.to(device), None]
            z = torch.randn(n, self.noise_dim, generator=gen).to(device)
            return torch.cat([z, a + jitter], dim=1)
        # paper: mixture of subsample rows and U(-1, 1) rows of gene dimension
        m = self.anchors.shape[0]
        p_sub = m / (m + max(self.n_train, 1))
        from_sub = torch.rand(n, generator=gen) < p_sub
        out = (torch.rand(n, self.anchors.shape[1], generator=gen) * 2 - 1).to(device)
        if from_sub.any():
            idx = self._anchor_index(int(from_sub.sum()), None if y is None else y[from_sub], gen)
            out[from_sub.to(device)] = self.anchors[idx.to(device)]
        return out
