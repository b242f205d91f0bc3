"""The ``python -m tuning`` command line: bad input, resume after a kill, chief + two workers.

Bad input runs in-process (it fails before any training). Resume and the distributed search
run real processes: a search killed with SIGKILL mid-trial, and a chief with two workers on
127.0.0.1, one of them killed mid-trial.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tuning.verbs import main

REPO = Path(__file__).resolve().parents[1]
TINY = ["--size", "tiny", "--steps", "10", "--eval-every", "5"]


def _run_main(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def _write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ bad input
def test_unknown_task(capsys, tmp_path):
    code, _, err = _run_main(
        ["cells", "--task", "poetry", "--run-dir", str(tmp_path / "r")], capsys
    )
    assert code == 2 and "invalid choice: 'poetry'" in _one_error_line(err)
    assert not (tmp_path / "r").exists()


def test_unknown_strategy(capsys, tmp_path):
    code, _, err = _run_main(
        ["cells", "--strategies", "evolution,grid", "--run-dir", str(tmp_path / "r")], capsys
    )
    assert code == 2 and "unknown strategy 'grid'" in _one_error_line(err)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not valid JSON: Expecting property name"),
        ({"nodes": [{"name": "a", "combine": "add"}], "h_out": "a"}, "missing field 'inputs'"),
        (
            {"nodes": [{"name": "a", "inputs": ["x", "h"], "activation": "swish"}], "h_out": "a"},
            "unknown activation 'swish'",
        ),
        (
            {
                "nodes": [
                    {"name": "a", "inputs": [{"source": "x", "linear": True}, "b"]},
                    {"name": "b", "inputs": ["a", "h"]},
                ],
                "h_out": "b",
            },
            "nodes form a cycle",
        ),
        (
            {
                "nodes": [
                    {"name": "a", "inputs": [{"source": "x", "linear": True}], "activation": "tanh"}
                ],
                "h_out": "a",
            },
            "input 'h': does not reach h_out",
        ),
    ],
)
def test_bad_genotype_files(capsys, tmp_path, content, expected):
    path = _write(tmp_path / "g.json", content)
    code, out, err = _run_main(["draw", str(path)], capsys)
    assert code == 2 and expected in _one_error_line(err) and out == ""
    code, _, err = _run_main(
        ["cells", "--size", "tiny", "--init", str(path), "--run-dir", str(tmp_path / "r")], capsys
    )
    line = _one_error_line(err)
    assert code == 2 and line.startswith("error: --init: ") and expected in line
    assert not (tmp_path / "r").exists()


def test_draw_prints_and_draws_a_preset(capsys, tmp_path):
    from seqlayers.genotype_presets import get_preset

    path = tmp_path / "gru.json"
    get_preset("gru").save(path)
    code, out, _ = _run_main(
        ["draw", str(path), "--input-dim", "88", "--units", "10", "--param-budget", "20000"], capsys
    )
    assert code == 0
    assert "h_next = z * h + (1 - z) * hc" in out
    assert "params at 10 units on 88 inputs: 2,970" in out  # 3 * (88*10 + 10*10 + 10)
    assert "budget 20,000: 48 units, 19,728 params" in out  # 3 * (88*48 + 48*48 + 48)
    assert (tmp_path / "gru.png").read_bytes()[:4] == b"\x89PNG"


def test_budget_too_small(capsys, tmp_path):
    argv = ["cells", "--size", "tiny", "--param-budget", "40", "--run-dir", str(tmp_path / "r")]
    code, _, err = _run_main(argv, capsys)
    assert code == 2 and "--param-budget: 40 is too small for the lstm baseline" in err
    code, _, err = _run_main(
        argv[:-2] + ["--strategies", "evolution", "--run-dir", str(tmp_path / "r")], capsys
    )
    assert code == 2 and "40 is too small for any candidate" in _one_error_line(err)
    assert not (tmp_path / "r").exists()


def test_missing_data_file(capsys, tmp_path):
    code, _, err = _run_main(
        [
            "cells",
            "--task",
            "jsb",
            "--data",
            str(tmp_path / "no.json"),
            "--run-dir",
            str(tmp_path / "r"),
        ],
        capsys,
    )
    assert code == 2 and "--data: no such file" in _one_error_line(err)


def test_resume_with_another_config_is_refused(capsys, tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps(
            {"app": "tuning.cells", "format": 1, "config": {"param_budget": 600, "trials": 3}}
        )
    )
    code, _, err = _run_main(["cells", "--param-budget", "900", "--run-dir", str(run)], capsys)
    assert code == 2 and "param_budget=600 -> 900" in _one_error_line(err)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_chief(capsys, tmp_path):
    port = _free_port()
    start = time.monotonic()
    code, _, err = _run_main(
        [
            "cells",
            "--distributed",
            "worker",
            "--oracle-port",
            str(port),
            "--connect-retries",
            "2",
            "--connect-timeout",
            "0.3",
            "--quiet",
            "--run-dir",
            str(tmp_path / "w"),
        ],
        capsys,
    )
    line = _one_error_line(err)
    assert code == 2 and f"the chief at 127.0.0.1:{port} is not reachable after 2 attempts" in line
    assert time.monotonic() - start < 30
    code, _, err = _run_main(["cells", "--distributed", "chief", "--tuner-id", "boss"], capsys)
    assert code == 2 and "a chief's id must contain 'chief'" in _one_error_line(err)


# ------------------------------------------------------------------------ real processes
def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    out = open(log, "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "tuning", *args],
        cwd=REPO,
        env=_env(),
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def _wait_for(predicate, timeout: float, what: str, procs=()) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        for p in procs:
            if p.poll() is not None:
                pytest.fail(f"process {p.args} exited ({p.returncode}) while waiting for {what}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _trials(study: Path) -> dict[str, dict]:
    out = {}
    for path in study.glob("trial_*/trial.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        out[state["trial_id"]] = state
    return out


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "leaderboard.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_resume_after_kill(tmp_path):
    run = tmp_path / "run"
    args = [
        "cells",
        *TINY,
        "--strategies",
        "evolution",
        "--trials",
        "3",
        "--quiet",
        "--run-dir",
        str(run),
    ]
    study = run / "studies" / "evolution"
    proc = _spawn(args, tmp_path / "first.log")
    try:
        _wait_for(
            lambda: any(t["status"] == "COMPLETED" for t in _trials(study).values()),
            300,
            "a completed trial",
            [proc],
        )
        _wait_for(
            lambda: sum(t["status"] == "RUNNING" for t in _trials(study).values()) == 1,
            300,
            "the next trial to start",
            [proc],
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {k: v for k, v in _trials(study).items() if v["status"] == "COMPLETED"}
    assert before and len(before) < 3
    again = subprocess.run(  # noqa: PLW1510 - the return code is asserted below
        [sys.executable, "-m", "tuning", *args],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    after = _trials(study)
    assert sorted(after) == ["0", "1", "2"]
    assert all(t["status"] == "COMPLETED" for t in after.values())
    for trial_id, state in before.items():  # completed trials are kept, not run again
        assert after[trial_id]["score"] == state["score"]
        assert after[trial_id]["metrics"] == state["metrics"]
    oracle = json.loads((study / "oracle.json").read_text())
    assert sorted(oracle["end_order"]) == ["0", "1", "2"]
    timing = json.loads((run / "timing.json").read_text())
    assert timing["evolution"]["trials_trained"] == 3
    assert [r["trial"] for r in _rows(run)] == ["0", "1", "2"]


def test_chief_and_two_workers_with_one_killed(tmp_path):
    port = str(_free_port())
    common = [
        "cells",
        *TINY,
        "--strategies",
        "evolution,lstm",
        "--trials",
        "3",
        "--oracle-port",
        port,
    ]
    chief = _spawn(
        [
            *common,
            "--distributed",
            "chief",
            "--worker-timeout",
            "8",
            "--run-dir",
            str(tmp_path / "chief"),
        ],
        tmp_path / "chief.log",
    )
    procs = [chief]
    try:

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", int(port))) == 0

        _wait_for(listening, 300, "the chief to listen", procs)
        for name in ("w1", "w2"):
            procs.append(
                _spawn(
                    [
                        *common,
                        "--distributed",
                        "worker",
                        "--tuner-id",
                        name,
                        "--run-dir",
                        str(tmp_path / name),
                    ],
                    tmp_path / f"{name}.log",
                )
            )
        studies = tmp_path / "chief" / "studies"

        def w1_is_training() -> bool:
            for path in studies.glob("*/oracle.json"):
                try:
                    ongoing = json.loads(path.read_text())["ongoing_trials"]
                except (OSError, json.JSONDecodeError, KeyError):
                    continue
                if any(tuner.startswith("w1@") for tuner in ongoing):
                    return True
            return False

        _wait_for(w1_is_training, 300, "worker w1 to start a trial", procs)
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait()
        assert chief.wait(timeout=600) == 0, (tmp_path / "chief.log").read_text()[-3000:]
        assert procs[2].wait(timeout=120) == 0, (tmp_path / "w2.log").read_text()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    log = (tmp_path / "chief.log").read_text()
    assert "w1@" in log and "silent for 8s; its trial goes back to the queue" in log
    rows = _rows(tmp_path / "chief")
    assert [(r["strategy"], r["trial"]) for r in rows] == [
        (s, str(k)) for s in ("evolution", "lstm") for k in range(3)
    ]
    assert all(r["status"] == "COMPLETED" and r["metric"] for r in rows)
    for study in ("evolution", "lstm"):
        oracle = json.loads((studies / study / "oracle.json").read_text())
        assert sorted(oracle["end_order"]) == ["0", "1", "2"]  # each trial ended exactly once
    assert (tmp_path / "chief" / "best_genotype.json").is_file()
    assert "worker w2: done" in (tmp_path / "w2.log").read_text()
