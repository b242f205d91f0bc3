"""apps.music end to end on the builtin chorales: tiny train / evaluate / generate, generated
MIDI re-read by music21 and pretty_midi, bad input on the command line. (The shared MIDI folder
and the benchmark piano-roll files: test_music_sources.py.)"""

from __future__ import annotations

import contextlib
import io
import json
import os

import numpy as np
import pytest

from apps.common import cli
from apps.music import verbs
from apps.music.config import MusicConfig
from apps.music.notes import PITCH_HIGH, PITCH_LOW
from apps.music.train import train_and_evaluate


@pytest.fixture(scope="module", autouse=True)
def _chorale_cache(tmp_path_factory):
    """Parsed chorales go to a temporary cache, not the user's ~/.cache."""
    old = os.environ.get("RNNSUITE_CACHE_DIR")
    os.environ["RNNSUITE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("RNNSUITE_CACHE_DIR", None)
    else:
        os.environ["RNNSUITE_CACHE_DIR"] = old


def _main(*argv: str) -> int:
    return cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, list(argv))


def _reread(path):
    """(notes from pretty_midi, end time in s, pitches from music21) of a MIDI file."""
    import music21
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(str(path))
    notes = [n for inst in midi.instruments for n in inst.notes]
    score = music21.converter.parse(str(path), forceSource=True, storePickle=False)
    pitches = [p.midi for n in score.flatten().notes for p in n.pitches]
    return notes, midi.get_end_time(), pitches


def _check_generated(path, *, expect_seconds=None, expect_notes=None):
    notes, end, m21_pitches = _reread(path)
    assert notes and m21_pitches
    assert all(PITCH_LOW <= n.pitch <= PITCH_HIGH for n in notes)
    assert all(PITCH_LOW <= p <= PITCH_HIGH for p in m21_pitches)
    assert all(n.end > n.start for n in notes)  # no zero-length notes
    if expect_seconds is not None:
        assert abs(end - expect_seconds) <= 0.1 * expect_seconds
    if expect_notes is not None:
        assert abs(len(notes) - expect_notes) <= 0.1 * expect_notes


@pytest.fixture(scope="module")
def chorale_run(tmp_path_factory):
    """The main job (no command) at --size tiny: train, evaluate, write one sample."""
    run_dir = tmp_path_factory.mktemp("chorales") / "run"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert _main("--size", "tiny", "--run-dir", str(run_dir), "--quiet") == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return run_dir, metrics, out.getvalue()


def test_main_job_at_tiny_size_on_builtin_chorales(chorale_run):
    run_dir, _, printed = chorale_run
    assert printed.startswith("data: builtin:chorales — 24 Bach chorales from music21")
    assert "test NLL" in printed and f"run dir: {run_dir}" in printed
    assert "WAV (NumPy additive synthesiser):" in printed
    # 64 quarter notes at 96 bpm = 40 s
    _check_generated(run_dir / "samples" / "sample_001.mid", expect_seconds=40.0)
    assert (run_dir / "plots" / "curves.png").is_file()


def test_tiny_roll_on_builtin_chorales_trains_evaluates_and_generates(chorale_run, capsys):
    import keras

    import seqlayers  # noqa: F401

    run_dir, metrics, _ = chorale_run
    assert metrics["representation"] == "roll" and metrics["split"] == "test"
    # better than a fair coin on every key (88 ln 2 = 61.0 nats per step) after one epoch
    assert 0 < metrics["nll_per_step"] < 88 * np.log(2)
    assert metrics["pieces"] == 2 and metrics["steps"] > 50
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
    assert json.loads((run_dir / "vocab.json").read_text())["steps_per_quarter"] == 2
    keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    # evaluate: one JSON line, the same number
    assert _main("evaluate", "--run-dir", str(run_dir), "--quiet") == 0
    line = capsys.readouterr().out.strip().splitlines()
    assert len(line) == 1 and json.loads(line[0])["nll_per_step"] == pytest.approx(
        metrics["nll_per_step"]
    )
    # generate 40 steps = 20 quarter notes at 96 bpm = 12.5 s
    assert _main("generate", "--run-dir", str(run_dir), "--length", "40", "--seed", "1") == 0
    out = capsys.readouterr().out
    samples = run_dir / "samples"
    assert "sample_002.mid" in out and (samples / "sample_002.wav").stat().st_size > 44
    assert (samples / "sample_002.png").read_bytes()[:4] == b"\x89PNG"
    _check_generated(samples / "sample_002.mid", expect_seconds=12.5)
    # a later call never overwrites earlier samples
    assert _main("generate", "--run-dir", str(run_dir), "--length", "8", "--quiet") == 0
    assert (samples / "sample_003.mid").is_file()


def test_training_resumes_in_its_run_dir(chorale_run, tmp_path):
    import shutil

    run_dir, *_ = chorale_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    train_and_evaluate(MusicConfig.tiny().replace(epochs=2), copy)
    rows = (copy / "history.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows] == ["epoch", "0", "1"]
    with pytest.raises(Exception, match="another config"):
        train_and_evaluate(MusicConfig.tiny().replace(units=17), copy)


def test_chorales_are_cached_after_the_first_parse():
    from apps.music.chorales import load_chorales

    pieces, description, skipped = load_chorales(24)
    assert "read from the cache" in description and len(pieces) == 24 and not skipped
    assert all(p.notes.shape[1] == 4 and len(p.notes) > 20 for p in pieces)


def test_primer_longer_than_the_context_is_cut_with_a_warning(chorale_run, tmp_path, capsys):
    from apps.music.midi_io import write_midi
    from apps.music.notes import make_notes

    run_dir, *_ = chorale_run
    # 40 quarter notes = 80 frames at 2 steps per quarter; the tiny model's context is 32
    primer = write_midi(make_notes([(60 + i % 12, i, i + 1, 80) for i in range(40)]),
                        tmp_path / "primer.mid", tempo_bpm=96)  # fmt: skip
    code = _main("generate", "--run-dir", str(run_dir), "--primer", str(primer), "--length", "10",
                 "--quiet")  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0
    assert "the primer has 80 time steps, more than the model's context of 32" in captured.err
    assert "primer:" in captured.out
    # 32 primer frames + 10 generated = 42 frames = 21 quarter notes = 13.125 s
    newest = max((run_dir / "samples").glob("*.mid"))
    _check_generated(newest, expect_seconds=13.125)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--temperature", "0"], "--temperature: must be in (0.0, 10.0], got '0'"),
        (["--temperature", "-1"], "--temperature: must be in (0.0, 10.0]"),
        (["--length", "0"], "--length: must be an integer >= 1"),
        (["--top-k", "3"], "--top-k applies to events models only"),
    ],
)
def test_generate_usage_errors(chorale_run, capsys, argv, message):
    run_dir, *_ = chorale_run
    assert _main("generate", "--run-dir", str(run_dir), *argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_bad_primers_exit_2_with_one_line(chorale_run, tmp_path, capsys):
    import pretty_midi

    run_dir, *_ = chorale_run
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mid"
    text.write_text("MIDI? no")
    drums = tmp_path / "drums.mid"
    midi = pretty_midi.PrettyMIDI()
    kit = pretty_midi.Instrument(0, is_drum=True)
    kit.notes.append(pretty_midi.Note(100, 36, 0.0, 0.5))
    midi.instruments.append(kit)
    midi.write(str(drums))
    cases = {empty: "is empty (0 bytes)", text: "is not a MIDI file",
             drums: "has no pitched notes (only 1 drum notes)",
             tmp_path / "absent.mid": "--primer: no such file"}  # fmt: skip
    before = sorted(p.name for p in (run_dir / "samples").iterdir())
    for path, message in cases.items():
        assert _main("generate", "--run-dir", str(run_dir), "--primer", str(path)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == before  # nothing written


def test_train_refuses_bad_data_before_writing_anything(tmp_path, capsys):
    bad_folder = tmp_path / "midis"
    bad_folder.mkdir()
    (bad_folder / "a.mid").write_bytes(b"")
    (bad_folder / "b.mid").write_bytes(b"not midi")
    roll_json = tmp_path / "rolls.json"
    roll_json.write_text(json.dumps({"train": [[[60]]], "valid": [[[60]]], "test": [[[60]]]}))
    cases = [
        (["--data", "builtin:nottingham"], "no builtin:nottingham"),
        (["--data", str(roll_json), "--repr", "events"], "--repr events needs notes"),
        (["--cell", "transformer"], "--cell: unknown cell 'transformer'"),
    ]
    for argv, message in cases:
        run_dir = tmp_path / f"run{len(message)}"
        assert _main("train", "--size", "tiny", "--run-dir", str(run_dir), *argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert not run_dir.exists()
    code = _main("train", "--size", "tiny", "--quiet", "--run-dir", str(tmp_path / "r"),
                 "--data", str(bad_folder))  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2
    assert "skipped" in captured.err and "a.mid: is empty (0 bytes)" in captured.err
    assert (
        captured.err.strip().splitlines()[-1].startswith("error: --data: none of the 2 MIDI files")
    )
