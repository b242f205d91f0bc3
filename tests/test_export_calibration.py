"""int8 calibration sets for fixed-length exports of post-padded inputs (export.calibration)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from export.calibration import packed_examples, with_full_length

pytest.importorskip("ai_edge_litert")


def test_packed_examples_join_consecutive_lists_and_drop_the_tail():
    packed = packed_examples([[1, 2], [3], [], [4, 5, 6], [7]], 4)
    assert [p.tolist() for p in packed] == [[1, 2, 3, 4]]
    assert packed_examples([[1, 2, 3, 4, 5]], 3)[0].tolist() == [1, 2, 3]


def test_packed_examples_join_dicts_on_their_time_axis():
    def sentence(n, start):
        return {"word_ids": np.arange(start, start + n), "char_ids": np.full((n, 3), start)}

    (packed,) = packed_examples([sentence(2, 10), sentence(3, 20)], 4)
    assert packed["word_ids"].tolist() == [10, 11, 20, 21]
    assert packed["char_ids"].shape == (4, 3)
    assert packed["char_ids"][:, 0].tolist() == [10, 10, 20, 20]


def test_with_full_length_interleaves_packed_examples_first():
    examples = [[i + 1] * 3 for i in range(8)]  # 8 examples of 3 ids
    out = with_full_length(examples, 6, every=4)
    assert [len(x) for x in out] == [6, 3, 3, 3, 3, 6, 3, 3, 3, 3]
    assert [list(x) for x in out if len(x) == 3] == examples  # every real example kept, in order
    assert with_full_length(examples, None) == examples
    with pytest.raises(ValueError, match="every"):
        with_full_length(examples, 6, every=0)


def test_bilstm_calibrated_with_packed_short_texts_loads_under_xnnpack():
    """A BiLSTM with trained-size weights, calibrated at T=20 on texts of 2-7 ids only: the
    backward layer's first steps then see zero states only, and XNNPACK refused the file
    (requantization scale > 256); with packed full-length examples it loads (convert_to_tflite
    allocates it with the default delegate) and follows Keras."""
    from apps.sentiment.model import build_model
    from export.parity import parity_report
    from export.tflite import convert_to_tflite

    keras.utils.set_random_seed(0)
    model = build_model("bilstm", 50, 3, embed_dim=8, units=8, seed=0)
    model.set_weights([w * 3.0 for w in model.get_weights()])  # trained weights are larger
    rng = np.random.default_rng(0)
    short = [rng.integers(1, 50, rng.integers(2, 8)).tolist() for _ in range(40)]
    result = convert_to_tflite(
        model, seq_len=20, quantization="int8", representative_inputs=with_full_length(short, 20)
    )
    report = parity_report(model, result.content, short[:16])
    assert report["max_abs_diff"] < 0.1  # probabilities


def test_sentiment_and_tagger_hooks_calibrate_every_step_of_their_length(tmp_path):
    from apps.tagger import export_hook as tagger_hook
    from apps.tagger.data import Vocab, load_splits

    config = {"data": "builtin:teddy", "generated": 40, "seed": 1}
    data = load_splits(config["data"], seed=1, generated=40)
    Vocab.build(data.train, max_words=500, min_count=1, max_chars=12, task="ner").save(
        tmp_path / "vocab.json"
    )
    real = tagger_hook._inputs(tmp_path, config, "train")
    assert max(len(x["word_ids"]) for x in real) < tagger_hook.SEQ_LEN  # short sentences
    calibration = tagger_hook.representative_inputs(tmp_path, config)
    full = [x for x in calibration if len(x["word_ids"]) == tagger_hook.SEQ_LEN]
    assert full and len(calibration[0]["word_ids"]) == tagger_hook.SEQ_LEN
    assert all(x["char_ids"].shape == (tagger_hook.SEQ_LEN, 12) for x in full)
    assert len(calibration) == len(real) + len(full)
