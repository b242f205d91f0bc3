"""apps.tagger model: character encoder numbers, word dropout, mask invariance, the probe's logic."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from apps.tagger.data import Vocab, encode_batch
from apps.tagger.model import CharCNNEncoder, WordDropout, build_model


def _reference_char_encoder(ids, table, kernel, bias):
    """NumPy: embed, zero padding chars, 'same' 1-D convolution, tanh, max over real chars."""
    k = kernel.shape[1]
    out = np.zeros(ids.shape[:2] + (kernel.shape[-1],))
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1]):
            x = table[ids[b, t]] * (ids[b, t] > 0)[:, None]
            x = np.pad(x, ((k // 2, k // 2), (0, 0)))
            h = np.stack([np.tanh(np.einsum("kd,kdf->f", x[j : j + k], kernel[0]) + bias)
                          for j in range(ids.shape[2])])  # fmt: skip
            real = ids[b, t] > 0
            out[b, t] = h[real].max(axis=0) if real.any() else 0.0
    return out


def test_char_encoder_exact_values_and_width_invariance():
    rng = np.random.default_rng(0)
    enc = CharCNNEncoder(num_chars=6, char_dim=3, filters=4, kernel_size=3)
    ids = np.array([[[2, 3, 4, 0], [5, 0, 0, 0], [0, 0, 0, 0]]], np.int32)
    enc.build(ids.shape)
    table, kernel, bias = rng.normal(size=(6, 3)), rng.normal(size=(1, 3, 3, 4)), rng.normal(size=4)
    enc.set_weights([table, kernel, bias])
    got = np.asarray(enc(ids))
    np.testing.assert_allclose(got, _reference_char_encoder(ids, table, kernel, bias), atol=1e-5)
    assert (got[0, 2] == 0).all()  # a padding word
    wider = np.pad(ids, ((0, 0), (0, 0), (0, 5)))
    np.testing.assert_allclose(np.asarray(enc(wider)), got, atol=1e-6)
    assert np.asarray(enc.compute_mask(ids)).tolist() == [[True, True, False]]
    assert [w.path.split("/")[-1] for w in enc.weights] == ["E_c", "W_conv", "b_conv"]
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        CharCNNEncoder(6, kernel_size=2)


def test_word_dropout():
    layer = WordDropout(0.5, seed=3)
    ids = np.tile(np.array([[4, 5, 6, 7, 0, 0]], np.int32), (64, 1))
    assert np.array_equal(np.asarray(layer(ids, training=False)), ids)
    dropped = np.asarray(layer(ids, training=True))
    assert set(np.unique(dropped[:, :4])) <= {1, 4, 5, 6, 7}
    assert (dropped[:, 4:] == 0).all()  # padding is never replaced
    assert 0.35 < (dropped[:, :4] == 1).mean() < 0.65
    with pytest.raises(ValueError, match="rate must be in"):
        WordDropout(1.0)


def _vocab() -> Vocab:
    words = ["", "[UNK]"] + [f"w{i}" for i in range(30)]
    chars = ["", "[UNK]"] + list("abcdefghijklmnopqrstuvwxyzW0123456789")
    return Vocab(words, chars, ["B-PER", "I-PER", "O"], max_chars=8, task="ner")


@pytest.mark.parametrize("name", ["bilstm", "lstm", "bigru", "mut1"])
def test_padding_never_changes_a_tag(name):
    from apps.tagger.train import predict_proba

    vocab = _vocab()
    model = build_model(name, len(vocab.words), len(vocab.chars), 3, word_dim=8, char_dim=4,
                        char_filters=8, units=8, seed=1)  # fmt: skip
    short = ["w1", "w2", "w3"]
    long_ = ["w4", "w5", "Wabcdefghijk", "w6", "w7", "w8", "w9"]
    alone = np.asarray(model.predict_on_batch(encode_batch(vocab, [short])))[0]
    batched = np.asarray(model.predict_on_batch(encode_batch(vocab, [short, long_], length=40,
                                                              width=8)))  # fmt: skip
    np.testing.assert_allclose(batched[0, :3], alone, atol=1e-6)
    # the app's own batching (lengths rounded up, several sentences) agrees too
    probs = predict_proba(model, vocab, [long_, short, []])
    np.testing.assert_allclose(probs[1], alone, atol=1e-6)
    assert probs[2].shape == (0, 3)


@pytest.mark.parametrize("preset", ["gru", "mut1"])
def test_genotype_cells(tmp_path, preset):
    import seqlayers

    path = tmp_path / f"{preset}.json"
    seqlayers.GENOTYPE_PRESETS[preset].save(path)
    vocab = _vocab()
    inputs = encode_batch(vocab, [["w1", "w2", "w3"], ["w4"]])
    for name in (f"genotype:{path}", f"bigenotype:{path}"):
        model = build_model(name, len(vocab.words), len(vocab.chars), 3, word_dim=8, char_dim=4,
                            char_filters=8, units=6, seed=1)  # fmt: skip
        probs = np.asarray(model.predict_on_batch(inputs))
        assert probs.shape == (2, 3, 3)
        np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
        alone = np.asarray(model.predict_on_batch(encode_batch(vocab, [["w4"]])))
        np.testing.assert_allclose(probs[1, :1], alone[0], atol=1e-6)


def test_saved_model_round_trip(tmp_path):
    import seqlayers  # noqa: F401

    vocab = _vocab()
    model = build_model("bigru", len(vocab.words), len(vocab.chars), 3, word_dim=8, char_dim=4,
                        char_filters=8, units=8, seed=2, word_dropout=0.2)  # fmt: skip
    inputs = encode_batch(vocab, [["w1", "w2"], ["w3"]])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded.predict_on_batch(inputs)),
                               np.asarray(model.predict_on_batch(inputs)), atol=1e-6)  # fmt: skip


def test_probe_logic_on_one_way_and_two_way_models():
    from apps.tagger.probe import load_pairs, probe_model

    pairs = load_pairs()
    assert pairs[0].word == "Teddy" and len(pairs) >= 20
    vocab = Vocab.build(
        [type("S", (), {"tokens": p.tokens_a + p.tokens_b, "tags": p.tags_a + p.tags_b})()
         for p in pairs],
        max_words=500, min_count=1, max_chars=12, task="ner",
    )  # fmt: skip
    results = {}
    for name in ("lstm", "bilstm"):
        model = build_model(name, len(vocab.words), len(vocab.chars), len(vocab.tags),
                            word_dim=8, char_dim=4, char_filters=8, units=8, seed=4)  # fmt: skip
        results[name] = probe_model(model, vocab, pairs, name=name,
                                    bidirectional=name.startswith("bi"))  # fmt: skip
    lstm, bilstm = results["lstm"], results["bilstm"]
    # left to right: the decisive word's tag depends on the shared prefix only
    assert lstm["max_prefix_diff"] < 1e-5
    assert lstm["both_right"] == 0 and lstm["decisive_right"] <= lstm["pairs"]
    # a BiLSTM reads the words after it, even untrained
    assert bilstm["max_prefix_diff"] > 1e-4
    assert len(bilstm["results"]) == len(pairs)
    with pytest.raises(RuntimeError, match="left context only"):
        probe_model(model, vocab, pairs, name="bilstm", bidirectional=False)


@pytest.mark.parametrize("name", ["bilstm", "bimut1"])
def test_stacked_layers(name):
    vocab = _vocab()
    kw = {"word_dim": 8, "char_dim": 4, "char_filters": 8, "units": 6, "seed": 1}
    one = build_model(name, len(vocab.words), len(vocab.chars), 3, **kw)
    two = build_model(name, len(vocab.words), len(vocab.chars), 3, layers=2, **kw)
    names = [layer.name for layer in two.layers]
    assert {"recurrent", "recurrent_2", "output_dropout_2"} <= set(names)
    # bidirectional MUT1 adds x_t to a units-wide sum: the second layer gets its own projection
    assert ("projection_2" in names) == (name == "bimut1")
    assert two.count_params() > one.count_params()
    short, long_ = ["w1", "w2"], ["w3", "w4", "w5", "w6"]
    alone = np.asarray(two.predict_on_batch(encode_batch(vocab, [short])))[0]
    batched = np.asarray(two.predict_on_batch(encode_batch(vocab, [short, long_], length=9)))
    np.testing.assert_allclose(batched[0, :2], alone, atol=1e-6)  # padding still inert
    with pytest.raises(ValueError, match="layers"):
        build_model(name, len(vocab.words), len(vocab.chars), 3, layers=0, **kw)
