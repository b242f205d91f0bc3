"""Export of a translation run: the teacher-forced model (fixed length, every quantization), the
encoder and one-step decoder models, and a NumPy + LiteRT greedy loop that reproduces the app."""

from __future__ import annotations

import json

import numpy as np
import pytest

from apps.translation.config import TranslationConfig
from apps.translation.train import train_and_evaluate
from export.__main__ import main as export_main

pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("translation_export") / "run"
    train_and_evaluate(TranslationConfig.tiny().replace(epochs=4), path)
    return path


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("translation_tflite") / "model.tflite"
    assert export_main([str(run_dir), "--format", "tflite", "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out.parent / "manifest.json").read_text(encoding="utf-8"))
    return out.parent, manifest["exports"]


def test_teacher_forced_model_exports_at_the_apps_fixed_length(run_dir, exported):
    _, exports = exported
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["config"]
    main = exports["model.tflite"]
    # The AttentionDecoder's scan cannot run at dynamic length: auto picks the app's length.
    assert main["seq_len"] == max(config["max_source_len"], config["max_target_len"] + 1)
    # ... with its loops kept over static shapes (not unrolled)
    assert "WHILE" in main["ops"]
    assert any("loops kept" in note for note in main["notes"])
    assert main["parity"]["max_abs_diff"] <= 1e-4
    assert main["parity"]["argmax_agreement"] == 1.0
    assert not [op for op in main["ops"] if op.startswith("Flex") or op == "CUSTOM"]


def test_encoder_and_decoder_step_export_with_parity(exported):
    _, exports = exported
    by_name = {entry.get("step", {}).get("name"): entry for entry in exports.values()}
    encoder, step = by_name["encoder"], by_name["decoder_step"]
    for entry in (encoder, step):
        assert entry["parity"]["max_abs_diff"] <= 1e-4
        assert not [op for op in entry["ops"] if op.startswith("Flex") or op == "CUSTOM"]
    layout = step["step"]
    assert layout["outputs"][0] == "logits" and layout["outputs"][-1] == "attention_weights"
    assert [c["input"] for c in layout["constants"]] == ["values", "keys", "source_mask"]
    assert [c["from"] for c in layout["constants"]] == [
        "encoder.tflite:values", "encoder.tflite:keys", "encoder.tflite:source_mask"]  # fmt: skip


def test_reference_loop_translates_like_the_app(run_dir, exported):
    from apps.common import decoding
    from apps.common.rundir import RunDir
    from apps.translation.decode import Translator
    from apps.translation.export_hook import parity_inputs
    from apps.translation.tokenize import END_ID, START_ID
    from apps.translation.train import load_tokenizers
    from export.__main__ import load_run_model
    from export.reference_loop import StepLoop, TFLiteFunction

    folder, _ = exported
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["config"]
    model = load_run_model(run_dir, ("apps.translation.model",))
    source, target = load_tokenizers(RunDir(run_dir, "apps.translation"))
    translator = Translator(model, source, target, max_source_len=config["max_source_len"],
                            max_target_len=config["max_target_len"])  # fmt: skip
    encoder = TFLiteFunction.from_export(folder, "encoder")
    loop = StepLoop.from_export(folder, "decoder_step")
    lengths = []
    for src, _ in parity_inputs(run_dir, config)[:6]:
        want = decoding.greedy(translator.step_fn, translator.encode_ids(src[None]),
                               np.array([START_ID]), END_ID, translator.max_target_len)[0]  # fmt: skip
        states = loop.initial_states(encoder(source_ids=src[None].astype(np.int32)))
        got = loop.greedy(START_ID, translator.max_target_len, states=states, end_id=END_ID)
        assert got == want
        assert loop.last_extras["attention_weights"].shape == (1, len(src))
        lengths.append(len(got))
    assert max(lengths) >= 2  # real decoding, not an immediate end token


@pytest.mark.parametrize("quantization", ["float16", "dynamic", "int8"])
def test_teacher_forced_model_quantizes(run_dir, quantization):
    from apps.translation.export_hook import parity_inputs, representative_inputs
    from export.__main__ import load_run_model
    from export.parity import parity_report
    from export.tflite import convert_to_tflite

    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["config"]
    model = load_run_model(run_dir, ("apps.translation.model",))
    length = max(config["max_source_len"], config["max_target_len"] + 1)
    result = convert_to_tflite(model, seq_len=length, quantization=quantization,
                               representative_inputs=representative_inputs(run_dir, config))  # fmt: skip
    assert not [op for op in result.ops if op.startswith("Flex") or op == "CUSTOM"]
    report = parity_report(model, result.content, parity_inputs(run_dir, config))
    assert report["argmax_agreement"] >= 0.9, report


def test_dynamic_length_is_refused_with_one_line(run_dir, tmp_path, capsys):
    code = export_main([str(run_dir), "--format", "tflite", "--seq-len", "dynamic",
                        "--out", str(tmp_path / "m.tflite"), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "AttentionDecoder" in err and "--seq-len N" in err
    assert not list(tmp_path.iterdir())
