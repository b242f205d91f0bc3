"""Train, evaluate and apply a tagger in a run directory.

``train_and_evaluate(config, run_dir)`` is the importable entry point (the CLI's ``train`` and
the end-to-end test call it): it reads the data, builds the vocabularies from the training
sentences (or reloads them when resuming), trains resumably (:mod:`apps.common.training`), then
scores the best model on the test split and writes ``metrics.json``, ``plots/`` and a sample of
tagged test sentences in ``samples/``.

:func:`load_trained`, :func:`predict_tags` and :func:`evaluate_trained` serve the ``evaluate``,
``tag`` and ``probe`` commands.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from apps.common.errors import DataError, RunDirError
from apps.common.rundir import RunDir, atomic_write_json, atomic_write_text
from apps.tagger import schemes
from apps.tagger.config import TaggerConfig
from apps.tagger.conll import Sentence
from apps.tagger.data import Vocab, encode_batch

APP_MODULE = "apps.tagger"
PREDICT_TOKENS = 4096  # tokens per prediction batch (sentences are grouped by length)
LENGTH_STEP = 16  # prediction batches are padded to a multiple of this (fewer retraces)
SAMPLE_SENTENCES = 25


def _say(log: Callable[[str], None] | None, message: str) -> None:
    if log is not None:
        log(message)


# ------------------------------------------------------------------ a trained run
@dataclasses.dataclass
class TrainedRun:
    """A run dir's best model with its vocabularies.

    Attributes:
        run: the run directory.
        config: its config.
        vocab: word / character / tag tables (``vocab.json``).
        model: the best model (``model.keras``).
        meta: the whole ``config.json`` (data description, scheme, task…).
    """

    run: RunDir
    config: TaggerConfig
    vocab: Vocab
    model: Any
    meta: dict[str, Any]

    @property
    def task(self) -> str:
        return self.vocab.task


def read_run_config(run: RunDir) -> tuple[TaggerConfig, dict[str, Any]]:
    """The run's :class:`TaggerConfig` and its whole ``config.json``."""
    meta = run.read_meta()
    return TaggerConfig.from_dict(meta["config"], source=str(run.config_json)), meta


def load_vocab(run: RunDir) -> Vocab:
    """``vocab.json`` of a run; :class:`RunDirError` when missing or not a tagger's."""
    try:
        return Vocab.load(run.vocab_json)
    except FileNotFoundError:
        raise RunDirError(
            f"--run-dir: {run.path} has no vocab.json (was training started?)"
        ) from None
    except (ValueError, KeyError, TypeError) as e:
        raise RunDirError(f"--run-dir: {run.vocab_json}: {e}") from None


def load_trained(run: RunDir) -> TrainedRun:
    """Load ``model.keras`` (safe mode), ``vocab.json`` and the config of a trained run."""
    import seqlayers  # noqa: F401  (registers the seqlayers cells)
    from apps.tagger import model as _model  # noqa: F401  (registers the app's layers)

    config, meta = read_run_config(run)
    vocab = load_vocab(run)
    model = run.load_model()
    return TrainedRun(run, config, vocab, model, meta)


def predict_proba(
    model: Any, vocab: Vocab, sentences: Sequence[Sequence[str]], *, quiet: bool = True
) -> list[np.ndarray]:
    """Tag probabilities ``(len(tokens), num_tags)`` for each token list, in input order.

    Sentences are grouped by length and padded (lengths rounded up to a multiple of 16, words
    to ``vocab.max_chars`` characters); padding never changes a tag (see
    :mod:`apps.tagger.model`). An empty token list gives a ``(0, num_tags)`` array.
    """
    from apps.common.progress import Progress

    num_tags = len(vocab.tags)
    out: list[np.ndarray] = [np.zeros((0, num_tags), np.float32)] * len(sentences)
    order = sorted((i for i, s in enumerate(sentences) if len(s)), key=lambda i: len(sentences[i]))
    with Progress("tagging", total=len(order), quiet=quiet) as bar:
        start = 0
        while start < len(order):
            longest = len(sentences[order[start]])
            length = -(-longest // LENGTH_STEP) * LENGTH_STEP
            rows = max(1, PREDICT_TOKENS // length)
            chunk = order[start : start + rows]
            length = -(-max(len(sentences[i]) for i in chunk) // LENGTH_STEP) * LENGTH_STEP
            inputs = encode_batch(vocab, [sentences[i] for i in chunk], length=length,
                                  width=vocab.max_chars)  # fmt: skip
            probs = np.asarray(model.predict_on_batch(inputs))
            for row, i in enumerate(chunk):
                out[i] = probs[row, : len(sentences[i])]
            bar.update(len(chunk))
            start += len(chunk)
    return out


def decode_tags(probs: np.ndarray, vocab: Vocab) -> list[str]:
    """Arg-max tags; NER tags are repaired to valid IOB2 (conlleval reading of I- starts)."""
    tags = [vocab.tags[int(k)] for k in probs.argmax(axis=-1)] if len(probs) else []
    return schemes.to_iob2(tags) if vocab.task == "ner" else tags


def predict_tags(
    trained: TrainedRun, sentences: Sequence[Sequence[str]], *, quiet: bool = True
) -> list[list[str]]:
    """Predicted tags for each token list."""
    probs = predict_proba(trained.model, trained.vocab, sentences, quiet=quiet)
    return [decode_tags(p, trained.vocab) for p in probs]


# ------------------------------------------------------------------------ metrics
def score(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], task: str
) -> dict[str, Any]:
    """Token accuracy, plus entity P/R/F1 per type (NER) or per-tag accuracy (POS)."""
    from apps.tagger.metrics import entity_scores, per_tag_accuracy, token_accuracy

    out: dict[str, Any] = {"token_accuracy": token_accuracy(gold, pred)}
    if task == "ner":
        out.update(entity_scores(gold, pred))
    else:
        out["per_tag"] = per_tag_accuracy(gold, pred)
    return out


def evaluate_trained(
    trained: TrainedRun,
    sentences: Sequence[Sentence],
    *,
    data: str,
    split: str = "test",
    write: bool = True,
    quiet: bool = True,
) -> dict[str, Any]:
    """Metrics of the trained model on ``sentences``; writes ``metrics.json`` and plots.

    Returns:
        :func:`score` plus ``task``, ``model``, ``data``, ``split``, ``sentences``, ``tokens``,
        ``oov_rate`` / ``oov_token_accuracy`` (words outside the word vocabulary), ``params``
        and ``train_seconds`` when known.
    """
    from apps.common import plots, training

    if not sentences:
        raise DataError(f"--data: {data} has no {split} sentences to evaluate")
    vocab = trained.vocab
    gold = [list(s.tags) for s in sentences]
    pred = predict_tags(trained, [s.tokens for s in sentences], quiet=quiet)
    metrics: dict[str, Any] = {"task": vocab.task}
    metrics.update(score(gold, pred, vocab.task))
    oov = [
        (g == p)
        for s, gs, ps in zip(sentences, gold, pred)
        for ids, g, p in zip(vocab.encode_words(s.tokens), gs, ps)
        if ids == 1
    ]
    tokens = sum(len(g) for g in gold)
    metrics.update(
        model=trained.config.model,
        data=data,
        split=split,
        sentences=len(sentences),
        tokens=tokens,
        oov_rate=len(oov) / tokens if tokens else 0.0,
        oov_token_accuracy=float(np.mean(oov)) if oov else None,
        params=int(trained.model.count_params()),
    )
    seconds = training.read_train_seconds(trained.run)
    if seconds is not None:
        metrics["train_seconds"] = round(seconds, 2)
    if write:
        _write_plots(trained, metrics, gold, pred, plots)
        _write_samples(trained.run, sentences[:SAMPLE_SENTENCES], pred[:SAMPLE_SENTENCES], split)
        atomic_write_json(trained.run.metrics_json, metrics)
    return metrics


def _write_plots(trained: TrainedRun, metrics: dict[str, Any], gold, pred, plots) -> None:
    title = f"{trained.config.model} on {metrics['data']} ({metrics['split']})"
    if metrics["task"] == "ner" and metrics.get("per_type"):
        types = list(metrics["per_type"])
        plots.bar_chart(
            types,
            {k: [metrics["per_type"][t][k] for t in types] for k in ("precision", "recall", "f1")},
            trained.run.plots / "entity_scores.png",
            title=title[:80],
            ylabel="exact-span score",
        )
    elif metrics["task"] == "pos":
        labels = sorted({t for g in gold for t in g} | {t for p in pred for t in p})
        if len(labels) <= 20:
            index = {t: i for i, t in enumerate(labels)}
            cm = np.zeros((len(labels), len(labels)), np.int64)
            for g, p in zip(gold, pred):
                for a, b in zip(g, p):
                    cm[index[a], index[b]] += 1
            plots.confusion_matrix(cm, labels, trained.run.plots / "confusion.png",
                                   title=title[:80])  # fmt: skip


def format_tagged(tokens: Sequence[str], tags: Sequence[str]) -> str:
    """``Teddy/B-PER Roosevelt/I-PER was/O ...`` (``O`` tags left out for readability)."""
    return " ".join(t if g == "O" else f"{t}/{g}" for t, g in zip(tokens, tags))


def _write_samples(run: RunDir, sentences, pred, split: str) -> None:
    lines = [f"# first {len(sentences)} {split} sentences: gold, then predicted"]
    for s, p in zip(sentences, pred):
        lines += ["gold: " + format_tagged(s.tokens, s.tags),
                  "pred: " + format_tagged(s.tokens, p), ""]  # fmt: skip
    atomic_write_text(run.samples / f"{split}_predictions.txt", "\n".join(lines))


# -------------------------------------------------------------------------- train
def train_and_evaluate(
    config: TaggerConfig,
    run_dir: str | os.PathLike | RunDir,
    *,
    quiet: bool = True,
    log: Callable[[str], None] | None = None,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` (resuming what is there), then evaluate on the test split.

    Args:
        config: the app config (``TaggerConfig.tiny()`` in tests).
        run_dir: a path (new, empty, or a tagger run dir to resume) or a :class:`RunDir`.
        quiet: no progress bars.
        log: called with one-line progress messages (the CLI passes ``print``).
        callbacks: extra keras callbacks (e.g. a time budget in benchmarks).

    Returns:
        The test metrics (also in ``DIR/metrics.json``): ``token_accuracy``, and for NER
        ``precision``, ``recall``, ``f1``, ``per_type``; for POS ``per_tag``; ``params``,
        ``train_seconds``, … .
    """
    import keras

    from apps.common import training
    from apps.tagger.data import load_splits, make_dataset
    from apps.tagger.model import build_model

    run = run_dir if isinstance(run_dir, RunDir) else RunDir.prepare(run_dir, APP_MODULE)
    resuming = run.vocab_json.is_file() and run.exists
    if run.exists:
        saved, _ = read_run_config(run)
        if saved.differences(config).keys() - set(TaggerConfig.RESUMABLE):
            raise RunDirError(f"--run-dir: {run.path} holds a run with another config")
    training.seed_everything(config.seed)
    data = load_splits(config.data, tag_set=config.tags, seed=config.seed, limit=config.limit,
                       generated=config.generated)  # fmt: skip
    _say(log, f"data: {data.description}")
    _say(log, f"sentences: {len(data.train)} train, {len(data.val)} validation, "
              f"{len(data.test)} test")  # fmt: skip
    if resuming:
        vocab = load_vocab(run)
        if vocab.task != data.task:
            raise RunDirError(
                f"--run-dir: {run.path} was trained for {vocab.task}, not {data.task}"
            )
    else:
        vocab = Vocab.build(data.train, max_words=config.max_words, min_count=config.min_count,
                            max_chars=config.max_chars, task=data.task)  # fmt: skip
        vocab.save(run.vocab_json)
    run.write_config(config.to_dict(), task=data.task, tag_set=data.tag_set,
                     scheme=data.scheme, data_description=data.description)  # fmt: skip
    train_ds = make_dataset(data.train, vocab, config.batch_size, shuffle=True, seed=config.seed)
    val_ds = make_dataset(data.val, vocab, config.batch_size, shuffle=False, seed=config.seed)
    model = build_model(
        config.model,
        len(vocab.words),
        len(vocab.chars),
        len(vocab.tags),
        word_dim=config.word_dim,
        char_dim=config.char_dim,
        char_filters=config.char_filters,
        char_kernel=config.char_kernel,
        units=config.units,
        layers=config.layers,
        dropout=config.dropout,
        word_dropout=config.word_dropout,
        seed=config.seed,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=5.0),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        weighted_metrics=["accuracy"],
    )
    _say(log, f"model: {config.model}, {model.count_params():,} parameters, "
              f"{len(vocab.words):,} words, {len(vocab.chars):,} characters, "
              f"{len(vocab.tags)} tags")  # fmt: skip
    start_epoch = training.restored_epoch(run.checkpoints / training.BACKUP_SUBDIR)
    if start_epoch:
        _say(log, f"resuming from epoch {start_epoch} of {config.epochs}")
    # part of speech is scored by token accuracy: keep the epoch with the best validation
    # accuracy (late epochs raise the loss of confident mistakes while accuracy still improves)
    monitor = "val_accuracy" if data.task == "pos" else "val_loss"
    training.fit(model, train_ds, val_ds, run, config.epochs, quiet=quiet, callbacks=callbacks,
                 monitor=monitor)  # fmt: skip
    trained = load_trained(run)
    return evaluate_trained(trained, data.test, data=config.data, split="test", quiet=quiet)
