"""SavedModel export: named signatures, and a fresh process without rnnsuite gets the same outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf

from export.savedmodel import TextSignature, describe_signatures, export_saved_model

WORDS = ["good", "bad", "film", "plot"]  # ids 2..5; 0 padding, 1 unknown

# Runs in a fresh interpreter, cwd elsewhere, PYTHONPATH cleared, rnnsuite imports blocked.
FRESH = textwrap.dedent(
    """
    import json, sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("seqlayers", "apps", "export", "tuning"):
                raise ImportError("rnnsuite is not importable here: " + name)
    sys.meta_path.insert(0, Block())
    import numpy as np, tensorflow as tf
    ids = tf.constant(np.array(json.loads(sys.argv[1]), dtype="int32"))
    texts = tf.constant(json.loads(sys.argv[2]))
    out = {}
    for directory in sys.argv[3:]:
        signatures = tf.saved_model.load(directory).signatures
        out[directory] = {
            "ids": signatures["serving_default"](token_ids=ids)["logits"].numpy().tolist(),
            "text": signatures["serve_text"](text=texts)["logits"].numpy().tolist(),
        }
    out["rnnsuite_modules"] = [m for m in sys.modules if m.split(".")[0] in ("seqlayers", "apps", "export")]
    print(json.dumps(out))
    """
)


def _classifier(recurrent: keras.layers.Layer) -> keras.Model:
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(len(WORDS) + 2, 6, mask_zero=True)(ids)
    return keras.Model(ids, keras.layers.Dense(3, name="logits")(recurrent(h)))


def _text_signature() -> TextSignature:
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(WORDS), tf.range(2, len(WORDS) + 2, dtype=tf.int64)
        ),
        default_value=1,
    )

    def text_to_ids(text):
        tokens = tf.strings.split(tf.strings.lower(text))
        return tf.cast(table.lookup(tokens), tf.int32).to_tensor(0)

    return TextSignature(text_to_ids, resources=[table])


def _run_fresh(tmp_path, directories, ids, texts):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", FRESH, json.dumps(ids.tolist()), json.dumps(texts), *map(str, directories)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


MODELS = {
    "bilstm": lambda: keras.layers.Bidirectional(keras.layers.LSTM(4)),
    "genotype": lambda: __import__("seqlayers").GenotypeRNN(6, "mut1"),
}


def test_fresh_process_without_rnnsuite_gives_identical_outputs(tmp_path):
    ids = np.array([[2, 4, 3, 0, 0], [5, 1, 2, 3, 4], [3, 0, 0, 0, 0]], dtype="int32")
    texts = ["GOOD film bad", "plot twist good bad film", "bad"]  # tokenise to the ids above
    models, wants = {}, {}
    for kind, recurrent in MODELS.items():
        keras.utils.set_random_seed(2)
        model = _classifier(recurrent())
        directory = tmp_path / kind
        signatures = export_saved_model(model, directory, text_signature=_text_signature())
        assert signatures == {
            "serve_text": {
                "inputs": [{"name": "text", "shape": [-1], "dtype": "string"}],
                "outputs": [{"name": "logits", "shape": [-1, 3], "dtype": "float32"}],
            },
            "serving_default": {
                "inputs": [{"name": "token_ids", "shape": [-1, -1], "dtype": "int32"}],
                "outputs": [{"name": "logits", "shape": [-1, 3], "dtype": "float32"}],
            },
        }
        models[kind] = directory
        wants[str(directory)] = keras.ops.convert_to_numpy(model(ids))
    fresh = _run_fresh(tmp_path, list(models.values()), ids, texts)
    assert fresh.pop("rnnsuite_modules") == []
    assert set(fresh) == set(wants)
    for directory, want in wants.items():
        np.testing.assert_allclose(np.array(fresh[directory]["ids"]), want, rtol=0, atol=1e-6)
        np.testing.assert_allclose(np.array(fresh[directory]["text"]), want, rtol=0, atol=1e-6)


def test_without_text_signature_only_serving_default(tmp_path):
    keras.utils.set_random_seed(3)
    model = _classifier(keras.layers.GRU(4))
    export_saved_model(model, tmp_path / "sm")
    assert list(describe_signatures(tmp_path / "sm")) == ["serving_default"]
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    ids = np.array([[2, 3, 4, 5, 2, 3, 0]], dtype="int32")  # any length, any batch
    got = loaded.signatures["serving_default"](token_ids=tf.constant(ids))["logits"].numpy()
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(model(ids)), rtol=0, atol=1e-6)
