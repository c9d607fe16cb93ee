"""Benchmark: cells per second generated in-process (``LSHGAN.generate``).

A model is trained briefly on a real dataset (the speed of generation does not depend
on how well it is trained, only on the network sizes), then ``generate(n)`` is timed
for 1k, 10k and 100k cells, split into the network's forward pass and the rest (label
draws, input sampling, building the AnnData).  ``--genes`` widens the data to that many
genes by resampling (the output layer, and so the cost, grows with it; 20k genes is
the size of a whole transcriptome).

Run ``python bench/generation.py`` or ``--quick`` (1k and 10k); ``--device cuda`` uses a
GPU.  Writes ``bench/results/generation.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import _memory as M  # noqa: E402


def trained_model(dataset: str, genes: int | None, device: str, epochs: int):
    """A conditional LSH-GAN trained for ``epochs`` on ``dataset`` (optionally widened)."""
    import anndata as ad
    import pandas as pd

    import lshgan

    pp = C.read_source(dataset)
    if genes and genes != pp.n_vars:
        rng = np.random.default_rng(0)
        X = C.dense(pp.X)
        cols = rng.integers(X.shape[1], size=genes)
        pp = ad.AnnData(X=X[:, cols], obs=pp.obs.copy(),
                        var=pd.DataFrame(index=[f"g{j}" for j in range(genes)]))
    model = lshgan.LSHGAN(pp, label_key="cell_type")
    model.train(epochs=epochs, progress=False, device=device)
    model._G.to(device)  # generate() runs where the generator is; train() leaves it on CPU
    if getattr(model, "_decoder", None) is not None:
        model._decoder.to(device)
    return model, pp.n_vars


def time_generate(model, n: int, repeats: int) -> dict:
    """Wall time of ``generate(n)`` and of the networks alone (median of ``repeats``)."""
    import torch

    forward = []
    # the networks: the generator, and with space="latent" the hurdle decoder to genes
    nets_timed = [m for m in (model._G, getattr(model, "_decoder", None)) if m is not None]
    originals = [m.forward for m in nets_timed]

    def timing(original):
        def timed_forward(*args, **kwargs):  # the networks' share of the time
            t = time.perf_counter()
            out = original(*args, **kwargs)
            forward.append(time.perf_counter() - t)
            return out
        return timed_forward

    for m, original in zip(nets_timed, originals):
        m.forward = timing(original)
    walls, nets = [], []
    try:
        for r in range(repeats):
            forward.clear()
            t = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(n, seed=r)
            walls.append(time.perf_counter() - t)
            nets.append(sum(forward))
    finally:
        for m in nets_timed:
            del m.forward  # back to the class's method
    wall, net = statistics.median(walls), statistics.median(nets)
    return {"cells": n, "genes": out.n_vars, "wall_s": wall, "network_s": net,
            "cells_per_s": n / wall, "network_share": net / wall, "runs_s": walls,
            "output_mb": out.X.nbytes / 2**20}


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1k and 10k cells only")
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--dataset", default="pbmc", choices=sorted(C.SOURCES))
    p.add_argument("--genes", default="2000,20000", help="gene counts to measure")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--epochs", type=int, default=2, help="training before timing")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-output-gb", type=float, default=2.0,
                   help="skip sizes whose float32 output alone is larger (100k x 20k is 8 GB)")
    p.add_argument("--threads", type=int, default=None, help="threads of torch and of every BLAS/OpenMP pool (default: all cores)")
    p.add_argument("--name", default="generation")
    a = p.parse_args(argv)
    import torch

    if a.threads:  # torch's pool and every BLAS/OpenMP pool of NumPy, SciPy, scikit-learn
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(a.threads)
        threadpool_limits(a.threads)
    sizes = [1000, 10000] if a.quick else [int(s) for s in a.sizes.split(",")]
    info = C.machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} "
          f"({info['torch_threads']} threads), device {a.device}, load {info['load_average_at_start']}")
    rows = []
    for genes in [int(g) for g in a.genes.split(",")]:
        model, n_genes = trained_model(a.dataset, genes, a.device, a.epochs)
        model.generate(100, seed=0)  # warm-up
        for n in sizes:
            if n * n_genes * 4 / 2**30 > a.max_output_gb:
                print(f"  {n_genes} genes, {n} cells: skipped (output {n * n_genes * 4 / 2**30:.1f} GB"
                      f" > --max-output-gb {a.max_output_gb})")
                rows.append({"dataset": a.dataset, "cells": n, "genes": n_genes,
                             "skipped": f"output of {n * n_genes * 4 / 2**30:.1f} GB"})
                continue
            rss0 = M.rss_mb()
            tracker = M.PeakTracker()
            tracker.start()
            r = time_generate(model, n, a.repeats)
            r["extra_rss_mb"] = tracker.stop() - rss0
            rows.append({"dataset": a.dataset, **r})
            print(f"  {n_genes} genes, {n} cells: {r['cells_per_s']:.0f} cells/s", flush=True)
    print()
    C.print_table(rows, [("genes", "genes"), ("cells", "cells"), ("wall_s", "wall s"),
                         ("cells_per_s", "cells/s"), ("network_share", "network share"),
                         ("output_mb", "output MiB"), ("extra_rss_mb", "+RSS MiB")])
    path = C.write_results(a.name, {"benchmark": "generation", "device": a.device,
                                    "dataset": a.dataset, "machine": info, "rows": rows,
                                    "command": "python bench/generation.py " + " ".join(argv)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
