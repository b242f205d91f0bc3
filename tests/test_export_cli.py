"""``python -m export``: run dir in, export + manifest.json out; one-line errors with exit 2."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from export import app_hooks
from export.__main__ import main
from export.manifest import add_to_manifest, read_manifest

APP = "apps.export_cli_test"
T = 6


def _ids(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 20, (n, T)).astype("int32")
    for row, length in zip(x, rng.integers(2, T + 1, n)):
        row[length:] = 0
    return x


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run dir like an app writes: config.json naming the app, vocab.json, model.keras."""
    keras.utils.set_random_seed(4)
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(20, 6, mask_zero=True)(ids)
    h = keras.layers.GRU(8)(h)
    model = keras.Model(ids, keras.layers.Dense(2, name="logits")(h))
    x = _ids(128, seed=0)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, x[:, 0] % 2, epochs=6, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("run")
    model.save(path / "model.keras")
    (path / "config.json").write_text(
        json.dumps({"app": APP, "format": 1, "config": {"max_length": T}})
    )
    (path / "vocab.json").write_text(json.dumps({"vocabulary": ["", "[UNK]"]}))
    return path


@pytest.fixture(autouse=True)
def hook(monkeypatch):
    monkeypatch.setitem(
        app_hooks._REGISTRY,
        APP,
        app_hooks.AppHook(
            representative_inputs=lambda run_dir, config: _ids(64, seed=0),
            parity_inputs=lambda run_dir, config: _ids(32, seed=1),
            tables=lambda run_dir, config: [{"path": run_dir / "vocab.json", "role": "ids"}],
            default_seq_len=lambda config: config["max_length"],
        ),
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tflite_float_export_and_manifest(run_dir, capsys):
    assert main([str(run_dir), "--format", "tflite", "--quiet", "--latency-runs", "3"]) == 0
    out = capsys.readouterr().out
    assert "model.tflite" in out and "ops (all builtin)" in out
    target = run_dir / "export" / "model.tflite"
    entry = read_manifest(run_dir / "export")["exports"]["model.tflite"]
    assert entry["sha256"] == _sha(target) and entry["bytes"] == target.stat().st_size
    assert entry["format"] == "tflite" and entry["quantization"] == "none"
    assert entry["seq_len"] == "dynamic" and entry["batch_size"] == 1
    assert entry["inputs"] == [{"name": "token_ids", "shape": [1, -1], "dtype": "int32"}]
    assert entry["outputs"] == [{"name": "logits", "shape": [1, 2], "dtype": "float32"}]
    assert "WHILE" in entry["ops"] and not any(op.startswith("Flex") for op in entry["ops"])
    assert entry["parity"]["max_abs_diff"] <= 1e-4 and entry["parity"]["examples"] == 32
    assert entry["parity"]["inputs"] == "real held-out inputs"
    assert entry["latency_ms"]["median"] > 0 and entry["latency_ms"]["runs"] == 3
    assert entry["tables"] == [
        {"file": "vocab.json", "sha256": _sha(run_dir / "vocab.json"), "role": "ids"}
    ]
    assert (run_dir / "export" / "vocab.json").read_bytes() == (run_dir / "vocab.json").read_bytes()
    assert entry["source"]["model_sha256"] == _sha(run_dir / "model.keras")
    assert entry["source"]["app"] == APP


def test_int8_keeps_the_while_loop_at_dynamic_length(run_dir):
    assert main([str(run_dir), "--format", "tflite", "--quantize", "int8", "--quiet"]) == 0
    entry = read_manifest(run_dir / "export")["exports"]["model_int8.tflite"]
    assert entry["seq_len"] == "dynamic" and entry["inputs"][0]["shape"] == [1, -1]
    assert {"WHILE", "QUANTIZE", "DEQUANTIZE"} <= set(entry["ops"])
    assert entry["parity"]["argmax_agreement"] >= 0.9
    assert entry["parity"]["inputs"] == "real held-out inputs"


@pytest.mark.parametrize("unroll", [[], ["--no-unroll"]], ids=["unrolled", "loops"])
def test_int8_at_a_fixed_length(run_dir, unroll):
    argv = [str(run_dir), "--format", "tflite", "--quantize", "int8", "--seq-len", str(T)]
    assert main([*argv, *unroll, "--quiet"]) == 0
    entry = read_manifest(run_dir / "export")["exports"][f"model_int8_T{T}.tflite"]
    assert entry["seq_len"] == T and entry["inputs"][0]["shape"] == [1, T]
    assert ("WHILE" in entry["ops"]) == bool(unroll)
    assert any(("loops kept" if unroll else "unrolled") in note for note in entry["notes"])
    assert entry["parity"]["argmax_agreement"] >= 0.9


def test_saved_model_export(run_dir):
    assert main([str(run_dir), "--format", "saved_model", "--quiet"]) == 0
    entry = read_manifest(run_dir / "export")["exports"]["saved_model"]
    assert entry["format"] == "saved_model" and entry["batch_size"] == "dynamic"
    assert entry["signatures"]["serving_default"]["inputs"][0]["shape"] == [-1, -1]
    assert entry["parity"]["max_abs_diff"] <= 1e-5
    assert entry["latency_ms"]["median"] > 0
    assert len(entry["sha256"]) == 64 and entry["bytes"] > 0
    assert not list((run_dir / "export").glob(".tmp-*"))  # atomic: no leftovers


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{missing}", "--format", "tflite"], "no such run dir"),
        (["{run}", "--format", "saved_model", "--quantize", "int8"], "tflite only"),
        (["{run}", "--format", "saved_model", "--seq-len", "8"], "tflite only"),
        (["{run}", "--format", "saved_model", "--no-unroll"], "tflite only"),
        (["{run}", "--format", "onnx"], "invalid choice"),
        (["{nomodel}", "--format", "tflite"], "no model.keras"),
        (["{truncated}", "--format", "tflite"], "truncated"),
    ],
)
def test_bad_usage_exits_2_with_one_line(run_dir, tmp_path, capsys, argv, message):
    nomodel = tmp_path / "nomodel"
    nomodel.mkdir()
    (nomodel / "config.json").write_text(json.dumps({"app": APP, "config": {}}))
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "config.json").write_text(json.dumps({"app": APP, "config": {}}))
    data = (run_dir / "model.keras").read_bytes()
    (truncated / "model.keras").write_bytes(data[: len(data) // 2])
    paths = {
        "missing": tmp_path / "missing",
        "run": run_dir,
        "nomodel": nomodel,
        "truncated": truncated,
    }
    assert main([a.format(**paths) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_module_entry_point_one_line_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "export", str(tmp_path / "nope"), "--format", "tflite"],
        capture_output=True, text=True, timeout=120, check=False, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: RUN_DIR: no such run dir: {tmp_path / 'nope'}"


def test_manifest_keeps_entries_of_existing_files_only(tmp_path):
    (tmp_path / "a.tflite").write_bytes(b"a")
    add_to_manifest(tmp_path, {"file": "a.tflite", "x": 1})
    add_to_manifest(tmp_path, {"file": "b.tflite", "x": 2})  # b was never written
    (tmp_path / "b.tflite").write_bytes(b"b")
    add_to_manifest(tmp_path, {"file": "b.tflite", "x": 3})
    assert read_manifest(tmp_path)["exports"] == {
        "a.tflite": {"file": "a.tflite", "x": 1},
        "b.tflite": {"file": "b.tflite", "x": 3},
    }
    (tmp_path / "a.tflite").unlink()
    add_to_manifest(tmp_path, {"file": "b.tflite", "x": 4})
    assert list(read_manifest(tmp_path)["exports"]) == ["b.tflite"]


def test_an_unallocatable_export_exits_2_with_one_line(run_dir, tmp_path, capsys, monkeypatch):
    import export.tflite
    from export.ops import ModelAllocationError

    def refuse(*args, **kwargs):
        raise ModelAllocationError("the LiteRT interpreter cannot allocate the model: XNNPACK")

    monkeypatch.setattr(export.tflite, "convert_to_tflite", refuse)
    out = tmp_path / "m.tflite"
    assert main([str(run_dir), "--format", "tflite", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot allocate the model" in err[0], err
    assert not out.exists()
