"""apps.music ensembles: averaged key probabilities, their one-step twin, and the ``ensemble``
verb end to end (evaluate, generate, export)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os

import numpy as np
import pytest

from apps.common import cli
from apps.music import verbs
from apps.music.config import MusicConfig
from apps.music.data import roll_sequence
from apps.music.ensemble import MeanProbabilityLogits, build_ensemble, ensemble_members
from apps.music.model import build_model, build_step_model, state_sizes
from apps.music.sample import StepRunner
from apps.music.train import roll_metrics, train_and_evaluate


def _main(*argv: str) -> int:
    return cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, list(argv))


def _constant(cell, bias):
    model = build_model("roll", cell, units=3)
    for w in model.weights:
        w.assign(np.zeros(w.shape, dtype="float32"))
    model.get_layer("logits").bias.assign(np.asarray(bias, dtype="float32"))
    return model


def test_mean_probability_logits_is_the_logit_of_the_mean_probability():
    rng = np.random.default_rng(0)
    logits = [rng.normal(scale=3.0, size=(2, 5, 88)) for _ in range(3)]
    logits[0][0, 0, :4] = [40.0, -40.0, 80.0, -80.0]  # certain members: no overflow, no clipping
    p = np.mean([1 / (1 + np.exp(-x)) for x in logits], axis=0)
    out = np.asarray(MeanProbabilityLogits()([x.astype("float32") for x in logits]))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(1 / (1 + np.exp(-out.astype(np.float64))), p, rtol=1e-5, atol=1e-7)
    same = np.asarray(MeanProbabilityLogits()([logits[1].astype("float32")] * 2))
    np.testing.assert_allclose(same, logits[1], rtol=1e-4, atol=1e-4)


def test_ensemble_nll_equals_the_hand_computation_and_beats_the_members_mean():
    rng = np.random.default_rng(1)
    biases = [rng.normal(size=88), rng.normal(size=88) - 1.0]
    members = [_constant("gru", biases[0]), _constant("vanilla", biases[1])]
    ensemble = build_ensemble(members)
    assert [m.name for m in ensemble_members(ensemble)] == ["member_1", "member_2"]
    assert ensemble.count_params() == sum(m.count_params() for m in members)
    rolls = [(rng.random((n, 88)) < 0.1).astype(np.uint8) for n in (4, 7)]
    sequences = [roll_sequence(r) for r in rolls]
    p = np.mean([1 / (1 + np.exp(-b)) for b in biases], axis=0)
    hand = [-sum(math.log(p[k]) if f[k] else math.log(1 - p[k]) for k in range(88))
            for r in rolls for f in r]  # fmt: skip
    got = roll_metrics(ensemble, sequences)["nll_per_step"]
    assert got == pytest.approx(np.mean(hand), rel=1e-5)
    member_nll = [roll_metrics(m, sequences)["nll_per_step"] for m in members]
    assert got < np.mean(member_nll)  # -log is convex: the mixture beats the members' mean


def test_ensemble_step_model_reproduces_the_ensemble_with_each_members_states():
    rng = np.random.default_rng(2)
    members = [build_model("roll", "lstm", units=4, seed=1),
               build_model("roll", "gru", units=5, layers=2, seed=2)]  # fmt: skip
    ensemble = build_ensemble(members)
    x = (rng.random((2, 6, 88)) < 0.1).astype("float32")
    full = np.asarray(ensemble(x))
    runner = StepRunner(build_step_model(ensemble))
    assert runner.sizes == state_sizes(ensemble) == [4, 4, 5, 5]
    np.testing.assert_allclose(runner.run(x), full, rtol=1e-5, atol=1e-5)


def test_build_ensemble_refuses_one_model_and_an_event_model():
    roll = build_model("roll", "gru", units=3)
    with pytest.raises(ValueError, match="at least two"):
        build_ensemble([roll])
    events = build_model("events", "gru", units=3, vocab_size=10, embedding_dim=2)
    with pytest.raises(ValueError, match="member 2 .* not a piano-roll model"):
        build_ensemble([roll, events])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two tiny roll runs (GRU, tanh RNN) on the built-in chorales."""
    old = os.environ.get("RNNSUITE_CACHE_DIR")
    os.environ["RNNSUITE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    root = tmp_path_factory.mktemp("members")
    runs = []
    for cell in ("gru", "vanilla"):
        config = MusicConfig.tiny().replace(cell=cell, epochs=2)
        train_and_evaluate(config, root / cell)
        runs.append(root / cell)
    yield runs
    if old is None:
        os.environ.pop("RNNSUITE_CACHE_DIR", None)
    else:
        os.environ["RNNSUITE_CACHE_DIR"] = old


def test_ensemble_verb_writes_a_run_that_evaluates_generates_and_exports(two_runs, tmp_path):
    out_dir = tmp_path / "ens"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert _main("ensemble", "--run-dir", str(out_dir), *map(str, two_runs), "--quiet") == 0
    metrics = json.loads(out.getvalue().strip().splitlines()[-1])
    members = [json.loads((r / "metrics.json").read_text())["nll_per_step"] for r in two_runs]
    assert metrics["member_nll_per_step"] == pytest.approx(members, abs=1e-4)
    assert metrics["cell"] == "ensemble" and metrics["pieces"] > 0
    assert metrics["nll_per_step"] < np.mean(members)
    assert (
        json.loads((out_dir / "metrics.json").read_text())["nll_per_step"]
        == metrics["nll_per_step"]
    )
    config = json.loads((out_dir / "config.json").read_text())["config"]
    assert config["members"] == [str(r.resolve()) for r in two_runs]

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert _main("evaluate", "--run-dir", str(out_dir), "--quiet") == 0
    again = json.loads(out.getvalue().strip().splitlines()[-1])
    assert again["nll_per_step"] == pytest.approx(metrics["nll_per_step"], rel=1e-6)
    with contextlib.redirect_stdout(io.StringIO()):
        assert _main("generate", "--run-dir", str(out_dir), "--length", "16", "--quiet") == 0
    import pretty_midi

    notes = [n for i in pretty_midi.PrettyMIDI(str(out_dir / "samples" / "sample_001.mid"))
             .instruments for n in i.notes]  # fmt: skip
    assert notes and all(n.end > n.start for n in notes)

    from export.__main__ import main as export_main

    with contextlib.redirect_stdout(io.StringIO()):
        assert export_main([str(out_dir), "--format", "tflite", "--quiet"]) == 0
    exports = json.loads((out_dir / "export" / "manifest.json").read_text())["exports"]
    assert set(exports) == {"model.tflite", "step.tflite"}
    for entry in exports.values():  # the exporter ran each file in the LiteRT interpreter
        assert entry["parity"]["max_abs_diff"] < 1e-3
        assert not any(op.startswith("Flex") or op == "CUSTOM" for op in entry["ops"])
    names = [i["name"] for i in exports["step.tflite"]["inputs"]]
    assert names == ["frame", "member_1_state_1", "member_2_state_1"]


@pytest.mark.parametrize(
    "extra, message",
    [
        ((), "two or more runs"),
        (("EVENTS",), "is an events run, not a piano-roll"),
        (("NONEMPTY",), "exists and is not empty"),
        (("NOWHERE",), "RUN: "),
    ],
)
def test_ensemble_usage_errors_exit_2_with_one_line(two_runs, tmp_path, capsys, extra, message):
    args = [str(two_runs[0])]
    out_dir = tmp_path / "ens"
    if "EVENTS" in extra:
        events = tmp_path / "events"
        train_and_evaluate(MusicConfig.tiny().replace(representation="events"), events)
        args.append(str(events))
    if "NOWHERE" in extra:
        args.append(str(tmp_path / "nowhere"))
    if "NONEMPTY" in extra:
        out_dir.mkdir()
        (out_dir / "keep.txt").write_text("mine")
        args.append(str(two_runs[1]))
    assert _main("ensemble", "--run-dir", str(out_dir), *args, "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    if "NONEMPTY" in extra:
        assert (out_dir / "keep.txt").read_text() == "mine"
    else:
        assert not out_dir.exists()


def test_an_ensemble_config_is_not_trained(two_runs, tmp_path, capsys):
    out_dir = tmp_path / "ens"
    with contextlib.redirect_stdout(io.StringIO()):
        assert _main("ensemble", "--run-dir", str(out_dir), *map(str, two_runs), "--quiet") == 0
    code = _main("train", "--config", str(out_dir / "config.json"), "--run-dir",
                 str(tmp_path / "again"), "--quiet")  # fmt: skip
    assert code == 2
    assert "made by `python -m apps.music ensemble`" in capsys.readouterr().err
