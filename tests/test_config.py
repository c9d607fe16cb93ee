"""One configuration surface (issue 14): the CLI's flags, a ``params.yaml`` train section and
an Optuna trial's values give the same ``(ModelConfig, TrainConfig)`` through
:func:`lshgan.config.train_configs`; the ``paper`` preset is defined once."""

from __future__ import annotations

from pathlib import Path

import pytest

from lshgan import config
from lshgan.cli import build_parser, settings
from lshgan.errors import ParameterError

REPO = Path(__file__).resolve().parents[1]
#: Values every surface can express (the CLI has no --width/--depth: its widths say the same).
VALUES = {"k": 3, "t": 2, "epochs": 150, "lr": 3e-4, "width": 128, "n_latent": 10}
FLAGS = ["--k", "3", "--t", "2", "--epochs", "150", "--lr", "3e-4", "--g-hidden", "128,128",
         "--d-hidden", "128,128", "--n-latent", "10"]


def through_cli(*flags, n_cells=None):
    args = build_parser().parse_args(["train", "cells.h5ad", "-o", "model", *flags])
    return config.train_configs(settings(args), n_cells=n_cells)


def through_trial(values, space, n_cells=None):
    from optuna.trial import FixedTrial

    drawn = space.suggest(FixedTrial(values))
    return space.configs(drawn, seed=0, n_cells=n_cells)


def test_cli_params_yaml_and_tuning_trial_give_the_same_configuration():
    pytest.importorskip("optuna")
    from lshgan.mlops.tuning import SearchSpace

    space = SearchSpace.from_yaml(REPO / "conf" / "search_space.yaml")
    # tuning searches epochs, so its budget has no cap in updates (max_steps 0)
    assert set(VALUES) == set(space.params) and space.fixed == {"depth": 2, "max_steps": 0}
    section = {**VALUES, "depth": 2, "max_steps": 0}  # a params.yaml train section
    cli, yaml_section, trial = through_cli(*FLAGS, "--max-steps", "0"), \
        config.train_configs(section), through_trial(VALUES, space)
    assert cli == yaml_section == trial
    model, train = cli
    assert (model.k, model.t, model.n_latent, model.g_hidden, model.d_hidden) == (3, 2, 10, (128, 128),
                                                                                   (128, 128))
    assert (train.epochs, train.lr_g, train.lr_d, train.max_steps) == (150, 3e-4, 3e-4, None)


def test_paper_preset_is_the_same_through_every_surface():
    pytest.importorskip("optuna")
    from lshgan.mlops.tuning import SearchSpace

    space = SearchSpace(params={"k": {"type": "int", "low": 2, "high": 9}}, fixed={"paper": True})
    cli = through_cli("--paper", "--k", "7", n_cells=120)
    assert cli == config.train_configs({"paper": True, "k": 7}, n_cells=120)
    assert cli == config.train_configs({"preset": "paper", "k": 7}, n_cells=120)
    assert cli == through_trial({"k": 7}, space, n_cells=120)
    model, train = cli
    assert model.input_mode == "paper" and model.g_hidden == (16, 16) and not model.conditional
    assert (train.loss, train.n_critic, train.lr_g, train.lr_d, train.batch_size) == ("bce", 1, 1e-3,
                                                                                      1e-3, 120)


def test_paper_preset_is_how_the_paper_report_trains_lshgan_paper():
    from lshgan.baselines import PaperLSHGANGenerator
    from lshgan.datasets import synthetic_log_expression

    cells = synthetic_log_expression(60, 20, 2)
    gen = PaperLSHGANGenerator(steps=10)
    model, train = config.train_configs({"paper": True}, n_cells=cells.n_obs)
    assert gen.model_config(cells) == model
    reported = gen.train_config(cells)
    for name in ("loss", "n_critic", "lr_g", "lr_d", "batch_size"):
        assert getattr(reported, name) == getattr(train, name), name


def test_flags_not_given_keep_the_defaults_and_given_ones_win_over_the_preset():
    from lshgan import ModelConfig, TrainConfig

    assert through_cli() == (ModelConfig(), TrainConfig())
    model, train = through_cli("--paper", "--loss", "hinge", "--batch-size", "64", "--g-hidden", "8")
    assert (train.loss, train.batch_size, model.g_hidden, model.d_hidden) == ("hinge", 64, (8,), (16, 16))
    model, train = config.train_configs({"lr": 1e-2, "lr_d": 5e-3, "unconditional": True})
    assert (train.lr_g, train.lr_d, model.conditional) == (1e-2, 5e-3, False)
    assert config.runtime({"device": "cpu", "threads": 2, "k": 3}) == ("cpu", 2)
    assert config.runtime({}) == ("auto", 0)
    # local detection: the flag and the params.yaml key say the same; not given: the model's rule
    off = through_cli("--detection-neighbors", "0")
    assert off == config.train_configs({"detection_neighbors": 0}) and off[0].detection_neighbors == 0
    assert through_cli()[0].detection_neighbors is None


@pytest.mark.parametrize("values, words", [
    ({"epochz": 3}, "unknown key(s) epochz"),
    ({"preset": "fast"}, "unknown preset 'fast'"),
    ({"paper": True, "preset": "default"}, None),
    ({"paper": True}, "batch_size 'full' needs the number of training cells"),
    ({"k": 0}, "k must be >= 1"),
])
def test_bad_settings_are_parameter_errors(values, words):
    if words is None:  # paper: true wins over the default preset
        assert config.preset_name(values) == "paper"
        return
    with pytest.raises(ParameterError, match=words.replace("(", r"\(").replace(")", r"\)")):
        config.train_configs(values)
