"""apps.charlm end to end: the main job, train/resume, evaluate, generate, visualize, gradients
and bad input, on builtin:pysource and the shared tinyshakespeare (tiny configs)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from apps.charlm import verbs
from apps.common import cli


def run_cli(argv, capsys):
    status = cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The main job with --size tiny on builtin:pysource (one epoch, 32 LSTM units)."""
    run_dir = tmp_path_factory.mktemp("charlm") / "run"
    status = cli.main(verbs.APP, verbs.VERBS, verbs.MAIN,
                      ["--size", "tiny", "--run-dir", str(run_dir), "--quiet"])  # fmt: skip
    assert status == 0
    return run_dir


def test_main_job_writes_the_run_dir(trained):
    import keras

    import seqlayers  # noqa: F401

    for name in ("config.json", "vocab.json", "model.keras", "history.csv", "metrics.json",
                 "samples/main_sample.txt", "samples/val_excerpt.txt", "plots/curves.png",
                 "plots/cells_quotes.png", "plots/cells_quotes.html", "plots/cells_quotes.json"):  # fmt: skip
        assert (trained / name).is_file(), name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["val_bits_per_char"] == pytest.approx(
        metrics["val_nats_per_char"] / math.log(2), rel=1e-5
    )
    assert 0 < metrics["val_nats_per_char"] < math.log(metrics["vocab_size"])  # beats uniform
    assert metrics["data"] == "builtin:pysource" and metrics["cell"] == "lstm"
    history = (trained / "history.csv").read_text().splitlines()
    assert "val_bits_per_char" in history[0] and len(history) == 2
    # fit's validation pass started from zero state (reset on_test_begin), exactly as evaluate does
    row = dict(zip(history[0].split(","), history[1].split(",")))
    assert float(row["val_loss"]) == pytest.approx(metrics["val_nats_per_char"], rel=1e-4)
    model = keras.saving.load_model(trained / "model.keras", safe_mode=True)
    assert model.get_layer("rnn_1").stateful is False and model.input_shape == (None, None)
    sample = (trained / "samples/main_sample.txt").read_text()
    assert sample.startswith("def ") and len(sample) == 404


def test_evaluate_prints_one_json_line(trained, capsys):
    status, out, _ = run_cli(["evaluate", "--run-dir", trained], capsys)
    assert status == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == json.loads((trained / "metrics.json").read_text())


def test_generate_streams_with_notice_for_unseen_prime(trained, capsys):
    status, out, err = run_cli(["generate", "--run-dir", trained, "--prime", "def ☃(",
                                "--length", "40", "--seed", "5", "--temperature", "0.7"], capsys)  # fmt: skip
    assert status == 0
    assert "never saw ('☃')" in err and "unknown character" in err
    assert out.startswith("def ☃(") and len(out.rstrip("\n")) >= len("def ☃(") + 30
    status, again, _ = run_cli(["generate", "--run-dir", trained, "--prime", "def ☃(",
                                "--length", "40", "--seed", "5", "--temperature", "0.7"], capsys)  # fmt: skip
    assert again == out  # seeded sampling repeats
    assert len(list((trained / "samples").glob("generate-*.txt"))) == 2


@pytest.mark.parametrize("flag,value", [("--temperature", "0"), ("--temperature", "-1"),
                                        ("--top-k", "0"), ("--length", "0")])  # fmt: skip
def test_generate_bad_numbers_exit_2(trained, capsys, flag, value):
    status, out, err = run_cli(["generate", "--run-dir", trained, flag, value], capsys)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and flag in err


def test_visualize_find_and_units(trained, capsys):
    status, out, _ = run_cli(["visualize", "--run-dir", trained, "--find", "line-position",
                              "--top", "2", "--max-chars", "300"], capsys)  # fmt: skip
    assert status == 0 and "units most correlated with line-position" in out
    report = json.loads((trained / "plots/cells_line-position.json").read_text())
    rs = [abs(row["r"]) for row in report["ranking"]]
    assert rs == sorted(rs, reverse=True) and len(report["units"]) == 2
    status, out, _ = run_cli(["visualize", "--run-dir", trained, "--text", "x = (1, 'a')\n",
                              "--unit", "3", "--unit", "7", "--state", "cell"], capsys)  # fmt: skip
    assert status == 0
    html = (trained / "plots/cells_units_3-7.html").read_text(encoding="utf-8")
    assert "unit 3 (layer 1 tanh(c))" in html and "unit 7" in html
    status, _, err = run_cli(["visualize", "--run-dir", trained, "--unit", "32"], capsys)
    assert status == 2 and "0..31" in err


def test_gradients_verb_writes_plot_and_numbers(trained, capsys):
    status, out, _ = run_cli(["gradients", "--run-dir", trained, "--cells", "vanilla",
                              "--steps", "2", "--horizon", "8", "--probes", "4"], capsys)  # fmt: skip
    assert status == 0
    assert "largest singular value of the vanilla cell's W_hh" in out
    data = json.loads((trained / "gradients.json").read_text())
    assert [c["cell"] for c in data["cells"]] == ["vanilla"]
    assert len(data["cells"][0]["init"]) == len(data["cells"][0]["trained"]) == 9
    assert len(data["own"]["trained"]) == 9 and data["own"]["cell"] == "lstm (this run)"
    sigma = data["cells"][0]["sigma_max_init"]
    assert sigma == pytest.approx(1.0, abs=1e-4)  # orthogonal initialisation of W_hh
    assert (trained / "plots/gradients.png").stat().st_size > 5000


def test_resume_continues_with_more_epochs(trained, capsys):
    status, out, _ = run_cli(["train", "--size", "tiny", "--run-dir", trained, "--epochs", "2",
                              "--quiet"], capsys)  # fmt: skip
    assert status == 0 and "resuming from epoch 1 of 2" in out
    rows = (trained / "history.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [0, 1]
    status, _, err = run_cli(
        ["train", "--size", "tiny", "--run-dir", trained, "--units", "64"], capsys
    )
    assert status == 2 and "units=32 -> 64" in err


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("to be or not to be\n" * 20)  # 380 characters
    latin = tmp_path / "latin.txt"
    latin.write_bytes(("x" * 500 + "\u00e9t\u00e9\n").encode("latin-1"))
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    cases = [
        (["train", "--size", "tiny", "--data", tiny], "fewer than one window x batch"),
        (["train", "--size", "tiny", "--data", latin], "byte 0xe9 at byte offset 500"),
        (["train", "--size", "tiny", "--data", empty], "is empty"),
        (["train", "--size", "tiny", "--cell", "bilstm"], "needs a one-way cell"),
        (["train", "--size", "tiny", "--cell", "transformer"], "unknown cell"),
        (["train", "--size", "tiny", "--encoding", "klingon"], "unknown text encoding"),
        (["train", "--size", "tiny", "--data", "builtin:linux"], "unknown builtin dataset"),
    ]
    for k, (argv, message) in enumerate(cases):
        status, _, err = run_cli([*argv, "--run-dir", tmp_path / f"r{k}", "--quiet"], capsys)
        assert status == 2, (argv, err)
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_help_lists_defaults(capsys):
    status, out, _ = run_cli(["train", "--help"], capsys)
    assert status == 0
    for text in ("--bptt", "(default: 64", "--clipnorm", "--cell", "--layers", "--encoding"):
        assert text in out


def test_tinyshakespeare_end_to_end(shared_data, tmp_path):
    from apps.charlm.config import CharLMConfig
    from apps.charlm.data import CharVocab
    from apps.charlm.train import train_and_evaluate

    path = shared_data / "tinyshakespeare" / "input.txt"
    config = CharLMConfig.tiny().replace(data=str(path), cell="gru", layers=2)
    metrics = train_and_evaluate(config, tmp_path / "run")
    vocab = CharVocab.load(tmp_path / "run" / "vocab.json")
    assert (
        set("ROMEO: thou") <= set(vocab.chars) and vocab.size <= 66
    )  # 65 distinct characters + unknown
    assert metrics["val_chars"] == 2000 // (8 * 32) * 8 * 32  # 10% of 20k, 8 streams of 32
    assert metrics["val_nats_per_char"] < math.log(vocab.size)
    assert np.isfinite(metrics["val_perplexity"]) and metrics["layers"] == 2


def test_export_hook_inputs_are_real_windows(trained):
    from apps.charlm import export_hook
    from apps.charlm.data import CharVocab
    from apps.charlm.train import load_model_file

    config = json.loads((trained / "config.json").read_text())["config"]
    rep = export_hook.representative_inputs(trained, config)
    par = export_hook.parity_inputs(trained, config)
    vocab = CharVocab.load(trained / "vocab.json")
    excerpt = (trained / "samples/val_excerpt.txt").read_text()
    assert rep.shape == par.shape == (64, 32) and rep.max() < vocab.size
    assert vocab.decode(par[0]) == excerpt[:32]  # the first window starts the validation text
    assert export_hook.default_seq_len(config) == 32
    steps = export_hook.step_parity_inputs(
        trained, config, load_model_file(trained / "model.keras"), count=3
    )
    assert [s[0].tolist() for s in steps] == [[[int(i)]] for i in vocab.encode(excerpt[:3])]
    assert (
        not steps[0][1].any() and steps[1][1].any()
    )  # zero state first, then the state it reached
