"""apps.music without training: notes and rolls, event tokens, NLL, MIDI/WAV files, bad input."""

from __future__ import annotations

import gzip
import json
import math
import re
import wave

import numpy as np
import pytest

from apps.common.errors import DataError
from apps.music.data import (
    check_data_spec,
    load_splits,
    read_midi_folder,
    read_roll_json,
    roll_sequence,  # fmt: skip
    split_pieces,
    windows,
)
from apps.music.events import BOS, EventCodec
from apps.music.midi_io import MidiError, read_midi_notes, write_midi
from apps.music.notes import Piece, make_notes, notes_to_roll, pitch_sets_to_roll, roll_to_notes
from apps.music.render import piano_roll_png, synthesize, write_wav
from apps.music.train import roll_nll


def _write_midi(path, notes, *, drum=False, tempo=120.0):
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    inst = pretty_midi.Instrument(program=0, is_drum=drum)
    sec = 60.0 / tempo
    for pitch, start, end in notes:
        inst.notes.append(pretty_midi.Note(90, pitch, start * sec, end * sec))
    midi.instruments.append(inst)
    midi.write(str(path))
    return path


# ------------------------------------------------------------------ notes and rolls
def test_notes_to_roll_and_back_exact():
    notes = make_notes([(60, 0.0, 1.0, 80), (64, 0.5, 1.5, 80), (21, 1.0, 1.5, 80),
                        (108, 0.0, 0.25, 80), (120, 0.0, 1.0, 80)])  # fmt: skip
    roll = notes_to_roll(notes, 2)
    assert roll.shape == (3, 88) and roll.dtype == np.uint8
    assert roll[:, 39].tolist() == [1, 1, 0]  # C4 = key 39, quarters 0..1 -> frames 0, 1
    assert roll[:, 43].tolist() == [0, 1, 1]  # E4
    assert roll[:, 0].tolist() == [0, 0, 1]  # A0
    assert roll[:, 87].tolist() == [1, 0, 0]  # C8: a 1/4 quarter note keeps one frame
    assert roll.sum() == 2 + 2 + 1 + 1  # pitch 120 (off the piano) is dropped
    back = roll_to_notes(roll, 2)
    assert back.tolist() == [[60, 0, 1, 80], [108, 0, 0.5, 80], [64, 0.5, 1.5, 80],
                             [21, 1.0, 1.5, 80]]  # fmt: skip


def test_make_notes_drops_zero_length_and_sorts():
    notes = make_notes([(64, 1, 2, 80), (60, 1, 1, 80), (62, 0, 1, 70)])
    assert notes.tolist() == [[62, 0, 1, 70], [64, 1, 2, 80]]


def test_pitch_sets_to_roll_reads_json_steps_and_rejects_bad_pitches():
    roll = pitch_sets_to_roll([[60, 64], [], [-1, 21]], "train[0]")
    assert roll.shape == (3, 88)
    assert np.flatnonzero(roll[0]).tolist() == [39, 43]
    assert roll[1].sum() == 0 and np.flatnonzero(roll[2]).tolist() == [0]
    with pytest.raises(ValueError, match=r"train\[0\] step 1 has pitch 130"):
        pitch_sets_to_roll([[60], [130]], "train[0]")
    with pytest.raises(TypeError, match="must be a list of MIDI pitches"):
        pitch_sets_to_roll([60], "train[0]")


def test_roll_sequence_and_windows():
    roll = np.eye(88, dtype=np.uint8)[:5]
    x, y = roll_sequence(roll)
    assert x[0].sum() == 0 and np.array_equal(x[1:], roll[:-1]) and np.array_equal(y, roll)
    parts = windows(x, y, 2)
    assert [len(a) for a, _ in parts] == [2, 2, 1]
    assert np.array_equal(parts[1][0], x[2:4]) and np.array_equal(parts[1][1], y[2:4])


# ----------------------------------------------------------------------- NLL by hand
def test_roll_nll_equals_bernoulli_formula_by_hand():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 88)) * 3
    targets = (rng.random((4, 88)) < 0.1).astype(np.uint8)
    by_hand = []
    for t in range(4):
        total = 0.0
        for k in range(88):
            p = 1.0 / (1.0 + math.exp(-logits[t, k]))
            total -= math.log(p) if targets[t, k] else math.log(1.0 - p)
        by_hand.append(total)
    assert np.allclose(roll_nll(logits, targets), by_hand, rtol=1e-12, atol=1e-12)
    assert roll_nll(np.zeros((1, 88)), np.ones((1, 88)))[0] == pytest.approx(88 * math.log(2))
    assert np.isfinite(roll_nll(np.array([[800.0] * 88]), np.zeros((1, 88)))).all()  # no overflow


# ---------------------------------------------------------------------- event tokens
def test_event_codec_tokens_exact_and_round_trip():
    codec = EventCodec(ticks_per_quarter=4, max_step=8, max_duration=8)
    notes = make_notes([(60, 0, 1, 80), (64, 0, 0.5, 80), (67, 1.5, 1.75, 80)])
    tokens = codec.encode(notes)
    # BOS; C4 (step 0, 4 ticks); E4 (step 0, 2 ticks); G4 (step 6 ticks, 1 tick)
    assert tokens.tolist() == [BOS, 2, 50, 102, 2, 54, 100, 8, 57, 99]
    assert codec.vocab_size == 107 and codec.tokens_per_note == 3
    assert np.array_equal(codec.decode(tokens), notes)
    assert [codec.kind_of(t) for t in tokens[:4]] == ["bos", "step", "pitch", "duration"]


def test_event_codec_clips_long_steps_and_durations_and_never_zero_length():
    codec = EventCodec(ticks_per_quarter=2, max_step=4, max_duration=3)
    notes = make_notes([(60, 0, 0.1, 80), (62, 10, 20, 80)])
    tokens = codec.encode(notes)
    decoded = codec.decode(tokens)
    assert decoded.tolist() == [[60, 0, 0.5, 80], [62, 2.0, 3.5, 80]]  # 1-tick min; clipped


def test_event_codec_velocity_tokens():
    codec = EventCodec(ticks_per_quarter=4, max_step=4, max_duration=4, velocity_bins=4)
    tokens = codec.encode(make_notes([(60, 0, 1, 127), (62, 1, 2, 1)]))
    assert codec.tokens_per_note == 4 and len(tokens) == 1 + 8
    decoded = codec.decode(tokens)
    assert decoded[0, 3] == codec.velocity_value(3) and decoded[1, 3] == codec.velocity_value(0)


def test_event_grammar_mask_allows_only_the_next_kind():
    codec = EventCodec(ticks_per_quarter=4, max_step=4, max_duration=4)
    mask = codec.grammar_mask()
    r = codec.ranges()

    def allowed(tok: int) -> list[int]:
        return np.flatnonzero(mask[tok] == 0).tolist()

    assert allowed(BOS) == list(range(*r["step"]))
    assert allowed(r["step"][0]) == list(range(*r["pitch"]))
    assert allowed(r["pitch"][0] + 5) == list(range(*r["duration"]))
    assert allowed(r["duration"][0]) == list(range(*r["step"]))


# ------------------------------------------------------------------------ MIDI files
def test_write_midi_rereads_with_pretty_midi_and_music21(tmp_path):
    import music21
    import pretty_midi

    notes = make_notes([(60, 0, 1, 80), (64, 0, 1, 80), (67, 1, 2, 100), (72, 2, 2.5, 60)])
    path = write_midi(notes, tmp_path / "out.mid", tempo_bpm=120, end_quarters=4)
    assert np.allclose(read_midi_notes(path), notes)
    midi = pretty_midi.PrettyMIDI(str(path))
    assert midi.get_end_time() == pytest.approx(2.0)  # 4 quarters at 120 bpm, silence included
    score = music21.converter.parse(str(path), forceSource=True, storePickle=False)
    pitches = sorted(p.midi for n in score.flatten().notes for p in n.pitches)
    assert pitches == [60, 64, 67, 72]


def test_write_midi_cuts_overlapping_notes_of_one_pitch(tmp_path):
    notes = make_notes([(60, 0, 2, 80), (60, 1, 3, 80), (60, 1, 1.5, 80), (64, 0, 4, 80)])
    path = write_midi(notes, tmp_path / "o.mid", tempo_bpm=60)
    assert read_midi_notes(path).tolist() == [[60, 0, 1, 80], [64, 0, 4, 80], [60, 1, 3, 80]]


def test_bad_midi_files_have_clear_reasons(tmp_path):
    good = _write_midi(tmp_path / "good.mid", [(60, 0, 1)])
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    text = tmp_path / "text.mid"
    text.write_text("not a midi file at all")
    truncated = tmp_path / "truncated.mid"
    truncated.write_bytes(good.read_bytes()[:30])
    drums = _write_midi(tmp_path / "drums.mid", [(36, 0, 1), (38, 1, 2)], drum=True)
    silent = _write_midi(tmp_path / "silent.mid", [])
    huge = tmp_path / "huge.mid"
    with open(huge, "wb") as f:
        f.write(b"MThd")
        f.truncate(50 * 1024 * 1024)  # 50 MB (sparse)
    cases = {empty: "is empty (0 bytes)", text: "is not a MIDI file", truncated: "truncated or corrupt",
             drums: "no pitched notes (only 2 drum notes)", silent: "has no notes",
             huge: "is 52.4 MB, over the 8 MB limit"}  # fmt: skip
    for path, reason in cases.items():
        with pytest.raises(MidiError, match=re.escape(reason)):
            read_midi_notes(path)
    assert read_midi_notes(good).tolist() == [[60, 0, 1, 90]]


def test_midi_folder_skips_bad_files_with_a_warning_naming_each(tmp_path):
    for i in range(3):
        _write_midi(tmp_path / f"ok{i}.mid", [(60 + i, 0, 1), (64, 1, 2)])
    (tmp_path / "zero.mid").write_bytes(b"")
    (tmp_path / "junk.midi").write_bytes(b"RIFF....WAVEfmt ")
    (tmp_path / "notes.txt").write_text("ignored: not a MIDI suffix")
    warned = []
    data = load_splits(str(tmp_path), seed=0, warn=warned.append)
    assert len(data.train) + len(data.valid) + len(data.test) == 3
    assert len(warned) == 2 and data.skipped and len(data.skipped) == 2
    assert any("zero.mid: is empty (0 bytes)" in w for w in warned)
    assert any("junk.midi: is not a MIDI file" in w for w in warned)
    assert "(2 skipped)" in data.description


def test_midi_folder_with_no_usable_file_is_a_data_error(tmp_path):
    (tmp_path / "a.mid").write_bytes(b"")
    (tmp_path / "b.mid").write_bytes(b"garbage")
    with pytest.raises(DataError, match="none of the 2 MIDI files"):
        read_midi_folder(tmp_path)
    _write_midi(tmp_path / "c.mid", [(60, 0, 1)])
    with pytest.raises(DataError, match="only 1 usable MIDI files"):
        load_splits(str(tmp_path), seed=0)
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(DataError, match="no MIDI files"):
        load_splits(str(empty), seed=0)


# -------------------------------------------------------------------- roll JSON files
def test_roll_json_gz_splits_and_errors(tmp_path):
    good = {"train": [[[60], [60, 64], []]] * 2, "valid": [[[62]]], "test": [[[21, 108], [70]]]}
    path = tmp_path / "toy.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump(good, f)
    train, valid, test = read_roll_json(path)
    assert [len(p.roll) for p in train] == [3, 3] and len(valid) == 1
    assert np.flatnonzero(test[0].roll[0]).tolist() == [0, 87]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train": [[[60]]], "valid": [[[200]]], "test": [[[60]]]}))
    with pytest.raises(DataError, match=r"valid\[0\] step 0 has pitch 200"):
        read_roll_json(bad)
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"train": [[[60]]]}))
    with pytest.raises(DataError, match="has no 'valid' split"):
        read_roll_json(missing)
    with pytest.raises(DataError, match="--repr events needs notes"):
        check_data_spec(str(path), "events")


def test_unsafe_and_unknown_sources_are_refused(tmp_path):
    for name, reason in (("x.pkl", "pickle"), ("x.mat", "MATLAB"), ("x.mid", "one MIDI file"),
                         ("x.csv", "unknown format")):  # fmt: skip
        (tmp_path / name).write_bytes(b"\x80\x04data")
        with pytest.raises(DataError, match=reason):
            check_data_spec(str(tmp_path / name))
    with pytest.raises(DataError, match="no builtin:nottingham"):
        check_data_spec("builtin:nottingham")
    with pytest.raises(DataError, match="no such file"):
        check_data_spec(str(tmp_path / "absent"))


def test_split_pieces_is_seeded_and_disjoint():
    pieces = [Piece(f"p{i}", notes=make_notes([(60, 0, 1, 80)])) for i in range(20)]
    a = split_pieces(pieces, 3)
    b = split_pieces(pieces, 3)
    assert [[p.name for p in s] for s in a] == [[p.name for p in s] for s in b]
    assert [len(s) for s in a] == [16, 2, 2]
    assert len({p.name for s in a for p in s}) == 20


# ----------------------------------------------------------------------- WAV and PNG
def test_wav_and_piano_roll_png(tmp_path):
    notes = make_notes([(69, 0, 1, 127), (81, 1, 2, 64)])
    samples = synthesize(notes, tempo_bpm=120, sample_rate=8000)
    assert samples.dtype == np.float32 and np.abs(samples).max() == pytest.approx(0.8, rel=1e-5)
    assert len(samples) == pytest.approx((1.0 + 0.08) * 8000, abs=2)  # 2 quarters + release
    spectrum = np.abs(np.fft.rfft(samples[:4000]))  # first second: A4 = 440 Hz
    assert abs(np.argmax(spectrum) * 8000 / 4000 - 440) <= 2
    path = write_wav(samples, tmp_path / "a.wav", sample_rate=8000)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert w.getnframes() == len(samples)
    png = piano_roll_png(notes, tmp_path / "a.png", title="toy")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------ transposition augmentation
def _window(notes_x, notes_y, steps=6):
    x, y = np.zeros((steps, 88), "float32"), np.zeros((steps, 88), "float32")
    for t, k in notes_x:
        x[t, k] = 1
    for t, k in notes_y:
        y[t, k] = 1
    return x, y


def test_transpose_window_shifts_x_and_y_alike_and_keeps_every_note_on_the_keyboard():
    import tensorflow as tf

    from apps.music.data import transpose_window

    x, y = _window([(0, 3), (2, 40)], [(5, 80)])
    seen = set()
    for draw in range(-40, 40):
        a, b, w = (v.numpy() for v in transpose_window(
            tf.constant(x), tf.constant(y), tf.ones(6), tf.constant(draw, tf.int64), 12))  # fmt: skip
        shift = int(np.flatnonzero(a[0])[0]) - 3
        np.testing.assert_array_equal(a, np.roll(x, shift, axis=1))
        np.testing.assert_array_equal(b, np.roll(y, shift, axis=1))
        assert a.sum() == x.sum() and b.sum() == y.sum() and w.sum() == 6
        seen.add(shift)
    assert seen == set(range(-3, 8))  # lowest key 3 may go down 3, highest 80 up 7


def test_transpose_window_leaves_a_silent_window_alone():
    import tensorflow as tf

    from apps.music.data import transpose_window

    silent = tf.zeros((4, 88))
    a, b, _ = transpose_window(silent, silent, tf.ones(4), tf.constant(5, tf.int64), 6)
    assert float(tf.reduce_sum(a)) == 0.0 and float(tf.reduce_sum(b)) == 0.0


def test_transposed_training_data_is_seeded_and_changes_every_epoch():
    from apps.music.data import make_dataset

    rng = np.random.default_rng(0)
    seqs = []
    for _ in range(6):
        roll = np.zeros((20, 88), "float32")
        roll[np.arange(20), rng.integers(30, 60, 20)] = 1
        seqs.append((roll[:-1], roll[1:]))

    def epochs(seed, transpose, n=2):
        ds = make_dataset(seqs, "roll", seq_len=8, batch_size=4, shuffle=False, seed=seed,
                          transpose=transpose)  # fmt: skip
        return [np.concatenate([x.numpy().reshape(-1, 88) for x, _, _ in ds]) for _ in range(n)]

    plain = epochs(1, 0)
    first, second = epochs(1, 6)
    again = epochs(1, 6)
    np.testing.assert_array_equal(first, again[0])  # same seed, same draws
    assert not np.array_equal(first, second)  # a new draw every epoch
    assert not np.array_equal(first, plain[0])
    np.testing.assert_array_equal(first.sum(axis=0).sum(), plain[0].sum())  # no note lost
    np.testing.assert_array_equal(plain[0], plain[1])


@pytest.mark.parametrize(("changes", "needle"), [
    ({"transpose": 13}, "transpose must be in 0..12"),
    ({"transpose": 2, "representation": "events"}, "representation 'roll' only"),
])  # fmt: skip
def test_transpose_config_is_checked(changes, needle):
    from apps.common.errors import ConfigError
    from apps.music.config import MusicConfig

    with pytest.raises(ConfigError, match=needle):
        MusicConfig(**changes).validate()
