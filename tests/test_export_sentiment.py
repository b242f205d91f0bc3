"""The sentiment app's export hook: real inputs, vocab.json, and the SavedModel text signature."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

pytest.importorskip("apps.sentiment.model")

from apps.common.text import WordTokenizer
from apps.sentiment.data import load_splits
from apps.sentiment.model import build_model
from export.__main__ import main
from export.manifest import read_manifest

CONFIG = {"data": "builtin:tweets", "model": "lstm", "limit": 24, "max_length": 10, "seed": 3}
TEXTS = ["I love this so much!", "worst day ever :(", "", "Meh. ok I guess…"]

FRESH = textwrap.dedent(
    """
    import json, sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("seqlayers", "apps", "export", "tuning"):
                raise ImportError(name)
    sys.meta_path.insert(0, Block())
    import tensorflow as tf
    fn = tf.saved_model.load(sys.argv[1]).signatures["serve_text"]
    print(json.dumps(fn(text=tf.constant(json.loads(sys.argv[2])))["probabilities"].numpy().tolist()))
    """
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A sentiment run dir as training writes it (untrained weights: the hook is under test)."""
    path = tmp_path_factory.mktemp("sentiment_run")
    data = load_splits(CONFIG["data"], seed=CONFIG["seed"], limit=CONFIG["limit"])
    tokenizer = WordTokenizer(200).fit(t for t, _ in data.train)
    tokenizer.save(path / "vocab.json")
    keras.utils.set_random_seed(0)
    model = build_model("lstm", tokenizer.vocab_size, 3, embed_dim=4, units=4, seed=0)
    model.save(path / "model.keras")
    meta = {
        "app": "apps.sentiment",
        "format": 1,
        "config": CONFIG,
        "labels": list(data.class_names),
    }
    (path / "config.json").write_text(json.dumps(meta))
    return path


def test_saved_model_text_signature_matches_python_tokenizer(run_dir, tmp_path):
    assert main([str(run_dir), "--format", "saved_model", "--quiet"]) == 0
    entry = read_manifest(run_dir / "export")["exports"]["saved_model"]
    assert sorted(entry["signatures"]) == ["serve_text", "serving_default"]
    assert entry["parity"]["inputs"] == "real held-out inputs"
    assert (
        entry["parity"]["examples"] == CONFIG["limit"] and entry["parity"]["max_abs_diff"] <= 1e-5
    )
    assert [t["file"] for t in entry["tables"]] == ["vocab.json"]

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", FRESH, str(run_dir / "export" / "saved_model"), json.dumps(TEXTS)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = np.array(json.loads(proc.stdout.strip().splitlines()[-1]))

    tokenizer = WordTokenizer.load(run_dir / "vocab.json")
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    ids = [tokenizer.encode(t, CONFIG["max_length"]) or [0] for t in TEXTS]
    width = max(len(i) for i in ids)
    padded = np.array([i + [0] * (width - len(i)) for i in ids], dtype="int32")
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(model(padded)), rtol=0, atol=1e-6)


def test_int8_calibration_set_reaches_max_length(run_dir):
    from apps.sentiment.export_hook import _ids, representative_inputs

    real = _ids(run_dir, CONFIG, "train")
    calibration = representative_inputs(run_dir, CONFIG)
    # training texts joined up to max_length first (a BiLSTM calibrated on short texts only
    # fails to load under XNNPACK), then every 8th; every real text kept, in order
    assert len(calibration[0]) == CONFIG["max_length"]
    assert [x for x in calibration if isinstance(x, list)] == real
    assert len(calibration) > len(real)


def test_int8_calibrates_on_training_texts_with_the_loop_kept(run_dir):
    assert main([str(run_dir), "--format", "tflite", "--quantize", "int8", "--quiet"]) == 0
    entry = read_manifest(run_dir / "export")["exports"]["model_int8.tflite"]
    assert entry["seq_len"] == "dynamic" and "WHILE" in entry["ops"]
    assert entry["inputs"] == [{"name": "token_ids", "shape": [1, -1], "dtype": "int32"}]
    assert entry["outputs"][0]["name"] == "probabilities"
    assert entry["parity"]["inputs"] == "real held-out inputs"
    assert entry["parity"]["max_abs_diff"] <= 0.05  # probabilities, int8
    assert (run_dir / "export" / "vocab.json").is_file()
