"""Train and evaluate a character-level language model in a run directory.

``train_and_evaluate(config, run_dir)`` is the importable entry point (the CLI's ``train``, the
main job and the end-to-end test call it): it reads the corpus, fits the character vocabulary
on the training text (or reloads it when resuming), cuts both texts into ``batch_size``
contiguous streams, and trains a ``stateful`` model on consecutive ``bptt``-character windows
(truncated BPTT: the state flows from window to window and is reset at the start of every epoch
and of every validation pass) with global gradient-norm clipping. The best model is then saved
as a stateless ``model.keras`` (any batch, any length) and evaluated on the validation text in
nats and bits per character.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from apps.charlm.config import CharLMConfig
from apps.common.errors import RunDirError
from apps.common.rundir import RunDir, atomic_output, atomic_write_json, load_keras_model

APP_MODULE = "apps.charlm"


def _say(log: Callable[[str], None] | None, message: str) -> None:
    if log is not None:
        log(message)


# ------------------------------------------------------------------------ metrics
def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis (float64, numerically stable)."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def evaluate_ids(model: Any, ids: np.ndarray, batch_size: int, bptt: int) -> dict[str, float]:
    """Cross-entropy of ``model`` on ``ids``, read as truncated-BPTT streams with carried state.

    The ids are cut into ``batch_size`` contiguous streams (:func:`apps.charlm.data.stream_starts`,
    fewer when the text is short) and read window after window by a stateful copy of ``model``
    starting from zero state, so every character is predicted from all the text before it in its
    stream.

    Args:
        model: a language model built by :func:`apps.charlm.model.build_model`.
        ids: int character ids of the text.
        batch_size: streams to read in parallel (reduced to what the text allows).
        bptt: window length.

    Returns:
        ``{"nats_per_char", "bits_per_char", "perplexity", "chars"}`` over the predicted
        characters.

    Raises:
        DataError: the text is shorter than ``bptt + 1`` characters.
    """
    from apps.charlm.data import check_enough, window_arrays
    from apps.charlm.model import reset_states, stateless_copy

    ids = np.asarray(ids, dtype=np.int32)
    batch = max(1, min(batch_size, (len(ids) - 1) // bptt))
    check_enough(len(ids), batch, bptt, "evaluation")
    x, y = window_arrays(ids, batch, bptt)
    stateful = stateless_copy(model, batch_size=batch, seq_len=bptt, stateful=True)
    reset_states(stateful)
    total = 0.0
    for xw, yw in zip(x, y):
        logp = log_softmax(np.asarray(stateful.predict_on_batch(xw)))
        total -= float(np.take_along_axis(logp, yw[..., None].astype(np.int64), axis=-1).sum())
    chars = int(y.size)
    nats = total / chars
    return {"nats_per_char": nats, "bits_per_char": nats / math.log(2.0),
            "perplexity": math.exp(nats), "chars": chars}  # fmt: skip


# ------------------------------------------------------------------- a trained run
@dataclasses.dataclass
class TrainedRun:
    """A run dir's model with its vocabulary.

    Attributes:
        run: the run directory.
        config: its config.
        vocab: the :class:`~apps.charlm.data.CharVocab` from ``vocab.json``.
        model: the best model (``model.keras``, stateless).
    """

    run: RunDir
    config: CharLMConfig
    vocab: Any
    model: Any


def read_run_config(run: RunDir) -> tuple[CharLMConfig, dict[str, Any]]:
    """The run's :class:`CharLMConfig` and its whole ``config.json``."""
    meta = run.read_meta()
    return CharLMConfig.from_dict(meta["config"], source=str(run.config_json)), meta


def load_vocab(run: RunDir) -> Any:
    """``vocab.json`` of a run (:class:`RunDirError` when missing or malformed)."""
    from apps.charlm.data import CharVocab

    try:
        return CharVocab.load(run.vocab_json)
    except FileNotFoundError:
        raise RunDirError(
            f"--run-dir: {run.path} has no vocab.json (was training started?)"
        ) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise RunDirError(
            f"--run-dir: {run.vocab_json} is not a character vocabulary ({e})"
        ) from None


def load_model_file(path: os.PathLike) -> Any:
    """A saved model, loaded with ``safe_mode=True`` (after registering the custom objects)."""
    import seqlayers  # noqa: F401  (registers the custom layers)
    from apps.charlm import model as _model  # noqa: F401  (registers bits_per_char)

    return load_keras_model(path, compile=False)


def load_trained(run: RunDir) -> TrainedRun:
    """Load ``model.keras`` (safe mode), ``vocab.json`` and the config of a trained run."""
    config, _ = read_run_config(run)
    vocab = load_vocab(run)
    model = load_model_file(run.require_model())
    return TrainedRun(run, config, vocab, model)


def evaluate_trained(
    trained: TrainedRun, val_text: str, *, data: str, write: bool = True
) -> dict[str, Any]:
    """Validation metrics of a trained run; written to ``metrics.json`` when ``write``."""
    from apps.common import training

    ids = trained.vocab.encode(val_text)
    result = evaluate_ids(trained.model, ids, trained.config.batch_size, trained.config.bptt)
    metrics: dict[str, Any] = {
        "val_nats_per_char": round(result["nats_per_char"], 6),
        "val_bits_per_char": round(result["bits_per_char"], 6),
        "val_perplexity": round(result["perplexity"], 4),
        "val_chars": result["chars"],
        "unknown_chars": int((ids == 0).sum()),
        "data": data,
        "cell": trained.config.cell,
        "layers": trained.config.layers,
        "units": trained.config.units,
        "vocab_size": trained.vocab.size,
        "params": int(trained.model.count_params()),
    }
    seconds = training.read_train_seconds(trained.run)
    if seconds is not None:
        metrics["train_seconds"] = round(seconds, 2)
    if write:
        atomic_write_json(trained.run.metrics_json, metrics)
    return metrics


# -------------------------------------------------------------------------- train
def _state_reset_callback() -> Any:
    import keras

    from apps.charlm.model import reset_states

    class ResetStreamStates(keras.callbacks.Callback):
        """Zero the carried RNN state when an epoch and when a validation pass begins."""

        def on_epoch_begin(self, epoch, logs=None):
            reset_states(self.model)

        def on_test_begin(self, logs=None):
            reset_states(self.model)

    return ResetStreamStates()


def _save_stateless(run: RunDir) -> None:
    """Replace the best (stateful, fixed-batch) ``model.keras`` by its stateless twin."""
    from apps.charlm.model import rnn_layer_names, stateless_copy

    model = load_model_file(run.require_model())
    if not any(getattr(model.get_layer(n), "stateful", False) for n in rnn_layer_names(model)):
        return
    with atomic_output(run.model_path) as tmp:
        stateless_copy(model).save(tmp)


def train_and_evaluate(
    config: CharLMConfig,
    run_dir: str | os.PathLike | RunDir,
    *,
    quiet: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` (resuming what is there), then evaluate on validation text.

    Args:
        config: the app config (``CharLMConfig.tiny()`` in tests).
        run_dir: a path (new, empty, or a charlm run dir to resume) or a :class:`RunDir`.
        quiet: no progress bars.
        log: called with one-line progress messages (the CLI passes ``print``).

    Returns:
        The validation metrics (also in ``DIR/metrics.json``): ``val_nats_per_char``,
        ``val_bits_per_char``, ``val_perplexity``, ``params``, ``train_seconds``, … .

    Raises:
        DataError: unreadable data, or a training/validation text shorter than one window per
            stream (``bptt * batch_size + 1`` characters).
    """
    from apps.charlm.data import CharVocab, check_enough, load_corpus, make_dataset
    from apps.charlm.model import build_model, compile_model
    from apps.common import training

    run = run_dir if isinstance(run_dir, RunDir) else RunDir.prepare(run_dir, APP_MODULE)
    resuming = run.vocab_json.is_file() and run.exists
    if run.exists:
        saved, _ = read_run_config(run)
        if saved.differences(config).keys() - set(CharLMConfig.RESUMABLE):
            raise RunDirError(f"--run-dir: {run.path} holds a run with another config")
    training.seed_everything(config.seed)
    corpus = load_corpus(config.data, encoding=config.encoding, max_chars=config.max_chars,
                         val_fraction=config.val_fraction)  # fmt: skip
    _say(log, f"data: {corpus.description}")
    _say(log, f"characters: {len(corpus.train):,} train, {len(corpus.val):,} validation")
    check_enough(len(corpus.train), config.batch_size, config.bptt, "training")
    check_enough(len(corpus.val), config.batch_size, config.bptt, "validation")
    vocab = load_vocab(run) if resuming else CharVocab.fit(corpus.train, config.vocab_size)
    if not resuming:
        vocab.save(run.vocab_json)
    run.write_config(config.to_dict(), data_description=corpus.description)

    train_ids, val_ids = vocab.encode(corpus.train), vocab.encode(corpus.val)
    train_ds = make_dataset(train_ids, config.batch_size, config.bptt)
    val_ds = make_dataset(val_ids, config.batch_size, config.bptt)
    model = build_model(config.cell, vocab.size, units=config.units, layers=config.layers,
                        embedding_dim=config.embedding_dim, dropout=config.dropout,
                        batch_size=config.batch_size, seq_len=config.bptt, stateful=True,
                        seed=config.seed)  # fmt: skip
    compile_model(model, config.learning_rate, config.clipping)
    windows = (len(train_ids) - 1) // config.batch_size // config.bptt
    _say(log, f"model: {config.layers} x {config.cell} ({config.units} units), "
              f"{model.count_params():,} parameters, {vocab.size} characters; truncated BPTT: "
              f"{config.batch_size} streams x {windows} windows of {config.bptt} per epoch, "
              f"clipnorm {config.clipping}")  # fmt: skip
    start_epoch = training.restored_epoch(run.checkpoints / training.BACKUP_SUBDIR)
    if start_epoch:
        _say(
            log,
            f"resuming from epoch {start_epoch} of {config.epochs} (checkpoint in {run.checkpoints})",
        )
    training.fit(model, train_ds, val_ds, run, config.epochs, quiet=quiet,
                 callbacks=[_state_reset_callback()])  # fmt: skip
    _save_stateless(run)
    trained = load_trained(run)
    return evaluate_trained(trained, corpus.val, data=config.data)
