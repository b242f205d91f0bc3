"""The cell search: one keras-tuner study per strategy, every candidate sized to one budget.

``run_cell_search(config, run_dir)`` runs the strategies of ``config`` one after the other, each
as a keras-tuner project in ``DIR/studies/<strategy>/`` with ``overwrite=False`` (re-running the
same command resumes: completed trials are kept, the interrupted one runs again), then writes
the leaderboard (:mod:`tuning.report`).

- ``evolution``: :class:`~tuning.evolution.EvolutionOracle` over the genotype encoding, seeded
  with the LSTM, GRU and MUT presets (and ``--init`` files);
- ``random`` / ``bayesian``: keras-tuner's ``RandomSearchOracle`` / ``BayesianOptimizationOracle``
  over the same encoding (:class:`~tuning.encoding.GenotypeSpace`), drawing again when a
  proposal is not a valid graph or does not fit the budget;
- ``lstm`` / ``gru``: the baselines, the preset with its learning rate tuned by random search
  in the same number of trials.

Every trial (:class:`CellTuner.run_trial`) decodes its genotype, sizes it to the parameter
budget (:func:`tuning.budget.size_for_budget`), and trains it on the task with a fixed step
budget and early stopping; a genotype already scored at the same learning rate (same
fingerprint) is not trained again — its score is reused.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import keras_tuner
from keras_tuner.engine.base_tuner import BaseTuner

from apps.common.errors import UsageError
from apps.common.rundir import RunDir, atomic_write_json
from seqlayers.genotype import CellGenotype
from seqlayers.genotype_presets import get_preset
from tuning import cluster
from tuning import distributed as dist
from tuning.budget import MIN_UNITS, block_params, fits, size_for_budget
from tuning.config import CellSearchConfig
from tuning.encoding import GenotypeSpace, describe
from tuning.evolution import EvolutionOracle
from tuning.oracles import BayesianOptimizationOracle, CandidateFilter, RandomSearchOracle
from tuning.report import TrialRecord, write_outputs
from tuning.tasks import Task, TrainSettings, make_task, train_candidate

APP_MODULE = "tuning.cells"
SEARCHED = ("evolution", "random", "bayesian")
BASELINES = ("lstm", "gru")
EVOLUTION_SEEDS = ("lstm", "gru", "mut1", "mut2", "mut3")
LR_SPREAD = 4.0  # baselines tune the learning rate in [lr / 4, 4 lr]
TIMING_FILE = "timing.json"
Log = Callable[[str], None]


def task_input_dim(config: CellSearchConfig) -> int:
    """Width of the cell's input ``x_t`` for the config's task (known before loading data)."""
    return 88 if config.task == "jsb" else config.embedding_dim


def load_genotype_file(path: str | os.PathLike, *, flag: str = "--init") -> CellGenotype:
    """Read and validate a genotype JSON; ``UsageError`` naming the file and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{flag}: no such genotype file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{flag}: cannot read {path}: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{flag}: {path} is not valid JSON: {e.msg} at line {e.lineno}") from None
    try:
        return CellGenotype.from_dict(data).validate()
    except (ValueError, TypeError) as e:
        raise UsageError(f"{flag}: {path} is not a valid cell genotype: {e}") from None


def check_budget(config: CellSearchConfig, seeds: list[tuple[str, CellGenotype]]) -> None:
    """``UsageError`` when a baseline, or every candidate we can name, exceeds the budget."""
    dim, budget = task_input_dim(config), config.param_budget
    for name in BASELINES:
        if name in config.strategies and not fits(get_preset(name), dim, budget):
            need = block_params(get_preset(name), dim, MIN_UNITS)
            raise UsageError(
                f"--param-budget: {budget} is too small for the {name} baseline "
                f"({need} params at {MIN_UNITS} units on {dim} inputs)"
            )
    if any(s in SEARCHED for s in config.strategies):
        named = seeds + [("vanilla", get_preset("vanilla"))]
        if not any(fits(g, dim, budget) for _, g in named):
            smallest = min(block_params(g, dim, MIN_UNITS) for _, g in named)
            raise UsageError(
                f"--param-budget: {budget} is too small for any candidate: the smallest "
                f"(vanilla, {MIN_UNITS} units on {dim} inputs) needs {smallest} params"
            )


# --------------------------------------------------------------------------- hypermodel
class CellHyperModel(keras_tuner.HyperModel):
    """A study's search space: the genotype encoding (or a fixed preset) and the learning rate.

    ``build`` only declares the hyperparameters (the tuner trains the candidate itself).

    Args:
        space: the genotype encoding, for searched strategies.
        preset: the fixed cell of a baseline (``lstm`` / ``gru``).
        learning_rate: fixed for searched strategies; the centre of the baselines' range.
    """

    def __init__(
        self, space: GenotypeSpace | None, preset: str | None, learning_rate: float
    ) -> None:
        super().__init__(name="cells")
        if (space is None) == (preset is None):
            raise ValueError("give exactly one of space and preset")
        self.space = space
        self.preset = preset
        self.learning_rate = float(learning_rate)

    def declare_hyperparameters(self, hp: keras_tuner.HyperParameters) -> None:
        self.build(hp)

    def build(self, hp: keras_tuner.HyperParameters) -> None:
        if self.preset is not None:
            hp.Fixed("cell", self.preset)
            lr = self.learning_rate
            hp.Float("learning_rate", lr / LR_SPREAD, lr * LR_SPREAD, sampling="log", default=lr)
        else:
            self.space.declare(hp)
            hp.Fixed("learning_rate", self.learning_rate)

    def genotype(self, values: Mapping[str, Any]) -> CellGenotype:
        """The genotype of trial ``values`` (``ValueError`` when not a valid graph)."""
        if self.preset is not None:
            return get_preset(self.preset)
        return self.space.decode(values)

    def encode(self, genotype: CellGenotype) -> dict[str, Any]:
        values = self.space.encode(genotype)
        values["learning_rate"] = self.learning_rate
        return values

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """A uniform random point of the space (see ``GenotypeSpace.random_values``)."""
        return {**self.space.random_values(rng), "learning_rate": self.learning_rate}


# ------------------------------------------------------------------------------- tuner
class CellTuner(cluster.DistributedTunerMixin, BaseTuner):
    """Runs cell-search trials: decode, size to the budget, train, report the metric.

    Args:
        oracle: the study's oracle.
        hypermodel: its :class:`CellHyperModel`.
        study: the strategy's name.
        task: the loaded :class:`~tuning.tasks.Task`.
        settings: the training budget of every trial.
        budget: the parameter budget.
        seed: base seed of the trials' weights.
        cache: ``{(fingerprint, learning rate): metrics}`` shared by the studies of a process.
        log: called with one line per trial (``None``: silent).
        distributed: chief / worker settings, or ``None`` for a local search.
        **kwargs: ``BaseTuner`` arguments (``directory``, ``project_name``).
    """

    def __init__(
        self,
        oracle: keras_tuner.Oracle,
        hypermodel: CellHyperModel,
        *,
        study: str,
        task: Task,
        settings: TrainSettings,
        budget: int,
        seed: int,
        cache: dict[tuple[str, float], dict[str, float]],
        log: Log | None = None,
        distributed: dist.Distributed | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
        self.study = study
        self.task = task
        self.settings = settings
        self.budget = budget
        self.seed = seed
        self.cache = cache
        self.log = log
        self.trial_seconds = 0.0
        self.trained = 0
        self.reused = 0
        self._fp_by_trial: dict[str, str | None] = {}
        self.setup_distributed(distributed, study)

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
        start = time.perf_counter()
        values = trial.hyperparameters.values
        try:
            genotype = self.hypermodel.genotype(values)
        except ValueError as e:
            raise keras_tuner.errors.FailedTrialError(f"invalid genotype: {e}") from None
        lr = float(values["learning_rate"])
        key = (genotype.fingerprint(), round(lr, 12))
        cached = self.cache.get(key) or self._lookup(key)
        if cached is not None:
            self.reused += 1
            self._say(trial, genotype, cached, reused=True)
            return {**cached, "seconds": 0.0, "reused": 1.0}
        try:
            sizing = size_for_budget(genotype, self.task.input_dim, self.budget)
        except ValueError as e:
            raise keras_tuner.errors.FailedTrialError(str(e)) from None
        seed = zlib.crc32(f"{self.seed}/{self.study}/{trial.trial_id}".encode()) % (2**31)
        try:
            result = train_candidate(
                self.task, genotype, sizing, learning_rate=lr, settings=self.settings, seed=seed
            )
        except FloatingPointError as e:
            self.trial_seconds += time.perf_counter() - start  # a failed trial is trial time
            raise keras_tuner.errors.FailedTrialError(str(e)) from None
        seconds = time.perf_counter() - start
        metrics = {
            self.task.objective_name: float(result["metric"]),
            "params": float(sizing.params),
            "units": float(sizing.units),
            "steps": float(result["steps"]),
            "seconds": seconds,
            "reused": 0.0,
        }
        self.cache[key] = metrics
        self.trial_seconds += seconds
        self.trained += 1
        self._say(trial, genotype, metrics, reused=False)
        return metrics

    # timing: wall time of the search vs time inside trials (the search's own overhead)
    timing_file: Path | None = None
    timing_base: Mapping[str, Mapping[str, float]] = {}

    def on_search_begin(self) -> None:
        self._segment_start = time.perf_counter()
        super().on_search_begin()

    def on_trial_end(self, trial: Any) -> None:
        super().on_trial_end(trial)
        self._write_timing()

    def on_search_end(self) -> None:
        self._write_timing()
        super().on_search_end()

    def _write_timing(self) -> None:
        if self.timing_file is None or not hasattr(self, "_segment_start"):
            return
        base = self.timing_base.get(self.study, {})
        entry = {
            "search_seconds": base.get("search_seconds", 0.0)
            + (time.perf_counter() - self._segment_start),
            "trial_seconds": base.get("trial_seconds", 0.0) + self.trial_seconds,
            "trials_trained": int(base.get("trials_trained", 0)) + self.trained,
            "trials_reused": int(base.get("trials_reused", 0)) + self.reused,
        }
        atomic_write_json(self.timing_file, {**self.timing_base, self.study: entry})

    def _lookup(self, key: tuple[str, float]) -> dict[str, float] | None:
        """The metrics of a completed trial of this study with the same genotype and rate."""
        for trial in self.oracle.get_best_trials(100000):
            if trial.status != "COMPLETED" or trial.score is None:
                continue
            if trial.trial_id not in self._fp_by_trial:
                try:
                    fp = self.hypermodel.genotype(trial.hyperparameters.values).fingerprint()
                except ValueError:
                    fp = None
                self._fp_by_trial[trial.trial_id] = fp
            lr = float(trial.hyperparameters.values.get("learning_rate", math.nan))
            if (self._fp_by_trial[trial.trial_id], round(lr, 12)) == key:
                names = [n for n in trial.metrics.metrics if trial.metrics.exists(n)]
                found = {n: float(trial.metrics.get_last_value(n)) for n in names}
                if self.task.objective_name in found:
                    return found
        return None

    def _say(
        self, trial: Any, genotype: CellGenotype, metrics: Mapping[str, float], *, reused: bool
    ) -> None:
        if self.log is None:
            return
        number = int(trial.trial_id) + 1 if str(trial.trial_id).isdigit() else trial.trial_id
        total = self.oracle.max_trials
        how = "reused score" if reused else f"{metrics['seconds']:.1f}s"
        self.log(
            f"[{self.study} {number}/{total}] {describe(genotype)} {genotype.fingerprint()} "
            f"units={int(metrics['units'])} params={int(metrics['params']):,} "
            f"{self.task.objective_name}={metrics[self.task.objective_name]:.4f} ({how})"
        )


# ------------------------------------------------------------------------------ studies
def evolution_seeds(config: CellSearchConfig) -> list[tuple[str, CellGenotype]]:
    """The evolution's starting genotypes: the presets, then the ``--init`` files."""
    seeds = [(name, get_preset(name)) for name in EVOLUTION_SEEDS]
    for path in config.init:
        seeds.append((Path(path).name, load_genotype_file(path)))
    return seeds


def make_study(
    study: str,
    index: int,
    config: CellSearchConfig,
    task: Task,
    run: RunDir,
    *,
    space: GenotypeSpace,
    seeds: list[tuple[str, CellGenotype]],
    cache: dict,
    log: Log | None,
    distributed: dist.Distributed | None,
) -> CellTuner:
    """The tuner of one strategy (its keras-tuner project reloads when it exists)."""
    objective = keras_tuner.Objective(task.objective_name, task.direction)
    settings = TrainSettings(
        config.steps, config.eval_every, config.patience, config.batch_size, config.run_eagerly
    )
    oracle_seed = config.seed * 10 + index + 1
    common = {
        "objective": objective,
        "max_trials": config.trials,
        "seed": oracle_seed,
        "max_consecutive_failed_trials": config.trials + 1,
    }
    if study in BASELINES:
        hypermodel = CellHyperModel(None, study, config.learning_rate)
        oracle = RandomSearchOracle(**common)
    else:
        hypermodel = CellHyperModel(space, None, config.learning_rate)

        def accept(genotype: CellGenotype) -> str | None:
            try:
                space.check_candidate(genotype)
                size_for_budget(genotype, task.input_dim, config.param_budget)
            except ValueError as e:
                return str(e)
            return None

        candidates = CandidateFilter(hypermodel.genotype, accept, hypermodel.sample)
        if study == "evolution":
            oracle = EvolutionOracle(
                encode=hypermodel.encode,
                candidates=candidates,
                seeds=seeds,
                population=config.population,
                **common,
            )
        elif study == "random":
            oracle = RandomSearchOracle(**common)
            oracle.candidates = candidates
        else:
            initial = max(2, config.trials // 3)
            oracle = BayesianOptimizationOracle(num_initial_points=initial, **common)
            oracle.candidates = candidates
    oracle.serve_as(
        study, tuple(config.strategies), distributed.worker_timeout if distributed else 120.0
    )
    return CellTuner(
        oracle,
        hypermodel,
        study=study,
        task=task,
        settings=settings,
        budget=config.param_budget,
        seed=config.seed,
        cache=cache,
        log=log,
        distributed=distributed,
        directory=str(run.path / "studies"),
        project_name=study,
        overwrite=False,
    )


def collect_records(tuner: CellTuner) -> list[TrialRecord]:
    """The leaderboard rows of a study (from its oracle: works on the chief too)."""
    oracle = tuner.oracle
    objective = tuner.task.objective_name
    lineage = getattr(oracle, "lineage", {})
    records = []
    for trial_id in sorted(oracle.trials, key=lambda t: (len(t), t)):
        trial = oracle.trials[trial_id]
        values = trial.hyperparameters.values
        try:
            genotype = tuner.hypermodel.genotype(values)
        except (ValueError, KeyError):
            genotype = None

        def metric(name: str, trial: Any = trial) -> float | None:
            if trial.metrics.exists(name):
                return float(trial.metrics.get_last_value(name))
            return None

        note = ""
        if trial_id in lineage:
            info = lineage[trial_id]
            note = info.get("origin") or (
                f"mutant of {info.get('parent', '?')}: " + "; ".join(info.get("mutations", []))
            )
        if trial.status != "COMPLETED" and trial.message:
            note = (note + " " + trial.message.strip().splitlines()[-1])[:300].strip()
        params, units, seconds = metric("params"), metric("units"), metric("seconds")
        records.append(
            TrialRecord(
                strategy=tuner.study,
                trial=trial_id,
                status=str(trial.status),
                fingerprint="" if genotype is None else genotype.fingerprint(),
                cell="" if genotype is None else describe(genotype),
                genotype=genotype,
                params=None if params is None else int(params),
                units=None if units is None else int(units),
                metric=metric(objective) if trial.status == "COMPLETED" else None,
                learning_rate=values.get("learning_rate"),
                seconds=seconds,
                reused=bool(metric("reused")),
                note=note,
            )
        )
    return records


def _read_timing(run: RunDir) -> dict[str, dict[str, float]]:
    path = run.path / TIMING_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def run_cell_search(
    config: CellSearchConfig,
    run_dir: str | os.PathLike | RunDir,
    *,
    distributed: dist.Distributed | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Run (or resume) the cell search of ``config`` in ``run_dir``.

    Args:
        config: the search (``CellSearchConfig.tiny()`` in tests).
        run_dir: a new or empty folder, or this search's run dir (resumes).
        distributed: ``None`` for a local search; a chief serves the oracles and writes the
            results, a worker only trains.
        log: called with one-line progress messages.

    Returns:
        The summary written to ``DIR/metrics.json`` (empty for a worker).

    Raises:
        UsageError: a budget too small, an unreadable ``--init`` genotype or data source,
            an unreachable chief.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir.prepare(run_dir, APP_MODULE)
    if not run.exists:
        run.write_config(config.to_dict())
    seeds = evolution_seeds(config)
    check_budget(config, seeds)
    if distributed is None:
        dist.clear_env()
    else:
        distributed.apply_env()
    task = make_task(
        config.task,
        config.data,
        seq_len=config.seq_len,
        max_chars=config.max_chars,
        embedding_dim=config.embedding_dim,
        limit=config.limit,
        seed=config.seed,
    )
    _say(log, f"data: {task.description}")
    _say(
        log,
        f"budget: {config.param_budget:,} weights per recurrent block; {config.trials} "
        f"trials per strategy ({', '.join(config.strategies)})",
    )
    space = GenotypeSpace(config.max_nodes, bare_x=config.bare_x)
    cache: dict[tuple[str, float], dict[str, float]] = {}
    timing = _read_timing(run)
    records: list[TrialRecord] = []
    role = distributed.role if distributed else "local"
    for index, study in enumerate(config.strategies):
        tuner = make_study(
            study,
            index,
            config,
            task,
            run,
            space=space,
            seeds=seeds,
            cache=cache,
            log=log,
            distributed=distributed,
        )
        if role == "local":
            tuner.timing_file = run.path / TIMING_FILE
            tuner.timing_base = timing
        if study == "evolution" and log is not None and role != "worker":
            usable = [label for label, _, _ in tuner.oracle.usable_seeds()]
            left_out = [label for label, _ in seeds if label not in usable]
            log(
                f"evolution starts from: {', '.join(usable) or 'nothing'}"
                + (
                    f" (left out, not in the space or over budget: {', '.join(left_out)})"
                    if left_out
                    else ""
                )
            )
        if role == "worker":
            _say(log, f"strategy {study}: training for the chief at {distributed.address}")
        else:
            _say(
                log,
                f"strategy {study}: {tuner.remaining_trials} of {config.trials} trials "
                "to run" + (" (chief: serving the workers)" if distributed else ""),
            )
        tuner.search(verbose=0)
        if role == "local":
            timing = _read_timing(run)
        if role != "worker":
            records += collect_records(tuner)
    if role == "worker":
        return {}
    label = f"validation {task.metric}, {task.unit}"
    settings = {
        "task": config.task,
        "param budget": f"{config.param_budget:,}",
        "trials per strategy": config.trials,
        "steps per trial": config.steps,
        "eval every": config.eval_every,
        "patience": config.patience,
        "batch": config.batch_size,
        "seed": config.seed,
    }
    summary = write_outputs(
        run,
        records,
        title=f"Cell search on {config.task}",
        metric_label=label,
        direction=task.direction,
        settings=settings,
        timing={} if role != "local" else timing,
    )
    summary["data"] = task.description
    summary["run_dir"] = str(run.path)
    return summary


def _say(log: Log | None, message: str) -> None:
    if log is not None:
        log(message)
