"""apps.common.cli: the shared command-line skeleton (dispatch, help, exit codes, resume rules)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.common import cli
from apps.common.config import AppConfig
from apps.common.errors import DataError
from apps.common.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class EchoConfig(AppConfig):
    data: str = "builtin:toy"
    model: str = "lstm"
    epochs: int = 2
    batch_size: int = 8
    seed: int = 0
    units: int = 16

    @classmethod
    def tiny(cls):
        return cls(epochs=1, units=4)

    @classmethod
    def small(cls):
        return cls()

    @classmethod
    def base(cls):
        return cls(epochs=20, units=128)


def _units_flag(parser):
    parser.add_argument("--units", type=cli.positive_int, help="hidden size")


APP = cli.AppSpec("apps.echo", "Echo app for tests.", EchoConfig, ("toy",), "small", _units_flag)
CALLS: list = []


def _train(args):
    config, run, resumed = cli.prepare_training(args.app, args)
    CALLS.append((config, run, resumed))


def _boom(args):
    raise RuntimeError("unexpected")


def _fail(args):
    raise DataError("--data: cannot read it\nsecond line")


def _train_args(parser):
    cli.add_train_arguments(parser, APP)


VERBS = [
    cli.Verb("train", "train a model", _train_args, _train),
    cli.Verb("boom", "fails unexpectedly", lambda p: None, _boom),
    cli.Verb("fail", "fails with bad input", lambda p: None, _fail),
]
MAIN = cli.Verb("main", "train, evaluate, show examples", _train_args, _train)


def run(argv, capsys):
    CALLS.clear()
    code = cli.main(APP, VERBS, MAIN, argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_flag_with_its_default(capsys):
    code, out, _ = run(["train", "--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())
    for flag, default in [
        ("--data SRC", "(default: builtin:toy, from --size small)"),
        ("--model NAME", "(default: lstm, from --size small)"),
        ("--epochs N", "(default: 2, from --size small)"),
        ("--batch-size N", "(default: 8, from --size small)"),
        ("--run-dir DIR", "(default: runs/echo/<timestamp>/)"),
        ("--seed N", "(default: 0, from --size small)"),
        ("--config FILE.json", "(default: none)"),
        ("--size {tiny,small,base}", "(default: small)"),
        ("--quiet", "(default: False)"),
        ("--units UNITS", "hidden size (default: none)"),
    ]:
        assert flag in flat, flag
        assert default in flat[flat.index(flag) :], (flag, default)
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and "commands:" in out and "boom" in out and "--epochs" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--epochs", "0"], "error: argument --epochs: must be an integer >= 1, got '0'"),
        (
            ["train", "--batch-size", "x"],
            "error: argument --batch-size: must be an integer, got 'x'",
        ),
        (["train", "--size", "huge"], "error: argument --size: invalid choice: 'huge'"),
        (["trian"], "error: unknown command 'trian' (choose from train, boom, fail;"),
        (
            ["train", "--data", "/nonexistent"],
            "error: --data: no such file or directory: /nonexistent",
        ),
        (["train", "--data", "builtin:nope"], "error: --data: unknown builtin dataset 'nope'"),
        (["fail"], "error: --data: cannot read it second line"),
    ],
)
def test_bad_usage_exits_2_with_one_line(argv, message, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(message), err
    assert CALLS == []


def test_unexpected_failure_exits_1_with_traceback(capsys):
    code, _, err = run(["boom"], capsys)
    assert code == 1 and "Traceback" in err and "RuntimeError: unexpected" in err


def test_precedence_and_resume_rules(tmp_path, capsys):
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"units": 64, "epochs": 3}))
    rd = tmp_path / "run"
    args = [
        "train",
        "--run-dir",
        str(rd),
        "--size",
        "tiny",
        "--config",
        str(cfg_file),
        "--units",
        "32",
    ]
    code, _, _ = run(args, capsys)
    assert code == 0
    config, run_dir, resumed = CALLS[0]
    assert (config.epochs, config.units, config.model, resumed) == (3, 32, "lstm", False)
    assert run_dir.path == rd
    assert RunDir.open(rd, "apps.echo").read_config()["units"] == 32
    # same command: resumes with the stored config
    assert run(args, capsys)[0] == 0 and CALLS[0][2] is True and CALLS[0][0] == config
    # only the run dir: resumes, keeps the stored config (not the default preset)
    assert run(["train", "--run-dir", str(rd)], capsys)[0] == 0 and CALLS[0][0] == config
    # more epochs is allowed
    assert run(["train", "--run-dir", str(rd), "--epochs", "5"], capsys)[0] == 0
    assert CALLS[0][0].epochs == 5 and RunDir.open(rd, "apps.echo").read_config()["epochs"] == 5
    # changing the architecture is refused, and nothing is written
    before = (rd / "config.json").read_bytes()
    code, _, err = run(["train", "--run-dir", str(rd), "--model", "gru", "--units", "8"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "model='lstm' -> 'gru', units=32 -> 8" in err and "give a new --run-dir" in err
    assert (rd / "config.json").read_bytes() == before


def test_unknown_config_key_exits_2(tmp_path, capsys):
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"unitz": 64}))
    code, _, err = run(
        ["train", "--run-dir", str(tmp_path / "r"), "--config", str(cfg_file)], capsys
    )
    assert code == 2 and "unknown key 'unitz' (did you mean 'units'?" in err
    assert not (tmp_path / "r").exists()


def test_sentiment_bad_data_path_in_a_subprocess(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "apps.sentiment",
            "train",
            "--data",
            "/nonexistent",
            "--run-dir",
            str(tmp_path / "r"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    expected = (
        "error: --data: no such file or directory: /nonexistent "
        "(give builtin:NAME, tfds:NAME[:SPLIT] or a path)"
    )
    assert proc.stderr.splitlines() == [expected]
    assert not (tmp_path / "r").exists()


def test_ensemble_helpers_refuse_a_used_folder_and_name_the_member(tmp_path):
    from apps.common.errors import RunDirError, UsageError

    cli.check_new_folder(tmp_path / "new")  # absent: fine
    (tmp_path / "empty").mkdir()
    cli.check_new_folder(tmp_path / "empty")  # empty: fine
    (tmp_path / "file").write_text("x")
    for used in ("file", "."):
        with pytest.raises(UsageError, match="exists and is not empty"):
            cli.check_new_folder(tmp_path / used)

    def refuse(path):
        raise RunDirError(f"--run-dir: {path} is not a run dir")

    with pytest.raises(UsageError, match=r"^RUN: .*b is not a run dir$"):
        cli.open_members(
            [tmp_path / "a", tmp_path / "b"], lambda p: p if p.name == "a" else refuse(p)
        )
    with pytest.raises(UsageError, match="two or more runs, got 1"):
        cli.open_members([tmp_path / "a"], lambda p: p)
