"""A real model server for tests: ``mlflow models serve`` on 127.0.0.1, started and stopped
safely.

:func:`serve` starts the server in its own session (process group) with the project's
environment conventions (``--env-manager local``, telemetry and job workers off), waits for
``GET /ping``, yields the base URL, and stops the whole process group (SIGTERM, then SIGKILL)
however the test ends.  The server's output goes to a log file whose tail is shown when it
fails to start.  :func:`register_tiny_model` puts a small model in a tracking store so that
there is something to serve.  This is the same procedure as the ``server`` fixture of
``test_serving.py``, as a helper that several test modules can share.

Examples
--------
>>> with serve("models:/lshgan-tiny@champion", cwd=tmp_path,
...            env={"MLFLOW_TRACKING_URI": uri, "LSHGAN_MAX_CELLS": "300"}) as url:  # doctest: +SKIP
...     status, body = post(url + "/invocations", {"dataframe_split": {...}})
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

#: Seconds a server may take to answer ``/ping`` (model loading on a small, busy machine).
STARTUP_TIMEOUT = 240.0
#: Environment every test server gets (on top of the caller's).
SERVER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
              "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, payload, *, content_type: str | None = "application/json",
         timeout: float = 120) -> tuple[int, dict | str]:
    """POST ``payload`` (JSON-encoded unless bytes); return (status, JSON body or text).

    ``content_type=None`` sends no ``Content-Type`` header at all (urllib would add one).
    """
    import http.client
    from urllib.parse import urlsplit

    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    parts = urlsplit(url)
    headers = {"Content-Length": str(len(body))}
    if content_type is not None:
        headers["Content-Type"] = content_type
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", parts.path or "/", body=body, headers=headers)
        resp = conn.getresponse()
        status, raw = resp.status, resp.read()
    finally:
        conn.close()
    try:
        return status, json.loads(raw or b"{}")
    except ValueError:
        return status, raw.decode("utf-8", "replace")


@contextlib.contextmanager
def serve(model_uri: str, *, cwd: Path, env: dict[str, str] | None = None, workers: int = 1,
          host: str = "127.0.0.1", log_name: str = "server.log") -> Iterator[str]:
    """Serve ``model_uri`` on ``host`` and a free port; yield ``http://host:port``."""
    port = free_port()
    full_env = {**os.environ, **SERVER_ENV, **(env or {})}
    mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
    log_path = Path(cwd) / log_name
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [mlflow_cli, "models", "serve", "-m", model_uri, "--env-manager", "local",
             "-h", host, "-p", str(port), "--workers", str(workers)],
            env=full_env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://{host}:{port}"
        try:
            _wait_ready(proc, url, log_path, started)
            print(f"\nserver ready in {time.perf_counter() - started:.1f} s: {url}")
            yield url
        finally:
            stop(proc)


def _wait_ready(proc: subprocess.Popen, url: str, log_path: Path, started: float) -> None:
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.perf_counter() - started > STARTUP_TIMEOUT:
            raise RuntimeError(f"server not ready after {STARTUP_TIMEOUT} s:\n"
                               f"{log_path.read_text()[-3000:]}")
        time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    """Stop a server started by :func:`serve` and all its workers (its process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def register_tiny_model(root: Path, *, dataset: str = "tiny", max_cells: int = 300,
                        n_genes: int = 40) -> str:
    """Train a tiny conditional model, log and register it in the tracking store of
    ``MLFLOW_TRACKING_URI`` (set it first); return ``models:/lshgan-<dataset>@champion``.

    Cell types ``type0``-``type2``; genes ``gene0``... (``n_genes`` of them).
    """
    from lshgan import LSHGAN
    from lshgan.datasets import synthetic_log_expression
    from lshgan.mlops import pipeline, registry, tracking

    cells = synthetic_log_expression(90, n_genes, 3, seed=0)
    model = LSHGAN(cells, label_key="cell_type", g_hidden=(16,), d_hidden=(16,), noise_dim=8,
                   anchor_dim=4)
    model.train(epochs=2, batch_size=32, progress=False)
    model_dir = model.save(Path(root) / f"{dataset}-model", force=True)
    with tracking.start_run(dataset) as run:
        pipeline.log_and_register(model_dir, {"lshgan": {"rf_auc": 0.9, "dcr": 1.0}},
                                  dataset=dataset, max_cells=max_cells, run_id=run.info.run_id)
    return registry.champion_uri(dataset)
