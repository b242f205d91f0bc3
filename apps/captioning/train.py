"""Train, evaluate and use a captioning model in a run directory.

``train_and_evaluate(config, run_dir)`` is the importable entry point (the CLI's ``train`` and
main job, and the end-to-end tests call it): it loads the data, fits the caption vocabulary on
the training captions (or reloads it when resuming), trains resumably (see
:mod:`apps.common.training`; a frozen ``keras.applications`` encoder runs once per image, its
features cached), then captions the test images and writes ``metrics.json`` (BLEU-1..4, CIDEr,
and exact-caption accuracy on ``builtin:digits``) and ``samples/captions-test.jsonl``.

:func:`load_trained`, :func:`evaluate_trained` and :func:`caption_texts` serve the
``evaluate``, ``caption`` and ``attend`` commands.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from apps.captioning.config import CaptioningConfig
from apps.captioning.data import CaptionSplit, native_channels, native_size
from apps.common.errors import DataError, RunDirError, UsageError
from apps.common.rundir import RunDir, atomic_write_json, atomic_write_text

APP_MODULE = "apps.captioning"
FEATURES_SUBDIR = "features"
PRETRAINED_MIN_SIZE = 128
MIN_LR_FRACTION = 0.03


def _say(log: Callable[[str], None] | None, message: str) -> None:
    if log is not None:
        log(message)


# -------------------------------------------------------------------- input geometry
def image_geometry(config: CaptioningConfig) -> tuple[int, int]:
    """``(image size, channels)`` of the model input for ``config``.

    The ``cnn`` encoder reads the source's own size and channels (32x32 gray for
    ``builtin:digits``); ``keras.applications`` encoders read RGB, at least 128 pixels wide
    unless ``image_size`` says otherwise.
    """
    if config.encoder == "cnn":
        return config.image_size or native_size(config.data), native_channels(config.data)
    size = config.image_size or max(native_size(config.data), PRETRAINED_MIN_SIZE)
    return size, 3


def learning_rate_at(epoch: int, config: CaptioningConfig) -> float:
    """Cosine decay per epoch from ``learning_rate`` to ``MIN_LR_FRACTION`` of it.

    A function of the epoch only, so a resumed run continues the same schedule.
    """
    progress = min(epoch / max(config.epochs - 1, 1), 1.0)
    fraction = MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))
    return float(config.learning_rate * fraction)


# ------------------------------------------------------------------- a trained run
@dataclasses.dataclass
class TrainedRun:
    """A run dir's model with what it needs to read images and write captions.

    Attributes:
        run: the run directory.
        config: its config.
        tokenizer: the caption vocabulary (``vocab.json``).
        model: the trained image model (``model.keras``).
        image_size: side of the model's square input.
        channels: 1 or 3.
    """

    run: RunDir
    config: CaptioningConfig
    tokenizer: Any
    model: Any
    image_size: int
    channels: int
    _captioner: Any = dataclasses.field(default=None, init=False, repr=False)

    @property
    def captioner(self) -> Any:
        """The :class:`apps.captioning.decode.Captioner` over this model (built once)."""
        if self._captioner is None:
            from apps.captioning.decode import Captioner

            self._captioner = Captioner(self.model)
        return self._captioner


def read_run_config(run: RunDir) -> tuple[CaptioningConfig, dict[str, Any]]:
    """The run's :class:`CaptioningConfig` and its whole ``config.json``."""
    meta = run.read_meta()
    config = CaptioningConfig.from_dict(meta["config"], source=str(run.config_json))
    return config, meta


def run_geometry(run: RunDir) -> tuple[int, int]:
    """``(image size, channels)`` recorded in a run's ``config.json`` (pure Python)."""
    config, meta = read_run_config(run)
    size, channels = meta.get("image_size"), meta.get("channels")
    if not isinstance(size, int) or channels not in (1, 3):
        return image_geometry(config)
    return size, channels


def load_tokenizer(run: RunDir) -> Any:
    """The caption vocabulary of a run; :class:`RunDirError` when missing or malformed."""
    from apps.captioning.vocab import check_vocab
    from apps.common.text import WordTokenizer

    if not run.vocab_json.is_file():
        raise RunDirError(f"--run-dir: {run.path} has no vocab.json (was training started?)")
    try:
        tokenizer = WordTokenizer.load(run.vocab_json)
        check_vocab(tokenizer)
    except (DataError, ValueError) as e:
        raise RunDirError(f"--run-dir: {run.vocab_json}: {e}") from None
    return tokenizer


def load_trained(run: RunDir) -> TrainedRun:
    """Load ``model.keras`` (safe mode), ``vocab.json`` and the input geometry of a run."""
    import seqlayers  # noqa: F401  (registers the custom layers)
    from apps.captioning.model import is_feature_model

    config, _ = read_run_config(run)
    tokenizer = load_tokenizer(run)
    model = run.load_model()
    if is_feature_model(model):
        raise RunDirError(
            f"--run-dir: {run.path}: training stopped before the encoder was joined to the "
            "model; run the same train command again to finish it"
        )
    size, channels = run_geometry(run)
    return TrainedRun(run, config, tokenizer, model, size, channels)


# ------------------------------------------------------------------------ captions
def caption_ids(trained: TrainedRun, images: np.ndarray, beam_size: int = 1) -> list[list[int]]:
    """Generated ids (no ``[START]`` / ``[END]``) per image."""
    return trained.captioner.generate(images, trained.config.max_length, beam_size)


def caption_texts(trained: TrainedRun, images: np.ndarray, beam_size: int = 1) -> list[str]:
    """Generated captions, as text, per image."""
    from apps.captioning.vocab import caption_words, detokenize

    ids = caption_ids(trained, images, beam_size)
    return [detokenize(caption_words(trained.tokenizer, row)) for row in ids]


# -------------------------------------------------------------------------- metrics
def evaluate_trained(trained: TrainedRun, split: CaptionSplit, *, data: str, split_name: str = "test",
                     beam_size: int = 1, write: bool = True) -> dict[str, Any]:  # fmt: skip
    """Caption ``split``'s images and score them against all their references.

    Returns:
        BLEU-1..4 and CIDEr (``bleu_1``..``bleu_4``, ``cider``), ``exact_caption_accuracy``
        (``builtin:digits`` only: generated tokens equal the reference's), ``images``,
        ``data``, ``split``, ``beam``, ``encoder``, ``cell``, ``params``, ``vocab_size`` and
        (when known) ``train_seconds``. Also written to ``metrics.json`` with ``write``, and
        the captions to ``samples/captions-<split>.jsonl``.
    """
    from apps.captioning.metrics import caption_scores, exact_accuracy
    from apps.captioning.vocab import caption_words, detokenize, reference_tokens
    from apps.common import training

    if len(split) == 0:
        raise DataError(f"--data: {data} has no {split_name} images to evaluate")
    started = time.monotonic()
    ids = caption_ids(trained, split.images, beam_size)
    words = [caption_words(trained.tokenizer, row) for row in ids]
    texts = [detokenize(w) for w in words]
    metrics: dict[str, Any] = caption_scores(split.captions, texts)
    if data.strip() == "builtin:digits":
        refs = [[reference_tokens(trained.tokenizer, c) for c in caps] for caps in split.captions]
        metrics["exact_caption_accuracy"] = exact_accuracy(refs, words)
    metrics.update(
        images=len(split),
        data=data,
        split=split_name,
        beam=beam_size,
        encoder=trained.config.encoder,
        cell=trained.config.cell,
        params=int(trained.model.count_params()),
        vocab_size=int(trained.tokenizer.vocab_size),
        decode_seconds=round(time.monotonic() - started, 2),
    )
    seconds = training.read_train_seconds(trained.run)
    if seconds is not None:
        metrics["train_seconds"] = round(seconds, 2)
    if write:
        lines = [json.dumps({"image": name, "caption": text, "references": refs},
                            ensure_ascii=False)
                 for name, text, refs in zip(split.names, texts, split.captions)]  # fmt: skip
        atomic_write_text(
            trained.run.samples / f"captions-{split_name}.jsonl", "\n".join(lines) + "\n"
        )
        atomic_write_json(trained.run.metrics_json, metrics)
    return metrics


# ----------------------------------------------------------------------------- train
def _encoder_key(config: CaptioningConfig, size: int, channels: int) -> dict[str, Any]:
    from apps.captioning.features import file_sha256

    return {"encoder": config.encoder, "weights_sha256": file_sha256(config.encoder_weights),
            "image_size": size, "channels": channels}  # fmt: skip


def _finish_frozen(run: RunDir, config: CaptioningConfig, encoder: Any) -> None:
    """Join the frozen encoder in front of the best feature model (``model.keras``)."""
    import seqlayers  # noqa: F401
    from apps.captioning.model import compose_full_model, is_feature_model

    best = run.load_model()
    if not is_feature_model(best):
        return
    full = compose_full_model(best, encoder)
    with run.output("model.keras") as tmp:
        full.save(tmp)


def train_and_evaluate(
    config: CaptioningConfig,
    run_dir: str | os.PathLike | RunDir,
    *,
    quiet: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` (resuming what is there), then evaluate on the test split.

    Args:
        config: the app config (``CaptioningConfig.tiny()`` in tests).
        run_dir: a path (new, empty, or a captioning run dir to resume) or a :class:`RunDir`.
        quiet: no progress bars.
        log: called with one-line progress messages (the CLI passes ``print``).

    Returns:
        The test metrics (also in ``DIR/metrics.json``), see :func:`evaluate_trained`.
    """
    trained, data = train(config, run_dir, quiet=quiet, log=log)
    return evaluate_trained(trained, data.test, data=config.data, split_name="test")


def train(
    config: CaptioningConfig,
    run_dir: str | os.PathLike | RunDir,
    *,
    quiet: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[TrainedRun, Any]:
    """Train ``config`` in ``run_dir`` (resuming what is there); no evaluation.

    Returns:
        ``(the trained run, the CaptionData it was trained on)``.
    """
    import keras

    from apps.captioning.data import encode_captions, load_splits, make_dataset
    from apps.captioning.features import cached_features
    from apps.captioning.model import build_encoder, build_feature_model, build_model
    from apps.captioning.vocab import fit_vocab
    from apps.common import training
    from apps.common.progress import Progress

    run = run_dir if isinstance(run_dir, RunDir) else RunDir.prepare(run_dir, APP_MODULE)
    resuming = run.vocab_json.is_file() and run.exists
    if run.exists:
        saved, _ = read_run_config(run)
        if saved.differences(config).keys() - set(CaptioningConfig.RESUMABLE):
            raise RunDirError(f"--run-dir: {run.path} holds a run with another config")
    else:
        run.write_config(config.to_dict())  # a run dir from now on (a failed start can resume)
    training.seed_everything(config.seed)
    size, channels = image_geometry(config)

    bar: Progress | None = None

    def progress(label: str, done: int) -> None:
        nonlocal bar
        if bar is None:
            bar = Progress(label, None, quiet=quiet)
        bar.update()

    data = load_splits(config.data, seed=config.seed, scenes=config.scenes, limit=config.limit,
                       image_size=size, channels=channels, progress=progress)  # fmt: skip
    if bar is not None:
        bar.close()
    _say(log, f"data: {data.description}")
    for note in data.notes:
        _say(log, f"warning: {note}")
    train_index, train_texts = data.train.pairs()
    val_index, val_texts = data.val.pairs()
    _say(log, f"examples: {len(train_texts)} training captions of {len(data.train)} images, "
              f"{len(data.val)} validation and {len(data.test)} test images")  # fmt: skip
    if resuming:
        tokenizer = load_tokenizer(run)
    else:
        tokenizer = fit_vocab(train_texts, config.vocab_size, config.min_count)
        tokenizer.save(run.vocab_json)

    encoder = build_encoder(config.encoder, size, channels, filters=config.filters,
                            weights=config.encoder_weights, fine_tune=config.fine_tune)  # fmt: skip
    head = {"cell": config.cell, "units": config.units, "embedding_dim": config.embedding_dim,
            "attention_units": config.attention_units, "dropout": config.dropout,
            "seed": config.seed}  # fmt: skip
    if config.frozen_encoder:
        key = _encoder_key(config, size, channels)
        cache = run.checkpoints / FEATURES_SUBDIR
        train_inputs, hit_train = cached_features(
            encoder, data.train.images, cache, key, quiet=quiet
        )
        val_inputs, hit_val = cached_features(encoder, data.val.images, cache, key, quiet=quiet)
        _say(log, f"encoder features: {'cached' if hit_train and hit_val else 'computed and cached'} "
                  f"in {cache}")  # fmt: skip
        model = build_feature_model(tuple(train_inputs.shape[1:]), tokenizer.vocab_size, **head)
    else:
        train_inputs, val_inputs = data.train.images, data.val.images
        model = build_model(encoder, tokenizer.vocab_size, **head)
    grid = [int(d) for d in encoder.output.shape[1:]]
    run.write_config(config.to_dict(), image_size=size, channels=channels, grid=grid,
                     data_description=data.description, skipped=data.skipped)  # fmt: skip

    def dataset(inputs, index, texts, shuffle):
        sequences = encode_captions(tokenizer, texts, config.max_length)
        return make_dataset(inputs, index, sequences, config.batch_size, shuffle=shuffle,
                            seed=config.seed)  # fmt: skip

    train_ds = dataset(train_inputs, train_index, train_texts, True)
    val_ds = dataset(val_inputs, val_index, val_texts, False)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")],
    )
    _say(log, f"model: {config.encoder} encoder ({'x'.join(map(str, grid[:2]))} grid of {grid[2]} "
              f"features), attention decoder with a {config.cell} cell, "
              f"{model.count_params():,} parameters, {tokenizer.vocab_size:,} words")  # fmt: skip
    start_epoch = training.restored_epoch(run.checkpoints / training.BACKUP_SUBDIR)
    if start_epoch:
        _say(
            log,
            f"resuming from epoch {start_epoch} of {config.epochs} (checkpoint in {run.checkpoints})",
        )
    schedule = keras.callbacks.LearningRateScheduler(
        lambda epoch, lr: learning_rate_at(epoch, config)
    )
    training.fit(model, train_ds, val_ds, run, config.epochs, quiet=quiet, callbacks=[schedule])
    if config.frozen_encoder:
        _finish_frozen(run, config, encoder)
    return load_trained(run), data


# ------------------------------------------------------------------------- helpers
def check_encoder_weights(config: CaptioningConfig) -> None:
    """A ``keras.applications`` encoder needs its weights file (pure Python check)."""
    if config.encoder == "cnn":
        return
    if config.encoder_weights is None:
        raise UsageError(
            f"--encoder-weights: the {config.encoder} encoder needs its ImageNet weights file "
            "(no top, e.g. from keras-applications' storage); nothing is downloaded here — give "
            "--encoder-weights PATH, or use --encoder cnn"
        )
    path = Path(config.encoder_weights)
    if not path.is_file():
        raise UsageError(f"--encoder-weights: no such file: {path} (nothing is downloaded here)")


def stack_images(images: Sequence[np.ndarray]) -> np.ndarray:
    """``(N, S, S, C)`` uint8 from per-image arrays."""
    return np.stack([np.asarray(x, dtype=np.uint8) for x in images])
