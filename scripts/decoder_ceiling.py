"""How realistic can the latent model be? Decode the training cells' own states (issue 12).

With ``space="latent"`` the GAN generates cell states and a fitted decoder turns them into
genes.  A generator that reproduced the training cells' states exactly (a perfect, if
memorising, GAN) would give the decoder's *ceiling*: this script measures it on validation
splits carved from the training cells, never the test cells.  For each dataset: the
automatic preprocessing with 2000 highly variable genes (``--n-top-genes 0``: every gene
that passes the filters, as ``lshgan run``), the stratified 80/20 train/test split (seed
0), then a stratified 80/20 fit/validation split of the training cells (``--val-seeds``).
Scored against the validation cells (RF-AUC as everywhere, 200 trees; DCR on genes):

* ``copy``: a random fit cell of the same type for each validation cell;
* ``decoded``: the same fit cells' own latent states through the default model's decoder
  (the model built as training builds it, with its automatic settings; no GAN training);
* ``lshgan`` (``--gan``): the default model trained on the fit cells.

The models here keep the logistic detection alone (``detection_neighbors=0``), as when the
reports were made: at a training cell's own state local detection would count the cell
itself among its neighbours; ``--knn-detection`` scores it with the cell left out.

When ``decoded`` is as far above ``copy`` as ``lshgan`` is, the decoder is the limit, not
the GAN.  ``--ablations`` says which part of the decoding gives the cells away, with the
same states and the same random draws as ``decoded``:

* ``real_zeros``: the copied cells' own zero pattern, decoded levels where they are non-zero;
* ``real_levels``: the decoded zero pattern, the copied cells' own levels where both are
  non-zero (decoded levels where only the decoder detects the gene);
* ``counts`` (count data): the count decoder's sample at the same states, normalised and
  logged as the training cells were (``log2(1 + counts / library * target_sum)``).

``--knn-detection K`` tries a local zero pattern: each gene's detection probability is the
share of the ``K`` nearest training states (the cell itself left out) that detect it,
shrunk towards the decoder's logistic with a weight of 2 cells; the levels stay the
decoder's.  Scored at the training states (``knn_detection``) and, with ``--gan``, at the
GAN's states (``lshgan_knn_detection``, beside ``lshgan_redraw``: the same states and
random draws through the default decoder, the paired reference; it equals ``lshgan`` when
generation ran in one batch).

    python scripts/decoder_ceiling.py --datasets yan pollen --val-seeds 1 2 3 --gan \\
        --out reports/validation/decoder_ceiling.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import torch

import lshgan
from lshgan.metrics import dcr_ratio, rf_auc

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def decode_fit_states(model: lshgan.LSHGAN, rows: np.ndarray, obs: pd.DataFrame, seed: int) -> ad.AnnData:
    """The decoder applied to the latent states of training cells ``rows``.  An untrained
    ``model`` is built (PCA, LSH subsample, decoders) as :meth:`LSHGAN.train` builds it with
    ``seed``, without the GAN; a model trained with ``seed`` already holds the same."""
    if model._decoder is None:
        model._build(seed, torch.device("cpu"))
    dec = model._decoder
    states = torch.as_tensor(model._real[rows])
    groups = torch.as_tensor(model._codes[rows]) if dec.n_groups > 1 else None
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        X = dec(states, groups).numpy()
    return ad.AnnData(X=X, obs=obs.copy(), var=pd.DataFrame(index=pd.Index(model.var_names)))


def hurdle_draws(model: lshgan.LSHGAN, states: torch.Tensor, groups, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The random draws of the model's hurdle decoder at ``states`` with ``seed``, in the
    order of ``HurdleDecoder.forward`` (so ``u < p`` and ``level`` are what it samples):
    detection probabilities ``p``, their uniforms ``u`` and the floored levels."""
    dec = model._decoder
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        p = torch.sigmoid(dec.detection_logits(states, groups))
        u = torch.rand_like(p)
        level = torch.maximum(dec.mean_level(states, groups) + dec.sigma * torch.randn_like(p),
                              dec.floor)
    return p.numpy(), u.numpy(), level.numpy()


def decoder_ablations(model: lshgan.LSHGAN, rows: np.ndarray, real, obs: pd.DataFrame,
                      seed: int, target_sum: float | None) -> dict[str, ad.AnnData]:
    """The ``--ablations`` sets of training cells ``rows`` (``real``: their ``.X``): the
    hurdle decoder's zero pattern and levels drawn as :func:`decode_fit_states` draws them
    with ``seed``, each swapped in turn for the real cells' own; with ``target_sum`` and a
    count decoder, also its counts normalised and logged."""
    if model._decoder is None:
        model._build(seed, torch.device("cpu"))
    states = torch.as_tensor(model._real[rows])
    groups = torch.as_tensor(model._codes[rows].astype(np.int64)) if model._decoder.n_groups > 1 else None
    p, u, level = hurdle_draws(model, states, groups, seed)
    detected = u < p
    X = real.toarray() if hasattr(real, "toarray") else np.asarray(real, dtype=np.float32)
    var = pd.DataFrame(index=pd.Index(model.var_names))
    sets = {"real_zeros": np.where(X > 0, level, 0.0),
            "real_levels": np.where(detected, np.where(X > 0, X, level), 0.0)}
    if model._counts is not None and target_sum is not None:
        codes = model._codes[rows].astype(np.int64) if model._counts.n_groups > 1 else None
        counts, library = model._counts.sample(model._real[rows], codes, np.random.default_rng(seed))
        sets["counts"] = np.log2(1.0 + counts / library[:, None] * target_sum)
    return {name: ad.AnnData(X=M.astype(np.float32), obs=obs.copy(), var=var.copy())
            for name, M in sets.items()}


class _Recorder(torch.nn.Module):
    """Wraps a decoder and keeps the cell states (and type codes) it decodes."""

    def __init__(self, decoder: torch.nn.Module):
        super().__init__()
        self.decoder, self.seen = decoder, []

    def forward(self, latent, groups=None):
        self.seen.append((latent.detach().cpu().clone(), None if groups is None else groups.cpu().clone()))
        return self.decoder(latent, groups)


def generated_states(model: lshgan.LSHGAN, types: list[str], seed: int):
    """``model.generate(len(types), cell_type=types, seed=seed)`` and the cell states (and
    type codes, or None) its decoder turned into those cells."""
    decoder, model._decoder = model._decoder, _Recorder(model._decoder)
    try:
        cells = model.generate(len(types), cell_type=types, seed=seed)
        seen = model._decoder.seen
    finally:
        model._decoder = decoder
    groups = None if seen[0][1] is None else torch.cat([g for _, g in seen])
    return cells, torch.cat([s for s, _ in seen]), groups


def knn_detection_cells(model: lshgan.LSHGAN, states: torch.Tensor, groups, detected: np.ndarray,
                        k: int, seed: int, leave_out_self: bool) -> np.ndarray:
    """Cells decoded at ``states`` with each gene's detection probability taken from the
    ``k`` nearest training states (``detected``: the training cells' non-zero pattern),
    shrunk towards the decoder's logistic with a weight of 2 cells."""
    from sklearn.neighbors import NearestNeighbors

    p, u, level = hurdle_draws(model, states, groups, seed)
    extra = int(leave_out_self)
    _, idx = NearestNeighbors(n_neighbors=k + extra).fit(model._real).kneighbors(states.numpy())
    local = (detected[idx[:, extra:]].sum(axis=1) + 2.0 * p) / (k + 2.0)
    return np.where(u < local, level, 0.0).astype(np.float32)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", required=True)
    p.add_argument("--val-seeds", nargs="+", type=int, default=[1])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--n-top-genes", type=int, default=2000)
    p.add_argument("--gan", action="store_true", help="also train and score the default model")
    p.add_argument("--ablations", action="store_true",
                   help="also score the decoding with the real zero pattern, with the real levels, and as counts")
    p.add_argument("--knn-detection", type=int, default=0, metavar="K",
                   help="also score detection probabilities from the K nearest training states")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(out.read_text()) if out.exists() else []
    for ds in args.datasets:
        path = SHARED / f"{ds}.h5ad" if (SHARED / f"{ds}.h5ad").exists() else Path(ds)
        adata = lshgan.read_dataset(str(path), label_key="cell_type")
        pp, _ = lshgan.preprocess(adata, lshgan.PreprocessConfig(n_top_genes=args.n_top_genes or None))
        train, _test = lshgan.stratified_split(pp, label_key="cell_type", seed=0)
        for vs in args.val_seeds:
            fit, val = lshgan.stratified_split(train, label_key="cell_type", seed=vs)
            types = val.obs["cell_type"].astype(str).to_numpy()
            fit_types = fit.obs["cell_type"].astype(str).to_numpy()
            print(f"{path.stem} validation split {vs}: fit {fit.shape}, validation {val.shape}", flush=True)
            if args.knn_detection:  # the fit cells' non-zero pattern, once per split
                detected = ((fit.X.toarray() if hasattr(fit.X, "toarray") else np.asarray(fit.X)) > 0
                            ).astype(np.float32)
            for seed in args.seeds:
                rng = np.random.default_rng(seed)
                pick = np.array([rng.choice(np.flatnonzero(fit_types == t)) for t in types])
                # the logistic detection alone (the reports' "decoded" and "lshgan"), also on
                # sets where the default turns local detection on: --knn-detection scores that
                model = lshgan.LSHGAN(fit, label_key="cell_type", detection_neighbors=0)
                if args.gan:  # training builds the decoder that "decoded" uses: built once
                    model.train(progress=False, seed=seed)
                sets = {"copy": ad.AnnData(X=fit.X[pick], obs=val.obs.copy(), var=fit.var.copy()),
                        "decoded": decode_fit_states(model, pick, val.obs, seed)}
                if args.ablations:
                    target = pp.uns["lshgan_preprocess"].get("target_sum")  # text: not normalised here
                    sets.update(decoder_ablations(model, pick, fit.X[pick], val.obs, seed,
                                                  target if isinstance(target, (int, float)) else None))
                if args.gan:
                    sets["lshgan"], states, groups = generated_states(model, list(types), seed)
                if args.knn_detection:
                    fit_groups = (torch.as_tensor(model._codes[pick].astype(np.int64))
                                  if model._decoder.n_groups > 1 else None)
                    runs = [("knn_detection", torch.as_tensor(model._real[pick]), fit_groups, True)]
                    if args.gan:
                        runs.append(("lshgan_knn_detection", states, groups, False))
                        with torch.no_grad(), torch.random.fork_rng(devices=[]):
                            torch.manual_seed(seed)
                            redraw = model._decoder(states, groups).numpy()
                        sets["lshgan_redraw"] = ad.AnnData(X=redraw, obs=sets["lshgan"].obs.copy(), var=fit.var.copy())
                    for name, st, gr, loo in runs:
                        M = knn_detection_cells(model, st, gr, detected, args.knn_detection, seed, loo)
                        obs = val.obs if loo else sets["lshgan"].obs
                        sets[name] = ad.AnnData(X=M, obs=obs.copy(), var=fit.var.copy())
                for name, gen in sets.items():
                    r = {"dataset": path.stem, "val_seed": vs, "seed": seed, "generator": name,
                         "n_genes": int(pp.n_vars), "n_latent": model.config.n_latent,
                         "rf_auc": rf_auc(val, gen, seed=seed, n_estimators=200)["mean"],
                         "dcr": dcr_ratio(gen, fit, val)}
                    rows.append(r)
                    print(json.dumps(r), flush=True)
                out.write_text(json.dumps(rows, indent=1))
    frame = pd.DataFrame(rows)
    print(frame.groupby(["dataset", "n_genes", "generator"])[["rf_auc", "dcr"]].mean().round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
