"""``manifest.json``: what an exported model is, how to feed it, and how well it matches Keras.

One ``manifest.json`` lives in each export folder and describes every export in it, keyed by the
export's file or folder name (a second export into the same folder adds its entry)::

    {
      "manifest_version": 1,
      "exports": {
        "model_int8_T48.tflite": {
          "format": "tflite", "file": "model_int8_T48.tflite", "bytes": 123456,
          "sha256": "…", "quantization": "int8", "seq_len": 48, "batch_size": 1,
          "signatures": {"serving_default": {"inputs": [...], "outputs": [...]}},
          "inputs": [...], "outputs": [...], "ops": ["FULLY_CONNECTED", ...],
          "tables": [{"file": "vocab.json", "sha256": "…", "role": "…"}],
          "parity": {"max_abs_diff": …, "argmax_agreement": …, "examples": 64, "inputs": "…"},
          "latency_ms": {"median": …, "runs": 20, "threads": 1, "machine": "…"},
          "source": {"run_dir": "…", "model": "model.keras", "model_sha256": "…", "app": "…"},
          "created": "2025-…", "versions": {"tensorflow": "…", "keras": "…", "ai_edge_litert": "…"},
          "step_models": ["step.tflite"]
        },
        "step.tflite": {
          "format": "tflite", "file": "step.tflite", "seq_len": 1, …,
          "step": {"name": "step", "role": "loop", "inputs": ["token", "state_0"],
                   "outputs": ["logits", "new_state_0"], "token_input": "token",
                   "logits_output": "logits",
                   "states": [{"input": "state_0", "output": "new_state_0", "shape": [1, 64],
                               "dtype": "float32", "initial": "zeros"}],
                   "constants": [], "extra_outputs": [], "how": "…"}
        }
      }
    }

A generator's one-step models (see :mod:`export.steps`) have their own entries with a
``"step"`` section telling a phone app how to loop them; the model they come from lists them
under ``"step_models"``.

Every file is written atomically (temporary name, then rename).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from apps.common.rundir import atomic_write_json

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def sha256_of(path: str | os.PathLike) -> str:
    """SHA-256 of a file, or of a folder (over its sorted relative paths and file hashes)."""
    path = Path(path)
    if path.is_file():
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    digest = hashlib.sha256()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{child.relative_to(path).as_posix()}\0{sha256_of(child)}\n".encode())
    return digest.hexdigest()


def size_of(path: str | os.PathLike) -> int:
    """Bytes of a file, or of all files in a folder."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def tool_versions() -> dict[str, str]:
    """Installed versions of the packages that produced the export."""
    versions = {}
    for package in ("tensorflow", "keras", "ai-edge-litert"):
        try:
            versions[package.replace("-", "_")] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def export_entry(
    artifact: str | os.PathLike,
    *,
    format: str,
    signatures: Mapping[str, Any],
    quantization: str,
    seq_len: int | None,
    batch_size: int | None,
    parity: Mapping[str, Any] | None = None,
    latency_ms: Mapping[str, Any] | None = None,
    tables: list[Mapping[str, Any]] | None = None,
    ops: list[str] | None = None,
    source: Mapping[str, Any] | None = None,
    notes: list[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest entry of one exported file or folder (hash and size are measured here).

    Args:
        artifact: the ``.tflite`` file or SavedModel folder.
        format: ``"tflite"`` or ``"saved_model"``.
        signatures: ``{key: {"inputs": [...], "outputs": [...]}}``.
        quantization: ``none`` / ``float16`` / ``dynamic`` / ``int8``.
        seq_len: fixed sequence length, or ``None`` for dynamic.
        batch_size: fixed batch size (1 for TFLite) or ``None``.
        parity: the figures of :func:`export.parity.parity_report`, plus where the inputs came from.
        latency_ms: batch-1 latency figures.
        tables: vocabulary / table files needed to build the inputs.
        ops: the TFLite op names.
        source: run dir, model file and its hash, app.
        notes: free-text remarks (e.g. how to pad inputs).
        extra: more keys for the entry (a step model's ``"step"`` layout, the main model's
            ``"step_models"`` list).
    """
    artifact = Path(artifact)
    main = signatures.get("serving_default") or next(iter(signatures.values()), {})
    entry: dict[str, Any] = {
        "format": format,
        "file": artifact.name,
        "bytes": size_of(artifact),
        "sha256": sha256_of(artifact),
        "quantization": quantization,
        "seq_len": "dynamic" if seq_len is None else int(seq_len),
        "batch_size": "dynamic" if batch_size is None else int(batch_size),
        "signatures": dict(signatures),
        "inputs": list(main.get("inputs", [])),
        "outputs": list(main.get("outputs", [])),
        "tables": list(tables or []),
        "parity": dict(parity) if parity is not None else None,
        "latency_ms": dict(latency_ms) if latency_ms is not None else None,
        "source": dict(source or {}),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": tool_versions(),
    }
    if ops is not None:
        entry["ops"] = list(ops)
    if notes:
        entry["notes"] = list(notes)
    entry.update(extra or {})
    return entry


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an export folder (an empty one when the folder has none yet)."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return {"manifest_version": MANIFEST_VERSION, "exports": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not readable JSON ({err})") from None
    exports = manifest.get("exports") if isinstance(manifest, dict) else None
    if not isinstance(exports, dict):
        # A file whose content is wrong, not a caller passing a wrong type: ValueError.
        raise ValueError(f"{path} is not an export manifest (no 'exports' object)")  # noqa: TRY004
    return manifest


def add_to_manifest(folder: str | os.PathLike, entry: Mapping[str, Any]) -> Path:
    """Add (or replace) ``entry`` under its file name in ``folder/manifest.json``, atomically.

    Entries whose file no longer exists in the folder are dropped.

    Returns:
        The manifest path.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    exports = {k: v for k, v in manifest["exports"].items() if (folder / k).exists()}
    exports[entry["file"]] = dict(entry)
    manifest = {"manifest_version": MANIFEST_VERSION, "exports": dict(sorted(exports.items()))}
    path = folder / MANIFEST_NAME
    atomic_write_json(path, manifest)
    return path


def summary_lines(entry: Mapping[str, Any]) -> list[str]:
    """A few human-readable lines about one manifest entry (what the CLI prints)."""
    lines = [
        (
            f"{entry['format']}: {entry['file']}  {entry['bytes'] / 1024:.1f} KiB  "
            f"sha256 {entry['sha256'][:16]}…"
        ),
        (
            f"  quantization {entry['quantization']}, seq_len {entry['seq_len']}, "
            f"batch {entry['batch_size']}"
        ),
    ]
    for key, sig in entry["signatures"].items():
        ins = ", ".join(f"{i['name']}{i['shape']}:{i['dtype']}" for i in sig["inputs"])
        outs = ", ".join(f"{o['name']}{o['shape']}:{o['dtype']}" for o in sig["outputs"])
        lines.append(f"  signature {key}: ({ins}) -> ({outs})")
    if entry.get("ops") is not None:
        lines.append(f"  ops (all builtin): {', '.join(entry['ops'])}")
    parity = entry.get("parity")
    if parity:
        lines.append(
            f"  parity vs Keras on {parity['examples']} {parity.get('inputs', 'inputs')}: "
            f"max |diff| {parity['max_abs_diff']:.3g}, argmax agreement "
            f"{parity['argmax_agreement']:.1%}"
        )
    latency = entry.get("latency_ms")
    if latency:
        lines.append(
            f"  latency (batch 1, threads: {latency['threads']}): {latency['median']:.2f} ms median"
        )
    step = entry.get("step")
    if step and step.get("role") == "loop":
        states = ", ".join(f"{x['input']}{x['shape']}<-{x['output']}" for x in step["states"])
        constants = ", ".join(c["input"] for c in step["constants"]) or "none"
        lines.append(
            f"  step model {step['name']!r}: {step['token_input']} -> {step['logits_output']}; "
            f"states {states}; constants {constants}"
        )
    elif step:
        lines.append(f"  run-once model {step['name']!r} (its outputs feed the step model)")
    for table in entry.get("tables") or []:
        lines.append(f"  needs {table['file']}: {table.get('role', '')}")
    return lines
