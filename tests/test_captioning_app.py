"""apps.captioning end to end on builtin:digits (tiny config): train -> evaluate -> caption ->
attend, resume, bad input on the command line, and a frozen keras.applications encoder whose
features are cached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from apps.captioning.config import CaptioningConfig

REPO = Path(__file__).resolve().parents[1]
LAYOUT = ["checkpoints", "config.json", "export", "history.csv", "logs", "metrics.json",
          "model.keras", "plots", "samples", "vocab.json"]  # fmt: skip


def cli(*args: str, cwd: Path, timeout: float = 300):
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "apps.captioning", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from apps.captioning.train import train_and_evaluate

    run = tmp_path_factory.mktemp("captioning") / "run"
    lines: list[str] = []
    metrics = train_and_evaluate(CaptioningConfig.tiny(), run, log=lines.append)
    return run, metrics, lines


@pytest.fixture(scope="module")
def test_scenes():
    from apps.captioning.data import load_splits

    config = CaptioningConfig.tiny()
    return load_splits(config.data, seed=config.seed, scenes=config.scenes).test


def test_train_writes_a_complete_run_dir(trained, test_scenes):
    import keras

    import seqlayers  # noqa: F401
    from apps.captioning.train import caption_texts, load_trained
    from apps.common.rundir import RunDir

    run, metrics, lines = trained
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == LAYOUT
    assert any(line.startswith("data: builtin:digits") for line in lines)
    assert json.loads((run / "metrics.json").read_text()) == metrics
    for key in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider", "exact_caption_accuracy"):
        assert 0.0 <= metrics[key] <= (10.0 if key == "cider" else 1.0), key
    assert metrics["images"] == len(test_scenes) == 48 and metrics["beam"] == 1
    meta = json.loads((run / "config.json").read_text())
    assert meta["app"] == "apps.captioning" and meta["image_size"] == 32 and meta["channels"] == 1
    assert meta["grid"] == [4, 4, 32]
    vocab = json.loads((run / "vocab.json").read_text())["vocabulary"]
    assert vocab[:4] == ["", "[UNK]", "[START]", "[END]"] and "seven" in vocab
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    assert sorted(t.name for t in model.inputs) == ["caption", "image"]
    # The samples file holds the test captions the metrics were computed from.
    samples = [
        json.loads(x) for x in (run / "samples" / "captions-test.jsonl").read_text().splitlines()
    ]
    assert [s["image"] for s in samples] == test_scenes.names
    assert [s["references"] for s in samples] == test_scenes.captions
    texts = caption_texts(load_trained(RunDir(run, "apps.captioning")), test_scenes.images)
    assert [s["caption"] for s in samples] == texts
    exact = np.mean([s["caption"] == s["references"][0] for s in samples])
    assert metrics["exact_caption_accuracy"] == pytest.approx(exact)


def test_resume_trains_only_missing_epochs(trained, tmp_path):
    import shutil

    from apps.captioning.train import train_and_evaluate
    from apps.common.errors import RunDirError

    run, _, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    lines: list[str] = []
    train_and_evaluate(CaptioningConfig.tiny().replace(epochs=2), copy, log=lines.append)
    assert any("resuming from epoch 1 of 2" in line for line in lines)
    rows = (copy / "history.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]
    with pytest.raises(RunDirError, match="another config"):
        train_and_evaluate(CaptioningConfig.tiny().replace(units=20), copy)


def _scene_files(folder: Path, image: np.ndarray) -> list[Path]:
    gray = image[..., 0]
    paths = [folder / "scene.png", folder / "scene_rgba.png", folder / "scene16.png",
             folder / "huge.png"]  # fmt: skip
    Image.fromarray(gray).save(paths[0])
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    Image.fromarray(rgba, "RGBA").save(paths[1])
    Image.fromarray(gray.astype(np.uint16) * 257).save(paths[2])
    Image.fromarray(gray).resize((8000, 8000), Image.Resampling.NEAREST).save(paths[3])
    return paths


def test_caption_command_reads_any_image_like_training(trained, test_scenes, tmp_path):
    from apps.captioning.train import caption_texts, load_trained
    from apps.common.rundir import RunDir

    run, _, _ = trained
    paths = _scene_files(tmp_path, test_scenes.images[0])
    result = cli("caption", "--run-dir", str(run), *map(str, paths), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["image"] for r in rows] == [str(p) for p in paths]
    expected = caption_texts(load_trained(RunDir(run, "apps.captioning")), test_scenes.images[:1])[
        0
    ]
    # PNG, opaque RGBA and 16-bit copies hold the same pixels: the same caption as in memory.
    assert [r["caption"] for r in rows[:3]] == [expected] * 3
    assert isinstance(rows[3]["caption"], str) and rows[3]["beam"] == 1


def test_bad_images_on_the_command_line(trained, test_scenes, tmp_path):
    run, _, _ = trained
    good = tmp_path / "good.png"
    Image.fromarray(test_scenes.images[1][..., 0]).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:60])
    (tmp_path / "empty").mkdir()
    result = cli("caption", "--run-dir", str(run), str(good), str(cut), cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "cut.png" in result.stderr
    assert "truncated or corrupt" in result.stderr and "Traceback" not in result.stderr
    result = cli("caption", "--run-dir", str(run), str(tmp_path / "empty"), cwd=tmp_path)
    assert result.returncode == 2 and "holds no images" in result.stderr
    result = cli("caption", "--run-dir", str(run), str(good), str(cut), "--skip-bad", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(f"{good}\t")
    assert len(result.stdout.splitlines()) == 1
    assert "warning: skipped" in result.stderr and "1 of 2 images skipped" in result.stderr


def test_attend_and_evaluate_commands(trained, test_scenes, tmp_path):
    run, metrics, _ = trained
    image = tmp_path / "scene.png"
    Image.fromarray(test_scenes.images[2][..., 0]).save(image)
    out = tmp_path / "pics" / "attention.png"
    result = cli("attend", "--run-dir", str(run), str(image), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"attention picture: {out}" in result.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as png:
        assert png.width >= 160 and png.height >= 160
    result = cli("evaluate", "--run-dir", str(run), "--beam", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    evaluated = json.loads(line)
    assert evaluated == json.loads((run / "metrics.json").read_text())
    assert evaluated["beam"] == 2 and evaluated["images"] == metrics["images"]


def test_usage_errors_before_anything_is_written(tmp_path):
    result = cli("train", "--encoder", "mobilenet_v3_small", "--run-dir", str(tmp_path / "r"),
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2 and "needs its ImageNet weights file" in result.stderr
    assert not (tmp_path / "r").exists()
    result = cli("train", "--encoder", "efficientnet_b0", "--encoder-weights", "nope.h5",
                 "--run-dir", str(tmp_path / "r"), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2 and "no such file: nope.h5" in result.stderr
    result = cli("caption", "--run-dir", str(tmp_path / "nothing"), "x.png", cwd=tmp_path)
    assert result.returncode == 2 and "no such run dir" in result.stderr
    result = cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert (
        "--scenes N builtin:digits training scenes (default: 16000, from --size small)"
        in " ".join(result.stdout.split())
    )


def test_frozen_pretrained_encoder_uses_cached_features(tmp_path):
    import keras

    from apps.captioning.train import caption_texts, load_trained, train_and_evaluate
    from apps.common.rundir import RunDir

    keras.utils.set_random_seed(0)
    net = keras.applications.MobileNetV3Small(input_shape=(64, 64, 3), include_top=False,
                                              weights=None)  # fmt: skip
    weights = tmp_path / "mobilenet_notop.weights.h5"
    net.save_weights(weights)
    config = CaptioningConfig.tiny().replace(encoder="mobilenet_v3_small", image_size=64,
                                             encoder_weights=str(weights), scenes=60)  # fmt: skip
    lines: list[str] = []
    metrics = train_and_evaluate(config, tmp_path / "run", log=lines.append)
    assert any("computed and cached" in line for line in lines)
    assert len(list((tmp_path / "run" / "checkpoints" / "features").glob("*.npy"))) == 2
    assert metrics["encoder"] == "mobilenet_v3_small" and metrics["images"] == 20
    lines.clear()
    train_and_evaluate(config.replace(epochs=2), tmp_path / "run", log=lines.append)
    assert any("encoder features: cached" in line for line in lines)
    trained = load_trained(RunDir(tmp_path / "run", "apps.captioning"))
    assert sorted(t.name for t in trained.model.inputs) == ["caption", "image"]
    pixels = np.zeros((1, 64, 64, 3), np.uint8)
    assert isinstance(caption_texts(trained, pixels)[0], str)
