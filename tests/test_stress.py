"""The served model under stress (slow): malformed payloads and load, on the real server.

A tiny model is registered in a tracking store in ``tmp_path`` and served with ``mlflow
models serve`` on 127.0.0.1 (:mod:`servers`).  Then:

* a property-based test (hypothesis) sends generated malformed requests (any JSON, near-valid
  ``dataframe_split``/``dataframe_records`` tables with wrong columns, types and sizes, raw
  bytes under several content types, no content type at all) and never gets a 5xx;
* a bounded load test (8 concurrent clients for at most 25 s or 2,000 requests) gets every
  answer right and reports throughput and latency percentiles (printed, and written to
  ``$LSHGAN_STRESS_REPORT`` when set).

Run with ``pytest -m slow tests/test_stress.py -s`` to see the numbers.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.request

for _var, _value in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                     "OMP_NUM_THREADS": "1"}.items():
    os.environ.setdefault(_var, _value)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("mlflow")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from servers import post, register_tiny_model, serve  # noqa: E402

pytestmark = pytest.mark.slow

TYPES = ["type0", "type1", "type2"]
MAX_CELLS = 300
N_GENES = 40
#: Load test bounds.
CLIENTS, DURATION_S, MAX_REQUESTS, CELLS_PER_REQUEST = 8, 25.0, 2000, 50
#: Tally of what the property test sent, by kind (printed at the end of the module).
SENT: dict[str, int] = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("stress")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    old = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME")}
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ.pop("MLFLOW_RUN_ID", None)
    os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
    try:
        model_uri = register_tiny_model(root, dataset="stress", max_cells=MAX_CELLS, n_genes=N_GENES)
        with serve(model_uri, cwd=root, workers=2,
                   env={"MLFLOW_TRACKING_URI": uri, "LSHGAN_MAX_CELLS": str(MAX_CELLS)}) as url:
            yield url
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if SENT:
            print(f"\nmalformed requests sent: {sum(SENT.values())} {SENT}")


# ---------------------------------------------------------------------------- payloads
_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-5, max_value=2 * MAX_CELLS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(TYPES + ["", "TYPE0", "type0 ", "null", "NaN", "1e3", "-1"]),
)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)
_column = st.one_of(st.sampled_from(["n_cells", "cell_type", "seed", "", "N_CELLS", "gene0"]),
                    st.text(max_size=8), st.integers(-3, 3), st.none())
_cell = st.one_of(_scalars, st.lists(_scalars, max_size=2), st.dictionaries(st.text(max_size=4), _scalars, max_size=2))
_rows = st.one_of(st.lists(st.lists(_cell, max_size=5), max_size=4), _json)


@st.composite
def _split(draw):
    body = {}
    if draw(st.booleans()):
        body["columns"] = draw(st.one_of(st.lists(_column, max_size=5), _json))
    if draw(st.booleans()) or not body:
        body["data"] = draw(_rows)
    if draw(st.integers(0, 4)) == 0:
        body["index"] = draw(_json)
    payload = {"dataframe_split": body if draw(st.integers(0, 6)) else draw(_json)}
    if draw(st.integers(0, 5)) == 0:
        payload["params"] = draw(_json)
    return "dataframe_split", payload


@st.composite
def _records(draw):
    records = draw(st.one_of(
        st.lists(st.dictionaries(_column.map(str), _cell, max_size=4), max_size=4), _json))
    return "dataframe_records", {"dataframe_records": records}


@st.composite
def _tensor(draw):
    key = draw(st.sampled_from(["instances", "inputs"]))
    return key, {key: draw(_json)}


@st.composite
def _any_json(draw):
    return "any JSON", draw(_json)


@st.composite
def _mixed_keys(draw):
    keys = draw(st.lists(st.sampled_from(["dataframe_split", "dataframe_records", "instances",
                                          "inputs", "params", "data"]), min_size=2, max_size=4,
                         unique=True))
    return "several input keys", {k: draw(_json) for k in keys}


_payloads = st.one_of(_split(), _split(), _records(), _tensor(), _any_json(), _mixed_keys())
_raw = st.tuples(
    st.binary(max_size=300),
    st.sampled_from(["application/json", "application/json; charset=latin-1",
                     "application/json; format=pandas-split", "text/csv", "text/plain",
                     "application/octet-stream", "application/x-parquet", None]))


def _check_answer(status: int, body, kind: str) -> None:
    assert status < 500, (kind, status, body)
    if status == 200:
        rows = body["predictions"] if isinstance(body, dict) else None
        assert isinstance(rows, list) and len(rows) <= MAX_CELLS, (kind, body)
    else:
        assert 400 <= status < 500, (kind, status, body)
    SENT[kind] = SENT.get(kind, 0) + 1


@settings(max_examples=250, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.data_too_large])
@given(case=_payloads)
def test_malformed_json_never_gets_a_5xx(server, case):
    kind, payload = case
    status, body = post(server + "/invocations", json.dumps(payload, allow_nan=True).encode())
    _check_answer(status, body, kind)


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=_raw)
def test_malformed_bytes_never_get_a_5xx(server, case):
    data, content_type = case
    status, body = post(server + "/invocations", data, content_type=content_type)
    _check_answer(status, body, f"bytes as {content_type}")


def _nested(depth: int, inner: str = "1") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


@pytest.mark.parametrize("body, content_type, status, words", [
    (b'{"dataframe_split": {"columns": ["n_cells"], "data": [[3]]}}', None, 415, ["Content-Type"]),
    (b'{"dataframe_split": {"columns": ["n_cells"], "data": [[3]]}}', "", 415, ["Content-Type"]),
    (_nested(100_000), "application/json", 400, ["nested too deeply"]),
    (b'{"dataframe_split": ' + _nested(50_000) + b"}", "application/json", 400, ["nested too deeply"]),
    (b'{"dataframe_split": {"columns": ["n_cells"], "data": ' + _nested(900) + b"}}",
     "application/json", 400, []),
    (json.dumps({"dataframe_split": {"columns": ["n_cells"], "data": [[1]] * 200_000}}).encode(),
     "application/json", 400, ["asks for 301 cells", f"max_cells={MAX_CELLS}"]),
    (b'{"dataframe_split": {"columns": ["n_cells"], "data": [[3]]}}', "application/json; charset=latin-1",
     415, ["UTF-8"]),
    (b'\xff\xfe{"x": 1}', "application/json", 400, []),
    (b"n_cells\n3\n", "text/csv", 400, []),
    (b"", "application/json", 400, []),
], ids=["no content type", "empty content type", "deep array", "deep value", "900 levels",
        "200k rows", "latin-1", "not UTF-8", "CSV", "empty body"])
def test_hostile_requests_get_4xx(server, body, content_type, status, words):
    got, answer = post(server + "/invocations", body, content_type=content_type)
    assert got == status, (got, str(answer)[:500])
    text = answer if isinstance(answer, str) else answer.get("message", "")
    for word in words:
        assert word in text
    SENT["hostile, explicit"] = SENT.get("hostile, explicit", 0) + 1


def test_the_server_listens_on_loopback_only(server):
    port = int(server.rsplit(":", 1)[1])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent: only picks the outgoing interface
            address = s.getsockname()[0]
        except OSError:
            address = None
    if not address or address.startswith("127."):
        pytest.skip("no non-loopback address on this machine")
    with pytest.raises(OSError):
        socket.create_connection((address, port), timeout=5).close()


# ---------------------------------------------------------------------------- load
def test_bounded_load_with_8_clients(server):
    """8 clients, each sending valid requests back to back, for 25 s or 2,000 requests."""
    url = server + "/invocations"
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []
    sent = [0]
    start = threading.Barrier(CLIENTS + 1)

    def client(i: int) -> None:
        rng = np.random.default_rng(i)
        start.wait()
        t_end = t0 + DURATION_S
        while time.perf_counter() < t_end:
            with lock:
                if sent[0] >= MAX_REQUESTS:
                    return
                sent[0] += 1
            cell_type = str(rng.choice(TYPES))
            rows = [[CELLS_PER_REQUEST, cell_type, int(rng.integers(0, 2**31))]]
            body = json.dumps({"dataframe_split": {"columns": ["n_cells", "cell_type", "seed"],
                                                   "data": rows}}).encode()
            req = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            t = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=120) as resp:
                    answer = json.loads(resp.read())
                ok = (resp.status == 200 and len(answer["predictions"]) == CELLS_PER_REQUEST
                      and all(r["cell_type"] == cell_type for r in answer["predictions"])
                      and len(answer["predictions"][0]) == N_GENES + 1)
                error = None if ok else f"wrong answer: {str(answer)[:200]}"
            except Exception as err:  # noqa: BLE001 - every failure is counted
                error = f"{type(err).__name__}: {err}"
            elapsed = time.perf_counter() - t
            with lock:
                latencies.append(elapsed)
                if error:
                    failures.append(error)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for th in threads:
        th.start()
    t0 = time.perf_counter()
    start.wait()
    for th in threads:
        th.join(timeout=DURATION_S + 300)
    wall = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1000
    report = {"clients": CLIENTS, "requests": len(lat), "failed": len(failures),
              "cells_per_request": CELLS_PER_REQUEST, "seconds": round(wall, 2),
              "requests_per_s": round(len(lat) / wall, 2),
              "cells_per_s": round(len(lat) * CELLS_PER_REQUEST / wall, 1),
              "p50_ms": round(float(np.percentile(lat, 50)), 1),
              "p99_ms": round(float(np.percentile(lat, 99)), 1),
              "max_ms": round(float(lat.max()), 1), "cpus": os.cpu_count()}
    print("\nload:", json.dumps(report))
    if os.environ.get("LSHGAN_STRESS_REPORT"):
        with open(os.environ["LSHGAN_STRESS_REPORT"], "w") as fh:
            json.dump(report, fh, indent=2)
    assert not failures, failures[:5]
    assert report["requests"] >= CLIENTS
    # the server is still healthy after the load
    assert post(url, {"dataframe_split": {"columns": ["n_cells"], "data": [[3]]}})[0] == 200
