"""apps.music end to end on the shared real data: a tiny events model on the Chopin MIDI folder
and a tiny roll model on the JSB Chorales benchmark JSON."""

from __future__ import annotations

import numpy as np
import pytest

from apps.common import cli
from apps.music import verbs
from apps.music.config import MusicConfig
from apps.music.notes import PITCH_HIGH, PITCH_LOW
from apps.music.train import train_and_evaluate


def _main(*argv: str) -> int:
    return cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, list(argv))


def test_tiny_events_on_the_shared_chopin_folder(shared_data, tmp_path, capsys):
    folder = shared_data / "music" / "chopin_midi"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    config = MusicConfig.tiny().replace(data=str(folder), representation="events", limit=4,
                                        seq_len=48, batch_size=32)  # fmt: skip
    metrics = train_and_evaluate(config, tmp_path / "run")
    assert metrics["representation"] == "events" and metrics["pieces"] == 1
    assert 0.0 <= metrics["pitch_accuracy"] <= 1.0 and metrics["notes"] > 100
    assert metrics["step_mae_quarters"] >= 0 and np.isfinite(metrics["nll_per_note"])
    assert _main("generate", "--run-dir", str(tmp_path / "run"), "--length", "30", "--quiet") == 0
    import music21
    import pretty_midi

    path = tmp_path / "run" / "samples" / "sample_001.mid"
    notes = [n for inst in pretty_midi.PrettyMIDI(str(path)).instruments for n in inst.notes]
    assert abs(len(notes) - 30) <= 3  # --length 30 notes, within 10%
    assert all(PITCH_LOW <= n.pitch <= PITCH_HIGH and n.end > n.start for n in notes)
    score = music21.converter.parse(str(path), forceSource=True, storePickle=False)
    assert len(score.flatten().notes) > 0


def test_tiny_roll_on_the_jsb_benchmark_json(shared_data, tmp_path):
    path = shared_data / "music" / "jsb_chorales" / "jsb-chorales-quarter.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    config = MusicConfig.tiny().replace(data=str(path), limit=8, steps_per_quarter=1)
    metrics = train_and_evaluate(config, tmp_path / "run")
    assert metrics["pieces"] == 8 and metrics["data"] == str(path)
    assert 0 < metrics["nll_per_step"] < 88 * np.log(2)


def test_weight_noise_flag_trains_on_the_jsb_json_and_is_range_checked(shared_data, tmp_path,
                                                                       capsys):  # fmt: skip
    import json

    path = shared_data / "music" / "jsb_chorales" / "jsb-chorales-quarter.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    run = tmp_path / "run"
    argv = ["train", "--size", "tiny", "--data", str(path), "--limit", "8", "--steps-per-quarter",
            "1", "--run-dir", str(run), "--quiet"]  # fmt: skip
    assert _main(*argv, "--weight-noise", "0.05") == 0
    assert json.loads((run / "config.json").read_text())["config"]["weight_noise"] == 0.05
    assert 0 < json.loads((run / "metrics.json").read_text())["nll_per_step"] < 88 * np.log(2)
    capsys.readouterr()
    assert _main(*argv[:-3], "--run-dir", str(tmp_path / "bad"), "--weight-noise", "2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--weight-noise" in err[0]
