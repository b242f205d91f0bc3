"""apps.tagger end to end on builtin:teddy: train -> evaluate -> tag -> probe, and bad input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.common import cli
from apps.tagger import verbs
from apps.tagger.config import TaggerConfig
from apps.tagger.tokens import tokenize

REPO = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv: str, stdin: bytes | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def teddy_run(tmp_path_factory):
    from apps.tagger.train import train_and_evaluate

    path = tmp_path_factory.mktemp("tagger") / "run"
    metrics = train_and_evaluate(TaggerConfig.tiny(), path)
    return path, metrics


def test_run_dir_and_metrics_are_consistent(teddy_run):
    from apps.common.rundir import RunDir
    from apps.tagger.data import load_splits
    from apps.tagger.metrics import entity_scores
    from apps.tagger.train import load_trained, predict_tags

    path, metrics = teddy_run
    for name in ("config.json", "vocab.json", "model.keras", "history.csv", "metrics.json",
                 "plots/curves.png", "samples/test_predictions.txt"):  # fmt: skip
        assert (path / name).is_file(), name
    assert json.loads((path / "metrics.json").read_text()) == metrics
    assert metrics["task"] == "ner" and metrics["sentences"] == 37
    meta = json.loads((path / "config.json").read_text())
    assert meta["task"] == "ner" and meta["scheme"] == "IOB2" and "GENERATED" in meta[
        "data_description"]  # fmt: skip
    # the reported F1 is exactly seqeval's on the model's predictions of the test split
    trained = load_trained(RunDir(path, "apps.tagger"))
    config = TaggerConfig.tiny()
    test = load_splits(config.data, seed=config.seed, generated=config.generated).test
    pred = predict_tags(trained, [s.tokens for s in test])
    assert entity_scores([s.tags for s in test], pred)["f1"] == metrics["f1"]
    assert set(trained.vocab.tags) == {"O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"}


def test_evaluate_prints_one_json_line(teddy_run, capsys):
    path, _ = teddy_run
    code, out, _ = run_cli(capsys, "evaluate", "--run-dir", str(path), "--split", "all",
                           "--quiet")  # fmt: skip
    assert code == 0 and len(out.strip().splitlines()) == 1
    result = json.loads(out)
    assert result["sentences"] == 300 + 37 + 37 and result["split"] == "all"
    assert json.loads((path / "metrics.json").read_text()) == result


def test_tag_arguments_json_stdin_and_long_sentence(teddy_run, capsys, monkeypatch):
    path, _ = teddy_run
    sentence = 'He said, "Teddy Roosevelt was a great President!"'
    code, out, _ = run_cli(capsys, "tag", "--run-dir", str(path), "--json", sentence)
    record = json.loads(out)
    assert code == 0 and record["tokens"] == tokenize(sentence)
    assert len(record["tags"]) == len(record["tokens"])
    for ent in record["entities"]:
        assert record["tags"][ent["start"]] == "B-" + ent["type"]
    code, out, _ = run_cli(capsys, "tag", "--run-dir", str(path), stdin=b"one two\n\n\nthree\n",
                           monkeypatch=monkeypatch)  # fmt: skip
    assert code == 0 and out.count("entities:") == 2
    long_sentence = " ".join(["word"] * 10_000)
    code, out, _ = run_cli(capsys, "tag", "--run-dir", str(path), "--json", long_sentence)
    assert code == 0 and len(json.loads(out)["tags"]) == 10_000


def test_probe_on_a_trained_run(teddy_run, capsys):
    path, _ = teddy_run
    code, out, _ = run_cli(capsys, "probe", "--run-dir", str(path), "--json", "--quiet")
    assert code == 0
    (result,) = json.loads(out)
    assert result["model"] == "bilstm" and result["bidirectional"] is True
    assert result["pairs"] >= 20 and 0 <= result["both_right"] <= result["pairs"]
    assert (path / "probe.json").is_file() and (path / "plots" / "probe.png").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tag", "--run-dir", "{run}", "   "], "sentence 1 is empty"),
        (["tag", "--run-dir", "{run}", "--file", "{blank}"], "no sentence to tag"),
        (["tag", "--run-dir", "{run}", "--file", "{blank}", "x"], "not both"),
        (["evaluate", "--run-dir", "{run}", "--data", "{ud}"], "does not hold the ner tags"),
        (["evaluate", "--run-dir", "{run}", "--data", "builtin:nope"], "unknown builtin"),
        (["train", "--run-dir", "{new}", "--model", "transformer"], "unknown model"),
        (
            ["train", "--run-dir", "{new}", "--data", "{bad_tags}", "--size", "tiny"],
            "tag 'PERSON' is outside",
        ),
        (
            ["train", "--run-dir", "{new2}", "--data", "{malformed}", "--size", "tiny"],
            "expected 'token<TAB>tag'",
        ),
        (["probe", "--pairs", "{blank}", "--run-dir", "{run}"], "not valid JSON"),
    ],
)
def test_bad_input_exits_2(teddy_run, tmp_path, capsys, argv, message):
    path, _ = teddy_run
    (tmp_path / "blank.txt").write_text("\n  \n")
    (tmp_path / "tags.conll").write_text("John\tPERSON\n\nruns\tO\n")
    (tmp_path / "bad.conll").write_text("John\tB-PER\nruns\n")
    (tmp_path / "ud").mkdir()
    (tmp_path / "ud" / "x.conllu").write_text("1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n")
    names = {"run": path, "blank": tmp_path / "blank.txt", "ud": tmp_path / "ud",
             "new": tmp_path / "n1", "new2": tmp_path / "n2", "bad_tags": tmp_path / "tags.conll",
             "malformed": tmp_path / "bad.conll"}  # fmt: skip
    code, _, err = run_cli(capsys, *[a.format(**names) for a in argv])
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_subprocess_error_is_one_line(teddy_run):
    path, _ = teddy_run
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "apps.tagger", "tag", "--run-dir",
                           str(path.parent / "missing"), "hello"], env=env, capture_output=True,
                          timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 2
    assert (
        proc.stderr.decode().strip()
        == f"error: --run-dir: no such run dir: {path.parent / 'missing'}"
    )


def test_help_lists_defaults(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "default: builtin:teddy" in out and "probe" in out


def test_upos_recipe_flags_build_the_benchmarked_config(capsys):
    from apps.tagger.config import UPOS_RECIPE

    train = next(v for v in verbs.VERBS if v.name == "train")
    parser = cli.build_parser(verbs.APP, train, verbs.VERBS, is_main=False)
    args = parser.parse_args(["--size", "base", "--layers", "2", "--char-filters", "128",
                              "--char-kernel", "5", "--word-dropout", "0.25", "--min-count", "1",
                              "--epochs", "20"])  # fmt: skip
    assert cli.config_from_args(verbs.APP, args) == TaggerConfig.base().replace(**UPOS_RECIPE)
    code, _, err = run_cli(capsys, "train", "--char-kernel", "4")
    assert code == 2 and "config: char_kernel must be odd and >= 1, got 4" in err
    assert len(err.strip().splitlines()) == 1
