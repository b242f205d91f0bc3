"""Train, evaluate and load a translation model in a run directory.

``train_and_evaluate(config, run_dir)`` is the importable entry point (the CLI's ``train`` and
the end-to-end test call it): it loads the data, fits both tokenisers on the training pairs
(or reloads them from ``vocab.json`` when resuming), trains resumably with teacher forcing
(:mod:`apps.common.training`), then translates the test split and writes ``metrics.json``.

``vocab.json`` holds ``{"format", "source": tokenizer, "target": tokenizer}`` (see
:class:`apps.translation.tokenize.Tokenizer`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from apps.common.errors import DataError, RunDirError
from apps.common.rundir import RunDir, atomic_write_json
from apps.translation.config import TranslationConfig
from apps.translation.tokenize import Tokenizer, normalize

APP_MODULE = "apps.translation"
VOCAB_FORMAT = "rnnsuite.translation.vocab/1"


def _say(log: Callable[[str], None] | None, message: str) -> None:
    if log is not None:
        log(message)


# ------------------------------------------------------------------------------ tokenisers
def fit_tokenizers(
    config: TranslationConfig, train: Sequence[tuple[str, str]]
) -> tuple[Tokenizer, Tokenizer]:
    """Source and target tokenisers fitted on the training pairs only."""
    source = Tokenizer(
        config.source_vocab, bpe_merges=config.source_bpe, lowercase=config.lowercase
    )
    target = Tokenizer(
        config.target_vocab, bpe_merges=config.target_bpe, lowercase=config.lowercase
    )
    return source.fit(s for s, _ in train), target.fit(t for _, t in train)


def save_tokenizers(run: RunDir, source: Tokenizer, target: Tokenizer) -> None:
    run.write_json("vocab.json", {"format": VOCAB_FORMAT, "source": source.get_config(),
                                  "target": target.get_config()})  # fmt: skip


def load_tokenizers(run: RunDir) -> tuple[Tokenizer, Tokenizer]:
    """The run's tokenisers; :class:`RunDirError` when ``vocab.json`` is missing or broken."""
    data = run.read_json("vocab.json")
    try:
        if not isinstance(data, dict) or data.get("format") != VOCAB_FORMAT:
            raise ValueError(f"not a {VOCAB_FORMAT} file")
        return Tokenizer.from_config(data["source"]), Tokenizer.from_config(data["target"])
    except (KeyError, TypeError, ValueError) as e:
        raise RunDirError(
            f"--run-dir: {run.vocab_json} is not a translation vocabulary ({e})"
        ) from None


def encode_pairs(
    pairs: Sequence[tuple[str, str]],
    source: Tokenizer,
    target: Tokenizer,
    config: TranslationConfig,
    *,
    drop_long: bool,
) -> tuple[list[list[int]], list[list[int]], int]:
    """Ids of both sides; pairs longer than the limits are dropped (``drop_long``) or cut.

    Returns:
        ``(source ids, target ids, number of pairs dropped)``.
    """
    src_ids, tgt_ids, dropped = [], [], 0
    for s, t in pairs:
        a, b = source.encode(s), target.encode(t)
        if not a or not b:
            dropped += 1
            continue
        if len(a) > config.max_source_len or len(b) > config.max_target_len:
            if drop_long:
                dropped += 1
                continue
            a, b = a[: config.max_source_len], b[: config.max_target_len]
        src_ids.append(a)
        tgt_ids.append(b)
    return src_ids, tgt_ids, dropped


# ------------------------------------------------------------------------- a trained run
@dataclasses.dataclass
class TrainedRun:
    """A run dir's model with its tokenisers.

    Attributes:
        run: the run directory.
        config: its config.
        meta: the whole ``config.json`` (languages, data description).
        source_tokenizer: source side tokeniser.
        target_tokenizer: target side tokeniser.
        model: the best model (``model.keras``).
    """

    run: RunDir
    config: TranslationConfig
    meta: dict[str, Any]
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer
    model: Any

    def translator(self, *, precomputed_keys: bool = True) -> Any:
        """A :class:`apps.translation.decode.Translator` for this run."""
        from apps.translation.decode import Translator

        return Translator(self.model, self.source_tokenizer, self.target_tokenizer,
                          max_source_len=self.config.max_source_len,
                          max_target_len=self.config.max_target_len,
                          precomputed_keys=precomputed_keys)  # fmt: skip


def read_run_config(run: RunDir) -> tuple[TranslationConfig, dict[str, Any]]:
    """The run's :class:`TranslationConfig` and its whole ``config.json``."""
    meta = run.read_meta()
    return TranslationConfig.from_dict(meta["config"], source=str(run.config_json)), meta


def load_trained(run: RunDir) -> TrainedRun:
    """Load ``model.keras`` (safe mode) and ``vocab.json`` of a trained run."""
    import seqlayers  # noqa: F401  (registers the custom layers)
    from apps.translation import model as _model  # noqa: F401  (registers the app's layers)

    config, meta = read_run_config(run)
    source, target = load_tokenizers(run)
    model = run.load_model(compile=False)
    return TrainedRun(run, config, meta, source, target, model)


# ------------------------------------------------------------------------------ evaluate
def token_accuracy(trained: TrainedRun, pairs: Sequence[tuple[str, str]]) -> float:
    """Teacher-forced next-token accuracy on ``pairs`` (padding excluded), in percent."""
    from apps.translation.data import make_dataset

    src, tgt, _ = encode_pairs(pairs, trained.source_tokenizer, trained.target_tokenizer,
                               trained.config, drop_long=False)  # fmt: skip
    if not src:
        return 0.0
    correct = total = 0
    for (s, ti), to, w in make_dataset(src, tgt, 128, shuffle=False, seed=0):
        logits = np.asarray(trained.model.predict_on_batch((s, ti)))
        weights = w.numpy()
        correct += float(((logits.argmax(-1) == to.numpy()) * weights).sum())
        total += float(weights.sum())
    return 100.0 * correct / max(total, 1.0)


def translate_pairs(
    trained: TrainedRun,
    pairs: Sequence[tuple[str, str]],
    *,
    beam: int = 1,
    translator: Any = None,
    quiet: bool = True,
) -> tuple[list[str], list[str], list[int]]:
    """``(hypotheses, references, source lengths)`` of ``pairs`` (references normalised as the
    model's text: NFKC, single spaces, lower case if the run lower-cases)."""
    translator = translator or trained.translator()
    lowercase = trained.config.lowercase
    src_ids, lengths, keep = [], [], []
    for k, (s, _) in enumerate(pairs):
        ids = trained.source_tokenizer.encode(s)
        if ids:
            src_ids.append(ids[: trained.config.max_source_len])
            lengths.append(len(ids))
            keep.append(k)
    outs = translator.translate_ids(src_ids, beam=beam, quiet=quiet)
    hyps = [trained.target_tokenizer.decode(ids) for ids, _ in outs]
    refs = [normalize(pairs[k][1], lowercase=lowercase) for k in keep]
    return hyps, refs, lengths


def evaluate_trained(trained: TrainedRun, pairs: Sequence[tuple[str, str]], *, data: str,
                     beam: int = 1, split: str = "test", write: bool = True,
                     quiet: bool = True) -> dict[str, Any]:  # fmt: skip
    """Test metrics: sacreBLEU BLEU and chrF (detokenised), exact match, token accuracy, and
    the same per source-length bucket; writes ``metrics.json`` and ``plots/by_length.png``.

    Returns:
        ``{"bleu", "chrf", "exact_match", "token_accuracy", "by_length", "examples", "beam",
        "model", "cell", "data", "split", "params", ...}`` (scores on a 0–100 scale).
    """
    from apps.common import training
    from apps.translation.metrics import corpus_scores, plot_by_length, scores_by_length

    if not pairs:
        raise DataError(f"--data: {data} has no {split} pairs to evaluate")
    started = time.monotonic()
    hyps, refs, lengths = translate_pairs(trained, pairs, beam=beam, quiet=quiet)
    seconds = time.monotonic() - started
    metrics: dict[str, Any] = corpus_scores(hyps, refs)
    metrics["token_accuracy"] = token_accuracy(trained, pairs)
    metrics["by_length"] = scores_by_length(lengths, hyps, refs)
    metrics.update(
        examples=len(hyps), beam=beam, model=trained.config.model, cell=trained.config.cell,
        data=data, split=split, source_lang=trained.meta.get("source_lang"),
        target_lang=trained.meta.get("target_lang"), params=int(trained.model.count_params()),
        source_vocab=trained.source_tokenizer.vocab_size,
        target_vocab=trained.target_tokenizer.vocab_size,
        translate_seconds=round(seconds, 2),
        samples=[{"source": p[0], "reference": r, "translation": h}
                 for p, r, h in zip(pairs[:5], refs[:5], hyps[:5])],
    )  # fmt: skip
    train_seconds = training.read_train_seconds(trained.run)
    if train_seconds is not None:
        metrics["train_seconds"] = round(train_seconds, 2)
    if write:
        plot_by_length({trained.config.model: metrics["by_length"]},
                       trained.run.plots / "by_length.png",
                       title=f"{trained.config.model} on {data} ({split}, beam {beam})")  # fmt: skip
        atomic_write_json(trained.run.metrics_json, metrics)
    return metrics


def load_data(config: TranslationConfig, data: str | None = None, *, quiet: bool = True) -> Any:
    """The splits of ``data`` (default: the config's) with the config's options."""
    from apps.translation.data import load_splits

    return load_splits(data or config.data, lang=config.lang, direction=config.direction,
                       seed=config.seed, limit=config.limit, number_max=config.number_max,
                       numbers=config.numbers, quiet=quiet)  # fmt: skip


# --------------------------------------------------------------------------------- train
def train_and_evaluate(
    config: TranslationConfig,
    run_dir: str | os.PathLike | RunDir,
    *,
    quiet: bool = True,
    log: Callable[[str], None] | None = None,
    beam: int = 1,
) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` (resuming what is there), then evaluate on the test split.

    Args:
        config: the app config (``TranslationConfig.tiny()`` in tests).
        run_dir: a path (new, empty, or a translation run dir to resume) or a :class:`RunDir`.
        quiet: no progress bars.
        log: called with one-line progress messages (the CLI passes ``print``).
        beam: beam size of the final evaluation (1: greedy).

    Returns:
        The test metrics (also in ``DIR/metrics.json``), see :func:`evaluate_trained`.
    """
    import keras

    from apps.common import training
    from apps.translation.data import make_dataset
    from apps.translation.model import build_model

    run = run_dir if isinstance(run_dir, RunDir) else RunDir.prepare(run_dir, APP_MODULE)
    resuming = run.vocab_json.is_file() and run.exists
    if run.exists:
        saved, _ = read_run_config(run)
        if saved.differences(config).keys() - set(TranslationConfig.RESUMABLE):
            raise RunDirError(f"--run-dir: {run.path} holds a run with another config")
    training.seed_everything(config.seed)
    data = load_data(config, quiet=quiet)
    _say(log, f"data: {data.description}")
    for note in data.notes:
        _say(log, f"note: {note}")
    if resuming:
        source_tok, target_tok = load_tokenizers(run)
    else:
        source_tok, target_tok = fit_tokenizers(config, data.train)
        save_tokenizers(run, source_tok, target_tok)
    run.write_config(config.to_dict(), source_lang=data.source_lang, target_lang=data.target_lang,
                     data_description=data.description)  # fmt: skip
    train_src, train_tgt, dropped = encode_pairs(
        data.train, source_tok, target_tok, config, drop_long=True
    )
    val_src, val_tgt, _ = encode_pairs(data.val, source_tok, target_tok, config, drop_long=True)
    if not train_src or not val_src:
        raise DataError(
            f"--data: {config.data} leaves no training or validation pairs within "
            f"max_source_len={config.max_source_len}, max_target_len={config.max_target_len}"
        )
    _say(log, f"pairs: {len(train_src):,} train, {len(val_src):,} validation, {len(data.test):,} test"
              + (f" ({dropped:,} long training pairs dropped)" if dropped else ""))  # fmt: skip
    train_ds = make_dataset(train_src, train_tgt, config.batch_size, shuffle=True, seed=config.seed)
    val_ds = make_dataset(val_src, val_tgt, config.batch_size, shuffle=False, seed=config.seed)
    model = build_model(config.model, config.cell, source_tok.vocab_size, target_tok.vocab_size,
                        embedding_dim=config.embedding_dim, units=config.units,
                        attention_units=config.attention_units, dropout=config.dropout,
                        seed=config.seed)  # fmt: skip
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                        reduction="mean_with_sample_weight"),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")],
    )  # fmt: skip
    _say(log, f"model: {config.model} ({config.cell}), {model.count_params():,} parameters, "
              f"vocabularies {source_tok.vocab_size:,} {data.source_lang} / "
              f"{target_tok.vocab_size:,} {data.target_lang} tokens")  # fmt: skip
    start_epoch = training.restored_epoch(run.checkpoints / training.BACKUP_SUBDIR)
    if start_epoch:
        _say(log, f"resuming from epoch {start_epoch} of {config.epochs}")
    training.fit(model, train_ds, val_ds, run, config.epochs, quiet=quiet)
    trained = load_trained(run)
    return evaluate_trained(trained, data.test, data=config.data, beam=beam, quiet=quiet)
