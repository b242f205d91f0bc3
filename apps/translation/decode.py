"""Translating with a trained model: encoder once per sentence, then the one-step decoder looped
by :mod:`apps.common.decoding` (greedy or beam search), and attention maps.

The loop state handed to the shared decoders is ``[decoder states..., constants...]``: the
constants are what the encoder computed once per sentence (annotations ``H``, attention keys
``H U_a``, source mask; or the fixed context ``c``); the step function returns them unchanged,
so beam search reorders them with the beams like any other state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from apps.common import decoding
from apps.translation.model import (
    build_encoder_model,
    build_step_model,
    decoder_cell_of,
    model_kind,
    state_sizes,
)
from apps.translation.tokenize import END_ID, PAD_ID, START_ID, Tokenizer


@dataclasses.dataclass
class Translation:
    """One translated sentence.

    Attributes:
        source: the input text.
        text: the translation (detokenised).
        source_tokens: the tokens the model read (after any cut).
        target_tokens: the produced tokens (no ``</s>``).
        unknown: source tokens not in the vocabulary (read as ``<unk>``).
        truncated: how many source tokens were cut (beyond ``max_source_len``).
        score: log-probability of the translation (beam search) or ``None`` (greedy).
        source_ids: the ids the model read.
        target_ids: the produced ids (no ``</s>``).
    """

    source: str
    text: str
    source_tokens: list[str]
    target_tokens: list[str]
    unknown: list[str]
    truncated: int = 0
    score: float | None = None
    source_ids: list[int] = dataclasses.field(default_factory=list)
    target_ids: list[int] = dataclasses.field(default_factory=list)


class Translator:
    """Greedy / beam-search translation with a trained model's weights.

    Args:
        model: a model from :func:`apps.translation.model.build_model` (trained or loaded).
        source_tokenizer: the source side's :class:`~apps.translation.tokenize.Tokenizer`.
        target_tokenizer: the target side's tokenizer.
        max_source_len: longer inputs are cut to this many tokens.
        max_target_len: the most tokens produced per sentence.
        precomputed_keys: compute ``H U_a`` once per sentence (``True``) or at every step
            (``False``, the naive decoder of the speed benchmark).

    Example:
        >>> translator = Translator(model, src_tok, tgt_tok, max_source_len=40, max_target_len=40)
        >>> translator.translate(["three hundred and twenty-one"], beam=4)[0].text
        'dreihunderteinundzwanzig'
    """

    def __init__(
        self,
        model: Any,
        source_tokenizer: Tokenizer,
        target_tokenizer: Tokenizer,
        *,
        max_source_len: int,
        max_target_len: int,
        precomputed_keys: bool = True,
    ) -> None:
        import tensorflow as tf

        self.kind = model_kind(model)
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.max_source_len = int(max_source_len)
        self.max_target_len = int(max_target_len)
        self.precomputed_keys = bool(precomputed_keys) or self.kind != "attention"
        self.encoder_model = build_encoder_model(model)
        self.step_model = build_step_model(model, precomputed_keys=self.precomputed_keys)
        self.n_states = len(state_sizes(decoder_cell_of(model)))
        encoder, step = self.encoder_model, self.step_model
        self._encode = tf.function(lambda x: encoder(x, training=False), reduce_retracing=True)
        self._step = tf.function(lambda xs: step(xs, training=False), reduce_retracing=True)
        self.last_weights: np.ndarray | None = None
        self.steps_run = 0

    # ------------------------------------------------------------------------ low level
    def encode_ids(self, source_ids: np.ndarray) -> list[np.ndarray]:
        """Initial loop state ``[decoder states..., constants...]`` for padded source ids."""
        outs = [np.asarray(o) for o in self._encode(np.asarray(source_ids, dtype=np.int32))]
        if self.kind == "attention":
            values, keys, mask, *states = outs
            constants = [values, keys, mask] if self.precomputed_keys else [values, mask]
        else:
            context, *states = outs
            constants = [context]
        return [*states, *constants]

    def step_fn(
        self, tokens: np.ndarray, states: list[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The one-step function of :mod:`apps.common.decoding` (attention weights are kept in
        ``last_weights``)."""
        n = self.n_states
        outs = self._step([np.asarray(tokens, dtype=np.int32), *states])
        outs = [np.asarray(o) for o in outs]
        self.steps_run += 1
        if self.kind == "attention":
            self.last_weights = outs[1 + n]
        return outs[0], [*outs[1 : 1 + n], *states[n:]]

    def _pad(self, rows: Sequence[Sequence[int]]) -> np.ndarray:
        width = max(1, max(len(r) for r in rows))
        out = np.full((len(rows), width), PAD_ID, dtype=np.int32)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

    def translate_ids(self, sources: Sequence[Sequence[int]], *, beam: int = 1, batch_size: int = 64,
                      quiet: bool = True) -> list[tuple[list[int], float | None]]:  # fmt: skip
        """Target ids (no markers) and score per source; batched by similar length.

        ``beam=1`` is greedy decoding (:func:`apps.common.decoding.greedy`); larger beams use
        :func:`apps.common.decoding.beam_search` (plain log-probability scores, so beam 1 of
        beam search is exactly greedy). A progress bar (stderr) shows when it takes over ~2 s,
        unless ``quiet``.
        """
        from apps.common.progress import Progress

        if beam < 1:
            raise ValueError(f"beam must be >= 1. Received: beam={beam}")
        results: list[tuple[list[int], float | None]] = [([], None)] * len(sources)
        order = np.argsort([len(s) for s in sources], kind="stable")
        per_batch = batch_size if beam == 1 else max(1, batch_size // beam)
        bar = Progress("translating", total=len(sources), quiet=quiet)
        for start in range(0, len(order), per_batch):
            chunk = order[start : start + per_batch]
            states = self.encode_ids(self._pad([sources[i] for i in chunk]))
            if beam == 1:
                outs = decoding.greedy(
                    self.step_fn, states, START_ID, END_ID, self.max_target_len + 1
                )
                for i, ids in zip(chunk, outs):
                    results[i] = (list(ids)[: self.max_target_len], None)
            else:
                hyps = decoding.beam_search(self.step_fn, states, START_ID, END_ID,
                                            self.max_target_len + 1, beam)  # fmt: skip
                for i, row in zip(chunk, hyps):
                    best = row[0] if row else decoding.Hypothesis((), float("-inf"), float("-inf"))
                    results[i] = (list(best.tokens)[: self.max_target_len], float(best.logprob))
            bar.update(len(chunk))
        bar.close()
        return results

    def attention_map(self, source_ids: Sequence[int], target_ids: Sequence[int]) -> np.ndarray:
        """Attention weights ``(len(target_ids) + 1, len(source_ids))`` for a given translation.

        The step model is run with the translation's own tokens fed back (``<s> y1 .. yn``), so
        row ``t`` holds the weights with which target token ``t`` (the last row: ``</s>``) was
        produced — for a beam-search result as well as a greedy one.
        """
        if self.kind != "attention":
            raise ValueError("the noattention model has no attention weights")
        states = self.encode_ids(self._pad([list(source_ids)]))
        rows = []
        for token in [START_ID, *target_ids]:
            _, states = self.step_fn(np.array([token]), states)
            rows.append(self.last_weights[0, : len(source_ids)])
        return np.stack(rows)

    # ----------------------------------------------------------------------- text level
    def prepare(self, text: str) -> tuple[list[int], list[str], list[str], int]:
        """``(ids, tokens, unknown tokens, number cut)`` of one source text."""
        tokens = self.source_tokenizer.tokenize(text)
        cut = max(0, len(tokens) - self.max_source_len)
        tokens = tokens[: self.max_source_len]
        ids = self.source_tokenizer.encode(text)[: self.max_source_len]
        unknown = self.source_tokenizer.unknown(text)
        return ids, tokens, unknown, cut

    def translate(self, texts: Sequence[str], *, beam: int = 4, batch_size: int = 64,
                  quiet: bool = True) -> list[Translation]:  # fmt: skip
        """Translate texts (each must have at least one token); ``quiet=False`` shows a
        progress bar when it takes over ~2 s."""
        prepared = [self.prepare(t) for t in texts]
        for text, (ids, *_rest) in zip(texts, prepared):
            if not ids:
                raise ValueError(f"nothing to translate in {text!r}")
        outs = self.translate_ids([p[0] for p in prepared], beam=beam, batch_size=batch_size,
                                  quiet=quiet)  # fmt: skip
        results = []
        for text, (ids, tokens, unknown, cut), (target, score) in zip(texts, prepared, outs):
            results.append(Translation(text, self.target_tokenizer.decode(target), tokens,
                                       self.target_tokenizer.tokens_of(target), unknown, cut,
                                       score, list(ids), list(target)))  # fmt: skip
        return results
