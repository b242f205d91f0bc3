"""What ``python -m export`` needs to know about a char-LM run (``HOOK``; the exporter discovers it).

- representative / parity inputs: real windows of character ids (``bptt`` long) from the run's
  training / validation text, encoded with the run's ``vocab.json``;
- tables: ``vocab.json`` (id ``i + 1`` is ``chars[i]``; id 0 the unknown character);
- default sequence length: the run's ``bptt``.

``model.keras`` is the stateless sequence model ``ids (batch, time) -> logits (batch, time,
vocab)``. A phone generates with the one-step model instead:
:func:`apps.charlm.model.build_step_model` (``token (batch, 1)``, ``state_<layer>_<k>``... ->
``logits (batch, vocab)``, new states; LSTM layers have two states, h then c), the model that
:mod:`apps.charlm.sample` loops over; :func:`step_parity_inputs` gives real inputs for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from export.app_hooks import AppHook, Config

WINDOWS = 64


def _config(config: Config) -> Any:
    from apps.charlm.config import CharLMConfig

    return CharLMConfig.from_dict(dict(config), source="config.json")


def _ids(run_dir: Path, config: Config, part: str) -> np.ndarray:
    from apps.charlm.data import CharVocab, load_corpus

    cfg = _config(config)
    corpus = load_corpus(cfg.data, encoding=cfg.encoding, max_chars=cfg.max_chars,
                         val_fraction=cfg.val_fraction)  # fmt: skip
    vocab = CharVocab.load(Path(run_dir) / "vocab.json")
    return vocab.encode(corpus.train if part == "train" else corpus.val)


def _windows(ids: np.ndarray, length: int, count: int = WINDOWS) -> np.ndarray:
    from apps.charlm.gradients import probe_windows

    return probe_windows(ids, count, length - 1) if len(ids) > length else ids[None, :length]


def representative_inputs(run_dir: Path, config: Config) -> np.ndarray:
    """``(64, bptt)`` int32 windows of the training text."""
    return _windows(_ids(run_dir, config, "train"), _config(config).bptt)


def parity_inputs(run_dir: Path, config: Config) -> np.ndarray:
    """``(64, bptt)`` int32 windows of the validation text."""
    return _windows(_ids(run_dir, config, "val"), _config(config).bptt)


def step_parity_inputs(
    run_dir: Path, config: Config, model: Any, count: int = 16
) -> list[list[np.ndarray]]:
    """Real inputs of the one-step model: ``[token (1, 1), *states]`` reached by reading
    validation text from zero state (distinct depths 0, 1, 2, …)."""
    from apps.charlm.sample import Generator
    from apps.charlm.train import load_vocab
    from apps.common.rundir import RunDir

    vocab = load_vocab(RunDir(run_dir, "apps.charlm"))
    gen = Generator.from_model(model, vocab)
    ids = _ids(run_dir, config, "val")[: count + 1]
    states, out = gen.zero_states(1), []
    for token in ids[:count]:
        out.append([np.array([[token]], np.int32), *[s.copy() for s in states]])
        _, states = gen.step_fn(np.array([token]), states)
    return out


def tables(run_dir: Path, config: Config) -> list[dict[str, Any]]:
    return [{
        "path": Path(run_dir) / "vocab.json",
        "role": "character table: id = 1 + index in 'chars'; id 0 is the unknown character "
        "(any character not listed); the model predicts ids the same way",
    }]  # fmt: skip


def default_seq_len(config: Config) -> int | None:
    value = config.get("bptt")
    return int(value) if isinstance(value, int) and value > 0 else None


def step_models(run_dir: Path, config: Config, model: Any) -> dict[str, Any]:
    """The one-step model a phone loops over: ``token, states... -> logits, states...``."""
    from apps.charlm.model import build_step_model

    return {"step": build_step_model(model)}


HOOK = AppHook(
    representative_inputs=representative_inputs,
    parity_inputs=parity_inputs,
    tables=tables,
    default_seq_len=default_seq_len,
    step_models=step_models,
    step_parity_inputs=step_parity_inputs,
)
