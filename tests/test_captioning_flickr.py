"""apps.captioning end to end on Flickr8k-layout folders: the real shared folder (a handful of
images) and a generated one with missing and broken images (warned about, skipped, counted)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from apps.captioning.config import CaptioningConfig

TINY_PHOTOS = {"image_size": 32, "limit": 4}


def test_real_flickr8k_handful(shared_data, tmp_path):
    from apps.captioning.images import read_image
    from apps.captioning.train import caption_texts, load_trained, train_and_evaluate
    from apps.common.rundir import RunDir

    folder = shared_data / "flickr8k"
    if not (folder / "images").is_dir():
        pytest.skip(f"no Flickr8k images in {folder}")
    config = CaptioningConfig.tiny().replace(data=str(folder), **TINY_PHOTOS)
    lines: list[str] = []
    metrics = train_and_evaluate(config, tmp_path / "run", log=lines.append)
    assert any("Flickr8k folder" in line and "official splits" in line for line in lines)
    assert metrics["images"] == 4 and "exact_caption_accuracy" not in metrics
    for key in ("bleu_1", "bleu_2", "bleu_3", "bleu_4"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["cider"] >= 0.0
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["channels"] == 3 and meta["image_size"] == 32
    samples = (tmp_path / "run" / "samples" / "captions-test.jsonl").read_text().splitlines()
    rows = [json.loads(s) for s in samples]
    assert len(rows) == 4 and all(len(r["references"]) == 5 for r in rows)
    # The test images are official test-split images, captioned from their files.
    splits = dict(
        line.split(",")[:2] for line in (folder / "splits.csv").read_text().splitlines()[1:]
    )
    assert all(splits[r["image"]] == "test" for r in rows)
    trained = load_trained(RunDir(tmp_path / "run", "apps.captioning"))
    pixels = read_image(folder / "images" / rows[0]["image"], 32, 3)[None]
    assert caption_texts(trained, pixels) == [rows[0]["caption"]]


def test_generated_flickr_folder_warns_and_counts(tmp_path):
    from apps.captioning.train import train_and_evaluate

    root = tmp_path / "flickr"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    words = ["a dog runs on grass", "a man rides a red bike", "two kids play in water"]
    rows = ["image,caption"]
    for i in range(20):
        name = f"{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(
            root / "images" / name
        )
        rows += [f"{name},{words[(i + k) % 3]} ." for k in range(3)]
    (root / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    rows += ["broken.jpg,a broken file", "lost.jpg,a missing image", "lost.jpg,again"]
    (root / "captions.txt").write_text("\n".join(rows) + "\n")
    lines: list[str] = []
    config = CaptioningConfig.tiny().replace(data=str(root), image_size=32, limit=None)
    metrics = train_and_evaluate(config, tmp_path / "run", log=lines.append)
    warnings = [line for line in lines if line.startswith("warning:")]
    assert any("2 captions name 1 images that are not in" in w for w in warnings)
    assert any("1 images cannot be decoded (skipped)" in w and "broken.jpg" in w for w in warnings)
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["skipped"]["captions_without_image"] == 2
    assert meta["skipped"]["unreadable_images"] == 1
    assert metrics["images"] >= 1
