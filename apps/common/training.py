"""Training-loop pieces shared by the apps: resumable ``fit`` with the run dir's callbacks.

:func:`fit` wires, in this order:

1. :class:`BestModelCheckpoint` — the best ``model.keras`` (monitored on the validation set),
   written atomically; the best value so far is kept in ``checkpoints/best.json`` so a resumed
   run keeps comparing against it;
2. ``keras.callbacks.CSVLogger(DIR/history.csv, append=True)`` — before each run the file is
   trimmed to the epochs the restored state has finished, so a resumed run never duplicates or
   loses rows;
3. ``keras.callbacks.BackupAndRestore(DIR/checkpoints/backup)`` — saves every epoch (and every N
   steps when asked); a killed run continues from the last backup when the same command is run
   again (keras restarts the interrupted epoch from the backed-up weights);
4. ``keras.callbacks.TensorBoard(DIR/logs)``;

then draws ``plots/curves.png`` from the history. Under ``train --distribute`` it trains a replica
of the model made in the strategy's scope on per-worker parts of each batch and copies the
weights back (:mod:`apps.common.distribute`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras

from apps.common import distribute, plots
from apps.common.rundir import (
    BACKUP_METADATA,
    BACKUP_SUBDIR,
    BACKUP_WEIGHTS,
    RunDir,
    atomic_output,
    atomic_write_json,
    atomic_write_text,
)

BEST_STATE = "best.json"
TRAIN_TIME = "train_time.json"  # in checkpoints/: seconds of training, summed over resumes


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the backend (``keras.utils.set_random_seed``)."""
    keras.utils.set_random_seed(int(seed))


def _monitor_mode(monitor: str, mode: str) -> str:
    if mode in ("min", "max"):
        return mode
    if mode != "auto":
        raise ValueError(f"mode must be 'auto', 'min' or 'max'. Received: mode={mode!r}")
    name = monitor.lower()
    return "max" if any(k in name for k in ("acc", "auc", "f1", "precision", "recall")) else "min"


class BestModelCheckpoint(keras.callbacks.Callback):
    """Save the model whenever ``monitor`` improves, atomically (temp file, then rename).

    Args:
        filepath: where the best model goes (``DIR/model.keras``).
        state_path: JSON file remembering the best value across resumed runs.
        monitor: the log key to watch (``val_loss``); if an epoch's logs lack it, the model is
            saved every epoch.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy-like names).
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        state_path: str | os.PathLike,
        monitor: str = "val_loss",
        mode: str = "auto",
    ):
        super().__init__()
        self.filepath = Path(filepath)
        self.state_path = Path(state_path)
        self.monitor = monitor
        self.mode = _monitor_mode(monitor, mode)
        self.best: float | None = None
        self.best_epoch: int | None = None

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch = None, None
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if state.get("monitor") == self.monitor and self.filepath.is_file():
            self.best, self.best_epoch = state.get("best"), state.get("epoch")

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and not self._improved(float(value)):
            return
        with atomic_output(self.filepath) as tmp:
            self.model.save(tmp)
        self.best = None if value is None else float(value)
        self.best_epoch = epoch
        atomic_write_json(
            self.state_path,
            {"monitor": self.monitor, "mode": self.mode, "best": self.best, "epoch": epoch},
        )


class EpochAndStepBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that, given ``save_freq=N``, backs up every N steps AND every epoch.

    Plain keras, given an integer ``save_freq``, skips the end-of-epoch backup; this subclass
    adds it back by running the epoch-mode save at each epoch end. It also records the right
    epoch in step backups of a resumed run (keras counts epochs from 0 in each ``fit`` call
    until the first epoch ends).
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch  # keras' own counter; see the class docstring

    def on_epoch_end(self, epoch, logs=None):
        freq = self.save_freq
        self.save_freq = "epoch"
        try:
            super().on_epoch_end(epoch, logs)
        finally:
            self.save_freq = freq


def _load_metadata(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("epoch"), int) else None


def restored_epoch(backup_dir: str | os.PathLike) -> int:
    """The epoch a run in ``backup_dir`` resumes from (0 for a fresh start).

    Repairs what a kill can leave behind: an unreadable metadata file is replaced by keras'
    ``.bkp`` copy when that one is whole; otherwise the partial backup is removed (fresh start).
    (Weights damaged otherwise are refused before training starts: the train commands call
    :func:`~apps.common.rundir.check_backup` when they open a run dir to resume.)
    """
    backup_dir = Path(backup_dir)
    meta_path, weights = backup_dir / BACKUP_METADATA, backup_dir / BACKUP_WEIGHTS
    if not meta_path.exists() and not weights.exists():
        return 0
    meta = _load_metadata(meta_path)
    if meta is None:
        prev_meta = _load_metadata(Path(f"{meta_path}.bkp"))
        prev_weights = Path(f"{weights}.bkp")
        if prev_meta is not None and prev_weights.is_file():
            shutil.copyfile(prev_weights, weights)
            atomic_write_json(meta_path, prev_meta, indent=None)
            meta = prev_meta
    if meta is None or not weights.is_file():
        shutil.rmtree(backup_dir, ignore_errors=True)
        return 0
    return int(meta["epoch"])


def trim_history(history_csv: str | os.PathLike, keep_below: int) -> int:
    """Keep only the rows of ``history_csv`` with ``epoch < keep_below`` (atomic rewrite).

    Malformed rows (a line cut short by a kill) are dropped. The file is removed when no row is
    left, so ``CSVLogger`` writes a fresh header. Returns the number of rows kept.
    """
    path = Path(history_csv)
    if not path.is_file():
        return 0
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        rows = list(csv.reader(f))
    if not rows or "epoch" not in rows[0]:
        path.unlink()
        return 0
    header, col = rows[0], rows[0].index("epoch")
    kept = []
    for row in rows[1:]:
        if len(row) != len(header):
            continue
        try:
            epoch = int(float(row[col]))
        except ValueError:
            continue
        if epoch < keep_below:
            kept.append(row)
    if not kept:
        path.unlink()
        return 0
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(kept)
    atomic_write_text(path, buf.getvalue())
    return len(kept)


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` did.

    Attributes:
        history: this call's per-epoch logs (``keras.callbacks.History.history``).
        initial_epoch: the epoch this call started from (> 0 when it resumed).
        epochs: the requested total number of epochs.
        best: the best monitored value so far (``None`` if not monitored).
        best_epoch: the epoch of that value.
        curves_png: the training-curve plot, if drawn.
    """

    history: dict[str, list[float]]
    initial_epoch: int
    epochs: int
    best: float | None
    best_epoch: int | None
    curves_png: Path | None

    @property
    def resumed(self) -> bool:
        return self.initial_epoch > 0


def read_train_seconds(run: RunDir) -> float | None:
    """Seconds this run has trained: every finished epoch, summed over resumed calls (a killed
    call keeps the epochs it finished). ``None``: unknown."""
    try:
        return float(json.loads((run.checkpoints / TRAIN_TIME).read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class TrainClock(keras.callbacks.Callback):
    """Adds the wall time of each finished epoch to ``checkpoints/train_time.json`` (the
    first epoch of a call also counts the call's start), so that a killed run keeps it."""

    def __init__(self, run: RunDir) -> None:
        super().__init__()
        self.run = run
        self._mark = time.monotonic()

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._mark = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.monotonic()
        total = (read_train_seconds(self.run) or 0.0) + (now - self._mark)
        atomic_write_json(self.run.checkpoints / TRAIN_TIME, {"seconds": total})
        self._mark = now


class WeightNoise(keras.callbacks.Callback):
    """Gaussian weight noise (Graves 2011, "Practical variational inference"): every
    training step computes its gradients at ``w + n``, ``n ~ N(0, stddev^2)`` drawn afresh for
    each trainable weight, and the update is applied to the clean ``w``.

    The noise is added before each training batch and taken away right after it, so the
    validation pass, the checkpoints and the saved model only ever see clean weights.
    :func:`fit` runs it before every other callback. The update lands on ``w`` unchanged
    because the optimizer's step does not depend on the weights' values (no weight decay):
    ``(w + n + step) - n = w + step``.

    Args:
        stddev: the noise's standard deviation (> 0).
        seed: seed of the noise (``None``: drawn from the global seed that
            :func:`seed_everything` sets).
    """

    def __init__(self, stddev: float, seed: int | None = None) -> None:
        super().__init__()
        if not stddev > 0:
            raise ValueError(f"stddev must be > 0. Received: stddev={stddev}")
        self.stddev = float(stddev)
        self._seed = keras.random.SeedGenerator(seed)
        self._noise: list[Any] = []

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._noise = []
        for variable in self.model.trainable_variables:
            noise = keras.random.normal(
                variable.shape, stddev=self.stddev, dtype=variable.dtype, seed=self._seed
            )
            variable.assign_add(noise)
            self._noise.append(noise)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        for variable, noise in zip(self.model.trainable_variables, self._noise):
            variable.assign_sub(noise)
        self._noise = []


def fit(
    model: keras.Model,
    train_ds: Any,
    val_ds: Any,
    run_dir: RunDir,
    epochs: int,
    *,
    monitor: str | None = None,
    mode: str = "auto",
    backup_every_steps: int | None = None,
    tensorboard: bool = True,
    quiet: bool = False,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    plot: bool = True,
    weight_noise: float = 0.0,
    **fit_kwargs: Any,
) -> FitResult:
    """Train ``model`` resumably in ``run_dir``; the same call on the same dir continues.

    Args:
        model: a compiled keras model (built, or buildable from one batch of ``train_ds``).
        train_ds: training data (a ``tf.data.Dataset`` of ``(x, y)`` batches).
        val_ds: validation data or ``None``.
        run_dir: the run directory (``model.keras``, ``history.csv``, ``checkpoints/``…).
        epochs: total epochs (a resumed run trains only the missing ones).
        monitor: metric choosing the best model; default ``val_loss`` (``loss`` without
            validation data).
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        backup_every_steps: also back up every this many steps (mid-epoch resume).
        tensorboard: write TensorBoard logs to ``DIR/logs``.
        quiet: no progress bar.
        callbacks: extra callbacks, run after the run-dir ones.
        plot: draw ``plots/curves.png`` at the end.
        weight_noise: standard deviation of Gaussian weight noise during training
            (:class:`WeightNoise`; 0: none).
        **fit_kwargs: passed to ``model.fit`` (e.g. ``class_weight``).

    Returns:
        A :class:`FitResult`.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1. Received: epochs={epochs}")
    if backup_every_steps is not None and backup_every_steps < 1:
        raise ValueError(f"backup_every_steps must be >= 1 or None. Received: {backup_every_steps}")
    if not model.built:
        for x, _ in train_ds.take(1):
            model(x)
    trainee = model  # under --distribute: a replica made in the strategy's scope
    strategy = distribute.training_strategy()
    if strategy is not None:
        trainee = distribute.replicate(model, strategy)
        train_ds, val_ds = distribute.distribute_datasets(train_ds, val_ds, strategy)
    run_dir.ensure_layout()
    for folder in (run_dir.path, run_dir.checkpoints):  # temp files left by a killed run
        for stale in folder.glob(".tmp-*"):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
    monitor = monitor or ("val_loss" if val_ds is not None else "loss")
    backup_dir = run_dir.checkpoints / BACKUP_SUBDIR
    initial_epoch = restored_epoch(backup_dir)
    trim_history(run_dir.history_csv, initial_epoch)
    if initial_epoch == 0:  # a fresh start forgets an earlier run's best value
        (run_dir.checkpoints / BEST_STATE).unlink(missing_ok=True)

    best_cb = BestModelCheckpoint(
        run_dir.model_path, run_dir.checkpoints / BEST_STATE, monitor=monitor, mode=mode
    )
    backup_cb = EpochAndStepBackup(
        str(backup_dir),
        save_freq=backup_every_steps or "epoch",
        double_checkpoint=True,
        delete_checkpoint=False,
    )
    cbs: list[keras.callbacks.Callback] = [
        # first: the noise is gone before any other callback sees the weights after a batch
        *([WeightNoise(weight_noise)] if weight_noise else []),
        best_cb,
        keras.callbacks.CSVLogger(str(run_dir.history_csv), append=True),
        backup_cb,
        TrainClock(run_dir),
    ]
    if tensorboard:
        cbs.append(keras.callbacks.TensorBoard(log_dir=str(run_dir.logs)))
    cbs.extend(callbacks)

    best_cb.on_train_begin()  # reads the best value so far (also when nothing is left to train)
    if hasattr(train_ds, "element_spec"):  # tf.data: shuffled by its pipeline, not by fit
        fit_kwargs.setdefault("shuffle", False)
    if initial_epoch >= epochs:
        history: dict[str, list[float]] = {}
    else:
        verbose = 0 if quiet else ("auto" if sys.stdout.isatty() else 2)
        with warnings.catch_warnings():
            # tf.data pipelines with bucketing have unknown length: keras learns it in epoch 1
            # and warns that the data "ran out"; that is expected here.
            warnings.filterwarnings("ignore", message=r".*ran out of data.*")
            hist = trainee.fit(
                train_ds,
                validation_data=val_ds,
                epochs=epochs,
                callbacks=cbs,
                verbose=verbose,
                **fit_kwargs,
            )
        history = dict(hist.history)
        if trainee is not model:
            distribute.copy_back(trainee, model)

    curves = None
    if plot and run_dir.history_csv.is_file():
        curves = plots.training_curves(run_dir.history_csv, run_dir.plots / "curves.png")
    return FitResult(history, initial_epoch, epochs, best_cb.best, best_cb.best_epoch, curves)
