"""Benchmark: `lshgan run` end to end at 10k, 50k and 100k cells x 20,000 genes.

Data (no download): real UMI counts of two shared droplet datasets (pbmc4k and mouse
bladder; 2000 genes each, 24 cell types together) resampled into larger datasets.  A synthetic cell starts from a random real cell, smoothed: its expected counts
are the mean of it and its 10 nearest cells of the same dataset (PCA of the log-normalised
counts), scaled to its own library size, so that it carries that cell's state without its
technical noise.  Its 20,000 genes are ten blocks of 2000: block 0 holds these expected
counts, blocks 1-9 the same under a fixed gene permutation per block, scaled down by a fixed
fraction per block (0.05-0.5: the many weakly expressed genes of a whole transcriptome);
every count is then drawn as Poisson(expected x s), with s a per-cell library-size factor
~ LogNormal(0, 0.25), independently per gene, as in real droplet data.  (Two designs were
tried first and rejected: filling blocks 1-9 from *other* cells of the type gives cells
that mix ten cell states; copying the raw counts into every block repeats one draw of
technical noise ten times, which becomes structure.  Either way the data has a far higher
intrinsic dimension than real cells, and the model scored RF-AUC 0.98 and 0.94 at 10k.)  The gene columns are shared by the two sources: read it
as one dataset with 24 types, not as biology.

For each size, one fresh process runs ``lshgan run DATA --label-key cell_type`` at the
defaults (automatic preprocessing, 80/20 split, default training budget, as many
generated cells as the test split, full evaluation) and the benchmark reads back the
per-stage wall time and peak memory the run writes (``timings.json``) and its realism
(``metrics.json``).  The growth exponent b of time ~ n^b is fitted per stage.

Run ``python bench/end_to_end.py`` (10k, 50k, 100k; about 25 minutes on 2 cores) or
``--sizes 10000``.  Writes ``bench/results/end_to_end.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

#: the denser droplet sets: worm neurons (1% non-zero) would detect about 200 genes per
#: synthetic cell, right at the default min_genes, and a third of the cells would be filtered
DROPLET = ("pbmc4k_top2000", "mouse_bladder_top2000")
BLOCK = 2000
REALISM = ("rf_auc", "knn_auc", "dcr", "wasserstein_pca", "precision", "recall", "coverage",
           "substate_coverage", "marker_lfc_corr")


def droplet_pool():
    """Smoothed expected counts (dense, cells x 2000) and ``dataset:type`` labels of the
    droplet sets: each cell's counts averaged with its 10 nearest cells' (PCA(30) of the
    log-normalised counts, within its dataset), rescaled to the cell's library size."""
    import anndata as ad
    import scipy.sparse as sp
    from sklearn.neighbors import NearestNeighbors

    from lshgan.pca import fit_pca, project

    mats, labels = [], []
    for name in DROPLET:
        path = C.shared_data_dir() / f"{name}.h5ad"
        if not path.exists():
            sys.exit(f"error: {path} not found; set LSHGAN_SHARED_DATA")
        a = ad.read_h5ad(path)
        X = sp.csr_matrix(a.X[:, :BLOCK], dtype=np.float64)
        lib = np.asarray(X.sum(axis=1)).ravel()
        logn = X.multiply(1e4 / np.maximum(lib, 1)[:, None]).tocsr().log1p()
        Z = project(logn, *fit_pca(logn, 30, method="randomized"))
        nb = NearestNeighbors(n_neighbors=11).fit(Z).kneighbors(Z, return_distance=False)
        frac = X.multiply(1.0 / np.maximum(lib, 1)[:, None]).toarray()
        mats.append(frac[nb].mean(axis=1) * lib[:, None])
        short = name.split('_')[1] if name.startswith('mouse') else name.split('_')[0]
        labels.append(np.array([f"{short}:{t}" for t in a.obs["cell_type"]]))
    return np.vstack(mats), np.concatenate(labels)


def synthetic_counts(n: int, genes: int = 20000, *, seed: int = 0):
    """AnnData of ``n`` resampled droplet cells x ``genes`` (counts, CSR; see module doc)."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    if genes % BLOCK:
        raise SystemExit(f"--genes must be a multiple of {BLOCK}")
    pool, labels = droplet_pool()
    rng = np.random.default_rng(seed)
    base = rng.integers(pool.shape[0], size=n)
    perms = [np.arange(BLOCK)] + [rng.permutation(BLOCK) for _ in range(genes // BLOCK - 1)]
    keep = np.concatenate([[1.0], rng.uniform(0.05, 0.5, size=genes // BLOCK - 1)])
    scale = rng.lognormal(0.0, 0.25, size=n)
    chunks = []
    for s in range(0, n, 2048):
        rows = base[s:s + 2048]
        lam = np.hstack([pool[rows][:, perm] * keep[b] for b, perm in enumerate(perms)])
        counts = rng.poisson(lam * scale[s:s + 2048, None]).astype(np.float32)
        chunks.append(sp.csr_matrix(counts))
    X = sp.vstack(chunks, format="csr")
    obs = pd.DataFrame({"cell_type": pd.Categorical(labels[base])},
                       index=[f"cell{i}" for i in range(n)])
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"gene{j}" for j in range(genes)]))


def run_size(n: int, genes: int, tmp: Path, a) -> dict:
    t0 = time.perf_counter()
    adata = synthetic_counts(n, genes, seed=a.seed)
    data = tmp / f"cells{n}.h5ad"
    adata.write_h5ad(data)
    make_s = time.perf_counter() - t0
    density = adata.X.nnz / (adata.n_obs * adata.n_vars)
    del adata
    out = tmp / f"run{n}"
    cmd = ["lshgan", "run", str(data), "--label-key", "cell_type", "--out", str(out),
           "--threads", str(a.threads or 1), "--device", a.device]
    print(f"  n={n}: {' '.join(cmd[:2])} ... ({density:.3f} non-zero, data made in "
          f"{make_s:.0f} s)", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=C.thread_env(a.threads))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"n": n, "error": proc.stderr[-3000:], "wall_s": wall}
    timings = json.loads((out / "timings.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    row = {"n": n, "genes": genes, "density": density, "wall_s": wall,
           "stages": timings["stages"],
           "realism": {k: metrics["lshgan"].get(k) for k in REALISM},
           "references": {name: {k: ref.get(k) for k in ("rf_auc", "dcr")}
                          for name, ref in metrics.get("references", {}).items()},
           "preprocess": {k: metrics["preprocess"].get(k) for k in
                          ("n_cells_out", "n_genes_out", "data_kind")},
           "n_test": metrics.get("n_test"), "train_seconds": metrics.get("train_seconds")}
    for s in timings["stages"]:
        print(f"    {s['stage']:<18} {s['seconds']:8.1f} s   peak so far {s['peak_rss_mb'] / 1024:6.2f} GB",
              flush=True)
    print("    realism: " + ", ".join(f"{k} {v:.3f}" for k, v in row["realism"].items()
                                       if isinstance(v, (int, float))), flush=True)
    print("    references: " + ", ".join(f"{name} RF-AUC {r['rf_auc']:.3f}"
                                          for name, r in row["references"].items()), flush=True)
    return row


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,50000,100000")
    p.add_argument("--genes", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="cap every thread pool (default 1, as `lshgan run --threads`)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (`lshgan run --device`)")
    p.add_argument("--name", default="end_to_end")
    p.add_argument("--keep", default=None, help="folder to keep the data and runs in")
    a = p.parse_args(argv)
    info = C.machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, load average "
          f"{info['load_average_at_start']}", flush=True)
    sizes = [int(s) for s in a.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="lshgan-e2e-") as tmp:
        tmp = Path(a.keep) if a.keep else Path(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        for n in sizes:
            rows.append({**run_size(n, a.genes, tmp, a), "load_average_1min": os.getloadavg()[0]})
            C.write_results(a.name, {"benchmark": "end_to_end", "rows": rows, "machine": info,
                                     "threads": a.threads, "device": a.device,
                                     "command": "python bench/end_to_end.py " + " ".join(argv)})
    ok = [r for r in rows if "stages" in r]
    exponents = {}
    if len(ok) > 1:
        for stage in [s["stage"] for s in ok[0]["stages"]] + ["total"]:
            ts = [r["wall_s"] if stage == "total" else
                  next(s["seconds"] for s in r["stages"] if s["stage"] == stage) for r in ok]
            exponents[stage] = C.fit_exponent([r["n"] for r in ok], ts)
        print("time ~ n^b: " + ", ".join(f"{k} b={v:.2f}" for k, v in exponents.items()
                                        if v is not None))
    path = C.write_results(a.name, {"benchmark": "end_to_end", "rows": rows, "machine": info,
                                    "threads": a.threads, "device": a.device,
                                    "time_exponent": exponents,
                                    "command": "python bench/end_to_end.py " + " ".join(argv)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
