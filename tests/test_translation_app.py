"""End to end: tiny train / evaluate / translate / attend runs on builtin:numbers and on a slice
of the shared Tatoeba spa-eng pairs, and the command line's answers to bad input."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest

from apps.common import cli
from apps.common.errors import RunDirError
from apps.common.rundir import RunDir
from apps.translation import verbs
from apps.translation.config import TranslationConfig
from apps.translation.train import (
    APP_MODULE,
    load_data,
    load_trained,
    train_and_evaluate,
    translate_pairs,
)


def run_cli(argv, capsys, stdin: bytes | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    status = cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, argv)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny attention run and one tiny noattention run on builtin:numbers."""
    root = tmp_path_factory.mktemp("translation")
    config = TranslationConfig.tiny().replace(epochs=2)
    metrics = train_and_evaluate(config, root / "att")
    train_and_evaluate(config.replace(model="noattention"), root / "noatt")
    return root / "att", root / "noatt", metrics


def test_train_writes_a_complete_run_dir(runs):
    att, _, metrics = runs
    for name in ("config.json", "vocab.json", "model.keras", "history.csv", "metrics.json",
                 "plots/curves.png", "plots/by_length.png"):  # fmt: skip
        assert (att / name).is_file(), name
    assert json.loads((att / "metrics.json").read_text(encoding="utf-8")) == json.loads(
        json.dumps(metrics, ensure_ascii=False)
    )
    meta = RunDir.open(att, APP_MODULE).read_meta()
    assert (meta["source_lang"], meta["target_lang"]) == ("English", "German")
    assert metrics["examples"] == 40 and metrics["beam"] == 1
    assert 0.0 <= metrics["exact_match"] <= 100.0 and 0.0 <= metrics["chrf"] <= 100.0
    assert sum(r["count"] for r in metrics["by_length"]) == 40
    # The reported exact match is the share of test translations equal to their reference.
    trained = load_trained(RunDir.open(att, APP_MODULE))
    hyps, refs, _ = translate_pairs(trained, load_data(trained.config).test)
    assert metrics["exact_match"] == pytest.approx(
        100.0 * np.mean([h == r for h, r in zip(hyps, refs)])
    )


def test_rerunning_train_resumes_without_retraining(runs):
    att, _, metrics = runs
    rows = (att / "history.csv").read_text(encoding="utf-8").count("\n")
    again = train_and_evaluate(TranslationConfig.tiny().replace(epochs=2), att)
    assert (att / "history.csv").read_text(encoding="utf-8").count("\n") == rows == 3
    for key in ("bleu", "chrf", "exact_match", "token_accuracy"):
        assert again[key] == metrics[key]
    with pytest.raises(RunDirError, match="another config"):
        train_and_evaluate(TranslationConfig.tiny().replace(units=8), att)


def test_evaluate_prints_one_json_line_and_compares_runs(runs, capsys):
    att, noatt, metrics = runs
    status, out, _ = run_cli(["evaluate", "--run-dir", str(att), "--compare", str(noatt)], capsys)
    assert status == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["bleu"] == pytest.approx(metrics["bleu"]) and result["chrf"] == pytest.approx(
        metrics["chrf"]
    )
    assert result["compared"]["model"] == "noattention"
    assert (att / "plots" / "bleu_by_length.png").stat().st_size > 1000


def test_translate_arguments_json_and_file(runs, capsys, tmp_path):
    att, _, _ = runs
    status, out, _ = run_cli(["translate", "--run-dir", str(att), "--beam", "1", "--json",
                              "three hundred and twenty-one", "forty-two"], capsys)  # fmt: skip
    assert status == 0
    records = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["source"] for r in records] == ["three hundred and twenty-one", "forty-two"]
    assert records[0]["source_tokens"] == [
        "three",
        "hundred",
        "and",
        "twenty",
        "\uffed-\uffed",
        "one",
    ]
    trained = load_trained(RunDir.open(att, APP_MODULE))
    direct = trained.translator().translate(["three hundred and twenty-one", "forty-two"], beam=1)
    assert [r["translation"] for r in records] == [d.text for d in direct]
    # --file: a blank line gives a blank output line, so outputs stay aligned with inputs.
    path = tmp_path / "in.txt"
    path.write_text("forty-two\n\nforty-two\n", encoding="utf-8")
    status, out, _ = run_cli(
        ["translate", "--run-dir", str(att), "--beam", "1", "--file", str(path)], capsys
    )
    assert status == 0
    assert out.split("\n")[:3] == [direct[1].text, "", direct[1].text]


def test_translate_stdin_unknown_words_and_long_input(runs, capsys, monkeypatch):
    att, _, _ = runs
    long = " ".join(["seven"] * 60)
    status, out, err = run_cli(
        ["translate", "--run-dir", str(att), "--beam", "2"],
        capsys,
        stdin=f"forty-two zebra\n{long}\n".encode(),
        monkeypatch=monkeypatch,
    )
    assert status == 0
    assert out.count("\n") == 2  # one line per input line (a translation may be empty)
    assert "sentence 1: unknown to the model, read as <unk>: 'zebra'" in err
    assert "sentence 2 has 60 tokens; the model reads at most 40, the last 20 were dropped" in err


def test_attend_writes_the_heat_map(runs, capsys, tmp_path):
    att, noatt, _ = runs
    out_png = tmp_path / "map.png"
    status, out, _ = run_cli(["attend", "--run-dir", str(att), "--out", str(out_png),
                              "three hundred and twenty-one"], capsys)  # fmt: skip
    assert status == 0 and out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"attention map: {out_png}" in out
    status, _, err = run_cli(["attend", "--run-dir", str(noatt), "forty-two"], capsys)
    assert status == 2 and "noattention model" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["translate", "--run-dir", "{att}", ""], "sentence 1 is empty"),
        (["translate", "--run-dir", "{att}", "x", "--file", "{att}/config.json"], "not both"),
        (["translate", "--run-dir", "{att}", "--file", "{bad}"], "not valid UTF-8"),
        (["translate", "--run-dir", "{att}", "--file", "{blank}"], "only blank lines"),
        (["translate", "--run-dir", "{tmp}", "x"], "is not a run dir"),
        (["attend", "--run-dir", "{att}", "  "], "SENTENCE is empty"),
        (["attend", "--run-dir", "{att}", "x", "--out", "{tmp}/map.jpg"], "must end in .png"),
        (["evaluate", "--run-dir", "{att}", "--data", "builtin:words"], "unknown builtin dataset"),
        (["train", "--model", "transformer"], "invalid choice: 'transformer'"),
        (["train", "--cell", "tree", "--run-dir", "{tmp}/new"], "unknown cell 'tree'"),
        (["train", "--data", "{bad}", "--run-dir", "{tmp}/new2"], "not valid UTF-8"),
    ],
)
def test_bad_input_exits_2_with_one_line(runs, capsys, tmp_path, argv, message):
    att, _, _ = runs
    (tmp_path / "bad.txt").write_bytes(b"Go.\tVe.\nHi.\tHol\xe1.\n")
    (tmp_path / "blank.txt").write_text("\n \n", encoding="utf-8")
    fill = {"att": str(att), "tmp": str(tmp_path), "bad": str(tmp_path / "bad.txt"),
            "blank": str(tmp_path / "blank.txt")}  # fmt: skip
    status, _, err = run_cli([a.format(**fill) for a in argv], capsys)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_spa_eng_slice_end_to_end(shared_data, tmp_path, capsys):
    config = TranslationConfig.tiny().replace(data=str(shared_data / "spa-eng"), target_bpe=0)
    metrics = train_and_evaluate(config, tmp_path / "spa")
    assert (metrics["source_lang"], metrics["target_lang"]) == ("Spanish", "English")
    trained = load_trained(RunDir.open(tmp_path / "spa", APP_MODULE))
    test = load_data(trained.config).test
    assert metrics["examples"] == len(test) >= 30
    assert not {s for s, _ in test} & {s for s, _ in load_data(trained.config).train}
    assert "¿\uffed" in trained.source_tokenizer.vocabulary  # punctuation kept, with its joiner
    assert any(any(ch in tok for ch in "áéíóúñ") for tok in trained.source_tokenizer.vocabulary)
    status, out, _ = run_cli(
        ["translate", "--run-dir", str(tmp_path / "spa"), "--json", "¿Dónde está Tom?"], capsys
    )
    assert status == 0
    record = json.loads(out)
    assert record["source_tokens"] == ["¿\uffed", "Dónde", "está", "Tom", "\uffed?"]
    status, out, _ = run_cli(["evaluate", "--run-dir", str(tmp_path / "spa")], capsys)
    assert status == 0 and json.loads(out)["examples"] == metrics["examples"]


def test_export_hook_gives_real_model_inputs(runs):
    from apps.translation import export_hook
    from apps.translation.model import build_step_model
    from apps.translation.tokenize import START_ID

    att, _, _ = runs
    config = RunDir.open(att, APP_MODULE).read_config()
    trained = load_trained(RunDir.open(att, APP_MODULE))
    pairs = export_hook.parity_inputs(att, config)
    test = load_data(trained.config).test
    assert len(pairs) == len(test) == 40
    src, tin = pairs[0]
    assert src.tolist() == trained.source_tokenizer.encode(test[0][0]) and tin[0] == START_ID
    logits = np.asarray(trained.model([src[None], tin[None]]))
    assert logits.shape == (1, len(tin), trained.target_tokenizer.vocab_size)
    step = build_step_model(trained.model)
    inputs = export_hook.step_parity_inputs(att, config, trained.model, count=5)
    assert len(inputs) == 5 and [x.shape[0] for x in inputs[0]] == [1] * len(step.inputs)
    outs = step(inputs[1])
    assert np.isfinite(np.asarray(outs[0])).all()
    assert export_hook.default_seq_len(config) == 41
    assert export_hook.tables(att, config)[0]["path"] == att / "vocab.json"
