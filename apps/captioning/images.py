"""Reading user images robustly with Pillow: any mode, any size, one clear error per bad file.

Every image, whatever its file, becomes the model's input the same way (:func:`read_image`):

1. opened lazily; a file Pillow cannot identify, or one over ``MAX_PIXELS``, is refused;
2. JPEGs are decoded at a reduced scale when much larger than needed (``Image.draft``), so an
   8000x8000 photo costs little; EXIF orientation is applied;
3. the pixel format is normalised: 16-bit and 32-bit grayscale are scaled to 8 bits (Pillow's
   own conversion would clip them), transparency is composited over black, palette / CMYK /
   bilevel images are converted;
4. converted to grayscale (``channels=1``) or RGB (``channels=3``) and resized (bilinear, aspect
   ratio not kept — as the Flickr8k images were) to ``size x size``.

Errors are :class:`~apps.common.errors.DataError` naming the file: missing, a folder, not an
image, truncated or corrupt, too large.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from apps.common.errors import DataError

MAX_PIXELS = 100_000_000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm")  # fmt: skip


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:160] if text else type(error).__name__


def _to_8bit_gray(img):  # -> PIL.Image.Image
    """16-/32-bit integer and float grayscale to 8-bit ``L``, scaled (not clipped)."""
    from PIL import Image

    array = np.asarray(img)
    if img.mode.startswith("I;16"):
        scaled = array.astype(np.float64) / 257.0
    elif img.mode == "I":
        peak = float(array.max()) if array.size else 0.0
        scaled = array.astype(np.float64) / (257.0 if peak > 255 else 1.0)
    else:  # "F"
        peak = float(np.nanmax(array)) if array.size else 0.0
        scaled = np.nan_to_num(array.astype(np.float64)) * (255.0 if peak <= 1.0 else 1.0)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def _normalise_mode(img, channels: int):  # -> PIL.Image.Image
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        img = _to_8bit_gray(img)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
    return img.convert("L" if channels == 1 else "RGB")


def read_image(path: str | os.PathLike, size: int, channels: int) -> np.ndarray:
    """Decode ``path`` into the model's input pixels.

    Args:
        path: an image file (JPEG, PNG, BMP, GIF, TIFF, WebP, ...).
        size: side of the square output.
        channels: 1 (grayscale) or 3 (RGB).

    Returns:
        ``(size, size, channels)`` uint8.

    Raises:
        DataError: missing file, a folder, not an image, truncated / corrupt data, or more than
            ``MAX_PIXELS`` pixels; one line naming the file.

    Example:
        >>> read_image("photo.jpg", 128, 3).shape
        (128, 128, 3)
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3. Received: channels={channels}")
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such image file")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as e:
        raise DataError(f"{path}: the image is too large ({_first_line(e)})") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image (Pillow cannot identify the file format)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read the image ({_first_line(e)})") from None
    try:
        with img:
            width, height = img.size
            if width < 1 or height < 1:
                raise DataError(f"{path}: the image is empty ({width}x{height} pixels)")
            if width * height > MAX_PIXELS:
                raise DataError(
                    f"{path}: the image is too large ({width}x{height} = {width * height:,} "
                    f"pixels; at most {MAX_PIXELS:,}); shrink it first"
                )
            if img.format == "JPEG":
                img.draft("L" if channels == 1 else "RGB", (size, size))
            img.load()
            img = ImageOps.exif_transpose(img) or img
            img = _normalise_mode(img, channels)
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
            array = np.asarray(img, dtype=np.uint8)
    except DataError:
        raise
    except Image.DecompressionBombError as e:
        raise DataError(f"{path}: the image is too large ({_first_line(e)})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise DataError(
            f"{path}: cannot decode the image — truncated or corrupt ({_first_line(e)})"
        ) from None
    return array.reshape(size, size, channels)


def is_image_name(path: str | os.PathLike) -> bool:
    """Whether the file name has an image suffix (``IMAGE_SUFFIXES``, any case)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder`` (by suffix, not recursive), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and is_image_name(p))


def expand_image_args(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Command-line image arguments, a folder standing for its images.

    Raises:
        DataError: a path that does not exist, or a folder without images.
    """
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise DataError(
                    f"{path}: the folder holds no images ({', '.join(IMAGE_SUFFIXES[:4])}, ...)"
                )
            out.extend(found)
        elif not path.exists():
            raise DataError(f"{path}: no such image file")
        else:
            out.append(path)
    return out


def read_images(paths: Sequence[Path], size: int, channels: int, *,
                skip_bad: bool = False) -> tuple[list[Path], np.ndarray, list[str]]:  # fmt: skip
    """Decode many images; with ``skip_bad`` a bad file is reported and left out.

    Returns:
        ``(paths read, images (N, size, size, channels) uint8, problems)`` where ``problems``
        holds one message per skipped file.

    Raises:
        DataError: the first bad file (``skip_bad=False``), or no readable image at all.
    """
    kept, arrays, problems = [], [], []
    for path in paths:
        try:
            arrays.append(read_image(path, size, channels))
            kept.append(path)
        except DataError as e:
            if not skip_bad:
                raise
            problems.append(str(e))
    if not arrays:
        if not problems:
            raise DataError("no images given")
        raise DataError(f"none of the {len(paths)} images can be read ({problems[0]})")
    return kept, np.stack(arrays), problems
