"""apps.sentiment.model: exact layer values, padding invariance for every model kind, exact
order-blindness of bow, the window, and saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import seqlayers
from apps.common.errors import UsageError
from apps.sentiment.model import FirstTokens, MaskedMaxPooling, MeanBagOfWords, build_model

VOCAB = 30
IDS = np.array(
    [
        [5, 9, 2, 7, 11, 3, 1, 0],  # a full row, [UNK] included
        [3, 4, 0, 0, 0, 0, 0, 0],
        [6, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0],  # padding only (an empty text)
    ],
    dtype="int32",
)
KINDS = ["bow", "window", "vanilla", "lstm", "gru", "mut1", "mut2", "mut3", "bilstm", "bigru",
         "bimut2"]  # fmt: skip


def _padded(ids: np.ndarray, extra: int) -> np.ndarray:
    return np.concatenate([ids, np.zeros((ids.shape[0], extra), dtype=ids.dtype)], axis=1)


def test_mean_bag_of_words_exact_values():
    out = np.asarray(MeanBagOfWords(5)(np.array([[2, 3, 2, 0], [4, 0, 0, 0], [0, 0, 0, 0]])))
    np.testing.assert_array_equal(
        out, np.array([[0, 0, 2 / 3, 1 / 3, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], "float32")
    )


def test_first_tokens_exact_values():
    out = np.asarray(FirstTokens(3)(np.array([[5, 6], [1, 2]])))
    np.testing.assert_array_equal(out, [[5, 6, 0], [1, 2, 0]])
    out = np.asarray(FirstTokens(2)(np.array([[5, 6, 7, 8]])))
    np.testing.assert_array_equal(out, [[5, 6]])


@pytest.fixture(scope="module")
def genotype_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("geno") / "gru.json"
    seqlayers.GENOTYPE_PRESETS["gru"].save(path)
    return path


def test_masked_max_pooling_exact_values():
    x = np.array([[[1.0, -4.0], [5.0, -2.0], [9.0, 7.0]], [[-3.0, -1.0], [8.0, 8.0], [0, 0]]])
    mask = np.array([[True, True, False], [True, False, False]])
    out = np.asarray(MaskedMaxPooling()(x, mask=mask))
    np.testing.assert_array_equal(out, [[5.0, -2.0], [-3.0, -1.0]])
    np.testing.assert_array_equal(np.asarray(MaskedMaxPooling()(x)), [[9.0, 7.0], [8.0, 8.0]])
    empty = np.asarray(MaskedMaxPooling()(x, mask=np.zeros((2, 3), bool)))
    np.testing.assert_array_equal(empty, np.zeros((2, 2)))


@pytest.mark.parametrize(
    ("kind", "pooling"),
    [*((k, "last") for k in [*KINDS, "genotype"]), ("bilstm", "max"), ("mut2", "max")],
)
def test_appending_padding_changes_no_prediction(kind, pooling, genotype_file):
    name = f"genotype:{genotype_file}" if kind == "genotype" else kind
    model = build_model(name, VOCAB, 3, embed_dim=6, units=5, dropout=0.2, seed=3, window=4,
                        pooling=pooling)  # fmt: skip
    probs = np.asarray(model(IDS))
    assert probs.shape == (4, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    for extra in (1, 9):
        np.testing.assert_allclose(np.asarray(model(_padded(IDS, extra))), probs, atol=1e-5)
    # a row's prediction does not depend on the padding length of the batch it is in
    np.testing.assert_allclose(np.asarray(model(IDS[1:2, :2])), probs[1:2], atol=1e-5)
    # and tokens do matter
    assert np.abs(probs[0] - probs[1]).max() > 1e-4


def test_bow_is_exactly_order_blind():
    model = build_model("bow", 500, 4, embed_dim=16, seed=0)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 500, size=(6, 37)).astype("int32")
    ids[:, 30:] = 0
    base = np.asarray(model(ids))
    for _ in range(5):
        shuffled = np.stack([row[rng.permutation(37)] for row in ids])  # padding moves too
        np.testing.assert_array_equal(np.asarray(model(shuffled)), base)


def test_window_reads_only_its_first_tokens():
    model = build_model("window", VOCAB, 2, embed_dim=4, units=6, window=3, seed=1)
    base = np.asarray(model(IDS[:1]))
    later = IDS[:1].copy()
    later[0, 3:7] = [8, 8, 8, 8]
    np.testing.assert_array_equal(np.asarray(model(later)), base)
    inside = IDS[:1].copy()
    inside[0, 2] = 8
    assert np.abs(np.asarray(model(inside)) - base).max() > 1e-6
    assert model.get_layer("window_vector").output.shape == (None, 3 * 4)


def test_mut1_projects_embeddings_to_units():
    model = build_model("mut1", VOCAB, 2, embed_dim=6, units=5, seed=0)
    assert model.get_layer("projection").kernel.shape == (6, 5)
    same = build_model("mut1", VOCAB, 2, embed_dim=5, units=5, seed=0)
    assert "projection" not in [layer.name for layer in same.layers]


def test_seeded_models_are_identical():
    a = build_model("lstm", VOCAB, 3, embed_dim=4, units=3, seed=11)
    b = build_model("lstm", VOCAB, 3, embed_dim=4, units=3, seed=11)
    np.testing.assert_array_equal(
        a.get_layer("embedding").embeddings, b.get_layer("embedding").embeddings
    )
    np.testing.assert_array_equal(
        a.get_layer("probabilities").kernel, b.get_layer("probabilities").kernel
    )


def test_bad_arguments():
    with pytest.raises(UsageError, match="unknown cell 'transformer'"):
        build_model("transformer", VOCAB, 2)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("bow", VOCAB, 1)
    with pytest.raises(ValueError, match="dropout"):
        build_model("lstm", VOCAB, 2, dropout=1.0)
    with pytest.raises(ValueError, match="window"):
        build_model("window", VOCAB, 2, window=0)
    with pytest.raises(ValueError, match="pooling"):
        build_model("lstm", VOCAB, 2, pooling="mean")


@pytest.mark.parametrize(("kind", "pooling"), [("bow", "last"), ("window", "last"),
                                               ("bigru", "last"), ("bigru", "max")])  # fmt: skip
def test_save_and_load_round_trip(kind, pooling, tmp_path):
    model = build_model(kind, VOCAB, 3, embed_dim=4, units=3, seed=2, pooling=pooling)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(IDS)), np.asarray(model(IDS)), atol=1e-6)
