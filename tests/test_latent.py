"""Latent-space generation: the hurdle decoder and ``LSHGAN(space="latent")``."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from lshgan import LSHGAN
from lshgan.datasets import synthetic_log_expression
from lshgan.errors import ParameterError
from lshgan.model import LOCAL_DETECTION_MIN_CELLS, ModelConfig, default_detection_neighbors, default_n_latent
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


def test_hurdle_decoder_type_offsets_catch_a_gene_on_in_one_type_only():
    """A gene expressed in one type only: with a one-dimensional state that does not
    separate the types, only the per-type offsets give each type its own detection."""
    rng = np.random.default_rng(0)
    n, codes = 600, np.repeat([0, 1, 2], 200)
    L = rng.standard_normal((n, 1)).astype(np.float32)  # says nothing about the type
    X = np.zeros((n, 3), np.float32)
    X[:, 0] = np.where(rng.random(n) < 0.5, 2.0 + 0.1 * rng.standard_normal(n), 0)
    X[codes == 1, 1] = 3.0 + 0.1 * rng.standard_normal(200)   # on in type 1 only
    X[:, 2] = 1.0 + 0.1 * rng.standard_normal(n)
    typed = HurdleDecoder(1, 3, n_groups=3).fit(L, X, codes, steps=400)
    flat = HurdleDecoder(1, 3).fit(L, X, steps=400)
    g = torch.as_tensor(codes)
    with torch.no_grad():
        p_typed = torch.sigmoid(typed.detection_logits(torch.as_tensor(L), g))[:, 1].numpy()
        p_flat = torch.sigmoid(flat.detection_logits(torch.as_tensor(L)))[:, 1].numpy()
        level = typed.mean_level(torch.as_tensor(L), g)[:, 1].numpy()
    assert p_typed[codes == 1].min() > 0.9 and p_typed[codes != 1].max() < 0.1
    assert 0.2 < p_flat.mean() < 0.45  # without offsets: a third everywhere
    assert abs(level[codes == 1].mean() - 3.0) < 0.1
    # the sampled cells of type 1 detect it, the others do not
    torch.manual_seed(0)
    with torch.no_grad():
        out = typed(torch.as_tensor(L), g).numpy()
    assert (out[codes == 1, 1] > 0).mean() > 0.9 and (out[codes != 1, 1] > 0).mean() < 0.1


def test_hurdle_decoder_state_without_offsets_still_loads(data):
    """A decoder saved before the per-type offsets (no ``group_*`` weights) loads with none
    and decodes as before."""
    X = np.asarray(data.X)
    L = _latent(X)
    dec = HurdleDecoder(L.shape[1], X.shape[1]).fit(L, X, steps=20)
    old = {k: v for k, v in dec.state_dict().items() if not k.startswith("group_")}
    back = HurdleDecoder.from_state_dict(old)
    assert back.n_groups == 1
    for d in (dec, back):
        torch.manual_seed(1)
        with torch.no_grad():
            out = d(torch.as_tensor(L[:20]), torch.zeros(20, dtype=torch.long)).numpy()
        if d is dec:
            first = out
    np.testing.assert_array_equal(first, out)
    typed = HurdleDecoder(L.shape[1], X.shape[1], n_groups=3)
    assert HurdleDecoder.from_state_dict(typed.state_dict()).n_groups == 3


def test_local_detection_is_the_neighbours_share_shrunk_to_the_logistic(data):
    """fit_neighbors: each gene's detection probability is (detected among the K nearest
    training states + 2 p) / (K + 2), the neighbours found as scikit-learn finds them, from
    dense or sparse cells; saved and loaded with the decoder; an old decoder loads off."""
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(data.X)
    L = _latent(X)
    dec = HurdleDecoder(L.shape[1], X.shape[1]).fit(L, X, steps=20)
    q = torch.as_tensor(L[:25] + 0.05)
    with torch.no_grad():
        p = torch.sigmoid(dec.detection_logits(q)).numpy()
    assert dec.neighbors == 0
    np.testing.assert_allclose(dec.detection_probability(q).detach().numpy(), p, rtol=1e-6)
    dense = dec.fit_neighbors(L, X, 7).detection_probability(q).detach().numpy()
    assert dec.neighbors == 7 and dec.ref_detected.dtype == torch.uint8
    _, idx = NearestNeighbors(n_neighbors=7).fit(L).kneighbors(q.numpy())
    np.testing.assert_allclose(dense, ((X[idx] > 0).sum(1) + 2 * p) / 9, atol=1e-6)
    sparse = dec.fit_neighbors(L, sp.csr_matrix(X), 7).detection_probability(q).detach().numpy()
    np.testing.assert_array_equal(dense, sparse)
    # the sampled cells follow the local pattern: a gene none of the neighbours detects is
    # rarer than the logistic alone would have it
    torch.manual_seed(0)
    with torch.no_grad():
        cells = dec(q.repeat(40, 1)).numpy()
    never = np.tile((X[idx] > 0).sum(1) == 0, (40, 1)) & (np.tile(p, (40, 1)) > 0.3)
    assert never.any() and (cells[never] > 0).mean() < 0.7 * np.tile(p, (40, 1))[never].mean()
    back = HurdleDecoder.from_state_dict(dec.state_dict())
    assert back.neighbors == 7
    np.testing.assert_array_equal(back.detection_probability(q).detach().numpy(), sparse)
    old = {k: v for k, v in dec.state_dict().items() if not k.startswith("ref_")}
    assert HurdleDecoder.from_state_dict(old).neighbors == 0
    assert dec.fit_neighbors(L, X, 0).neighbors == 0  # off again
    with pytest.raises(ValueError, match="neighbours"):
        dec.fit_neighbors(L[:5], X[:5], 6)
    # at most max_cells reference cells, in blocks of queries: the same neighbours
    few = HurdleDecoder(L.shape[1], X.shape[1]).fit(L, X, steps=1).fit_neighbors(L, X, 3, max_cells=50)
    assert few.ref_states.shape[0] == 50 and few.nearest_references(q).shape == (25, 3)


def test_local_detection_default_follows_the_number_of_training_cells(data, tmp_path, caplog):
    """detection_neighbors=None: 10 from LOCAL_DETECTION_MIN_CELLS training cells, off
    below; a value given wins, saved with the model; a model saved before it loads off."""
    import json

    assert default_detection_neighbors(LOCAL_DETECTION_MIN_CELLS - 1) == 0
    assert default_detection_neighbors(LOCAL_DETECTION_MIN_CELLS) == 10
    assert ModelConfig().detection_neighbors is None  # resolved by the model
    with caplog.at_level("INFO", logger="lshgan"):
        assert LSHGAN(data, label_key="cell_type").config.detection_neighbors == 0
    assert f"local detection off ({data.n_obs} training cells" in caplog.text
    import anndata as ad

    rows = np.arange(LOCAL_DETECTION_MIN_CELLS) % data.n_obs
    many = ad.AnnData(np.asarray(data.X)[rows], var=data.var,
                      obs=data.obs.iloc[rows].set_axis([f"c{i}" for i in range(len(rows))]))
    assert LSHGAN(many, label_key="cell_type").config.detection_neighbors == 10
    assert LSHGAN(many, space="genes").config.detection_neighbors == 0  # no decoder there
    with pytest.raises(ParameterError, match="detection_neighbors must be >= 0"):
        LSHGAN(data, detection_neighbors=-1)
    model = LSHGAN(data, label_key="cell_type", detection_neighbors=5, n_latent=4,
                   g_hidden=(16,), d_hidden=(16,))
    model.train(epochs=1, progress=False)
    assert model._decoder.neighbors == 5 and model._decoder.ref_states.shape == (data.n_obs, 4 + 1)
    path = model.save(tmp_path / "m")
    back = LSHGAN.load(path)
    assert back.config.detection_neighbors == 5 and back._decoder.neighbors == 5
    np.testing.assert_array_equal(back.generate(20, seed=1).X, model.generate(20, seed=1).X)
    # a model saved before the option (no setting, no reference cells) generates as before
    meta = json.loads((path / "config.json").read_text())
    del meta["model"]["detection_neighbors"]
    (path / "config.json").write_text(json.dumps(meta))
    state = torch.load(path / "generator.pt")
    state["decoder"] = {k: v for k, v in state["decoder"].items() if not k.startswith("ref_")}
    torch.save(state, path / "generator.pt")
    old = LSHGAN.load(path)
    assert old.config.detection_neighbors == 0 and old._decoder.neighbors == 0
    model._decoder.fit_neighbors(model._real, data.X, 0)
    np.testing.assert_array_equal(old.generate(20, seed=1).X, model.generate(20, seed=1).X)


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
    assert not latent_model.config.type_offsets and latent_model._decoder.n_groups == 1
    path = latent_model.save(tmp_path / "m")
    loaded = LSHGAN.load(path, data)
    assert loaded.config.space == "latent" and loaded.config.n_latent == latent_model.config.n_latent
    np.testing.assert_array_equal(loaded.generate(30, seed=4).X, latent_model.generate(30, seed=4).X)
    assert not np.array_equal(latent_model.generate(30, seed=5).X, latent_model.generate(30, seed=4).X)


def test_detection_state_is_the_cells_detection_rate(data):
    """The latent state's last coordinate follows the number of detected genes; without
    the option the state is the PCs alone."""
    model = LSHGAN(data, label_key="cell_type", n_latent=5, detection_state=True)
    model._build(0, torch.device("cpu"))
    detected = (np.asarray(data.X) > 0).sum(1)
    assert np.corrcoef(model._real[:, -1], np.log1p(detected))[0, 1] > 0.999
    off = LSHGAN(data, label_key="cell_type", n_latent=5, detection_state=False)
    off._build(0, torch.device("cpu"))
    assert off.n_state == 5 and off._real.shape[1] == 5
    np.testing.assert_allclose(off._real, model._real[:, :5], atol=1e-6)


def test_state_pca_on_the_most_variable_genes_decodes_every_gene(data):
    """With more genes than ``state_genes`` the cell state's PCA sees the most variable
    ones (as scanpy's PCA after HVG selection); generated cells still carry every gene."""
    from lshgan.preprocess import variable_genes

    few = LSHGAN(data, label_key="cell_type", n_latent=4, state_genes=30,
                 g_hidden=(16,), d_hidden=(16,))
    every = LSHGAN(data, label_key="cell_type", n_latent=4, state_genes=None)
    few._build(0, torch.device("cpu"))
    every._build(0, torch.device("cpu"))
    assert variable_genes(data.X, 30).sum() == 30
    assert not np.allclose(few._real, every._real, atol=1e-3)
    few.train(epochs=1, progress=False)
    assert few.generate(5, seed=0).shape == (5, data.n_vars)
    assert LSHGAN(data, state_genes=0).config.state_genes is None  # 0: every gene
    with pytest.raises(ParameterError, match="state_genes"):
        LSHGAN(data, state_genes=-1)


def test_type_offsets_switch(data, tmp_path):
    model = LSHGAN(data, label_key="cell_type", type_offsets=True, detection_state=True,
                   n_latent=4, g_hidden=(16,), d_hidden=(16,))
    model.train(epochs=1, progress=False)
    # one offset per type and gene; saved and loaded with the model
    assert model._decoder.group_detect.shape == (len(model.cell_types), data.n_vars)
    back = LSHGAN.load(model.save(tmp_path / "m"))
    assert back.config.type_offsets and back._decoder.n_groups == len(model.cell_types)
    np.testing.assert_array_equal(back.generate(20, seed=1).X, model.generate(20, seed=1).X)
    unconditional = LSHGAN(data, n_latent=4, type_offsets=True, g_hidden=(16,), d_hidden=(16,))
    unconditional.train(epochs=1, progress=False)
    assert unconditional._decoder.n_groups == 1  # no types, no offsets


def test_decoder_terms_follow_the_data_kind(data, caplog):
    """type_offsets defaults to on for UMI counts only (the preprocessing report's data
    kind; data preprocessed elsewhere: off), detection_state to on; a value given wins."""
    def kind(name):
        out = data.copy()
        out.uns["lshgan_preprocess"] = {"data_kind": name}
        return out

    with caplog.at_level("INFO", logger="lshgan"):
        umi = LSHGAN(kind("umi_counts"), label_key="cell_type")
    assert umi.config.type_offsets is True and umi.config.detection_state is True
    assert "type_offsets on, detection_state on (data kind umi_counts" in caplog.text
    for other in (kind("read_counts"), kind("continuous"), data):
        cfg = LSHGAN(other, label_key="cell_type").config
        assert cfg.type_offsets is False and cfg.detection_state is True
    off = LSHGAN(kind("read_counts"), label_key="cell_type", detection_state=False)
    assert off.config.detection_state is False and off.config.type_offsets is False
    given = LSHGAN(kind("umi_counts"), label_key="cell_type", type_offsets=False)
    assert given.config.type_offsets is False and given.config.detection_state is True
    assert ModelConfig().type_offsets is None  # resolved by the model, not the config


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


def test_anchor_residual_generator_starts_at_its_anchor(data):
    """With ``anchor_residual`` G writes a displacement: before training, a generated cell
    state is its anchor's own state (the anchor's first n_latent coordinates are its
    latent coordinates: one PCA for both) plus what the untrained head adds."""
    model = LSHGAN(data, label_key="cell_type", n_latent=6, anchor_dim=4, noise_dim=8,
                   detection_state=True)
    assert model.config.anchor_residual
    G, _ = model._build(0, torch.device("cpu"))
    # max(anchor_dim, n_latent) PCs + the detection rate (latent state) + 2 cell-state columns
    assert model.n_state == 7 and model._real.shape[1] == 7
    assert model._inputs.anchors.shape[1] == 6 + 1 + 2
    # the anchors are training cells' latent states, exactly
    sub = model.subsample_
    np.testing.assert_allclose(model._inputs.anchors[:, :7].numpy(), model._real[sub], atol=1e-5)
    with torch.no_grad():
        torch.nn.init.zeros_(G.head.weight)
        torch.nn.init.zeros_(G.head.bias)
        G.eval()
        z = model._inputs.sample(50, torch.zeros(50, dtype=torch.long),
                                 generator=torch.Generator().manual_seed(0))
        out = G(z, torch.zeros(50, dtype=torch.long))
    np.testing.assert_allclose(out.numpy(), z[:, 8:15].numpy(), atol=1e-6)


def test_local_anchor_noise_is_in_units_of_each_anchors_spacing(data, tmp_path):
    """``anchor_noise_local``: an anchor's jitter has sd ``anchor_noise`` x its distance to
    the nearest training cell of its type in the latent state (per coordinate)."""
    model = LSHGAN(data, label_key="cell_type", n_latent=6, anchor_noise=1.0,
                   anchor_noise_local=True)
    model._build(0, torch.device("cpu"))
    inputs, sub, codes, state = model._inputs, model.subsample_, model._codes, model._real
    assert inputs.anchor_scale.shape == (len(sub),)
    for i in range(0, len(sub), 7):
        same = np.flatnonzero((codes == codes[sub[i]]) & (np.arange(len(codes)) != sub[i]))
        nearest = np.linalg.norm(state[same] - state[sub[i]], axis=1).min()
        assert inputs.anchor_scale[i] == pytest.approx(nearest / np.sqrt(state.shape[1]), rel=1e-4)
    # the jitter of each anchor follows its own scale: the tightest and the loosest anchor
    tight, loose = int(inputs.anchor_scale.argmin()), int(inputs.anchor_scale.argmax())
    assert inputs.anchor_scale[loose] > 2 * inputs.anchor_scale[tight]
    for i in (tight, loose):
        inputs._anchor_index = lambda n, y, gen, i=i: torch.full((n,), i, dtype=torch.long)
        z = inputs.sample(4000, generator=torch.Generator().manual_seed(1))
        sd = float((z[:, model.config.noise_dim:] - inputs.anchors[i]).std())
        assert sd == pytest.approx(float(inputs.anchor_scale[i]), rel=0.05)
    del inputs._anchor_index
    # saved with the model: the reloaded one draws the same cells
    model.train(epochs=1, progress=False)
    model.save(tmp_path / "m")
    back = LSHGAN.load(tmp_path / "m")
    assert back.config.anchor_noise_local
    torch.testing.assert_close(back._inputs.anchor_scale, inputs.anchor_scale)
    np.testing.assert_array_equal(model.generate(20, seed=2).X, back.generate(20, seed=2).X)


def test_anchor_spacing_of_a_type_alone_is_the_median_of_the_others():
    from lshgan.model import anchor_spacing

    space = np.array([[0.0], [1.0], [5.0], [7.0], [10.0]])
    out = anchor_spacing(space, np.array([0, 2, 4]), np.array([0, 0, 1, 1, 2]))
    np.testing.assert_allclose(out, [1.0, 2.0, 1.5])  # type 2 has no other cell


def test_free_generator_ignores_the_anchor_in_its_output(data):
    model = LSHGAN(data, label_key="cell_type", anchor_residual=False, n_latent=6, anchor_dim=4)
    G, _ = model._build(0, torch.device("cpu"))
    assert G.residual_from is None and model._inputs.anchors.shape[1] == 4 + 2


def test_saved_residual_model_reloads_with_its_setting(data, tmp_path):
    model = LSHGAN(data, label_key="cell_type", n_latent=6)
    model.train(epochs=2, progress=False)
    model.save(tmp_path / "m")
    back = LSHGAN.load(tmp_path / "m")
    assert back.config.anchor_residual and back._G.residual_from == model.config.noise_dim
    a, b = model.generate(30, seed=3), back.generate(30, seed=3)
    np.testing.assert_array_equal(a.X, b.X)


def test_budget_caps_epochs_at_max_steps(data):
    from lshgan.module.training import TrainConfig

    assert TrainConfig(epochs=300, batch_size=32, max_steps=4000).planned_epochs(200) == 300
    assert TrainConfig(epochs=300, batch_size=32, max_steps=4000).planned_epochs(3200) == 40
    assert TrainConfig(epochs=300, max_steps=0).planned_epochs(10**6) == 300
    model = LSHGAN(data, label_key="cell_type", n_latent=6)
    hist = model.train(epochs=50, max_steps=21, batch_size=32, progress=False)
    assert hist.epoch[-1] == 3  # 240 cells / 32 = 7 updates an epoch: 21 updates = 3 epochs


def test_budget_cap_stops_inside_the_last_epoch(data, monkeypatch):
    from lshgan.module.inputs import GeneratorInput

    calls = []
    original = GeneratorInput.sample
    monkeypatch.setattr(GeneratorInput, "sample",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    model = LSHGAN(data, label_key="cell_type", n_latent=6)
    seen = []
    model.train(epochs=50, max_steps=10, batch_size=32, progress=False,
                callback=lambda epoch, hist: seen.append(epoch))
    assert seen == [1, 2]  # 7 updates, then 3 of the second epoch's 7
    assert len(calls) == 2 * 10  # one D and one G update per step (n_critic 1): exactly 10 steps


def test_decoder_ceiling_script_decodes_the_training_states(data):
    """scripts/decoder_ceiling.py reaches into the model's build (PCA, decoders): it must
    keep working when those internals move."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "decoder_ceiling.py"
    spec = importlib.util.spec_from_file_location("decoder_ceiling", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rows = np.arange(0, data.n_obs, 3)
    model = LSHGAN(data, label_key="cell_type", n_latent=5, type_offsets=True)
    out = script.decode_fit_states(model, rows, data.obs.iloc[rows], seed=0)
    again = script.decode_fit_states(model, rows, data.obs.iloc[rows], seed=0)
    assert out.shape == (len(rows), data.n_vars) and list(out.var_names) == list(data.var_names)
    assert np.array_equal(out.X, again.X) and (out.X == 0).any() and (out.X >= 0).all()
    assert model._decoder.n_groups == len(model.cell_types)  # decoded with the type offsets
    # the ablations draw what "decoded" draws, each with one part swapped for the real cells' own
    real = data.X[rows]
    real = real.toarray() if hasattr(real, "toarray") else np.asarray(real)
    parts = script.decoder_ablations(model, rows, real, data.obs.iloc[rows], 0, target_sum=1e4)
    zeros, levels = parts["real_zeros"].X, parts["real_levels"].X
    assert np.array_equal(zeros > 0, real > 0)
    assert np.array_equal(levels > 0, out.X > 0)
    both = (real > 0) & (out.X > 0)
    assert np.allclose(levels[both], real[both]) and np.allclose(zeros[both], out.X[both])
    assert ("counts" in parts) == model.has_counts
    # a local zero pattern, at the training states and at a trained GAN's states
    full = (np.asarray(data.X.toarray() if hasattr(data.X, "toarray") else data.X) > 0).astype(np.float32)
    codes = torch.as_tensor(model._codes[rows].astype(np.int64))
    local = script.knn_detection_cells(model, torch.as_tensor(model._real[rows]), codes, full, 5, 0, True)
    assert local.shape == out.shape and (local >= 0).all() and (local == 0).any()
    # the same draws as "decoded": a gene the decoder detects at a level keeps that level
    kept = (local > 0) & (out.X > 0)
    assert kept.any() and np.allclose(local[kept], out.X[kept])
    model.train(epochs=1, progress=False, seed=0)
    types = list(data.obs["cell_type"].astype(str).iloc[rows])
    cells, states, groups = script.generated_states(model, types, seed=3)
    assert np.array_equal(cells.X, model.generate(len(types), cell_type=types, seed=3).X)
    assert states.shape == (len(types), model.n_state) and len(groups) == len(types)
    assert model._decoder.__class__.__name__ == "HurdleDecoder"  # the recorder is gone
