"""Budgets of the reproduction (full and quick) and the published numbers shown beside ours.

The paper trained for 10000-25000 epochs on a GPU; the full report here must finish on two
CPU cores in hours (96 minutes with one generator seed and two ACTIVA seeds), so every
budget is scaled down and the tables say so.
Every GAN gets the same number of **discriminator updates** (``critic_updates``), whatever
the dataset size; its generator updates are that divided by its critic updates per
generator update (1 for LSH-GAN's hinge loss, 5 for WGAN-GP's scGAN/cscGAN), which makes
the budgets roughly equal in compute.  ``--quick`` is a smoke run of the whole pipeline.

The ``PAPER_*`` dictionaries hold the values printed in Lall et al. (Communications Biology
2022), as quoted in the project's issue 4; they are only ever displayed as "paper", never
mixed with our numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class Budget:
    """Everything that sets how long the report takes."""

    #: seeds of generator training (and of the classifier / clustering run with each)
    seeds: tuple[int, ...] = (0, 1)
    #: highly variable genes kept by preprocessing (p of Table 3)
    n_genes: int = 1000
    #: generators of Tables 2-3 and the pictures, in report order
    generators: tuple[str, ...] = ("lshgan", "gan", "lshgan-paper", "gan-paper", "cscgan",
                                   "splatter", "sugar", "scvi", "copy", "gaussian")
    #: discriminator updates of every GAN (generator updates = this / n_critic)
    critic_updates: int = 750
    #: gradient steps of scVI
    scvi_steps: int = 1000
    #: random-forest trees of the real-vs-generated AUC
    rf_trees: int = 300
    # Table 1 (simulated data)
    table1_epochs: tuple[int, ...] = (400, 800, 1200, 1600)
    table1_seeds: tuple[int, ...] = (0, 1)
    table1_ks: tuple[int, ...] = (5, 10, 15, 20)
    table1_features: int = 1000
    table1_samples: int = 100
    # Figure 2 (toy parabola)
    fig2_epochs: tuple[int, ...] = (0, 150, 500, 1000)
    # Table 3
    n_selected: int = 500
    augment_ratio: float = 1.5
    sweep_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
    sweep_generators: tuple[str, ...] = ("lshgan",)
    sweep_methods: tuple[str, ...] = ("hvg", "m3drop")
    max_cluster_cells: int = 500
    # ACTIVA rare-population test
    activa_fractions: tuple[float, ...] = (0.10, 0.05, 0.01, 0.005)
    activa_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    activa_generators: tuple[str, ...] = ("lshgan", "cscgan", "splatter", "sugar", "gaussian")
    activa_critic_updates: int = 400
    activa_n_generated: int = 1500
    activa_genes: int = 300
    activa_trees: int = 200
    # pictures
    n_markers: int = 2
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


FULL = Budget()

QUICK = replace(
    FULL, seeds=(0,), n_genes=200, critic_updates=10, scvi_steps=10,
    rf_trees=30, table1_epochs=(10, 20), table1_seeds=(0,), table1_ks=(5, 20),
    table1_features=50, fig2_epochs=(0, 10), n_selected=50,
    sweep_ratios=(0.5, 1.5), max_cluster_cells=100, activa_fractions=(0.10, 0.01),
    activa_seeds=(0,), activa_critic_updates=10, activa_n_generated=50, activa_genes=100,
)

#: Table 1 of the paper: Wasserstein distance, test set vs generated, by epochs.
PAPER_TABLE1 = {
    "LSH-GAN k=5": {10000: 0.46, 15000: 0.35, 20000: 0.33, 25000: 0.45},
    "LSH-GAN k=10": {10000: 1.09, 15000: 0.89, 20000: 0.83, 25000: 0.82},
    "LSH-GAN k=15": {10000: 1.36, 15000: 0.89, 20000: 1.45, 25000: 0.87},
    "LSH-GAN k=20": {10000: 1.53, 15000: 1.35, 20000: 1.19, 25000: 0.83},
    "GAN": {10000: 1.71, 15000: 1.73, 20000: 1.75, 25000: 1.70},
}
PAPER_TABLE1_EPOCHS = (10000, 15000, 20000, 25000)

#: Table 2 of the paper: random-forest AUC real vs generated (lower is better).
PAPER_TABLE2 = {
    "lshgan": {"yan": 0.59, "pollen": 0.58, "klein": 0.57},
    "cscgan": {"yan": 0.65, "pollen": 0.64, "klein": 0.62},
    "splatter": {"yan": 0.69, "pollen": 0.67, "klein": 0.65},
    "sugar": {"yan": 0.67, "pollen": 0.61, "klein": 0.64},
    "gan": {"yan": 0.72, "pollen": 0.73, "klein": 0.72},
}

#: Table 3 of the paper: ARI of SC3 on genes selected with LSH-GAN cells / without model.
PAPER_TABLE3 = {
    "hvg": {"yan": (0.910, 0.80), "pollen": (0.958, 0.820), "klein": (0.898, 0.739)},
    "m3drop": {"yan": (0.898, 0.71), "pollen": (0.918, 0.735), "klein": (0.837, 0.607)},
}


def paper_key(dataset: str) -> str | None:
    """The paper's name for one of our datasets (``klein_subset`` -> ``klein``), if any."""
    for key in ("yan", "pollen", "klein"):
        if dataset.lower().startswith(key):
            return key
    return None


#: How the paper's rows map onto our generators (the paper's GAN is its 16-16 plain GAN,
#: closest to ``gan-paper``; its LSH-GAN is closest to ``lshgan-paper``).
PAPER_ROW_FOR = {"lshgan": "lshgan", "lshgan-paper": "lshgan", "gan": "gan",
                 "gan-paper": "gan", "cscgan": "cscgan", "splatter": "splatter",
                 "sugar": "sugar"}
