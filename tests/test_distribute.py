"""``train --distribute``: global-batch sharding, TF_CONFIG checks, and two real workers.

The two-worker test starts two ``python -m apps.forecast train --distribute multiworker``
processes on 127.0.0.1 (``TF_CONFIG`` with two free ports) and a single-process run of the same
command; the workers split every global batch of 32 windows in halves, so their training must
follow the single run: the first epoch's loss equal to 1e-4 (relative), later epochs and the
test MAE within 2 % (the last, partial batch of each epoch is split unevenly, and Keras weighs
each worker's half-batch mean equally, so later epochs drift by a few tenths of a percent).
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from apps.common import cli, distribute
from apps.common.errors import UsageError

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tf_config(ports: list[int], index: int) -> str:
    workers = [f"127.0.0.1:{p}" for p in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def _batches(ds) -> list:
    return [np.asarray(b).tolist() for b in ds]


# ------------------------------------------------------------------------------- sharding
def test_shard_batches_gives_each_worker_a_contiguous_part_of_every_global_batch():
    import tensorflow as tf

    ds = tf.data.Dataset.range(11).batch(4)  # [0..3] [4..7] [8 9 10]
    assert _batches(distribute.shard_batches(ds, 2, 0)) == [[0, 1], [4, 5], [8, 9]]
    assert _batches(distribute.shard_batches(ds, 2, 1)) == [[2, 3], [6, 7], [10]]
    # three workers: parts of ceil(n / 3); the batch of 3 gives one example each
    parts = [_batches(distribute.shard_batches(ds, 3, i)) for i in range(3)]
    assert parts == [[[0, 1], [4, 5], [8]], [[2, 3], [6, 7], [9]], [[], [], [10]]]


def test_shard_batches_drops_batches_smaller_than_the_worker_count():
    import tensorflow as tf

    ds = tf.data.Dataset.range(5).batch(4)  # [0..3] [4]
    assert _batches(distribute.shard_batches(ds, 2, 0)) == [[0, 1]]
    assert _batches(distribute.shard_batches(ds, 2, 1)) == [[2, 3]]


def test_shard_batches_keeps_tuple_and_dict_elements_aligned():
    import tensorflow as tf

    x = np.arange(12, dtype="float32").reshape(6, 2)
    y = np.arange(6)
    pairs = tf.data.Dataset.from_tensor_slices((x, y)).batch(6)
    (px, py), = list(distribute.shard_batches(pairs, 2, 1))
    np.testing.assert_array_equal(px, x[3:])
    np.testing.assert_array_equal(py, y[3:])
    dicts = tf.data.Dataset.from_tensor_slices({"a": x, "b": y}).batch(6)
    (part,) = list(distribute.shard_batches(dicts, 3, 2))
    np.testing.assert_array_equal(part["a"], x[4:])
    np.testing.assert_array_equal(part["b"], y[4:])


def test_shard_batches_turns_off_tf_data_autosharding():
    import tensorflow as tf

    ds = distribute.shard_batches(tf.data.Dataset.range(4).batch(2), 2, 0)
    policy = ds.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.OFF


# ------------------------------------------------------------------------------ TF_CONFIG
@pytest.mark.parametrize(
    ("tf_config", "needle"),
    [
        (None, "set TF_CONFIG"),
        ("", "set TF_CONFIG"),
        ("{not json", "not a cluster spec"),
        ('{"cluster": {}}', "not a cluster spec"),
        ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "host:port"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "0..0"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "worker"),
    ],
)
def test_bad_tf_config_is_a_usage_error(monkeypatch, tf_config, needle):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(UsageError, match="--distribute multiworker") as e:
        distribute.cluster_spec()
    assert needle in str(e.value)


def test_cluster_spec_and_worker_run_dirs(monkeypatch, tmp_path):
    monkeypatch.setenv("TF_CONFIG", _tf_config([1, 2, 3], 2))
    assert distribute.cluster_spec() == (3, 2)
    run = tmp_path / "run"
    assert distribute.worker_run_dir(run, "multiworker") == tmp_path / "run.worker2"
    assert distribute.worker_run_dir(run, "mirrored") == run
    assert distribute.worker_run_dir(run, "none") == run
    monkeypatch.setenv("TF_CONFIG", _tf_config([1, 2, 3], 0))
    assert distribute.worker_run_dir(run, "multiworker") == run  # the chief writes DIR itself


def test_multiworker_without_tf_config_exits_2_and_leaves_no_run_dir(monkeypatch, tmp_path, capsys):
    from apps.forecast.verbs import APP, MAIN, VERBS

    monkeypatch.delenv("TF_CONFIG", raising=False)
    run = tmp_path / "run"
    argv = ["train", "--size", "tiny", "--distribute", "multiworker", "--run-dir", str(run)]
    code = cli.main(APP, VERBS, MAIN, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: --distribute multiworker: set TF_CONFIG")
    assert not run.exists()
    assert distribute.training_strategy() is None


# ---------------------------------------------------------------------------- real workers
def _train_cmd(run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "apps.forecast", "train", "--size", "tiny", "--epochs", "3",
        "--batch-size", "32", "--classical", "none", "--quiet", "--seed", "7",
        "--run-dir", str(run_dir), *extra,
    ]  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(PYTHONPATH=str(REPO), KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    env.update(extra)
    return env


def _history(run_dir: Path) -> list[float]:
    with open(run_dir / "history.csv", newline="") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def _mae(run_dir: Path) -> float:
    return json.loads((run_dir / "metrics.json").read_text())["mae"]


def test_two_workers_on_localhost_match_a_single_process_run(tmp_path):
    single = tmp_path / "single"
    ref = subprocess.run(_train_cmd(single), check=False, cwd=REPO, env=_env(),
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert ref.returncode == 0, ref.stderr[-2000:]

    ports = [_free_port(), _free_port()]
    cluster = tmp_path / "cluster"
    workers = [
        subprocess.Popen(
            _train_cmd(cluster, "--distribute", "multiworker"),
            cwd=REPO,
            env=_env(TF_CONFIG=_tf_config(ports, i)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 0)
    ]
    try:
        outputs = [w.communicate(timeout=300) for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, (_, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err[-2000:]

    chief, other = cluster, tmp_path / "cluster.worker1"
    assert (chief / "model.keras").is_file() and (other / "model.keras").is_file()
    assert _history(chief) == _history(other)  # one synchronised model
    assert _mae(chief) == pytest.approx(_mae(other), abs=1e-12)

    expected, got = _history(single), _history(chief)
    assert len(got) == len(expected) == 3
    assert got[0] == pytest.approx(expected[0], rel=1e-4)
    assert got == pytest.approx(expected, rel=0.02)
    assert _mae(chief) == pytest.approx(_mae(single), rel=0.02)
    print(f"single {expected} MAE {_mae(single):.4f}; two workers {got} MAE {_mae(chief):.4f}")


def test_mirrored_on_this_machine_trains_like_a_plain_run(tmp_path):
    plain, mirrored = tmp_path / "plain", tmp_path / "mirrored"
    for run_dir, extra in ((plain, ()), (mirrored, ("--distribute", "mirrored"))):
        proc = subprocess.run(_train_cmd(run_dir, *extra), check=False, cwd=REPO, env=_env(),
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
    # one CPU device: one replica, the same batches and the same initial weights
    assert _history(mirrored) == pytest.approx(_history(plain), rel=1e-5)
    assert _mae(mirrored) == pytest.approx(_mae(plain), rel=1e-5)


def test_a_stateful_model_is_refused_with_one_line(tmp_path, capsys):
    from apps.charlm import verbs as charlm

    run = tmp_path / "run"
    argv = ["train", "--size", "tiny", "--epochs", "1", "--quiet", "--distribute", "mirrored",
            "--run-dir", str(run)]  # fmt: skip
    code = cli.main(charlm.APP, charlm.VERBS, charlm.MAIN, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "is stateful" in err[0] and "without --distribute" in err[0]
    assert not run.exists()
    assert distribute.training_strategy() is None


@pytest.mark.parametrize(
    "app", ["sentiment", "charlm", "music", "tagger", "forecast", "captioning", "translation"]
)
def test_every_apps_train_command_takes_distribute(app):
    import importlib

    verbs = importlib.import_module(f"apps.{app}.verbs")
    train = next(v for v in verbs.VERBS if v.name == "train")
    parser = cli.build_parser(verbs.APP, train, verbs.VERBS, is_main=False)
    assert parser.parse_args(["--distribute", "mirrored"]).distribute == "mirrored"
    assert parser.parse_args([]).distribute == "none"
    with pytest.raises(UsageError, match="--distribute: invalid choice: 'tpu'"):
        parser.parse_args(["--distribute", "tpu"])
