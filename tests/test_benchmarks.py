"""Smoke tests of the benchmark suite with tiny settings: record fields, ratios, files, runner.

No timing asserts: only that what is written is complete and consistent (``ratio`` = ours /
reference from the recorded figures).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

# benchmarks/ is a folder of the repository, not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import __main__ as runner
from benchmarks import backends, cells, common, roofline, scaling

RECORD_FIELDS = {"benchmark", "name", "ours", "reference", "ratio", "machine", "command"}
MACHINE_FIELDS = {"cpu", "cores", "load_average", "python", "keras", "backend"}


def tiny(cls=cells.Settings, **kw):
    base = {"units": (4,), "batch": 2, "steps": 3, "repeats": 2, "warmup": 0, "jit": False}
    base["threads"] = 0
    return cls(**{**base, **kw})


# --- common ----------------------------------------------------------------------------------
def test_summary_quartiles_and_median():
    s = common.summary([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (s["median"], s["q1"], s["q3"], s["iqr"], s["min"], s["n"]) == (
        3.0,
        2.0,
        4.0,
        2.0,
        1.0,
        5,
    )


def test_alternate_rotates_order_and_counts_samples():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    samples = common.alternate(fns, repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert all(len(samples[n][c]) == 3 for n in fns for c in common.CLOCKS)


def test_comparison_ratio_is_ours_over_reference():
    ours = {"cpu": [2.0, 4.0, 6.0], "wall": [1.0, 1.0, 1.0]}
    ref = {"cpu": [1.0, 2.0, 4.0], "wall": [2.0, 2.0, 2.0]}
    rec = common.comparison("x", "a vs b", ("a", ours), ("b", ref), "cpu", {"m": 1}, target=1.5)
    assert rec["ratio"] == pytest.approx(4.0 / 2.0)
    assert (rec["ratio_q1"], rec["ratio_q3"]) == (pytest.approx(1.75), pytest.approx(2.0))
    assert rec["meets_target"] is False and rec["m"] == 1
    assert rec["ours"]["wall_median"] == 1.0 and rec["reference"]["median"] == 2.0


def test_markdown_table_formats_cells():
    md = common.markdown_table(("a", "b"), [(1.23456, True), (None, "x")])
    assert md.splitlines() == ["| a | b |", "|---|---|", "| 1.23 | yes |", "|  | x |"]


# --- cells -----------------------------------------------------------------------------------
def test_train_flops_counts_forward_weight_and_state_gradients():
    # GRU, B=2, T=3, U=4, D=5: per step 2*B*U*(2*D*3 + 3*U*3) = 16 * (30 + 36)
    assert cells.train_flops("keras_gru", 4, 5, 2, 3) == 3 * 16 * 66
    assert cells.train_flops("mut2", 4, 4, 1, 1) == 2 * 4 * (2 * 4 * 2 + 3 * 4 * 3)


def test_needed_layers_adds_references():
    assert cells.needed_layers(["mut1", "genotype_lstm"]) == [
        "mut1", "genotype_lstm", "keras_gru", "keras_lstm"
    ]  # fmt: skip


def test_cells_run_writes_records_with_documented_fields(tmp_path):
    payload = cells.run(tiny(cells=("vanilla", "mut1")), tmp_path)
    saved = json.loads((tmp_path / "cells.json").read_text())
    assert saved["records"] == json.loads(json.dumps(payload["records"]))
    names = [r["name"] for r in saved["records"]]
    assert names == [
        "vanilla vs keras_simple_rnn, units 4",
        "vanilla vs keras_gru, units 4",
        "mut1 vs keras_gru, units 4",
    ]
    for rec in saved["records"]:
        assert RECORD_FIELDS <= rec.keys() and MACHINE_FIELDS <= rec["machine"].keys()
        assert rec["ratio"] == pytest.approx(rec["ours"]["median"] / rec["reference"]["median"])
        assert rec["ours"]["n"] == 2 and rec["ours"]["clock"] == "cpu"
    assert saved["records"][2]["target"] == 1.25
    md = (tmp_path / "cells.md").read_text()
    assert "| units | ours |" in md and "Command: `" in md and "Machine: " in md


def test_ablation_times_the_autodiff_twin(tmp_path):
    twin = cells.make_layer("mut1@autodiff", 4)
    assert not twin.uses_fused_backward(None, True)
    assert cells.make_layer("mut1", 4).uses_fused_backward(None, True)
    payload = cells.run(tiny(cells=("vanilla",), ablation=True, repeats=1))
    names = [r["name"] for r in payload["records"]]
    assert names[-1] == "vanilla vs vanilla@autodiff, units 4"
    assert cells.train_flops("vanilla@autodiff", 4, 4, 2, 3) == cells.train_flops(
        "vanilla", 4, 4, 2, 3
    )


# --- roofline --------------------------------------------------------------------------------
def test_roofline_fraction_is_achieved_over_dense_flops(tmp_path):
    settings = tiny(roofline.Settings, cells=("vanilla",), dense_size=16)
    payload = roofline.run(settings, tmp_path)
    recs = {r["ours"]["label"]: r for r in payload["records"]}
    assert set(recs) == {"vanilla", "keras_simple_rnn", "keras_gru"}
    for rec in recs.values():
        assert RECORD_FIELDS <= rec.keys()
        assert rec["ours"]["flops"] == cells.train_flops(rec["ours"]["label"], 4, 4, 2, 3)
        assert rec["reference"]["flops"] == 2 * 16**3
        achieved = rec["ours"]["flops"] / rec["ours"]["step"]["median"]
        dense = rec["reference"]["flops"] / rec["reference"]["step"]["median"]
        assert rec["ratio"] == pytest.approx(achieved / dense)
    assert recs["vanilla"]["target"] is None  # targets only at units 128 and 512
    assert (tmp_path / "roofline.md").exists()


# --- scaling ---------------------------------------------------------------------------------
def test_loglog_slope_and_verdict():
    xs = [64, 128, 256, 512]
    assert scaling.loglog_slope(xs, [3 * x**2 for x in xs]) == pytest.approx(2.0)
    assert scaling.loglog_slope(xs, [0.5 * x for x in xs]) == pytest.approx(1.0)
    assert scaling.verdict("length", 1.05).startswith("linear")
    assert scaling.verdict("units", 1.2).startswith("sub-quadratic")


def test_curve_record_growth_ratio():
    points = [{"x": x, "median": 0.001 * x} for x in (50, 100, 200, 400)]
    rec = scaling.curve_record("length", "mut1", points, {"machine": {}, "command": "c"})
    assert rec["ours"]["value"] == pytest.approx(8.0) and rec["reference"]["value"] == 8.0
    assert rec["ratio"] == pytest.approx(1.0) and rec["slope_upper"] == pytest.approx(1.0)


def test_scaling_run_writes_plot(tmp_path):
    settings = tiny(scaling.Settings, cells=("vanilla",), repeats=1, lengths=(2, 4),
                    widths=(2, 4))  # fmt: skip
    payload = scaling.run(settings, tmp_path)
    assert [(r["layer"], r["axis"]) for r in payload["records"]] == [
        ("vanilla", "length"), ("vanilla", "units")
    ]  # fmt: skip
    for rec in payload["records"]:
        assert [p["x"] for p in rec["points"]] == [2, 4] and math.isfinite(rec["slope"])
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"


# --- backends --------------------------------------------------------------------------------
def _cells_payload(times: dict[str, float]) -> dict:
    def fig(label):
        return {"label": label, "median": times[label]}

    recs = [{"units": 8, "name": f"{o} vs {r}, units 8", "ours": fig(o), "reference": fig(r),
             "ratio": times[o] / times[r]} for o, r in (("mut1", "keras_gru"),)]  # fmt: skip
    return {"records": recs, "machine": {"backend": "x"}}


def test_backends_ratio_is_jax_over_tensorflow():
    payloads = {
        "tensorflow": _cells_payload({"mut1": 2.0, "keras_gru": 4.0}),
        "jax": _cells_payload({"mut1": 3.0, "keras_gru": 2.0}),
    }
    recs = {r["layer"]: r for r in backends.records(payloads, {"machine": {}, "command": "c"})}
    assert recs["mut1"]["ratio"] == pytest.approx(1.5)
    assert recs["keras_gru"]["ratio"] == pytest.approx(0.5)
    assert recs["mut1"]["vs_keras"] == {
        "pair": "mut1 vs keras_gru, units 8", "tensorflow": 0.5, "jax": 1.5
    }  # fmt: skip


def test_backends_records_why_it_skips(tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "backend_available", lambda name: name != "jax")
    args = runner.build_parser().parse_args(["backends", "--quick"])
    assert backends.run_from_args(args, tmp_path) == 0
    saved = json.loads((tmp_path / "backends.json").read_text())
    assert saved["records"] == [] and "jax" in saved["skipped"]


def test_backends_passes_settings_to_cells():
    args = runner.build_parser().parse_args(["--units", "8,16", "--batch", "2", "--no-jit"])
    argv = backends.cells_argv(args, common.DEFAULT_OUT, quick=True)
    assert argv[:4] == ["cells", "--out", str(common.DEFAULT_OUT), "--quick"]
    assert "--units" in argv and argv[argv.index("--units") + 1] == "8,16"
    assert argv[argv.index("--batch") + 1] == "2" and "--no-jit" in argv


# --- runner ----------------------------------------------------------------------------------
def test_runner_lists_suite_aliases_and_app_scripts(capsys):
    assert runner.main(["--list"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    assert {"cells", "roofline", "scaling", "backends", "generation", "export"} <= listed
    assert {"pipelines", "sentiment_imdb", "export_latency"} <= listed
    assert "common" not in listed


def test_runner_maps_issue_names_onto_app_scripts(tmp_path):
    scripts = runner.app_scripts()
    gen = runner.script_command(runner.ALIASES["generation"], tmp_path, False, [])
    assert gen[1].endswith("export_generation.py")
    assert gen[2:] == ["--out", str(tmp_path)]  # its defaults: 200 and 1000 tokens
    quick = runner.script_command(runner.ALIASES["generation"], tmp_path, True, [])
    assert quick[2:] == ["--quick", "--out", str(tmp_path)]
    export = runner.script_command(runner.ALIASES["export"], tmp_path, True, ["--units", "8"])
    assert export[2:] == ["--quick", "--out", str(tmp_path), "--units", "8"]
    assert scripts["export_latency"].quick == ("--quick",) and scripts["export_latency"].takes_out
    pipelines = runner.script_command(runner.ALIASES["pipelines"], tmp_path, True, [])
    assert pipelines[1].endswith("pipelines_apps.py") and pipelines[2] == "--quick"
    assert scripts["music_generation"].quick == ("--quick",)
    assert scripts["memory_apps"].takes_out


def test_runner_rejects_unknown_names():
    with pytest.raises(SystemExit) as exc:
        runner.main(["nope"])
    assert exc.value.code == 2


def test_runner_runs_a_suite_benchmark(tmp_path, capsys):
    argv = ["cells", "--out", str(tmp_path), "--units", "4", "--batch", "2", "--steps", "2",
            "--repeats", "1", "--warmup", "0", "--cells", "vanilla", "--no-jit", "--threads", "0"]  # fmt: skip
    assert runner.main(argv) == 0
    saved = json.loads((tmp_path / "cells.json").read_text())
    assert [r["name"] for r in saved["records"]] == [
        "vanilla vs keras_simple_rnn, units 4", "vanilla vs keras_gru, units 4"
    ]  # fmt: skip
    assert "| units |" in capsys.readouterr().out


# --- export_apps (benchmarks/export_apps.py) -------------------------------------------------
def test_export_apps_targets_compare_with_float32():
    from benchmarks import export_apps

    def record(none, dynamic, int8, unit="%", higher=True, share=0.25):
        rows = [{"export": "none", "quantization": "none", "metric": none, "builtin": True,
                 "max_abs_diff": 1e-6, "share_of_float32": 1.0},
                {"export": "dynamic", "quantization": "dynamic", "metric": dynamic,
                 "builtin": True, "max_abs_diff": 1e-2, "share_of_float32": 0.3},
                {"export": "int8", "quantization": "int8", "metric": int8, "builtin": True,
                 "max_abs_diff": 1e-1, "share_of_float32": share}]  # fmt: skip
        metric = {"unit": unit, "higher_is_better": higher}
        return {"exports": rows, "steps": [], "errors": [], "metric": metric}

    t = export_apps.targets(record(80.0, 79.5, 78.5))
    assert t == {"builtin_only": True, "float_parity": True, "dynamic_metric": True,
                 "int8_metric": False, "int8_size": True}  # fmt: skip
    t = export_apps.targets(record(0.50, 0.505, 0.52, unit="", higher=False, share=0.4))
    assert (t["dynamic_metric"], t["int8_metric"], t["int8_size"]) == (True, False, False)


def test_export_apps_quick_trains_exports_and_scores_one_app(tmp_path):
    from benchmarks import export_apps

    argv = ["--quick", "--apps", "sentiment", "--quantizations", "none,int8",
            "--work", str(tmp_path / "runs"), "--out", str(tmp_path), "--latency-runs", "1",
            "--parity-examples", "8", "--metric-examples", "48", "--latency-rounds", "1"]  # fmt: skip
    assert export_apps.main(argv) == 0
    (rec,) = json.loads((tmp_path / "export_apps.json").read_text())["apps"]
    assert rec["budget"] == list(export_apps.QUICK_BUDGETS["sentiment"])
    assert rec["train"]["seconds"] > 0 and not rec["errors"]
    rows = {r["export"]: r for r in rec["exports"]}
    # int8 keeps the WHILE loop at dynamic length, like float32: no extra float32 row
    assert list(rows) == ["none", "int8", export_apps.PER_CHANNEL_LABEL]
    assert all(r["builtin"] and 0 < r["weight_bytes"] < r["bytes"] for r in rows.values())
    assert {rows[k]["seq_len"] for k in rows} == {"dynamic"} and "WHILE" in rows["int8"]["ops"]
    assert rows["int8"]["share_of_float32"] == rows["int8"]["bytes"] / rows["none"]["bytes"]
    # per-tensor dense scales (the default) are smaller than per-channel ones
    assert rows["int8"]["bytes"] < rows[export_apps.PER_CHANNEL_LABEL]["bytes"]
    assert rows["none"]["max_abs_diff"] <= export_apps.FLOAT_PARITY_MAX
    assert rec["metric"]["name"] == "test accuracy (48 texts)"
    assert all(0 <= r["metric"] <= 100 and 0 <= r["real_agreement"] <= 1 for r in rows.values())
    assert rec["targets"]["builtin_only"] and rec["targets"]["float_parity"]
    md = (tmp_path / "export_apps.md").read_text()
    assert "| sentiment | int8 | dynamic |" in md and "Command: `" in md and "### Targets" in md
    assert rec["keras_latency_ms"] > 0 and all(
        r["latency_vs_keras"] == r["tflite_latency_ms"] / rec["keras_latency_ms"]
        for r in rows.values()
    )
    assert "### Batch-1 latency, TFLite vs Keras" in md


def test_pipelines_apps_takes_the_apps_own_model_and_training_data(tmp_path):
    from benchmarks import pipelines_apps

    got = pipelines_apps.capture("forecast", "tiny", 3, tmp_path / "run")
    model, ds = got["model"], got["train_ds"]
    assert model.optimizer is not None  # compiled by the app, as training gets it
    x, y = next(iter(ds))
    assert tuple(x.shape[1:]) == (24, 2) and tuple(y.shape[1:]) == (6,)  # tiny: L=24, H=6
    assert x.shape[0] == 64  # the tiny preset's batch size
    assert not (tmp_path / "run" / "model.keras").exists()  # stopped before training


def test_music_generation_methods_agree_frame_for_frame(tmp_path):
    from benchmarks import music_generation

    code = music_generation.main(["--units", "16", "--lengths", "6,12", "--repeats", "1",
                                  "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    rows = json.loads((tmp_path / "music_generation.json").read_text())["rows"]
    assert len(rows) == 8 and all(r["same_frames_as_tflite_step_loop"] for r in rows)
    assert {r["method"] for r in rows} >= {"tflite step loop", "keras re-run prefix (tf.function)"}


def test_export_apps_forecast_metric_is_the_apps_own_test_mae(tmp_path):
    import keras

    from apps.forecast.config import ForecastConfig
    from apps.forecast.train import train_and_evaluate
    from benchmarks import export_apps

    run = tmp_path / "forecast"
    metrics = train_and_evaluate(ForecastConfig.tiny().replace(classical="none"), run)
    metric = export_apps.metric_forecast(run, {}, 10_000)
    model = keras.saving.load_model(run / "model.keras")
    outputs = export_apps.keras_outputs(model, metric.inputs, ["window"])
    assert len(outputs) == metrics["origins"] == metric.inputs.shape[0]
    assert metric.score(outputs) == pytest.approx(metrics["mae"], rel=1e-5)


def test_export_apps_music_metric_is_the_apps_nll_per_step(shared_data, tmp_path):
    import keras
    import numpy as np

    from apps.music import export_hook
    from apps.music.config import MusicConfig
    from apps.music.train import train_and_evaluate
    from benchmarks import export_apps
    from export.tflite import input_names

    path = shared_data / "music" / "jsb_chorales" / "jsb-chorales-quarter.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    config = MusicConfig.tiny().replace(data=str(path), limit=8, steps_per_quarter=1)
    run = tmp_path / "music"
    metrics = train_and_evaluate(config, run)
    model = keras.saving.load_model(run / "model.keras")
    # one window per piece: the windowed NLL is the app's whole-piece NLL per step
    whole = export_apps.metric_music(run, config.replace(seq_len=10_000).to_dict(), 0)
    outputs = export_apps.keras_outputs(model, whole.inputs, input_names(model))
    assert len(outputs) == metrics["pieces"] and not whole.higher
    assert whole.score(outputs) == pytest.approx(metrics["nll_per_step"], rel=1e-4)
    # the export's windows (seq_len 32): more of them, every frame scored once
    windowed = export_apps.metric_music(run, config.to_dict(), 0)
    assert len(windowed.inputs) > len(whole.inputs)
    assert sum(len(x) for x in windowed.inputs) == sum(len(x) for x in whole.inputs)
    # the exporter's parity inputs are the same test windows (its first 64)
    parity = export_hook.parity_inputs(run, config.to_dict())
    assert 0 < len(parity) <= 64 and parity[0].dtype == np.float32
    for got, want in zip(parity, windowed.inputs):
        np.testing.assert_array_equal(got, want)
    plain = export_apps.keras_outputs(model, windowed.inputs, input_names(model))
    assert windowed.score([-y for y in plain]) > windowed.score(plain)  # negated logits: worse


def test_tagger_ud_quick_applies_set_overrides_on_real_ud(shared_data, tmp_path):
    from benchmarks import tagger_ud

    ewt = shared_data / "ner" / "ud_english_ewt"
    argv = ["--quick", "--data", str(ewt), "--set", "layers=2", "--set", "word_dropout=0.2",
            "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "out")]  # fmt: skip
    assert tagger_ud.main(argv) == 0
    row = json.loads((tmp_path / "out" / "tagger_ud_quick.json").read_text())
    assert row["config"]["layers"] == 2 and row["config"]["word_dropout"] == 0.2
    assert row["tokens"] > 0 and 0.0 < row["token_accuracy"] <= 1.0
    with pytest.raises(SystemExit):
        tagger_ud.parse_args(["--set", "layers"])  # not KEY=JSON


@pytest.mark.parametrize("model", ["attention", "noattention"])
def test_translation_spa_eng_writes_its_model_s_files_with_length_rows(shared_data, tmp_path,
                                                                       model):  # fmt: skip
    from benchmarks import translation_spa_eng

    argv = ["--data", str(shared_data / "spa-eng"), "--limit", "300", "--epochs", "1",
            "--units", "8", "--embedding-dim", "8", "--beam-examples", "12", "--model", model,
            "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "out"), "--quiet"]  # fmt: skip
    assert translation_spa_eng.main(argv) == 0
    stem = "translation_spa_eng" + ("" if model == "attention" else "_noattention")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{stem}.json", f"{stem}.md"]
    row = json.loads((tmp_path / "out" / f"{stem}.json").read_text())
    assert row["config"]["model"] == model and not row["full_run"]
    buckets = row["greedy_by_source_length"]
    assert sum(b["count"] for b in buckets) == row["test_pairs_all"] > 0
    assert all(b["low"] <= b["high"] for b in buckets)
    assert [b["low"] for b in buckets] == sorted(b["low"] for b in buckets)
    assert set(row["by_beam"]) == {"1", "4"} and row["beam_subset_pairs"] == 12
    table = (tmp_path / "out" / f"{stem}.md").read_text()
    assert f"# Spanish → English (Tatoeba), {model} GRU" in table
    assert ("Target: BLEU >= 35" in table) == (model == "attention")
    assert table.count("\n| ") >= len(buckets) + 2 + 2  # beam table and length table rows


def test_units_for_params_picks_the_size_nearest_the_budget():
    from benchmarks.common import units_for_params

    assert units_for_params(lambda u: 4 * u * u, 400) == (10, 400)
    assert units_for_params(lambda u: 4 * u * u, 430) == (10, 400)  # 10 -> 400, 11 -> 484
    assert units_for_params(lambda u: 4 * u * u, 460) == (11, 484)
    assert units_for_params(lambda u: 100 * u, 1) == (1, 100)


def test_charlm_cells_matches_parameter_counts_on_real_shakespeare(shared_data, tmp_path):
    from benchmarks import charlm_cells

    text = shared_data / "tinyshakespeare" / "input.txt"
    argv = ["--data", str(text), "--cells", "lstm,vanilla,mut1", "--units", "16", "--epochs",
            "1", "--max-chars", "40000", "--bptt", "20", "--batch-size", "8", "--out",
            str(tmp_path)]  # fmt: skip
    assert charlm_cells.main(argv) == 0
    payload = json.loads((tmp_path / "charlm_cells.json").read_text())
    rows = {r["cell"]: r for r in payload["rows"]}
    assert list(rows) == ["lstm", "vanilla", "mut1"]
    budget = payload["params_target"]
    assert rows["lstm"]["units"] == 16 and rows["lstm"]["params"] == budget
    assert rows["vanilla"]["units"] > 16  # a plain tanh RNN needs more units for the budget
    for row in rows.values():
        assert abs(row["params"] - budget) <= 0.05 * budget
        assert 0.0 < row["val_nats_per_char"] < 5.0
    assert "| mut1 |" in (tmp_path / "charlm_cells.md").read_text()


def test_captioning_digits_sorts_wrong_captions_by_kind():
    from apps.captioning.scenes import Scene, caption_for
    from benchmarks.captioning_digits import caption_digits, classify, error_breakdown

    assert caption_digits("three digits: four, one and nine") == [4, 1, 9]
    assert caption_digits("a seven above an eight") == [7, 8]
    assert classify([4, 1, 9, 2], [4, 9, 1, 2]) == "order"
    assert classify([4, 1, 9], [4, 1, 1]) == "misread"
    assert classify([4, 1, 9], [4, 1]) == "other"
    scenes = [Scene(None, caption_for("row3", d), d, (), ()) for d in [(4, 1, 9), (2, 3, 5)]]
    scenes.append(Scene(None, caption_for("left_of", (7, 8)), (7, 8), (), ()))
    generated = ["three digits: four, nine and one", "three digits: two, three and five",
                 "a seven to the left of a three"]  # fmt: skip
    out = error_breakdown(scenes, generated)
    assert out["kinds"] == {"order": 1, "misread": 1, "other": 0}
    assert out["by_digits"] == {2: [1, 1], 3: [1, 2]}


def test_captioning_digits_quick_run_writes_its_table(tmp_path):
    from benchmarks import captioning_digits

    argv = ["--seeds", "3", "--scenes", "120", "--epochs", "1", "--out", str(tmp_path)]
    assert captioning_digits.main(argv) == 0
    payload = json.loads((tmp_path / "captioning_digits.json").read_text())
    (row,) = payload["rows"]
    assert row["seed"] == 3 and row["test_scenes"] == 24 and payload["config"]["epochs"] == 1
    wrong = sum(w for w, _ in row["by_digits"].values())
    assert sum(row["kinds"].values()) == wrong
    assert wrong == round((1 - row["exact_caption_accuracy"]) * row["test_scenes"])
    assert "| 3 |" in (tmp_path / "captioning_digits.md").read_text()


def test_music_jsb_ensemble_row_on_real_jsb(shared_data, tmp_path):
    from benchmarks import music_jsb

    path = shared_data / "music" / "jsb_chorales" / "jsb-chorales-quarter.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    argv = ["--data", str(path), "--cells", "gru,vanilla", "--params", "3000", "--epochs", "1",
            "--patience", "1", "--ensemble", "--out", str(tmp_path), "--quiet"]  # fmt: skip
    assert music_jsb.main(argv) == 0
    rows = json.loads((tmp_path / "music_jsb-chorales-quarter.json").read_text())["rows"]
    assert [r["cell"] for r in rows] == ["gru", "vanilla", "ensemble (gru+vanilla)"]
    members, ensemble = rows[:2], rows[2]
    assert ensemble["params"] == sum(r["params"] for r in members)
    assert ensemble["test_nll_per_step"] < sum(r["test_nll_per_step"] for r in members) / 2
    table = (tmp_path / "music_jsb-chorales-quarter.md").read_text()
    assert "| ensemble (gru+vanilla) |" in table
