"""apps.captioning model pieces on tiny shapes: the one-step model equals the trained model,
attention over the grid sums to 1, beam 1 equals greedy, cached encoder features equal fresh
ones, the tf.data pipeline, saving, and the encoder-weights errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from apps.captioning.data import load_splits, make_dataset
from apps.captioning.decode import Captioner
from apps.captioning.features import cached_features, compute_features, file_sha256
from apps.captioning.model import (
    build_encoder,
    build_feature_model,
    build_model,
    build_pretrained_encoder,
    compose_full_model,
    grid_shape,
)
from apps.captioning.vocab import END_ID, START_ID
from apps.common.errors import DataError, UsageError

VOCAB = 12


def _model(cell: str = "lstm", seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    encoder = build_encoder("cnn", 32, 1, filters=4)
    return build_model(encoder, VOCAB, cell=cell, units=8, embedding_dim=6, attention_units=5)


def _images(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 1)).astype(np.uint8)


@pytest.mark.parametrize("cell", ["lstm", "gru", "vanilla", "mut1"])
def test_step_model_equals_teacher_forced_model(cell):
    model = _model(cell)
    images = _images(3)
    caption = np.array([[START_ID, 5, 6, 7, 0], [START_ID, 4, 4, 0, 0], [START_ID, 9, 8, 11, 10]],
                       np.int32)  # fmt: skip
    full = np.asarray(model([images.astype("float32"), caption]))
    captioner = Captioner(model)
    steps = captioner.logits(images, caption)
    assert full.shape == steps.shape == (3, 5, VOCAB)
    np.testing.assert_allclose(steps, full, rtol=1e-4, atol=1e-5)
    assert grid_shape(model) == (4, 4)
    assert captioner.num_states == (2 if cell == "lstm" else 1)
    # MUT1 reads [embedding (6); context] and needs it units (8) wide: the features get 2.
    assert model.get_layer("project").units == (2 if cell == "mut1" else 8)


def test_attention_over_the_grid_sums_to_one():
    model = _model()
    captioner = Captioner(model)
    tokens = [5, 6, 7, 8]
    weights = captioner.attention(_images(1)[0], tokens)
    assert weights.shape == (len(tokens) + 1, 16)
    assert (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    # The replay equals the weights of the stepwise decoder on the batch.
    states = captioner.encode(_images(1))
    _, _, first = captioner.step(np.array([START_ID]), states)
    np.testing.assert_allclose(first[0], weights[0], atol=1e-6)


def test_beam_one_equals_greedy_and_beam_is_no_worse():
    from apps.common.decoding import log_softmax

    model = _model(seed=3)
    captioner = Captioner(model, batch_size=4)
    images = _images(6, seed=1)
    greedy = captioner.greedy(images, max_length=6)
    assert captioner.beam(images, 1, max_length=6) == greedy
    assert captioner.generate(images, 6, beam_size=1) == greedy
    beam = captioner.beam(images, 3, max_length=6)

    def logprob(image, tokens):
        states = captioner.encode(image[None])
        total, prev = 0.0, START_ID
        for tok in [*tokens, END_ID]:
            logits, states, _ = captioner.step(np.array([prev]), states)
            total += float(log_softmax(logits)[0, tok])
            prev = tok
        return total

    for image, g, b in zip(images, greedy, beam):
        if len(g) < 7 and len(b) < 7:  # both finished with [END]
            assert logprob(image, b) >= logprob(image, g) - 1e-6


def test_dataset_shifts_captions_and_weights_padding():
    seqs = [[START_ID, 5, 6, END_ID], [START_ID, 7, END_ID]]
    images = _images(2)
    ds = make_dataset(images, np.array([1, 0]), seqs, 2, shuffle=False, seed=0)
    (((pixels, caption), y, w),) = list(ds.as_numpy_iterator())
    assert pixels.dtype == np.float32 and pixels.shape == (2, 32, 32, 1)
    np.testing.assert_array_equal(pixels[0], images[1].astype(np.float32))
    np.testing.assert_array_equal(caption, [[START_ID, 5, 6], [START_ID, 7, 0]])
    np.testing.assert_array_equal(y, [[5, 6, END_ID], [7, END_ID, 0]])
    np.testing.assert_array_equal(w, [[1, 1, 1], [1, 1, 0]])


def test_saved_model_loads_in_safe_mode(tmp_path):
    import seqlayers  # noqa: F401

    model = _model("gru")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = [_images(2).astype("float32"), np.array([[2, 5, 6], [2, 7, 8]])]
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    assert Captioner(loaded).greedy(_images(2), 4) == Captioner(model).greedy(_images(2), 4)


@pytest.fixture(scope="module")
def mobilenet_weights(tmp_path_factory):
    """A weights file for MobileNetV3Small without top (random init: no download here)."""
    keras.utils.set_random_seed(0)
    net = keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), include_top=False,
                                              weights=None, include_preprocessing=True)  # fmt: skip
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v3_small_notop.weights.h5"
    net.save_weights(path)
    return path


def test_cached_features_equal_fresh_ones(tmp_path, mobilenet_weights):
    encoder = build_pretrained_encoder("mobilenet_v3_small", 64, mobilenet_weights, trainable=False)
    assert not any(w.trainable for w in encoder.weights)
    images = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3)).astype(np.uint8)
    key = {"encoder": "mobilenet_v3_small", "weights_sha256": file_sha256(mobilenet_weights)}
    first, hit1 = cached_features(encoder, images, tmp_path / "cache", key)
    second, hit2 = cached_features(encoder, images, tmp_path / "cache", key)
    fresh = compute_features(encoder, images, batch_size=2)
    assert (hit1, hit2) == (False, True)
    assert first.shape == (5, 2, 2, 576) and first.dtype == np.float32
    np.testing.assert_array_equal(second, first)
    np.testing.assert_allclose(second, fresh, rtol=1e-5, atol=1e-5)
    # Other pixels or another weights file: a new cache entry, never stale features.
    _, hit3 = cached_features(encoder, images[:4], tmp_path / "cache", key)
    _, hit4 = cached_features(encoder, images, tmp_path / "cache", {**key, "weights_sha256": "x"})
    assert (hit3, hit4) == (False, False)
    assert len(list((tmp_path / "cache").glob("features-*.npy"))) == 3
    # A head trained on features, composed with the encoder, reads images directly.
    head = build_feature_model(first.shape[1:], VOCAB, units=8, embedding_dim=4)
    full = compose_full_model(head, encoder)
    caption = np.array([[START_ID, 4, 5]] * 5, np.int32)
    via_features = np.asarray(head([second, caption]))
    via_images = np.asarray(full([images.astype("float32"), caption]))
    np.testing.assert_allclose(via_images, via_features, rtol=1e-4, atol=1e-5)


def test_mut_cells_need_units_above_embedding():
    encoder = build_encoder("cnn", 32, 1, filters=4)
    with pytest.raises(UsageError, match="needs units > embedding_dim"):
        build_model(encoder, VOCAB, cell="mut2", units=8, embedding_dim=8)


def test_encoder_weights_errors(tmp_path, mobilenet_weights):
    with pytest.raises(UsageError, match="no such file"):
        build_pretrained_encoder("mobilenet_v3_small", 32, tmp_path / "none.h5", trainable=False)
    with pytest.raises(UsageError, match="does not fit efficientnet_b0"):
        build_pretrained_encoder("efficientnet_b0", 32, mobilenet_weights, trainable=False)
    with pytest.raises(UsageError, match="needs its ImageNet weights"):
        build_encoder("mobilenet_v3_small", 32, 3)


def test_tfds_coco_not_prepared_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="coco_captions") as info:
        load_splits("tfds:coco_captions", seed=0)
    assert "\n" not in str(info.value)
