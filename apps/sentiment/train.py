"""Train, evaluate and use a sentiment model in a run directory.

``train_and_evaluate(config, run_dir)`` is the importable entry point (the CLI's ``train`` and
the end-to-end test call it): it loads the data, fits the tokenizer on the training texts
(or reloads it when resuming), trains resumably (see :mod:`apps.common.training`), then
evaluates the best model on the test split and writes ``metrics.json`` and
``plots/confusion.png``.

The other helpers here (:func:`load_trained`, :func:`predict_proba`, :func:`evaluate_trained`,
:func:`classification_metrics`) serve the ``evaluate``, ``predict``, ``compare`` and ``probe``
commands.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from apps.common.errors import DataError, RunDirError
from apps.common.rundir import RunDir, atomic_write_json
from apps.sentiment.config import SentimentConfig

APP_MODULE = "apps.sentiment"
PREDICT_BATCH = 256


def _say(log: Callable[[str], None] | None, message: str) -> None:
    if log is not None:
        log(message)


# ------------------------------------------------------------------------ metrics
def classification_metrics(
    y_true: Sequence[int], probs: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1, confusion matrix, cross-entropy.

    Args:
        y_true: true class ids, shape (N,).
        probs: predicted class probabilities, shape (N, C).
        class_names: the C class names.

    Returns:
        A JSON-ready dict: ``accuracy``, ``macro_f1``, ``loss``, ``per_class`` (name ->
        precision, recall, f1, support), ``confusion_matrix`` (rows true, columns predicted),
        ``labels`` and ``examples``. A class never predicted has precision 0; one absent from
        ``y_true`` has recall 0 (and is left out of nothing: macro-F1 averages all classes).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n_classes = len(class_names)
    if probs.shape != (len(y_true), n_classes):
        raise ValueError(f"probs must be (N, {n_classes}). Received: shape={probs.shape}")
    y_pred = probs.argmax(axis=1) if len(y_true) else np.zeros(0, np.int64)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    per_class, f1s = {}, []
    for k, name in enumerate(class_names):
        tp = cm[k, k]
        predicted, actual = cm[:, k].sum(), cm[k, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(actual),
        }
    picked = probs[np.arange(len(y_true)), y_true] if len(y_true) else np.ones(0)
    return {
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "loss": float(-np.log(np.clip(picked, 1e-12, 1.0)).mean()) if len(y_true) else 0.0,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "labels": list(class_names),
        "examples": len(y_true),
    }


# ------------------------------------------------------------------- a trained run
@dataclasses.dataclass
class TrainedRun:
    """A run dir's model with what it needs to read text.

    Attributes:
        run: the run directory.
        config: its config.
        tokenizer: the ``WordTokenizer`` from ``vocab.json``.
        class_names: label names by class id.
        model: the best model (``model.keras``).
    """

    run: RunDir
    config: SentimentConfig
    tokenizer: Any
    class_names: list[str]
    model: Any


def read_run_config(run: RunDir) -> tuple[SentimentConfig, dict[str, Any]]:
    """The run's :class:`SentimentConfig` and its whole ``config.json``."""
    meta = run.read_meta()
    config = SentimentConfig.from_dict(meta["config"], source=str(run.config_json))
    return config, meta


def load_trained(run: RunDir) -> TrainedRun:
    """Load ``model.keras`` (safe mode), ``vocab.json`` and the labels of a trained run."""
    import seqlayers  # noqa: F401  (registers the custom layers)
    from apps.common.text import WordTokenizer
    from apps.sentiment import model as _model  # noqa: F401  (registers the app's layers)

    config, meta = read_run_config(run)
    labels = meta.get("labels")
    if not isinstance(labels, list) or not labels:
        raise RunDirError(f"--run-dir: {run.config_json} has no 'labels' (was training started?)")
    try:
        tokenizer = WordTokenizer.load(run.vocab_json)
    except FileNotFoundError:
        raise RunDirError(
            f"--run-dir: {run.path} has no vocab.json (was training started?)"
        ) from None
    except ValueError as e:
        raise RunDirError(f"--run-dir: {e}") from None
    model = run.load_model()
    return TrainedRun(run, config, tokenizer, [str(x) for x in labels], model)


def predict_proba(
    trained: TrainedRun,
    texts: Sequence[str],
    *,
    batch_size: int = PREDICT_BATCH,
    quiet: bool = True,
) -> np.ndarray:
    """Class probabilities for ``texts``, shape (N, C), in the order of ``texts``.

    Texts are encoded as in training (:func:`apps.sentiment.data.encode_texts`, cut to
    ``max_length``) and padded with 0 on the right to ``max_length``; every batch has the same
    shape, so the model is traced once. Padding never changes a prediction (see
    :mod:`apps.sentiment.model`), so this equals predicting on training's per-batch padding.
    A progress bar (stderr) shows when it takes over ~2 s, unless ``quiet``.
    """
    from apps.common.progress import Progress
    from apps.sentiment.data import encode_texts

    ids = encode_texts(texts, trained.tokenizer, trained.config.max_length)
    width = max([trained.config.max_length, *(len(x) for x in ids)])
    rows = max(1, min(batch_size, len(ids)))
    out = np.zeros((len(ids), len(trained.class_names)), dtype=np.float32)
    with Progress("predicting", total=len(ids), quiet=quiet) as bar:
        for start in range(0, len(ids), rows):
            chunk = ids[start : start + rows]
            batch = np.zeros((rows, width), dtype=np.int32)
            for row, seq in enumerate(chunk):
                batch[row, : len(seq)] = seq
            probs = np.asarray(trained.model.predict_on_batch(batch))
            out[start : start + len(chunk)] = probs[: len(chunk)]
            bar.update(len(chunk))
    return out


def evaluate_trained(
    trained: TrainedRun,
    examples: Sequence[tuple[str, int]],
    *,
    data: str,
    split: str = "test",
    write: bool = True,
    quiet: bool = True,
) -> dict[str, Any]:
    """Metrics of the trained model on ``examples``; writes ``metrics.json`` and the confusion PNG.

    Returns:
        :func:`classification_metrics` plus ``model``, ``data``, ``split``, ``params``,
        ``dictionary_size``, ``hidden_size`` and (when known) ``train_seconds``.
    """
    from apps.common import plots, training

    if not examples:
        raise DataError(f"--data: {data} has no {split} examples to evaluate")
    texts = [t for t, _ in examples]
    labels = [int(y) for _, y in examples]
    probs = predict_proba(trained, texts, quiet=quiet)
    metrics = classification_metrics(labels, probs, trained.class_names)
    metrics.update(
        model=trained.config.model,
        data=data,
        split=split,
        params=int(trained.model.count_params()),
        dictionary_size=int(trained.tokenizer.vocab_size),
        hidden_size=int(trained.config.units),
    )
    seconds = training.read_train_seconds(trained.run)
    if seconds is not None:
        metrics["train_seconds"] = round(seconds, 2)
    if write:
        plots.confusion_matrix(
            metrics["confusion_matrix"],
            trained.class_names,
            trained.run.plots / "confusion.png",
            title=f"{trained.config.model} on {data} ({split})",
        )
        atomic_write_json(trained.run.metrics_json, metrics)
    return metrics


def check_labels(found: Sequence[str], expected: Sequence[str], data: str) -> None:
    """A dataset evaluated by a run must have the labels the run was trained on."""
    if list(found) != list(expected):
        raise DataError(
            f"--data: {data} has labels {list(found)}, "
            f"but the model was trained on {list(expected)}"
        )


# -------------------------------------------------------------------------- train
def train_and_evaluate(
    config: SentimentConfig,
    run_dir: str | os.PathLike | RunDir,
    *,
    quiet: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` (resuming what is there), then evaluate on the test split.

    Args:
        config: the app config (``SentimentConfig.tiny()`` in tests).
        run_dir: a path (new, empty, or a sentiment run dir to resume) or a :class:`RunDir`.
        quiet: no progress bars.
        log: called with one-line progress messages (the CLI passes ``print``).

    Returns:
        The test metrics (also in ``DIR/metrics.json``): ``accuracy``, ``macro_f1``,
        ``per_class``, ``confusion_matrix``, ``params``, ``dictionary_size``, ``hidden_size``,
        ``train_seconds``, … .
    """
    import keras

    from apps.common import training
    from apps.common.text import WordTokenizer
    from apps.sentiment.data import load_splits, make_dataset
    from apps.sentiment.model import build_model

    run = run_dir if isinstance(run_dir, RunDir) else RunDir.prepare(run_dir, APP_MODULE)
    resuming = run.vocab_json.is_file() and run.exists
    if run.exists:
        saved, meta = read_run_config(run)
        if saved.differences(config).keys() - set(SentimentConfig.RESUMABLE):
            raise RunDirError(f"--run-dir: {run.path} holds a run with another config")
    else:
        meta = {}
    training.seed_everything(config.seed)
    data = load_splits(config.data, seed=config.seed, limit=config.limit)
    _say(log, f"data: {data.description}")
    _say(
        log, f"examples: {len(data.train)} train, {len(data.val)} validation, {len(data.test)} test"
    )
    if resuming:
        tokenizer = WordTokenizer.load(run.vocab_json)
        check_labels(data.class_names, meta.get("labels", []), config.data)
    else:
        tokenizer = WordTokenizer(config.vocab_size).fit(t for t, _ in data.train)
        tokenizer.save(run.vocab_json)
    run.write_config(
        config.to_dict(), labels=list(data.class_names), data_description=data.description
    )

    def dataset(examples, shuffle):
        texts = [t for t, _ in examples]
        labels = [y for _, y in examples]
        return make_dataset(
            texts, labels, tokenizer, config.batch_size, shuffle, config.seed, config.max_length
        )

    train_ds, val_ds = dataset(data.train, True), dataset(data.val, False)
    model = build_model(
        config.model,
        tokenizer.vocab_size,
        len(data.class_names),
        embed_dim=config.embedding_dim,
        units=config.units,
        dropout=config.dropout,
        seed=config.seed,
        window=config.window,
        pooling=config.pooling,
        embedding_dropout=config.embedding_dropout,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    _say(
        log,
        f"model: {config.model}, {model.count_params():,} parameters, "
        f"dictionary {tokenizer.vocab_size:,} words, hidden size {config.units}",
    )
    start_epoch = training.restored_epoch(run.checkpoints / training.BACKUP_SUBDIR)
    if start_epoch:
        _say(
            log,
            f"resuming from epoch {start_epoch} of {config.epochs} "
            f"(checkpoint in {run.checkpoints})",
        )
    training.fit(model, train_ds, val_ds, run, config.epochs, quiet=quiet)
    trained = load_trained(run)
    return evaluate_trained(trained, data.test, data=config.data, split="test", quiet=quiet)


# -------------------------------------------------------------------------- probe
def default_probe_pairs() -> Path:
    """The shipped word-order minimal pairs (``probe_pairs.json``)."""
    return Path(__file__).with_name("probe_pairs.json")


def load_probe_pairs(path: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """``(positive, negative)`` pairs; each pair must hold the same tokens in another order.

    Raises:
        DataError: unreadable file, wrong shape, or a pair whose texts differ in more than order.
    """
    from apps.common.sources import read_text_strict
    from apps.common.text import split_words

    path = Path(path) if path is not None else default_probe_pairs()
    try:
        data = json.loads(read_text_strict(path, flag="--pairs"))
    except json.JSONDecodeError as e:
        raise DataError(f"--pairs: {path} is not valid JSON: {e.msg} at line {e.lineno}") from None
    items = data.get("pairs") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise DataError(f'--pairs: {path} must hold {{"pairs": [{{"positive", "negative"}}, ...]}}')
    pairs = []
    for n, item in enumerate(items, 1):
        if not (
            isinstance(item, dict)
            and isinstance(item.get("positive"), str)
            and isinstance(item.get("negative"), str)
        ):
            raise DataError(f"--pairs: pair {n} of {path} needs string 'positive' and 'negative'")
        pos, neg = item["positive"], item["negative"]
        if sorted(split_words(pos)) != sorted(split_words(neg)) or pos == neg:
            raise DataError(
                f"--pairs: pair {n} of {path} must hold the same words in another order"
            )
        pairs.append((pos, neg))
    return pairs


def polarity_ids(class_names: Sequence[str]) -> tuple[int, int]:
    """Ids of the positive and negative classes (by name; else the last and the first)."""
    lowered = [c.lower() for c in class_names]
    pos = next((i for i, c in enumerate(lowered) if c.startswith("pos")), len(lowered) - 1)
    neg = next((i for i, c in enumerate(lowered) if c.startswith("neg")), 0)
    return pos, neg


def probe_trained(trained: TrainedRun, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """How many word-order pairs the model orders correctly.

    A pair is ordered correctly when ``P(positive) - P(negative)`` is higher for its positive
    text than for its negative text (a tie is not correct). A bag-of-words model sees both texts
    of a pair as the same bag, so it must give them identical probabilities: that is checked
    here, and a ``bow`` model that breaks it raises ``RuntimeError``.

    Returns:
        ``{"model", "correct", "pairs", "max_abs_diff", "results": [...]}``.
    """
    texts = [t for pair in pairs for t in pair]
    probs = predict_proba(trained, texts)
    pos, neg = polarity_ids(trained.class_names)
    score = probs[:, pos] - probs[:, neg]
    results, correct, max_diff = [], 0, 0.0
    for k, (p_text, n_text) in enumerate(pairs):
        p_probs, n_probs = probs[2 * k], probs[2 * k + 1]
        ok = bool(score[2 * k] > score[2 * k + 1])
        correct += ok
        max_diff = max(max_diff, float(np.abs(p_probs - n_probs).max()))
        results.append(
            {
                "positive": p_text,
                "negative": n_text,
                "correct": ok,
                "positive_probs": p_probs.round(4).tolist(),
                "negative_probs": n_probs.round(4).tolist(),
            }
        )
    if trained.config.model == "bow" and max_diff > 1e-5:
        raise RuntimeError(
            f"the bow model gave the two texts of a word-order pair different probabilities "
            f"(max difference {max_diff:.3g}); a bag of words must be order-invariant"
        )
    return {
        "model": trained.config.model,
        "correct": correct,
        "pairs": len(pairs),
        "max_abs_diff": max_diff,
        "results": results,
    }
