"""``builtin:digits``: scenes of handwritten digits with captions generated from their layout.

The digits are scikit-learn's bundled copy of the UCI "Optical Recognition of Handwritten
Digits" test set (``sklearn.datasets.load_digits``: 1,797 real 8x8 scans, ink 0..16). The
images are split once, per class, into train / validation / test digits (80 / 5 / 15 %), so
the test scenes are drawn only from digit images never seen in training.

A scene is a 32x32 canvas, a 4x4 grid of 8x8 cells; two to four digits are placed in distinct
cells, each shifted by up to one pixel (training digits are also slightly rotated, scaled and
sheared), and the caption says what is where:

- two digits in one row: ``"a seven to the left of a three"``;
- two digits in one column: ``"a seven above an eight"``;
- three or four digits in one row, left to right: ``"three digits: four, one and nine"``.

Everything is a pure function of the seed (NumPy ``default_rng``), so every run, test and
benchmark sees the same scenes.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
from pathlib import Path

import numpy as np

from apps.common.errors import DataError

GRID = 4
CELL = 8
CANVAS = GRID * CELL
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COUNT_WORDS = {3: "three", 4: "four"}
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.05, "test": 0.15}
LAYOUTS = ("left_of", "above", "row3", "row4")
DIGITS_FILE = "datasets/data/digits.csv.gz"
DESCRIPTION = (
    "builtin:digits — scenes of 2-4 handwritten digits from scikit-learn's bundled UCI "
    "digits (load_digits, 1,797 real 8x8 scans), captions generated from the layout; test "
    "scenes use digit images never seen in training"
)


@dataclasses.dataclass(frozen=True)
class Scene:
    """One generated scene.

    Attributes:
        image: ``(32, 32)`` uint8, ink 0..255 on black.
        caption: the caption generated from the layout.
        digits: the digit classes, in the caption's order.
        cells: the ``(row, column)`` cell of each digit, in the caption's order.
        sources: the indices (into ``load_digits()``) of the digit images used.
    """

    image: np.ndarray
    caption: str
    digits: tuple[int, ...]
    cells: tuple[tuple[int, int], ...]
    sources: tuple[int, ...]


def _article(word: str) -> str:
    return "an" if word == "eight" else "a"


def caption_for(layout: str, digits: tuple[int, ...]) -> str:
    """The caption of a layout (``LAYOUTS``) with ``digits`` in reading order.

    Example:
        >>> caption_for("row3", (4, 1, 9))
        'three digits: four, one and nine'
        >>> caption_for("above", (7, 8))
        'a seven above an eight'
    """
    words = [DIGIT_WORDS[d] for d in digits]
    if layout in ("left_of", "above"):
        if len(words) != 2:
            raise ValueError(f"layout {layout!r} needs 2 digits. Received: {digits}")
        relation = "to the left of" if layout == "left_of" else "above"
        return f"{_article(words[0])} {words[0]} {relation} {_article(words[1])} {words[1]}"
    if layout in ("row3", "row4"):
        n = 3 if layout == "row3" else 4
        if len(words) != n:
            raise ValueError(f"layout {layout!r} needs {n} digits. Received: {digits}")
        return f"{COUNT_WORDS[n]} digits: {', '.join(words[:-1])} and {words[-1]}"
    raise ValueError(f"layout must be one of {LAYOUTS}. Received: layout={layout!r}")


def _digits_file() -> Path:
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise DataError("--data: builtin:digits needs scikit-learn (pip install scikit-learn)")
    path = Path(next(iter(spec.submodule_search_locations))) / DIGITS_FILE
    if not path.is_file():
        raise DataError(f"--data: builtin:digits: scikit-learn has no {DIGITS_FILE} ({path})")
    return path


def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: ``(images (1797, 8, 8) uint8 0..255, labels (1797,))``.

    Read by path from scikit-learn's ``digits.csv.gz`` (the file ``load_digits`` reads), which
    saves importing scikit-learn (seconds) in every run.
    """
    with gzip.open(_digits_file(), "rt", encoding="ascii") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != 65:
        raise DataError(f"--data: builtin:digits: unexpected {DIGITS_FILE} shape {table.shape}")
    images = np.rint(table[:, :64].reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)
    return images, table[:, 64].astype(np.int64)


def split_digits(labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Disjoint digit-image indices per split, stratified by class (80/5/15 %)."""
    rng = np.random.default_rng([seed, 0])
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLIT_FRACTIONS}
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        n_train = round(SPLIT_FRACTIONS["train"] * len(idx))
        n_val = round(SPLIT_FRACTIONS["val"] * len(idx))
        parts["train"].append(idx[:n_train])
        parts["val"].append(idx[n_train : n_train + n_val])
        parts["test"].append(idx[n_train + n_val :])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def _place(canvas: np.ndarray, digit: np.ndarray, row: int, col: int, dy: int, dx: int) -> None:
    top, left = row * CELL + dy, col * CELL + dx
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + CELL, CANVAS), min(left + CELL, CANVAS)
    patch = digit[y0 - top : y1 - top, x0 - left : x1 - left]
    np.maximum(canvas[y0:y1, x0:x1], patch, out=canvas[y0:y1, x0:x1])


def warp_digits(digits: np.ndarray, angle: np.ndarray, scale: np.ndarray,
                shear: np.ndarray) -> np.ndarray:  # fmt: skip
    """Affine-distort 8x8 digits about their centre (bilinear, zeros outside), vectorised.

    Args:
        digits: ``(N, 8, 8)`` uint8.
        angle: ``(N,)`` rotations in radians.
        scale: ``(N,)`` zoom factors (> 1 enlarges).
        shear: ``(N,)`` horizontal shear.

    Returns:
        ``(N, 8, 8)`` uint8.
    """
    n = len(digits)
    cos, sin = np.cos(angle), np.sin(angle)
    # output -> input: rotate, shear, then divide by the scale
    m00, m01 = cos / scale, (cos * shear - sin) / scale
    m10, m11 = sin / scale, (sin * shear + cos) / scale
    centre = (CELL - 1) / 2.0
    ys, xs = np.meshgrid(np.arange(CELL) - centre, np.arange(CELL) - centre, indexing="ij")
    src_x = m00[:, None, None] * xs + m01[:, None, None] * ys + centre
    src_y = m10[:, None, None] * xs + m11[:, None, None] * ys + centre
    # Two zero pixels of border: every sample outside the digit lands on zeros.
    side = CELL + 4
    x0 = np.clip(np.floor(src_x), -2, CELL).astype(np.int64)
    y0 = np.clip(np.floor(src_y), -2, CELL).astype(np.int64)
    fx = np.clip(src_x - x0, 0.0, 1.0).astype(np.float32)
    fy = np.clip(src_y - y0, 0.0, 1.0).astype(np.float32)
    padded = np.pad(digits, ((0, 0), (2, 2), (2, 2))).astype(np.float32).reshape(-1)
    base = np.arange(n)[:, None, None] * side * side + (y0 + 2) * side + (x0 + 2)
    out = ((1 - fy) * ((1 - fx) * padded[base] + fx * padded[base + 1])
           + fy * ((1 - fx) * padded[base + side] + fx * padded[base + side + 1]))  # fmt: skip
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def make_split_scenes(count: int, rng: np.random.Generator, images: np.ndarray,
                      labels: np.ndarray, pool: np.ndarray, augment: bool = False) -> list[Scene]:  # fmt: skip
    """``count`` random scenes whose digits are drawn from ``pool`` (indices into ``images``).

    With ``augment`` (training scenes) every digit is slightly rotated (up to 12 degrees),
    scaled (0.9..1.1) and sheared (up to 0.15) before it is placed (:func:`warp_digits`).
    """
    layouts = rng.integers(len(LAYOUTS), size=count)
    lines = rng.integers(GRID, size=count)  # the row (or column, for "above") used
    order = np.argsort(rng.random((count, GRID)), axis=1)  # random distinct positions
    sources = rng.choice(pool, size=(count, GRID), replace=True)
    shifts = rng.integers(-1, 2, size=(count, GRID, 2))
    digits = images[sources.reshape(-1)]
    if augment:
        angle = np.deg2rad(rng.uniform(-12.0, 12.0, size=count * GRID))
        scale = rng.uniform(0.9, 1.1, size=count * GRID)
        shear = rng.uniform(-0.15, 0.15, size=count * GRID)
        digits = warp_digits(digits, angle, scale, shear)
    digits = digits.reshape(count, GRID, CELL, CELL)
    scenes = []
    for k in range(count):
        layout = LAYOUTS[int(layouts[k])]
        n = {"left_of": 2, "above": 2, "row3": 3, "row4": 4}[layout]
        positions = np.sort(order[k, :n])
        line = int(lines[k])
        if layout == "above":
            cells = tuple((int(p), line) for p in positions)
        else:
            cells = tuple((line, int(p)) for p in positions)
        canvas = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
        for j, (row, col) in enumerate(cells):
            _place(canvas, digits[k, j], row, col, int(shifts[k, j, 0]), int(shifts[k, j, 1]))
        chosen = tuple(int(s) for s in sources[k, :n])
        classes = tuple(int(labels[s]) for s in chosen)
        scenes.append(Scene(canvas, caption_for(layout, classes), classes, cells, chosen))
    return scenes


def make_scenes(counts: dict[str, int], seed: int) -> dict[str, list[Scene]]:
    """Scenes per split (``{"train": n, "val": n, "test": n}``), a pure function of ``seed``.

    Each split draws its digits only from its own digit images (:func:`split_digits`); the
    training digits are distorted at random, the others are not.
    """
    images, labels = load_digit_images()
    pools = split_digits(labels, seed)
    out: dict[str, list[Scene]] = {}
    for k, name in enumerate(SPLIT_FRACTIONS):
        rng = np.random.default_rng([seed, 1 + k])
        out[name] = make_split_scenes(counts.get(name, 0), rng, images, labels, pools[name],
                                      augment=name == "train")  # fmt: skip
    return out
