"""What ``python -m export`` needs to know about a translation run (``HOOK``).

``model.keras`` is the teacher-forced model ``[source_ids (batch, S), target_in (batch, T)] ->
logits (batch, T, V)`` (ids from ``vocab.json``; 0 padding on the right; ``target_in`` starts
with ``<s>`` = 2). A phone translates with two models built from its weights instead:

- :func:`apps.translation.model.build_encoder_model`: ``source_ids -> [values, keys,
  source_mask, state_0, ...]`` (attention) or ``[context, state_0, ...]`` (noattention), run ONCE
  per sentence (the attention keys ``H U_a`` included);
- :func:`apps.translation.model.build_step_model`: ``[token (batch,), state_0.., values, keys,
  source_mask] -> [logits (batch, V), new_state_0.., weights (batch, S)]`` (noattention:
  ``[token, state_0.., context] -> [logits, new_state_0..]``), looped from ``token = 2`` until
  ``</s>`` = 3 — the model :mod:`apps.translation.decode` drives through
  :mod:`apps.common.decoding`. :func:`step_parity_inputs` gives real inputs for it.

- representative / parity inputs: real ``(source_ids, target_in)`` pairs of the run's training /
  test split, encoded with its ``vocab.json``;
- tables: ``vocab.json`` (both tokenisers: vocabulary, BPE merge rules, options);
- default sequence length: the longer of ``max_source_len`` and ``max_target_len + 1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from export.app_hooks import AppHook, Config

EXAMPLES = 64
APP_MODULE = "apps.translation"


def _pairs(run_dir: Path, config: Config, part: str) -> list[list[np.ndarray]]:
    from apps.common.rundir import RunDir
    from apps.translation.config import TranslationConfig
    from apps.translation.data import add_markers
    from apps.translation.tokenize import END_ID, START_ID
    from apps.translation.train import encode_pairs, load_data, load_tokenizers

    cfg = TranslationConfig.from_dict(dict(config), source="config.json")
    source, target = load_tokenizers(RunDir(run_dir, APP_MODULE))
    pairs = getattr(load_data(cfg), part)[:EXAMPLES]
    src, tgt, _ = encode_pairs(pairs, source, target, cfg, drop_long=False)
    return [[np.asarray(s, np.int32), np.asarray(add_markers(t, START_ID, END_ID)[0], np.int32)]
            for s, t in zip(src, tgt)]  # fmt: skip


def representative_inputs(run_dir: Path, config: Config) -> list[list[np.ndarray]]:
    """Up to 64 ``[source_ids (S,), target_in (T,)]`` pairs of the training split."""
    return _pairs(run_dir, config, "train")


def parity_inputs(run_dir: Path, config: Config) -> list[list[np.ndarray]]:
    """Up to 64 ``[source_ids (S,), target_in (T,)]`` pairs of the test split."""
    return _pairs(run_dir, config, "test")


def step_parity_inputs(
    run_dir: Path, config: Config, model: Any, count: int = 16
) -> list[list[np.ndarray]]:
    """Real inputs of the one-step model: ``[token (1,), *states, *constants]`` reached by
    greedy decoding of test sentences (the encoder's constants, then each step's states)."""
    from apps.common.rundir import RunDir
    from apps.translation.decode import Translator
    from apps.translation.tokenize import END_ID, START_ID
    from apps.translation.train import load_tokenizers

    source, target = load_tokenizers(RunDir(run_dir, APP_MODULE))
    translator = Translator(model, source, target, max_source_len=int(config["max_source_len"]),
                            max_target_len=int(config["max_target_len"]))  # fmt: skip
    out: list[list[np.ndarray]] = []
    for src, _ in parity_inputs(run_dir, config):
        states, token = translator.encode_ids(src[None, :]), START_ID
        for _ in range(translator.max_target_len):
            out.append([np.array([token], np.int32), *[s.copy() for s in states]])
            if len(out) >= count:
                return out
            logits, states = translator.step_fn(np.array([token]), states)
            token = int(logits[0].argmax())
            if token == END_ID:
                break
    return out


def step_models(run_dir: Path, config: Config, model: Any) -> dict[str, Any]:
    """The two models a phone runs: the encoder once per sentence, the decoder step per token."""
    from apps.translation.model import (
        build_encoder_model,
        build_step_model,
        decoder_cell_of,
        model_kind,
        state_sizes,
    )
    from export.app_hooks import StepModel

    n = len(state_sizes(decoder_cell_of(model)))
    states = [f"state_{i}" for i in range(n)]
    if model_kind(model) == "attention":
        encoder_outputs = ["values", "keys", "source_mask", *states]
    else:
        encoder_outputs = ["context", *states]
    encoder = StepModel(build_encoder_model(model), num_states=0, output_names=encoder_outputs)
    step = build_step_model(model)
    step_outputs = ["logits", *[f"new_{name}" for name in states]]
    if model_kind(model) == "attention":
        step_outputs.append("attention_weights")
    return {"encoder": encoder, "decoder_step": StepModel(step, num_states=n,
                                                          output_names=step_outputs)}  # fmt: skip


def tables(run_dir: Path, config: Config) -> list[dict[str, Any]]:
    return [{
        "path": Path(run_dir) / "vocab.json",
        "role": "source and target tokenisers (apps.translation.tokenize.Tokenizer): NFKC, split "
        "words / punctuation with the joiner U+FFED, apply 'bpe_rules' in order, id = index in "
        "'vocabulary' (0 <pad>, 1 <unk>, 2 <s>, 3 </s>); detokenise by joining with spaces and "
        "deleting the spaces beside each joiner",
    }]  # fmt: skip


def default_seq_len(config: Config) -> int | None:
    src, tgt = config.get("max_source_len"), config.get("max_target_len")
    if isinstance(src, int) and isinstance(tgt, int):
        return max(src, tgt + 1)
    return None


HOOK = AppHook(
    representative_inputs=representative_inputs,
    parity_inputs=parity_inputs,
    tables=tables,
    default_seq_len=default_seq_len,
    modules=("apps.translation.model",),
    step_models=step_models,
    step_parity_inputs=step_parity_inputs,
)
