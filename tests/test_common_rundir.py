"""apps.common.rundir: atomic writes and run-dir ownership."""

from __future__ import annotations

import json
import os

import pytest

from apps.common.errors import RunDirError, UsageError
from apps.common.rundir import (
    RunDir,
    atomic_output,
    atomic_write_json,
    atomic_write_text,
    default_run_dir,
)


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new contents")
    assert target.read_text() == "new contents"
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]


def test_failed_writer_leaves_previous_file_and_no_temp(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"accuracy": 0.5})
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_output(target) as tmp:
        tmp.write_text('{"accuracy": 0.9, "trunc')
        raise RuntimeError("disk on fire")
    assert json.loads(target.read_text()) == {"accuracy": 0.5}
    assert sorted(os.listdir(tmp_path)) == ["metrics.json"]


def test_failed_first_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="boom"), atomic_output(tmp_path / "model.keras") as tmp:
        assert tmp.name.endswith(".model.keras") and tmp.parent == tmp_path
        tmp.write_bytes(b"partial")
        raise ValueError("boom")
    assert os.listdir(tmp_path) == []


def test_writer_that_creates_a_folder(tmp_path):
    with atomic_output(tmp_path / "saved_model") as tmp:
        tmp.mkdir()
        (tmp / "a.pb").write_bytes(b"x")
    assert (tmp_path / "saved_model" / "a.pb").read_bytes() == b"x"
    assert os.listdir(tmp_path) == ["saved_model"]


def test_layout_and_config(tmp_path):
    run = RunDir.prepare(tmp_path / "r", "apps.sentiment")
    run.write_config({"model": "bilstm"}, note="x")
    for sub in ("checkpoints", "plots", "logs", "samples", "export"):
        assert (run.path / sub).is_dir()
    meta = json.loads(run.config_json.read_text())
    assert meta == {
        "app": "apps.sentiment",
        "format": 1,
        "config": {"model": "bilstm"},
        "note": "x",
    }
    assert RunDir.open(run.path, "apps.sentiment").read_config() == {"model": "bilstm"}
    assert run.model_path == run.path / "model.keras"
    assert run.vocab_json.name == "vocab.json" and run.history_csv.name == "history.csv"


def test_run_dir_of_another_app_is_refused(tmp_path):
    run = RunDir.prepare(tmp_path / "t", "apps.translation")
    run.write_config({"cell": "gru"})
    before = {p: p.stat().st_mtime_ns for p in run.path.rglob("*")}
    for opener in (RunDir.open, RunDir.prepare):
        with pytest.raises(UsageError) as info:
            opener(run.path, "apps.sentiment")
        assert f"run dir {run.path} was made by apps.translation, not apps.sentiment" in str(
            info.value
        )
    assert {p: p.stat().st_mtime_ns for p in run.path.rglob("*")} == before


def test_non_run_dirs_are_refused(tmp_path):
    with pytest.raises(RunDirError, match="no such run dir"):
        RunDir.open(tmp_path / "missing", "apps.sentiment")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="is not a run dir"):
        RunDir.open(tmp_path / "plain", "apps.sentiment")
    with pytest.raises(RunDirError, match="not empty and not a run dir"):
        RunDir.prepare(tmp_path / "plain", "apps.sentiment")
    assert os.listdir(tmp_path / "plain") == ["notes.txt"]
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        RunDir.open(tmp_path / "f", "apps.sentiment")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{")
    with pytest.raises(RunDirError, match="not readable JSON"):
        RunDir.open(tmp_path / "broken", "apps.sentiment")


def test_empty_folder_is_accepted_and_missing_model_reported(tmp_path):
    (tmp_path / "empty").mkdir()
    run = RunDir.prepare(tmp_path / "empty", "apps.sentiment")
    with pytest.raises(RunDirError, match="has no model.keras yet"):
        run.require_model()


def test_default_run_dir_is_fresh(tmp_path):
    first = default_run_dir("apps.sentiment", root=tmp_path)
    assert first.parent == tmp_path / "sentiment"
    first.mkdir(parents=True)
    second = default_run_dir("apps.sentiment", root=tmp_path)
    assert second != first and second.parent == first.parent


def test_write_config_keeps_extra_keys(tmp_path):
    run = RunDir.prepare(tmp_path / "r", "apps.sentiment")
    run.write_config({"epochs": 1}, labels=["neg", "pos"])
    run.write_config({"epochs": 5})
    assert json.loads(run.config_json.read_text()) == {
        "app": "apps.sentiment",
        "format": 1,
        "config": {"epochs": 5},
        "labels": ["neg", "pos"],
    }


def test_a_folder_of_model_runs_is_refused_where_one_model_is_needed(tmp_path):
    group = RunDir.prepare(tmp_path / "cmp", "apps.sentiment")
    group.write_config({"models": ["lstm", "bilstm"]}, kind="compare")
    single = RunDir.prepare(tmp_path / "cmp" / "models" / "bilstm", "apps.sentiment")
    single.write_config({"model": "bilstm"})
    assert RunDir.kind_of(group.path, "apps.sentiment") == "compare"
    assert RunDir.kind_of(single.path, "apps.sentiment") == "train"
    assert RunDir.kind_of(group.path, "apps.tagger") is None
    with pytest.raises(RunDirError, match=r"is a compare run; give one of its models, e\.g\. .*"
                                          r"models/bilstm"):  # fmt: skip
        RunDir.open_model_run(group.path, "apps.sentiment", group_kind="compare", example="bilstm")
    with pytest.raises(RunDirError, match="no model.keras yet"):
        RunDir.open_model_run(single.path, "apps.sentiment", group_kind="compare", example="x")
    opened = RunDir.open_model_run(single.path, "apps.sentiment", group_kind="compare",
                                   example="x", need_model=False)  # fmt: skip
    assert opened.path == single.path
