"""apps.forecast ensembles: the averaged quantile forecasts as one model, the ``ensemble`` verb
(evaluate / forecast / export on it) and ``compare``'s ``NAME*K`` entries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from apps.common import cli
from apps.common.rundir import RunDir
from apps.forecast import verbs
from apps.forecast.ensemble import build_ensemble
from apps.forecast.model import build_model
from apps.forecast.train import evaluation_origins, load_run_series, load_trained, predict_quantiles

S, L, H = 12, 12, 4
FLAGS = ["--size", "tiny", "--season", str(S), "--lookback", str(L), "--horizon", str(H),
         "--quiet"]  # fmt: skip


def _main(argv, capsys):
    code = cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, argv)
    out, err = capsys.readouterr()
    return code, out, err


def _csv(path, n=240):
    t = np.arange(n)
    y = np.round(5.0 + 0.01 * t + np.sin(2 * np.pi * t / S) + 0.1 * np.cos(0.7 * t), 4)
    base = np.datetime64("2021-03-01T00", "h")
    rows = [f"{base + i}:00:00Z,{v}" for i, v in enumerate(y)]
    path.write_text("time,level\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two tiny GRU runs (seeds 1, 2), one with another lookback, and one with the hourly
    grid's own season 24 given explicitly, on a toy hourly CSV."""
    root = tmp_path_factory.mktemp("ensemble")
    csv = _csv(root / "toy.csv")
    runs = {}
    for name, extra in (("a", ["--seed", "1"]), ("b", ["--seed", "2"]),
                        ("other", ["--seed", "1", "--lookback", str(L + 12)]),
                        ("s24", ["--seed", "2", "--season", "24"])):  # fmt: skip
        runs[name] = root / name
        argv = ["train", "--data", str(csv), "--run-dir", str(runs[name]), *FLAGS, *extra]
        assert cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, argv) == 0
    return root, csv, runs


def test_build_ensemble_averages_the_members_quantiles():
    models = [build_model("gru", L, 2, H, (0.1, 0.5, 0.9), units=4, seed=s) for s in (1, 2)]
    ensemble = build_ensemble(models)
    x = np.random.default_rng(0).normal(size=(3, L, 2)).astype("float32")
    want = np.mean([np.asarray(m(x)) for m in models], axis=0)
    np.testing.assert_allclose(np.asarray(ensemble(x)), want, rtol=1e-6, atol=1e-6)
    assert ensemble.count_params() == sum(m.count_params() for m in models)
    with pytest.raises(ValueError, match="at least two"):
        build_ensemble(models[:1])
    other = build_model("gru", L + 1, 2, H, (0.1, 0.5, 0.9), units=4)
    with pytest.raises(ValueError, match="member 2"):
        build_ensemble([models[0], other])


def test_ensemble_verb_scores_the_mean_forecast_and_the_run_works_like_any(members, capsys):
    root, _, runs = members
    out_dir = root / "ens"
    code, out, err = _main(["ensemble", "--run-dir", str(out_dir), str(runs["a"]),
                            str(runs["b"]), "--quiet"], capsys)  # fmt: skip
    assert code == 0, err
    metrics = json.loads(out.strip().splitlines()[-1])
    trained = [load_trained(RunDir.open(runs[k], "apps.forecast")) for k in "ab"]
    series = load_run_series(trained[0])
    origins = evaluation_origins(trained[0], series, own_series=True)
    mean = np.mean([predict_quantiles(t, series, origins) for t in trained], axis=0)
    truth = np.stack([series.target[o + 1 : o + 1 + H] for o in origins])
    assert metrics["mae"] == pytest.approx(
        float(np.nanmean(np.abs(mean[..., 1] - truth))), rel=1e-5
    )
    assert metrics["member_mae"] == [
        pytest.approx(json.loads((runs[k] / "metrics.json").read_text())["mae"], rel=1e-6)
        for k in "ab"
    ]
    assert metrics["mae"] <= max(metrics["member_mae"])  # |mean error| <= mean |error|
    assert set(metrics["baselines"]) == set(
        json.loads((runs["a"] / "metrics.json").read_text())["baselines"]
    )
    config = json.loads((out_dir / "config.json").read_text())["config"]
    assert config["model"] == "ensemble" and len(config["members"]) == 2
    assert (out_dir / "plots" / "forecast.png").is_file()

    code, out, _ = _main(["evaluate", "--run-dir", str(out_dir)], capsys)
    assert code == 0 and json.loads(out)["mae"] == pytest.approx(metrics["mae"], rel=1e-6)
    code, out, _ = _main(["forecast", "--run-dir", str(out_dir), "--quiet"], capsys)
    assert code == 0 and out.startswith("time,forecast,q0.1,q0.5,q0.9")
    from export.__main__ import main as export_main

    assert export_main([str(out_dir), "--format", "tflite", "--quiet"]) == 0
    entry = json.loads((out_dir / "export" / "manifest.json").read_text())["exports"][
        "model.tflite"
    ]
    assert entry["parity"]["max_abs_diff"] < 1e-4
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in entry["ops"])


def test_members_compare_the_season_in_use_not_how_it_was_given(members, tmp_path, capsys):
    root, csv, runs = members
    auto = root / "auto"  # no --season: the hourly grid's default, 24
    i = FLAGS.index("--season")
    flags = FLAGS[:i] + FLAGS[i + 2 :]
    argv = ["train", "--data", str(csv), "--run-dir", str(auto), *flags, "--seed", "1"]
    assert cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, argv) == 0
    assert json.loads((auto / "config.json").read_text())["config"]["season"] is None
    code, _, err = _main(["ensemble", "--run-dir", str(tmp_path / "e"), str(auto),
                          str(runs["s24"]), "--quiet"], capsys)  # fmt: skip
    assert code == 0, err
    code, _, err = _main(["ensemble", "--run-dir", str(tmp_path / "f"), str(auto),
                          str(runs["a"]), "--quiet"], capsys)  # fmt: skip
    assert code == 2 and "has season 12" in err


@pytest.mark.parametrize(
    "which, message",
    [
        (("a",), "two or more runs"),
        (("a", "other"), "has lookback 24"),
        (("a", "nowhere"), "RUN: "),
        (("a", "b", "NONEMPTY"), "exists and is not empty"),
    ],
)
def test_ensemble_usage_errors_exit_2_with_one_line(members, tmp_path, capsys, which, message):
    _, _, runs = members
    out_dir = tmp_path / "ens"
    paths = [str(runs.get(k, tmp_path / k)) for k in which if k != "NONEMPTY"]
    if "NONEMPTY" in which:
        out_dir.mkdir()
        (out_dir / "keep.txt").write_text("mine")
    code, _, err = _main(["ensemble", "--run-dir", str(out_dir), *paths, "--quiet"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    if "NONEMPTY" in which:
        assert (out_dir / "keep.txt").read_text() == "mine"
    else:
        assert not out_dir.exists()


def test_compare_scores_an_ensemble_of_seeds(members, capsys):
    root, csv, _ = members
    run = root / "cmp"
    code, _, err = _main(["compare", "--data", str(csv), "--run-dir", str(run), *FLAGS,
                          "--models", "gru*2", "--classical", "none"], capsys)  # fmt: skip
    assert code == 0, err
    record = json.loads((run / "compare.json").read_text())
    row = record["rows"][0]
    assert row["name"] == "gru*2" and len(row["member_mae"]) == 2
    members_dir = run / "models" / "gru_2"
    seeds = [json.loads((members_dir / f"s{s}" / "config.json").read_text())["config"]["seed"]
             for s in (1234, 1235)]  # fmt: skip
    assert seeds == [1234, 1235]
    assert json.loads((members_dir / "ensemble" / "metrics.json").read_text())["mae"] == row["mae"]
    assert record["verdict"]["best_recurrent"] == "gru*2"
    code, _, err = _main(["compare", "--data", str(csv), "--run-dir", str(root / "c2"), *FLAGS,
                          "--models", "gru*1"], capsys)  # fmt: skip
    assert code == 2 and "K in NAME*K must be 2..10" in err
