"""One configuration surface: flat settings -> ``(ModelConfig, TrainConfig)``.

The flags of ``lshgan train``/``lshgan run`` (:func:`lshgan.cli.settings`), the ``train`` section of
``params.yaml`` (the DVC stages, ``lshgan track``) and the values of an Optuna trial
(``lshgan tune``) are the same flat mapping, turned into configurations by one function,
:func:`train_configs`.  Keys:

* fields of :class:`~lshgan.ModelConfig` and :class:`~lshgan.TrainConfig` (``k``, ``t``,
  ``epochs``, ``batch_size``, ``loss``, ...); ``batch_size: full`` trains on every cell at
  once (needs ``n_cells``);
* ``lr``: both learning rates (``lr_g``/``lr_d`` given beside it win);
* ``width``, ``depth``: ``depth`` hidden layers of ``width`` units in G and D (missing one:
  the default networks'; ``g_hidden``/``d_hidden`` given beside them win);
* ``unconditional``: true ignores the cell types (``conditional: false``);
* ``preset``: a name of :data:`PRESETS` (default ``default``), the settings every other key
  overrides; ``paper: true`` is ``preset: paper``;
* ``device``, ``threads``: how to run, not what to train: :func:`runtime` reads them and
  :func:`train_configs` ignores them.

The ``preprocess`` section of ``params.yaml`` holds the fields of
:class:`~lshgan.PreprocessConfig` (:func:`preprocess_config`).

Examples
--------
>>> model, train = train_configs({"k": 3, "epochs": 2, "lr": 1e-3, "width": 64})
>>> model.k, model.g_hidden, train.lr_g, train.lr_d
(3, (64, 64), 0.001, 0.001)
>>> model, train = train_configs({"paper": True, "k": 7}, n_cells=120)
>>> model.g_hidden, model.k, train.loss, train.lr_g, train.batch_size
((16, 16), 7, 'bce', 0.001, 120)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from types import MappingProxyType
from typing import Any, Callable, Mapping

from .errors import ParameterError
from .model import ModelConfig
from .module.training import TrainConfig

#: ``batch_size`` of a full-batch run: every training cell in one batch.
FULL_BATCH = "full"


@dataclass(frozen=True)
class Preset:
    """A named starting point: the model configuration and the training settings."""

    model: Callable[[], ModelConfig]
    train: Mapping[str, Any]
    doc: str = ""


#: The named presets (``preset: NAME``).  ``paper`` is how the paper report trains its
#: ``lshgan-paper`` generator (:mod:`lshgan.baselines.gan`), the model its published
#: comparison uses: the paper's 16-16 networks and mixture input
#: (:meth:`ModelConfig.paper`), binary cross-entropy, one D step per G step, lr 1e-3,
#: full batch.
PRESETS: Mapping[str, Preset] = MappingProxyType({
    "default": Preset(ModelConfig, MappingProxyType({}), "the library's defaults"),
    "paper": Preset(ModelConfig.paper,
                    MappingProxyType({"loss": "bce", "n_critic": 1, "lr_g": 1e-3, "lr_d": 1e-3,
                                      "batch_size": FULL_BATCH}),
                    "the paper's 16-16 networks and mixture input, BCE, lr 1e-3, full batch"),
})

#: Keys that are not configuration fields (see the module doc).
EXTRA_KEYS = ("lr", "width", "depth", "unconditional", "preset", "paper")
#: Keys of how to run: returned by :func:`runtime`, ignored by :func:`train_configs`.
RUNTIME_KEYS = ("device", "threads")
MODEL_KEYS = frozenset(f.name for f in fields(ModelConfig))
TRAIN_KEYS = frozenset(f.name for f in fields(TrainConfig))
#: Every key a flat mapping may hold.
KEYS = MODEL_KEYS | TRAIN_KEYS | frozenset(EXTRA_KEYS) | frozenset(RUNTIME_KEYS)


def preset_name(values: Mapping[str, Any]) -> str:
    """The preset ``values`` start from (``preset``, or ``paper: true``)."""
    name = values.get("preset") or "default"
    if values.get("paper"):
        if name not in ("default", "paper"):
            raise ParameterError(f"paper: true and preset: {name} disagree; give one of them")
        name = "paper"
    if name not in PRESETS:
        raise ParameterError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return str(name)


def _expand(values: Mapping[str, Any]) -> dict[str, Any]:
    """``lr``, ``width``/``depth`` and ``unconditional`` as the fields they stand for."""
    p = dict(values)
    lr = p.pop("lr", None)
    if lr is not None:
        p.setdefault("lr_g", lr)
        p.setdefault("lr_d", lr)
    width, depth = p.pop("width", None), p.pop("depth", None)
    if width is not None or depth is not None:
        base = ModelConfig().g_hidden
        hidden = [int(width or base[0])] * int(depth or len(base))
        p.setdefault("g_hidden", hidden)
        p.setdefault("d_hidden", list(hidden))
    if p.pop("unconditional", False):
        p["conditional"] = False
    return p


def _build(cls, values: dict[str, Any], what: str):
    try:
        return cls(**values)
    except TypeError as err:
        raise ParameterError(f"{what}: {err}") from None


def train_configs(values: Mapping[str, Any], *, n_cells: int | None = None,
                  what: str = "train") -> tuple[ModelConfig, TrainConfig]:
    """``(ModelConfig, TrainConfig)`` of flat settings (see the module doc).

    The preset's settings first, then ``values``; fields named by neither keep their
    defaults.  ``n_cells`` (training cells) resolves ``batch_size: full``.  Unknown keys
    and invalid values raise :class:`~lshgan.errors.ParameterError` (``what`` names the
    source in the message).
    """
    unknown = sorted(set(values) - KEYS)
    if unknown:
        raise ParameterError(f"{what}: unknown key(s) {', '.join(unknown)}; "
                             f"valid: {', '.join(sorted(KEYS))}")
    preset = PRESETS[preset_name(values)]
    given = _expand({k: v for k, v in values.items()
                     if k not in RUNTIME_KEYS and k not in ("preset", "paper")})
    model = _build(ModelConfig, {**asdict(preset.model()),
                                 **{k: v for k, v in given.items() if k in MODEL_KEYS}}, what)
    train = {**preset.train, **{k: v for k, v in given.items() if k in TRAIN_KEYS}}
    if train.get("batch_size") == FULL_BATCH:
        if n_cells is None:
            raise ParameterError(f"{what}: batch_size {FULL_BATCH!r} needs the number of "
                                 "training cells")
        train["batch_size"] = max(2, int(n_cells))
    return model, _build(TrainConfig, train, what)


def runtime(values: Mapping[str, Any]) -> tuple[str, int]:
    """``(device, threads)`` of flat settings: ``device`` (default ``auto``) and
    ``threads`` (CPU threads of torch; 0 or absent: torch's default)."""
    return str(values.get("device") or "auto"), int(values.get("threads") or 0)


#: fields of PreprocessConfig that say how a file is read (``lshgan preprocess`` / ``run``)
READ_OPTIONS = ("transpose", "obs")


def preprocess_config(values: Mapping[str, Any], *, what: str = "preprocess"):
    """:class:`~lshgan.PreprocessConfig` of a mapping of its fields (the ``preprocess``
    section of ``params.yaml``); unknown keys raise :class:`~lshgan.errors.ParameterError`."""
    from .preprocess import PreprocessConfig

    valid = {f.name for f in fields(PreprocessConfig)} - set(READ_OPTIONS)
    read = sorted(set(values) & set(READ_OPTIONS))
    if read:  # the pipeline's preprocess stage reads the ingested .h5ad, never the source file
        raise ParameterError(f"{what}: {', '.join(read)} say how a matrix file is read: the pipeline "
                             "reads dataset.source in its ingest stage; pass --transpose / --obs "
                             "FILE to stages/ingest.py in dvc.yaml (and list FILE under its deps)")
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ParameterError(f"{what}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    return _build(PreprocessConfig, dict(values), what)
