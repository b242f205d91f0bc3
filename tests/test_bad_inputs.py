"""Bad input across the suite, one table: every case runs a real command line in-process (an app's
``cli.main``, ``python -m export``'s ``main`` or ``python -m export.reference_loop``'s ``main``)
and must exit with status 2, print exactly one line on stderr naming the problem (no
traceback), and leave every file already on disk as it was: the trained runs, the inputs, and
the folder a refused ``train`` would have written into (file list + sha256 before and after).

The runs the cases read are trained once per module, tiny (``--size tiny``, one epoch, small
``--limit``). Cases that damage a run (a truncated ``model.keras``, checkpoint or vocabulary)
work on a copy of it. Images that are merely unusual (16-bit PNG, CMYK JPEG) are not bad input:
the captioning app converts them, which the last tests check.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from apps.common import cli

APPS = ("sentiment", "tagger", "music", "captioning", "forecast", "translation", "charlm")
TINY_FLAGS = {  # on top of: train --size tiny --epochs 1 --quiet
    "sentiment": ["--limit", "60"],
    "tagger": ["--generated", "40"],
    "music": ["--limit", "4"],
    "captioning": ["--scenes", "40"],
    "forecast": [],
    "translation": ["--numbers", "40", "--limit", "40"],
    "charlm": ["--max-chars", "4000"],
}


# ----------------------------------------------------------------------------- helpers
def run_command(command: str, argv: list[str]) -> int:
    """The exit status of ``python -m <command> argv``, run in-process."""
    if command == "export":
        from export.__main__ import main

        return main(argv)
    if command == "export.reference_loop":
        from export.reference_loop import main

        return main(argv)
    verbs = importlib.import_module(f"apps.{command}.verbs")
    return cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, argv)


def snapshot(*folders: Path) -> dict[str, str]:
    """Every folder and file under ``folders``: path -> ``"dir"`` or the file's sha256."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            out[str(path)] = (
                "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
            )
    return out


def half(data: bytes) -> bytes:
    """The first half of ``data``: a file cut short."""
    return data[: len(data) // 2]


@dataclasses.dataclass
class Inputs:
    """What a case builds its command line from: the trained runs and its own folder."""

    runs: Path
    folder: Path

    def run(self, app: str) -> str:
        """The trained run of ``app`` (shared by all cases: it must not change)."""
        return str(self.runs / app)

    def damaged(self, app: str, name: str) -> str:
        """A copy of ``app``'s run with the file ``name`` cut in half."""
        copy = self.folder / f"{app}-damaged"
        shutil.copytree(self.runs / app, copy)
        (copy / name).write_bytes(half((copy / name).read_bytes()))
        return str(copy)

    def file(self, name: str, data: bytes | str) -> str:
        path = self.folder / name
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return str(path)

    def new_run(self) -> str:
        """A run dir that does not exist yet (a refused train must not create it)."""
        return str(self.folder / "new-run")

    def folder_with_files(self) -> str:
        """A folder that holds other files (train must refuse it and leave them alone)."""
        folder = self.folder / "notes"
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")
        return str(folder)

    def empty_folder(self) -> str:
        """An existing empty folder (a refused train must leave it empty)."""
        folder = self.folder / "empty-run"
        folder.mkdir()
        return str(folder)

    def train(self, *flags: str) -> list[str]:
        """``train`` of a tiny model into :meth:`new_run`."""
        return ["train", "--size", "tiny", "--quiet", "--run-dir", self.new_run(), *flags]


def jpeg() -> bytes:
    """A small noisy photo as JPEG bytes."""
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="JPEG")
    return buffer.getvalue()


def corrupt_jpeg() -> bytes:
    """A JPEG whose Huffman table is overwritten with 0xFF bytes."""
    data = bytearray(jpeg())
    table = data.index(b"\xff\xc4")  # DHT marker
    data[table + 4 : table + 40] = b"\xff" * 36
    return bytes(data)


def tflite_bytes() -> bytes:
    """A small valid TFLite model: token + state -> logits + state."""
    import keras
    import tensorflow as tf

    token = keras.Input((1,), dtype="int32", name="token")
    state = keras.Input((4,), name="state")
    h = keras.layers.Add()([keras.layers.Flatten()(keras.layers.Embedding(10, 4)(token)), state])
    model = keras.Model([token, state], [keras.layers.Dense(10)(h), h])
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def step_export(t: Inputs, data: bytes) -> str:
    """An export folder as ``python -m export`` writes it for a one-step model."""
    folder = t.folder / "export"
    folder.mkdir()
    (folder / "step.tflite").write_bytes(data)
    layout = {"name": "step", "role": "loop", "token_input": "token", "logits_output": "output_0",
              "states": [{"input": "state", "output": "output_1", "shape": [1, 4],
                          "dtype": "float32"}],
              "constants": [], "extra_outputs": []}  # fmt: skip
    manifest = {"exports": {"step.tflite": {"file": "step.tflite", "step": layout}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return str(folder)


# ------------------------------------------------------------------------------- cases
@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input: the command, its arguments built from :class:`Inputs`, the message."""

    id: str
    command: str
    argv: Callable[[Inputs], list[str]]
    message: str


NOT_UTF8 = b"caf\xe9 au lait\n"
TAGGED_NO_TAB = "John\tB-PER\nsmiles\nhappily\tO\n"
CASES = [
    # --- text inputs
    Case("sentiment-empty-text", "sentiment",
         lambda t: ["predict", "--run-dir", t.run("sentiment"), ""], "text 1 is empty"),
    Case("sentiment-whitespace-text", "sentiment",
         lambda t: ["predict", "--run-dir", t.run("sentiment"), " \t  "], "text 1 is empty"),
    Case("sentiment-invisible-text", "sentiment",
         lambda t: ["predict", "--run-dir", t.run("sentiment"), "\u200b\u200b"],
         "only invisible characters"),
    Case("sentiment-non-utf8-file", "sentiment",
         lambda t: ["predict", "--run-dir", t.run("sentiment"),
                    "--file", t.file("in.txt", NOT_UTF8)],
         "is not valid UTF-8: byte 0xe9 at byte offset 3"),
    Case("sentiment-blank-file", "sentiment",
         lambda t: ["predict", "--run-dir", t.run("sentiment"),
                    "--file", t.file("in.txt", "\n \n")],
         "has no text to classify (only blank lines)"),
    Case("tagger-whitespace-sentence", "tagger",
         lambda t: ["tag", "--run-dir", t.run("tagger"), "   "], "sentence 1 is empty"),
    Case("tagger-non-utf8-file", "tagger",
         lambda t: ["tag", "--run-dir", t.run("tagger"), "--file", t.file("in.txt", NOT_UTF8)],
         "is not valid UTF-8"),
    Case("translation-empty-sentence", "translation",
         lambda t: ["translate", "--run-dir", t.run("translation"), ""], "sentence 1 is empty"),
    Case("charlm-empty-prime", "charlm",
         lambda t: ["generate", "--run-dir", t.run("charlm"), "--prime", ""], "--prime: empty"),
    Case("charlm-non-utf8-file", "charlm",
         lambda t: ["visualize", "--run-dir", t.run("charlm"),
                    "--file", t.file("in.txt", NOT_UTF8)],
         "is not valid UTF-8"),
    # --- data files given to train / evaluate
    Case("sentiment-csv-without-text-column", "sentiment",
         lambda t: t.train("--data", t.file("d.csv", "body,label\nhi,positive\n")),
         "has no 'text' column (columns: body, label"),
    Case("sentiment-csv-label-outside-known-set", "sentiment",
         lambda t: t.train("--data",
                           t.file("d.csv", "text,label\nnice,positive\nhm,meh\n")),
         "line 3: unknown label 'meh'"),
    Case("sentiment-evaluate-csv-with-other-labels", "sentiment",
         lambda t: ["evaluate", "--run-dir", t.run("sentiment"), "--data",
                    t.file("d.csv", "text,label\n" + "good,positive\nbad,negative\n" * 20)],
         "but the model was trained on ['negative', 'neutral', 'positive']"),
    Case("sentiment-bad-csv-into-an-empty-folder", "sentiment",
         lambda t: ["train", "--size", "tiny", "--run-dir", t.empty_folder(), "--data",
                    t.file("d.csv", "text,label\nnice,positive\nhm,meh\n")],
         "unknown label 'meh'"),
    Case("sentiment-run-dir-is-a-folder-of-other-files", "sentiment",
         lambda t: ["train", "--size", "tiny", "--run-dir", t.folder_with_files()],
         "is not empty and not a run dir"),
    Case("tagger-bad-tsv-into-new-nested-folders", "tagger",
         lambda t: ["train", "--size", "tiny", "--run-dir", str(t.folder / "a" / "b" / "run"),
                    "--data", t.file("d.tsv", TAGGED_NO_TAB)],
         "expected 'token<TAB>tag'"),
    Case("tagger-tsv-line-without-tab", "tagger",
         lambda t: t.train("--data", t.file("d.tsv", TAGGED_NO_TAB)),
         "d.tsv:2: expected 'token<TAB>tag'"),
    Case("tagger-tsv-missing-column", "tagger",
         lambda t: t.train("--data",
                           t.file("d.tsv", "John\tNNP\tB-PER\nsmiles\tO\n")),
         "d.tsv:2: 2 columns where the file's first token line has 3"),
    Case("tagger-tag-outside-schemes", "tagger",
         lambda t: t.train("--data", t.file("d.tsv", "John\tPERSON\nsmiles\tO\n")),
         "tag 'PERSON' is outside the entity schemes"),
    Case("tagger-conllu-short-line", "tagger",
         lambda t: t.train("--data", t.file("d.conllu", "1\tJohn\tJohn\tPROPN\n")),
         "a CoNLL-U word line needs 10 tab-separated columns, got 4"),
    Case("tagger-evaluate-tsv-without-tab", "tagger",
         lambda t: ["evaluate", "--run-dir", t.run("tagger"), "--data",
                    t.file("d.tsv", TAGGED_NO_TAB)],
         "expected 'token<TAB>tag'"),
    Case("forecast-csv-without-time-column", "forecast",
         lambda t: t.train("--data",
                           t.file("d.csv", "date,value\n2020-01-01,1\n2020-02-01,2\n")),
         "has no time column 'time' (columns: date, value)"),
    Case("forecast-csv-value-not-a-number", "forecast",
         lambda t: t.train("--data",
                           t.file("d.csv", "time,value\n2020-01-01,1\n2020-02-01,abc\n")),
         "'abc' is not a number"),
    Case("translation-pairs-without-tab", "translation",
         lambda t: t.train("--data", t.file("pairs.txt", "hello\nworld\n")),
         "has no tab ('hello')"),
    Case("charlm-empty-text-file", "charlm",
         lambda t: t.train("--data", t.file("empty.txt", "")), "is empty"),
    Case("charlm-non-utf8-text-file", "charlm",
         lambda t: t.train("--data", t.file("corpus.txt", NOT_UTF8 * 50)),
         "is not valid UTF-8"),
    Case("sentiment-missing-data-path", "sentiment",
         lambda t: t.train("--data", str(t.folder / "absent.csv")),
         "--data: no such file or directory"),
    Case("sentiment-unknown-builtin-data", "sentiment",
         lambda t: t.train("--data", "builtin:nope"),
         "unknown builtin dataset 'nope'"),
    # --- MIDI and images
    Case("music-corrupt-midi", "music",
         lambda t: ["generate", "--run-dir", t.run("music"), "--primer",
                    t.file("p.mid", b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x10"
                                    b"\x00\x90\x3c")],
         "is truncated or corrupt"),
    Case("music-zero-byte-midi", "music",
         lambda t: ["generate", "--run-dir", t.run("music"), "--primer", t.file("p.mid", b"")],
         "is empty (0 bytes)"),
    Case("music-text-as-midi", "music",
         lambda t: ["generate", "--run-dir", t.run("music"), "--primer",
                    t.file("p.mid", "not MIDI")],
         "is not a MIDI file"),
    Case("captioning-corrupt-jpeg", "captioning",
         lambda t: ["caption", "--run-dir", t.run("captioning"), t.file("c.jpg", corrupt_jpeg())],
         "c.jpg: not an image"),
    Case("captioning-truncated-jpeg", "captioning",
         lambda t: ["caption", "--run-dir", t.run("captioning"),
                    t.file("c.jpg", half(jpeg()))],
         "c.jpg: cannot decode the image — truncated or corrupt"),
    Case("captioning-zero-byte-png", "captioning",
         lambda t: ["caption", "--run-dir", t.run("captioning"), t.file("z.png", b"")],
         "z.png: not an image"),
    Case("captioning-missing-image", "captioning",
         lambda t: ["caption", "--run-dir", t.run("captioning"), str(t.folder / "absent.png")],
         "absent.png: no such image file"),
    # --- damaged run dirs and exports
    *[
        Case(f"{app}-truncated-model", app,
             lambda t, app=app, verb=verb: [verb[0], "--run-dir", t.damaged(app, "model.keras"),
                                            *verb[1:]],
             "model.keras is truncated or not a .keras file")
        for app, verb in {
            "sentiment": ["predict", "fine"],
            "tagger": ["tag", "John smiles"],
            "music": ["generate", "--length", "8"],
            "captioning": ["evaluate"],
            "forecast": ["forecast"],
            "translation": ["translate", "one"],
            "charlm": ["generate", "--length", "5"],
        }.items()
    ],
    Case("sentiment-truncated-checkpoint-more-epochs", "sentiment",
         lambda t: ["train", "--quiet", "--epochs", "2", "--run-dir",
                    t.damaged("sentiment", "checkpoints/backup/latest.weights.h5")],
         "latest.weights.h5 is truncated or corrupt"),
    Case("forecast-truncated-checkpoint", "forecast",
         lambda t: ["train", "--quiet", "--run-dir",
                    t.damaged("forecast", "checkpoints/backup/latest.weights.h5")],
         "latest.weights.h5 is truncated or corrupt"),
    Case("sentiment-truncated-vocabulary", "sentiment",
         lambda t: ["predict", "--run-dir", t.damaged("sentiment", "vocab.json"), "fine"],
         "cannot read the vocabulary"),
    Case("tagger-truncated-config", "tagger",
         lambda t: ["tag", "--run-dir", t.damaged("tagger", "config.json"), "John"],
         "config.json is not readable JSON"),
    Case("sentiment-run-dir-of-another-app", "sentiment",
         lambda t: ["predict", "--run-dir", t.run("tagger"), "fine"],
         "was made by apps.tagger, not apps.sentiment"),
    Case("music-run-dir-of-another-app", "music",
         lambda t: ["train", "--run-dir", t.run("charlm")],
         "was made by apps.charlm, not apps.music"),
    Case("export-truncated-model", "export",
         lambda t: [t.damaged("sentiment", "model.keras"), "--format", "tflite"],
         "model.keras is truncated or not a .keras file"),
    Case("export-not-a-run-dir", "export",
         lambda t: [str(t.folder), "--format", "tflite"], "is not a run dir (no config.json)"),
    Case("reference-loop-truncated-tflite", "export.reference_loop",
         lambda t: [step_export(t, half(tflite_bytes())), "--start", "1"],
         "step.tflite is truncated or not a valid .tflite file"),
    Case("reference-loop-zero-byte-tflite", "export.reference_loop",
         lambda t: [step_export(t, b""), "--start", "1"], "step.tflite is not a TFLite model"),
    # --- config files and flags
    Case("sentiment-config-unknown-key", "sentiment",
         lambda t: t.train("--config", t.file("c.json", '{"epocs": 2}')),
         "unknown key 'epocs' (did you mean 'epochs'?"),
    Case("tagger-config-wrong-type", "tagger",
         lambda t: t.train("--config", t.file("c.json", '{"units": "many"}')),
         "key 'units' must be int, got str 'many'"),
    Case("forecast-config-not-json", "forecast",
         lambda t: t.train("--config", t.file("c.json", '{"units": 8')),
         "is not valid JSON"),
    Case("sentiment-negative-epochs", "sentiment",
         lambda t: t.train("--epochs", "-1"),
         "--epochs: must be an integer >= 1, got '-1'"),
    Case("sentiment-zero-batch-size", "sentiment",
         lambda t: t.train("--batch-size", "0"),
         "--batch-size: must be an integer >= 1, got '0'"),
    Case("sentiment-limit-below-minimum", "sentiment",
         lambda t: t.train("--limit", "5"), "--limit: must be an integer >= 10"),
    Case("forecast-lookback-too-short", "forecast",
         lambda t: t.train("--lookback", "1"), "--lookback: must be an integer >= 2"),
    Case("music-absurd-length", "music",
         lambda t: ["generate", "--run-dir", t.run("music"), "--length", str(10**9)],
         "--length: at most"),
    Case("translation-zero-beam", "translation",
         lambda t: ["translate", "--run-dir", t.run("translation"), "--beam", "0", "one"],
         "--beam: must be an integer >= 1"),
    Case("charlm-zero-temperature", "charlm",
         lambda t: ["generate", "--run-dir", t.run("charlm"), "--temperature", "0"],
         "--temperature: must be in (0.0, 100.0]"),
    Case("export-zero-parity-examples", "export",
         lambda t: [t.run("sentiment"), "--format", "tflite", "--parity-examples", "0"],
         "--parity-examples and --latency-runs must be >= 1"),
    Case("sentiment-unknown-model", "sentiment",
         lambda t: t.train("--model", "transformer"),
         "--model: unknown model 'transformer'"),
    Case("tagger-unknown-model", "tagger",
         lambda t: t.train("--model", "crf"), "--model: unknown model 'crf'"),
    Case("charlm-unknown-cell", "charlm",
         lambda t: t.train("--cell", "transformer"), "--cell: unknown cell"),
]  # fmt: skip


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """One tiny trained run per app, ``runs/<app>``."""
    root = tmp_path_factory.mktemp("runs")
    old = os.environ.get("RNNSUITE_CACHE_DIR")  # parsed chorales: not in the user's ~/.cache
    os.environ["RNNSUITE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        for app in APPS:
            argv = ["train", "--size", "tiny", "--epochs", "1", "--quiet",
                    "--run-dir", str(root / app), *TINY_FLAGS[app]]  # fmt: skip
            assert run_command(app, argv) == 0, app
    finally:
        if old is None:
            os.environ.pop("RNNSUITE_CACHE_DIR", None)
        else:
            os.environ["RNNSUITE_CACHE_DIR"] = old
    return root


# -------------------------------------------------------------------------------- tests
def test_the_table_covers_enough_distinct_bad_inputs():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.command for c in CASES} >= {*APPS, "export", "export.reference_loop"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(case, runs, tmp_path, capsys):
    inputs = Inputs(runs, tmp_path)
    argv = case.argv(inputs)
    before = snapshot(runs, tmp_path)
    capsys.readouterr()
    status = run_command(case.command, argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert status == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    assert lines[0].startswith("error: ") and case.message in lines[0], lines[0]
    assert snapshot(runs, tmp_path) == before


# --------------------------------------------------------- accepted, converted images
def _gray16(path: Path) -> None:
    """A 16-bit grayscale PNG at about half brightness (32896 = 128 * 257)."""
    image = Image.fromarray(np.full((40, 30), 32896, np.uint16))
    assert image.mode.startswith("I;16")
    image.save(path)


def _cmyk(path: Path) -> None:
    image = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # pure red in print colours
    image.save(path)
    assert Image.open(path).mode == "CMYK"


@pytest.mark.parametrize("name, make", [("gray16.png", _gray16), ("cmyk.jpg", _cmyk)])
def test_captioning_converts_16_bit_and_cmyk_images(name, make, runs, tmp_path, capsys):
    # Not bad input: apps.captioning.images scales 16-bit grayscale to 8 bits (Pillow's own
    # conversion would clip it to white) and converts CMYK, then captions the image.
    from apps.captioning.images import read_image
    from apps.captioning.train import run_geometry
    from apps.common.rundir import RunDir

    path = tmp_path / name
    make(path)
    size, channels = run_geometry(RunDir(runs / "captioning", "apps.captioning"))
    pixels = read_image(path, size, channels)
    assert pixels.shape == (size, size, channels) and pixels.dtype == np.uint8
    if name == "gray16.png":
        assert int(pixels.min()) == int(pixels.max()) == 128  # scaled, not clipped to 255
    elif channels == 1:
        assert abs(float(pixels.mean()) - 76) < 8  # red's luma: 0.299 * 255
    else:
        assert pixels[..., 0].mean() > 240 and pixels[..., 1:].mean() < 15  # red
    before = snapshot(runs)
    capsys.readouterr()
    assert run_command("captioning", ["caption", "--run-dir", str(runs / "captioning"),
                                      str(path), "--quiet"]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"{path}\t"), out
    assert snapshot(runs) == before
