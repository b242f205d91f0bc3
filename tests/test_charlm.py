"""apps.charlm: truncated-BPTT batching, vocabulary, corpora, metrics, one-step generation,
cell-activation pictures and gradient decay — on tiny shapes with exact references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apps.charlm import data as D
from apps.common.errors import DataError

# ----------------------------------------------------------------- truncated BPTT batching


def test_stream_starts_exact_indices():
    # 23 ids, 2 streams of (23 - 1) // 2 = 11 inputs, windows of 5: 11 // 5 = 2 windows.
    starts = D.stream_starts(23, batch=2, bptt=5)
    assert starts.tolist() == [[0, 11], [5, 16]]
    x, y = D.window_arrays(np.arange(23), batch=2, bptt=5)
    assert x.tolist() == [[[0, 1, 2, 3, 4], [11, 12, 13, 14, 15]],
                          [[5, 6, 7, 8, 9], [16, 17, 18, 19, 20]]]  # fmt: skip
    assert y.tolist() == [[[1, 2, 3, 4, 5], [12, 13, 14, 15, 16]],
                          [[6, 7, 8, 9, 10], [17, 18, 19, 20, 21]]]  # fmt: skip


def test_windows_are_contiguous_per_stream():
    ids = np.arange(1000)
    x, y = D.window_arrays(ids, batch=7, bptt=9)
    assert x.shape == y.shape == (15, 7, 9)  # streams of 999 // 7 = 142 inputs, 142 // 9 windows
    for b in range(7):
        stream = np.concatenate([x[w, b] for w in range(x.shape[0])])
        # row b of batch w+1 starts exactly where row b of batch w stopped
        assert np.array_equal(stream, np.arange(stream[0], stream[0] + len(stream)))
        assert stream[0] == b * (999 // 7)
    assert np.array_equal(y, x + 1)


def test_make_dataset_keeps_window_order():
    ids = np.arange(200, dtype=np.int32)
    x, y = D.window_arrays(ids, batch=4, bptt=6)
    got = list(D.make_dataset(ids, 4, 6).as_numpy_iterator())
    assert len(got) == len(x) == 199 // 4 // 6
    for (gx, gy), ex, ey in zip(got, x, y):
        assert np.array_equal(gx, ex) and np.array_equal(gy, ey)


def test_too_little_text_for_one_window_per_stream():
    assert D.stream_starts(64, batch=8, bptt=8).shape == (0, 8)
    with pytest.raises(DataError, match=r"has 64 characters, fewer than one window x batch .*= 65"):
        D.check_enough(64, 8, 8, "training")
    D.check_enough(65, 8, 8, "training")


# ------------------------------------------------------------------------------- vocabulary
def test_vocab_keeps_most_frequent_and_maps_unknown_to_zero(tmp_path):
    vocab = D.CharVocab.fit("aaabbc\n", max_size=3)  # room for 2 characters + unknown
    assert vocab.chars == ["a", "b"] and vocab.size == 3
    assert vocab.encode("abcz").tolist() == [1, 2, 0, 0]
    assert vocab.decode([2, 1, 0]) == "ba\ufffd"
    assert vocab.unknown_chars("zcaz") == ["z", "c"]
    vocab.save(tmp_path / "vocab.json")
    assert D.CharVocab.load(tmp_path / "vocab.json").chars == ["a", "b"]


# ---------------------------------------------------------------------------------- corpora
def test_text_file_bad_inputs(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        D.load_corpus(str(empty))
    bad = tmp_path / "latin.txt"
    bad.write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"byte 0xe9 at byte offset 3 .*--encoding"):
        D.load_corpus(str(bad))
    corpus = D.load_corpus(str(bad), encoding="latin-1", val_fraction=0.4)
    assert corpus.train + corpus.val == "caf\u00e9 au lait\n"
    assert corpus.val == "lait\n"  # the last round(13 * 0.4) = 5 characters
    with pytest.raises(DataError, match="unknown text encoding"):
        D.load_corpus(str(bad), encoding="klingon-8")
    with pytest.raises(DataError, match="is a folder"):
        D.load_corpus(str(tmp_path))


def test_pysource_order_skips_and_split(tmp_path):
    root = tmp_path / "lib"
    for rel, text in {"a.py": "x = 1\n" * 50, "pkg/b.py": "y = 2\n" * 60, "c.py": "z = 3\n" * 40,
                      "test/t.py": "no\n", "site-packages/s.py": "no\n", "d.txt": "no\n"}.items():  # fmt: skip
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "bad.py").write_bytes(b"\xff\xfe junk\n")
    files = [p.as_posix() for p in D.pysource_files(root)]
    import hashlib

    expected = sorted(
        ["a.py", "pkg/b.py", "c.py", "bad.py"], key=lambda p: hashlib.sha1(p.encode()).hexdigest()
    )
    assert files == expected
    corpus = D.load_pysource(None, 0.3, root=root)
    assert "non-UTF-8 files skipped" in corpus.description and "3 .py files" in corpus.description
    assert sorted([corpus.train.count("\n"), corpus.val.count("\n")]) in (
        [40, 110],
        [50, 100],
        [60, 90],
    )
    assert D.load_pysource(None, 0.3, root=root) == corpus  # deterministic


def test_builtin_pysource_is_deterministic_and_capped():
    a = D.load_corpus("builtin:pysource", max_chars=30_000)
    b = D.load_corpus("builtin:pysource", max_chars=30_000)
    assert a == b
    assert len(a.train) + len(a.val) == 30_000
    assert a.val and a.train and "standard library" in a.description


def test_tfds_offline_is_a_clear_error(tmp_path, monkeypatch):
    from apps.common.sources import parse_source

    monkeypatch.setattr(D, "_network_reachable", lambda host, timeout=3.0: False)
    with pytest.raises(
        DataError, match=r"not downloaded and raw.githubusercontent.com cannot be reached"
    ):
        D.load_tfds_text(parse_source("tfds:tiny_shakespeare"), None, 0.1, data_dir=str(tmp_path))


# ---------------------------------------------------------------------- metrics by hand
def _toy_vanilla(vocab: int = 5, emb: int = 3, units: int = 4, seed: int = 0):
    from apps.charlm.model import build_model

    rng = np.random.default_rng(seed)
    model = build_model("vanilla", vocab, units=units, embedding_dim=emb)
    weights = {
        "E": rng.normal(size=(vocab, emb)),
        "W_xh": rng.normal(size=(emb, units)),
        "W_hh": rng.normal(size=(units, units)) * 0.5,
        "b_h": rng.normal(size=units) * 0.1,
        "W_hy": rng.normal(size=(units, vocab)),
        "b_y": rng.normal(size=vocab) * 0.1,
    }
    model.get_layer("embedding").set_weights([weights["E"]])
    rnn = model.get_layer("rnn_1")
    assert [w.path.split("/")[-1] for w in rnn.weights] == ["W_xh", "W_hh", "b_h"]
    rnn.set_weights([weights["W_xh"], weights["W_hh"], weights["b_h"]])
    model.get_layer("logits").set_weights([weights["W_hy"], weights["b_y"]])
    return model, weights


def test_bits_per_char_by_hand_equals_app():
    from apps.charlm.train import evaluate_ids

    model, w = _toy_vanilla()
    ids = np.array([1, 3, 2, 4, 0, 1, 1, 2, 3, 4, 4, 2, 1, 0, 3, 2, 2, 1, 4, 3, 0, 2, 1], np.int32)
    batch, bptt = 2, 4  # streams of 11 inputs -> 2 windows of 4 per stream, state carried across
    total, count = 0.0, 0
    for b in range(batch):
        h = np.zeros(4)
        for t in range(b * 11, b * 11 + 8):  # the 8 inputs the two windows cover
            h = np.tanh(w["E"][ids[t]] @ w["W_xh"] + h @ w["W_hh"] + w["b_h"])
            z = h @ w["W_hy"] + w["b_y"]
            logp = z - z.max() - math.log(np.exp(z - z.max()).sum())
            total -= logp[ids[t + 1]]
            count += 1
    nats = total / count
    got = evaluate_ids(model, ids, batch, bptt)
    assert got["chars"] == count == 16
    assert got["nats_per_char"] == pytest.approx(nats, rel=1e-5)
    assert got["bits_per_char"] == pytest.approx(nats / math.log(2), rel=1e-5)


def test_training_metric_is_loss_in_bits():
    from apps.charlm.model import bits_per_char

    logits = np.log(np.array([[[0.5, 0.25, 0.25], [0.125, 0.125, 0.75]]], np.float32))
    got = np.asarray(bits_per_char(np.array([[0, 1]]), logits))
    np.testing.assert_allclose(got, [[1.0, 3.0]], atol=1e-5)


# ---------------------------------------------------------------------- one-step generation
@pytest.mark.parametrize("cell,layers", [("lstm", 2), ("mut1", 1)])
def test_one_step_greedy_equals_full_model_argmax(cell, layers):
    from apps.charlm.model import build_model
    from apps.charlm.sample import Generator, greedy_ids, refeed_generate

    vocab = D.CharVocab(list("abcdefghij"))
    model = build_model(cell, vocab.size, units=12, layers=layers, embedding_dim=6)
    kernel, bias = model.get_layer("logits").get_weights()
    model.get_layer("logits").set_weights([kernel * 8.0, bias])  # peaked logits: no near-ties
    gen = Generator.from_model(model, vocab)
    prime = vocab.encode("abcab")
    stepped = greedy_ids(gen, prime, 25)
    assert stepped == refeed_generate(model, prime, 25)
    assert len(set(stepped)) > 1


def test_generate_streams_and_maps_unseen_prime_chars():
    from apps.charlm.model import build_model
    from apps.charlm.sample import Generator, generate, prime_ids

    vocab = D.CharVocab(list("ab\n"))
    gen = Generator.from_model(build_model("gru", vocab.size, units=8), vocab)
    ids, unseen = prime_ids(vocab, "aéb€")
    assert ids.tolist() == [1, 0, 2, 0] and unseen == ["é", "€"]
    streamed: list[str] = []
    out = generate(gen, "aéb€", 30, temperature=0.7, seed=3, on_text=streamed.append)
    assert "".join(streamed) == out and len(out) == 30
    assert out == generate(gen, "aéb€", 30, temperature=0.7, seed=3)  # seeded
    with pytest.raises(ValueError, match="temperature must be > 0"):
        generate(gen, "a", 5, temperature=0.0)


# -------------------------------------------------------------------------- visualisation
def test_text_properties_exact():
    from apps.charlm.visualize import text_property

    text = 'f(a, "x)")\n  # (c\n[1]'
    assert text_property(text, "quotes").tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0,
                                                      0, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # fmt: skip
    assert text_property(text, "line-position").tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                                             0, 1, 2, 3, 4, 5, 6, 0, 1, 2]  # fmt: skip
    # ')' inside the string and '(' inside the comment do not count
    assert text_property(text, "depth").tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0,
                                                     0, 0, 0, 0, 0, 0, 0, 1, 1, 0]  # fmt: skip
    assert text_property("'''a\nb'''c", "quotes").tolist() == [1, 1, 1, 1, 1, 1, 1, 1, 1, 0]
    assert text_property("don't\nx", "quotes").tolist() == [0, 0, 0, 1, 1, 0, 0]


def test_rank_units_by_correlation():
    from apps.charlm.visualize import rank_units

    prop = np.array([0, 0, 1, 1, 0, 1], float)
    acts = np.stack([np.ones(6), 0.1 * prop, -prop + 0.01 * np.arange(6), np.arange(6.0)], axis=1)
    ranking = rank_units(acts, prop)
    assert [u for u, _ in ranking][:2] == [1, 2]
    assert ranking[0][1] == pytest.approx(1.0)
    assert dict(ranking)[0] == 0.0  # a constant unit has no correlation


def test_visualisation_files_written(tmp_path):
    from apps.charlm.model import build_model
    from apps.charlm.sample import Generator
    from apps.charlm.visualize import activations, visualize

    text = 'x = "ab"\nif (y):\n    z = 1\n'
    vocab = D.CharVocab.fit(text, 40)
    model = build_model("lstm", vocab.size, units=6, embedding_dim=4)
    gen = Generator.from_model(model, vocab)
    acts = activations(gen, text, state="cell")
    assert acts.shape == (len(text), 6) and np.all(np.abs(acts) <= 1)
    result = visualize(gen, text, tmp_path, find="depth", top=2)
    html = (tmp_path / "cells_depth.html").read_text(encoding="utf-8")
    assert html.count("' title='") == 2 * len(text)  # one coloured span per char, 2 panels
    assert "&quot;ab&quot;" not in html and "&quot;" in html
    png = (tmp_path / "cells_depth.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert len(result["units"]) == 2 and result["units"][0]["unit"] == result["ranking"][0]["unit"]
    visualize(gen, text, tmp_path, units=[5])
    assert (tmp_path / "cells_units_5.png").is_file()


# ------------------------------------------------------------------------------ gradients
def test_gradient_norms_exact_zero_without_recurrence():
    from apps.charlm.gradients import gradient_norms, largest_singular_values

    model, w = _toy_vanilla()
    rnn = model.get_layer("rnn_1")
    rnn.set_weights([w["W_xh"], np.diag([0.5, 2.0, 0.1, 0.0]), w["b_h"]])
    assert largest_singular_values(model) == {"rnn_1": pytest.approx(2.0)}
    rnn.set_weights([w["W_xh"], np.zeros((4, 4)), w["b_h"]])
    norms = gradient_norms(model, np.array([[1, 2, 3, 4, 0, 1]]))
    assert norms.shape == (5,)
    assert norms[0] > 0 and np.all(norms[1:] == 0)  # no W_hh: only x_t reaches loss_t


def test_vanilla_gradient_decays_faster_than_lstm_after_training():
    from apps.charlm.gradients import compare_cells

    text = D.load_corpus("builtin:pysource", max_chars=60_000).train
    vocab = D.CharVocab.fit(text, 64)
    ids = vocab.encode(text)
    results = compare_cells(["vanilla", "lstm"], ids[:45_000], ids[45_000:], vocab.size, units=32,
                            embedding_dim=12, batch_size=16, bptt=32, steps=100, horizon=40,
                            probes=12, learning_rate=1e-2, seed=7)  # fmt: skip
    vanilla, lstm = results
    # seeds 1, 7, 42 measured: vanilla -0.13/-0.09/-0.10, LSTM -0.10/-0.02/-0.01 decades per step
    assert vanilla["decay_trained"] < lstm["decay_trained"] - 0.02
    v, l = np.array(vanilla["trained"]), np.array(lstm["trained"])
    assert v[40] / v[10] < l[40] / l[10]  # and far back, not only on average
    assert vanilla["train_loss"] < 3.0 and lstm["train_loss"] < 3.0  # both did learn something
    assert "sigma_max_trained" in vanilla and "sigma_max_trained" not in lstm
