"""Translation models: the one-step decoder equals the teacher-forced model, attention weights
are a distribution over real source tokens, and beam search of width 1 is greedy decoding."""

from __future__ import annotations

import numpy as np
import pytest

from apps.common import decoding
from apps.translation.decode import Translator
from apps.translation.model import build_encoder_model, build_model, build_step_model
from apps.translation.tokenize import END_ID, START_ID, Tokenizer

SRC = np.array([[5, 6, 7, 8], [9, 4, 0, 0], [6, 0, 0, 0]], dtype=np.int32)
TIN = np.array([[START_ID, 7, 8, 9], [START_ID, 9, 4, 0], [START_ID, 5, 0, 0]], dtype=np.int32)


def _model(kind: str, cell: str = "gru", seed: int = 3):
    return build_model(kind, cell, 12, 14, embedding_dim=6, units=5, attention_units=4, seed=seed)


def _run_steps(model, src, tin):
    """Logits and attention weights of the encoder + one-step models, teacher forced."""
    enc = [np.asarray(o) for o in build_encoder_model(model)(src)]
    step = build_step_model(model)
    attention = model.name == "translation_attention"
    k = 3 if attention else 1  # [values, keys, mask] or [context], then the decoder states
    consts, states = enc[:k], enc[k:]
    n = len(states)
    logits, weights = [], []
    for t in range(tin.shape[1]):
        outs = [np.asarray(o) for o in step([tin[:, t], *states, *consts])]
        logits.append(outs[0])
        states = outs[1 : 1 + n]
        if attention:
            weights.append(outs[1 + n])
    return np.stack(logits, 1), (np.stack(weights, 1) if weights else None)


@pytest.mark.parametrize(
    "kind, cell",
    [("attention", c) for c in ("gru", "lstm", "mut1", "vanilla", "mut3")]
    + [("attention", "genotype:lstm"), ("attention", "genotype:mut2")]
    + [("noattention", c) for c in ("gru", "lstm", "mut1")],
)
def test_step_model_equals_teacher_forced_model(kind, cell, tmp_path):
    if cell.startswith("genotype:"):  # a searched cell, saved as the JSON --cell reads
        import seqlayers

        path = seqlayers.GENOTYPE_PRESETS[cell.split(":")[1]].save(tmp_path / "cell.json")
        cell = f"genotype:{path}"
    model = _model(kind, cell)
    full = np.asarray(model([SRC, TIN]))
    stepped, _ = _run_steps(model, SRC, TIN)
    real = (TIN != 0)[..., None]  # padded target steps are not predictions
    np.testing.assert_allclose(stepped * real, full * real, atol=1e-5)


def test_attention_weights_sum_to_one_and_vanish_on_padding():
    model = _model("attention")
    _, weights = _run_steps(model, SRC, TIN)  # (B, T, S)
    src_len = (SRC != 0).sum(1)
    for b in range(SRC.shape[0]):
        np.testing.assert_allclose(weights[b, :, : src_len[b]].sum(-1), 1.0, atol=1e-6)
        assert np.all(weights[b, :, src_len[b] :] == 0.0)  # exactly zero on padding
    # The teacher-forced decoder's weights are the same distributions.
    decoder = model.get_layer("decoder")
    assert decoder.cell.attention.units == 4


def test_precomputed_keys_equal_naive_per_step_keys():
    model = _model("attention", "lstm")
    enc = [np.asarray(o) for o in build_encoder_model(model)(SRC)]
    values, keys, mask, h, c = enc
    fast = build_step_model(model)
    naive = build_step_model(model, precomputed_keys=False)
    a = [np.asarray(o) for o in fast([TIN[:, 1], h, c, values, keys, mask])]
    b = [np.asarray(o) for o in naive([TIN[:, 1], h, c, values, mask])]
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=1e-6)


def _translator(kind: str = "attention", precomputed_keys: bool = True, model=None) -> Translator:
    model = model or _model(kind, seed=11)
    src_tok = Tokenizer(12).fit(["a b c d e f g h"])
    tgt_tok = Tokenizer(14).fit(["p q r s t u v w x y"])
    return Translator(model, src_tok, tgt_tok, max_source_len=6, max_target_len=7,
                      precomputed_keys=precomputed_keys)  # fmt: skip


@pytest.mark.parametrize("kind", ["attention", "noattention"])
def test_beam_one_equals_greedy_through_step_function(kind):
    tr = _translator(kind)
    sources = [[5, 6, 7], [9, 4], [6, 10, 11, 5, 4]]
    for src in sources:
        states = tr.encode_ids(np.array([src], dtype=np.int32))
        greedy = decoding.greedy(tr.step_fn, states, START_ID, END_ID, 8)
        beam = decoding.beam_search(tr.step_fn, states, START_ID, END_ID, 8, beam_size=1)
        assert [list(beam[0][0].tokens)] == greedy
    batched = tr.translate_ids(sources, beam=1)
    assert [ids for ids, _ in tr.translate_ids(sources, beam=1, batch_size=1)] == [
        ids for ids, _ in batched
    ]
    assert [ids for ids, _ in tr.translate_ids(sources, beam=1)] == [
        ids for ids, _ in (tr.translate_ids([s], beam=1)[0] for s in sources)
    ]


def test_beam_scores_are_the_log_probabilities_of_their_tokens():
    tr = _translator()
    states0 = tr.encode_ids(np.array([[5, 6, 7, 8]], dtype=np.int32))
    max_len = 5

    def logprob(ids, ended):
        states, total, token = states0, 0.0, START_ID
        for nxt in [*ids, END_ID] if ended else ids:
            logits, states = tr.step_fn(np.array([token]), states)
            total += float(decoding.log_softmax(logits)[0, nxt])
            token = nxt
        return total

    hyps = decoding.beam_search(tr.step_fn, states0, START_ID, END_ID, max_len, beam_size=3)[0]
    assert hyps and [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    for h in hyps:
        ended = len(h.tokens) < max_len
        assert h.logprob == pytest.approx(logprob(list(h.tokens), ended), abs=1e-4)


def test_naive_translator_gives_the_same_translations():
    sources = [[5, 6, 7], [9, 4], [6, 10, 11, 5, 4]]
    model = _model("attention", seed=11)
    fast = _translator(model=model).translate_ids(sources, beam=2)
    naive = _translator(model=model, precomputed_keys=False).translate_ids(sources, beam=2)
    assert [ids for ids, _ in fast] == [ids for ids, _ in naive]


def test_attention_map_rows_follow_the_translation():
    tr = _translator()
    weights = tr.attention_map([5, 6, 7], [8, 9])
    assert weights.shape == (3, 3)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)


def test_build_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind must be"):
        build_model("transformer", "gru", 10, 10)
    with pytest.raises(ValueError, match="units must be a positive integer"):
        build_model("attention", "gru", 10, 10, units=0)


def test_step_model_converts_to_builtin_tflite_with_parity():
    """The one-step decoder a phone loops over runs on TFLite's builtin ops, as in Keras."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from export.ops import assert_builtin_only

    model = _model("attention")
    step = build_step_model(model)
    converter = tf.lite.TFLiteConverter.from_keras_model(step)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    content = converter.convert()
    ops = assert_builtin_only(content, step)  # raises on Flex / custom ops
    assert "FULLY_CONNECTED" in ops and "SOFTMAX" in ops
    interpreter = Interpreter(model_content=content)
    runner = interpreter.get_signature_runner()
    values, keys, mask, h = [np.asarray(o) for o in build_encoder_model(model)(SRC[1:2])]
    feed = {"token": TIN[1, :1], "state_0": h, "values": values, "keys": keys, "source_mask": mask}
    got = runner(**feed)
    want = [
        np.asarray(o)
        for o in step([feed[n] for n in ("token", "state_0", "values", "keys", "source_mask")])
    ]
    for k, ref in enumerate(want):
        np.testing.assert_allclose(got[f"output_{k}"], ref, atol=1e-5)
