"""Caption generation: greedy and beam search over the one-step model.

:class:`Captioner` runs the encoder once per image (:func:`apps.captioning.model.build_init_model`:
values, precomputed attention keys, initial states) and hands a NumPy step function over the
one-step model (:func:`apps.captioning.model.build_step_model`) to :mod:`apps.common.decoding`.
The states passed around are ``[state_0, ..., values, keys]``: the last two never change.

Decoding never proposes padding, ``[UNK]`` or ``[START]``: their logits are pushed far down
before greedy / beam selection (a caption of ``[UNK]`` words says nothing).

The attention weights of a caption are read by replaying its tokens through the same step
(:meth:`Captioner.attention`), so the picture shows exactly what decoding computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from apps.captioning.model import build_init_model, build_step_model, count_states
from apps.captioning.vocab import END_ID, START_ID
from apps.common import decoding
from apps.common.text import OOV_ID, PAD_ID

ENCODE_BATCH = 128
BANNED_IDS = (PAD_ID, OOV_ID, START_ID)  # ids a caption never contains
BANNED_LOGIT = -1.0e9


class Captioner:
    """Generate captions with a trained image model (``model.keras``).

    Args:
        model: the trained ``[image, caption] -> logits`` model.
        batch_size: images encoded / decoded together.

    Example:
        >>> captioner = Captioner(model)
        >>> ids = captioner.greedy(images, max_length=16)
        >>> ids = captioner.beam(images, beam_size=3, max_length=16)
    """

    def __init__(self, model: Any, batch_size: int = ENCODE_BATCH) -> None:
        import tensorflow as tf

        self.model = model
        self.batch_size = batch_size
        self.init_model = build_init_model(model)
        self.step_model = build_step_model(model)
        self.num_states = count_states(model)
        self._init = tf.function(lambda x: self.init_model(x, training=False),
                                 reduce_retracing=True)  # fmt: skip
        self._step = tf.function(lambda xs: self.step_model(xs, training=False),
                                 reduce_retracing=True)  # fmt: skip

    # ------------------------------------------------------------------ pieces
    def encode(self, images: np.ndarray) -> list[np.ndarray]:
        """Decoder states for ``images`` (uint8 or float 0..255): ``[state_0.., values, keys]``."""
        chunks: list[list[np.ndarray]] = []
        for start in range(0, len(images), self.batch_size):
            batch = np.asarray(images[start : start + self.batch_size], dtype=np.float32)
            values, keys, *states = self._init(batch)
            chunks.append([np.asarray(s) for s in (*states, values, keys)])
        return [np.concatenate(parts) for parts in zip(*chunks)]

    def step(
        self, tokens: np.ndarray, states: list[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """One step: ``(logits (B, V), new states, attention weights (B, N))``."""
        n = self.num_states
        values, keys = states[n], states[n + 1]
        outputs = self._step([np.asarray(tokens, np.int32), *states[:n], values, keys])
        logits, new_states, weights = outputs[0], outputs[1 : 1 + n], outputs[1 + n]
        return (np.asarray(logits), [np.asarray(s) for s in new_states] + [values, keys],
                np.asarray(weights))  # fmt: skip

    def step_fn(
        self, tokens: np.ndarray, states: list[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The :mod:`apps.common.decoding` step function; never proposes padding, ``[UNK]`` or
        ``[START]`` (their logits are pushed down to ``BANNED_LOGIT``)."""
        logits, new_states, _ = self.step(tokens, states)
        logits = np.array(logits, dtype=np.float32)
        logits[:, list(BANNED_IDS)] = BANNED_LOGIT
        return logits, new_states

    # --------------------------------------------------------------- decoding
    def greedy(self, images: np.ndarray, max_length: int) -> list[list[int]]:
        """Greedy captions (ids without ``[START]`` / ``[END]``), one per image."""
        out: list[list[int]] = []
        for start in range(0, len(images), self.batch_size):
            states = self.encode(images[start : start + self.batch_size])
            out += decoding.greedy(self.step_fn, states, START_ID, END_ID, max_length + 1,
                                   batch_size=len(states[0]))  # fmt: skip
        return out

    def beam(self, images: np.ndarray, beam_size: int, max_length: int,
             length_penalty: float = 0.0) -> list[list[int]]:  # fmt: skip
        """Beam-search captions (the best hypothesis per image); ``beam_size=1`` is greedy."""
        out: list[list[int]] = []
        rows = max(1, self.batch_size // beam_size)
        for start in range(0, len(images), rows):
            states = self.encode(images[start : start + rows])
            found = decoding.beam_search(self.step_fn, states, START_ID, END_ID, max_length + 1,
                                         beam_size, length_penalty=length_penalty,
                                         batch_size=len(states[0]))  # fmt: skip
            out += [list(hyps[0].tokens) if hyps else [] for hyps in found]
        return out

    def generate(self, images: np.ndarray, max_length: int, beam_size: int = 1) -> list[list[int]]:
        """Greedy for ``beam_size == 1``, beam search otherwise."""
        if beam_size == 1:
            return self.greedy(images, max_length)
        return self.beam(images, beam_size, max_length)

    def attention(self, image: np.ndarray, tokens: Sequence[int]) -> np.ndarray:
        """Attention weights ``(len(tokens) + 1, N)`` of one image's caption, replayed step by
        step: row ``t`` is the step that produced ``tokens[t]`` (the last row produced
        ``[END]``)."""
        states = self.encode(np.asarray(image)[None])
        rows = []
        for token in [START_ID, *tokens]:
            _, states, weights = self.step(np.array([token]), states)
            rows.append(weights[0])
        return np.stack(rows)

    def logits(self, images: np.ndarray, caption_in: np.ndarray) -> np.ndarray:
        """Teacher-forced logits of the step loop (for checks against the trained model)."""
        states = self.encode(images)
        out = []
        for t in range(caption_in.shape[1]):
            logits, states, _ = self.step(caption_in[:, t], states)
            out.append(logits)
        return np.stack(out, axis=1)
