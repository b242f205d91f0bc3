"""Small real-data tasks that a cell search trains every candidate on.

- ``jsb`` — JSB Chorales piano rolls (Boulanger-Lewandowski et al. 2012 splits), next-frame
  prediction of 88 independent keys; metric: validation NLL per frame (nats, lower is better).
  Data: a piano-roll JSON such as ``jsb-chorales-quarter.json`` (read with the music app's
  loader), by default the copy in the shared data folder.
- ``charlm`` — character-level language model; metric: validation bits per character.
  Data: ``builtin:pysource`` (top-level ``.py`` files of this Python's standard library, no
  download) or a UTF-8 text file (e.g. tinyshakespeare's ``input.txt``); the last 10 % of the
  characters validate.
- ``sentiment`` — the sentiment app's data (``builtin:tweets`` by default, any source it reads);
  metric: validation accuracy (higher is better).

Every candidate of a task gets the same embedding / input and output layers; only the recurrent
block (``GenotypeRNN`` of the candidate, after a projection for bare-``x`` genotypes) changes.
Each trial trains for a fixed step budget with early stopping on the validation metric
(:func:`train_candidate`).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import sysconfig
from pathlib import Path
from typing import Any

import numpy as np

from apps.common.errors import DataError
from apps.common.sources import read_text_strict
from seqlayers.genotype import CellGenotype
from tuning.budget import Sizing
from tuning.sources import resolve_data

TASKS = ("charlm", "jsb", "sentiment")
KEYS = 88
LOWEST_PITCH = 21
LN2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """How every trial trains.

    Attributes:
        steps: most optimizer steps per trial.
        eval_every: steps between validations (an early-stopping "epoch").
        patience: validations without improvement before stopping.
        batch_size: examples per step.
        run_eagerly: run Keras eagerly (tiny tests: no graph tracing per trial).
    """

    steps: int = 300
    eval_every: int = 50
    patience: int = 2
    batch_size: int = 32
    run_eagerly: bool = False


# ------------------------------------------------------------------------------ the base
class Task:
    """A task: its data (loaded once), the model around a candidate, loss and metric."""

    name = ""
    metric = ""
    direction = "min"
    input_dim = 0
    description = ""
    unit = ""

    @property
    def objective_name(self) -> str:
        return f"val_{self.metric}"

    def build(self, genotype: CellGenotype, sizing: Sizing) -> Any:
        raise NotImplementedError

    def loss(self) -> Any:
        raise NotImplementedError

    def metrics(self) -> tuple[list[Any], list[Any]]:
        """``(metrics, weighted_metrics)`` for ``compile``."""
        raise NotImplementedError

    def datasets(self, batch_size: int, seed: int) -> tuple[Any, Any]:
        """``(train, val)``: an endless shuffled training stream and the validation set."""
        raise NotImplementedError

    def better(self, a: float, b: float) -> bool:
        return a < b if self.direction == "min" else a > b


def recurrent_block(
    x: Any, genotype: CellGenotype, sizing: Sizing, *, return_sequences: bool
) -> Any:
    """The candidate: ``[projection] -> GenotypeRNN(units, genotype)``."""
    import keras

    import seqlayers

    if sizing.projected:
        x = keras.layers.Dense(sizing.units, use_bias=False, name="projection")(x)
    return seqlayers.GenotypeRNN(
        sizing.units, genotype, return_sequences=return_sequences, name="cell"
    )(x)


def block_weight_count(model: Any) -> int:
    """Weights of the ``projection`` and ``cell`` layers of a task model."""
    total = 0
    for layer in model.layers:
        if layer.name in ("projection", "cell"):
            total += sum(int(np.prod(w.shape)) for w in layer.weights)
    return total


def _arrays_dataset(arrays: tuple[np.ndarray, ...], batch_size: int, seed: int, train: bool) -> Any:
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(arrays)
    if train:
        ds = ds.shuffle(len(arrays[0]), seed=seed, reshuffle_each_iteration=True).repeat()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# ------------------------------------------------------------------------------------ JSB
def read_rolls(path: str | os.PathLike, limit: int | None = None) -> tuple[list[np.ndarray], ...]:
    """Train / valid / test piano rolls ``(T, 88)`` of a Boulanger-Lewandowski JSON file.

    Uses the music app's reader when it is importable (it validates every step and pitch);
    otherwise a minimal reader of the same format.
    """
    try:
        from apps.music.data import read_roll_json
    except ImportError:  # pragma: no cover - the music app is part of the suite
        read_roll_json = None
    if read_roll_json is not None:
        splits = read_roll_json(path, limit=limit)
        return tuple([np.asarray(p.roll, np.float32) for p in split] for split in splits)
    return _read_rolls_minimal(Path(path), limit)


def _read_rolls_minimal(path: Path, limit: int | None) -> tuple[list[np.ndarray], ...]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"--data: cannot read {path} as JSON: {e}") from None
    out = []
    for key in ("train", "valid", "test"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise DataError(f"--data: {path} has no '{key}' list of pieces")
        rolls = []
        for i, steps in enumerate(data[key][:limit]):
            roll = np.zeros((len(steps), KEYS), np.float32)
            for t, step in enumerate(steps):
                for pitch in step:
                    if isinstance(pitch, (int, float)) and pitch >= 0:
                        k = int(pitch) - LOWEST_PITCH
                        if not 0 <= k < KEYS:
                            raise DataError(f"--data: {path}: {key}[{i}] step {t}: pitch {pitch}")
                        roll[t, k] = 1.0
            if len(roll):
                rolls.append(roll)
        out.append(rolls)
    return tuple(out)


def roll_windows(rolls: list[np.ndarray], length: int | None) -> tuple[np.ndarray, ...]:
    """``(inputs, targets, weights)`` of every roll cut into ``length``-frame windows.

    Inputs are the frames shifted right behind a silent frame (every frame is predicted);
    windows shorter than ``length`` are padded with weight 0. ``length=None``: one window per
    piece, as long as the longest piece.
    """
    pairs = []
    for roll in rolls:
        inputs = np.concatenate([np.zeros((1, KEYS), np.float32), roll[:-1]], axis=0)
        step = length or len(roll)
        for start in range(0, len(roll), step):
            pairs.append((inputs[start : start + step], roll[start : start + step]))
    width = length or max(len(x) for x, _ in pairs)
    x = np.zeros((len(pairs), width, KEYS), np.float32)
    y = np.zeros_like(x)
    w = np.zeros((len(pairs), width), np.float32)
    for i, (a, b) in enumerate(pairs):
        x[i, : len(a)], y[i, : len(b)], w[i, : len(a)] = a, b, 1.0
    return x, y, w


def frame_nll(y_true: Any, logits: Any) -> Any:
    """Negative log-likelihood of each frame under 88 independent Bernoulli keys (nats)."""
    from keras import ops

    return ops.sum(ops.binary_crossentropy(y_true, logits, from_logits=True), axis=-1)


class JSBTask(Task):
    """Next-frame prediction on JSB Chorales piano rolls; metric: NLL per frame (nats)."""

    name = "jsb"
    metric = "nll"
    direction = "min"
    input_dim = KEYS
    unit = "nats per frame"

    def __init__(self, data: str, *, seq_len: int = 64, limit: int | None = None) -> None:
        train, valid, _ = read_rolls(data, limit)
        self.train = roll_windows(train, seq_len)
        self.val = roll_windows(valid, None)
        frames = int(sum(len(r) for r in train))
        self.description = (
            f"{data} — JSB Chorales piano rolls, {len(train)} train / {len(valid)} valid "
            f"pieces, {frames:,} train frames in windows of {seq_len}"
        )

    def build(self, genotype: CellGenotype, sizing: Sizing) -> Any:
        import keras

        frames = keras.Input((None, KEYS), name="frames")
        h = recurrent_block(frames, genotype, sizing, return_sequences=True)
        logits = keras.layers.Dense(KEYS, name="logits")(h)
        return keras.Model(frames, logits, name="jsb_candidate")

    def loss(self) -> Any:
        return frame_nll

    def metrics(self) -> tuple[list[Any], list[Any]]:
        import keras

        return [], [keras.metrics.MeanMetricWrapper(frame_nll, name="nll")]

    def datasets(self, batch_size: int, seed: int) -> tuple[Any, Any]:
        return (
            _arrays_dataset(self.train, batch_size, seed, True),
            _arrays_dataset(self.val, batch_size, seed, False),
        )


# ------------------------------------------------------------------------------- char LM
def load_text(spec: str, max_chars: int) -> tuple[str, str]:
    """``(text, description)``: ``builtin:pysource`` or a UTF-8 text file, at most ``max_chars``."""
    if spec == "builtin:pysource":
        root = Path(sysconfig.get_paths()["stdlib"])
        parts, total, files = [], 0, 0
        for path in sorted(root.glob("*.py")):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            parts.append(text[: max_chars - total])
            total += len(parts[-1])
            files += 1
            if total >= max_chars:
                break
        if not parts:
            raise DataError(f"--data: builtin:pysource: no readable .py files in {root}")
        text = "".join(parts)
        return text, f"builtin:pysource — {files} .py files of the standard library at {root}"
    text = read_text_strict(spec, flag="--data")[:max_chars]
    return text, f"{spec} — plain text"


def bits_per_char(y_true: Any, logits: Any) -> Any:
    """Cross-entropy of each next character in bits."""
    from keras import ops

    return ops.sparse_categorical_crossentropy(y_true, logits, from_logits=True) / LN2


class CharLMTask(Task):
    """Character-level language model; metric: validation bits per character."""

    name = "charlm"
    metric = "bpc"
    direction = "min"
    unit = "bits per character"

    def __init__(
        self,
        data: str,
        *,
        seq_len: int = 64,
        max_chars: int = 200_000,
        embedding_dim: int = 32,
        max_vocab: int = 128,
    ) -> None:
        text, source = load_text(data, max_chars)
        split = int(len(text) * 0.9)
        train_text, val_text = text[:split], text[split:]
        if len(val_text) < seq_len + 1 or len(train_text) < seq_len + 1:
            raise DataError(
                f"--data: {len(text)} characters are too few for windows of {seq_len} "
                "(raise --max-chars or lower --seq-len)"
            )
        counts = collections.Counter(train_text)
        chars = [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        self.chars = chars[: max_vocab - 1]  # id 0: any other character
        self.vocab_size = len(self.chars) + 1
        self.input_dim = embedding_dim
        index = {c: i + 1 for i, c in enumerate(self.chars)}
        self.train = self._windows(train_text, index, seq_len)
        self.val = self._windows(val_text, index, seq_len)
        self.description = (
            f"{source}; {len(train_text):,} train / {len(val_text):,} validation characters, "
            f"{self.vocab_size} symbols, windows of {seq_len}"
        )

    @staticmethod
    def _windows(text: str, index: dict[str, int], length: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.fromiter((index.get(c, 0) for c in text), np.int32, len(text))
        n = (len(ids) - 1) // length
        x = ids[: n * length].reshape(n, length)
        y = ids[1 : n * length + 1].reshape(n, length)
        return x, y

    def build(self, genotype: CellGenotype, sizing: Sizing) -> Any:
        import keras

        ids = keras.Input((None,), dtype="int32", name="chars")
        x = keras.layers.Embedding(self.vocab_size, self.input_dim, name="embedding")(ids)
        h = recurrent_block(x, genotype, sizing, return_sequences=True)
        logits = keras.layers.Dense(self.vocab_size, name="logits")(h)
        return keras.Model(ids, logits, name="charlm_candidate")

    def loss(self) -> Any:
        import keras

        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self) -> tuple[list[Any], list[Any]]:
        import keras

        return [keras.metrics.MeanMetricWrapper(bits_per_char, name="bpc")], []

    def datasets(self, batch_size: int, seed: int) -> tuple[Any, Any]:
        return (
            _arrays_dataset(self.train, batch_size, seed, True),
            _arrays_dataset(self.val, batch_size, seed, False),
        )


# ---------------------------------------------------------------------------- sentiment
class SentimentTask(Task):
    """The sentiment app's data and classifier head; metric: validation accuracy."""

    name = "sentiment"
    metric = "accuracy"
    direction = "max"
    unit = "accuracy"

    def __init__(
        self,
        data: str,
        *,
        seed: int,
        limit: int | None = None,
        embedding_dim: int = 32,
        vocab_size: int = 5000,
        max_length: int = 48,
    ) -> None:
        from apps.common.text import WordTokenizer
        from apps.sentiment.data import load_splits

        self.data = load_splits(data, seed=seed, limit=limit)
        self.tokenizer = WordTokenizer(vocab_size).fit(t for t, _ in self.data.train)
        self.input_dim = embedding_dim
        self.max_length = max_length
        self.num_classes = self.data.num_classes
        self.description = (
            f"{self.data.description}; {len(self.data.train)} train / {len(self.data.val)} "
            f"validation texts, {self.tokenizer.vocab_size} words"
        )

    def build(self, genotype: CellGenotype, sizing: Sizing) -> Any:
        import keras

        ids = keras.Input((None,), dtype="int32", name="token_ids")
        x = keras.layers.Embedding(
            self.tokenizer.vocab_size, self.input_dim, mask_zero=True, name="embedding"
        )(ids)
        h = recurrent_block(x, genotype, sizing, return_sequences=False)
        logits = keras.layers.Dense(self.num_classes, name="logits")(h)
        return keras.Model(ids, logits, name="sentiment_candidate")

    def loss(self) -> Any:
        import keras

        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self) -> tuple[list[Any], list[Any]]:
        import keras

        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")], []

    def datasets(self, batch_size: int, seed: int) -> tuple[Any, Any]:
        from apps.sentiment.data import make_dataset

        def make(split: str, shuffle: bool) -> Any:
            texts, labels = self.data.split(split)
            return make_dataset(
                texts, labels, self.tokenizer, batch_size, shuffle, seed, self.max_length
            )

        return make("train", True).repeat(), make("val", False)


def make_task(
    name: str,
    data: str | None,
    *,
    seq_len: int,
    max_chars: int,
    embedding_dim: int,
    limit: int | None,
    seed: int,
) -> Task:
    """Load the task ``name`` on ``data`` (its default when ``None``).

    Raises:
        UsageError: an unknown task name, or data that cannot be read (``DataError``).
    """
    from apps.common.errors import UsageError

    if name not in TASKS:
        raise UsageError(f"--task: unknown task {name!r} (choose from {', '.join(TASKS)})")
    spec = resolve_data(name, data)
    if name == "jsb":
        return JSBTask(spec, seq_len=seq_len, limit=limit)
    if name == "charlm":
        return CharLMTask(spec, seq_len=seq_len, max_chars=max_chars, embedding_dim=embedding_dim)
    return SentimentTask(spec, seed=seed, limit=limit, embedding_dim=embedding_dim)


# ------------------------------------------------------------------------------ training
def train_candidate(
    task: Task,
    genotype: CellGenotype,
    sizing: Sizing,
    *,
    learning_rate: float,
    settings: TrainSettings,
    seed: int,
) -> dict[str, float]:
    """Train one candidate for ``settings.steps`` steps at most, stopping early.

    Returns:
        ``{"metric": best validation value, "steps": steps trained, "evals": validations}``.

    Raises:
        FloatingPointError: the training diverged (no finite validation value).
    """
    import keras

    keras.utils.clear_session()
    keras.utils.set_random_seed(int(seed))
    model = task.build(genotype, sizing)
    metrics, weighted = task.metrics()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0),
        loss=task.loss(),
        metrics=metrics,
        weighted_metrics=weighted,
        run_eagerly=settings.run_eagerly,
    )
    train, val = task.datasets(settings.batch_size, int(seed))
    monitor = task.objective_name
    epochs = max(1, math.ceil(settings.steps / settings.eval_every))
    stop = keras.callbacks.EarlyStopping(
        monitor=monitor, mode=task.direction, patience=settings.patience
    )
    history = model.fit(
        train,
        steps_per_epoch=settings.eval_every,
        epochs=epochs,
        validation_data=val,
        callbacks=[stop, keras.callbacks.TerminateOnNaN()],
        shuffle=False,
        verbose=0,
    )
    seen = [float(v) for v in history.history.get(monitor, [])]
    finite = [v for v in seen if math.isfinite(v)]
    if not finite:
        raise FloatingPointError(f"training diverged: no finite {monitor}")
    best = min(finite) if task.direction == "min" else max(finite)
    return {"metric": best, "steps": len(seen) * settings.eval_every, "evals": len(seen)}
