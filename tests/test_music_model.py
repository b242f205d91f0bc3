"""apps.music models: the one-step twin, the NLL the app reports, and sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apps.music.data import encode_pieces, make_dataset, roll_sequence
from apps.music.events import BOS, EventCodec
from apps.music.model import build_model, build_step_model, compile_model, state_sizes
from apps.music.notes import Piece, make_notes
from apps.music.sample import StepRunner, generate_events, generate_roll
from apps.music.train import event_metrics, roll_metrics


def _set_constant_logits(model, bias):
    """Zero every weight, then give the output layer ``bias``: logits = bias at every step."""
    for w in model.weights:
        w.assign(np.zeros(w.shape, dtype="float32"))
    model.get_layer("logits").bias.assign(np.asarray(bias, dtype="float32"))


def _toy_rolls(rng, lengths):
    return [(rng.random((n, 88)) < 0.08).astype(np.uint8) for n in lengths]


@pytest.mark.parametrize("representation", ["roll", "events"])
@pytest.mark.parametrize("cell", ["gru", "lstm", "vanilla", "mut1", "mut2", "mut3", "genotype"])
def test_step_model_reproduces_the_sequence_model(representation, cell, tmp_path):
    if cell == "genotype":  # a searched cell from a genotype file (the MUT2 preset, bare x term)
        from seqlayers.genotype_presets import get_preset

        cell = f"genotype:{get_preset('mut2').save(tmp_path / 'cell.json')}"
    rng = np.random.default_rng(1)
    model = build_model(representation, cell, units=6, layers=2, vocab_size=15, embedding_dim=5,
                        seed=3)  # fmt: skip
    if representation == "roll":
        x = (rng.random((2, 7, 88)) < 0.1).astype("float32")
    else:
        x = rng.integers(0, 15, size=(2, 7)).astype("int32")
    full = np.asarray(model(x))
    runner = StepRunner(build_step_model(model))
    assert runner.sizes == state_sizes(model) == ([6, 6, 6, 6] if cell == "lstm" else [6, 6])
    assert [l.name for l in model.layers if l.name.startswith("rnn_")] == ["rnn_1", "rnn_2"]
    np.testing.assert_allclose(runner.run(x), full, rtol=1e-5, atol=1e-5)


def test_roll_nll_of_a_constant_model_equals_the_hand_computation():
    rng = np.random.default_rng(0)
    rolls = _toy_rolls(rng, [3, 5, 2])
    bias = rng.normal(size=88)
    model = build_model("roll", "gru", units=4)
    _set_constant_logits(model, bias)
    p = 1.0 / (1.0 + np.exp(-bias))
    per_step = []
    for roll in rolls:
        for frame in roll:
            per_step.append(
                -sum(math.log(p[k]) if frame[k] else math.log(1 - p[k]) for k in range(88))
            )
    sequences = [roll_sequence(r) for r in rolls]
    metrics = roll_metrics(model, sequences)
    assert metrics["steps"] == 10 and metrics["pieces"] == 3
    assert metrics["nll_per_step"] == pytest.approx(np.mean(per_step), rel=1e-6)
    later = per_step[1:3] + per_step[4:8] + per_step[9:]
    assert metrics["nll_per_step_from_second"] == pytest.approx(np.mean(later), rel=1e-6)
    piece_means = [np.mean(per_step[1:3]), np.mean(per_step[4:8]), np.mean(per_step[9:])]
    assert metrics["nll_per_step_tcn"] == pytest.approx(np.mean(piece_means), rel=1e-6)


def test_roll_nll_with_state_matches_one_piece_at_a_time_and_the_keras_loss():
    """Batching, padding and the training loss agree with the NLL of each piece run alone."""
    rng = np.random.default_rng(2)
    rolls = _toy_rolls(rng, [4, 9, 1, 6])
    model = compile_model(build_model("roll", "lstm", units=5, seed=0), "roll", learning_rate=1e-3)
    total, steps = 0.0, 0
    for roll in rolls:
        x, y = roll_sequence(roll)
        p = 1.0 / (1.0 + np.exp(-np.asarray(model(x[None].astype("float32")), dtype=np.float64)[0]))
        total += float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).sum())
        steps += len(y)
    sequences = [roll_sequence(r) for r in rolls]
    assert roll_metrics(model, sequences)["nll_per_step"] == pytest.approx(total / steps, rel=1e-5)
    ds = make_dataset(sequences, "roll", seq_len=64, batch_size=8, shuffle=False, seed=0)
    keras_loss = model.evaluate(ds, verbose=0)
    assert 88 * keras_loss == pytest.approx(total / steps, rel=1e-5)


def test_event_metrics_of_a_constant_model():
    codec = EventCodec(ticks_per_quarter=2, max_step=4, max_duration=4)
    notes = make_notes([(60, 0, 1, 80), (62, 1, 1.5, 80), (60, 1.5, 3.5, 80)])
    sequences = encode_pieces([Piece("p", notes=notes)], "events", steps_per_quarter=2, codec=codec)
    bias = np.zeros(codec.vocab_size)
    bias[codec.pitch_offset + 60 - 21] = 5.0  # always C4
    bias[codec.step_offset + 1] = 5.0  # always 1 tick
    bias[codec.duration_offset + 1] = 5.0  # always 2 ticks
    model = build_model("events", "gru", units=3, vocab_size=codec.vocab_size, embedding_dim=2)
    _set_constant_logits(model, bias)
    m = event_metrics(model, sequences, codec)
    assert m["notes"] == 3 and m["tokens"] == 9
    assert m["pitch_accuracy"] == pytest.approx(2 / 3)
    # true steps 0, 2, 1 ticks vs 1 predicted; durations 2, 1, 4 ticks vs 2 predicted
    assert m["step_accuracy"] == pytest.approx(1 / 3)
    assert m["step_mae_quarters"] == pytest.approx((1 + 1 + 0) / 3 / 2)
    assert m["duration_mae_quarters"] == pytest.approx((0 + 1 + 2) / 3 / 2)
    logp = bias - np.log(np.exp(bias).sum())
    targets = sequences[0][1]
    assert m["nll_per_token"] == pytest.approx(-logp[targets].mean(), rel=1e-6)


def test_generate_roll_is_seeded_and_continues_a_primer():
    model = build_model("roll", "gru", units=8, seed=0)
    runner = StepRunner(build_step_model(model))
    primer = np.zeros((3, 88), dtype=np.uint8)
    primer[:, 39] = 1
    a = generate_roll(runner, 12, temperature=0.7, rng=5, primer=primer)
    b = generate_roll(runner, 12, temperature=0.7, rng=5, primer=primer)
    assert a.steps.shape == (12, 88) and a.full.shape == (15, 88) and a.primer_steps == 3
    assert np.array_equal(a.steps, b.steps) and np.array_equal(a.full[:3], primer)
    _set_constant_logits(model, np.where(np.arange(88) == 40, 30.0, -30.0))
    c = generate_roll(StepRunner(build_step_model(model)), 4)
    assert np.flatnonzero(c.steps.any(axis=0)).tolist() == [40] and c.steps[:, 40].all()


def test_generate_events_follows_the_grammar_and_gives_exactly_n_notes():
    codec = EventCodec(ticks_per_quarter=4, max_step=4, max_duration=4)
    model = build_model("events", "gru", units=8, vocab_size=codec.vocab_size, embedding_dim=4)
    bias = np.zeros(codec.vocab_size)
    bias[codec.step_offset] = 20.0  # the model wants chords (step 0) and always the same pitch
    bias[codec.pitch_offset + 39] = 20.0
    _set_constant_logits(model, bias)
    out = generate_events(StepRunner(build_step_model(model)), codec, 10, rng=0)
    assert len(out.steps) == 30 and out.full[0] == BOS
    kinds = [codec.kind_of(t) for t in out.steps]
    assert kinds == ["step", "pitch", "duration"] * 10
    notes = codec.decode(out.full)
    assert len(notes) == 10
    onsets = {}
    for pitch, start, _, _ in notes:  # never the same pitch twice at one onset
        assert pitch not in onsets.setdefault(start, set())
        onsets[start].add(pitch)


def test_step_model_round_trips_through_its_config_and_exports_to_builtin_tflite():
    """The exporter rebuilds models from their config, then converts them to TFLite."""
    import keras

    from export.tflite import convert_to_tflite

    codec = EventCodec(ticks_per_quarter=2, max_step=4, max_duration=4)
    model = build_model("events", "lstm", units=5, layers=2, vocab_size=codec.vocab_size,
                        embedding_dim=3, seed=0)  # fmt: skip
    step = build_step_model(model)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(step))
    clone.set_weights(step.get_weights())
    rng = np.random.default_rng(0)
    inputs = [np.array([4, 9], dtype="int32")] + [rng.normal(size=(2, 5)).astype("float32")
                                                   for _ in range(4)]  # fmt: skip
    for a, b in zip(step(inputs), clone(inputs)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)
    result = convert_to_tflite(step, seq_len=None)
    assert "FLEX" not in " ".join(result.ops).upper()
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=result.content).get_signature_runner()
    names = [t.name for t in step.inputs]
    out = runner(**{n: v[:1] for n, v in zip(names, inputs)})
    np.testing.assert_allclose(out["logits"], np.asarray(step([v[:1] for v in inputs])[0]),
                               rtol=1e-4, atol=1e-5)  # fmt: skip
