"""apps.sentiment end to end: train -> evaluate -> predict, bad input, resume after SIGKILL."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from apps.sentiment.config import SentimentConfig

REPO = Path(__file__).resolve().parents[1]
LAYOUT = [
    "checkpoints",
    "config.json",
    "export",
    "history.csv",
    "logs",
    "metrics.json",
    "model.keras",
    "plots",
    "samples",
    "vocab.json",
]


def cli(*args: str, cwd: Path, stdin: bytes | None = None, timeout: float = 240):
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "apps.sentiment", *args],
        cwd=cwd,
        env=env,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def history_epochs(run: Path) -> list[int]:
    with open(run / "history.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def check_metrics(metrics: dict, n_examples: int) -> None:
    for key in (
        "accuracy",
        "macro_f1",
        "loss",
        "per_class",
        "confusion_matrix",
        "labels",
        "examples",
        "model",
        "data",
        "split",
        "params",
        "dictionary_size",
        "hidden_size",
    ):
        assert key in metrics, key
    assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["macro_f1"] <= 1.0
    assert metrics["labels"] == ["negative", "neutral", "positive"]
    assert metrics["examples"] == n_examples
    cm = np.array(metrics["confusion_matrix"])
    assert cm.shape == (3, 3) and cm.sum() == n_examples
    assert metrics["accuracy"] == pytest.approx(np.trace(cm) / n_examples)
    for name, row in metrics["per_class"].items():
        assert 0.0 <= row["precision"] <= 1.0 and 0.0 <= row["recall"] <= 1.0, name
        assert row["support"] == cm[metrics["labels"].index(name)].sum()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny GRU trained through the command line (150 examples per split, 1 epoch)."""
    work = tmp_path_factory.mktemp("sentiment")
    run = work / "run"
    proc = cli(
        "train",
        "--size",
        "tiny",
        "--limit",
        "150",
        "--model",
        "gru",
        "--run-dir",
        str(run),
        "--quiet",
        cwd=work,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert "data: builtin:tweets — 3-class tweets corpus" in out
    assert f"run dir: {run}" in out
    return run


def test_train_and_evaluate_in_process(tmp_path):
    from apps.sentiment.train import train_and_evaluate

    config = SentimentConfig.tiny().replace(limit=200, model="lstm")
    metrics = train_and_evaluate(config, tmp_path / "run")
    check_metrics(metrics, 200)
    run = tmp_path / "run"
    assert sorted(os.listdir(run)) == LAYOUT
    assert json.loads((run / "metrics.json").read_text()) == metrics
    assert history_epochs(run) == [0]
    assert (run / "plots" / "confusion.png").is_file() and (run / "plots" / "curves.png").is_file()
    meta = json.loads((run / "config.json").read_text())
    assert meta["app"] == "apps.sentiment" and meta["config"] == config.to_dict()
    import keras

    import seqlayers  # noqa: F401
    from apps.common.text import WordTokenizer

    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    assert model.count_params() == metrics["params"]
    assert WordTokenizer.load(run / "vocab.json").vocab_size == metrics["dictionary_size"]


def test_evaluate_prints_one_json_line(trained):
    before = json.loads((trained / "metrics.json").read_text())
    proc = cli("evaluate", "--run-dir", str(trained), cwd=trained.parent)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1
    metrics = json.loads(lines[0])
    check_metrics(metrics, 150)
    assert metrics["model"] == "gru" and metrics["split"] == "test"
    assert json.loads((trained / "metrics.json").read_text()) == metrics
    assert metrics["accuracy"] == before["accuracy"]  # same model, same test split


def test_predict_args_json_and_stdin(trained, tmp_path):
    big = ("good " * 250_000).encode()  # 1.25 MB on one line
    proc = cli(
        "predict",
        "--run-dir",
        str(trained),
        "--json",
        cwd=tmp_path,
        stdin=b"I love this phone\n\n   \nterrible service, never again\n" + big,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    records = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [r["text"][:17] for r in records] == [
        "I love this phone",
        "terrible service,",
        "good good good go",
    ]
    for r in records:
        assert set(r) == {"text", "label", "probabilities"}
        probs = r["probabilities"]
        assert list(probs) == ["negative", "neutral", "positive"]
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert r["label"] == max(probs, key=probs.get)
    assert proc.stderr.decode().splitlines() == [
        "note: stdin: text 3 is 1,250,000 bytes; only its first 1 MB is used"
    ]
    proc = cli("predict", "--run-dir", str(trained), "I love this phone", "awful", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 2 and lines[0].endswith("I love this phone")
    assert lines[0].split()[0] in ("negative", "neutral", "positive")
    assert "negative=" in lines[0] and "positive=" in lines[0]
    # the same text gets the same probabilities on its own and in a batch
    assert records[0]["probabilities"]["positive"] == pytest.approx(
        float(lines[0].split("positive=")[1].split()[0]), abs=1e-3
    )


def _foreign_run(tmp_path: Path) -> Path:
    other = tmp_path / "translation_run"
    other.mkdir()
    (other / "config.json").write_text(
        json.dumps({"app": "apps.translation", "format": 1, "config": {"cell": "gru"}})
    )
    return other


def test_bad_input_exits_2_with_one_line_and_changes_nothing(trained, tmp_path):
    bad_file = tmp_path / "latin1.txt"
    bad_file.write_bytes("great phone\nca\xe8 mal\n".encode("latin-1"))
    bad_config = tmp_path / "bad.json"
    bad_config.write_text(json.dumps({"units": 8, "hiden_size": 3}))
    foreign = _foreign_run(tmp_path)
    cases = [
        (
            ["predict", "--run-dir", str(trained), ""],
            "error: text 1 is empty; give words to classify",
        ),
        (["predict", "--run-dir", str(trained), "ok", "   "], "error: text 2 is empty"),
        (
            ["predict", "--run-dir", str(trained), "--file", str(bad_file)],
            f"error: --file: {bad_file} is not valid UTF-8: byte 0xe8 at byte offset 14 (line 2)",
        ),
        (["predict", "--run-dir", str(trained)], "error: stdin has no text to classify"),
        (
            ["evaluate", "--run-dir", str(foreign)],
            f"error: --run-dir: run dir {foreign} was made by apps.translation, not apps.sentiment",
        ),
        (
            ["train", "--run-dir", str(foreign), "--size", "tiny"],
            f"error: --run-dir: run dir {foreign} was made by apps.translation, not apps.sentiment",
        ),
        (
            ["train", "--run-dir", str(trained), "--config", str(bad_config)],
            "error: --config " + str(bad_config) + ": unknown key 'hiden_size'",
        ),
        (
            ["train", "--run-dir", str(trained), "--model", "lstm"],
            "error: --run-dir: "
            + str(trained)
            + " was trained with another config (model='gru' -> 'lstm')",
        ),
        (
            ["evaluate", "--run-dir", str(trained), "--data", str(tmp_path / "nope.csv")],
            f"error: --data: no such file or directory: {tmp_path / 'nope.csv'}",
        ),
        (
            ["train", "--model", "lstmm", "--run-dir", str(trained)],
            "error: --model: unknown model 'lstmm'",
        ),
        (["train", "--epochs", "0"], "error: argument --epochs: must be an integer >= 1, got '0'"),
    ]
    before, before_foreign = hashes(trained), hashes(foreign)
    for argv, message in cases:
        proc = cli(*argv, cwd=tmp_path)
        err = proc.stderr.decode()
        assert proc.returncode == 2, (argv, err)
        assert len(err.splitlines()) == 1 and err.startswith(message), (argv, err)
        assert proc.stdout == b"", argv
    assert hashes(trained) == before and hashes(foreign) == before_foreign
    assert not (tmp_path / "runs").exists()  # nothing created for the refused commands


def _epoch(meta: Path) -> int | None:
    """The epoch in keras' backup metadata, or None while it is missing or half written."""
    try:
        return json.loads(meta.read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return None


def test_resume_after_sigkill(tmp_path):
    run = tmp_path / "run"
    argv = [
        "-m",
        "apps.sentiment",
        "train",
        "--size",
        "tiny",
        "--limit",
        "1000",
        "--epochs",
        "3",
        "--model",
        "gru",
        "--run-dir",
        str(run),
        "--quiet",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    meta = run / "checkpoints" / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 180
    try:
        # kill once the first checkpoint is complete: keras creates the metadata file before
        # it writes the epoch into it (a kill mid-write is tests/test_kill_resume.py's case)
        while _epoch(meta) is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "training ended before its first checkpoint could be seen"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = json.loads(meta.read_text())["epoch"]
    assert 1 <= done < 3
    assert not (run / "metrics.json").exists()

    again = cli(*argv[2:], cwd=tmp_path)
    assert again.returncode == 0, again.stderr.decode()
    assert f"resuming from epoch {done} of 3" in again.stdout.decode()
    assert history_epochs(run) == [0, 1, 2]  # continued: no epoch repeated or restarted
    assert json.loads(meta.read_text())["epoch"] == 3
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert not list(run.rglob(".tmp-*"))

    # a finished run can be extended: only the run dir and the new epoch count are needed
    more = cli("train", "--run-dir", str(run), "--epochs", "4", "--quiet", cwd=tmp_path)
    assert more.returncode == 0, more.stderr.decode()
    assert "resuming from epoch 3 of 4" in more.stdout.decode()
    assert history_epochs(run) == [0, 1, 2, 3]
    assert json.loads((run / "config.json").read_text())["labels"] == [
        "negative",
        "neutral",
        "positive",
    ]


def test_probe_pairs_file():
    from apps.common.text import split_words
    from apps.sentiment.train import load_probe_pairs

    pairs = load_probe_pairs()
    assert len(pairs) >= 12
    for positive, negative in pairs:
        assert positive != negative
        assert sorted(split_words(positive)) == sorted(split_words(negative))


def test_compare_and_probe(tmp_path, capsys):
    from apps.common import cli as common_cli
    from apps.sentiment import verbs

    out = tmp_path / "cmp"
    argv = ["compare", "--size", "tiny", "--limit", "100", "--models", "bow,gru",
            "--run-dir", str(out), "--quiet"]  # fmt: skip
    assert common_cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, argv) == 0
    report = (out / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| Model | Parameters | Dictionary size | Hidden size | Accuracy")
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["bow", "gru"]
    assert (out / "plots" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    compared = json.loads((out / "compare.json").read_text())["rows"]
    for row in compared:
        metrics = json.loads((out / "models" / row["model"] / "metrics.json").read_text())
        assert row["accuracy"] == metrics["accuracy"] and row["params"] == metrics["params"]
        assert row["hidden_size"] == 16 and row["dictionary_size"] == metrics["dictionary_size"]
    capsys.readouterr()

    assert (
        common_cli.main(
            verbs.APP, verbs.VERBS, verbs.MAIN, ["probe", "--run-dir", str(out), "--json"]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip())
    assert [s["model"] for s in summary] == ["bow", "gru"]
    bow = summary[0]
    assert bow["pairs"] >= 12 and bow["max_abs_diff"] == 0.0 and bow["correct"] == 0
    details = json.loads((out / "probe.json").read_text())["results"][0]["results"]
    for pair in details:  # a bag of words cannot tell the two orders apart
        assert pair["positive_probs"] == pair["negative_probs"] and pair["correct"] is False
    assert 0 <= summary[1]["correct"] <= summary[1]["pairs"]


def test_probe_refuses_an_order_sensitive_bow(tmp_path):
    from apps.common.rundir import RunDir
    from apps.common.text import WordTokenizer
    from apps.sentiment.model import build_model
    from apps.sentiment.train import TrainedRun, load_probe_pairs, probe_trained

    pairs = load_probe_pairs()
    tokenizer = WordTokenizer(200).fit([t for pair in pairs for t in pair])
    lstm = build_model("lstm", tokenizer.vocab_size, 3, embed_dim=8, units=8, seed=0)
    labels = ["negative", "neutral", "positive"]
    config = SentimentConfig.tiny()
    run = RunDir(tmp_path, "apps.sentiment")
    result = probe_trained(
        TrainedRun(run, config.replace(model="lstm"), tokenizer, labels, lstm), pairs
    )
    assert result["max_abs_diff"] > 0  # an LSTM sees word order
    with pytest.raises(RuntimeError, match="bag of words must be order-invariant"):
        probe_trained(TrainedRun(run, config.replace(model="bow"), tokenizer, labels, lstm), pairs)
