"""Latent-space generation: the hurdle decoder and ``LSHGAN(space="latent")``."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from lshgan import LSHGAN
from lshgan.datasets import synthetic_log_expression
from lshgan.errors import ParameterError
from lshgan.model import default_n_latent
from lshgan.module.decoder import HurdleDecoder


@pytest.fixture(scope="module")
def data():
    return synthetic_log_expression(240, 80, 3, seed=1)


def _latent(X, d=6):
    Xc = X - X.mean(0)
    u, s, vt = np.linalg.svd(Xc, full_matrices=False)
    return (Xc @ vt[:d].T / (s[:d] / np.sqrt(len(X)))).astype(np.float32)


def test_hurdle_decoder_reproduces_detection_rates_and_levels(data):
    X = np.asarray(data.X)
    L = _latent(X)
    dec = HurdleDecoder(L.shape[1], X.shape[1]).fit(L, X, steps=300)
    torch.manual_seed(0)
    with torch.no_grad():
        out = dec(torch.as_tensor(L)).numpy()
    assert (out >= 0).all() and (out == 0).any()
    real_rate, gen_rate = (X > 0).mean(0), (out > 0).mean(0)
    assert np.abs(real_rate - gen_rate).max() < 0.12
    assert np.corrcoef(real_rate, gen_rate)[0, 1] > 0.95
    # the decoder uses the cell state: decoded cells follow their own cell's expression
    # far better than the average cell does
    own = np.abs(out - X).mean()
    shuffled = np.abs(out[np.random.default_rng(0).permutation(len(X))] - X).mean()
    assert own < 0.9 * shuffled


def test_hurdle_decoder_sparse_input_fits_like_dense(data):
    X = np.asarray(data.X)
    L = _latent(X)
    a = HurdleDecoder(L.shape[1], X.shape[1]).fit(L, X, steps=50)
    b = HurdleDecoder(L.shape[1], X.shape[1]).fit(L, sp.csr_matrix(X), steps=50)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_allclose(pa.numpy(), pb.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
    # mini-batches (more cells than one batch) reach a similar fit
    c = HurdleDecoder(L.shape[1], X.shape[1]).fit(L, X, steps=300, batch_size=64)
    full = HurdleDecoder(L.shape[1], X.shape[1]).fit(L, X, steps=300)
    assert np.corrcoef(c.level.bias.detach(), full.level.bias.detach())[0, 1] > 0.95


@pytest.fixture(scope="module")
def latent_model(data):
    model = LSHGAN(data, label_key="cell_type", space="latent", g_hidden=(32,), d_hidden=(32,))
    model.train(epochs=20, progress=False)
    return model


def test_latent_model_generates_cells_with_real_dropout(latent_model, data):
    assert latent_model.config.n_latent == default_n_latent(data.n_obs) == 16
    out = latent_model.generate(200, seed=0)
    assert out.shape == (200, data.n_vars) and (out.X >= 0).all()
    X = np.asarray(data.X)
    # per-gene detection follows the data; cells differ in how many genes they detect
    assert np.corrcoef((X > 0).mean(0), (out.X > 0).mean(0))[0, 1] > 0.9
    assert (out.X > 0).mean(1).std() > 0.3 * (X > 0).mean(1).std()
    t = latent_model.cell_types[2]
    assert (latent_model.generate(5, cell_type=t).obs["cell_type"] == t).all()


def test_latent_model_save_load_same_cells(latent_model, data, tmp_path):
    path = latent_model.save(tmp_path / "m")
    loaded = LSHGAN.load(path, data)
    assert loaded.config.space == "latent" and loaded.config.n_latent == latent_model.config.n_latent
    np.testing.assert_array_equal(loaded.generate(30, seed=4).X, latent_model.generate(30, seed=4).X)
    assert not np.array_equal(latent_model.generate(30, seed=5).X, latent_model.generate(30, seed=4).X)


def test_latent_model_trains_from_sparse_input(data):
    sparse = data.copy()
    sparse.X = sp.csr_matrix(np.asarray(data.X))
    model = LSHGAN(sparse, space="latent", n_latent=5, g_hidden=(16,), d_hidden=(16,))
    model.train(epochs=1, progress=False)
    assert model.config.n_latent == 5 and model.generate(7).shape == (7, data.n_vars)


def test_space_is_validated(data):
    with pytest.raises(ParameterError, match="space must be one of"):
        LSHGAN(data, space="pca")
    with pytest.raises(ParameterError, match="n_latent must be >= 1"):
        LSHGAN(data, space="latent", n_latent=0)


def test_default_n_latent_bounds():
    assert default_n_latent(30) == 8 and default_n_latent(120) == 12 and default_n_latent(10**6) == 16
