"""Hyperparameter search for an app's models: ``python -m tuning hparams --app sentiment``.

The search space is generic — model kind (``cell``), hidden size, stacked layers, dropout,
learning rate, batch size — declared by :class:`AppHyperModel` (a ``keras_tuner.HyperModel``)
with ``conditional_scope`` where a choice only exists for some model kinds: ``units`` and
``layers`` for recurrent models, ``window`` for the fixed-window model. An *adapter* per app
(:class:`SentimentAdapter`) loads the app's data once, builds the app's own model for a choice
of values (``apps/sentiment/model.py``; stacked layers reuse its pieces) and turns the best
values back into an app config that ``python -m apps.<app> train --config`` accepts.

The oracle is keras-tuner's ``RandomSearch``, ``BayesianOptimization`` or ``Hyperband``
(``--oracle``), each with the package's distributed/atomic-state additions; trials run through
keras-tuner's own ``Tuner`` (per-trial best-epoch checkpoints in ``DIR/search/``), so a killed
search resumes with the same command.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import zlib
from collections.abc import Callable
from typing import Any

import keras_tuner

from apps.common.rundir import RunDir, atomic_write_text
from tuning import cluster
from tuning import distributed as dist
from tuning.config import HparamSearchConfig
from tuning.oracles import BayesianOptimizationOracle, HyperbandOracle, RandomSearchOracle

APP_MODULE = "tuning.hparams"
NON_RECURRENT = ("bow", "window")
Log = Callable[[str], None]


# ----------------------------------------------------------------------------- adapters
class SentimentAdapter:
    """The sentiment app, seen by the hyperparameter search.

    Args:
        config: the search config (data, limit, tokenizer size, lengths, seed).
    """

    app = "sentiment"
    objective = ("val_accuracy", "max")

    def __init__(self, config: HparamSearchConfig) -> None:
        from apps.common.text import WordTokenizer
        from apps.sentiment.data import load_splits

        self.config = config
        self.source = config.data or "builtin:tweets"
        self.data = load_splits(self.source, seed=config.seed, limit=config.limit)
        self.tokenizer = WordTokenizer(config.vocab_size).fit(t for t, _ in self.data.train)
        self.description = (
            f"{self.data.description}; {len(self.data.train)} train / {len(self.data.val)} "
            f"validation texts"
        )

    def datasets(self, batch_size: int) -> tuple[Any, Any]:
        from apps.sentiment.data import make_dataset

        def make(split: str, shuffle: bool) -> Any:
            texts, labels = self.data.split(split)
            return make_dataset(
                texts,
                labels,
                self.tokenizer,
                batch_size,
                shuffle,
                self.config.seed,
                self.config.max_length,
            )

        return make("train", True), make("val", False)

    def build(self, values: dict[str, Any], seed: int) -> Any:
        """The app's model for ``values`` (probabilities out, not compiled)."""
        from apps.sentiment.model import build_model

        kind = values["cell"]
        units = values.get("units") or self.config.units[0]
        layers = values.get("layers") or 1
        dropout = float(values.get("dropout") or 0.0)
        if kind in NON_RECURRENT or layers == 1:
            return build_model(
                kind,
                self.tokenizer.vocab_size,
                self.data.num_classes,
                embed_dim=self.config.embedding_dim,
                units=units,
                dropout=dropout,
                seed=seed,
                window=values.get("window") or 3,
            )
        return self._stacked(kind, units, layers, dropout, seed)

    def _stacked(self, kind: str, units: int, layers: int, dropout: float, seed: int) -> Any:
        """``layers`` recurrent layers of ``kind`` between the app's embedding and classifier."""
        import keras

        from apps.common.cells import parse_cell_name, recurrent_layer
        from apps.sentiment.model import BARE_INPUT_KINDS

        spec = parse_cell_name(kind, flag="--cells")
        ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        x = keras.layers.Embedding(
            self.tokenizer.vocab_size, self.config.embedding_dim, mask_zero=True, name="embedding"
        )(ids)
        width = self.config.embedding_dim
        for k in range(layers):
            if spec.kind in BARE_INPUT_KINDS and width != units:
                x = keras.layers.Dense(units, use_bias=False, name=f"projection_{k}")(x)
            x = recurrent_layer(
                kind, units, return_sequences=k < layers - 1, seed=seed + k, name=f"recurrent_{k}"
            )(x)
            width = units * (2 if spec.bidirectional else 1)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
        probs = keras.layers.Dense(
            self.data.num_classes, activation="softmax", dtype="float32", name="probabilities"
        )(x)
        return keras.Model(ids, probs, name=f"sentiment_{kind}_x{layers}")

    def app_config(self, values: dict[str, Any]) -> dict[str, Any] | None:
        """A ``SentimentConfig`` for the values, or ``None`` (stacked layers: no such field)."""
        from apps.sentiment.config import SentimentConfig

        if (values.get("layers") or 1) > 1:
            return None
        config = SentimentConfig(
            data=self.source,
            model=values["cell"],
            limit=self.config.limit,
            vocab_size=self.config.vocab_size,
            max_length=self.config.max_length,
            embedding_dim=self.config.embedding_dim,
            units=values.get("units") or self.config.units[0],
            window=values.get("window") or 3,
            dropout=float(values.get("dropout") or 0.0),
            epochs=self.config.epochs,
            batch_size=values["batch_size"],
            learning_rate=float(values["learning_rate"]),
            seed=self.config.seed,
        )
        config.validate()
        return config.to_dict()


ADAPTERS = {"sentiment": SentimentAdapter}


# --------------------------------------------------------------------------- hypermodel
class AppHyperModel(keras_tuner.HyperModel):
    """The generic space: cell kind, units, layers, window, dropout, learning rate, batch size.

    ``units`` and ``layers`` are declared in ``hp.conditional_scope("cell", recurrent kinds)``
    (and ``units`` also for ``window``, whose hidden layer it sizes), ``window`` in
    ``hp.conditional_scope("cell", ["window"])``: an oracle only samples them when they matter.

    Args:
        adapter: the app's adapter (data, model builder).
        config: the search config (the choices).
    """

    def __init__(self, adapter: SentimentAdapter, config: HparamSearchConfig) -> None:
        super().__init__(name=f"{config.app}_hparams")
        self.adapter = adapter
        self.config = config

    def declare(self, hp: keras_tuner.HyperParameters) -> dict[str, Any]:
        c = self.config
        cells = list(c.cells)
        cell = hp.Choice("cell", cells)
        recurrent = [k for k in cells if k not in NON_RECURRENT]
        sized = recurrent + (["window"] if "window" in cells else [])
        values: dict[str, Any] = {"cell": cell}
        if sized:
            with hp.conditional_scope("cell", sized):
                values["units"] = hp.Choice("units", list(c.units))
        if recurrent and c.max_layers > 1:
            with hp.conditional_scope("cell", recurrent):
                values["layers"] = hp.Int("layers", 1, c.max_layers)
        if "window" in cells:
            with hp.conditional_scope("cell", ["window"]):
                values["window"] = hp.Int("window", 2, 5)
        if c.max_dropout > 0:
            values["dropout"] = hp.Float("dropout", 0.0, c.max_dropout, step=0.1)
        values["learning_rate"] = hp.Float("learning_rate", c.min_lr, c.max_lr, sampling="log")
        values["batch_size"] = hp.Choice("batch_size", list(c.batch_sizes))
        return values

    def build(self, hp: keras_tuner.HyperParameters) -> Any:
        import keras

        values = self.declare(hp)
        seed = self.config.seed + zlib.crc32(json.dumps(values, sort_keys=True).encode()) % 10000
        keras.utils.set_random_seed(seed)
        model = self.adapter.build(values, seed)
        model.compile(
            optimizer=keras.optimizers.Adam(values["learning_rate"]),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp: keras_tuner.HyperParameters, model: Any, *args: Any, **kwargs: Any) -> Any:
        train, val = self.adapter.datasets(hp.values["batch_size"])
        kwargs.pop("validation_data", None)
        kwargs.setdefault("verbose", 0)
        return model.fit(train, validation_data=val, shuffle=False, **kwargs)


# -------------------------------------------------------------------------------- tuners
class _Timed:
    """Records each trial's wall time and logs one line per trial."""

    log: Log | None = None

    def on_trial_begin(self, trial: Any) -> None:
        self.__dict__.setdefault("_started", {})[trial.trial_id] = time.perf_counter()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial: Any) -> None:
        started = self.__dict__.get("_started", {}).pop(trial.trial_id, None)
        if started is not None:
            self.__dict__.setdefault("seconds", {})[trial.trial_id] = time.perf_counter() - started
        super().on_trial_end(trial)
        if self.log is not None:
            done = self.oracle.get_trial(trial.trial_id)
            score = "failed" if done.score is None else f"{done.score:.4f}"
            values = ", ".join(
                f"{k}={_short(v)}"
                for k, v in done.hyperparameters.values.items()
                if not k.startswith("tuner/")
            )
            self.log(f"[trial {trial.trial_id}] {self.oracle.objective.name}={score}  {values}")


class HparamTuner(_Timed, cluster.DistributedTunerMixin, keras_tuner.Tuner):
    """keras-tuner's ``Tuner`` with trial logging and the distributed additions."""

    def __init__(
        self,
        oracle: Any,
        hypermodel: Any,
        *,
        log: Log | None = None,
        distributed: dist.Distributed | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
        self.log = log
        self.setup_distributed(distributed, "hparams")


class HyperbandHparamTuner(_Timed, cluster.DistributedTunerMixin, keras_tuner.Hyperband):
    """keras-tuner's ``Hyperband`` tuner (epochs per bracket, warm starts) on a given oracle."""

    def __init__(
        self,
        oracle: Any,
        hypermodel: Any,
        *,
        log: Log | None = None,
        distributed: dist.Distributed | None = None,
        **kwargs: Any,
    ) -> None:
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)
        self.log = log
        self.setup_distributed(distributed, "hparams")


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def make_tuner(
    config: HparamSearchConfig,
    adapter: SentimentAdapter,
    run: RunDir,
    *,
    log: Log | None,
    distributed: dist.Distributed | None,
) -> Any:
    """The tuner of ``config.oracle`` (reloads the project in ``DIR/search`` when it exists)."""
    objective = keras_tuner.Objective(*adapter.objective)
    common = {
        "objective": objective,
        "seed": config.seed + 1,
        "max_consecutive_failed_trials": config.trials + 1,
    }
    if config.oracle == "hyperband":
        oracle = HyperbandOracle(max_epochs=max(2, config.epochs), factor=3, **common)
        cls = HyperbandHparamTuner
    elif config.oracle == "bayesian":
        oracle = BayesianOptimizationOracle(
            max_trials=config.trials, num_initial_points=max(2, config.trials // 3), **common
        )
        cls = HparamTuner
    else:
        oracle = RandomSearchOracle(max_trials=config.trials, **common)
        cls = HparamTuner
    oracle.serve_as("hparams", ("hparams",), distributed.worker_timeout if distributed else 120.0)
    return cls(
        oracle,
        AppHyperModel(adapter, config),
        log=log,
        distributed=distributed,
        directory=str(run.path),
        project_name="search",
        overwrite=False,
    )


# ------------------------------------------------------------------------------- results
def trial_rows(tuner: Any, direction: str) -> list[dict[str, Any]]:
    """One row per trial, best first: id, status, score, values, seconds (where known)."""
    seconds = getattr(tuner, "seconds", {})
    rows = []
    for trial_id, trial in tuner.oracle.trials.items():
        values = {k: v for k, v in trial.hyperparameters.values.items()}
        spent = seconds.get(trial_id)
        rows.append(
            {
                "trial": trial_id,
                "status": str(trial.status),
                "score": None if trial.score is None else float(trial.score),
                "values": values,
                "seconds": spent,
            }
        )
    sign = 1 if direction == "min" else -1
    rows.sort(key=lambda r: (r["score"] is None, sign * (r["score"] or 0.0), r["trial"]))
    return rows


def _write_results(run: RunDir, rows: list[dict[str, Any]], objective: str, title: str) -> None:
    keys = sorted({k for r in rows for k in r["values"]}, key=lambda k: (k.startswith("tuner/"), k))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rank", "trial", "status", objective, "seconds", *keys])
    lines = [
        f"# {title}",
        "",
        f"Objective: {objective}.",
        "",
        "| rank | trial | status | " + objective + " | seconds | " + " | ".join(keys) + " |",
        "|---:|---|---|---:|---:|" + "---|" * len(keys),
    ]
    for rank, r in enumerate(rows, 1):
        score = "" if r["score"] is None else f"{r['score']:.4f}"
        spent = "" if r["seconds"] is None else f"{r['seconds']:.1f}"
        cells = [_short(r["values"].get(k, "")) for k in keys]
        writer.writerow([rank, r["trial"], r["status"], score, spent, *cells])
        lines.append(
            f"| {rank} | {r['trial']} | {r['status']} | {score or '—'} | "
            f"{spent or '—'} | " + " | ".join(cells) + " |"
        )
    atomic_write_text(run.path / "leaderboard.csv", buf.getvalue())
    atomic_write_text(run.path / "leaderboard.md", "\n".join(lines) + "\n")


def run_hparam_search(
    config: HparamSearchConfig,
    run_dir: str | os.PathLike | RunDir,
    *,
    distributed: dist.Distributed | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Run (or resume) the hyperparameter search of ``config`` in ``run_dir``.

    Returns:
        The summary written to ``DIR/metrics.json`` (empty for a worker): the objective, the
        best trial's values and score, ``app_config`` (path of ``best_config.json``, when the
        best values fit the app's config).
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir.prepare(run_dir, APP_MODULE)
    if not run.exists:
        run.write_config(config.to_dict())
    if distributed is None:
        dist.clear_env()
    else:
        distributed.apply_env()
    adapter = ADAPTERS[config.app](config)
    if log is not None:
        log(f"data: {adapter.description}")
    tuner = make_tuner(config, adapter, run, log=log, distributed=distributed)
    if log is not None:
        worker = distributed is not None and distributed.role == "worker"
        remaining = None if worker else tuner.remaining_trials
        if worker:
            todo = f"training for the chief at {distributed.address}"
        elif remaining is None:
            todo = f"Hyperband brackets up to {max(2, config.epochs)} epochs"
        else:
            todo = f"{remaining} of {config.trials} trials to run"
        log(f"{config.oracle} search over {', '.join(config.cells)}: {todo}")
    tuner.search(epochs=config.epochs, verbose=0)
    if distributed is not None and distributed.role == "worker":
        return {}
    objective, direction = adapter.objective
    rows = trial_rows(tuner, direction)
    _write_results(run, rows, objective, f"Hyperparameter search: {config.app}, {config.oracle}")
    summary: dict[str, Any] = {
        "objective": objective,
        "direction": direction,
        "trials": len(rows),
        "best": None,
        "app_config": None,
    }
    best = next((r for r in rows if r["score"] is not None), None)
    if best is not None:
        values = {k: v for k, v in best["values"].items() if not k.startswith("tuner/")}
        summary["best"] = {"trial": best["trial"], "score": best["score"], "values": values}
        run.write_json("best_hparams.json", summary["best"])
        app_config = adapter.app_config(values)
        if app_config is not None:
            path = run.write_json("best_config.json", app_config)
            summary["app_config"] = str(path)
        else:
            summary["app_config_note"] = (
                f"the best model stacks {values.get('layers')} recurrent layers; the "
                f"{config.app} app's config has no such field, so no best_config.json"
            )
    run.write_json("metrics.json", summary)
    return summary
