"""End to end: a 3-trial cell search on a tiny task, its outputs, reuse, export, hparams."""

from __future__ import annotations

import csv
import json
import math

import keras
import keras_tuner
import numpy as np
import pytest

import seqlayers
from apps.common.cells import recurrent_layer
from seqlayers.genotype import CellGenotype
from seqlayers.genotype_presets import get_preset
from tuning.budget import size_for_budget
from tuning.cell_search import collect_records, make_study, run_cell_search
from tuning.config import CellSearchConfig, HparamSearchConfig
from tuning.encoding import GenotypeSpace
from tuning.tasks import block_weight_count, make_task

CONFIG = CellSearchConfig.tiny().replace(strategies=("evolution", "random", "lstm"), trials=3)


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cells")
    lines: list[str] = []
    summary = run_cell_search(CONFIG, run_dir, log=lines.append)
    with open(run_dir / "leaderboard.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return run_dir, summary, rows, lines


def test_three_trial_search_end_to_end(search):
    run_dir, summary, rows, lines = search
    assert [(r["strategy"], r["trial"]) for r in rows] == [
        (s, str(k)) for s in ("evolution", "random", "lstm") for k in range(3)
    ]
    assert all(r["status"] == "COMPLETED" for r in rows)
    # evolution starts from the presets, the baseline is the LSTM at tuned learning rates
    evo = [r for r in rows if r["strategy"] == "evolution"]
    assert [r["fingerprint"] for r in evo] == [
        get_preset(n).fingerprint()
        for n in ("lstm", "gru", "mut3")  # mut1/2: bare x, left out
    ]
    lstm = [r for r in rows if r["strategy"] == "lstm"]
    assert {r["fingerprint"] for r in lstm} == {get_preset("lstm").fingerprint()}
    assert len({r["learning_rate"] for r in lstm}) == 3
    assert all(0.005 / 4 <= float(r["learning_rate"]) <= 0.005 * 4 for r in lstm)
    # every candidate sized to the same budget: the most units that fit
    space = GenotypeSpace(CONFIG.max_nodes)
    random_rows = [r for r in rows if r["strategy"] == "random"]
    assert len({r["fingerprint"] for r in random_rows}) == 3
    for r in evo[:1] + lstm[:1]:
        sizing = size_for_budget(get_preset("lstm"), CONFIG.embedding_dim, CONFIG.param_budget)
        assert (int(r["units"]), int(r["params"])) == (sizing.units, sizing.params)
    assert all(int(r["params"]) <= CONFIG.param_budget for r in rows)
    # the summary's best is the best row, and its genotype is on disk
    metrics = [float(r["metric"]) for r in rows]
    assert math.isclose(summary["best"]["metric"], min(metrics), rel_tol=1e-5)
    best = CellGenotype.load(run_dir / "best_genotype.json").validate()
    assert best.fingerprint() == summary["best"]["fingerprint"]
    assert space.decode(space.encode(best)).fingerprint() == best.fingerprint()
    png = (run_dir / "best_genotype.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 200_000
    board = (run_dir / "leaderboard.md").read_text(encoding="utf-8")
    assert "## Best per strategy" in board and summary["best"]["fingerprint"] in board
    for strategy in ("evolution", "random", "lstm"):
        assert (run_dir / f"best_{strategy}.json").is_file()
    timing = json.loads((run_dir / "timing.json").read_text())
    assert sum(t["trials_trained"] for t in timing.values()) == 9
    assert all(t["trial_seconds"] <= t["search_seconds"] for t in timing.values())
    assert len([line for line in lines if line.startswith("[")]) == 9


def test_best_genotype_is_usable_by_apps(search):
    run_dir, *_ = search
    layer = recurrent_layer(f"genotype:{run_dir / 'best_genotype.json'}", 5, return_sequences=True)
    assert isinstance(layer, seqlayers.GenotypeRNN)
    assert tuple(layer(np.zeros((2, 3, 6), "float32")).shape) == (2, 3, 5)


def test_rerun_resumes_without_training_again(search):
    run_dir, summary, rows, _ = search
    lines: list[str] = []
    again = run_cell_search(CONFIG, run_dir, log=lines.append)
    assert not [line for line in lines if line.startswith("[")]  # no trial ran
    assert again["best"] == summary["best"]
    with open(run_dir / "leaderboard.csv", newline="", encoding="utf-8") as f:
        assert list(csv.DictReader(f)) == rows


def test_duplicates_reuse_the_score(search):
    run_dir, _, rows, _ = search
    task = make_task(
        "charlm",
        None,
        seq_len=CONFIG.seq_len,
        max_chars=CONFIG.max_chars,
        embedding_dim=CONFIG.embedding_dim,
        limit=None,
        seed=CONFIG.seed,
    )
    space = GenotypeSpace(CONFIG.max_nodes)
    tuner = make_study(
        "evolution",
        0,
        CONFIG,
        task,
        type("R", (), {"path": run_dir})(),
        space=space,
        seeds=[],
        cache={},
        log=None,
        distributed=None,
    )
    assert len(tuner.oracle.trials) == 3  # reloaded from the run dir
    done = tuner.oracle.trials["1"]  # the GRU seed
    trial = keras_tuner.engine.trial.Trial(done.hyperparameters.copy(), trial_id="dup")
    metrics = tuner.run_trial(trial)
    assert metrics["reused"] == 1.0 and tuner.trained == 0
    assert math.isclose(metrics["val_bpc"], float(rows[1]["metric"]), rel_tol=1e-5)
    records = collect_records(tuner)
    assert [r.cell for r in records] == ["lstm", "gru", "mut3"]


def test_task_model_counts_the_budget():
    task = make_task("charlm", None, seq_len=8, max_chars=2000, embedding_dim=6, limit=None, seed=0)
    for name in ("lstm", "mut2"):
        sizing = size_for_budget(get_preset(name), 6, 600)
        model = task.build(get_preset(name), sizing)
        assert block_weight_count(model) == sizing.params


def test_best_genotype_exports_to_builtin_tflite(search):
    from export.parity import parity
    from export.tflite import convert_to_tflite

    run_dir, *_ = search
    genotype = CellGenotype.load(run_dir / "best_genotype.json")
    ids = keras.Input((None,), dtype="int32", name="ids")
    x = keras.layers.Embedding(20, 6)(ids)
    if genotype.bare_x_nodes:
        x = keras.layers.Dense(5, use_bias=False)(x)
    h = seqlayers.GenotypeRNN(5, genotype, return_sequences=True)(x)
    model = keras.Model(ids, keras.layers.Dense(20)(h))
    result = convert_to_tflite(model, seq_len=None)
    assert result.ops and not any(op.startswith("Flex") for op in result.ops)
    inputs = np.random.default_rng(0).integers(1, 20, size=(3, 7)).astype("int32")
    assert parity(model, result.content, inputs) < 1e-4


def test_jsb_task_on_real_data(shared_data):
    from tuning.tasks import read_rolls

    path = shared_data / "music" / "jsb_chorales" / "jsb-chorales-quarter.json"
    task = make_task("jsb", str(path), seq_len=16, max_chars=100, embedding_dim=1, limit=4, seed=0)
    train, valid, _ = read_rolls(path, limit=4)
    x, y, w = task.train
    assert x.shape[1:] == (16, 88) and set(np.unique(y)) <= {0.0, 1.0}
    assert w.sum() == sum(len(r) for r in train)  # every frame is a target exactly once
    assert np.all(x[:, 1:] * w[:, 1:, None] == y[:, :-1] * w[:, 1:, None])  # inputs lag by one
    vx, _, vw = task.val  # whole validation pieces, padded to the longest
    assert vx.shape[0] == len(valid) and vw.sum() == sum(len(r) for r in valid)
    assert np.all(vx[:, 0] == 0)  # each piece starts from a silent frame


# ------------------------------------------------------------------------------ hparams
def test_hparam_space_uses_conditional_scopes():
    from tuning.hparams import AppHyperModel

    config = HparamSearchConfig.tiny().replace(cells=("gru", "bow", "window"), max_layers=2)
    model = AppHyperModel(adapter=None, config=config)
    hp = keras_tuner.HyperParameters()
    hp.values["cell"] = "bow"
    values = model.declare(hp)
    assert values["cell"] == "bow" and values["units"] is None and values["layers"] is None
    by_name = {p.name: p for p in hp.space}
    assert [c.values for c in by_name["units"].conditions] == [["gru", "window"]]
    assert [c.values for c in by_name["layers"].conditions] == [["gru"]]
    assert [c.values for c in by_name["window"].conditions] == [["window"]]
    assert not by_name["learning_rate"].conditions


def test_hparam_search_tiny(tmp_path):
    from tuning.hparams import run_hparam_search

    config = HparamSearchConfig.tiny()
    summary = run_hparam_search(config, tmp_path)
    with open(tmp_path / "leaderboard.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {r["status"] for r in rows} == {"COMPLETED"}
    assert math.isclose(
        summary["best"]["score"], max(float(r["val_accuracy"]) for r in rows), rel_tol=1e-4
    )
    best = json.loads((tmp_path / "best_hparams.json").read_text())
    assert best["values"]["cell"] in ("gru", "bow") and best["values"]["batch_size"] == 32
    if summary["app_config"]:
        from apps.sentiment.config import SentimentConfig

        loaded = SentimentConfig.load_json(summary["app_config"])
        assert loaded.model == best["values"]["cell"]
