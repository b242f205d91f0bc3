"""Encoder features cached on disk, so a frozen encoder runs once per image, not once per epoch.

A frozen ``keras.applications`` encoder maps the same image to the same features in every
epoch; :func:`cached_features` computes them once and stores them as ``.npy`` files under
``DIR/checkpoints/features/``, named by a key that covers everything they depend on: the
encoder's name, the sha256 of its weights file, the input size and channels, and the bytes of
the images themselves. Any change gives a new key (a new file), never stale features.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from apps.common.progress import Progress
from apps.common.rundir import atomic_output

FEATURE_BATCH = 64


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file (read in 1 MB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(images: np.ndarray, parts: Mapping[str, Any]) -> str:
    """A key for the features of ``images`` under ``parts`` (encoder name, weights hash, ...)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8"))
    digest.update(str(images.shape).encode("ascii"))
    digest.update(str(images.dtype).encode("ascii"))
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()[:24]


def compute_features(encoder: Any, images: np.ndarray, *, batch_size: int = FEATURE_BATCH,
                     quiet: bool = True) -> np.ndarray:  # fmt: skip
    """``encoder`` (a Keras model, inference mode) over ``images`` in batches, float32."""
    out = []
    with Progress("encoding images", len(images), quiet=quiet) as bar:
        for start in range(0, len(images), batch_size):
            batch = np.asarray(images[start : start + batch_size], dtype=np.float32)
            out.append(np.asarray(encoder(batch, training=False), dtype=np.float32))
            bar.update(len(batch))
    return np.concatenate(out)


def cached_features(encoder: Any, images: np.ndarray, cache_dir: str | os.PathLike,
                    key_parts: Mapping[str, Any], *,
                    quiet: bool = True) -> tuple[np.ndarray, bool]:  # fmt: skip
    """The features of ``images``, from ``cache_dir`` when present, else computed and stored.

    Args:
        encoder: the frozen encoder.
        images: ``(N, S, S, C)`` pixels.
        cache_dir: folder of the ``.npy`` files.
        key_parts: what the features depend on besides the pixels (encoder name, weights
            sha256, ...), see :func:`cache_key`.
        quiet: no progress bar.

    Returns:
        ``(features (N, h, w, D) float32, whether they came from the cache)``.
    """
    path = Path(cache_dir) / f"features-{cache_key(images, key_parts)}.npy"
    if path.is_file():
        try:
            features = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            features = None  # a damaged file: recompute
        if features is not None and len(features) == len(images):
            return features, True
    features = compute_features(encoder, images, quiet=quiet)
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.save(f, features, allow_pickle=False)
    return features, False
