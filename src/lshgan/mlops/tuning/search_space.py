"""What a study searches: the search-space file (``conf/search_space.yaml``) as a
:class:`SearchSpace`, and how a trial's values become the ``train`` settings of
:mod:`lshgan.config`.

The file is data, not code: Optuna distributions of keys of the ``train`` section of
``params.yaml`` (``params``), settings every trial uses (``fixed``), the pruner, the
sampler's arguments, how often a trial is scored while it trains (``report_every``) and
the random forest of the validation score (``scoring``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ParameterError

if TYPE_CHECKING:  # heavy imports stay out of `lshgan --help`
    import optuna

#: Search space used when none is given (relative to the current folder, then to the project).
DEFAULT_SEARCH_SPACE = Path("conf") / "search_space.yaml"
#: Random forest of the validation score (final, and intermediate = quick).
SCORING = {"n_estimators": 300, "n_splits": 5, "quick_n_estimators": 50, "quick_n_splits": 3}
_NOT_SEARCHABLE = ("seed", "checkpoint_every", "device")  # set by the command, not by a trial
_DIST_KEYS = {"int": {"low", "high", "step", "log"}, "float": {"low", "high", "step", "log"},
              "categorical": {"choices"}}


def _train_keys() -> set[str]:
    """Keys of the ``train`` section of params.yaml (:func:`lshgan.config.train_configs`)."""
    from ...config import KEYS

    return set(KEYS)


@dataclass
class SearchSpace:
    """What a study searches, read from YAML (see ``conf/search_space.yaml``).

    Parameters
    ----------
    params
        Name -> Optuna distribution: ``{"type": "int"|"float", "low", "high"[, "step",
        "log"]}`` or ``{"type": "categorical", "choices": [...]}``.  Names are keys of the
        ``train`` section of params.yaml (:mod:`lshgan.config`): fields of
        :class:`~lshgan.ModelConfig` or :class:`~lshgan.TrainConfig`, ``lr`` (both learning
        rates), ``width`` and ``depth`` (``depth`` hidden layers of ``width`` units in G and D).
    fixed
        Settings every trial uses (same names).
    pruner
        ``{"name": <class in optuna.pruners>, **arguments}``; steps are epochs.
    sampler
        Arguments of :class:`optuna.samplers.TPESampler` except ``seed``.
    report_every
        Epochs between intermediate validation scores.
    scoring
        Random forest of the validation score: ``n_estimators`` and ``n_splits`` (folds) of
        the final score, ``quick_n_estimators`` and ``quick_n_splits`` of intermediate ones.

    Examples
    --------
    >>> space = SearchSpace(params={"k": {"type": "int", "low": 2, "high": 9}},
    ...                     fixed={"epochs": 20})
    >>> space.configs({"k": 4}, seed=0)[0].k
    4
    """

    params: dict[str, dict]
    fixed: dict[str, Any] = field(default_factory=dict)
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "MedianPruner"})
    sampler: dict[str, Any] = field(default_factory=dict)
    report_every: int = 10
    scoring: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = _train_keys() - set(_NOT_SEARCHABLE)
        if not isinstance(self.params, dict) or not self.params:
            raise ParameterError("search space: 'params' must map at least one name to a distribution")
        for name in [*self.params, *self.fixed]:
            if name not in known:
                raise ParameterError(
                    f"search space: unknown name {name!r}; use keys of the train section of "
                    f"params.yaml (not {', '.join(_NOT_SEARCHABLE)})")
        for name, spec in self.params.items():
            kind = spec.get("type") if isinstance(spec, dict) else None
            if kind not in _DIST_KEYS:
                raise ParameterError(f"search space: {name!r} needs type int, float or categorical")
            extra = set(spec) - _DIST_KEYS[kind] - {"type"}
            if extra:
                raise ParameterError(f"search space: {name!r} ({kind}) has unknown keys {sorted(extra)}")
            if kind == "categorical":
                if not spec.get("choices"):
                    raise ParameterError(f"search space: {name!r} needs a non-empty 'choices' list")
            elif not ("low" in spec and "high" in spec and spec["low"] <= spec["high"]):
                raise ParameterError(f"search space: {name!r} needs low <= high")
        if not isinstance(self.report_every, int) or self.report_every < 1:
            raise ParameterError(f"search space: report_every must be a positive integer, got {self.report_every!r}")
        unknown = set(self.scoring) - set(SCORING)
        if unknown:
            raise ParameterError(f"search space: unknown scoring keys {sorted(unknown)}; "
                                 f"allowed: {', '.join(SCORING)}")
        self.scoring = {**SCORING, **self.scoring}
        if not all(isinstance(v, int) and v >= 2 for v in self.scoring.values()):
            raise ParameterError(f"search space: scoring values must be integers >= 2, got {self.scoring}")
        if "seed" in self.sampler:
            raise ParameterError("search space: the sampler seed comes from --seed, not the file")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike | None = None) -> "SearchSpace":
        """Read a search-space file (default :data:`DEFAULT_SEARCH_SPACE`)."""
        import yaml

        path = find_search_space(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ParameterError(f"{path}: not valid YAML ({err})") from None
        allowed = {f.name for f in fields(cls)}
        unknown = set(data) - allowed
        if unknown:
            raise ParameterError(f"{path}: unknown section(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        try:
            return cls(**data)
        except ParameterError as err:
            raise ParameterError(f"{path}: {err}") from None

    def suggest(self, trial: "optuna.Trial") -> dict[str, Any]:
        """Draw one value per searched name from ``trial``."""
        values = {}
        for name, spec in self.params.items():
            kw = {k: v for k, v in spec.items() if k != "type"}
            if spec["type"] == "int":
                values[name] = trial.suggest_int(name, **kw)
            elif spec["type"] == "float":
                values[name] = trial.suggest_float(name, **kw)
            else:
                values[name] = trial.suggest_categorical(name, kw["choices"])
        return values

    def train_params(self, values: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
        """A trial's ``train`` section: ``base`` (params.yaml's), then ``fixed``, then ``values``.

        ``width``/``depth`` become ``g_hidden``/``d_hidden``, so that they override the
        base's layer widths.
        """
        base = {k: v for k, v in (base or {}).items() if k not in _NOT_SEARCHABLE}
        return {**base, **expand_layers({**self.fixed, **values})}

    def configs(self, values: dict[str, Any], *, seed: int, base: dict[str, Any] | None = None,
                n_cells: int | None = None):
        """``(ModelConfig, TrainConfig)`` of a trial (:func:`lshgan.config.train_configs`);
        unnamed fields keep their defaults; ``n_cells``: the cells it trains on."""
        from ...config import train_configs

        return train_configs({**self.train_params(values, base), "seed": int(seed)}, n_cells=n_cells)

    def make_pruner(self) -> "optuna.pruners.BasePruner":
        import optuna

        spec = dict(self.pruner)
        name = spec.pop("name", "MedianPruner")
        cls = getattr(optuna.pruners, str(name), None)
        if not (isinstance(cls, type) and issubclass(cls, optuna.pruners.BasePruner)):
            raise ParameterError(f"search space: pruner {name!r} is not a class of optuna.pruners")
        try:
            return cls(**spec)
        except TypeError as err:
            raise ParameterError(f"search space: pruner {name}: {err}") from None

    def make_sampler(self, seed: int) -> "optuna.samplers.BaseSampler":
        import optuna

        try:
            return optuna.samplers.TPESampler(seed=seed, **self.sampler)
        except TypeError as err:
            raise ParameterError(f"search space: sampler: {err}") from None

    def to_dict(self) -> dict:
        return asdict(self)


def expand_layers(params: dict[str, Any]) -> dict[str, Any]:
    """``width`` and ``depth`` replaced by the ``g_hidden`` and ``d_hidden`` they stand for.

    Examples
    --------
    >>> expand_layers({"k": 3, "width": 64, "depth": 3})
    {'k': 3, 'g_hidden': [64, 64, 64], 'd_hidden': [64, 64, 64]}
    """
    from ...config import train_configs

    p = dict(params)
    layers = {k: p.pop(k) for k in ("width", "depth") if k in p}
    if layers:
        model, _ = train_configs(layers)
        p.setdefault("g_hidden", list(model.g_hidden))
        p.setdefault("d_hidden", list(model.d_hidden))
    return p


def find_search_space(path: str | os.PathLike | None = None) -> Path:
    """The search-space file: ``path``, else ``conf/search_space.yaml`` here or in the project."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ParameterError(f"{path}: search-space file not found")
        return path
    candidates = [Path.cwd() / DEFAULT_SEARCH_SPACE,
                  Path(__file__).resolve().parents[4] / DEFAULT_SEARCH_SPACE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ParameterError(f"no search-space file: {DEFAULT_SEARCH_SPACE} is missing here and in the "
                         "project; pass --search-space")
