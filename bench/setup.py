"""Benchmark: training set-up at 100k cells x 20,000 genes (sparse), before and after the one
shared PCA, side by side in one run.

Set-up is everything :meth:`LSHGAN.train` does before its first optimiser step: the PCA(s),
the LSH subsample and the decoders' fits (``LSHGAN._build``).  ``before`` is the code of
commit ``e3e7644`` (2026-11-29: three randomized TruncatedSVDs of the CSR matrix, for the
LSH space, the anchors and the latent space), checked out in a temporary git worktree;
``after`` is this working tree (one randomized PCA, centred implicitly, shared by all
three).  Both run on the same synthetic matrix (``bench/training.py``'s
``synthetic_sparse``: 100k x 20k, 10% non-zero, five cell types, log scale), each in a
fresh process with one thread, one after the other; the child prints which ``lshgan`` it
imported so the comparison cannot silently run the same code twice.

Run ``python bench/setup.py`` (about 8 minutes on 2 cores; ``--cells 20000`` for a
quick look).  Writes ``bench/results/setup.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

BEFORE = "e3e7644"


def child(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cells", type=int, default=100000)
    p.add_argument("--genes", type=int, default=20000)
    p.add_argument("--density", type=float, default=0.1)
    a = p.parse_args(argv)
    import threading

    import torch

    import lshgan
    from training import synthetic_sparse

    torch.set_num_threads(1)
    adata = synthetic_sparse(a.cells, a.genes, a.density)
    model = lshgan.LSHGAN(adata, label_key="cell_type")
    rss = [0.0]

    def sample():
        while not done.is_set():
            rss[0] = max(rss[0], C.peak_rss_mb())
            time.sleep(0.5)

    done = threading.Event()
    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    model._build(0, torch.device("cpu"))
    setup_s = time.perf_counter() - t0
    done.set()
    print(json.dumps({"lshgan_file": lshgan.__file__, "setup_s": setup_s,
                      "peak_rss_mb": C.peak_rss_mb(), "n_latent": model.config.n_latent,
                      "subsample": int(len(model.subsample_))}))


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, default=100000)
    p.add_argument("--genes", type=int, default=20000)
    p.add_argument("--before", default=BEFORE, help="git revision of the 'before' code")
    p.add_argument("--name", default="setup")
    a = p.parse_args(argv)
    info = C.machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, load average "
          f"{info['load_average_at_start']}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lshgan-setup-") as tmp:
        old = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(C.REPO), "worktree", "add", "--detach", str(old),
                        a.before], check=True, capture_output=True)
        try:
            for label, src in (("before", old / "src"), ("after", C.REPO / "src")):
                env = {**C.thread_env(1), "PYTHONPATH": str(src)}
                cmd = [sys.executable, __file__, "--child", "--cells", str(a.cells),
                       "--genes", str(a.genes)]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    raise SystemExit(f"{label} failed:\n{proc.stderr[-3000:]}")
                r = {"code": label, "revision": a.before if label == "before" else info["git_commit"],
                     **json.loads(proc.stdout.strip().splitlines()[-1])}
                if not r["lshgan_file"].startswith(str(src)):
                    raise SystemExit(f"{label}: imported {r['lshgan_file']}, not {src}")
                rows.append(r)
                print(f"  {label:<7} set-up {r['setup_s']:7.1f} s, peak {r['peak_rss_mb'] / 1024:.2f} GB",
                      flush=True)
        finally:
            subprocess.run(["git", "-C", str(C.REPO), "worktree", "remove", "--force", str(old)],
                           capture_output=True)
    speedup = rows[0]["setup_s"] / rows[1]["setup_s"]
    print(f"set-up speed-up: {speedup:.2f}x (target >= 2.5x)")
    path = C.write_results(a.name, {"benchmark": "setup", "cells": a.cells, "genes": a.genes,
                                    "rows": rows, "speedup": speedup, "target": 2.5,
                                    "machine": info, "threads": 1,
                                    "command": "python bench/setup.py " + " ".join(argv)})
    print(f"wrote {path}")


if __name__ == "__main__":
    C.main_or_child(main, child)
