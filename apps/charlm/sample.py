"""Generate text from a trained model: the prime is read, then characters are sampled one by one.

Everything runs through the one-step model (:func:`apps.charlm.model.build_step_model`) and
:func:`apps.common.decoding.sample`: every new character costs one step, whatever the length of
the text so far (the prefix is never re-run). :func:`refeed_generate` is the naive alternative
— re-running the whole prefix through the sequence model for every character — kept for the
speed benchmark and the equality test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from apps.charlm.data import UNKNOWN_ID, CharVocab


@dataclasses.dataclass
class Generator:
    """A one-step model, its NumPy step function and the vocabulary.

    Attributes:
        vocab: the character vocabulary.
        step_model: the one-step Keras model.
        step_fn: ``(tokens (B,), states) -> (logits (B, V), states)``.
    """

    vocab: CharVocab
    step_model: Any
    step_fn: Callable[[np.ndarray, list[np.ndarray]], tuple[np.ndarray, list[np.ndarray]]]

    @classmethod
    def from_model(cls, model: Any, vocab: CharVocab) -> Generator:
        """The generator of a trained sequence model."""
        from apps.charlm.model import build_step_model, make_step_fn

        step = build_step_model(model)
        return cls(vocab, step, make_step_fn(step))

    def zero_states(self, batch_size: int = 1) -> list[np.ndarray]:
        from apps.charlm.model import initial_states

        return initial_states(self.step_model, batch_size)

    def read(
        self, ids: np.ndarray, states: list[np.ndarray] | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Feed ``ids`` one step at a time; returns the last logits ``(1, V)`` and the states."""
        states = self.zero_states(1) if states is None else states
        logits = np.zeros((1, self.vocab.size), np.float32)
        for token in np.asarray(ids, dtype=np.int64):
            logits, states = self.step_fn(np.array([token]), states)
        return logits, states


def prime_ids(vocab: CharVocab, prime: str) -> tuple[np.ndarray, list[str]]:
    """The ids of ``prime`` and its characters the model never saw (read as the unknown id)."""
    return vocab.encode(prime), vocab.unknown_chars(prime)


def default_prime(vocab: CharVocab) -> str:
    """A newline when the model knows it (text usually starts after one), else its first char."""
    return "\n" if "\n" in vocab.chars else vocab.chars[0]


def generate(
    gen: Generator,
    prime: str,
    length: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
    on_text: Callable[[str], None] | None = None,
) -> str:
    """Sample ``length`` characters after ``prime``.

    The prime's characters but the last are read to build the state; the last one is the first
    input of :func:`apps.common.decoding.sample`, which then feeds back each sampled character.

    Args:
        gen: the :class:`Generator`.
        prime: text to start from (must not be empty; see :func:`default_prime`).
        length: characters to generate.
        temperature: > 0; lower is more conservative.
        top_k: sample only among the ``k`` most likely characters.
        seed: seed of the sampler (repeatable output).
        on_text: called with each new character as soon as it is sampled (streaming).

    Returns:
        The generated characters (without the prime).
    """
    from apps.common.decoding import sample

    if not prime:
        raise ValueError("prime must not be empty")
    ids, _ = prime_ids(gen.vocab, prime)
    _, states = gen.read(ids[:-1])

    def emit(step: int, tokens: np.ndarray) -> None:
        if on_text is not None:
            on_text(gen.vocab.decode([int(tokens[0])]))

    out = sample(gen.step_fn, states, np.array([ids[-1]]), length, temperature=temperature,
                 top_k=top_k, rng=seed, on_token=emit)  # fmt: skip
    return gen.vocab.decode(out[0])


def greedy_ids(gen: Generator, prime_ids_: np.ndarray, length: int) -> list[int]:
    """Arg-max decoding through the one-step model (for tests and the benchmark)."""
    from apps.common.decoding import greedy

    ids = np.asarray(prime_ids_)
    _, states = gen.read(ids[:-1])
    return greedy(gen.step_fn, states, np.array([ids[-1]]), None, length)[0]


def refeed_generate(model: Any, prime_ids_: np.ndarray, length: int) -> list[int]:
    """Arg-max decoding that re-runs the whole prefix through ``model`` for every character."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def run(ids: Any) -> Any:
        return model(ids, training=False)[:, -1, :]

    ids = [int(i) for i in prime_ids_]
    out: list[int] = []
    for _ in range(length):
        logits = np.asarray(run(np.array([ids], dtype=np.int32)))
        token = int(logits[0].argmax())
        ids.append(token)
        out.append(token)
    return out


__all__ = [
    "UNKNOWN_ID",
    "Generator",
    "default_prime",
    "generate",
    "greedy_ids",
    "prime_ids",
    "refeed_generate",
]  # fmt: skip
