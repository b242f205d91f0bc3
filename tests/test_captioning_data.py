"""apps.captioning data without TensorFlow: digit scenes, vocabulary, metrics, image reading
(every bad-image case, files generated with Pillow / NumPy) and the Flickr8k folder reader."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from apps.captioning import images as images_mod
from apps.captioning import scenes
from apps.captioning.data import load_splits, read_flickr_captions
from apps.captioning.images import expand_image_args, read_image, read_images
from apps.captioning.metrics import caption_scores, exact_accuracy
from apps.captioning.vocab import (
    END_ID,
    START_ID,
    caption_words,
    detokenize,
    encode_caption,
    fit_vocab,
    metric_tokens,
    reference_tokens,
)
from apps.common.errors import DataError
from apps.common.text import WordTokenizer


# ------------------------------------------------------------------------------ scenes
def test_captions_follow_the_layout_exactly():
    assert scenes.caption_for("row3", (4, 1, 9)) == "three digits: four, one and nine"
    assert scenes.caption_for("row4", (0, 8, 2, 2)) == "four digits: zero, eight, two and two"
    assert scenes.caption_for("left_of", (7, 3)) == "a seven to the left of a three"
    assert scenes.caption_for("above", (1, 8)) == "a one above an eight"
    with pytest.raises(ValueError, match="needs 2 digits"):
        scenes.caption_for("above", (1, 2, 3))


def test_digit_file_is_sklearns_load_digits():
    from sklearn.datasets import load_digits

    images, labels = scenes.load_digit_images()
    bunch = load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, np.rint(bunch.images * 255 / 16).astype(np.uint8))
    np.testing.assert_array_equal(labels, bunch.target)


def test_scenes_are_deterministic_and_test_digits_are_unseen():
    counts = {"train": 40, "val": 10, "test": 30}
    a, b = scenes.make_scenes(counts, seed=7), scenes.make_scenes(counts, seed=7)
    other = scenes.make_scenes(counts, seed=8)
    for split, count in counts.items():
        assert len(a[split]) == count
        for x, y in zip(a[split], b[split]):
            np.testing.assert_array_equal(x.image, y.image)
            assert x.caption == y.caption and x.sources == y.sources
    assert [s.caption for s in a["train"]] != [s.caption for s in other["train"]]
    _, labels = scenes.load_digit_images()
    pools = scenes.split_digits(labels, 7)
    assert sum(len(p) for p in pools.values()) == 1797
    assert not set(pools["train"]) & set(pools["test"])
    assert not set(pools["train"]) & set(pools["val"])
    for split in counts:
        for scene in a[split]:
            assert set(scene.sources) <= set(pools[split])
    # The per-class split is stratified: every digit has test images.
    assert sorted(set(labels[pools["test"]])) == list(range(10))


def test_scene_caption_matches_cells_and_pixels():
    images, labels = scenes.load_digit_images()
    made = scenes.make_scenes({"test": 60}, seed=3)["test"]
    layouts = set()
    for scene in made:
        rows = [r for r, _ in scene.cells]
        cols = [c for _, c in scene.cells]
        n = len(scene.digits)
        if scene.caption.startswith(("three", "four")):
            layouts.add(n)
            assert len(set(rows)) == 1 and cols == sorted(cols) and len(set(cols)) == n
        elif " above " in scene.caption:
            layouts.add("above")
            assert len(set(cols)) == 1 and rows[0] < rows[1]
        else:
            layouts.add("left_of")
            assert len(set(rows)) == 1 and cols[0] < cols[1]
        assert scene.digits == tuple(int(labels[s]) for s in scene.sources)
        assert scene.image.shape == (32, 32) and scene.image.dtype == np.uint8
        # Test scenes are not distorted: each digit sits in its cell, shifted by at most 1 px.
        for (row, col), src in zip(scene.cells, scene.sources):
            found = False
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    canvas = np.zeros((34, 34), np.uint8)
                    canvas[1:33, 1:33] = scene.image
                    top, left = row * 8 + dy + 1, col * 8 + dx + 1
                    digit = images[src].copy()
                    patch = canvas[top : top + 8, left : left + 8]
                    # pixels that fall outside the canvas are cut: compare inside only
                    inside = np.zeros((34, 34), bool)
                    inside[1:33, 1:33] = True
                    mask = inside[top : top + 8, left : left + 8]
                    if np.all(patch[mask] >= digit[mask]):
                        found = True
            assert found, scene.caption
    assert layouts == {3, 4, "above", "left_of"}


def test_warp_digits_identity_and_quarter_turn():
    images, _ = scenes.load_digit_images()
    digits = images[:20]
    same = scenes.warp_digits(digits, np.zeros(20), np.ones(20), np.zeros(20))
    np.testing.assert_array_equal(same, digits)
    turned = scenes.warp_digits(digits, np.full(20, np.pi / 2), np.ones(20), np.zeros(20))
    # output[y, x] samples input[x, 7 - y] for a 90 degree turn about the centre.
    expected = np.stack([d.T[::-1] for d in digits])
    np.testing.assert_array_equal(turned, expected)


# ------------------------------------------------------------------------------ vocabulary
def test_vocab_start_end_and_round_trip(tmp_path):
    tok = fit_vocab(["a seven above an eight", "three digits: four, one and nine"], 50)
    vocab = tok.vocabulary
    assert vocab[:4] == ["", "[UNK]", "[START]", "[END]"]
    assert START_ID == 2 and END_ID == 3
    ids = encode_caption(tok, "three digits: four, one and nine", 16)
    assert ids[0] == START_ID and ids[-1] == END_ID and len(ids) == 10
    words = caption_words(tok, ids[1:] + [9, 9])  # stops at [END]
    assert detokenize(words) == "three digits: four, one and nine"
    assert encode_caption(tok, "a seven above an eight and more words", 3)[1:-1] == ids[:0] + [
        vocab.index("a"), vocab.index("seven"), vocab.index("above")]  # fmt: skip
    assert reference_tokens(tok, "a zebra above") == ["a", "[UNK]", "above"]
    tok.save(tmp_path / "vocab.json")
    again = WordTokenizer.load(tmp_path / "vocab.json")
    assert again.vocabulary == vocab
    assert "[START]" not in WordTokenizer.load(tmp_path / "vocab.json").tokenize("[START] x")


def test_metric_tokens_and_scores():
    assert metric_tokens("A dog, running!") == ["a", "dog", "running"]
    assert caption_scores([["a dog runs"]], ["a dog runs"])["bleu_1"] == pytest.approx(1.0)
    # BLEU-1 with brevity penalty: 3 matching words, reference 4 words long.
    scores = caption_scores([["a dog runs fast"]], ["a dog runs"])
    assert scores["bleu_1"] == pytest.approx(np.exp(1 - 4 / 3), rel=1e-6)
    # CIDEr-D: a caption equal to the references of its image outscores a wrong one.
    refs = [["a dog runs on grass", "a dog running on the grass"], ["a man rides a bike"]] * 2
    good = caption_scores(refs, ["a dog runs on grass", "a man rides a bike"] * 2)["cider"]
    bad = caption_scores(refs, ["a man rides a bike", "a dog runs on grass"] * 2)["cider"]
    assert good > 1.0 > bad >= 0.0
    assert exact_accuracy([[["a", "b"]], [["c"]]], [["a", "b"], ["d"]]) == 0.5
    with pytest.raises(ValueError, match="one hypothesis per image"):
        caption_scores([["a"]], ["a", "b"])


# ------------------------------------------------------------------------------ images
def _png(path, array):
    Image.fromarray(array).save(path)
    return path


def test_read_image_modes(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    path = _png(tmp_path / "gray.png", gray)
    np.testing.assert_array_equal(read_image(path, 8, 1)[..., 0], gray)
    rgb = read_image(path, 8, 3)
    assert rgb.shape == (8, 8, 3) and (rgb[..., 0] == gray).all() and (rgb[..., 2] == gray).all()
    # RGBA: transparency is composited over black.
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:4, :, 3] = 255  # top half opaque, bottom half transparent
    got = read_image(_png(tmp_path / "rgba.png", rgba), 8, 1)[..., 0]
    assert (got[:4] == 200).all() and (got[4:] == 0).all()
    # 16-bit grayscale is scaled, not clipped: 65535 -> 255, 32896 -> 128.
    deep = np.full((8, 8), 65535, np.uint16)
    deep[4:] = 32896
    img16 = Image.fromarray(deep)
    assert img16.mode.startswith("I;16")
    img16.save(tmp_path / "deep.png")
    got = read_image(tmp_path / "deep.png", 8, 1)[..., 0]
    assert (got[:4] == 255).all() and (got[4:] == 128).all()
    # Palette with transparency, CMYK JPEG, and resizing.
    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([255, 255, 255] + [0, 0, 0] * 255)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pal.png", transparency=0)
    assert read_image(tmp_path / "pal.png", 4, 3).max() == 0
    Image.new("CMYK", (20, 10), (0, 0, 0, 0)).save(tmp_path / "cmyk.jpg")
    white = read_image(tmp_path / "cmyk.jpg", 6, 3)
    assert white.shape == (6, 6, 3) and white.min() > 240


def test_read_image_huge_is_shrunk(tmp_path):
    big = Image.new("L", (8000, 8000), 0)
    big.paste(255, (0, 0, 4000, 8000))  # left half white
    big.save(tmp_path / "huge.png")
    small = read_image(tmp_path / "huge.png", 32, 1)[..., 0]
    assert small.shape == (32, 32)
    assert (small[:, :15] == 255).all() and (small[:, 17:] == 0).all()
    big.convert("RGB").save(tmp_path / "huge.jpg", quality=80)
    small = read_image(tmp_path / "huge.jpg", 32, 3)
    assert small[:, :15].mean() > 240 and small[:, 17:].mean() < 15


def test_bad_images_give_one_clear_line(tmp_path, monkeypatch):
    good = _png(tmp_path / "good.png", np.full((8, 8), 9, np.uint8))
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        buf, format="JPEG")  # fmt: skip
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "text.png").write_text("not an image at all")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    cases = {
        "cut.jpg": "truncated or corrupt",
        "text.png": "not an image",
        "empty.jpg": "not an image",
        "folder": "is a folder",
        "missing.png": "no such image file",
    }
    for name, message in cases.items():
        with pytest.raises(DataError, match=message) as info:
            read_image(tmp_path / name, 8, 1)
        assert "\n" not in str(info.value) and name in str(info.value)
    monkeypatch.setattr(images_mod, "MAX_PIXELS", 50)
    with pytest.raises(DataError, match="too large"):
        read_image(good, 8, 1)
    monkeypatch.undo()
    # Several images: stop at the first bad one, or skip and report with skip_bad.
    paths = [good, tmp_path / "cut.jpg", good]
    with pytest.raises(DataError, match="cut.jpg"):
        read_images(paths, 8, 1)
    kept, arrays, problems = read_images(paths, 8, 1, skip_bad=True)
    assert kept == [good, good] and arrays.shape == (2, 8, 8, 1) and len(problems) == 1
    with pytest.raises(DataError, match="none of the 1 images"):
        read_images([tmp_path / "text.png"], 8, 1, skip_bad=True)
    # Folders stand for their images (sorted); an empty folder is an error.
    (tmp_path / "pics").mkdir()
    gray8 = np.zeros((4, 4), np.uint8)
    b = _png(tmp_path / "pics" / "b.png", gray8)
    a = _png(tmp_path / "pics" / "a.PNG", gray8)
    (tmp_path / "pics" / "notes.txt").write_text("x")
    assert expand_image_args([tmp_path / "pics", good]) == [a, b, good]
    with pytest.raises(DataError, match="holds no images"):
        expand_image_args([tmp_path / "folder"])


# ------------------------------------------------------------------------------ Flickr8k
def _flickr_folder(root, *, splits=True, token_format=False):
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"{i:04d}_x.jpg" for i in range(9)]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(
            root / "images" / name
        )
    good = (root / "images" / names[0]).read_bytes()
    (root / "images" / "bad_0.jpg").write_bytes(good[: len(good) // 3])  # truncated
    (root / "images" / "nocaption.jpg").write_bytes(good)
    rows = [(n, f"caption {k} of image {n[:4]} , with a comma") for n in names for k in range(2)]
    rows += [("bad_0.jpg", "a broken image"), ("gone_1.jpg", "no such image"),
             ("gone_2.jpg", "another missing one"), ("gone_2.jpg", "and again")]  # fmt: skip
    if token_format:
        lines = [f"{n}#{k}\t{c}" for k, (n, c) in enumerate(rows)]
        (root / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    else:
        lines = ["image,caption"] + [f'{n},"{c}"' for n, c in rows]
        (root / "captions.txt").write_text("\n".join(lines) + "\n")
    if splits:
        split_of = ["train"] * 5 + ["dev"] * 2 + ["test"] * 2
        lines = ["image,official_split,upstream_blob"]
        lines += [f"{n},{s},x" for n, s in zip(names, split_of)] + ["bad_0.jpg,test,x"]
        (root / "splits.csv").write_text("\n".join(lines) + "\n")
    return names


def test_flickr_folder_counts_skipped_and_reads_splits(tmp_path):
    names = _flickr_folder(tmp_path / "f")
    data = load_splits(str(tmp_path / "f"), seed=1, image_size=16)
    assert (len(data.train), len(data.val), len(data.test)) == (5, 2, 2)
    assert data.train.names == names[:5] and data.test.names == names[7:]
    assert data.train.images.shape == (5, 16, 16, 3) and data.channels == 3
    assert data.train.captions[0] == [f"caption {k} of image 0000 , with a comma" for k in (0, 1)]
    assert data.skipped == {"captions_without_image": 3, "images_without_caption": 1,
                            "images_without_split": 0, "unreadable_images": 1}  # fmt: skip
    notes = " | ".join(data.notes)
    assert "3 captions name 2 images that are not in" in notes
    assert "1 images cannot be decoded" in notes and "bad_0.jpg" in notes
    # Same folder with the token file and no split file: an 80/10/10 split by seed.
    _flickr_folder(tmp_path / "g", splits=False, token_format=True)
    (tmp_path / "g" / "images" / "bad_0.jpg").unlink()
    data2 = load_splits(str(tmp_path / "g"), seed=1, image_size=16, limit=3)
    assert (len(data2.train), len(data2.val), len(data2.test)) == (3, 1, 1)
    assert data2.skipped["captions_without_image"] == 4
    assert "80/10/10 split by seed 1" in data2.description
    assert set(data2.train.names + data2.val.names + data2.test.names) <= set(names)
    caps = read_flickr_captions(tmp_path / "g" / "Flickr8k.token.txt")
    assert caps[0] == (names[0], "caption 0 of image 0000 , with a comma")
    assert caps == read_flickr_captions(tmp_path / "f" / "captions.txt")


def test_flickr_folder_errors(tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="no images/ folder"):
        load_splits(str(tmp_path / "nothing"), seed=0)
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "captions.txt").write_text("image,caption\n")
    with pytest.raises(DataError, match="holds no images"):
        load_splits(str(tmp_path / "empty"), seed=0)
    _flickr_folder(tmp_path / "bad")
    (tmp_path / "bad" / "captions.txt").write_text("file;text\nx;y\n")
    with pytest.raises(DataError, match="header 'image,caption'"):
        load_splits(str(tmp_path / "bad"), seed=0)
    (tmp_path / "bad" / "captions.txt").write_bytes(b"image,caption\nx.jpg,caf\xe9\n")
    with pytest.raises(DataError, match="not valid UTF-8"):
        load_splits(str(tmp_path / "bad"), seed=0)
    with pytest.raises(DataError, match="unknown builtin dataset"):
        load_splits("builtin:nope", seed=0)


def test_builtin_digits_splits():
    data = load_splits("builtin:digits", seed=5, scenes=40)
    assert (len(data.train), len(data.val), len(data.test)) == (40, 20, 20)
    assert data.train.images.shape == (40, 32, 32, 1) and data.image_size == 32
    rgb = load_splits("builtin:digits", seed=5, scenes=40, image_size=64, channels=3)
    assert rgb.test.images.shape == (20, 64, 64, 3)
    assert data.test.captions == rgb.test.captions
    index, texts = data.train.pairs()
    assert list(index) == list(range(40)) and texts == [c[0] for c in data.train.captions]
