"""App hook discovery (``apps.<app>.export_hook.HOOK``) and ``python -m export`` with step models.

A fake app ``apps.fakegen`` is planted in ``sys.modules`` (package + ``export_hook`` module):
the exporter must find its ``HOOK`` from ``config.json``'s ``"app"`` alone, write the
generator's one-step model beside ``model.tflite`` with its loop layout in ``manifest.json``,
and the reference loop over the written files must generate what Keras generates.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import keras
import numpy as np
import pytest

from export import app_hooks
from export.__main__ import main
from export.app_hooks import AppHook, discover_app_hook, get_app_hook
from export.manifest import read_manifest
from export.reference_loop import StepLoop

pytest.importorskip("seqlayers")
from test_export_steps import GENERATED, char_lm, real_step_inputs, refeed_greedy, step_model

APP = "apps.fakegen"


def _ids(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 11, (n, 6)).astype("int32")


def plant_app(monkeypatch, name: str, hook: object | None = None, **attrs) -> types.ModuleType:
    """``apps.<name>`` and ``apps.<name>.export_hook`` (with ``HOOK = hook``) in sys.modules."""
    package = types.ModuleType(f"apps.{name}")
    package.__path__ = []  # a package, so that importing the submodule is legal
    module = types.ModuleType(f"apps.{name}.export_hook")
    if hook is not None:
        module.HOOK = hook
    for key, value in attrs.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, f"apps.{name}", package)
    monkeypatch.setitem(sys.modules, f"apps.{name}.export_hook", module)
    return module


def generator_hook(**changes) -> AppHook:
    fields = {
        "parity_inputs": lambda run_dir, config: _ids(8, seed=1),
        "step_models": lambda run_dir, config, model: {"step": step_model(model)},
        "step_parity_inputs": lambda run_dir, config, model: real_step_inputs(
            step_model(model), [1, 5, 2, 8, 8, 3]
        ),
    }
    fields.update(changes)
    return AppHook(**fields)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A generator's run dir: the sequence model ``ids -> logits (B, T, V)``."""
    path = tmp_path_factory.mktemp("fakegen_run")
    char_lm("gru").save(path / "model.keras")
    (path / "config.json").write_text(json.dumps({"app": APP, "format": 1, "config": {}}))
    return path


def _run(run_dir: Path, *extra: str) -> int:
    return main([str(run_dir), "--format", "tflite", "--quiet", "--latency-runs", "2", *extra])


# ------------------------------------------------------------------------------- discovery
def test_sentiment_hook_lives_in_the_app_and_is_discovered():
    pytest.importorskip("apps.sentiment.model")
    from apps.sentiment import export_hook

    assert get_app_hook("apps.sentiment") is export_hook.HOOK
    assert get_app_hook("sentiment") is export_hook.HOOK
    assert export_hook.HOOK.text_signature is not None
    assert export_hook.HOOK.default_seq_len({"max_length": 40}) == 40
    assert "apps.sentiment" not in app_hooks.registered_apps()  # no hard-coded registration


def test_discovery_order_and_absent_hooks(monkeypatch):
    hook = AppHook(default_seq_len=lambda config: 7)
    plant_app(monkeypatch, "fakeone", hook)
    assert get_app_hook("apps.fakeone") is hook and get_app_hook("fakeone") is hook
    registered = AppHook(default_seq_len=lambda config: 9)
    monkeypatch.setitem(app_hooks._REGISTRY, "apps.fakeone", registered)
    assert get_app_hook("fakeone") is registered  # a registered hook wins

    plant_app(monkeypatch, "nohook")  # an export_hook module without HOOK
    assert get_app_hook("apps.nohook") == AppHook()
    assert discover_app_hook("apps.no_such_app_here") is None
    assert get_app_hook("apps.no_such_app_here") == AppHook()
    assert get_app_hook("../etc") == AppHook() and get_app_hook(None) == AppHook()
    assert discover_app_hook("apps.common") is None  # a package without export_hook


def test_broken_hooks_are_errors_not_silence(monkeypatch):
    plant_app(monkeypatch, "badhook", hook=None, HOOK={"step_models": None})
    with pytest.raises(TypeError, match="must be an export.app_hooks.AppHook"):
        get_app_hook("apps.badhook")

    package = types.ModuleType("apps.brokenhook")
    package.__path__ = []
    monkeypatch.setitem(sys.modules, "apps.brokenhook", package)

    def find_spec(name, path=None, target=None):  # the hook module imports a missing package
        if name == "apps.brokenhook.export_hook":
            raise ModuleNotFoundError(
                "No module named 'missing_dependency'", name="missing_dependency"
            )

    finder = types.SimpleNamespace(find_spec=find_spec)
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    with pytest.raises(ModuleNotFoundError, match="missing_dependency"):
        get_app_hook("apps.brokenhook")


# ------------------------------------------------------------------------ CLI step models
def test_cli_writes_step_model_with_layout_and_the_loop_matches_keras(run_dir, monkeypatch, capsys):
    plant_app(monkeypatch, "fakegen", generator_hook())
    assert _run(run_dir) == 0
    out = capsys.readouterr().out
    assert "model.tflite" in out and "step model 'step': token -> next_logits" in out

    exports = read_manifest(run_dir / "export")["exports"]
    assert exports["model.tflite"]["step_models"] == ["step.tflite"]
    entry = exports["step.tflite"]
    assert entry["bytes"] == (run_dir / "export" / "step.tflite").stat().st_size
    assert entry["quantization"] == "none" and entry["batch_size"] == 1 and entry["seq_len"] == 1
    assert not [op for op in entry["ops"] if op.startswith("Flex") or op in ("CUSTOM", "WHILE")]
    assert entry["parity"]["max_abs_diff"] <= 1e-4 and entry["parity"]["examples"] == 6
    assert entry["parity"]["inputs"] == "real inputs (app step_parity_inputs)"
    step = entry["step"]
    assert step["inputs"] == ["token", "state_0"]
    assert step["outputs"] == ["next_logits", "new_state_0"]
    assert step["states"] == [{"input": "state_0", "output": "new_state_0", "shape": [1, 8],
                               "dtype": "float32", "initial": "zeros"}]  # fmt: skip
    sig = entry["signatures"]["serving_default"]
    assert {i["name"]: i["shape"] for i in sig["inputs"]} == {"token": [1, 1], "state_0": [1, 8]}

    model = keras.saving.load_model(run_dir / "model.keras")
    ids = StepLoop.from_export(run_dir / "export", "step").greedy(1, GENERATED)
    assert ids == refeed_greedy(model, 1, GENERATED)


def test_cli_step_models_follow_weight_quantization_and_can_be_skipped(run_dir, monkeypatch):
    plant_app(monkeypatch, "fakegen", generator_hook())
    assert _run(run_dir, "--quantize", "float16") == 0
    exports = read_manifest(run_dir / "export")["exports"]
    entry = exports["step_float16.tflite"]
    assert entry["quantization"] == "float16" and entry["parity"]["max_abs_diff"] <= 0.05
    assert exports["model_float16.tflite"]["step_models"] == ["step_float16.tflite"]

    out = run_dir / "skip" / "model.tflite"
    assert _run(run_dir, "--no-step-models", "--out", str(out)) == 0
    assert sorted(p.name for p in out.parent.glob("*.tflite")) == ["model.tflite"]
    assert "step_models" not in read_manifest(out.parent)["exports"]["model.tflite"]


def test_run_once_models_get_the_models_inputs_and_others_synthetic(run_dir, monkeypatch):
    """No step_parity_inputs: the loop model gets synthetic inputs, a run-once model whose
    inputs are the main model's gets the main model's real parity inputs."""

    def models(run_dir, config, model):
        prefix = keras.Model(model.inputs[0], model.get_layer("rnn").output, name="prefix")
        return {"prefix": prefix, "step": step_model(model)}

    plant_app(monkeypatch, "fakegen", generator_hook(step_models=models, step_parity_inputs=None))
    out = run_dir / "once" / "model.tflite"
    assert _run(run_dir, "--out", str(out)) == 0
    exports = read_manifest(out.parent)["exports"]
    assert exports["model.tflite"]["step_models"] == ["prefix.tflite", "step.tflite"]
    prefix, step = exports["prefix.tflite"], exports["step.tflite"]
    assert prefix["step"]["role"] == "run_once" and prefix["step"]["inputs"] == ["ids"]
    assert prefix["parity"]["inputs"].startswith("the real parity inputs of the model")
    assert prefix["parity"]["examples"] == 8 and prefix["parity"]["max_abs_diff"] <= 1e-4
    assert (
        step["parity"]["inputs"].startswith("synthetic") and step["parity"]["max_abs_diff"] <= 1e-4
    )


# --------------------------------------------------------------------------- bad run dirs
def test_app_without_hook_exports_the_bare_model(run_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "model.keras").write_bytes((run_dir / "model.keras").read_bytes())
    (bare / "config.json").write_text(json.dumps({"app": "apps.no_such_app_here", "config": {}}))
    assert _run(bare) == 0
    exports = read_manifest(bare / "export")["exports"]
    assert list(exports) == ["model.tflite"]
    assert exports["model.tflite"]["parity"]["inputs"].startswith("synthetic")


@pytest.fixture
def classifier_run(tmp_path) -> Path:
    """A classifier's run dir whose config.json names the generator app (the wrong app)."""
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    h = keras.layers.GRU(4)(keras.layers.Embedding(11, 4)(ids))
    keras.Model(ids, keras.layers.Dense(2)(h)).save(tmp_path / "model.keras")
    (tmp_path / "config.json").write_text(json.dumps({"app": APP, "config": {}}))
    return tmp_path


@pytest.mark.parametrize(
    "hook, message",
    [
        (generator_hook(), "cannot build its step models from this model.keras"),
        (
            generator_hook(parity_inputs=lambda r, c: np.zeros((4, 6, 3), "float32")),
            "parity: the inputs of app apps.fakegen do not fit this model",
        ),
    ],
    ids=["step_models", "parity_inputs"],
)
def test_wrong_app_exits_2_with_one_line(classifier_run, monkeypatch, capsys, hook, message):
    plant_app(monkeypatch, "fakegen", hook)
    assert _run(classifier_run) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert "does config.json name the app that trained this model.keras?" in err[0]
    assert not (classifier_run / "export").exists()  # nothing half-exported


def test_truncated_model_of_a_hooked_app_exits_2(run_dir, tmp_path, monkeypatch, capsys):
    plant_app(monkeypatch, "fakegen", generator_hook())
    data = (run_dir / "model.keras").read_bytes()
    (tmp_path / "model.keras").write_bytes(data[: len(data) // 3])
    (tmp_path / "config.json").write_text(json.dumps({"app": APP, "config": {}}))
    assert _run(tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "truncated" in err[0], err
    assert not (tmp_path / "export").exists()
