"""Count-level realism of generated counts on the shared count datasets (issue 13).

For each dataset: the automatic preprocessing of :func:`lshgan.preprocess` with 2000 highly
variable genes, the stratified 80/20 split (seed 0), a short training of the default model
(``--max-steps``), as many generated cells as the test split holds (in its cell types), and
:func:`lshgan.metrics.count_metrics` against the test cells' counts, beside ``copy``
(training cells' counts) and ``real-vs-real``.  Writes ``<out>/<dataset>.json`` and
``<out>/<dataset>_counts.png`` and prints one line per generator.

    python scripts/count_realism.py --datasets klein_subset pollen --max-steps 1000 --out reports/counts
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lshgan
from lshgan.metrics.counts import count_metrics, reference_counts
from lshgan.plotting import plot_count_statistics

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["klein_subset", "pollen"])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--max-steps", type=int, default=1000)
    ap.add_argument("--n-top-genes", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--label-key", default="cell_type")
    ap.add_argument("--out", default="reports/counts")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.datasets:
        raw = lshgan.read_dataset(Path(args.data) / f"{name}.h5ad", label_key=args.label_key)
        pp, _ = lshgan.preprocess(raw, lshgan.PreprocessConfig(n_top_genes=args.n_top_genes), name=name)
        train, test = lshgan.stratified_split(pp, label_key=args.label_key, seed=0)
        model = lshgan.LSHGAN(train, label_key=args.label_key)
        t0 = time.perf_counter()
        model.train(epochs=10**6, max_steps=args.max_steps, seed=args.seed, progress=False)
        seconds = time.perf_counter() - t0
        types = list(test.obs[args.label_key].astype(str))
        fake = model.generate(test.n_obs, cell_type=types, seed=args.seed)
        table = count_metrics({"lshgan": fake}, train=train, test=test, label_key=args.label_key,
                              seed=args.seed)
        plot_count_statistics(test, fake, out / f"{name}_counts.png", force=True,
                              references={"copy": reference_counts(train, test, label_key=args.label_key,
                                                                   seed=args.seed)["copy"]})
        summary = model._counts_summary()
        record = {"dataset": name, "kind": pp.uns["lshgan_preprocess"]["data_kind"],
                  "shape": list(pp.shape), "n_train": train.n_obs, "n_test": test.n_obs,
                  "max_steps": args.max_steps, "train_seconds": seconds, "count_decoder": summary,
                  "metrics": {i: r.to_dict() for i, r in table.iterrows()}}
        (out / f"{name}.json").write_text(json.dumps(record, indent=2, default=float))
        for gen, row in table.iterrows():
            print(f"{name:24s} {gen:13s} library KS {row.counts_library_ks:.3f}  genes KS "
                  f"{row.counts_genes_ks:.3f}  zero-frac r {row.counts_zero_frac_corr:.3f}  "
                  f"log var r {row.counts_log_var_corr:.3f}  gene-gene r {row.counts_gene_corr:.3f}  "
                  f"mv slope {row.counts_mv_slope:.2f} (test {row.counts_mv_slope_test:.2f})", flush=True)
        print(f"{name:24s} zero-inflated genes {summary['zero_inflated_genes']}/{pp.n_vars}, median theta "
              f"{summary['median_theta']:.3g}, train {seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
