"""Helpers shared by the benchmark scripts: machine description, data, tables, JSON.

Not a library module: the scripts in ``bench/`` import it by path.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"

#: the two real datasets the benchmarks resample (file, gene filter, label column)
SOURCES = {
    "pollen": ("pollen.h5ad", dict()),
    # UMI data: few genes pass the paper's min_count=5 in 10% of cells, so relax it to
    # have 2000 genes to choose the most variable from
    "pbmc": ("pbmc_sorted_zheng.h5ad", dict(min_count=1, min_cells_frac=0.01)),
}


def shared_data_dir() -> Path:
    """``$LSHGAN_SHARED_DATA``, else ``<repo>/../shared/data``."""
    env = os.environ.get("LSHGAN_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def read_source(name: str, *, n_top_genes: int | None = 2000):
    """A real dataset after :func:`lshgan.preprocess` (``n_top_genes`` most variable)."""
    import lshgan

    fname, overrides = SOURCES[name]
    path = shared_data_dir() / fname
    if not path.exists():
        sys.exit(f"error: {path} not found; set LSHGAN_SHARED_DATA to the folder of the .h5ad files")
    adata = lshgan.read_dataset(path, label_key="cell_type")
    pp, _ = lshgan.preprocess(adata, lshgan.PreprocessConfig(n_top_genes=n_top_genes, **overrides),
                              name=name)
    return pp


def dense(X) -> np.ndarray:
    return np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float32)


def resample(S: np.ndarray, n: int, *, seed: int = 0, noise: float = 0.1,
             partners: int = 10) -> np.ndarray:
    """``n`` synthetic cells around the real cells ``S`` (cells x genes, log scale).

    Each new cell lies a uniform fraction of the way from a real cell to one of its
    ``partners`` nearest real cells, plus Gaussian noise of ``noise`` x each gene's
    standard deviation, clipped at 0.  Copies plus noise alone would make clumps of
    near-identical cells whose neighbours are set by the noise only; interpolating
    keeps the neighbourhood structure of the real cells at any density.
    """
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    m, d = S.shape
    nb = NearestNeighbors(n_neighbors=min(partners, m - 1) + 1).fit(S).kneighbors(
        S, return_distance=False)[:, 1:]
    a = rng.integers(m, size=n)
    b = nb[a, rng.integers(nb.shape[1], size=n)]
    u = rng.random((n, 1), dtype=np.float32)
    X = np.empty((n, d), dtype=np.float32)
    sd = (noise * S.std(axis=0)).astype(np.float32)
    for s in range(0, n, 16384):  # in chunks: the temporaries stay small
        e = min(s + 16384, n)
        X[s:e] = S[a[s:e]] * (1 - u[s:e]) + S[b[s:e]] * u[s:e]
        X[s:e] += rng.standard_normal((e - s, d), dtype=np.float32) * sd
    np.maximum(X, 0, out=X)
    return X


def machine() -> dict:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    versions = {}
    for mod in ("numpy", "scipy", "sklearn", "pynndescent", "anndata"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": mem_gb,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        **versions,
        "load_average_at_start": list(os.getloadavg()),
        "git_commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fit_exponent(ns, ts) -> float | None:
    """Slope of log(time) against log(n): time ~ n ** slope (least squares)."""
    pts = [(math.log(n), math.log(t)) for n, t in zip(ns, ts) if t and t > 0]
    if len(pts) < 2:
        return None
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


def print_table(rows: list[dict], columns: list[tuple[str, str]]) -> None:
    """Print ``rows`` as an aligned text table; ``columns`` are (key, header) pairs."""
    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    cells = [[fmt(r.get(key)) for key, _ in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, (_, h) in enumerate(columns)]
    print("  ".join(h.rjust(w) for (_, h), w in zip(columns, widths)))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths)))


def write_results(name: str, payload: dict) -> Path:
    """Write ``bench/results/<name>.json`` (atomically) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    payload = {**payload}
    payload["machine"]["load_average_at_end"] = list(os.getloadavg())
    tmp.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
    os.replace(tmp, path)
    return path


def _jsonable(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def thread_env(threads: int | None) -> dict:
    """Environment that caps every thread pool (OpenMP, MKL, OpenBLAS, numba) at ``threads``."""
    env = dict(os.environ)
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMBA_NUM_THREADS"):
            env[var] = str(threads)
    return env


def run_child(script: Path, args: list[str], *, threads: int | None = None,
              timeout: float | None = None) -> dict:
    """Run ``script --child ARGS`` in a fresh interpreter; return the JSON it prints last.

    One process per case keeps ``ru_maxrss`` (peak memory) specific to that case.
    """
    cmd = [sys.executable, str(script), "--child", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=thread_env(threads))
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main_or_child(main, child) -> None:
    """Entry point of a benchmark script: ``--child ARGS`` runs one case (the fresh process
    :func:`run_child` starts), anything else the whole benchmark."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main(sys.argv[1:])
