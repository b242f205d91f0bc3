"""End to end: tiny train / evaluate / forecast / plot / compare through the command line, the
baselines in ``evaluate``'s JSON against hand computations on the CSV, and bad input (exit 2)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from apps.common import cli
from apps.forecast import verbs
from apps.forecast.config import ForecastConfig

N, L, H, S = 240, 12, 4, 12
GAPS = (50, 100, 210)


def _values(n: int = N, start: int = 0) -> np.ndarray:
    t = np.arange(start, start + n)
    y = 5.0 + 0.01 * t + np.sin(2 * np.pi * t / S) + 0.1 * np.cos(0.7 * t)
    return np.round(y, 4)


def _write_csv(path, values, start_hour: int = 0, gaps=()):
    base = np.datetime64("2021-03-01T00", "h")
    lines = ["time,level"]
    for i, v in enumerate(values):
        cell = "" if i in gaps else f"{v}"
        lines.append(f"{base + start_hour + i}:00:00Z,{cell}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _main(argv, capsys):
    code = cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, argv)
    out, err = capsys.readouterr()
    return code, out, err


TRAIN_FLAGS = ["--size", "tiny", "--season", str(S), "--lookback", str(L), "--horizon", str(H),
               "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast")
    csv = _write_csv(root / "toy.csv", _values(), gaps=GAPS)
    run = root / "run"
    code = cli.main(verbs.APP, verbs.VERBS, verbs.MAIN,
                    ["train", "--data", str(csv), "--run-dir", str(run), *TRAIN_FLAGS])  # fmt: skip
    assert code == 0
    return root, csv, run


def _hand_truth():
    y = _values().astype(float)
    y[list(GAPS)] = np.nan
    n_test = n_val = round(N * 0.15)
    train_end, val_end = N - n_test - n_val, N - n_test
    origins = [o for o in range(val_end - 1, N - H)
               if np.isfinite(y[o + 1 - L : o + 1]).any() and np.isfinite(y[o + 1 : o + 1 + H]).any()]  # fmt: skip
    return y, train_end, origins


def _mae(pred_fn, y, origins):
    errs = [abs(pred_fn(o, h) - y[o + h]) for o in origins for h in range(1, H + 1)
            if np.isfinite(y[o + h])]  # fmt: skip
    return float(np.mean(errs))


def test_train_writes_the_run_dir_with_train_only_scaling(trained):
    _, _, run = trained
    for name in ("config.json", "scaler.json", "baselines.json", "model.keras", "metrics.json",
                 "history.csv", "plots/forecast.png", "plots/curves.png"):  # fmt: skip
        assert (run / name).is_file(), name
    assert (run / "plots" / "forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    y, train_end, _ = _hand_truth()
    scaler = json.loads((run / "scaler.json").read_text())
    assert scaler["fitted_on"] == [0, train_end]
    assert scaler["mean"][0] == pytest.approx(np.nanmean(y[:train_end]), rel=1e-12)
    assert scaler["std"][0] == pytest.approx(np.nanstd(y[:train_end]), rel=1e-12)
    meta = json.loads((run / "config.json").read_text())
    assert meta["split"] == {"n": N, "train_end": train_end, "val_end": train_end + 36}
    assert meta["columns"] == ["level"] and meta["freq"] == "h" and meta["season"] == S


def test_evaluate_json_and_baselines_equal_hand_computation(trained, capsys):
    _, _, run = trained
    code, out, err = _main(["evaluate", "--run-dir", str(run)], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    m = json.loads(lines[0])
    assert json.loads((run / "metrics.json").read_text()) == m
    y, train_end, origins = _hand_truth()
    assert m["origins"] == len(origins)
    assert set(m["baselines"]) == {"persistence", "seasonal_naive", "ets"}
    for b in m["baselines"].values():  # the model's MAE against each baseline's
        assert set(b["dm_test"]) == {"statistic", "p_value"} and 0 <= b["dm_test"]["p_value"] <= 1
    for key in ("mae", "rmse", "mase", "coverage", "mae_per_step", "mase_per_step"):
        assert key in m
    assert len(m["mae_per_step"]) == H

    def last_seen(o):
        while not np.isfinite(y[o]):
            o -= 1
        return y[o]

    def seasonal(o, h):
        src = o + h - S * math.ceil(h / S)
        while not np.isfinite(y[src]):
            src -= S
        return y[src]

    pairs = [(y[t], y[t - S]) for t in range(S, train_end)]
    scale = np.mean([abs(a - b) for a, b in pairs if np.isfinite(a) and np.isfinite(b)])
    pers = _mae(lambda o, h: last_seen(o), y, origins)
    snaive = _mae(seasonal, y, origins)
    assert m["baselines"]["persistence"]["mae"] == pytest.approx(pers, rel=1e-9)
    assert m["baselines"]["seasonal_naive"]["mae"] == pytest.approx(snaive, rel=1e-9)
    assert m["baselines"]["persistence"]["mase"] == pytest.approx(pers / scale, rel=1e-9)
    assert m["mase"] == pytest.approx(m["mae"] / scale, rel=1e-9)
    assert 0.0 <= m["coverage"] <= 1.0 and m["nominal_coverage"] == pytest.approx(0.8)


def test_evaluate_on_a_later_stretch_of_the_series(trained, capsys):
    root, _, run = trained
    later = _write_csv(root / "later.csv", _values(120, start=N), start_hour=N)
    code, out, err = _main(["evaluate", "--run-dir", str(run), "--data", str(later)], capsys)
    assert code == 0, err
    m = json.loads(out)
    assert m["split"] == "series" and m["data"] == str(later)
    # first origin: after the lookback, one season and the ETS warm-up (60 samples)
    first = max(L, S, 60) - 1
    assert m["origins"] == 120 - H - first
    assert m["period"][0] == f"{np.datetime64('2021-03-01T00', 'h') + N + first + 1}:00:00Z"


def test_forecast_from_the_end_prints_and_writes_csv(trained, capsys):
    root, _, run = trained
    out_csv = root / "fc.csv"
    code, out, err = _main(["forecast", "--run-dir", str(run), "--out", str(out_csv)], capsys)
    assert code == 0, err
    rows = out.strip().splitlines()
    assert rows[0] == "time,forecast,q0.1,q0.5,q0.9,truth"
    assert len(rows) == 1 + H
    last = np.datetime64("2021-03-01T00", "h") + N - 1
    assert [r.split(",")[0] for r in rows[1:]] == [f"{last + h}:00:00Z" for h in range(1, H + 1)]
    for r in rows[1:]:
        cells = r.split(",")
        q = [float(c) for c in cells[2:5]]
        assert q == sorted(q) and float(cells[1]) == q[1] and cells[5] == ""
    assert out_csv.read_text() == out


def test_plot_writes_png(trained, capsys):
    root, _, run = trained
    for origin in ("test", "end", "2021-03-08T05:00:00Z"):
        png = root / f"plot-{origin[:4]}.png"
        code, _, err = _main(["plot", "--run-dir", str(run), "--origin", origin, "--out",
                              str(png)], capsys)  # fmt: skip
        assert code == 0, err
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000


def test_resume_trains_only_the_missing_epochs(trained, capsys):
    _, csv, run = trained
    code, _, err = _main(["train", "--data", str(csv), "--run-dir", str(run), *TRAIN_FLAGS,
                          "--epochs", "2"], capsys)  # fmt: skip
    assert code == 0, err
    rows = (run / "history.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]
    code, _, err = _main(["train", "--data", str(csv), "--run-dir", str(run), *TRAIN_FLAGS,
                          "--lookback", "24"], capsys)  # fmt: skip
    assert code == 2 and "another config" in err


def test_trend_change_flag_reaches_training(trained, tmp_path):
    _, csv, run = trained
    other = tmp_path / "bent"
    argv = ["train", "--data", str(csv), "--run-dir", str(other), *TRAIN_FLAGS,
            "--trend-change", "0.05"]  # fmt: skip
    assert cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, argv) == 0
    assert json.loads((other / "config.json").read_text())["config"]["trend_change"] == 0.05
    first = [line.split(",") for line in (run / "history.csv").read_text().splitlines()[:2]]
    bent = [line.split(",") for line in (other / "history.csv").read_text().splitlines()[:2]]
    col = {name: i for i, name in enumerate(first[0])}
    # same seed, data and starting weights: only the augmented windows change the loss
    assert bent[1][col["loss"]] != first[1][col["loss"]]


def test_train_and_evaluate_tiny_on_builtin_co2(tmp_path):
    from apps.forecast.train import train_and_evaluate

    metrics = train_and_evaluate(ForecastConfig.tiny(), tmp_path / "co2")
    assert metrics["data"] == "builtin:co2" and metrics["horizon"] == 6
    assert set(metrics["baselines"]) == {"persistence", "seasonal_naive", "ets"}
    assert metrics["period"][1] == "2001-12-01T00:00:00Z"  # the test period ends with the series
    assert (tmp_path / "co2" / "plots" / "forecast.png").is_file()


def test_compare_two_models_beside_the_baselines(trained, capsys):
    root, csv, _ = trained
    run = root / "cmp"
    code, _, err = _main(["compare", "--data", str(csv), "--run-dir", str(run), *TRAIN_FLAGS,
                          "--models", "window-cnn,gru", "--classical", "none"], capsys)  # fmt: skip
    assert code == 0, err
    record = json.loads((run / "compare.json").read_text())
    names = [(r["name"], r["kind"]) for r in record["rows"]]
    assert names == [("window-cnn", "model"), ("gru", "model"), ("persistence", "baseline"),
                     ("seasonal_naive", "baseline")]  # fmt: skip
    assert record["verdict"]["best_recurrent"] == "gru"
    gru = record["rows"][1]
    best = record["verdict"]["best_baseline"]
    p = record["verdict"]["best_recurrent_dm_p_value"]
    assert p == gru["dm_tests"][best]["p_value"] and 0 <= p <= 1
    assert (run / "plots" / "compare.png").is_file()
    report = (run / "report.md").read_text()
    assert "| window-cnn | model |" in report
    assert f"best recurrent model against the best baseline: p = {p:.2g}" in report


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "content, extra, match",
    [
        ("time,level\n2021-01-01T00:00:00Z,1\n", ["--target", "nope"], "no column 'nope'"),
        ("time,level\n2021-01-01T00:00:00Z,1\n2021-01-01T01:00:00Z,x1\n", [], "is not a number"),
        ("time,level\n2021-01-01T01:00:00Z,1\n2021-01-01T00:00:00Z,2\n", [], "not sorted"),
        ("time,level\n2021-01-01T00:00:00Z,1\n2021-01-01T00:00:00Z,2\n", [], "duplicate"),
        ("time,level\n" + "".join(f"2021-01-01T{h:02d}:00:00Z,{h}\n" for h in range(10)), [],
         "fewer than lookback \\+ horizon"),
        ("time,level\n2021-01-01T00:00:00Z,\n2021-01-01T01:00:00Z,\n", [], "has no values"),
    ],
)  # fmt: skip
def test_bad_training_data_exits_2_with_one_line(tmp_path, capsys, content, extra, match):
    csv = tmp_path / "bad.csv"
    csv.write_text(content, encoding="utf-8")
    code, _, err = _main(["train", "--data", str(csv), "--run-dir", str(tmp_path / "r"),
                          *TRAIN_FLAGS, *extra], capsys)  # fmt: skip
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert __import__("re").search(match, err), err


@pytest.mark.parametrize(
    "argv, match",
    [
        (["train", "--horizon", "0"], "--horizon: must be an integer >= 1"),
        (["train", "--model", "transformer"], "unknown model 'transformer'"),
        (["train", "--quantiles", "0.2,0.8"], "must include 0.5"),
        (["train", "--trend-change", "-0.1"], "--trend-change: must be in [0.0, 0.99]"),
        (["train", "--data", "builtin:nope"], "unknown builtin dataset 'nope'"),
        (["train", "--freq", "fortnightly"], "not a pandas frequency"),
        (["compare", "--model", "gru"], "compare takes --models"),
    ],
)
def test_bad_usage_exits_2(tmp_path, capsys, argv, match):
    code, _, err = _main([*argv, "--run-dir", str(tmp_path / "r")], capsys)
    assert code == 2 and match in err, err


def test_forecast_from_an_all_gap_window_exits_2(trained, capsys):
    root, _, run = trained
    values = _values(40, start=N)
    gappy = _write_csv(root / "gappy.csv", values, start_hour=N, gaps=set(range(40 - L, 40)))
    code, _, err = _main(["forecast", "--run-dir", str(run), "--data", str(gappy)], capsys)
    assert code == 2 and "are all missing; nothing to forecast from" in err
    code, _, err = _main(["forecast", "--run-dir", str(root / "nowhere")], capsys)
    assert code == 2 and "no such run dir" in err


def test_export_hook_gives_real_scaled_windows(trained):
    from apps.forecast.export_hook import HOOK

    _, _, run = trained
    config = json.loads((run / "config.json").read_text())["config"]
    reps = HOOK.representative_inputs(run, config)
    parity = HOOK.parity_inputs(run, config)
    y, train_end, _ = _hand_truth()
    scaler = json.loads((run / "scaler.json").read_text())
    assert reps.shape == (train_end - H - L + 1, L, 2) and parity.shape[1:] == (L, 2)
    first = (y[:L] - scaler["mean"][0]) / scaler["std"][0]  # the first training window
    np.testing.assert_allclose(reps[0, :, 0], first, rtol=1e-5)
    np.testing.assert_array_equal(reps[0, :, 1], 1.0)
    assert HOOK.tables(run, config)[0]["path"] == run / "scaler.json"
    assert HOOK.default_seq_len(config) == L and HOOK.modules == ("apps.forecast.model",)
