"""What ``python -m export`` needs to know about a sentiment run (``HOOK``; discovered by
:func:`export.app_hooks.get_app_hook`).

``model.keras`` is the classifier ``token_ids (batch, time) int32 -> probabilities (batch,
classes)``:

- representative / parity inputs: the first texts of the training / test split, encoded
  exactly as training encodes them (run's ``vocab.json``, ``max_length``); the calibration
  set also holds training texts joined up to ``max_length`` tokens (a bidirectional model
  calibrated on short texts only fails to load under XNNPACK, see :mod:`export.calibration`);
- text signature: the SavedModel ``serve_text`` signature tokenises raw strings with TF ops;
- tables: ``vocab.json`` (the ``WordTokenizer`` vocabulary);
- default sequence length: ``max_length`` (used by ``--seq-len auto`` only for models that
  need a fixed length; this one exports at dynamic length).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from export.app_hooks import AppHook, Config

EXAMPLES = 256  # calibration / parity examples drawn from each split


def _tokenizer(run_dir: Path) -> Any:
    from apps.common.text import WordTokenizer

    return WordTokenizer.load(Path(run_dir) / "vocab.json")


def default_seq_len(config: Config) -> int | None:
    """The run's ``max_length`` (``None`` when texts were not truncated)."""
    value = config.get("max_length")
    return int(value) if isinstance(value, int) and value > 0 else None


def _ids(run_dir: Path, config: Config, split: str) -> list[list[int]]:
    """Ids of the first texts of a split, encoded exactly as training encodes them."""
    from apps.sentiment.data import encode_texts, load_splits

    data = load_splits(str(config["data"]), seed=int(config["seed"]), limit=config.get("limit"))
    texts, _ = data.split(split)
    return encode_texts(texts[:EXAMPLES], _tokenizer(run_dir), default_seq_len(config))


def representative_inputs(run_dir: Path, config: Config) -> list[Any]:
    """Up to 256 encoded training texts (``int8`` calibration), mixed with training texts
    joined end to end up to ``max_length`` tokens so that every step of the fixed-length
    export is calibrated on real tokens (see :mod:`export.calibration`)."""
    from export.calibration import with_full_length

    return with_full_length(_ids(run_dir, config, "train"), default_seq_len(config))


def parity_inputs(run_dir: Path, config: Config) -> list[list[int]]:
    """Up to 256 encoded test texts."""
    return _ids(run_dir, config, "test")


def text_signature(run_dir: Path, config: Config) -> Any:
    """``serve_text``: raw strings -> post-padded ids, with the tokenizer's TF twin."""
    import tensorflow as tf

    from export.savedmodel import TextSignature

    tokenizer = _tokenizer(run_dir)
    max_len = default_seq_len(config)

    def text_to_ids(text):
        ids = tokenizer.tf_encode(text, max_len=max_len)
        # As training: post-padded with 0; an empty text is one padding step.
        width = tf.maximum(ids.bounding_shape(axis=1), 1)
        return ids.to_tensor(default_value=0, shape=tf.stack([ids.nrows(), width]))

    # The tokenizer's TF twin uses lookup tables; they must be tracked to be saved.
    # TODO(text owner): a public accessor for these resources would avoid `_tf()`.
    resources = [v for v in tokenizer._tf().values() if isinstance(v, tf.lookup.StaticHashTable)]
    return TextSignature(text_to_ids=text_to_ids, resources=resources, input_name="text")


def tables(run_dir: Path, config: Config) -> list[dict[str, Any]]:
    """``vocab.json``: how a phone app turns text into ids."""
    return [
        {
            "path": Path(run_dir) / "vocab.json",
            "role": "WordTokenizer vocabulary: standardise + split text as apps.common.text "
            "does, id = index in 'vocabulary' (0 padding, 1 [UNK]); post-pad with 0",
        }
    ]


HOOK = AppHook(
    representative_inputs=representative_inputs,
    parity_inputs=parity_inputs,
    text_signature=text_signature,
    tables=tables,
    default_seq_len=default_seq_len,
    modules=("apps.sentiment.model",),
)
