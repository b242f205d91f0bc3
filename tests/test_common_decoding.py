"""Greedy, beam search and sampling over a one-step function (NumPy toy models, exact checks)."""

from __future__ import annotations

import numpy as np
import pytest

from apps.common import decoding

V, END, START = 6, 1, 0


def markov_step(table: np.ndarray):
    """A step function whose next-token logits depend only on the previous token."""

    def step(tokens, states):
        counter = states[0] + 1
        return table[tokens], [counter]

    return step


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    return rng.normal(size=(V, V)) * 2.0


def test_greedy_follows_argmax_chain(table):
    step = markov_step(table)
    out = decoding.greedy(step, [np.zeros((1,))], START, None, max_len=5)
    expected, tok = [], START
    for _ in range(5):
        tok = int(table[tok].argmax())
        expected.append(tok)
    assert out == [expected]


@pytest.mark.parametrize("seed", range(6))
def test_beam_one_equals_greedy(seed):
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(V, V)) * 3.0
    step = markov_step(table)
    starts = np.array([0, 2, 3, 4])
    greedy = decoding.greedy(step, [np.zeros((4,))], starts, END, max_len=12)
    beams = decoding.beam_search(step, [np.zeros((4,))], starts, END, max_len=12, beam_size=1)
    assert [list(b[0].tokens) for b in beams] == greedy


def test_beam_finds_more_probable_sequence_than_greedy():
    # From START, token 2 looks best (0.6) but leads to a flat distribution; token 3 (0.4)
    # leads to END with certainty. Best full sequence: [3] END (0.4) vs greedy [2, x] (0.6*0.2).
    p = np.full((V, V), 1e-9)
    p[START, 2], p[START, 3] = 0.6, 0.4
    p[2, [1, 2, 3, 4, 5]] = 0.2
    p[3, END] = 1.0
    p[4, END] = p[5, END] = 1.0
    table = np.log(p)
    step = markov_step(table)
    greedy = decoding.greedy(step, [np.zeros((1,))], START, END, max_len=4)
    beams = decoding.beam_search(step, [np.zeros((1,))], START, END, max_len=4, beam_size=3)
    best = beams[0][0]
    assert greedy[0][0] == 2
    assert best.tokens == (3,)
    assert best.logprob == pytest.approx(np.log(0.4), abs=1e-6)
    # every finished hypothesis's log-probability is the sum along its path
    for hyp in beams[0]:
        prev, total = START, 0.0
        for tok in hyp.tokens + (END,):
            total += decoding.log_softmax(table[prev])[tok]
            prev = tok
        assert hyp.logprob == pytest.approx(total, abs=1e-6)


def test_beam_reorders_states_with_beams(table):
    # The state counts steps; after reordering it must still equal the prefix length.
    seen = []

    def step(tokens, states):
        seen.append(states[0].copy())
        return table[tokens], [states[0] + 1]

    decoding.beam_search(step, [np.zeros((2,))], START, END, max_len=5, beam_size=3)
    for t, s in enumerate(seen):
        assert np.all(s == t)


def test_sampling_is_seeded_and_top1_is_greedy(table):
    step = markov_step(table)
    a = decoding.sample(step, [np.zeros((3,))], START, 20, rng=7)
    b = decoding.sample(step, [np.zeros((3,))], START, 20, rng=7)
    assert a == b
    top1 = decoding.sample(step, [np.zeros((3,))], START, 8, top_k=1, rng=1)
    greedy = decoding.greedy(step, [np.zeros((3,))], START, None, 8)
    assert top1 == greedy


def test_sampling_frequencies_follow_temperature():
    logits = np.log(np.array([[0.7, 0.2, 0.1]]))

    def step(tokens, states):
        return np.repeat(logits, len(tokens), axis=0), states

    draws = decoding.sample(step, [], 0, 1, rng=3, batch_size=4000)
    freq = np.bincount([d[0] for d in draws], minlength=3) / 4000
    np.testing.assert_allclose(freq, [0.7, 0.2, 0.1], atol=0.03)
    cold = decoding.sample(step, [], 0, 1, rng=3, batch_size=2000, temperature=0.1)
    assert np.mean([d[0] == 0 for d in cold]) > 0.99


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0}, {"temperature": -1.0}, {"top_k": 0}])
def test_sampling_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        decoding.sample(lambda t, s: (np.zeros((1, 3)), s), [], 0, 1, batch_size=1, **kwargs)
