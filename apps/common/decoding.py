"""Decoding over a one-step function: greedy, beam search, and sampling with temperature / top-k.

Written once and shared by every generator (translation, captioning, the char LM, music). The
same one-step function is what the exporter turns into a one-step TFLite model, so what a phone
loops over is what these decoders were tested with.

A *step function* maps the previous tokens and the recurrent state to next-token logits::

    step_fn(tokens: np.ndarray[int] (B,), states: list[np.ndarray (B, ...)])
        -> (logits: np.ndarray[float] (B, V), new_states: list[np.ndarray (B, ...)])

States are plain arrays whose first axis is the batch (or beam) axis; anything the step needs
that does not change (encoder outputs, precomputed attention keys, masks) is passed as a state
too and simply returned unchanged. Everything here is NumPy: a Keras model, a ``tf.function`` or
a LiteRT interpreter can sit behind ``step_fn``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

StepFn = Callable[[np.ndarray, list[np.ndarray]], tuple[np.ndarray, list[np.ndarray]]]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis (float64)."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _as_states(states: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(s) for s in states]


def greedy(step_fn: StepFn, states: Sequence[np.ndarray], start_ids: np.ndarray | int,
           end_id: int | None, max_len: int, batch_size: int | None = None) -> list[list[int]]:
    """Greedy decoding: the arg-max token at every step.

    Args:
        step_fn: the one-step function (see module docstring).
        states: initial states, batch-first.
        start_ids: the first input token per row (or one int for all rows).
        end_id: the token that ends a sequence (not included in the output); ``None`` decodes
            exactly ``max_len`` tokens.
        max_len: the most tokens to produce per row.
        batch_size: rows to decode when ``start_ids`` is an int and ``states`` is empty.

    Returns:
        One list of token ids per row, without the start token and without ``end_id``.
    """
    if max_len < 0:
        raise ValueError(f"max_len must be >= 0, got {max_len}")
    states = _as_states(states)
    rows = _rows(start_ids, states, batch_size)
    tokens = np.broadcast_to(np.asarray(start_ids, dtype=np.int64), (rows,)).copy()
    out: list[list[int]] = [[] for _ in range(rows)]
    done = np.zeros(rows, dtype=bool)
    for _ in range(max_len):
        logits, states = step_fn(tokens, states)
        tokens = np.asarray(logits).argmax(axis=-1).astype(np.int64)
        for i, tok in enumerate(tokens):
            if done[i]:
                continue
            if end_id is not None and tok == end_id:
                done[i] = True
            else:
                out[i].append(int(tok))
        if done.all():
            break
    return out


def sample(step_fn: StepFn, states: Sequence[np.ndarray], start_ids: np.ndarray | int,
           max_len: int, *, temperature: float = 1.0, top_k: int | None = None,
           end_id: int | None = None, rng: np.random.Generator | int | None = None,
           batch_size: int | None = None,
           on_token: Callable[[int, np.ndarray], None] | None = None) -> list[list[int]]:
    """Sampling from ``softmax(logits / temperature)``, optionally restricted to the top ``k``.

    Args:
        temperature: > 0; below 1 sharpens the distribution, above 1 flattens it.
        top_k: keep only the ``k`` most likely tokens (``None``: all). ``top_k=1`` is greedy.
        rng: a NumPy generator or a seed, so a seeded call is repeatable.
        on_token: called as ``on_token(step, tokens)`` after every step (streaming output).
        Other arguments as in :func:`greedy`.

    Returns:
        One list of token ids per row (without the start token and without ``end_id``).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    states = _as_states(states)
    rows = _rows(start_ids, states, batch_size)
    tokens = np.broadcast_to(np.asarray(start_ids, dtype=np.int64), (rows,)).copy()
    out: list[list[int]] = [[] for _ in range(rows)]
    done = np.zeros(rows, dtype=bool)
    for step in range(max_len):
        logits, states = step_fn(tokens, states)
        logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature)
        if top_k is not None and top_k < logp.shape[-1]:
            kth = np.sort(logp, axis=-1)[:, -top_k][:, None]
            logp = np.where(logp >= kth, logp, -np.inf)
        probs = np.exp(logp - logp.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        tokens = np.array([rng.choice(probs.shape[-1], p=p) for p in probs], dtype=np.int64)
        for i, tok in enumerate(tokens):
            if done[i]:
                continue
            if end_id is not None and tok == end_id:
                done[i] = True
            else:
                out[i].append(int(tok))
        if on_token is not None:
            on_token(step, tokens)
        if done.all():
            break
    return out


@dataclasses.dataclass(frozen=True)
class Hypothesis:
    """A finished beam-search result: the tokens (no start/end) and their total log-probability."""

    tokens: tuple[int, ...]
    logprob: float
    score: float


def beam_search(step_fn: StepFn, states: Sequence[np.ndarray], start_ids: np.ndarray | int,
                end_id: int, max_len: int, beam_size: int = 4, *, length_penalty: float = 0.0,
                batch_size: int | None = None) -> list[list[Hypothesis]]:
    """Beam search: keep the ``beam_size`` most probable prefixes at every step.

    At every step the ``beam_size`` best one-token extensions of the live prefixes are kept;
    those that end with ``end_id`` are finished, the rest stay live (so the number of live
    beams can shrink). A hypothesis also ends at ``max_len``. Scores are total
    log-probabilities divided by ``len ** length_penalty`` (0: plain log-probability, which
    makes ``beam_size=1`` identical to :func:`greedy`). The search over a row stops once it
    has ``beam_size`` finished hypotheses and no live prefix can beat the best of them.

    Returns:
        Per row, its finished hypotheses, best first.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    states = _as_states(states)
    rows = _rows(start_ids, states, batch_size)
    k = beam_size
    # Every row is expanded to k beams; only beam 0 is alive at the start.
    states = [np.repeat(s, k, axis=0) for s in states]
    tokens = np.repeat(np.broadcast_to(np.asarray(start_ids, dtype=np.int64), (rows,)), k)
    logp = np.full((rows, k), -np.inf)
    logp[:, 0] = 0.0
    prefixes: list[list[tuple[int, ...]]] = [[() for _ in range(k)] for _ in range(rows)]
    finished: list[list[Hypothesis]] = [[] for _ in range(rows)]
    row_done = np.zeros(rows, dtype=bool)

    def score(lp: float, n: int) -> float:
        return lp / (max(n, 1) ** length_penalty) if length_penalty else lp

    for t in range(max_len):
        logits, states = step_fn(tokens, states)
        step_lp = log_softmax(logits).reshape(rows, k, -1)
        vocab = step_lp.shape[-1]
        total = (logp[:, :, None] + step_lp).reshape(rows, k * vocab)
        new_src = np.zeros((rows, k), dtype=np.int64)
        new_tok = np.zeros((rows, k), dtype=np.int64)
        new_lp = np.full((rows, k), -np.inf)
        new_prefixes: list[list[tuple[int, ...]]] = []
        for b in range(rows):
            row_prefixes: list[tuple[int, ...]] = []
            if row_done[b]:
                new_prefixes.append([() for _ in range(k)])
                continue
            # Only the k best extensions compete (finished or not): with k = 1 this is exactly
            # greedy decoding; a beam that ends frees its slot for the next step's search.
            order = np.argsort(-total[b], kind="stable")[:k]
            for flat in order:
                lp = float(total[b, flat])
                if not np.isfinite(lp):
                    break
                src, tok = divmod(int(flat), vocab)
                if tok == end_id:
                    seq = prefixes[b][src]
                    finished[b].append(Hypothesis(seq, lp, score(lp, len(seq) + 1)))
                    continue
                j = len(row_prefixes)
                if j < k:
                    new_src[b, j], new_tok[b, j], new_lp[b, j] = src, tok, lp
                    row_prefixes.append(prefixes[b][src] + (tok,))
            row_prefixes += [()] * (k - len(row_prefixes))
            new_prefixes.append(row_prefixes)
            best_done = max((h.score for h in finished[b]), default=-np.inf)
            best_alive = new_lp[b].max()
            # Log-probabilities only fall as a prefix grows, so with no length penalty a row is
            # settled once k hypotheses are finished and none alive can overtake the best.
            settled = len(finished[b]) >= k and length_penalty == 0 and best_alive <= best_done
            if settled or not np.isfinite(best_alive):  # nothing alive can still win
                row_done[b] = True
        if row_done.all():
            break
        gather = (np.arange(rows)[:, None] * k + new_src).reshape(-1)
        states = [s[gather] for s in states]
        tokens = new_tok.reshape(-1)
        logp = new_lp
        prefixes = new_prefixes
    for b in range(rows):
        if not finished[b] or not row_done[b]:
            for j in range(k):
                if np.isfinite(logp[b, j]) and not row_done[b]:
                    seq = prefixes[b][j]
                    finished[b].append(Hypothesis(seq, float(logp[b, j]), score(logp[b, j], len(seq))))
        finished[b].sort(key=lambda h: -h.score)
    return finished


def _rows(start_ids, states: list[np.ndarray], batch_size: int | None) -> int:
    start = np.asarray(start_ids)
    if start.ndim == 1:
        return int(start.shape[0])
    if states:
        return int(states[0].shape[0])
    if batch_size is None:
        raise ValueError("give batch_size when start_ids is a scalar and there are no states")
    return int(batch_size)
