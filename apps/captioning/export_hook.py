"""What ``python -m export`` needs to know about a captioning run (``HOOK``).

``model.keras`` is the teacher-forced model ``{"image": (B, S, S, C) float 0..255,
"caption": (B, T) int32 [START] w..} -> logits (B, T, V)``:

- representative / parity inputs: real training / test images with their real caption
  prefixes (``[START] w..``, post-padded with 0 to ``max_length + 1``), encoded with the run's
  ``vocab.json``;
- tables: ``vocab.json`` (a ``WordTokenizer`` table; ids 2 and 3 are ``[START]`` / ``[END]``);
- default sequence length: ``max_length + 1`` caption steps.

A phone captions with two smaller models instead, built from the same weights and exported by
``step_models`` as ``encoder`` (``image -> values, keys, state_0..``: runs once per image) and
``decoder_step`` (``token, state_0.., values, keys -> logits, new state_0.., attention
weights``), the exact pair :mod:`apps.captioning.decode` loops over; their parity inputs are
real test images and the states reached along real test captions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from export.app_hooks import AppHook, Config, StepModel

EXAMPLES = 64


def _config(config: Config) -> Any:
    from apps.captioning.config import CaptioningConfig

    return CaptioningConfig.from_dict(dict(config), source="config.json")


def _split(run_dir: Path, config: Config, name: str) -> tuple[Any, Any]:
    from apps.captioning.data import load_splits
    from apps.captioning.train import APP_MODULE, load_tokenizer, run_geometry
    from apps.common.rundir import RunDir

    cfg = _config(config)
    run = RunDir(run_dir, APP_MODULE)
    size, channels = run_geometry(run)
    data = load_splits(cfg.data, seed=cfg.seed, scenes=cfg.scenes, limit=cfg.limit,
                       image_size=size, channels=channels)  # fmt: skip
    return data.split(name), load_tokenizer(run)


def _pairs(run_dir: Path, config: Config, name: str) -> dict[str, np.ndarray]:
    from apps.captioning.vocab import encode_caption

    split, tokenizer = _split(run_dir, config, name)
    cfg = _config(config)
    index, texts = split.pairs()
    index, texts = index[:EXAMPLES], texts[:EXAMPLES]
    captions = np.zeros((len(texts), cfg.max_length + 1), dtype=np.int32)
    for row, text in enumerate(texts):
        ids = encode_caption(tokenizer, text, cfg.max_length)[:-1]  # [START] w.. (no [END])
        captions[row, : len(ids)] = ids
    return {"image": split.images[index].astype(np.float32), "caption": captions}


def representative_inputs(run_dir: Path, config: Config) -> dict[str, np.ndarray]:
    """Up to 64 training ``{"image", "caption"}`` pairs (captions ``max_length + 1`` long)."""
    return _pairs(run_dir, config, "train")


def parity_inputs(run_dir: Path, config: Config) -> dict[str, np.ndarray]:
    """Up to 64 test ``{"image", "caption"}`` pairs."""
    return _pairs(run_dir, config, "test")


def init_model(model: Any) -> Any:
    """``image -> [values, keys, state_0, ...]`` (see :func:`apps.captioning.model.build_init_model`)."""
    from apps.captioning.model import build_init_model

    return build_init_model(model)


def step_model(model: Any) -> Any:
    """``[token, state_0.., values, keys] -> [logits, state_0.., weights]`` (one decoder step)."""
    from apps.captioning.model import build_step_model

    return build_step_model(model)


def step_models(run_dir: Path, config: Config, model: Any) -> dict[str, StepModel]:
    """``{"encoder": image -> values, keys, state_0..; "decoder_step": one step}``."""
    from apps.captioning.model import count_states

    n = count_states(model)
    states = [f"state_{i}" for i in range(n)]
    encoder = StepModel(
        init_model(model),
        num_states=0,
        output_names=["values", "keys", *states],
        notes=["run once per image: pixels 0..255 (float32), the run's image_size and channels"],
    )
    step = StepModel(
        step_model(model),
        num_states=n,
        output_names=["logits", *[f"new_{s}" for s in states], "attention_weights"],
        notes=[
            (
                "start with token 2 ([START]) and the encoder's outputs; feed the arg-max (or "
                "beam) token back with the new states, never choosing ids 0, 1 or 2 (padding, "
                "[UNK], [START]); values and keys stay the same; stop at token 3 ([END]) or "
                "after max_length words"
            ),
            "attention_weights: one weight per encoder grid position (row-major), summing to 1",
        ],
    )
    return {"encoder": encoder, "decoder_step": step}


def step_parity_inputs(run_dir: Path, config: Config, model: Any,
                       count: int = 16) -> list[list[np.ndarray]]:  # fmt: skip
    """Real inputs of the step model: ``[token (1,), state_0.., values, keys]`` along the first
    test caption(s), from the image's initial states."""
    from apps.captioning.decode import Captioner
    from apps.captioning.vocab import encode_caption

    split, tokenizer = _split(run_dir, config, "test")
    cfg = _config(config)
    captioner = Captioner(model)
    out: list[list[np.ndarray]] = []
    for image, captions in zip(split.images, split.captions):
        states = captioner.encode(image[None])
        for token in encode_caption(tokenizer, captions[0], cfg.max_length)[:-1]:
            n = captioner.num_states
            out.append([np.array([token], np.int32), *[s.copy() for s in states[:n]],
                        states[n], states[n + 1]])  # fmt: skip
            _, states, _ = captioner.step(np.array([token]), states)
            if len(out) >= count:
                return out
    return out


def tables(run_dir: Path, config: Config) -> list[dict[str, Any]]:
    return [{
        "path": Path(run_dir) / "vocab.json",
        "role": "caption vocabulary (WordTokenizer table): id = index in 'vocabulary'; 0 padding, "
        "1 [UNK], 2 [START] (first decoder input), 3 [END] (stop); join generated words with "
        "spaces, punctuation attached to the word before",
    }]  # fmt: skip


def default_seq_len(config: Config) -> int | None:
    value = config.get("max_length")
    return int(value) + 1 if isinstance(value, int) and value > 0 else None


def _step_parity(run_dir: Path, config: Config, model: Any) -> dict[str, Any]:
    examples = step_parity_inputs(run_dir, config, model)
    split, _ = _split(run_dir, config, "test")
    return {
        "decoder_step": examples,
        "encoder": [[image.astype(np.float32)] for image in split.images[:8]],
    }


HOOK = AppHook(
    representative_inputs=representative_inputs,
    parity_inputs=parity_inputs,
    tables=tables,
    default_seq_len=default_seq_len,
    step_models=step_models,
    step_parity_inputs=_step_parity,
)
