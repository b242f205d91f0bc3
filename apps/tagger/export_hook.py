"""What ``python -m export`` needs to know about a tagger run (``HOOK``; the exporter finds it).

``model.keras`` maps ``{"word_ids": int32 (batch, time), "char_ids": int32 (batch, time,
chars)}`` to tag probabilities ``(batch, time, tags)``; it runs once per sentence (no decoding
loop, so no step model). Padding with 0 on the right of either axis never changes a real token's
tag, so a fixed-shape export may pad both ``time`` and ``chars``.

- representative / parity inputs: real sentences of the run's training / test split, encoded
  with the run's ``vocab.json`` (characters padded to ``max_chars``); the calibration set also
  holds training sentences joined up to 64 tokens (calibrated on short sentences only, the
  BiLSTM's int8 file fails to load under XNNPACK, see :mod:`export.calibration`);
- tables: ``vocab.json`` (words, characters, tags);
- default sequence length: 64 tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from export.app_hooks import AppHook, Config

SENTENCES = 64
SEQ_LEN = 64


def _inputs(run_dir: Path, config: Config, split: str) -> list[dict[str, Any]]:
    from apps.tagger.config import TaggerConfig
    from apps.tagger.data import Vocab, encode_batch, load_splits

    cfg = TaggerConfig.from_dict(dict(config), source="config.json")
    vocab = Vocab.load(Path(run_dir) / "vocab.json")
    data = load_splits(cfg.data, tag_set=cfg.tags, seed=cfg.seed, limit=SENTENCES,
                       generated=cfg.generated)  # fmt: skip
    out = []
    for sentence in data.split(split)[:SENTENCES]:
        batch = encode_batch(vocab, [list(sentence.tokens)], width=vocab.max_chars)
        out.append({name: array[0] for name, array in batch.items()})
    return out


def representative_inputs(run_dir: Path, config: Config) -> list[dict[str, Any]]:
    """Up to 64 training sentences: ``{"word_ids": (T,), "char_ids": (T, max_chars)}`` each,
    mixed with training sentences joined end to end up to 64 tokens so that every step of the
    fixed-length export is calibrated on real tokens (see :mod:`export.calibration`)."""
    from export.calibration import with_full_length

    return with_full_length(_inputs(run_dir, config, "train"), SEQ_LEN)


def parity_inputs(run_dir: Path, config: Config) -> list[dict[str, Any]]:
    """Up to 64 test sentences, encoded like :func:`representative_inputs`."""
    return _inputs(run_dir, config, "test")


def tables(run_dir: Path, config: Config) -> list[dict[str, Any]]:
    return [{
        "path": Path(run_dir) / "vocab.json",
        "role": "tagger tables: split text into tokens (apps.tagger.tokens.tokenize); word id = "
        "index in 'words' of the token lower-cased with digits -> 0 (0 padding, 1 unknown); "
        "char ids = index in 'chars' of each character (0 padding, 1 unknown; words longer "
        "than max_chars keep their first and last max_chars/2 characters); output index = "
        "index in 'tags' (IOB2 for NER)",
    }]  # fmt: skip


HOOK = AppHook(
    representative_inputs=representative_inputs,
    parity_inputs=parity_inputs,
    tables=tables,
    default_seq_len=lambda config: SEQ_LEN,
    modules=("apps.tagger.model",),
)
