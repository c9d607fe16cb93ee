"""The generator as an MLflow pyfunc model ("models from code"): requests in, generated
cells out (the protocol: :mod:`lshgan.mlops.serving`).

This file is logged as the model's code (:func:`lshgan.mlops.serving.log_model.log_model`
passes ``python_model=<this file>``): MLflow runs it when the model loads, under another
module name, so a server needs the installed ``lshgan`` package but not the code that
logged the model.  Its imports of lshgan are therefore absolute.  The saved
:class:`~lshgan.LSHGAN` folder travels as the artifact :data:`ARTIFACT_KEY`.

Examples
--------
>>> import mlflow
>>> generator = mlflow.pyfunc.load_model("models:/lshgan-pbmc68k_reduced@champion")  # doctest: +SKIP
>>> cells = frame_to_anndata(generator.predict(
...     pd.DataFrame({"n_cells": [100], "cell_type": ["CD19+ B"], "seed": [0]})))    # doctest: +SKIP
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from lshgan.mlops.serving.encoding import generate_frame
from lshgan.mlops.serving.request import max_cells_setting, parse_requests
from lshgan.mlops.serving.server import harden_scoring_server

#: Name of the saved LSHGAN folder among the pyfunc model's artifacts.
ARTIFACT_KEY = "lshgan_model"


class LSHGANGenerator(PythonModel):
    """The pyfunc model: ``predict(requests) -> generated cells`` (protocol: :mod:`lshgan.mlops.serving`)."""

    def load_context(self, context) -> None:
        from lshgan.model import LSHGAN

        self.model = LSHGAN.load(context.artifacts[ARTIFACT_KEY])
        self.max_cells = max_cells_setting(getattr(context, "model_config", None))
        harden_scoring_server()

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        requests = parse_requests(model_input, cell_types=list(self.model.cell_types),
                                  conditional=bool(self.model.config.conditional),
                                  max_cells=self.max_cells,
                                  counts=bool(getattr(self.model, "has_counts", False)))
        return generate_frame(self.model, requests)


# MLflow executes this file under another module name when it loads the model ("models from
# code"); an ordinary `import lshgan.mlops.serving.model` must not register a model.
if __name__ != "lshgan.mlops.serving.model":
    mlflow.models.set_model(LSHGANGenerator())
