"""Choose model defaults on validation splits carved from the training cells (issue 12).

For each dataset: preprocess, stratified 80/20 split (seed 0) into train and test, then a
second stratified 80/20 split of the **training** cells (seed 1) into fit and validation.
Each variant is trained on the fit cells and scored against the validation cells; the test
cells are never trained on or scored against (like every run here, the gene filter and the
highly variable genes are chosen on all cells before the split, as in the paper's pipeline).  A variant is a name from :data:`VARIANTS` or ``name:key=value,...``
with :class:`lshgan.ModelConfig` / :class:`TrainConfig` fields (e.g.
``wide:n_latent=24,anchor_residual=true``).

    python scripts/validation_sweep.py --datasets pollen pbmc4k_top2000 \\
        --variants default residual --seeds 0 --out reports/validation/sweep.json

With ``--folds K`` the training cells are dealt into K stratified folds instead
(:meth:`lshgan.validation.ValidationSplit.folds`): each fold is a validation set once, so
every training cell is scored on and the K draws do not overlap (one split of a few hundred
cells moves RF-AUC by up to 0.1; the mean over K folds is the steadier number to decide on):

    python scripts/validation_sweep.py --datasets yan pollen --folds 5 --seeds 0 1 \
        --variants default det:detection_state=true --references --out /tmp/folds.json

Writes one JSON row per (dataset, variant, seed) as it goes, so a long sweep can be read
while it runs.  ``--compare default`` then pairs every variant with the baseline on the same
draws (:func:`lshgan.validation.paired_differences`: mean difference with its 95% interval)
and writes ``<out>_compare.md`` and ``<out>_compare.png`` beside the JSON; without
``--datasets`` it only summarises the rows already there:

    python scripts/validation_sweep.py --compare default \
        --out reports/validation/anchor_noise_authenticity.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

import lshgan
from lshgan.metrics import authenticity, dcr, dcr_ratio, pooled_pca, rf_auc
from lshgan.metrics.distance import NearestTraining
from lshgan.module.training import TrainConfig
from lshgan.references import REFERENCES
from lshgan.validation import ValidationSplit

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

VARIANTS: dict[str, dict] = {
    "default": {},
    "plain": {"input_mode": "plain"},
    "residual": {"anchor_residual": True},
}


def parse_variant(spec: str) -> tuple[str, dict]:
    if ":" not in spec:
        return spec, dict(VARIANTS[spec])
    name, body = spec.split(":", 1)
    out = {}
    for item in filter(None, body.split(",")):
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v.lower() if v.lower() in ("true", "false", "null") else v)
        except json.JSONDecodeError:
            out[k] = v
    return name, out


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict:
    """Precision, recall, density, coverage (Naeem et al. 2020) with k-NN balls."""
    from sklearn.neighbors import NearestNeighbors

    def radii(X):
        d, _ = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
        return d[:, -1]

    r_real, r_fake = radii(real), radii(fake)
    d_fr = np.linalg.norm(fake[:, None, :] - real[None, :, :], axis=2)  # fake x real
    inside = d_fr < r_real[None, :]
    precision = float(inside.any(axis=1).mean())
    density = float(inside.sum() / (k * fake.shape[0]))
    recall = float((d_fr < r_fake[:, None]).any(axis=0).mean())
    coverage = float((d_fr.min(axis=0) < r_real).mean())
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def score(gen, val, fit, seed: int) -> dict:
    auc = rf_auc(val, gen, seed=seed, n_estimators=200)["mean"]
    zr, zg = pooled_pca(val.X, gen.X, n_pcs=30, seed=seed)
    index = NearestTraining(fit.X, seed=seed)  # one state PCA for both state metrics
    authentic = authenticity(gen, fit, val, seed=seed, index=index)
    return {"rf_auc": auc, "dcr": dcr_ratio(gen, fit, val),
            "dcr_pca": dcr(gen, fit, val, seed=seed, index=index, space="pca")["ratio"],
            "authenticity_pca": authentic["generated"],
            "authenticity_pca_test": authentic["test"], **prdc(zr, zg)}


def preprocess_config(name: str, n_top_genes: int | None = 2000) -> lshgan.PreprocessConfig:
    """The library's automatic thresholds (from the detected kind of data), 2000 HVG
    (``n_top_genes=None``: every gene that passes the filters, as ``lshgan run``)."""
    return lshgan.PreprocessConfig(n_top_genes=n_top_genes)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=[],
                   help="names in ../shared/data or .h5ad paths (none: only --compare)")
    p.add_argument("--variants", nargs="+", default=["default"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--references", action="store_true", help="also score copy and gaussian")
    p.add_argument("--n-top-genes", type=int, default=2000,
                   help="highly variable genes kept (0: every gene that passes the filters)")
    p.add_argument("--val-seed", type=int, default=1,
                   help="seed of the fit/validation split of the training cells (another split: "
                        "another draw of the validation noise)")
    p.add_argument("--folds", type=int, default=0,
                   help="K >= 2: K-fold cross-validation of the training cells instead of one "
                        "split (every training cell a validation cell once; each fold a draw, "
                        "recorded as val_seed 'VAL_SEED:FOLD/K')")
    p.add_argument("--out", required=True)
    p.add_argument("--compare", metavar="BASELINE",
                   help="pair each variant with this one on the same draws and summarise")
    args = p.parse_args(argv)
    if not args.datasets and not args.compare:
        p.error("give --datasets to run, --compare to summarise, or both")
    torch.set_num_threads(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(out.read_text()) if out.exists() else []
    tkeys = {f.name for f in fields(TrainConfig)} | {"steps"}
    for ds in args.datasets:
        path = SHARED / f"{ds}.h5ad" if (SHARED / f"{ds}.h5ad").exists() else Path(ds)
        adata = lshgan.read_dataset(str(path), label_key="cell_type")
        pp, _ = lshgan.preprocess(adata, preprocess_config(path.stem, args.n_top_genes or None))
        train, _test = lshgan.stratified_split(pp, label_key="cell_type", seed=0)
        if args.folds >= 2:
            draws = [(f"{args.val_seed}:{i}/{args.folds}", s.fit, s.val) for i, s in enumerate(
                ValidationSplit.folds(train, args.folds, label_key="cell_type", seed=args.val_seed))]
        else:
            draws = [(args.val_seed, *lshgan.stratified_split(train, label_key="cell_type",
                                                              seed=args.val_seed))]
        genes = {"n_genes": int(pp.n_vars)}
        for (val_seed, fit, val), seed in itertools.product(draws, args.seeds):
            types = list(val.obs["cell_type"].astype(str))
            print(f"{path.stem} {val_seed} seed {seed}: fit {fit.shape}, validation {val.shape}",
                  flush=True)
            if args.references:
                for ref in ("copy", "gaussian"):
                    gen = REFERENCES[ref]().fit(fit, label_key="cell_type").generate(
                        val.n_obs, cell_type=types, seed=seed)
                    r = {"dataset": path.stem, "variant": ref, "seed": seed, "val_seed": val_seed,
                         **genes, **score(gen, val, fit, seed)}
                    rows.append(r)
                    print(json.dumps(r), flush=True)
            for spec in args.variants:
                name, over = parse_variant(spec)
                tover = {k: v for k, v in over.items() if k in tkeys}
                mover = {k: v for k, v in over.items() if k not in tkeys}
                if "steps" in tover:
                    per_epoch = max(1, fit.n_obs // tover.get("batch_size", 32))
                    tover["epochs"] = max(1, int(np.ceil(tover.pop("steps") / per_epoch)))
                    tover.setdefault("max_steps", None)  # steps= is the budget, uncapped
                t0 = time.time()
                model = lshgan.LSHGAN(fit, label_key="cell_type", **mover)
                model.train(progress=False, seed=seed, **tover)
                gen = model.generate(val.n_obs, cell_type=types if model.config.conditional else None,
                                     seed=seed)
                r = {"dataset": path.stem, "variant": name, "spec": spec, "seed": seed,
                     "val_seed": val_seed, **genes,
                     "train_s": round(time.time() - t0, 1), "n_latent": model.config.n_latent,
                     **score(gen, val, fit, seed)}
                rows.append(r)
                print(json.dumps(r), flush=True)
                out.write_text(json.dumps(rows, indent=1))
        out.write_text(json.dumps(rows, indent=1))
    if args.compare:
        if not rows:
            p.error(f"{out}: no rows to compare")
        compare(rows, args.compare, out)
    return 0


METRIC_NAMES = {"rf_auc": "RF-AUC (lower is better)",
                "authenticity_pca": "authenticity (validation cells' share is the target)"}


def compare(rows: list[dict], baseline: str, out: Path) -> None:
    """Paired differences against ``baseline``: printed, ``<out>_compare.md`` and ``.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lshgan.validation import PAIR_KEYS, paired_differences

    table = paired_differences(rows, baseline, tuple(METRIC_NAMES))
    lines = [f"# Variants against `{baseline}` ({out.name})", "",
             f"Pairs: the same {', '.join(PAIR_KEYS)}; difference = variant - {baseline}, "
             "mean over the pairs with its 95% Student-t interval.", "",
             "| variant | metric | pairs (datasets) | " + baseline + " | variant | difference "
             "[95% interval] | pairs lower |", "|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.variant} | {r.metric} | {r.n} ({r.datasets}) | {r.baseline:.3f} | "
                     f"{r.value:.3f} | {r.diff:+.3f} [{r.low:+.3f}, {r.high:+.3f}] | "
                     f"{r.n_lower} of {r.n} |")
    text = "\n".join(lines) + "\n"
    print(text)
    stem = out.with_suffix("")
    Path(f"{stem}_compare.md").write_text(text)
    fig, axes = plt.subplots(1, len(METRIC_NAMES), figsize=(5 * len(METRIC_NAMES), 0.6 + 0.5 * max(
        1, table["variant"].nunique())), squeeze=False)
    for ax, metric in zip(axes[0], METRIC_NAMES):
        part = table[table["metric"] == metric].reset_index(drop=True)
        y = np.arange(len(part))
        ax.errorbar(part["diff"], y, xerr=[part["diff"] - part["low"], part["high"] - part["diff"]],
                    fmt="o", color="black", capsize=3)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(y, [f"{v} (n={n})" for v, n in zip(part["variant"], part["n"])])
        ax.set_xlabel(f"difference from {baseline}")
        ax.set_title(METRIC_NAMES[metric], fontsize=9)
    fig.tight_layout()
    fig.savefig(f"{stem}_compare.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
