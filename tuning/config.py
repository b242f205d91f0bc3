"""Configurations of the two searches: typed, strict, with ``tiny`` / ``small`` / ``base`` presets.

A search's config is written to its run dir (``config.json``); re-running the same command on
that run dir resumes it, and only ``trials`` may change on a resume (more trials continue the
search; anything else would mix incomparable trials).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from apps.common.config import AppConfig
from apps.common.errors import ConfigError

TASKS = ("charlm", "jsb", "sentiment")
STRATEGIES = ("evolution", "random", "bayesian", "lstm", "gru")
DEFAULT_STRATEGIES = ("evolution", "random", "lstm", "gru")
HPARAM_APPS = ("sentiment",)
HPARAM_ORACLES = ("random", "bayesian", "hyperband")
SENTIMENT_MODELS = (
    "lstm",
    "gru",
    "bilstm",
    "bigru",
    "vanilla",
    "mut1",
    "mut2",
    "mut3",
    "bow",
    "window",
)


def _check(pairs: list[tuple[str, bool, str]], config: AppConfig) -> None:
    for key, ok, rule in pairs:
        if not ok:
            raise ConfigError(f"config: {key} must be {rule}, got {getattr(config, key)!r}")


@dataclasses.dataclass(frozen=True)
class CellSearchConfig(AppConfig):
    """A search over cell genotypes (``python -m tuning cells``).

    Args:
        task: ``charlm`` (default: Python stdlib text), ``jsb`` (JSB Chorales) or ``sentiment``.
        data: the task's data source (``None``: the task's default).
        strategies: run in this order; ``evolution`` (mutating the best genotypes, from the
            LSTM/GRU/MUT presets), ``random`` (keras-tuner random search over the genotype
            encoding), ``bayesian`` (keras-tuner Bayesian optimization over it), ``lstm`` and
            ``gru`` (the baselines: the preset with its learning rate tuned).
        trials: trials per strategy (the same budget for every strategy).
        param_budget: weights of every candidate's recurrent block (cells are sized to it).
        steps: most training steps per trial; eval_every: steps between validations;
        patience: validations without improvement before a trial stops.
        batch_size, seq_len: training batches (``seq_len``: window length of jsb/charlm).
        learning_rate: Adam's rate for searched cells; baselines tune it in [lr/4, 4 lr].
        max_nodes: node slots of the genotype encoding (9 holds the LSTM).
        population: parents the evolution picks from (its best genotypes so far).
        embedding_dim: input width of the cell for charlm / sentiment.
        max_chars: characters of text read for charlm.
        limit: pieces (jsb) or examples (sentiment) per split; ``None``: all.
        init: genotype JSON files added to the evolution's starting population.
        bare_x: allow ``x`` to enter a node without a linear map (MUT1, MUT2 and such cells
            need inputs ``units`` wide: the task projects them, counted in the budget; apps
            given such a ``genotype:PATH`` must feed ``units``-wide inputs). Off by default,
            so that the best genotype works in every app.
        seed: seeds the oracles, the data order and every trial's weights.
        run_eagerly: train eagerly (no graph tracing; only faster for tiny models).
    """

    RESUMABLE: ClassVar[tuple[str, ...]] = ("trials",)

    task: str = "charlm"
    data: str | None = None
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    trials: int = 6
    param_budget: int = 8000
    steps: int = 150
    eval_every: int = 50
    patience: int = 2
    batch_size: int = 32
    seq_len: int = 64
    learning_rate: float = 5e-3
    max_nodes: int = 9
    population: int = 8
    embedding_dim: int = 16
    max_chars: int = 100_000
    limit: int | None = None
    init: tuple[str, ...] = ()
    bare_x: bool = False
    seed: int = 1234
    run_eagerly: bool = False

    @classmethod
    def tiny(cls) -> CellSearchConfig:
        """Seconds per trial: tests and smoke runs."""
        return cls(
            trials=3,
            param_budget=600,
            steps=4,
            eval_every=2,
            patience=1,
            batch_size=8,
            seq_len=12,
            embedding_dim=6,
            max_chars=6000,
            population=4,
            run_eagerly=True,
        )

    @classmethod
    def small(cls) -> CellSearchConfig:
        """The main job: 4 strategies x 6 trials on stdlib text, a few minutes per strategy."""
        return cls()

    @classmethod
    def base(cls) -> CellSearchConfig:
        """A real comparison on JSB Chorales (the benchmark's setting)."""
        return cls(
            task="jsb",
            trials=20,
            param_budget=20000,
            steps=600,
            eval_every=100,
            patience=2,
            batch_size=16,
            seq_len=64,
            population=8,
        )

    def validate(self) -> None:
        _check(
            [
                ("task", self.task in TASKS, "one of " + ", ".join(TASKS)),
                ("strategies", bool(self.strategies), "a non-empty list"),
                ("trials", self.trials >= 1, ">= 1"),
                ("param_budget", self.param_budget >= 1, ">= 1"),
                ("steps", self.steps >= 1, ">= 1"),
                ("eval_every", self.eval_every >= 1, ">= 1"),
                ("patience", self.patience >= 0, ">= 0"),
                ("batch_size", self.batch_size >= 1, ">= 1"),
                ("seq_len", self.seq_len >= 2, ">= 2"),
                ("learning_rate", self.learning_rate > 0, "> 0"),
                ("max_nodes", 1 <= self.max_nodes <= 32, "in [1, 32]"),
                ("population", self.population >= 1, ">= 1"),
                ("embedding_dim", self.embedding_dim >= 1, ">= 1"),
                ("max_chars", self.max_chars >= 100, ">= 100"),
                ("limit", self.limit is None or self.limit >= 1, ">= 1 or null"),
                ("seed", self.seed >= 0, ">= 0"),
            ],
            self,
        )
        for name in self.strategies:
            if name not in STRATEGIES:
                raise ConfigError(
                    f"config: strategies: unknown strategy {name!r} (choose from "
                    f"{', '.join(STRATEGIES)})"
                )
        if len(set(self.strategies)) != len(self.strategies):
            raise ConfigError(f"config: strategies: a strategy is listed twice: {self.strategies}")


@dataclasses.dataclass(frozen=True)
class HparamSearchConfig(AppConfig):
    """A hyperparameter search for an app's models (``python -m tuning hparams``).

    Args:
        app: the app whose models are tuned (``sentiment``).
        oracle: ``random`` (RandomSearch), ``bayesian`` (BayesianOptimization) or ``hyperband``.
        data: the app's data source (``None``: the app's default).
        limit: examples per split (``None``: all).
        trials: trials for random / bayesian (Hyperband sizes its own brackets from ``epochs``).
        epochs: epochs per trial (Hyperband's ``max_epochs``).
        cells: the model kinds searched (the ``cell`` choice).
        units: the choices of hidden size.
        max_layers: stacked recurrent layers, 1 to this.
        batch_sizes: the choices of batch size.
        min_lr, max_lr: the learning-rate range (log scale).
        max_dropout: dropout is searched in [0, this] by steps of 0.1.
        embedding_dim, vocab_size, max_length: fixed preprocessing of the app.
        seed: seeds the oracle, the data splits and the weights.
    """

    RESUMABLE: ClassVar[tuple[str, ...]] = ("trials",)

    app: str = "sentiment"
    oracle: str = "random"
    data: str | None = None
    limit: int | None = 2000
    trials: int = 8
    epochs: int = 2
    cells: tuple[str, ...] = ("lstm", "gru", "bilstm", "mut3", "bow")
    units: tuple[int, ...] = (16, 32, 64)
    max_layers: int = 2
    batch_sizes: tuple[int, ...] = (32, 64)
    min_lr: float = 1e-3
    max_lr: float = 1e-2
    max_dropout: float = 0.5
    embedding_dim: int = 32
    vocab_size: int = 5000
    max_length: int = 48
    seed: int = 1234

    @classmethod
    def tiny(cls) -> HparamSearchConfig:
        return cls(
            limit=120,
            trials=2,
            epochs=1,
            cells=("gru", "bow"),
            units=(8,),
            batch_sizes=(32,),
            embedding_dim=8,
            vocab_size=500,
            max_length=16,
        )

    @classmethod
    def small(cls) -> HparamSearchConfig:
        return cls()

    @classmethod
    def base(cls) -> HparamSearchConfig:
        return cls(
            limit=None,
            trials=30,
            epochs=4,
            units=(32, 64, 128),
            batch_sizes=(32, 64, 128),
            embedding_dim=64,
            vocab_size=10000,
        )

    def validate(self) -> None:
        _check(
            [
                ("app", self.app in HPARAM_APPS, "one of " + ", ".join(HPARAM_APPS)),
                ("oracle", self.oracle in HPARAM_ORACLES, "one of " + ", ".join(HPARAM_ORACLES)),
                ("limit", self.limit is None or self.limit >= 10, ">= 10 or null"),
                ("trials", self.trials >= 1, ">= 1"),
                ("epochs", self.epochs >= 1, ">= 1"),
                ("cells", bool(self.cells), "a non-empty list"),
                ("units", bool(self.units) and min(self.units) >= 1, "a list of integers >= 1"),
                ("max_layers", 1 <= self.max_layers <= 4, "in [1, 4]"),
                (
                    "batch_sizes",
                    bool(self.batch_sizes) and min(self.batch_sizes) >= 1,
                    "a list of integers >= 1",
                ),
                ("min_lr", 0 < self.min_lr <= self.max_lr, "in (0, max_lr]"),
                ("max_dropout", 0.0 <= self.max_dropout < 1.0, "in [0, 1)"),
                ("embedding_dim", self.embedding_dim >= 1, ">= 1"),
                ("vocab_size", self.vocab_size >= 3, ">= 3"),
                ("max_length", self.max_length >= 1, ">= 1"),
                ("seed", self.seed >= 0, ">= 0"),
            ],
            self,
        )
        for cell in self.cells:
            if cell not in SENTIMENT_MODELS:
                raise ConfigError(
                    f"config: cells: unknown model {cell!r} for {self.app} (choose from "
                    f"{', '.join(SENTIMENT_MODELS)})"
                )
