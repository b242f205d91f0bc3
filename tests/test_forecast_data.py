"""apps.forecast.data: loading onto a grid, chronological split without leaks, train-only
scaling, windows, and bad CSVs (pure NumPy / pandas; the tf.data pipeline is checked once)."""

from __future__ import annotations

import numpy as np
import pytest

from apps.common.errors import DataError
from apps.forecast import data as fd


def _csv(tmp_path, text: str, name: str = "s.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _hourly(n: int, start: str = "2020-01-01T00:00:00Z") -> list[str]:
    base = np.datetime64(start.rstrip("Z"), "h")
    return [f"{base + i}:00:00Z" for i in range(n)]


# ----------------------------------------------------------------------------- loading
def test_csv_on_its_own_grid_keeps_gaps_as_nan(tmp_path):
    times = _hourly(6)
    levels, winds = ["1", "2", "", "4", "5", "6"], ["1", "2", "3", "4", "5", "9"]
    text = "time,level,wind\n" + "".join(f"{t},{v},{w}\n" for t, v, w in zip(times, levels, winds))
    s = fd.load_series(str(_csv(tmp_path, text)), target="level", covariates=["wind"])
    assert s.columns == ["level", "wind"]
    assert s.freq == "h" and s.season == 24
    np.testing.assert_array_equal(np.isnan(s.target), [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(s.values[:, 1], [1, 2, 3, 4, 5, 9])
    assert "1 missing (masked, not filled)" in s.description


def test_csv_missing_rows_become_explicit_gaps(tmp_path):
    times = _hourly(6)
    del times[3]  # a missing hour: the grid gets a NaN there, nothing is interpolated
    text = "time,v\n" + "".join(f"{t},{i}\n" for i, t in enumerate(times))
    s = fd.load_series(str(_csv(tmp_path, text)))
    assert len(s) == 6
    np.testing.assert_array_equal(s.target[:3], [0, 1, 2])
    assert np.isnan(s.target[3])
    np.testing.assert_array_equal(s.target[4:], [3, 4])


def test_resample_to_a_stated_frequency_averages_bins(tmp_path):
    times = _hourly(6)
    text = "time,v\n" + "".join(f"{t},{i}\n" for i, t in enumerate(times))
    s = fd.load_series(str(_csv(tmp_path, text)), freq="2h")
    np.testing.assert_allclose(s.target, [0.5, 2.5, 4.5])
    assert s.season == 12


def test_builtin_co2_is_monthly_with_masked_months():
    s = fd.load_series("builtin:co2")
    assert s.freq == "MS" and s.season == 12 and s.columns == ["co2"]
    assert len(s) == 526
    assert int(np.isnan(s.target).sum()) == 5
    assert str(s.times[0])[:10] == "1958-03-01"


@pytest.mark.parametrize(
    "text, kwargs, match",
    [
        ("time,v\n2020-01-01T00:00:00Z,1\n", {"target": "w"}, "no column 'w'"),
        ("time,a,b\n2020-01-01T00:00:00Z,1,2\n", {}, "name the one to forecast with --target"),
        ("when,v\n2020-01-01T00:00:00Z,1\n", {}, "no time column 'time'"),
        ("time,v\n2020-01-01T00:00:00Z,1\n2020-01-01T01:00:00Z,abc\n", {},
         r"row 3, column 'v': 'abc' is not a number"),
        ("time,v\n2020-01-01T01:00:00Z,1\n2020-01-01T00:00:00Z,2\n", {}, "not sorted by time"),
        ("time,v\n2020-01-01T00:00:00Z,1\n2020-01-01T00:00:00Z,2\n", {}, "duplicate timestamp"),
        ("time,v\nyesterday,1\n", {}, "is not an ISO 8601 time"),
        ("time,v\n2020-01-01T00:00:00Z,\n2020-01-01T01:00:00Z,\n", {}, "has no values"),
        (("time,v\n2020-01-01T00:00:00Z,1\n2020-01-01T01:00:00Z,2\n2020-01-01T01:30:00Z,3\n"
          "2020-01-01T03:10:00Z,4\n"), {}, "irregularly sampled"),
    ],
)  # fmt: skip
def test_bad_csv_is_a_clear_data_error(tmp_path, text, kwargs, match):
    with pytest.raises(DataError, match=match):
        fd.load_series(str(_csv(tmp_path, text)), **kwargs)


def test_real_koper_sea_level_record(shared_data):
    s = fd.load_series(str(shared_data / "sealevel" / "koper_hidra2_hourly.csv"))
    assert (len(s), s.freq, s.season, s.columns) == (11832, "h", 24, ["sea_level_cm"])
    assert int(np.isnan(s.target).sum()) == 8  # the 8 empty hours of PROVENANCE.md, not filled


# ------------------------------------------------------------------------------- split
def test_chronological_split_sizes_and_too_short_series():
    split = fd.chronological_split(200, lookback=10, horizon=5, val_fraction=0.15,
                                   test_fraction=0.15)  # fmt: skip
    assert (split.train_end, split.val_end, split.n) == (140, 170, 200)
    with pytest.raises(DataError, match="fewer than lookback \\+ horizon"):
        fd.chronological_split(14, lookback=10, horizon=5, val_fraction=0.15, test_fraction=0.15)
    with pytest.raises(DataError, match="training period"):
        fd.chronological_split(40, lookback=20, horizon=10, val_fraction=0.15, test_fraction=0.15)


def test_split_origins_never_read_the_future_of_their_period():
    L, H = 10, 5
    split = fd.chronological_split(200, L, H, 0.15, 0.15)
    o = fd.split_origins(split, L, H)
    # training: inputs and targets inside [0, train_end)
    assert o["train"][0] == L - 1 and o["train"][-1] + H == split.train_end - 1
    # validation: first target is the first validation sample, last target inside it
    assert o["val"][0] + 1 == split.train_end and o["val"][-1] + H == split.val_end - 1
    # test: first target is the first test sample, the last one is the series' last sample
    assert o["test"][0] + 1 == split.val_end and o["test"][-1] + H == split.n - 1
    assert np.all(np.diff(o["test"]) == 1)
    assert fd.split_origins(split, L, H, eval_stride=4)["test"].tolist() == list(range(169, 195, 4))


def test_training_pipeline_targets_stay_inside_the_training_period():
    L, H, n = 6, 3, 60
    split = fd.chronological_split(n, L, H, 0.2, 0.2)
    origins = fd.split_origins(split, L, H)["train"]
    index = np.arange(n, dtype=np.float64)
    feats = np.stack([index, np.ones(n)], axis=1).astype(np.float32)  # channel 0 = sample index
    ds = fd.make_dataset(feats, index, origins, L, H, batch_size=7, shuffle=True, seed=3)
    seen_x, seen_y = [], []
    for x, y in ds:
        seen_x.append(x.numpy()[:, :, 0])
        seen_y.append(y.numpy())
    xs, ys = np.concatenate(seen_x), np.concatenate(seen_y)
    assert ys.max() == split.train_end - 1 and xs.max() < split.train_end - H
    assert sorted(xs[:, -1].astype(int).tolist()) == origins.tolist()
    np.testing.assert_array_equal(ys, xs[:, -1:] + np.arange(1, H + 1))


def test_trend_change_bends_the_window_and_continues_into_the_targets():
    L, H = 6, 3
    x = np.zeros((2, L, 4), np.float32)
    x[..., 1] = 1.0
    x[0, 1, 1] = 0.0  # a missing input: stays 0
    x[..., 2] = 7.0  # a covariate: untouched
    y = np.zeros((2, H), np.float32)
    y[1, 2] = np.nan  # a missing target: stays NaN
    slope = np.array([[0.5], [-1.0]], np.float32)
    kink = np.array([[-3.0], [-5.0]], np.float32)
    xa, ya = (t.numpy() for t in fd.add_trend_change(x, y, slope, kink))
    # taus -5..0: window 0 is flat (-1.5) up to tau -3, then rises 0.5 per step to 0 at the origin
    np.testing.assert_allclose(xa[0, :, 0], [-1.5, 0.0, -1.5, -1.0, -0.5, 0.0])
    np.testing.assert_allclose(ya[0], [0.5, 1.0, 1.5])
    np.testing.assert_allclose(xa[1, :, 0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    np.testing.assert_allclose(ya[1, :2], [-1.0, -2.0])
    assert np.isnan(ya[1, 2])
    np.testing.assert_array_equal(xa[..., 1:], x[..., 1:])


def test_trend_change_pipeline_is_seeded_and_only_where_asked():
    L, H, n = 8, 4, 80
    origins = np.arange(L - 1, n - H)
    t = np.arange(n, dtype=np.float64)
    target = np.sin(t / 3.0)
    feats = np.stack([target, np.ones(n)], axis=1).astype(np.float32)

    def batches(**kw):
        ds = fd.make_dataset(feats, target, origins, L, H, batch_size=16, seed=5, **kw)
        xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds))
        return np.concatenate(xs), np.concatenate(ys)

    plain_x, plain_y = batches()
    aug_x, aug_y = batches(trend_change=0.05)
    again_x, _ = batches(trend_change=0.05)
    np.testing.assert_array_equal(aug_x, again_x)  # the seed repeats the draws
    assert not np.allclose(aug_x, plain_x)
    # what was added: one straight piece bent once, 0 at the origin, the last slope continued
    added = np.concatenate([aug_x[..., 0] - plain_x[..., 0], aug_y - plain_y], axis=1)
    np.testing.assert_allclose(added[:, L - 1], 0.0, atol=1e-6)
    bends = np.abs(np.diff(added, 2, axis=1)) > 1e-5
    assert bends.sum(axis=1).max() <= 2  # a fractional kink spreads over two steps
    future = np.diff(added[:, L - 1 :], axis=1)
    np.testing.assert_allclose(future, future[:, :1].repeat(H, axis=1), atol=1e-5)
    assert np.std(future[:, 0]) > 0.01


def test_usable_origins_drop_all_gap_windows():
    target = np.array([1, np.nan, np.nan, np.nan, 5, 6, np.nan, np.nan, 9, 10.0])
    origins = np.arange(2, 8)
    kept = fd.usable_origins(target, origins, lookback=2, horizon=2, need_truth=True)
    # inputs all missing: origin 2 ([1, 2]), 3 ([2, 3]), 7 ([6, 7]); targets all missing:
    # origin 5 ([6, 7])
    assert kept.tolist() == [4, 6]
    assert fd.usable_origins(target, origins, 2, 2, need_truth=False).tolist() == [4, 5, 6]


# ----------------------------------------------------------------------------- scaling
def test_scaler_is_fitted_on_the_training_period_only():
    values = np.array([[1.0, 10.0], [3.0, np.nan], [5.0, 30.0], [1e6, -1e6], [1e6, 1e6]])
    scaler = fd.Scaler.fit(values, ["a", "b"], end=3)
    assert scaler.mean == [3.0, 20.0]
    np.testing.assert_allclose(scaler.std, [np.std([1, 3, 5]), 10.0])
    assert scaler.fitted_on == (0, 3)
    again = fd.Scaler.from_dict(scaler.to_dict())
    assert again == scaler


def test_features_mark_missing_values():
    scaler = fd.Scaler(["a"], [2.0], [2.0], (0, 3))
    f = fd.features(np.array([[4.0], [np.nan], [0.0]]), scaler)
    np.testing.assert_array_equal(f, [[1.0, 1.0], [0.0, 0.0], [-1.0, 1.0]])


def test_gather_windows_and_targets():
    feats = np.arange(20, dtype=np.float32).reshape(10, 2)
    w = fd.gather_windows(feats, np.array([2, 5]), lookback=3)
    np.testing.assert_array_equal(w[1, :, 0], [6, 8, 10])
    t = fd.gather_targets(np.arange(10.0), np.array([7, 8]), horizon=3)
    np.testing.assert_array_equal(t[0], [8, 9, np.nan])
