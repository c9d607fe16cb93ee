"""Benchmark: training speed (LSH-GAN vs plain GAN) and training from a large sparse matrix.

Parts (``--part``, default all):

``epochs``
    Pollen and the FACS-sorted PBMC set (:func:`lshgan.preprocess`, 2000 most variable
    genes, stratified 80/20 split): for each seed, ``LSHGAN(train, input_mode="lsh")``
    and ``input_mode="plain"`` (same networks, same optimiser; only the generator input
    differs) are trained side by side.  Reported: the set-up time before the first epoch
    (LSH subsample, PCA, output initialisation), the median wall time per epoch, and
    *time to quality*: every ``--eval-every`` epochs the averaged generator makes as
    many cells as the test split (same cell types) and :func:`lshgan.metrics.rf_auc`
    (random forest telling generated from held-out real cells, 0.5 = indistinguishable)
    is measured.  The target is the plain GAN's final AUC of the same seed; for each
    model, the first evaluated epoch at or below it (and the training seconds until
    then) are reported, and the ratio plain / LSH.
``sparse``
    A synthetic CSR matrix of 100k cells x 20k genes with 10% non-zeros (1.6 GB as
    CSR, 8 GB dense) is trained on in a fresh process whose peak RSS is tracked; the
    line where memory peaked is recorded.  ``--max-steps`` bounds the steps (the
    memory peak is reached during set-up and the first steps; the epoch time is
    extrapolated from the step time and labelled so); ``--max-steps 0`` trains whole
    epochs.  Run for both ``--space genes`` (G writes all 20k genes, D reads them) and
    ``--space latent`` (the GAN works on PCA cell states; the hurdle decoder is fitted
    once from mini-batches of the CSR matrix).

Run ``python bench/training.py`` or ``--quick`` (fewer epochs, one seed, fewer steps).
``--device cuda`` trains on a GPU.  Writes ``bench/results/training.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import _memory as M  # noqa: E402

MEMORY_TARGET_GB = 8.0


# ---------------------------------------------------------------------------- epochs part
def train_and_track(train, test, *, mode: str, seed: int, epochs: int, eval_every: int,
                    device: str, label_key: str = "cell_type") -> dict:
    """Train one model; per-epoch seconds and the validation AUC every ``eval_every``."""
    import lshgan
    from lshgan.metrics import dcr_ratio, rf_auc, wasserstein
    from lshgan.objective import objective

    model = lshgan.LSHGAN(train, label_key=label_key, input_mode=mode)
    types = list(test.obs[label_key].astype(str))
    evals, eval_seconds = [], []

    def callback(epoch, history):
        if epoch % eval_every and epoch != epochs:
            return
        t = time.perf_counter()
        fake = model.generate(len(types), cell_type=types, seed=seed)
        auc = rf_auc(test, fake, n_estimators=100, seed=0, n_jobs=1)["mean"]
        dcr = dcr_ratio(fake, train, test)
        evals.append({"epoch": epoch, "train_s": sum(history.seconds), "rf_auc": auc,
                      "dcr": dcr, "objective": objective(auc, dcr),
                      "wasserstein_pca": wasserstein(test, fake, space="pca", seed=0)})
        eval_seconds.append(time.perf_counter() - t)

    hist = model.train(epochs=epochs, progress=False, callback=callback, seed=seed, device=device)
    setup = model.train_seconds - sum(hist.seconds) - sum(eval_seconds)
    return {"mode": mode, "seed": seed, "epochs": epochs, "setup_s": setup,
            "epoch_s_median": statistics.median(hist.seconds), "epoch_s": hist.seconds,
            "subsample": None if model.subsample_ is None else int(len(model.subsample_)),
            "evals": evals, **{f"final_{key}": evals[-1][key] for key in OBJECTIVES}}


#: validation objectives followed (lower is better): the project's ranking objective
#: (RF-AUC + memorisation penalty, :mod:`lshgan.objective`) and the Wasserstein distance
#: in PCA space, which keeps decreasing after the RF-AUC saturates at 1
OBJECTIVES = ("objective", "wasserstein_pca")


def reach(run: dict, key: str, target: float) -> dict:
    """First evaluation with ``key`` at or below ``target``: epochs and seconds (set-up included)."""
    for e in run["evals"]:
        if e[key] <= target:
            return {"epochs": e["epoch"], "seconds": run["setup_s"] + e["train_s"]}
    return {"epochs": None, "seconds": None}


def part_threads(a) -> list[dict]:
    """Seconds per epoch on Pollen with 1 thread and with every core (``torch.set_num_threads``)."""
    import torch

    import lshgan

    pp = C.read_source("pollen")
    before = torch.get_num_threads()
    rows = []
    try:
        for threads in sorted({1, os.cpu_count() or 1}):
            torch.set_num_threads(threads)
            for mode in ("plain", "lsh"):
                model = lshgan.LSHGAN(pp, label_key="cell_type", input_mode=mode)
                hist = model.train(epochs=4, progress=False, device=a.device)
                rows.append({"threads": threads, "mode": mode,
                             "epoch_s_median": statistics.median(hist.seconds[1:])})
                print(f"  {threads} thread(s), {mode:<5}: {rows[-1]['epoch_s_median']:.2f} s/epoch",
                      flush=True)
    finally:
        torch.set_num_threads(before)
    return rows


def part_epochs(a, info) -> dict:
    from lshgan import stratified_split

    out = {"datasets": {}, "torch_threads": __import__("torch").get_num_threads()}
    if a.device == "cpu" and not a.no_threads_part:
        print("threads (Pollen, 4 epochs):")
        out["threads"] = part_threads(a)
    for name, epochs in (("pollen", a.epochs_pollen), ("pbmc", a.epochs_pbmc)):
        if name not in a.datasets:
            continue
        pp = C.read_source(name)
        train, test = stratified_split(pp, label_key="cell_type", seed=0)
        print(f"{name}: {train.n_obs} train + {test.n_obs} test cells x {pp.n_vars} genes, "
              f"{epochs} epochs", flush=True)
        runs, quality = [], []
        for seed in a.seeds:
            pair = {}
            for mode in ("plain", "lsh"):
                r = train_and_track(train, test, mode=mode, seed=seed, epochs=epochs,
                                    eval_every=a.eval_every, device=a.device)
                runs.append(r)
                pair[mode] = r
                print(f"  seed {seed} {mode:<5} set-up {r['setup_s']:6.2f} s, "
                      f"epoch {r['epoch_s_median']:.3f} s, final objective {r['final_objective']:.3f}"
                      f" (RF-AUC {r['evals'][-1]['rf_auc']:.3f}), W-PCA {r['final_wasserstein_pca']:.2f}",
                      flush=True)
            for key in OBJECTIVES:
                target = pair["plain"][f"final_{key}"]
                q = {"seed": seed, "objective": key, "target": target,
                     **{f"{m}_{k}": v for m in ("plain", "lsh")
                        for k, v in reach(pair[m], key, target).items()}}
                if q["plain_epochs"] and q["lsh_epochs"]:
                    q["epoch_ratio_plain_over_lsh"] = q["plain_epochs"] / q["lsh_epochs"]
                    q["seconds_ratio_plain_over_lsh"] = q["plain_seconds"] / q["lsh_seconds"]
                quality.append(q)
        out["datasets"][name] = {"cells_train": train.n_obs, "cells_test": test.n_obs,
                                 "genes": pp.n_vars, "runs": runs, "time_to_quality": quality}
    return out


# ---------------------------------------------------------------------------- sparse part
def synthetic_sparse(n: int, genes: int, density: float, *, n_types: int = 5, seed: int = 0):
    """CSR cells x genes on the log2(1+x) scale, ``density`` non-zero, with cell types."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    types = rng.integers(n_types, size=n)
    # each type expresses its own tenth of the genes more strongly
    boost = np.zeros((n_types, genes), dtype=np.float32)
    for t in range(n_types):
        boost[t, rng.choice(genes, genes // 10, replace=False)] = 2.0
    # preallocated (a list of chunks then a concatenation would double the peak)
    cap = int(n * genes * density + 10 * np.sqrt(n * genes * density) + 1000)
    indices = np.empty(cap, dtype=np.int32)
    data = np.empty(cap, dtype=np.float32)
    indptr = np.zeros(n + 1, dtype=np.int64)
    nnz = 0
    for s in range(0, n, 2048):
        e = min(s + 2048, n)
        rows, cols = np.nonzero(rng.random((e - s, genes), dtype=np.float32) < density)
        m = rows.size
        if nnz + m > cap:
            raise RuntimeError("synthetic_sparse: capacity estimate exceeded")
        indices[nnz:nnz + m] = cols
        values = np.log2(2.0 + rng.gamma(2.0, 2.0, size=m)).astype(np.float32)
        data[nnz:nnz + m] = values + boost[types[s + rows], cols]
        indptr[s + 1:e + 1] = nnz + np.cumsum(np.bincount(rows, minlength=e - s))
        nnz += m
    indices, data = indices[:nnz], data[:nnz]  # views: no copy
    X = sp.csr_matrix((data, indices, indptr), shape=(n, genes))
    obs = pd.DataFrame({"cell_type": pd.Categorical([f"type{t}" for t in types])},
                       index=[f"cell{i}" for i in range(n)])
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"gene{j}" for j in range(genes)]))


class _StepLimit(Exception):
    pass


def sparse_child(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cells", type=int, default=100000)
    p.add_argument("--genes", type=int, default=20000)
    p.add_argument("--density", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--space", default="genes", choices=["genes", "latent"])
    p.add_argument("--kill-gb", type=float, default=12.0)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    import lshgan
    from lshgan.module import training

    res = {"variant": a.space, "cells": a.cells, "genes": a.genes,
           "density": a.density, "batch_size": a.batch_size, "phases_rss_mb": {}}
    phase_rss = res["phases_rss_mb"]

    def killed(tracker):
        return {**res, "exceeded_kill_gb": a.kill_gb, "peak_rss_mb": tracker.peak,
                "peak_at": tracker.where, "trained": False}

    tracker = M.PeakTracker(kill_mb=a.kill_gb * 1024, on_kill=killed)
    tracker.start()
    phase_rss["imports"] = M.rss_mb()
    t0 = time.perf_counter()
    adata = synthetic_sparse(a.cells, a.genes, a.density)
    res["make_data_s"] = time.perf_counter() - t0
    res["csr_mb"] = (adata.X.data.nbytes + adata.X.indices.nbytes + adata.X.indptr.nbytes) / 2**20
    phase_rss["data"] = M.rss_mb()
    model = lshgan.LSHGAN(adata, label_key="cell_type", space=a.space)
    steps, stamps = [0], []
    original_batch = training.BatchSource.batch

    def counting_batch(self, idx):
        steps[0] += 1
        stamps.append((time.perf_counter(), M.rss_mb()))
        if a.max_steps and steps[0] > a.max_steps:
            raise _StepLimit
        return original_batch(self, idx)

    training.BatchSource.batch = counting_batch
    t0 = time.perf_counter()
    try:
        model.train(epochs=a.epochs, progress=False, batch_size=a.batch_size, device=a.device)
        res["epochs_completed"] = a.epochs
    except _StepLimit:
        res["epochs_completed"] = 0
    total = time.perf_counter() - t0
    res["peak_rss_mb"] = tracker.stop()
    res["peak_at"] = tracker.where
    res["trained"] = True
    res["steps"] = min(steps[0], a.max_steps) if a.max_steps else steps[0]
    if stamps:
        res["setup_s"] = stamps[0][0] - t0
        phase_rss["setup_done"] = stamps[0][1]
        phase_rss["last_step"] = stamps[-1][1]
        if len(stamps) > 10:
            step_s = (stamps[-1][0] - stamps[10][0]) / (len(stamps) - 11)
            res["step_s"] = step_s
            steps_per_epoch = a.cells // a.batch_size
            res["epoch_s_extrapolated"] = step_s * steps_per_epoch
    res["total_s"] = total
    res["under_target"] = res["peak_rss_mb"] / 1024 < MEMORY_TARGET_GB
    print(json.dumps(res))


def part_sparse(a) -> dict:
    script = Path(__file__).resolve()
    out = {"target_gb": MEMORY_TARGET_GB, "runs": []}
    for space in ("genes", "latent"):
        args = ["sparse", "--cells", str(a.sparse_cells), "--genes", str(a.sparse_genes),
                "--max-steps", str(a.max_steps), "--epochs", str(a.sparse_epochs),
                "--device", a.device, "--kill-gb", str(a.kill_gb), "--space", space]
        try:
            r = C.run_child(script, args, threads=a.threads)
        except RuntimeError as err:
            r = {"variant": space, "error": str(err)[-2000:]}
        out["runs"].append(r)
        peak = r.get("peak_rss_mb")
        print(f"  sparse {r['variant']:<7} peak RSS {peak / 1024 if peak else float('nan'):.2f} GB"
              f" {'(killed past ' + str(a.kill_gb) + ' GB)' if 'exceeded_kill_gb' in r else ''}"
              f" at: {(r.get('peak_at') or ['?'])[0]}", flush=True)
    return out


# ---------------------------------------------------------------------------- main
def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["all", "epochs", "sparse"], default="all")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--datasets", default="pollen,pbmc")
    p.add_argument("--no-threads-part", action="store_true", help="skip the 1-vs-all-threads timing")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs-pollen", type=int, default=100)
    p.add_argument("--epochs-pbmc", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--sparse-cells", type=int, default=100000)
    p.add_argument("--sparse-genes", type=int, default=20000)
    p.add_argument("--sparse-epochs", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=300,
                   help="sparse part: stop after this many steps (0: whole epochs)")
    p.add_argument("--kill-gb", type=float, default=12.0,
                   help="sparse part: stop a run whose RSS passes this (protects a shared machine)")
    p.add_argument("--threads", type=int, default=None, help="threads of torch and of every BLAS/OpenMP pool (default: all cores)")
    p.add_argument("--name", default="training")
    a = p.parse_args(argv)
    if a.quick:
        a.seeds, a.epochs_pollen, a.epochs_pbmc, a.max_steps = "0", 20, 4, 50
        a.eval_every = 4
    a.seeds = [int(s) for s in a.seeds.split(",")]
    a.datasets = a.datasets.split(",")
    if a.threads:  # torch's pool and every BLAS/OpenMP pool of NumPy, SciPy, scikit-learn
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(a.threads)
        threadpool_limits(a.threads)
    info = C.machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} "
          f"({info['torch_threads']} threads), device {a.device}, load {info['load_average_at_start']}")
    payload = {"benchmark": "training", "device": a.device, "machine": info,
               "command": "python bench/training.py " + " ".join(argv)}
    if a.part in ("all", "epochs"):
        payload["epochs"] = part_epochs(a, info)
        rows = []
        for name, d in payload["epochs"]["datasets"].items():
            for mode in ("plain", "lsh"):
                rs = [r for r in d["runs"] if r["mode"] == mode]
                row = {"dataset": name, "mode": mode,
                       "setup_s": statistics.median(r["setup_s"] for r in rs),
                       "epoch_s": statistics.median(r["epoch_s_median"] for r in rs)}
                for key in OBJECTIVES:
                    qs = [q for q in d["time_to_quality"] if q["objective"] == key]
                    row[f"final_{key}"] = statistics.mean(r[f"final_{key}"] for r in rs)
                    row[f"{key}_epochs"] = [q[f"{mode}_epochs"] for q in qs]
                rows.append(row)
        print()
        C.print_table(rows, [("dataset", "data"), ("mode", "input"), ("setup_s", "set-up s"),
                             ("epoch_s", "s/epoch"), ("final_objective", "final obj"),
                             ("objective_epochs", "epochs to plain's final obj (per seed)"),
                             ("final_wasserstein_pca", "final W-PCA"),
                             ("wasserstein_pca_epochs", "epochs to plain's final W-PCA")])
        payload["epochs"]["summary"] = rows
    if a.part in ("all", "sparse"):
        payload["sparse"] = part_sparse(a)
    path = C.write_results(a.name, payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child" and sys.argv[2] == "sparse":
        sparse_child(sys.argv[3:])
    else:
        main(sys.argv[1:])
