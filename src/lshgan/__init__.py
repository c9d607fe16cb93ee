"""lshgan: LSH-GAN for single-cell RNA-seq (Lall, Ray & Bandyopadhyay, Commun. Biol. 2022).

The core (data, preprocessing, LSH, networks, training, metrics) imports no MLflow,
Optuna or DVC; the glue for those lives in :mod:`lshgan.mlops`.
"""

__version__ = "0.1.0"

from . import pp  # noqa: E402
from .datakind import DataKind, detect_data_kind  # noqa: E402
from .errors import LSHGANError  # noqa: E402
from .io import read_dataset, write_h5ad  # noqa: E402
from .lsh import LSHForest, lsh_subsample  # noqa: E402
from .metrics import evaluate, evaluate_generators  # noqa: E402
from .model import LSHGAN, ModelConfig  # noqa: E402
from .module.training import TrainConfig  # noqa: E402
from .preprocess import (FilterReport, PreprocessConfig, Preprocessor, preprocess,  # noqa: E402
                         stratified_split)

__all__ = ["LSHGAN", "ModelConfig", "TrainConfig", "PreprocessConfig", "Preprocessor",
           "FilterReport", "DataKind", "detect_data_kind", "evaluate", "evaluate_generators", "pp",
           "LSHForest", "LSHGANError", "lsh_subsample", "preprocess", "read_dataset",
           "stratified_split", "write_h5ad", "__version__"]
