"""A real app's run through ``python -m export``: the char LM's one-step model on a phone's loop.

The run dir is written as ``apps.charlm`` writes one (config.json, vocab.json, model.keras of a
2-layer LSTM, untrained but with peaked logits so greedy has no near-ties); the exporter finds
``apps.charlm.export_hook.HOOK`` on its own. Greedy generation over the exported step file
(:mod:`export.reference_loop`, NumPy + LiteRT) must equal the app's own generator
(:func:`apps.charlm.sample.greedy_ids`) and re-running the prefix through ``model.keras``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pytest

pytest.importorskip("apps.charlm.export_hook")
from apps.charlm import export_hook
from apps.charlm.config import CharLMConfig
from apps.charlm.data import CharVocab
from apps.charlm.model import build_model, build_step_model
from apps.charlm.sample import Generator, greedy_ids, refeed_generate
from export import app_hooks
from export.__main__ import main
from export.manifest import read_manifest
from export.reference_loop import StepLoop

TEXT = "the quick brown fox jumps over the lazy dog; " * 30 + "pack my box with five dozen jugs."
PRIME, LENGTH = "the qu", 40


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("charlm_run")
    (path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    config = CharLMConfig.tiny().replace(
        data=str(path / "corpus.txt"), max_chars=None, cell="lstm", layers=2, units=12,
        embedding_dim=6, bptt=16,
    )  # fmt: skip
    vocab = CharVocab.fit(TEXT, 40)
    vocab.save(path / "vocab.json")
    keras.utils.set_random_seed(2)
    model = build_model("lstm", vocab.size, units=12, layers=2, embedding_dim=6)
    kernel, bias = model.get_layer("logits").get_weights()
    model.get_layer("logits").set_weights([kernel * 8.0, bias])  # peaked logits: no near-ties
    model.save(path / "model.keras")
    meta = {"app": "apps.charlm", "format": 1, "config": config.to_dict()}
    (path / "config.json").write_text(json.dumps(meta))
    return path


@pytest.fixture(autouse=True)
def hook(monkeypatch):
    """The app's HOOK; until it lists its step model itself, add the app's own builder."""
    if export_hook.HOOK.step_models is None:
        monkeypatch.setitem(app_hooks._REGISTRY, "apps.charlm", dataclasses.replace(
            export_hook.HOOK,
            step_models=lambda run_dir, config, model: {"step": build_step_model(model)},
            step_parity_inputs=export_hook.step_parity_inputs,
        ))  # fmt: skip
    return app_hooks.get_app_hook("apps.charlm")


def test_charlm_step_model_exports_and_loops_like_the_app(run_dir, hook):
    assert main([str(run_dir), "--format", "tflite", "--quiet", "--latency-runs", "2"]) == 0
    exports = read_manifest(run_dir / "export")["exports"]
    main_entry, step = exports["model.tflite"], exports["step.tflite"]
    assert main_entry["parity"]["inputs"] == "real held-out inputs"
    assert main_entry["parity"]["max_abs_diff"] <= 1e-4
    assert main_entry["step_models"] == ["step.tflite"]
    assert [t["file"] for t in step["tables"]] == ["vocab.json"]
    assert step["parity"]["inputs"] == "real inputs (app step_parity_inputs)"
    assert step["parity"]["max_abs_diff"] <= 1e-4 and step["parity"]["examples"] >= 8
    assert not [op for op in step["ops"] if op.startswith("Flex") or op in ("CUSTOM", "WHILE")]
    layout = step["step"]
    assert layout["token_input"] == "token" and len(layout["states"]) == 4  # 2 LSTMs: h, c
    assert all(s["shape"] == [1, 12] for s in layout["states"])

    vocab = CharVocab.load(run_dir / "vocab.json")
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    prime = vocab.encode(PRIME)
    loop = StepLoop.from_export(run_dir / "export", "step")
    states = loop.initial_states()
    for token in prime[:-1]:  # read the prime, as the app does
        _, states = loop.step_fn(np.array([token]), states)
    phone = loop.greedy(int(prime[-1]), LENGTH, states=states)

    app = greedy_ids(Generator.from_model(model, vocab), prime, LENGTH)
    assert phone == app == refeed_generate(model, prime, LENGTH)
    assert len(set(phone)) >= 3
