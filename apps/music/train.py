"""Train and evaluate a music model in a run directory.

``train_and_evaluate(config, run_dir)`` is the importable entry point (the CLI's ``train``, the
main job and the end-to-end tests call it): it reads and splits the data, trains resumably (see
:mod:`apps.common.training`), then evaluates the best model on the test split and writes
``metrics.json``.

Evaluation runs every test piece whole (one sequence, state carried from the first step), not
in training windows:

- ``roll``: ``nll_per_step`` — for every time step the negative log-likelihood of the frame
  under 88 independent Bernoullis, summed over the keys, averaged over all test time steps (the
  standard figure of Boulanger-Lewandowski et al. 2012 / Chung et al. 2014). Every frame is
  predicted, the first one from an all-off start frame. For comparison with papers that leave
  each piece's first frame out, also ``nll_per_step_from_second`` (mean over the other frames)
  and ``nll_per_step_tcn`` (first frame left out, mean per piece, then mean over pieces, as Bai
  et al. 2018's code computes it); and ``frame_accuracy`` (TP / (TP + FP + FN) of keys
  predicted on with p > 0.5).
- ``events``: ``pitch_accuracy`` (the most likely pitch given the true history), step and
  duration accuracy and mean absolute error in quarter notes, and the NLL per token and note.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from apps.common.errors import RunDirError
from apps.common.rundir import RunDir, atomic_write_json
from apps.music.config import MusicConfig
from apps.music.events import EventCodec
from apps.music.notes import KEYS, PITCH_LOW, Piece

APP_MODULE = "apps.music"
EVAL_ROWS = 16  # pieces per evaluation batch
EVAL_BUCKET = 64  # evaluation batches are padded to a multiple of this many steps


def _say(log: Callable[[str], None] | None, message: str) -> None:
    if log is not None:
        log(message)


# ------------------------------------------------------------------------- tables
def make_codec(config: MusicConfig) -> EventCodec:
    """The event codec of a config."""
    return EventCodec(config.ticks_per_quarter, config.max_step_ticks, config.max_duration_ticks,
                      config.velocity_bins)  # fmt: skip


def vocab_for(config: MusicConfig) -> dict[str, Any]:
    """``vocab.json``: what maps music to model inputs and back."""
    if config.representation == "roll":
        return {
            "representation": "roll",
            "keys": KEYS,
            "pitch_low": PITCH_LOW,
            "steps_per_quarter": config.steps_per_quarter,
            "inputs": "frame t-1 as 88 floats (1 = key down; key k is MIDI pitch pitch_low + k); "
            "the first input is all zeros",
            "outputs": "88 logits; P(key k down at t) = sigmoid(logit_k)",
        }
    return {"representation": "events", **make_codec(config).to_dict()}


# ------------------------------------------------------------------- a trained run
@dataclasses.dataclass
class TrainedRun:
    """A run dir's model with what it needs to read and write music.

    Attributes:
        run: the run directory.
        config: its config.
        model: the best model (``model.keras``).
        codec: the event codec (``events`` runs), else ``None``.
    """

    run: RunDir
    config: MusicConfig
    model: Any
    codec: EventCodec | None


def read_run_config(run: RunDir) -> tuple[MusicConfig, dict[str, Any]]:
    """The run's :class:`MusicConfig` and its whole ``config.json``."""
    meta = run.read_meta()
    return MusicConfig.from_dict(meta["config"], source=str(run.config_json)), meta


def load_trained(run: RunDir) -> TrainedRun:
    """Load ``model.keras`` (safe mode, after ``import seqlayers``) and the run's tables."""
    import apps.music.ensemble  # noqa: F401  (registers the ensemble's layer)
    import seqlayers  # noqa: F401  (registers the custom layers)

    config, _ = read_run_config(run)
    vocab = run.read_json("vocab.json")
    codec = None
    if config.representation == "events":
        try:
            codec = EventCodec.from_dict(vocab)
        except (KeyError, TypeError, ValueError) as e:
            raise RunDirError(
                f"--run-dir: {run.vocab_json} is not an event vocabulary ({e})"
            ) from None
    model = run.load_model()
    return TrainedRun(run, config, model, codec)


# ------------------------------------------------------------------------ metrics
def roll_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-step NLL of frames under independent Bernoullis: ``sum_k -log P(y_k)``.

    Args:
        logits: ``(..., 88)`` (``P(key on) = sigmoid(logit)``).
        targets: ``(..., 88)`` of 0/1.

    Returns:
        float64 ``(...)``: ``sum_k softplus(l_k) - y_k l_k`` (stable for large logits).

    Example:
        >>> roll_nll(np.zeros((1, 88)), np.ones((1, 88)))  # every key p = 1/2
        array([60.99...])   # 88 * log 2
    """
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    softplus = np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))
    return (softplus - y * x).sum(axis=-1)


def _batches(
    sequences: Sequence[tuple[np.ndarray, np.ndarray]],
) -> Iterator[tuple[list[int], np.ndarray]]:
    """Indices and padded inputs of length-sorted batches (fixed row count, lengths rounded up
    to ``EVAL_BUCKET``, so few shapes are compiled)."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i][0]))
    for start in range(0, len(order), EVAL_ROWS):
        idx = order[start : start + EVAL_ROWS]
        width = -(-max(len(sequences[i][0]) for i in idx) // EVAL_BUCKET) * EVAL_BUCKET
        first = sequences[idx[0]][0]
        batch = np.zeros((EVAL_ROWS, width, *first.shape[1:]), dtype=first.dtype)
        for row, i in enumerate(idx):
            batch[row, : len(sequences[i][0])] = sequences[i][0]
        yield idx, batch


def sequence_logits(
    model: Any, sequences: Sequence[tuple[np.ndarray, np.ndarray]]
) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, logits)`` of every whole sequence, run as one sequence from a zero state."""
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    for idx, batch in _batches(sequences):
        dtype = np.float32 if batch.dtype != np.int32 and batch.ndim == 3 else np.int32
        logits = np.asarray(forward(batch.astype(dtype)))
        for row, i in enumerate(idx):
            yield i, logits[row, : len(sequences[i][0])]


def roll_metrics(model: Any, sequences: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """NLL per time step three ways, frame accuracy, and the counts.

    Returns:
        ``nll_per_step`` (every frame, mean over all test frames: the headline figure),
        ``nll_per_step_from_second`` (each piece's first frame left out, mean over frames),
        ``nll_per_step_tcn`` (first frame left out, mean per piece, then over pieces: what
        Bai et al. 2018's code reports), ``frame_accuracy``, ``steps``, ``pieces``.
    """
    total, steps, later_total, later_steps, piece_means = 0.0, 0, 0.0, 0, []
    tp = fp = fn = 0
    for i, logits in sequence_logits(model, sequences):
        targets = sequences[i][1]
        nll = roll_nll(logits, targets)
        total += float(nll.sum())
        steps += len(nll)
        if len(nll) > 1:
            later_total += float(nll[1:].sum())
            later_steps += len(nll) - 1
            piece_means.append(float(nll[1:].mean()))
        on, truth = logits > 0.0, targets > 0
        tp += int((on & truth).sum())
        fp += int((on & ~truth).sum())
        fn += int((~on & truth).sum())
    return {
        "nll_per_step": total / max(steps, 1),
        "nll_per_step_from_second": later_total / max(later_steps, 1),
        "nll_per_step_tcn": float(np.mean(piece_means)) if piece_means else 0.0,
        "frame_accuracy": tp / max(tp + fp + fn, 1),
        "steps": steps,
        "pieces": len(sequences),
    }


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def event_metrics(
    model: Any, sequences: Sequence[tuple[np.ndarray, np.ndarray]], codec: EventCodec
) -> dict[str, Any]:
    """Pitch accuracy, step/duration accuracy and error (quarter notes), NLL per token/note."""
    ranges = codec.ranges()
    nll_total, tokens = 0.0, 0
    hits = {k: 0 for k in ranges}
    counts = {k: 0 for k in ranges}
    abs_err = {"step": 0.0, "duration": 0.0}
    for i, logits in sequence_logits(model, sequences):
        targets = sequences[i][1].astype(np.int64)
        logp = _log_softmax(logits)
        nll_total -= float(logp[np.arange(len(targets)), targets].sum())
        tokens += len(targets)
        for kind, (lo, hi) in ranges.items():
            at = (targets >= lo) & (targets < hi)
            if not at.any():
                continue
            predicted = lo + logits[at, lo:hi].argmax(axis=-1)
            hits[kind] += int((predicted == targets[at]).sum())
            counts[kind] += int(at.sum())
            if kind in abs_err:
                abs_err[kind] += float(np.abs(predicted - targets[at]).sum())
    notes = counts["pitch"]
    tpq = codec.ticks_per_quarter
    out = {
        "pitch_accuracy": hits["pitch"] / max(counts["pitch"], 1),
        "step_accuracy": hits["step"] / max(counts["step"], 1),
        "duration_accuracy": hits["duration"] / max(counts["duration"], 1),
        "step_mae_quarters": abs_err["step"] / max(counts["step"], 1) / tpq,
        "duration_mae_quarters": abs_err["duration"] / max(counts["duration"], 1) / tpq,
        "nll_per_token": nll_total / max(tokens, 1),
        "nll_per_note": nll_total / max(notes, 1),
        "notes": notes,
        "tokens": tokens,
        "pieces": len(sequences),
    }
    if "velocity" in ranges:
        out["velocity_accuracy"] = hits["velocity"] / max(counts["velocity"], 1)
    return out


def evaluate_trained(
    trained: TrainedRun,
    pieces: Sequence[Piece],
    *,
    data: str,
    split: str = "test",
    write: bool = True,
) -> dict[str, Any]:
    """Metrics of the trained model on whole ``pieces``; writes ``metrics.json`` when asked.

    Returns:
        :func:`roll_metrics` or :func:`event_metrics`, plus ``representation``, ``cell``,
        ``units``, ``layers``, ``params``, ``data``, ``split`` and (when known)
        ``train_seconds``.
    """
    from apps.common import training
    from apps.common.errors import DataError
    from apps.music.data import encode_pieces

    config = trained.config
    sequences = encode_pieces(pieces, config.representation,
                              steps_per_quarter=config.steps_per_quarter, codec=trained.codec)  # fmt: skip
    if not sequences:
        raise DataError(f"--data: {data} has no {split} pieces to evaluate")
    if config.representation == "roll":
        metrics = roll_metrics(trained.model, sequences)
    else:
        metrics = event_metrics(trained.model, sequences, trained.codec)
    metrics.update(representation=config.representation, cell=config.cell, units=config.units,
                   layers=config.layers, params=int(trained.model.count_params()), data=data,
                   split=split)  # fmt: skip
    seconds = training.read_train_seconds(trained.run)
    if seconds is not None:
        metrics["train_seconds"] = round(seconds, 2)
    if write:
        atomic_write_json(trained.run.metrics_json, metrics)
    return metrics


# -------------------------------------------------------------------------- train
def train_and_evaluate(
    config: MusicConfig,
    run_dir: str | os.PathLike | RunDir,
    *,
    quiet: bool = True,
    log: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` (resuming what is there), then evaluate on the test split.

    Args:
        config: the app config (``MusicConfig.tiny()`` in tests).
        run_dir: a path (new, empty, or a music run dir to resume) or a :class:`RunDir`.
        quiet: no progress bars.
        log: called with one-line progress messages (the CLI passes ``print``).
        warn: called with one line per skipped input file (the CLI prints to stderr).

    Returns:
        The test metrics (also in ``DIR/metrics.json``), see :func:`evaluate_trained`.
    """
    from apps.common import training
    from apps.common.progress import Progress
    from apps.music.data import count_steps, encode_pieces, load_splits, make_dataset
    from apps.music.model import build_model, compile_model

    run = run_dir if isinstance(run_dir, RunDir) else RunDir.prepare(run_dir, APP_MODULE)
    if run.exists:
        saved, _ = read_run_config(run)
        if saved.differences(config).keys() - set(MusicConfig.RESUMABLE):
            raise RunDirError(f"--run-dir: {run.path} holds a run with another config")
    training.seed_everything(config.seed)
    with Progress("reading music", quiet=quiet) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.count)

        data = load_splits(config.data, seed=config.seed, limit=config.limit,
                           representation=config.representation, warn=warn,
                           on_progress=progress)  # fmt: skip
    _say(log, f"data: {data.description}")
    codec = make_codec(config) if config.representation == "events" else None
    encode = {"steps_per_quarter": config.steps_per_quarter, "codec": codec}
    train_seqs = encode_pieces(data.train, config.representation, **encode)
    valid_seqs = encode_pieces(data.valid, config.representation, **encode)
    unit = "time steps" if config.representation == "roll" else "tokens"
    _say(log, f"pieces: {len(data.train)} train, {len(data.valid)} valid, {len(data.test)} test; "
              f"{count_steps(train_seqs):,} training {unit}")  # fmt: skip
    run.write_config(config.to_dict(), data_description=data.description)
    if not run.vocab_json.is_file():
        run.write_json("vocab.json", vocab_for(config))
    batches = {"seq_len": config.seq_len, "batch_size": config.batch_size, "seed": config.seed}
    train_ds = make_dataset(train_seqs, config.representation, shuffle=True,
                            transpose=config.transpose, **batches)  # fmt: skip
    val_ds = make_dataset(valid_seqs, config.representation, shuffle=False, **batches)
    model = build_model(config.representation, config.cell, units=config.units,
                        layers=config.layers, vocab_size=codec.vocab_size if codec else None,
                        embedding_dim=config.embedding_dim, dropout=config.dropout,
                        seed=config.seed)  # fmt: skip
    compile_model(model, config.representation, learning_rate=config.learning_rate,
                  grad_clip=config.grad_clip)  # fmt: skip
    what = "piano roll (88 sigmoids)" if codec is None else f"events ({codec.vocab_size} tokens)"
    _say(log, f"model: {config.cell} x{config.layers}, {config.units} units, {what}, "
              f"{model.count_params():,} parameters")  # fmt: skip
    start_epoch = training.restored_epoch(run.checkpoints / training.BACKUP_SUBDIR)
    if start_epoch:
        _say(
            log,
            f"resuming from epoch {start_epoch} of {config.epochs} (checkpoint in {run.checkpoints})",
        )
    callbacks = []
    if config.patience is not None:  # halve the step size on plateaus, then stop
        import keras

        callbacks += [
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                              patience=max(1, config.patience // 3), verbose=0),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience),
        ]  # fmt: skip
    training.fit(model, train_ds, val_ds, run, config.epochs, quiet=quiet, callbacks=callbacks,
                 weight_noise=config.weight_noise)  # fmt: skip
    trained = load_trained(run)
    return evaluate_trained(trained, data.test, data=config.data, split="test")
