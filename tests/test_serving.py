"""The registry and the real model server (slow).

Registers a tiny model three times (the ``champion`` alias moves only to a better objective),
then starts ``mlflow models serve -m models:/lshgan-tiny@champion --env-manager local`` on
127.0.0.1 in its own process group, sends real HTTP requests (valid, negative and huge
``n_cells``, unknown ``cell_type``, wrong types), augments a dataset through the endpoint,
and stops the server by its process group id.  Everything lives in ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import time

for _var, _value in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                     "OMP_NUM_THREADS": "1"}.items():
    os.environ.setdefault(_var, _value)

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("mlflow")

from servers import post, serve  # noqa: E402
from test_mlops import TYPES, tiny_cells, train_tiny_model  # noqa: E402

pytestmark = pytest.mark.slow


def _request(rows, columns=("n_cells", "cell_type", "seed")) -> dict:
    return {"dataframe_split": {"columns": list(columns), "data": rows}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A tracking store in tmp_path with lshgan-tiny versions 1-3 (champion: version 3)."""
    import mlflow

    root = tmp_path_factory.mktemp("serving")
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    try:
        yield root
    finally:
        mlflow.set_tracking_uri(None)  # forget the process-wide URI tracking.configure() set
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old


@pytest.fixture(scope="module")
def registered(store):
    from lshgan.mlops import pipeline, registry, tracking

    model_dir = train_tiny_model(store / "tiny")
    steps = []
    for objective in (1.0, 1.5, 0.8):  # better, worse, better
        result = {"lshgan": {"rf_auc": objective, "dcr": 1.0}}
        with tracking.start_run("tiny") as run:
            reg = pipeline.log_and_register(model_dir, result, dataset="tiny", max_cells=500,
                                            run_id=run.info.run_id)
        steps.append(reg)
    return model_dir, steps, registry


def test_champion_moves_only_to_a_better_version(registered):
    from mlflow import MlflowClient

    _, steps, registry = registered
    assert [(s.version, s.champion) for s in steps] == [("1", True), ("2", False), ("3", True)]
    assert steps[1].previous_champion == "1" and steps[2].previous_objective == pytest.approx(1.0)
    client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    assert str(client.get_model_version_by_alias("lshgan-tiny", registry.CHAMPION).version) == "3"
    versions = client.search_model_versions("name='lshgan-tiny'")
    assert sorted(str(v.version) for v in versions) == ["1", "2", "3"]  # old versions stay
    assert all(not v.current_stage or v.current_stage == "None" for v in versions)  # no stages


@pytest.fixture(scope="module")
def server(registered, store):
    """``mlflow models serve`` of the champion, in its own session; killed by process group
    (:func:`servers.serve`)."""
    with serve("models:/lshgan-tiny@champion", cwd=store, env={"LSHGAN_MAX_CELLS": "300"}) as url:
        yield url


def test_valid_request_returns_named_genes(server, registered):
    model_dir, _, _ = registered
    genes = json.loads((model_dir / "var_names.json").read_text())
    t0 = time.perf_counter()
    status, body = post(server + "/invocations", _request([[50, "beta", 0], [20, None, 1]]))
    print(f"70 cells in {time.perf_counter() - t0:.3f} s")
    assert status == 200, body
    rows = body["predictions"]
    assert len(rows) == 70
    assert list(rows[0]) == [*genes, "cell_type"]  # gene order, then the type
    assert {r["cell_type"] for r in rows[:50]} == {"beta"}
    assert {r["cell_type"] for r in rows[50:]} <= set(TYPES)
    # same request, same cells
    assert post(server + "/invocations", _request([[50, "beta", 0], [20, None, 1]]))[1] == body


def test_npz_encoding_over_http_equals_columns(server, registered):
    from lshgan.mlops.serving import fetch_genes, frame_to_anndata

    model_dir, _, _ = registered
    genes = fetch_genes(server)
    assert genes == json.loads((model_dir / "var_names.json").read_text())
    rows = [[30, "beta", 0], [20, None, 1]]
    status, body = post(server + "/invocations", _request(rows))
    assert status == 200, body
    status, packed = post(server + "/invocations",
                          _request([[*r, "npz"] for r in rows],
                                   columns=("n_cells", "cell_type", "seed", "encoding")))
    assert status == 200, packed
    assert len(packed["predictions"]) == 2  # one row per request row
    print(f"50 cells x {len(genes)} genes: {len(json.dumps(body))} bytes as columns, "
          f"{len(json.dumps(packed))} as npz")
    columns, npz = frame_to_anndata(body), frame_to_anndata(packed, genes=genes)
    assert list(npz.var_names) == list(columns.var_names) == genes
    np.testing.assert_array_equal(npz.X.toarray(), columns.X)
    assert list(npz.obs["cell_type"]) == list(columns.obs["cell_type"])


def test_only_n_cells_is_required(server):
    status, body = post(server + "/invocations", _request([[3]], columns=["n_cells"]))
    assert status == 200 and len(body["predictions"]) == 3


@pytest.mark.parametrize("payload, words", [
    (_request([[-5, "beta", 0]]), ["n_cells must be a positive integer", "-5"]),
    (_request([[10**6, "beta", 0]]), ["1000000", "max_cells=300"]),
    (_request([[5, "delta", 0]]), ["unknown cell_type 'delta'", "alpha, beta, gamma"]),
    (_request([["five", "beta", 0]]), ["n_cells"]),
    (_request([[2.5, "beta", 0]]), ["n_cells"]),
    (_request([[5, 7, 0]]), ["cell_type"]),
    (_request([[5, "beta", "x"]]), ["seed"]),
    (_request([[5, "beta", 0, "json"]], columns=("n_cells", "cell_type", "seed", "encoding")),
     ["row 0", "encoding must be one of columns, npz", "'json'"]),
    (_request([[5, "beta", 0, "npz"], [5, "beta", 0, "columns"]],
              columns=("n_cells", "cell_type", "seed", "encoding")),
     ["row 1", "all rows of a request share one encoding"]),
    (_request([[5, "beta"]], columns=("n_cells", "celltype")),
     ["unknown request column(s) celltype", "n_cells, cell_type, seed"]),
    ({"nonsense": 1}, []),
    (b"{not json", []),
])
def test_bad_requests_get_4xx_and_a_message(server, payload, words):
    status, body = post(server + "/invocations", payload)
    assert 400 <= status < 500, (status, body)
    assert body.get("message")
    assert "Traceback" not in json.dumps(body) and "stack_trace" not in body
    for word in words:
        assert word in body["message"]


def test_augment_through_the_endpoint(server):
    from lshgan.mlops.augment import augment

    real = tiny_cells(n_cells=20, seed=3)
    out = augment(server, real, ratio=1.5, seed=0)
    assert out.n_obs == 60 and int(out.obs["synthetic"].sum()) == 40
    assert out.X.dtype == np.float32 and list(out.var_names) == list(real.var_names)


def test_endpoint_client_uses_npz_and_matches_columns(server):
    """augment's HTTP client asks in npz; the cells are those of a columns answer."""
    import pandas as pd

    from lshgan.mlops.augment import EndpointGenerator

    client = EndpointGenerator(server)
    request = pd.DataFrame({"n_cells": [7, 5], "cell_type": [TYPES[0], TYPES[1]], "seed": [3, 4]})
    cells = client.generate(request)
    assert client.encoding == "npz" and sp.issparse(cells.X)
    plain = EndpointGenerator(server, encoding="columns").generate(request)
    assert not sp.issparse(plain.X)
    np.testing.assert_array_equal(cells.X.toarray(), plain.X)
    assert list(cells.obs["cell_type"]) == list(plain.obs["cell_type"]) == [TYPES[0]] * 7 + [TYPES[1]] * 5
    assert list(cells.var_names) == list(plain.var_names) == client.var_names


def test_augment_with_the_registry_uri(registered, tmp_path):
    from lshgan.cli import main

    real_path = tmp_path / "real.h5ad"
    tiny_cells(n_cells=20, seed=4).write_h5ad(real_path)
    out = tmp_path / "augmented.h5ad"
    assert main(["augment", "--model", "models:/lshgan-tiny@champion", "--input", str(real_path),
                 "--ratio", "1.5", "--output", str(out)]) == 0
    import anndata as ad

    assert ad.read_h5ad(out).n_obs == 60
