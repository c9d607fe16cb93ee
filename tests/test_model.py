"""The LSHGAN model API: train, generate, save/load round trip, conditioning, errors."""

import numpy as np
import pytest
import torch

from lshgan import LSHGAN, ModelConfig
from lshgan.datasets import synthetic_log_expression
from lshgan.errors import (CheckpointError, GeneMismatchError, OutputExistsError, ParameterError,
                           check_genes)


@pytest.fixture(scope="module")
def synthetic_adata_module():
    return synthetic_log_expression(160, 60, 3, seed=0)


@pytest.fixture(scope="module")
def trained(synthetic_adata_module):
    model = LSHGAN(synthetic_adata_module, label_key="cell_type", g_hidden=(32,), d_hidden=(32,))
    model.train(epochs=3, progress=False, batch_size=32, n_critic=2)
    return model


def test_train_generate_shapes_and_annotations(trained, synthetic_adata_module):
    a = synthetic_adata_module
    assert len(trained.history.d_loss) == 3 and np.isfinite(trained.history.g_loss).all()
    out = trained.generate(25, seed=1)
    assert out.shape == (25, a.n_vars)
    assert list(out.var_names) == list(a.var_names)
    assert out.obs["synthetic"].all()
    assert set(out.obs["cell_type"]) <= set(a.obs["cell_type"])
    assert (out.X >= 0).all()  # ReLU head: non-negative like log-expression


def test_conditional_generation_returns_the_requested_type(trained):
    t = trained.cell_types[1]
    out = trained.generate(10, cell_type=t, seed=0)
    assert (out.obs["cell_type"] == t).all()
    with pytest.raises(ParameterError, match="unknown cell_type 'nope'; known types"):
        trained.generate(3, cell_type="nope")


def test_same_seed_same_cells(trained):
    a, b = trained.generate(20, seed=7), trained.generate(20, seed=7)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, trained.generate(20, seed=8).X)


def test_generation_in_batches_fills_every_row_once(trained):
    t = trained.cell_types[0]
    whole = trained.generate(35, cell_type=t, seed=3, batch_size=10)  # batches 10, 10, 10, 5
    first = trained.generate(10, cell_type=t, seed=3, batch_size=10)
    np.testing.assert_array_equal(whole.X[:10], first.X)  # the first batch, in place
    rows = {whole.X[i].tobytes() for i in range(35)}
    assert len(rows) == 35 and np.isfinite(whole.X).all()  # no batch repeated, none left empty
    with pytest.raises(ParameterError, match="batch_size"):
        trained.generate(5, batch_size=0)


def test_save_load_round_trip_and_gene_check(trained, synthetic_adata_module, tmp_path):
    path = trained.save(tmp_path / "m")
    with pytest.raises(OutputExistsError):
        trained.save(tmp_path / "m")
    loaded = LSHGAN.load(path, synthetic_adata_module)
    np.testing.assert_array_equal(loaded.generate(15, seed=3).X, trained.generate(15, seed=3).X)
    assert loaded.cell_types == trained.cell_types
    other = synthetic_adata_module[:, ::-1].copy()
    with pytest.raises(GeneMismatchError, match="different order"):
        LSHGAN.load(path, other)
    sub = synthetic_adata_module[:, 5:].copy()
    with pytest.raises(GeneMismatchError, match="5 genes missing"):
        LSHGAN.load(path, sub)
    with pytest.raises(CheckpointError, match="not a saved lshgan model"):
        LSHGAN.load(tmp_path / "nothing")


def test_one_gene_check_for_every_caller():
    assert check_genes(["a", "b"], ["a", "b"]) is None
    assert check_genes(["b", "c", "a"], ["a", "b", "c"], ordered=False) == [2, 0, 1]
    with pytest.raises(GeneMismatchError, match="^x.h5ad: genes of the data do not match the "
                       "model m: same genes in a different order$"):
        check_genes(["b", "a"], ["a", "b"], what="model m", name="x.h5ad")
    with pytest.raises(GeneMismatchError, match=r"2 genes missing \(e.g. b, c\); 1 unknown gene "
                       r"\(e.g. z\)$"):
        check_genes(["a", "z"], ["a", "b", "c"], ordered=False)
    with pytest.raises(GeneMismatchError, match="1 duplicated gene"):
        check_genes(["a", "b", "a"], ["a", "b"], ordered=False)


def test_weights_load_with_weights_only(trained, tmp_path):
    path = trained.save(tmp_path / "m2")
    state = torch.load(path / "generator.pt", weights_only=True)
    assert "G" in state and "anchors" in state


@pytest.mark.parametrize("mode", ["lsh", "plain", "paper"])
def test_every_input_mode_trains(synthetic_adata_module, mode):
    model = LSHGAN(synthetic_adata_module, label_key=None, input_mode=mode,
                   g_hidden=(16,), d_hidden=(16,))
    model.train(epochs=1, progress=False, batch_size=32, n_critic=1, loss="bce")
    assert model.generate(5).shape[0] == 5
    if mode == "plain":
        assert model.subsample_ is None
    else:
        assert 0 < len(model.subsample_) < synthetic_adata_module.n_obs


@pytest.mark.parametrize("space", ["latent", "genes"])
def test_build_networks_hook_trains_and_generates_with_other_networks(synthetic_adata_module, space):
    """A subclass overriding the public hook gets the input width and the cells D sees, and
    training and generation then use its networks."""
    calls = []

    class Wider(LSHGAN):
        def build_networks(self, input_dim, real):
            calls.append((input_dim, real.shape))
            G, D = super().build_networks(input_dim, real)
            G.hook_mark = True
            return G, D

    a = synthetic_adata_module
    model = Wider(a, label_key="cell_type", space=space, g_hidden=(16,), d_hidden=(16,))
    model.train(epochs=1, progress=False, batch_size=32)
    (input_dim, shape), = calls
    width = model.n_state if space == "latent" else a.n_vars
    assert shape == (a.n_obs, width)
    assert input_dim == model._inputs.dim > model.config.noise_dim  # noise + LSH anchor
    assert getattr(model._G, "hook_mark", False)  # the averaged copy of the hook's generator
    assert model.generate(7, seed=0).shape == (7, a.n_vars)


def test_paper_configuration():
    cfg = ModelConfig.paper()
    assert cfg.g_hidden == (16, 16) and cfg.input_mode == "paper" and cfg.output == "linear"


def test_bad_parameters(synthetic_adata_module):
    with pytest.raises(ParameterError, match="k must be >= 1"):
        LSHGAN(synthetic_adata_module, k=0)
    with pytest.raises(ParameterError, match="t must be >= 1"):
        LSHGAN(synthetic_adata_module, t=0)
    with pytest.raises(ParameterError, match="unknown model option"):
        LSHGAN(synthetic_adata_module, kk=3)
    model = LSHGAN(synthetic_adata_module)
    with pytest.raises(ParameterError, match="epochs must be >= 1"):
        model.train(epochs=0, progress=False)
    with pytest.raises(ParameterError, match="not trained"):
        model.generate(3)
    from lshgan.errors import InputDataError

    with pytest.raises(InputDataError, match="needs more than k"):
        LSHGAN(synthetic_adata_module[:4].copy(), k=5)


def test_unconditional_model_refuses_a_cell_type(synthetic_adata_module):
    model = LSHGAN(synthetic_adata_module, g_hidden=(8,), d_hidden=(8,))
    model.train(epochs=1, progress=False, n_critic=1)
    with pytest.raises(ParameterError, match="without cell-type conditioning"):
        model.generate(3, cell_type="A")


def test_resume_after_interruption_matches_uninterrupted(synthetic_adata_module, tmp_path):
    kw = dict(g_hidden=(16,), d_hidden=(16,))
    full = LSHGAN(synthetic_adata_module, label_key="cell_type", **kw)
    full.train(epochs=4, progress=False, n_critic=1, seed=3)

    ckpt = tmp_path / "ckpt.pt"

    class Stop(Exception):
        pass

    def stop_at_3(epoch, history):
        if epoch == 3:
            raise Stop

    part = LSHGAN(synthetic_adata_module, label_key="cell_type", **kw)
    with pytest.raises(Stop):
        part.train(epochs=4, progress=False, n_critic=1, seed=3, checkpoint_every=2,
                   checkpoint_path=ckpt, callback=stop_at_3)
    resumed = LSHGAN(synthetic_adata_module, label_key="cell_type", **kw)
    resumed.train(epochs=4, progress=False, n_critic=1, seed=3, checkpoint_every=2,
                  checkpoint_path=ckpt, resume=True)
    assert resumed.history.epoch == [1, 2, 3, 4]
    np.testing.assert_array_equal(resumed.generate(10, seed=0).X, full.generate(10, seed=0).X)


def test_resume_from_a_corrupt_checkpoint_is_one_clear_error(synthetic_adata_module, tmp_path):
    from lshgan.errors import CheckpointError

    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"not a checkpoint")
    model = LSHGAN(synthetic_adata_module, label_key="cell_type", g_hidden=(16,), d_hidden=(16,))
    with pytest.raises(CheckpointError, match="ckpt.pt: cannot resume from this checkpoint"):
        model.train(epochs=2, progress=False, checkpoint_path=ckpt, resume=True)
    assert ckpt.read_bytes() == b"not a checkpoint"  # left for the user to inspect


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_and_generates_on_cuda(synthetic_adata):
    """The same model trains on a GPU (LSH forest, networks and decoder on the device)."""
    model = LSHGAN(synthetic_adata, label_key="cell_type")
    model.train(epochs=2, progress=False, device="cuda", max_steps=20)
    cells = model.generate(50, seed=0)
    assert cells.shape == (50, synthetic_adata.n_vars)
    assert np.isfinite(np.asarray(cells.X)).all()
