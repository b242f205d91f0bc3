"""Captioning data: every ``--data`` source as train/val/test images with reference captions,
and the ``tf.data`` pipeline that feeds the model.

Sources (``--data``):

- ``builtin:digits`` (default) — generated scenes of scikit-learn's handwritten digits (see
  :mod:`apps.captioning.scenes`); 32x32 grayscale, one caption per scene.
- a Flickr8k folder in its published layout: ``images/`` (or ``Images/``,
  ``Flicker8k_Dataset/``) and ``captions.txt`` (``image,caption`` CSV) or ``Flickr8k.token.txt``
  (``image#n<TAB>caption``); the official split labels come from ``splits.csv``
  (``image,official_split``) or ``Flickr_8k.{train,dev,test}Images.txt`` when present, else
  an 80/10/10 split by ``seed``. Captions naming an image that is not in the folder, images
  that cannot be decoded and images without a split are skipped and counted (``notes``).
- ``tfds:coco_captions[:SPLIT]`` — the tensorflow-datasets COCO captions, when it has been
  prepared on this machine (``tfds build coco_captions``); nothing is downloaded here.

Every image goes through :func:`apps.captioning.images.read_image` (folder sources) or the same
resize (builtin, tfds), so training, evaluation and the ``caption`` command see identical pixels.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from apps.captioning.config import BUILTIN_DATA
from apps.captioning.images import list_images, read_image
from apps.common.errors import DataError
from apps.common.sources import Source, decode_utf8_strict, load_tfds, parse_source

FLAG = "--data"
SPLITS = ("train", "val", "test")
PHOTO_SIZE = 128
IMAGE_DIRS = ("images", "Images", "Flicker8k_Dataset", "Flickr8k_Dataset")
CAPTION_FILES = ("captions.txt", "Flickr8k.token.txt", "Flickr8k_text/Flickr8k.token.txt")
OFFICIAL_SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt",
                        "test": "Flickr_8k.testImages.txt"}  # fmt: skip
SPLIT_ALIASES = {"train": "train", "dev": "val", "val": "val", "validation": "val", "test": "test"}
FLICKR_HINT = (
    "expected a Flickr8k folder: images/ plus captions.txt (image,caption) or Flickr8k.token.txt"
)


@dataclasses.dataclass
class CaptionSplit:
    """The images of one split and all their reference captions.

    Attributes:
        images: ``(N, size, size, channels)`` uint8.
        captions: per image, its reference captions (at least one).
        names: per image, an identifier (file name, ``scene-00012``, COCO id).
    """

    images: np.ndarray
    captions: list[list[str]]
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def pairs(self) -> tuple[np.ndarray, list[str]]:
        """``(image index per pair, caption per pair)``: every (image, caption) pair once."""
        index = [i for i, caps in enumerate(self.captions) for _ in caps]
        texts = [c for caps in self.captions for c in caps]
        return np.asarray(index, dtype=np.int64), texts


@dataclasses.dataclass
class CaptionData:
    """Train/val/test splits of one source.

    Attributes:
        train, val, test: the splits.
        description: one line saying where the data came from.
        image_size: side of the square images.
        channels: 1 (grayscale) or 3 (RGB).
        notes: warnings to show the user (skipped captions / images, with counts).
        skipped: counts of what was left out, by reason.
    """

    train: CaptionSplit
    val: CaptionSplit
    test: CaptionSplit
    description: str
    image_size: int
    channels: int
    notes: list[str] = dataclasses.field(default_factory=list)
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)

    def split(self, name: str) -> CaptionSplit:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}. Received: {name!r}")
        return getattr(self, name)


def native_size(spec: str) -> int:
    """The image side a source uses when ``image_size`` is not set (32 digits, 128 photos)."""
    from apps.captioning.scenes import CANVAS

    return CANVAS if spec.strip() == "builtin:digits" else PHOTO_SIZE


def native_channels(spec: str) -> int:
    """1 for ``builtin:digits``, 3 for photos."""
    return 1 if spec.strip() == "builtin:digits" else 3


def _resize(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Resize / convert uint8 images ``(N, H, W, C)`` as :func:`read_image` would."""
    from PIL import Image

    if images.shape[1:3] == (size, size) and images.shape[3] == channels:
        return images
    out = np.empty((len(images), size, size, channels), dtype=np.uint8)
    for i, array in enumerate(images):
        img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
        img = img.convert("L" if channels == 1 else "RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
        out[i] = np.asarray(img, dtype=np.uint8).reshape(size, size, channels)
    return out


# ------------------------------------------------------------------------ builtin:digits
def scene_counts(scenes: int) -> dict[str, int]:
    """Training scenes as given; validation a tenth and test a fifth of it (at least 20)."""
    return {"train": scenes, "val": max(20, scenes // 10), "test": max(20, scenes // 5)}


def _load_digits(seed: int, scenes: int, size: int, channels: int) -> CaptionData:
    from apps.captioning.scenes import DESCRIPTION, make_scenes

    made = make_scenes(scene_counts(scenes), seed)
    splits = {}
    for name, items in made.items():
        images = np.stack([s.image for s in items])[..., None]
        splits[name] = CaptionSplit(
            _resize(images, size, channels),
            [[s.caption] for s in items],
            [f"scene-{name}-{i:05d}" for i in range(len(items))],
        )
    counts = ", ".join(f"{len(splits[n])} {n}" for n in SPLITS)
    return CaptionData(**splits, description=f"{DESCRIPTION} ({counts} scenes, seed {seed})",
                       image_size=size, channels=channels)  # fmt: skip


# ---------------------------------------------------------------------------- Flickr8k
def _read_file_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{FLAG}: cannot read {path}: {e.strerror}") from None
    return decode_utf8_strict(data, str(path), flag=FLAG)


def read_flickr_captions(path: Path) -> list[tuple[str, str]]:
    """``(image file name, caption)`` rows of ``captions.txt`` or ``Flickr8k.token.txt``."""
    text = _read_file_text(path)
    rows: list[tuple[str, str]] = []
    if path.suffix == ".txt" and path.name != "captions.txt":  # token format
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            if "\t" not in line:
                raise DataError(f"{FLAG}: {path} line {n}: expected 'image#n<TAB>caption'")
            key, caption = line.split("\t", 1)
            rows.append((key.split("#", 1)[0].strip(), caption.strip()))
        return rows
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:2]] != ["image", "caption"]:
            raise DataError(f"{FLAG}: {path} must start with the header 'image,caption'")
        for row in reader:
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise DataError(f"{FLAG}: {path} line {reader.line_num}: expected 'image,caption'")
            rows.append((row[0].strip(), ",".join(row[1:]).strip()))
    except csv.Error as e:
        raise DataError(f"{FLAG}: {path} line {reader.line_num}: malformed CSV ({e})") from None
    return rows


def _flickr_split_labels(folder: Path) -> dict[str, str] | None:
    splits_csv = folder / "splits.csv"
    if splits_csv.is_file():
        reader = csv.DictReader(io.StringIO(_read_file_text(splits_csv)))
        if not reader.fieldnames or not {"image", "official_split"} <= set(reader.fieldnames):
            raise DataError(f"{FLAG}: {splits_csv} needs the columns image,official_split")
        labels = {}
        for row in reader:
            split = SPLIT_ALIASES.get((row["official_split"] or "").strip().lower())
            if split is not None:
                labels[row["image"].strip()] = split
        return labels
    for base in (folder, folder / "Flickr8k_text"):
        files = {s: base / f for s, f in OFFICIAL_SPLIT_FILES.items()}
        if all(p.is_file() for p in files.values()):
            return {line.strip(): split for split, p in files.items()
                    for line in _read_file_text(p).splitlines() if line.strip()}  # fmt: skip
    return None


def _seeded_split(names: Sequence[str], seed: int) -> dict[str, str]:
    order = sorted(names)
    random.Random(seed).shuffle(order)
    n_val = n_test = max(1, len(order) // 10)
    labels = {}
    for i, name in enumerate(order):
        labels[name] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return labels


def find_flickr_files(folder: Path) -> tuple[Path, Path]:
    """``(images folder, captions file)`` of a Flickr8k folder; :class:`DataError` if absent."""
    image_dir = next((folder / d for d in IMAGE_DIRS if (folder / d).is_dir()), None)
    captions = next((folder / c for c in CAPTION_FILES if (folder / c).is_file()), None)
    if image_dir is None:
        raise DataError(f"{FLAG}: {folder} has no images/ folder ({FLICKR_HINT})")
    if captions is None:
        raise DataError(
            f"{FLAG}: {folder} has no captions.txt or Flickr8k.token.txt ({FLICKR_HINT})"
        )
    return image_dir, captions


def _load_flickr(folder: Path, seed: int, size: int, channels: int, limit: int | None,
                 progress: Callable[[str, int], Any] | None) -> CaptionData:  # fmt: skip
    image_dir, caption_file = find_flickr_files(folder)
    files = {p.name: p for p in list_images(image_dir)}
    if not files:
        raise DataError(f"{FLAG}: {image_dir} holds no images ({FLICKR_HINT})")
    rows = read_flickr_captions(caption_file)
    if not rows:
        raise DataError(f"{FLAG}: {caption_file} holds no captions")
    by_image: dict[str, list[str]] = {}
    missing_captions, missing_images = 0, set()
    for name, caption in rows:
        if name not in files:
            missing_captions += 1
            missing_images.add(name)
            continue
        if caption:
            by_image.setdefault(name, []).append(caption)
    notes: list[str] = []
    skipped = {"captions_without_image": missing_captions,
               "images_without_caption": len(files) - len(by_image)}  # fmt: skip
    if missing_captions:
        notes.append(f"{missing_captions} captions name {len(missing_images)} images that are not "
                     f"in {image_dir} (skipped)")  # fmt: skip
    if not by_image:
        raise DataError(f"{FLAG}: no caption in {caption_file} names an image of {image_dir}")
    labels = _flickr_split_labels(folder)
    split_note = "official splits"
    if labels is None:
        labels = _seeded_split(list(by_image), seed)
        split_note = f"80/10/10 split by seed {seed}"
    unlabelled = [n for n in by_image if n not in labels]
    skipped["images_without_split"] = len(unlabelled)
    if unlabelled:
        notes.append(f"{len(unlabelled)} images have no split label (skipped)")
    chosen: dict[str, list[str]] = {s: [] for s in SPLITS}
    for name in sorted(by_image):
        if name in labels:
            chosen[labels[name]].append(name)
    if limit is not None:
        for s in SPLITS:
            random.Random(f"{seed}-{s}").shuffle(chosen[s])
            chosen[s] = sorted(chosen[s][:limit])
    unreadable: list[str] = []
    splits = {}
    done = 0
    for s in SPLITS:
        images, captions, names = [], [], []
        for name in chosen[s]:
            try:
                images.append(read_image(files[name], size, channels))
            except DataError as e:
                unreadable.append(str(e))
            else:
                captions.append(by_image[name])
                names.append(name)
            done += 1
            if progress is not None:
                progress("reading images", done)
        if not names:
            raise DataError(f"{FLAG}: {folder} has no readable {s} images ({split_note})")
        splits[s] = CaptionSplit(np.stack(images), captions, names)
    skipped["unreadable_images"] = len(unreadable)
    if unreadable:
        notes.append(f"{len(unreadable)} images cannot be decoded (skipped), e.g. {unreadable[0]}")
    counts = ", ".join(f"{len(splits[s])} {s}" for s in SPLITS)
    description = (f"Flickr8k folder {folder} ({counts} images, {split_note}, "
                   f"{sum(len(c) for sp in splits.values() for c in sp.captions)} captions)")  # fmt: skip
    return CaptionData(**splits, description=description, image_size=size, channels=channels,
                       notes=notes, skipped=skipped)  # fmt: skip


# ------------------------------------------------------------------------- tfds coco
def _load_tfds(source: Source, size: int, channels: int, limit: int | None) -> CaptionData:
    if not source.name.startswith("coco_captions"):
        raise DataError(
            f"{FLAG}: {source.spec} is not a captioning dataset (use tfds:coco_captions)"
        )
    wanted = {"train": "train", "val": "val", "test": "test"}
    if source.split:
        wanted = {"train": source.split, "val": source.split, "test": source.split}
    splits = {}
    for s, tfds_split in wanted.items():
        ds, _ = load_tfds(Source("tfds", source.name, None), split=tfds_split, flag=FLAG,
                          download=False)  # fmt: skip
        images, captions, names = [], [], []
        for example in ds.as_numpy_iterator():
            texts = [t.decode("utf-8", "replace") for t in example["captions"]["text"]]
            images.append(_resize(example["image"][None], size, channels)[0])
            captions.append(texts)
            names.append(str(example.get("image/id", len(names))))
            if limit is not None and len(names) >= limit:
                break
        if not names:
            raise DataError(f"{FLAG}: {source.spec} split {tfds_split!r} is empty")
        splits[s] = CaptionSplit(np.stack(images), captions, names)
    counts = ", ".join(f"{len(splits[s])} {s}" for s in SPLITS)
    return CaptionData(**splits, description=f"tensorflow-datasets {source.name} ({counts} images)",
                       image_size=size, channels=channels)  # fmt: skip


# ------------------------------------------------------------------------------ entry
def load_splits(spec: str, *, seed: int, scenes: int = 6000, limit: int | None = None,
                image_size: int | None = None, channels: int | None = None,
                progress: Callable[[str, int], Any] | None = None) -> CaptionData:  # fmt: skip
    """Load a ``--data`` source as train/val/test splits.

    Args:
        spec: ``builtin:digits``, a Flickr8k folder or ``tfds:coco_captions[:SPLIT]``.
        seed: seed for scenes and splits.
        scenes: training scenes of ``builtin:digits``.
        limit: at most this many images per split of a folder or tfds source.
        image_size: side of the images (``None``: :func:`native_size`).
        channels: 1 or 3 (``None``: :func:`native_channels`).
        progress: called as ``progress(label, done)`` while images are decoded.

    Raises:
        DataError: a source that cannot be read (one line naming ``--data`` and what to fix).
    """
    source = parse_source(spec, BUILTIN_DATA, flag=FLAG)
    size = image_size or native_size(spec)
    channels = channels or native_channels(spec)
    if source.kind == "builtin":
        return _load_digits(seed, scenes, size, channels)
    if source.kind == "tfds":
        return _load_tfds(source, size, channels, limit)
    if not source.path.is_dir():
        raise DataError(f"{FLAG}: {spec} is a file ({FLICKR_HINT})")
    return _load_flickr(source.path, seed, size, channels, limit, progress)


# --------------------------------------------------------------------------- tf.data
def encode_captions(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """``[START] w.. [END]`` ids per caption (:func:`apps.captioning.vocab.encode_caption`)."""
    from apps.captioning.vocab import encode_caption

    return [encode_caption(tokenizer, t, max_length) for t in texts]


def make_dataset(inputs: np.ndarray, index: np.ndarray, sequences: Sequence[Sequence[int]],
                 batch_size: int, *, shuffle: bool, seed: int) -> Any:  # fmt: skip
    """``((inputs, caption_in), caption_out, weights)`` batches, padded per batch.

    Args:
        inputs: per image, the model input (uint8 pixels, or cached encoder features).
        index: per pair, the row of ``inputs``.
        sequences: per pair, ``[START] w.. [END]`` ids.
        batch_size: pairs per batch.
        shuffle: shuffle the pairs every epoch (seeded).
        seed: the shuffle seed.

    Returns:
        A ``tf.data.Dataset``: ``caption_in`` is ``[START] w..``, ``caption_out`` is ``w.. [END]``
        (both post-padded with 0) and ``weights`` is 1 on real targets, 0 on padding.
    """
    import tensorflow as tf

    table = tf.constant(inputs)
    ragged = tf.ragged.constant([list(s) for s in sequences], dtype=tf.int32)
    ds = tf.data.Dataset.from_tensor_slices((tf.constant(index, tf.int32), ragged))
    if shuffle:
        ds = ds.shuffle(len(index), seed=seed, reshuffle_each_iteration=True)

    def to_example(i, seq):
        x = tf.gather(table, i)
        if x.dtype == tf.uint8:
            x = tf.cast(x, tf.float32)
        return x, seq

    ds = ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.padded_batch(batch_size, padded_shapes=(inputs.shape[1:], [None]))

    from apps.captioning.vocab import END_ID

    def split(x, seq):
        caption_in, caption_out = seq[:, :-1], seq[:, 1:]
        # [END] is never an input (of a shorter caption it lands on a padded step)
        caption_in = tf.where(caption_in == END_ID, tf.zeros_like(caption_in), caption_in)
        weights = tf.cast(caption_out > 0, tf.float32)
        return (x, caption_in), caption_out, weights

    return ds.map(split, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
