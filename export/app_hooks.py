"""The app-specific parts of an export, registered per app name (``config.json``'s ``"app"``).

The exporter itself knows nothing about apps. An app that wants more than a bare export
registers an :class:`AppHook` under its module name (``"apps.sentiment"``); each field is
optional and is called with the run dir and the app config (``config.json``'s ``"config"``):

- ``representative_inputs(run_dir, config)``: real *training* inputs (model-ready ids, any form
  :func:`export.tflite.as_examples` accepts) to calibrate ``int8`` quantization;
- ``parity_inputs(run_dir, config)``: real held-out inputs to measure parity (defaults to the
  representative inputs);
- ``text_signature(run_dir, config)``: an :class:`export.savedmodel.TextSignature` turning raw
  strings into ids with TF ops (adds the SavedModel ``serve_text`` signature);
- ``tables(run_dir, config)``: the files a phone app needs to build the inputs
  (``[{"path": Path, "role": "..."}]``, copied beside the export and listed in the manifest);
- ``default_seq_len(config)``: the length used when ``int8`` needs a fixed one;
- ``modules``: modules to import before loading ``model.keras`` (they register the app's own
  layers; ``seqlayers`` is always imported).

Hooks import their app lazily (inside the functions), so importing this module stays cheap.

Example:

>>> register_app_hook("apps.myapp", AppHook(default_seq_len=lambda config: 32))
>>> get_app_hook("myapp").default_seq_len({})
32
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Config = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class AppHook:
    """Optional per-app export callbacks (see the module docstring)."""

    representative_inputs: Callable[[Path, Config], Any] | None = None
    parity_inputs: Callable[[Path, Config], Any] | None = None
    text_signature: Callable[[Path, Config], Any] | None = None
    tables: Callable[[Path, Config], list[dict[str, Any]]] | None = None
    default_seq_len: Callable[[Config], int | None] | None = None
    modules: tuple[str, ...] = ()


_REGISTRY: dict[str, AppHook] = {}


def _key(app: str) -> str:
    return app if app.startswith("apps.") else f"apps.{app}"


def register_app_hook(app: str, hook: AppHook) -> None:
    """Register ``hook`` for ``app`` (``"apps.sentiment"`` or ``"sentiment"``), replacing any."""
    if not isinstance(hook, AppHook):
        raise TypeError(f"hook must be an AppHook. Received: {type(hook).__name__}")
    _REGISTRY[_key(app)] = hook


def get_app_hook(app: str | None) -> AppHook:
    """The hook of ``app``, or an empty :class:`AppHook` when none is registered."""
    if not app:
        return AppHook()
    return _REGISTRY.get(_key(app), AppHook())


def registered_apps() -> list[str]:
    """Names of the apps with a registered hook."""
    return sorted(_REGISTRY)


# ----------------------------------------------------------------------------- sentiment
SENTIMENT_EXAMPLES = 256  # calibration / parity examples drawn from each split


def _sentiment_tokenizer(run_dir: Path):
    from apps.common.text import WordTokenizer

    return WordTokenizer.load(Path(run_dir) / "vocab.json")


def _sentiment_max_length(config: Config) -> int | None:
    value = config.get("max_length")
    return int(value) if isinstance(value, int) and value > 0 else None


def _sentiment_ids(run_dir: Path, config: Config, split: str) -> list[list[int]]:
    """Ids of the first texts of a split, encoded exactly as training encodes them."""
    from apps.sentiment.data import encode_texts, load_splits

    data = load_splits(str(config["data"]), seed=int(config["seed"]), limit=config.get("limit"))
    texts, _ = data.split(split)
    return encode_texts(
        texts[:SENTIMENT_EXAMPLES], _sentiment_tokenizer(run_dir), _sentiment_max_length(config)
    )


def _sentiment_text_signature(run_dir: Path, config: Config):
    import tensorflow as tf

    from export.savedmodel import TextSignature

    tokenizer = _sentiment_tokenizer(run_dir)
    max_len = _sentiment_max_length(config)

    def text_to_ids(text):
        ids = tokenizer.tf_encode(text, max_len=max_len)
        # As training: post-padded with 0; an empty text is one padding step.
        width = tf.maximum(ids.bounding_shape(axis=1), 1)
        return ids.to_tensor(default_value=0, shape=tf.stack([ids.nrows(), width]))

    # The tokenizer's TF twin uses lookup tables; they must be tracked to be saved.
    # TODO(text owner): a public accessor for these resources would avoid `_tf()`.
    resources = [v for v in tokenizer._tf().values() if isinstance(v, tf.lookup.StaticHashTable)]
    return TextSignature(text_to_ids=text_to_ids, resources=resources, input_name="text")


def _sentiment_tables(run_dir: Path, config: Config) -> list[dict[str, Any]]:
    return [
        {
            "path": Path(run_dir) / "vocab.json",
            "role": "WordTokenizer vocabulary: standardise + split text as apps.common.text "
            "does, id = index in 'vocabulary' (0 padding, 1 [UNK]); post-pad with 0",
        }
    ]


register_app_hook(
    "apps.sentiment",
    AppHook(
        representative_inputs=lambda run_dir, config: _sentiment_ids(run_dir, config, "train"),
        parity_inputs=lambda run_dir, config: _sentiment_ids(run_dir, config, "test"),
        text_signature=_sentiment_text_signature,
        tables=_sentiment_tables,
        default_seq_len=_sentiment_max_length,
        modules=("apps.sentiment.model",),
    ),
)
