"""What the exporter needs from a music run: real inputs, tables, lengths, the one-step model.

``HOOK`` feeds :mod:`export` for the sequence model (``model.keras``):

- ``representative_inputs``: real training windows (roll frames ``(T, 88)`` float32 or event
  tokens ``(T,)`` int32), ``seq_len`` steps each, to calibrate ``int8``;
- ``parity_inputs``: the same from the test split;
- ``tables``: ``vocab.json`` (the piano-roll layout or the event-token layout);
- ``default_seq_len``: the training window.

Generation on a phone loops over the **one-step** model instead (``(frame | token, state...)
-> (logits, state...)``): :func:`step_model` builds it from the loaded ``model.keras`` and
:func:`step_parity_inputs` gives real ``[input, *states]`` examples for it (states taken along
real test pieces, so parity covers non-zero states).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from export.app_hooks import AppHook

MAX_EXAMPLES = 64


def _config(config: Mapping[str, Any]) -> Any:
    from apps.music.config import MusicConfig

    return MusicConfig.from_dict(dict(config), source="config.json")


def split_windows(
    config: Mapping[str, Any], split: str, limit: int | None = None
) -> list[tuple[Any, Any]]:
    """``(inputs, targets)`` of the ``split``'s pieces cut into consecutive ``seq_len``
    windows (the run's data, representation and grid), the first ``limit`` of them; inputs
    are float32 frames (roll) or int32 tokens (events)."""
    from apps.music.data import encode_pieces, load_splits, windows
    from apps.music.train import make_codec

    cfg = _config(config)
    data = load_splits(cfg.data, seed=cfg.seed, limit=cfg.limit, representation=cfg.representation)
    codec = make_codec(cfg) if cfg.representation == "events" else None
    sequences = encode_pieces(data.split(split), cfg.representation,
                              steps_per_quarter=cfg.steps_per_quarter, codec=codec)  # fmt: skip
    dtype = "float32" if cfg.representation == "roll" else "int32"
    out = []
    for inputs, targets in sequences:
        for x, y in windows(inputs, targets, cfg.seq_len):
            out.append((x.astype(dtype), y))
            if limit is not None and len(out) >= limit:
                return out
    return out


def _windows(run_dir: Path, config: Mapping[str, Any], split: str) -> list[Any]:
    return [x for x, _ in split_windows(config, split, MAX_EXAMPLES)]


def representative_inputs(run_dir: Path, config: Mapping[str, Any]) -> list[Any]:
    """Real training windows (list of per-example arrays, varying lengths)."""
    return _windows(Path(run_dir), config, "train")


def parity_inputs(run_dir: Path, config: Mapping[str, Any]) -> list[Any]:
    """Real test windows."""
    return _windows(Path(run_dir), config, "test")


def tables(run_dir: Path, config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``vocab.json``: how frames or tokens map to music."""
    representation = config.get("representation", "roll")
    role = ("piano-roll layout: input = previous frame as 88 floats (key k = MIDI pitch 21 + k, "
            "first input all zeros), output = 88 logits, P(key down) = sigmoid(logit)"
            if representation == "roll" else
            "event-token layout: BOS, then per note step / pitch / duration [/ velocity] tokens "
            "(id ranges in 'ranges'); sample only the kind that comes next")  # fmt: skip
    return [{"path": Path(run_dir) / "vocab.json", "role": role}]


def default_seq_len(config: Mapping[str, Any]) -> int | None:
    """The training window (``seq_len``)."""
    value = config.get("seq_len")
    return int(value) if isinstance(value, int) and value > 0 else None


def step_model(model: Any) -> Any:
    """The one-step model of a loaded music ``model.keras`` (see
    :func:`apps.music.model.build_step_model`)."""
    from apps.music.model import build_step_model

    return build_step_model(model)


def step_parity_inputs(
    run_dir: Path, config: Mapping[str, Any], model: Any, count: int = 32
) -> list[list[Any]]:
    """``[input (1, ...), *states (1, size)]`` examples for the one-step model, with the states
    reached by stepping through real test windows."""
    import numpy as np

    from apps.music.sample import StepRunner

    runner = StepRunner(step_model(model))
    examples: list[list[Any]] = []
    for window in parity_inputs(Path(run_dir), config):
        states = runner.initial_states(1)
        for step_input in window[: max(1, count // 4)]:
            x = np.asarray(step_input)[None]
            examples.append([x, *[s.copy() for s in states]])
            _, states = runner(x, states)
            if len(examples) >= count:
                return examples
    return examples


def step_models(run_dir: Path, config: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """The one-step model a phone loops over: ``frame | token, states... -> logits, states...``."""
    return {"step": step_model(model)}


HOOK = AppHook(
    representative_inputs=representative_inputs,
    parity_inputs=parity_inputs,
    tables=tables,
    default_seq_len=default_seq_len,
    modules=("apps.music.model", "apps.music.ensemble"),
    step_models=step_models,
    step_parity_inputs=step_parity_inputs,
)
