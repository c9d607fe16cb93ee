"""Robustness (issue 6): every bad input and fault of the issue's list, through the command
line, the Python API and the DVC stage scripts; locks, checkpoints, divergence, raw data
and reproducibility.

Each bad input must get one clear message naming the input and the problem: the CLI and
the stage scripts print one ``error: ...`` line (no traceback) and exit 2; the API raises
a specific :class:`~lshgan.errors.LSHGANError` subclass; nothing is left where the output
would have gone.  Usable but suspicious inputs (a gene zero in every cell, a cell type with
one cell) get one ``warning: ...`` line and train.

Fast tests run in-process on tiny synthetic data (40 cells x 20 genes, 8-unit networks,
1-6 epochs).  Slow tests (``-m slow``) use real processes: a training run killed with
SIGKILL and resumed, two trainings and two ``dvc repro`` on one output at once, MLflow runs
written by several processes at once.  The served model's stress tests are in
``test_stress.py``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from lshgan.cli import main
from lshgan.datasets import synthetic_log_expression
from lshgan.errors import (CheckpointError, DataWarning, GeneMismatchError, InputDataError,
                           LSHGANError, OutputBusyError, ParameterError)
from lshgan.io import check_training_cells, lock_path, output_lock, read_dataset
from lshgan.workflow import checkpoint_paths

REPO = Path(__file__).resolve().parents[1]
TINY = ["--quiet", "--g-hidden", "8", "--d-hidden", "8", "--noise-dim", "8", "--batch-size", "16",
        "--n-critic", "1", "--device", "cpu"]
#: Tally of what this file tries (docs/failures.md reports the counts of a full run).
TRIED: dict[str, int] = {}


# ---------------------------------------------------------------------------- helpers
def base_cells(n_cells: int = 40, n_genes: int = 20, seed: int = 0) -> ad.AnnData:
    a = synthetic_log_expression(n_cells, n_genes, 2, seed=seed)
    del a.layers["counts"]
    return a


def _h5ad(a: ad.AnnData, path: Path) -> Path:
    a.write_h5ad(path)
    return path


def _with_X(change):
    def build(d: Path, name: str) -> Path:
        a = base_cells()
        a.X = np.array(a.X, dtype=np.float32)
        change(a)
        return _h5ad(a, d / f"{name}.h5ad")
    return build


def _set(i, j, v):
    def change(a):
        a.X[i, j] = v
    return change


def _truncated(d: Path, name: str) -> Path:
    good = _h5ad(base_cells(), d / "whole.h5ad").read_bytes()
    (d / f"{name}.h5ad").write_bytes(good[: len(good) // 2])
    return d / f"{name}.h5ad"


def _text(content: str, suffix: str = ".h5ad"):
    def build(d: Path, name: str) -> Path:
        (d / f"{name}{suffix}").write_text(content)
        return d / f"{name}{suffix}"
    return build


def _plain_hdf5(d: Path, name: str) -> Path:
    import h5py

    with h5py.File(d / f"{name}.h5ad", "w") as f:
        f["counts"] = np.arange(6).reshape(2, 3)
    return d / f"{name}.h5ad"


def _genes(names):
    def build(d: Path, name: str) -> Path:
        a = base_cells(n_genes=len(names))
        a.var_names = names
        return _h5ad(a, d / f"{name}.h5ad")
    return build


def _no_label(d: Path, name: str) -> Path:
    a = base_cells()
    del a.obs["cell_type"]
    a.obs["batch"] = "b1"
    return _h5ad(a, d / f"{name}.h5ad")


def _missing_labels(d: Path, name: str) -> Path:
    a = base_cells()
    labels = a.obs["cell_type"].astype(object)
    labels.iloc[2] = np.nan
    a.obs["cell_type"] = labels
    return _h5ad(a, d / f"{name}.h5ad")


def _subset(n_cells):
    return lambda d, name: _h5ad(base_cells()[:n_cells].copy(), d / f"{name}.h5ad")


def _missing(d: Path, name: str) -> Path:
    return d / f"{name}.h5ad"


#: Inputs every reader refuses: (id, builder, words the message must hold).
BAD_FILES = [
    ("missing-file", _missing, ["file not found"]),
    ("truncated-h5ad", _truncated, ["truncated"]),
    ("not-hdf5", _text("cell,g1\nc1,1\n"), ["not an HDF5 file"]),
    ("hdf5-not-anndata", _plain_hdf5, ["not written by anndata"]),
    ("csv-text-in-numbers", _text("cell,g1,g2\nc1,1,2\nc2,x,3\n", ".csv"),
     ["non-numeric values", "'g1'", "'c2'"]),
    ("csv-duplicated-header", _text("cell,g1,g1\nc1,1,2\nc2,1,4\n", ".csv"), ["duplicated gene names", "g1"]),
    ("csv-missing-header", _text("cell,g1,\nc1,1,2\nc2,1,4\n", ".csv"), ["missing gene names"]),
    ("csv-header-only", _text("cell,g1,g2\n", ".csv"), ["empty", "0 cells"]),
    ("nan", _with_X(_set(0, 0, np.nan)), ["NaN or infinite"]),
    ("inf", _with_X(_set(1, 2, np.inf)), ["NaN or infinite"]),
    ("negative", _with_X(_set(0, 1, -1.0)), ["negative values"]),
    ("empty-matrix", _subset(0), ["empty", "0 cells"]),
    ("all-zero", _with_X(lambda a: a.X.fill(0)), ["every value is zero"]),
    ("duplicated-genes", _genes(["A", "B", "A"] + [f"g{i}" for i in range(17)]),
     ["duplicated gene names", "A"]),
    ("missing-gene-name", _genes(["", *[f"g{i}" for i in range(19)]]), ["missing gene names"]),
    ("no-label-column", _no_label, ["label column 'cell_type' not found", "batch"]),
    ("missing-labels", _missing_labels, ["label column 'cell_type' has 1 missing values"]),
]

#: Training cells the trainers refuse (the readers accept them: preprocessing fixes them).
BAD_TRAINING = [
    ("all-zero-cell", _with_X(_set(3, slice(None), 0.0)), ["1 cells with no expressed gene", "cell3"]),
    ("fewer-cells-than-k", _subset(4), ["4 cells", "k=5"]),
]

#: Usable training cells that get a warning: (id, builder, words).
SUSPICIOUS_TRAINING = [
    ("all-zero-gene", _with_X(_set(slice(None), 3, 0.0)), ["1 genes are zero in every cell", "gene3"]),
    ("single-cell-type", None, ["cell types have a single cell", "lonely"]),
]


def _single_cell_type(d: Path, name: str) -> Path:
    a = base_cells()
    types = a.obs["cell_type"].astype(str).to_numpy().copy()
    types[5] = "lonely"
    a.obs["cell_type"] = pd.Categorical(types)
    return _h5ad(a, d / f"{name}.h5ad")


SUSPICIOUS_TRAINING[1] = ("single-cell-type", _single_cell_type, SUSPICIOUS_TRAINING[1][2])


def _count(kind: str) -> None:
    TRIED[kind] = TRIED.get(kind, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _tally():
    """Print what was tried (run with ``-s``; docs/failures.md quotes a full run)."""
    yield
    if TRIED:
        print("\nrobustness tally:", json.dumps(dict(sorted(TRIED.items())), indent=1))


@pytest.fixture
def cli(capsys):
    """Run ``lshgan`` in-process; return (exit code, stdout, stderr)."""

    def run(*args):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            code = exc.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def assert_one_error_line(code, err, *words):
    """Exit 2 and one ``error:`` line (``info:`` lines of the steps before it aside)."""
    lines = [line for line in err.strip().splitlines() if line.strip() and not line.startswith("info: ")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for word in words:
        assert str(word) in lines[0], (word, lines[0])


def assert_nothing_written(folder: Path, before: set[str]):
    """No new file or folder, and no temporary or lock file, in ``folder``."""
    assert {p.name for p in folder.iterdir()} == before


def _load_stage(name: str):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_stage(name: str, *argv, capsys=None):
    from lshgan.mlops import pipeline

    code = pipeline.run_stage(_load_stage(name).main, [str(a) for a in argv])
    err = capsys.readouterr().err if capsys is not None else ""
    return code, err


STAGE_TINY = ["--params", REPO / "params.yaml", "-S", "epochs=1", "-S", "g_hidden=[8]",
              "-S", "d_hidden=[8]", "-S", "noise_dim=8", "-S", "n_critic=1", "-S", "batch_size=16",
              "-S", "device=cpu"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny conditional model on ``base_cells()`` (genes gene0..gene19, types type0/type1)."""
    from lshgan import LSHGAN

    path = tmp_path_factory.mktemp("model") / "m"
    model = LSHGAN(base_cells(), label_key="cell_type", g_hidden=(8,), d_hidden=(8,), noise_dim=8)
    model.train(epochs=1, batch_size=16, n_critic=1, progress=False)
    model.save(path)
    return path


# ---------------------------------------------------------------------------- bad input files
@pytest.mark.parametrize("case, build, words", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_files_api(tmp_path, case, build, words):
    path = build(tmp_path, case)
    with pytest.raises(InputDataError) as info:
        read_dataset(path, label_key="cell_type")
    for word in [str(path), *words]:
        assert word in str(info.value)
    _count("bad input x API")


@pytest.mark.parametrize("command", ["preprocess", "train"])
@pytest.mark.parametrize("case, build, words", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_files_cli(tmp_path, cli, command, case, build, words):
    path = build(tmp_path, case)
    out = tmp_path / "out"
    out.mkdir()
    args = ([command, path, "--label-key", "cell_type", "-o", out / "result.h5ad"] if command == "preprocess"
            else [command, path, "--label-key", "cell_type", "--epochs", "1", "-o", out / "model", *TINY])
    code, _, err = cli(*args)
    assert_one_error_line(code, err, path, *words)
    assert_nothing_written(out, set())
    _count("bad input x CLI")


@pytest.mark.parametrize("case, build, words", BAD_FILES + BAD_TRAINING,
                         ids=[c[0] for c in BAD_FILES + BAD_TRAINING])
def test_bad_files_stage_scripts(tmp_path, capsys, case, build, words):
    path = build(tmp_path, case)
    out = tmp_path / "out"
    out.mkdir()
    code, err = run_stage("train", path, out / "model", "--plots", out / "plots",
                          "--label-key", "cell_type", *STAGE_TINY, capsys=capsys)
    assert_one_error_line(code, err, path, *words)
    assert_nothing_written(out, set())
    _count("bad input x DVC stage")


@pytest.mark.parametrize("case, build, words", BAD_TRAINING, ids=[c[0] for c in BAD_TRAINING])
def test_bad_training_cells(tmp_path, cli, case, build, words):
    path = build(tmp_path, case)
    adata = read_dataset(path, label_key="cell_type")  # readable: preprocessing would fix it
    with pytest.raises(InputDataError, match=words[0]):
        check_training_cells(adata, name=str(path), label_key="cell_type", k=5)
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = cli("train", path, "--label-key", "cell_type", "--epochs", "1", "-o", out / "m", *TINY)
    assert_one_error_line(code, err, path, *words)
    assert_nothing_written(out, set())
    _count("bad input x API")
    _count("bad input x CLI")


@pytest.mark.parametrize("case, build, words", SUSPICIOUS_TRAINING, ids=[c[0] for c in SUSPICIOUS_TRAINING])
def test_suspicious_training_cells_warn_once_and_train(tmp_path, cli, case, build, words):
    path = build(tmp_path, case)
    with pytest.warns(DataWarning, match=words[0]):
        check_training_cells(read_dataset(path, label_key="cell_type"), name=str(path),
                             label_key="cell_type", k=5)
    code, _, err = cli("train", path, "--label-key", "cell_type", "--epochs", "1", "-o",
                       tmp_path / "m", *TINY)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {path}: "), err
    for word in words:
        assert word in warnings[0]
    assert (tmp_path / "m" / "generator.pt").is_file()
    _count("suspicious input (warning) x CLI")


def test_preprocess_drops_all_zero_cells_and_genes(tmp_path, cli):
    a = base_cells(n_cells=40, n_genes=20)
    a.X = np.array(a.X)
    a.X[3, :] = 0
    a.X[:, 4] = 0
    path = _h5ad(a, tmp_path / "raw.h5ad")
    code, _, err = cli("preprocess", path, "-o", tmp_path / "pp.h5ad", "--min-genes", "0",
                       "--min-count", "0", "--min-cells-frac", "0")
    assert code == 0, err
    pp = ad.read_h5ad(tmp_path / "pp.h5ad")
    assert pp.shape == (39, 19) and "cell3" not in pp.obs_names and "gene4" not in pp.var_names
    _count("suspicious input (warning) x CLI")


# ---------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("args, words", [
    (["--k", "0"], ["k must be >= 1", "0"]),
    (["--k", "-3"], ["k must be >= 1", "-3"]),
    (["--t", "0"], ["t must be >= 1"]),
    (["--t", "-1"], ["t must be >= 1"]),
    (["--epochs", "0"], ["epochs must be >= 1"]),
    (["--epochs", "-5"], ["epochs must be >= 1"]),
    (["--lr", "0"], ["lr_g must be > 0"]),
    (["--lr=-1e-3"], ["lr_g must be > 0"]),
    (["--lr", "fast"], ["argument --lr: invalid float value: 'fast'", "--help"]),
    (["--g-hidden", "0"], ["argument --g-hidden: widths must be positive"]),
    (["--lr", "nan"], ["lr_g must be finite"]),
    (["--n-critic", "0"], ["n_critic must be >= 1"]),
    (["--batch-size", "1"], ["batch_size must be >= 2"]),
    (["--checkpoint-every", "-1"], ["--checkpoint-every must be >= 0"]),
    (["--noise-dim", "0"], ["noise_dim must be >= 1"]),
    (["--device", "tpu"], ["device must be"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) and v[0].startswith("--") else "")
def test_train_parameters_out_of_range(tmp_path, cli, args, words):
    data = _h5ad(base_cells(), tmp_path / "cells.h5ad")
    code, _, err = cli("train", data, "-o", tmp_path / "m", *TINY, "--epochs", "1", *args)
    assert_one_error_line(code, err, *words)
    assert not (tmp_path / "m").exists() and not lock_path(tmp_path / "m").exists()
    _count("bad parameter x CLI")


OTHER_PARAMETERS = [
    (["generate", "{model}", "-n", "0", "-o", "{out}"], ["--n-cells must be >= 1, got 0"]),
    (["generate", "{model}", "-n", "-3", "-o", "{out}"], ["--n-cells must be >= 1, got -3"]),
    (["generate", "{model}", "-n", "3", "--cell-type", "neuron", "-o", "{out}"],
     ["unknown cell_type 'neuron'", "type0, type1"]),
    (["generate", "{tmp}/no-model", "-n", "3", "-o", "{out}"], ["not a saved lshgan model"]),
    (["sample", "--model", "{model}", "-n", "0", "-o", "{out}"], ["--n-cells must be >= 1, got 0"]),
    (["sample", "--model", "{model}", "-n", "3", "-o", "{tmp}/cells.csv"],
     ["cells.csv: this output is written as .h5ad; name it *.h5ad"]),
    (["augment", "--model", "{model}", "--input", "{data}", "--ratio", "0", "-o", "{out}"],
     ["ratio must be a positive number"]),
    (["augment", "--model", "{model}", "--input", "{data}", "--ratio", "-1", "-o", "{out}"],
     ["ratio must be a positive number"]),
    (["augment", "--model", "{model}", "--input", "{data}", "--ratio", "inf", "-o", "{out}"],
     ["ratio must be a positive number"]),
    (["augment", "--model", "{model}", "--input", "{data}", "--ratio", "nan", "-o", "{out}"],
     ["ratio must be a positive number"]),
    (["split", "{data}", "--test-size", "0", "--train", "{out}", "--test", "{tmp}/te.h5ad"],
     ["test_size must be in (0, 1)"]),
    (["split", "{data}", "--test-size", "1.5", "--train", "{out}", "--test", "{tmp}/te.h5ad"],
     ["test_size must be in (0, 1)"]),
    (["split", "{data}", "--train", "{out}", "--test", "{out}"], ["same file"]),
    (["preprocess", "{data}", "--min-genes", "-1", "-o", "{out}"], ["min_genes must be >= 0"]),
    (["preprocess", "{data}", "--min-cells-frac", "2", "-o", "{out}"], ["min_cells_frac must be in [0, 1]"]),
    (["preprocess", "{data}", "--n-top-genes", "1", "-o", "{out}"], ["n_top_genes must be >= 2"]),
]


@pytest.mark.parametrize("command, words", OTHER_PARAMETERS,
                         ids=[" ".join(a for a in c if not a.startswith("{")) for c, _ in OTHER_PARAMETERS])
def test_other_parameters_out_of_range(tmp_path, cli, model_dir, command, words):
    data = _h5ad(base_cells(), tmp_path / "cells.h5ad")
    fmt = {"model": model_dir, "data": data, "out": tmp_path / "out.h5ad", "tmp": tmp_path}
    before = {p.name for p in tmp_path.iterdir()}
    code, _, err = cli(*[a.format(**fmt) for a in command])
    assert_one_error_line(code, err, *words)
    assert_nothing_written(tmp_path, before)
    _count("bad parameter x CLI")


def test_parameters_out_of_range_api(model_dir):
    from lshgan import LSHGAN
    from lshgan.mlops.augment import augment
    from lshgan.module.training import TrainConfig

    cells = base_cells()
    model = LSHGAN.load(model_dir)
    cases = [
        (lambda: LSHGAN(cells, k=-1), "k must be >= 1"),
        (lambda: LSHGAN(cells, t=-2), "t must be >= 1"),
        (lambda: TrainConfig(epochs=-1), "epochs must be >= 1"),
        (lambda: TrainConfig(lr_g=0.0), "lr_g must be > 0"),
        (lambda: model.generate(0), "n_cells must be >= 1"),
        (lambda: model.generate(2.5), "n_cells must be an integer"),
        (lambda: augment(model_dir, cells, ratio=0), "ratio must be a positive number"),
        (lambda: augment(model_dir, cells, ratio=-0.5), "ratio must be a positive number"),
        (lambda: augment(model_dir, cells, ratio=float("nan")), "ratio must be a positive number"),
    ]
    for call, words in cases:
        with pytest.raises(ParameterError, match=words):
            call()
        _count("bad parameter x API")


def test_split_that_cannot_stratify_is_a_user_error(tmp_path, cli):
    a = base_cells(n_cells=4)
    a.obs["cell_type"] = pd.Categorical(["a", "a", "b", "b"])
    data = _h5ad(a, tmp_path / "four.h5ad")
    code, _, err = cli("split", data, "--label-key", "cell_type", "--train", tmp_path / "tr.h5ad",
                       "--test", tmp_path / "te.h5ad")
    assert_one_error_line(code, err, data, "cannot split 4 cells")
    assert_nothing_written(tmp_path, {"four.h5ad"})
    _count("bad input x CLI")


def _corrupt_weights(m: Path) -> None:
    (m / "generator.pt").write_bytes(b"not a torch file")


def _truncate_weights(m: Path) -> None:
    data = (m / "generator.pt").read_bytes()
    (m / "generator.pt").write_bytes(data[: len(data) // 2])


def _edit_config(change):
    def edit(m: Path) -> None:
        cfg = json.loads((m / "config.json").read_text())
        change(cfg)
        (m / "config.json").write_text(json.dumps(cfg))
    return edit


@pytest.mark.parametrize("damage, words", [
    (_corrupt_weights, ["corrupt"]),
    (_truncate_weights, ["corrupt"]),
    (lambda m: (m / "config.json").write_text("{not json"), ["corrupt"]),
    (lambda m: (m / "var_names.json").unlink(), ["var_names.json missing"]),
    (_edit_config(lambda c: c["model"].update(option_from_the_future=1)), ["another lshgan version"]),
    (_edit_config(lambda c: c.pop("model")), ["another lshgan version"]),
], ids=["weights garbage", "weights truncated", "config not JSON", "genes file missing",
        "config from a newer version", "config without model section"])
def test_damaged_model_folders(tmp_path, cli, capsys, model_dir, damage, words):
    import shutil

    m = tmp_path / "m"
    shutil.copytree(model_dir, m)
    damage(m)
    before = {p.name for p in tmp_path.iterdir()}
    code, _, err = cli("generate", m, "-n", "3", "-o", tmp_path / "g.h5ad")
    assert_one_error_line(code, err, m, *words)
    code, _, err = cli("augment", "--model", m, "--input", _h5ad(base_cells(), tmp_path / "c.h5ad"),
                       "-o", tmp_path / "a.h5ad")
    assert_one_error_line(code, err, m, *words)
    (tmp_path / "c.h5ad").unlink()
    test = _h5ad(base_cells(), tmp_path / "test.h5ad")
    code, err = run_stage("generate", m, test, tmp_path / "gen.h5ad", "--params", REPO / "params.yaml",
                          capsys=capsys)
    assert_one_error_line(code, err, m, *words)
    test.unlink()
    assert_nothing_written(tmp_path, before)
    for kind in ("CLI", "CLI", "DVC stage"):
        _count(f"bad input x {kind}")


# ---------------------------------------------------------------------------- gene mismatch
def test_gene_mismatch_at_augment_evaluate_and_generate_stage(tmp_path, cli, capsys, model_dir):
    from lshgan import LSHGAN
    from lshgan.mlops.augment import augment

    other = base_cells(n_genes=25, seed=1)  # 40 cells > 1.5 x 25 genes: nothing to generate
    other_path = _h5ad(other, tmp_path / "other.h5ad")
    with pytest.raises(GeneMismatchError, match="5 unknown genes"):
        augment(model_dir, other, ratio=1.0)  # refused even when no cell would be generated
    with pytest.raises(GeneMismatchError, match="5 genes missing"):
        LSHGAN.load(model_dir, base_cells()[:, 5:].copy())
    before = {p.name for p in tmp_path.iterdir()}
    code, _, err = cli("augment", "--model", model_dir, "--input", other_path, "--ratio", "1",
                       "-o", tmp_path / "aug.h5ad")
    assert_one_error_line(code, err, other_path, "genes of the data do not match the model")
    good = _h5ad(base_cells(), tmp_path / "good.h5ad")
    before.add("good.h5ad")
    code, _, err = cli("evaluate", other_path, "--train", good, "--test", good, "-o", tmp_path / "m.json")
    assert_one_error_line(code, err, other_path, good, "5 unknown genes")
    code, err = run_stage("generate", model_dir, other_path, tmp_path / "gen.h5ad", "--label-key",
                          "cell_type", "--params", REPO / "params.yaml", capsys=capsys)
    assert_one_error_line(code, err, other_path, "genes of the data do not match the model")
    assert_nothing_written(tmp_path, before)
    for kind in ("API", "API", "CLI", "CLI", "DVC stage"):
        _count(f"bad input x {kind}")


# ---------------------------------------------------------------------------- nothing clobbered
def test_run_leaves_no_partial_folder(tmp_path, cli):
    data = _h5ad(base_cells(), tmp_path / "cells.h5ad")
    code, _, err = cli("run", data, "--label-key", "cell_type", "--out", tmp_path / "res",
                       "--min-genes", "0", "--min-count", "0", "--min-cells-frac", "0",
                       "--k", "50", *TINY, "--epochs", "1")
    assert_one_error_line(code, err, "k=50")
    assert_nothing_written(tmp_path, {"cells.h5ad"})
    _count("bad parameter x CLI")


def test_run_writes_every_output_and_the_time_of_each_stage(tmp_path, cli):
    data = _h5ad(base_cells(n_cells=60), tmp_path / "cells.h5ad")
    code, _, err = cli("run", data, "--label-key", "cell_type", "--out", tmp_path / "res",
                       "--min-genes", "0", "--min-count", "0", "--min-cells-frac", "0",
                       "--k", "2", *TINY, "--epochs", "1")
    assert code == 0, err
    res = tmp_path / "res"
    assert {"train.h5ad", "test.h5ad", "generated.h5ad", "metrics.json", "timings.json",
            "umap.png", "model"} <= {p.name for p in res.iterdir()}
    timings = json.loads((res / "timings.json").read_text())
    assert [s["stage"] for s in timings["stages"]] == ["read + preprocess", "split", "train",
                                                      "generate", "evaluate"]
    assert all(s["seconds"] >= 0 and s["peak_rss_mb"] > 0 for s in timings["stages"])
    assert timings["total_seconds"] == pytest.approx(sum(s["seconds"] for s in timings["stages"]),
                                                     abs=0.01)


def test_outputs_are_never_overwritten_without_force(tmp_path, cli, model_dir):
    out = tmp_path / "g.h5ad"
    assert cli("generate", model_dir, "-n", "5", "-o", out)[0] == 0
    before = out.read_bytes()
    code, _, err = cli("generate", model_dir, "-n", "7", "--seed", "1", "-o", out)
    assert_one_error_line(code, err, out, "already exists", "--force")
    assert out.read_bytes() == before
    assert cli("generate", model_dir, "-n", "7", "--seed", "1", "-o", out, "--force")[0] == 0
    assert ad.read_h5ad(out).n_obs == 7
    assert {p.name for p in tmp_path.iterdir()} == {"g.h5ad"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_stage_scripts_never_modify_raw_data(tmp_path, capsys, monkeypatch):
    """ingest -> preprocess -> split -> train -> generate: data/raw/ keeps its bytes and mtime."""
    monkeypatch.chdir(tmp_path)
    source = _h5ad(synthetic_log_expression(60, 30, 2, seed=3), tmp_path / "source.h5ad")
    raw = Path("data/raw/tiny.h5ad")
    assert run_stage("ingest", source, raw, "--label-key", "cell_type", capsys=capsys)[0] == 0
    assert _sha(raw) == _sha(source)  # ingest copies byte for byte
    digest, mtime = _sha(raw), raw.stat().st_mtime_ns
    raw.chmod(0o444)  # as DVC's cache may leave it: a write would fail loudly
    steps = [
        ("preprocess", raw, "data/processed/tiny.h5ad", "--label-key", "cell_type", "--params",
         REPO / "params.yaml", "-S", "min_genes=0", "-S", "min_count=0", "-S", "min_cells_frac=0"),
        ("split", "data/processed/tiny.h5ad", "data/split/train.h5ad", "data/split/test.h5ad",
         "--label-key", "cell_type", "--params", REPO / "params.yaml"),
        ("train", "data/split/train.h5ad", "models/tiny", "--plots", "reports/tiny", "--label-key",
         "cell_type", *STAGE_TINY),
        ("generate", "models/tiny", "data/split/test.h5ad", "data/generated/tiny.h5ad",
         "--label-key", "cell_type", "--params", REPO / "params.yaml"),
    ]
    for name, *argv in steps:
        code, err = run_stage(name, *argv, capsys=capsys)
        assert code == 0, (name, err)
    assert _sha(raw) == digest and raw.stat().st_mtime_ns == mtime
    assert ad.read_h5ad("data/generated/tiny.h5ad").n_obs == ad.read_h5ad("data/split/test.h5ad").n_obs
    assert not list(Path(".").rglob("*.lock")) and not list(Path(".").rglob("*.tmp*"))
    _count("fault: raw data hashed before/after the stages")


# ---------------------------------------------------------------------------- locks
_HOLDER = """
import fcntl, json, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, json.dumps({"pid": os.getpid(), "host": "testhost", "since": "now"}).encode())
print("locked", flush=True)
time.sleep(120)
"""


def _hold_lock(output: Path) -> subprocess.Popen:
    """Another process holding ``output``'s lock (plain flock: the protocol, not our code)."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(lock_path(output))],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_output_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path):
    out = tmp_path / "model"
    holder = _hold_lock(out)
    try:
        with pytest.raises(OutputBusyError, match=rf"pid {holder.pid} on testhost"):
            with output_lock(out):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_path(out).exists()  # a stale lock file: its process died without cleaning up
    with output_lock(out) as lock:
        info = json.loads(lock.read_text())
        assert info["pid"] == os.getpid()
        with output_lock(out):  # the same process may nest
            pass
    assert not lock_path(out).exists()
    with pytest.raises(RuntimeError):
        with output_lock(out):
            raise RuntimeError("crash")
    assert not lock_path(out).exists()
    _count("fault: stale lock of a killed process taken over")


def test_second_writer_is_refused_while_the_first_holds_the_output(tmp_path, cli, model_dir):
    data = _h5ad(base_cells(), tmp_path / "cells.h5ad")
    holder = _hold_lock(tmp_path / "m")
    try:
        for args in (["train", data, "-o", tmp_path / "m", "--epochs", "1", *TINY],
                     ["train", data, "-o", tmp_path / "m", "--epochs", "1", "--force", *TINY]):
            code, _, err = cli(*args)
            assert_one_error_line(code, err, tmp_path / "m", "another process", "is writing it")
            assert not (tmp_path / "m").exists()
    finally:
        holder.kill()
        holder.wait()
    _count("concurrency: second writer refused (in-process)")


# ---------------------------------------------------------------------------- checkpoints, divergence
def _inject_nan_after(monkeypatch, n_calls: int):
    """Make the discriminator loss NaN from its ``n_calls + 1``-th call on (a fault)."""
    import lshgan.module.training as training

    real = training.discriminator_loss
    calls = {"n": 0}

    def faulty(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] > n_calls else loss

    monkeypatch.setattr(training, "discriminator_loss", faulty)


def _generated(cli, model: Path, out: Path) -> np.ndarray:
    code, _, err = cli("generate", model, "-n", "30", "--seed", "5", "-o", out)
    assert code == 0, err
    return np.asarray(ad.read_h5ad(out).X)


def test_divergence_stops_keeps_the_last_good_checkpoint_and_resumes(tmp_path, cli, monkeypatch):
    data = _h5ad(base_cells(), tmp_path / "cells.h5ad")
    args = ["train", data, "--label-key", "cell_type", "--epochs", "5", "--seed", "4", *TINY]
    code, _, err = cli(*args, "-o", tmp_path / "full")
    assert code == 0, err
    expected = _generated(cli, tmp_path / "full", tmp_path / "full.h5ad")

    out = tmp_path / "m"
    ckpt, record = checkpoint_paths(out)
    with monkeypatch.context() as patch:
        _inject_nan_after(patch, 3 * 2)  # 2 discriminator steps per epoch: epoch 4 diverges
        code, _, err = cli(*args, "--checkpoint-every", "1", "-o", out)
    assert_one_error_line(code, err, "training diverged at epoch 4", "D loss nan", str(ckpt),
                          "lower the learning rate")
    assert not out.exists() and ckpt.is_file() and record.is_file()
    import torch

    state = torch.load(ckpt, weights_only=False)
    assert state["epoch"] == 3 and state["history"]["epoch"] == [1, 2, 3]
    assert all(torch.isfinite(v).all() for v in state["G"].values() if v.is_floating_point())
    # a run that forgets --resume must not overwrite the checkpoint
    code, _, err = cli(*args, "--checkpoint-every", "1", "-o", out)
    assert_one_error_line(code, err, ckpt, "--resume")
    # other settings cannot resume from it
    code, _, err = cli(*args[:-len(TINY)], *TINY[:-1], "cpu", "--g-hidden", "16", "--resume", "-o", out)
    assert_one_error_line(code, err, ckpt, "other settings", "model.g_hidden")
    assert ckpt.is_file()
    code, _, err = cli(*args, "--checkpoint-every", "1", "--resume", "-o", out)
    assert code == 0, err
    assert not ckpt.exists() and not record.exists() and not lock_path(out).exists()
    np.testing.assert_array_equal(_generated(cli, out, tmp_path / "resumed.h5ad"), expected)
    assert json.loads((out / "history.json").read_text())["epoch"] == [1, 2, 3, 4, 5]
    _count("fault: divergence (NaN loss) stopped, checkpoint kept, resumed bitwise")


def test_absurd_learning_rate_stops_with_a_clear_message(tmp_path, cli):
    data = _h5ad(base_cells(), tmp_path / "cells.h5ad")
    code, _, err = cli("train", data, "--epochs", "3", "--lr", "1e9", "-o", tmp_path / "m", *TINY)
    assert_one_error_line(code, err, "training diverged at epoch", "lower the learning rate")
    assert {p.name for p in tmp_path.iterdir()} == {"cells.h5ad"}
    _count("fault: divergence (absurd learning rate)")


def test_resume_refuses_to_clobber_a_finished_model(tmp_path, cli):
    data = _h5ad(base_cells(), tmp_path / "cells.h5ad")
    assert cli("train", data, "--epochs", "1", "-o", tmp_path / "m", *TINY)[0] == 0
    before = (tmp_path / "m" / "generator.pt").read_bytes()
    code, _, err = cli("train", data, "--epochs", "1", "--resume", "-o", tmp_path / "m", *TINY)
    assert_one_error_line(code, err, tmp_path / "m", "already exists")
    assert (tmp_path / "m" / "generator.pt").read_bytes() == before
    _count("bad parameter x CLI")


def test_scoring_server_hardening(monkeypatch):
    """Without a Content-Type header or with JSON nested too deeply, MLflow's scoring server
    would answer 500; the served model turns them into 415 and 400 (slow test: real server)."""
    pytest.importorskip("mlflow")
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server as ss

    from lshgan.mlops.serving.server import harden_scoring_server

    for name in ("invocations", "_decode_json_input"):
        monkeypatch.setattr(ss, name, getattr(ss, name))  # restored after the test
    monkeypatch.setattr(ss, "_lshgan_hardened", False, raising=False)
    assert harden_scoring_server() and not harden_scoring_server()  # once
    answer = ss.invocations(b"{}", None, None, None)
    assert answer.status == 415 and "Content-Type" in answer.response
    with pytest.raises(MlflowException, match="nested too deeply") as info:
        ss._decode_json_input(b"[" * 100_000 + b"]" * 100_000)
    assert info.value.get_http_status_code() == 400
    assert ss._decode_json_input(b'{"a": 1}') == {"a": 1}
    # a misspelled column (MLflow's schema check would drop it: HTTP 200, the type ignored)
    for body in (b'{"dataframe_split": {"columns": ["n_cells", "celltype"], "data": [[6, "B"]]}}',
                 b'{"dataframe_records": [{"n_cells": 6, "celltype": "B"}]}',
                 b'{"inputs": {"n_cells": [6], "celltype": ["B"]}}'):
        with pytest.raises(MlflowException, match="unknown request column.* celltype; the columns "
                                                  "are n_cells, cell_type, seed, encoding, layer") as info:
            ss._decode_json_input(body)
        assert info.value.get_http_status_code() == 400
    ok = b'{"dataframe_split": {"columns": ["n_cells", "cell_type"], "data": [[6, "B"]]}}'
    assert ss._decode_json_input(ok)["dataframe_split"]["columns"] == ["n_cells", "cell_type"]


def test_served_model_binds_loopback_unless_told():
    from lshgan.cli import build_parser
    from lshgan.mlops.cli import serve_command

    args = build_parser().parse_args(["serve", "--dataset", "tiny"])
    assert args.host == "127.0.0.1"
    cmd = serve_command("models:/lshgan-tiny@champion", host=args.host)
    assert cmd[cmd.index("-h") + 1] == "127.0.0.1"


# ---------------------------------------------------------------------------- reproducibility
def test_same_seed_same_data_same_cells_through_the_cli(tmp_path, cli):
    data = _h5ad(base_cells(), tmp_path / "cells.h5ad")
    runs = []
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        code, _, err = cli("train", data, "--label-key", "cell_type", "--epochs", "2", "--seed", seed,
                           "-o", tmp_path / name, *TINY)
        assert code == 0, err
        runs.append(_generated(cli, tmp_path / name, tmp_path / f"{name}.h5ad"))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    _count("reproducibility: same seed, same cells")


def test_a_run_records_versions_and_the_data_hash(model_dir):
    from lshgan import LSHGAN
    from lshgan.io import dataset_hash
    from lshgan.mlops import tracking

    cells = base_cells()
    params = tracking.run_params(LSHGAN.load(model_dir), dataset="tiny",
                                 dataset_hash=dataset_hash(cells), n_train_cells=cells.n_obs)
    assert params["dataset_hash"] == dataset_hash(base_cells()) != dataset_hash(base_cells(seed=1))
    for name in ("python", "platform", *tracking.RECORDED_PACKAGES):
        assert params[f"version.{name}"] not in ("", None), name
    import numpy
    import torch

    assert params["version.numpy"] == numpy.__version__
    assert params["version.torch"] == torch.__version__
    assert {"seed", "k", "t", "epochs", "lr_g"} <= set(params)


# ---------------------------------------------------------------------------- real processes (slow)
def _cli_process(*args, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "lshgan.cli", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(tmp_path):
    """``lshgan train --checkpoint-every 2`` killed with SIGKILL after a checkpoint, rerun with
    ``--resume``: the model generates exactly the cells of an uninterrupted run (CPU, bitwise)."""
    data = _h5ad(synthetic_log_expression(300, 60, 3, seed=0), tmp_path / "cells.h5ad")
    args = ["train", data, "--label-key", "cell_type", "--epochs", "40", "--seed", "7",
            "--quiet", "--g-hidden", "32", "--d-hidden", "32", "--batch-size", "32",
            "--n-critic", "2", "--device", "cpu"]
    out = tmp_path / "killed"
    ckpt, _ = checkpoint_paths(out)
    victim = _cli_process(*args, "--checkpoint-every", "2", "-o", out)
    full = None
    try:
        seen = []
        deadline = time.monotonic() + 900
        while len(seen) < 2:  # wait for the second checkpoint (epoch 4): well into the run
            assert victim.poll() is None, f"finished before the kill: {victim.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            if ckpt.exists() and (not seen or ckpt.stat().st_mtime_ns != seen[-1]):
                seen.append(ckpt.stat().st_mtime_ns)
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
        # the uninterrupted reference runs meanwhile (same seed, no checkpoints)
        full = _cli_process(*args, "-o", tmp_path / "full")
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not out.exists() and ckpt.is_file()  # killed mid-run: no model, a checkpoint
    import torch

    killed_at = torch.load(ckpt, weights_only=False)["epoch"]
    assert 4 <= killed_at < 40
    code, err = _finish(full)
    assert code == 0, err
    code, err = _finish(_cli_process(*args, "--checkpoint-every", "2", "--resume", "-o", out))
    assert code == 0, err
    assert not ckpt.exists() and not lock_path(out).exists()
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == list(range(1, 41))
    assert history == {**json.loads((tmp_path / "full" / "history.json").read_text()),
                       "seconds": history["seconds"]}
    from lshgan import LSHGAN

    a = LSHGAN.load(out).generate(200, seed=11)
    b = LSHGAN.load(tmp_path / "full").generate(200, seed=11)
    np.testing.assert_array_equal(np.asarray(a.X), np.asarray(b.X))
    print(f"\nkilled after the checkpoint of epoch {killed_at}; resumed to 40: bitwise equal")
    _count("fault: SIGKILL mid-run, resumed bitwise")


_WAIT_THEN_RUN = """
import sys
from lshgan.cli import main
import lshgan.model, lshgan.plotting  # everything train imports, before the go
print("ready", flush=True)
sys.stdin.readline()
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_two_trainings_on_one_output_at_once(tmp_path):
    data = _h5ad(synthetic_log_expression(300, 60, 3, seed=0), tmp_path / "cells.h5ad")
    out = tmp_path / "m"
    args = ["train", data, "--label-key", "cell_type", "--quiet", "--g-hidden", "32", "--d-hidden",
            "32", "--device", "cpu", "--checkpoint-every", "1", "-o", out]
    first = _cli_process(*args, "--epochs", "150")
    # the second command is started at once but waits, imports done, for a go: the clash is
    # then certain to happen while the first one trains
    second = subprocess.Popen([sys.executable, "-c", _WAIT_THEN_RUN, *map(str, args), "--epochs", "1",
                               "--force"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert second.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 600
        while not checkpoint_paths(out)[0].exists():  # the first run is training
            assert first.poll() is None, first.communicate()[1][-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        _, err = second.communicate("go\n", timeout=300)
        code = second.returncode
        assert first.poll() is None, "the first run ended before the second was refused"
    finally:
        for proc in (first, second):
            if proc is second and proc.poll() is None:
                proc.kill()
        code1, err1 = _finish(first)
    assert code == 2 and "Traceback" not in err, err
    assert f"error: {out}: another process (pid {first.pid}" in err
    assert code1 == 0, err1
    from lshgan import LSHGAN

    model = LSHGAN.load(out)
    assert model.train_config.epochs == 150 and len(model.history.epoch) == 150
    assert not lock_path(out).exists() and not checkpoint_paths(out)[0].exists()
    _count("concurrency: two lshgan train on one output")


DVC_YAML = """
stages:
  preprocess:
    cmd: python {repo}/stages/preprocess.py data/raw/tiny.h5ad data/processed/tiny.h5ad
      --label-key cell_type -S min_genes=0 -S min_count=0 -S min_cells_frac=0
    deps: [data/raw/tiny.h5ad]
    params: [preprocess]
    outs: [data/processed/tiny.h5ad]
  train:
    cmd: python {repo}/stages/train.py data/processed/tiny.h5ad models/tiny --plots reports
      --label-key cell_type
    deps: [data/processed/tiny.h5ad]
    params: [train]
    outs: [models/tiny, reports/losses.png, reports/losses.csv]
"""


@pytest.mark.slow
def test_two_dvc_repro_at_once_and_raw_data_untouched(tmp_path):
    """The second ``dvc repro`` of one project refuses (DVC's lock); the result is whole and
    ``data/raw/`` keeps its bytes."""
    import yaml

    dvc = str(Path(sys.executable).with_name("dvc"))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1"}
    proj = tmp_path / "proj"
    (proj / "data" / "raw").mkdir(parents=True)
    raw = _h5ad(synthetic_log_expression(300, 60, 3, seed=0), proj / "data" / "raw" / "tiny.h5ad")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"].update(epochs=40, g_hidden=[32], d_hidden=[32], device="cpu")
    (proj / "params.yaml").write_text(yaml.safe_dump(params))
    (proj / "dvc.yaml").write_text(DVC_YAML.format(repo=REPO))
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=proj, env=env, check=True)
    digest = _sha(raw)

    first = subprocess.Popen([dvc, "repro"], cwd=proj, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        while not (proj / "data" / "processed" / "tiny.h5ad").exists():  # first is in its stages
            assert first.poll() is None, first.communicate()[0][-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        second = subprocess.run([dvc, "repro"], cwd=proj, env=env, capture_output=True, text=True,
                                timeout=600)
        still_running = first.poll() is None
        out1, _ = first.communicate(timeout=900)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert still_running, "the first dvc repro ended before the second started"
    assert second.returncode != 0
    refusal = second.stderr + second.stdout
    # DVC's locks: the repository's, or the outputs' read/write lock naming the holder
    assert "Unable to acquire lock" in refusal or ("is busy, it is being blocked by" in refusal
                                                   and f"(PID {first.pid})" in refusal), refusal
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, out1[-3000:]
    status = subprocess.run([dvc, "status"], cwd=proj, env=env, capture_output=True, text=True)
    assert "up to date" in status.stdout, status.stdout + status.stderr
    from lshgan import LSHGAN

    assert len(LSHGAN.load(proj / "models" / "tiny").history.epoch) == 40
    assert _sha(raw) == digest
    _count("concurrency: two dvc repro on one project")
    _count("fault: raw data hashed before/after the stages")


_RUN_WRITER = """
import os, sys, time
from lshgan.mlops import tracking
from lshgan.module.training import History
worker, n_runs = int(sys.argv[1]), int(sys.argv[2])
for i in range(n_runs):
    with tracking.start_run("concurrent", run_name=f"w{worker}-r{i}") as run:
        tracking.log_params({"worker": worker, "run": i, "seed": i})
        h = History(epoch=list(range(1, 21)), d_loss=[0.1 * e for e in range(20)],
                    g_loss=[0.2 * e for e in range(20)], seconds=[0.0] * 20)
        tracking.log_history(h)
        tracking.log_metrics({"objective": worker + i / 10})
print("done", worker, flush=True)
"""


@pytest.mark.slow
def test_several_processes_write_mlflow_runs_at_once_and_none_is_lost(tmp_path):
    n_workers, n_runs = 4, 5
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "OMP_NUM_THREADS": "1"}
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(var, None)
    procs = [subprocess.Popen([sys.executable, "-c", _RUN_WRITER, str(w), str(n_runs)], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(n_workers)]
    results = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("lshgan-concurrent")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert len(runs) == n_workers * n_runs
    assert {r.info.run_name for r in runs} == {f"w{w}-r{i}" for w in range(n_workers) for i in range(n_runs)}
    for r in runs:
        assert r.info.status == "FINISHED"
        assert len(client.get_metric_history(r.info.run_id, "d_loss")) == 20
        assert r.data.metrics["objective"] == pytest.approx(int(r.data.params["worker"])
                                                            + int(r.data.params["run"]) / 10)
    _count(f"concurrency: {n_workers} processes x {n_runs} MLflow runs, none lost")
