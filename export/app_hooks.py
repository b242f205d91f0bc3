"""The app-specific parts of an export: one :class:`AppHook` per app, found by its module name.

The exporter itself knows nothing about apps. ``config.json``'s ``"app"`` (``"apps.charlm"``)
names the app; :func:`get_app_hook` returns, in this order:

1. a hook registered with :func:`register_app_hook` (tests, scripts);
2. the ``HOOK`` of the module ``apps.<app>.export_hook``, imported on first use (this is how apps
   provide theirs: ``apps/<app>/export_hook.py`` defines ``HOOK = AppHook(...)``);
3. an empty :class:`AppHook`: the run still exports, as a bare model on synthetic parity inputs.

Every field of :class:`AppHook` is optional. Callbacks get the run dir and the app config
(``config.json``'s ``"config"``, a plain dict); those marked *model* also get the loaded
``model.keras``:

- ``representative_inputs(run_dir, config)``: real *training* inputs (model-ready ids, any form
  :func:`export.tflite.as_examples` accepts) to calibrate ``int8`` quantization;
- ``parity_inputs(run_dir, config)``: real held-out inputs to measure parity (defaults to the
  representative inputs);
- ``text_signature(run_dir, config)``: an :class:`export.savedmodel.TextSignature` turning raw
  strings into ids with TF ops (adds the SavedModel ``serve_text`` signature);
- ``tables(run_dir, config)``: the files a phone app needs to build the inputs
  (``[{"path": Path, "role": "..."}]``, copied beside the export and listed in the manifest);
- ``default_seq_len(config)``: the length of models that only export at a fixed length
  (``--seq-len auto``);
- ``modules``: modules to import before loading ``model.keras`` (they register the app's own
  layers; ``seqlayers`` is always imported);
- ``step_models(run_dir, config, model)`` (*model*): the models a phone loops over to generate,
  built from the trained weights — see below;
- ``step_parity_inputs(run_dir, config, model)`` (*model*): real inputs for those models.

One-step models (generators)
----------------------------
``python -m export RUN_DIR --format tflite`` also writes every model returned by
``step_models`` as its own ``.tflite`` (``<name>.tflite``, ``<name>_<quantization>.tflite``),
checked builtin-only and against Keras, and describes in ``manifest.json`` how to loop it.
``step_models`` returns an *ordered* ``{name: keras.Model | StepModel}``; by convention:

- a language model / music generator returns ``{"step": step}`` with ``step`` the model
  ``[token_or_frame, state_0, ..., state_{n-1}] -> [logits, new_state_0, ..., new_state_{n-1}]``
  (batch-first; ``token`` shaped ``(B,)`` or ``(B, 1)``, a frame ``(B, F)``);
- an encoder–decoder app returns ``{"encoder": encoder, "decoder_step": step}``: the encoder
  runs once per input (``source -> [values, keys, mask, initial states...]``) and the step is
  ``[token, state_0.., state_{n-1}, *constants] -> [logits, new_state_0.., *extras]`` with the
  constants (``values``, precomputed attention ``keys``, ``mask``) fed unchanged at every step
  and the extras (attention weights) only read.

The exporter tells a *loop* model (it has states) from a *run-once* model (no states) by
counting states: inputs ``1..n`` and outputs ``1..n`` whose shapes and dtypes agree pairwise
are the states (so keep the state inputs right after the token and the new states right after
the logits, in the same order). Wrap a model in :class:`StepModel` to say ``num_states``
explicitly or to name its outputs; naming the encoder's outputs after the step inputs they
feed (``output_names=["values", "keys", "source_mask", "state_0"]``) lets the manifest list
the wiring (``"feeds"``). The exporter exports each model as given (no rebuild needed:
shared layers, unregistered wrapper layers and ``unroll=True`` one-step RNN layers are fine);
inputs keep their Keras names, state outputs are named ``new_<state input name>``.

``step_parity_inputs`` returns real inputs for parity, as ``{name: examples}`` or, when only
the loop model needs them, just the examples: a list of ``[input_0, input_1, ...]`` lists in
model input order (arrays with or without the batch axis of 1), e.g. the states reached by
stepping along real test sentences — so that parity covers non-zero states. A run-once model
without examples gets the app's ``parity_inputs`` restricted to its input names (when the full
model has inputs of those names); otherwise synthetic inputs are used (noted in the manifest).

Hooks import their app lazily (inside the functions), so importing a hook module stays cheap.

Example (``apps/myapp/export_hook.py``)::

    from export.app_hooks import AppHook

    def step_models(run_dir, config, model):
        from apps.myapp.model import build_step_model
        return {"step": build_step_model(model)}

    HOOK = AppHook(default_seq_len=lambda config: config.get("bptt"), step_models=step_models)

>>> register_app_hook("apps.myapp", AppHook(default_seq_len=lambda config: 32))
>>> get_app_hook("myapp").default_seq_len({})
32
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

Config = Mapping[str, Any]
HOOK_MODULE = "export_hook"
"""The module of an app package that holds its ``HOOK``: ``apps.<app>.export_hook``."""


@dataclasses.dataclass(frozen=True)
class StepModel:
    """One model of a generator's decoding loop, with what the exporter cannot guess.

    Args:
        model: the Keras model, built from the trained weights.
        num_states: how many inputs after the first are recurrent states (and how many
            outputs after the first are their new values, same order). ``None`` infers it
            (inputs ``1..n`` whose shape and dtype equal outputs ``1..n``); ``0`` marks a
            run-once model (an encoder).
        output_names: names of the exported outputs, in model output order (default: the
            Keras output names made unique, state outputs ``new_<state input name>``).
        notes: free-text remarks copied into the manifest (what a token is, when to stop).

    Example:

    >>> StepModel(model=None, num_states=2).num_states
    2
    """

    model: Any
    num_states: int | None = None
    output_names: Sequence[str] | None = None
    notes: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.num_states is not None and (
            not isinstance(self.num_states, int) or self.num_states < 0
        ):
            raise ValueError(
                f"num_states must be None or an int >= 0. Received: num_states={self.num_states!r}"
            )


@dataclasses.dataclass(frozen=True)
class AppHook:
    """Optional per-app export callbacks (see the module docstring for each field)."""

    representative_inputs: Callable[[Path, Config], Any] | None = None
    parity_inputs: Callable[[Path, Config], Any] | None = None
    text_signature: Callable[[Path, Config], Any] | None = None
    tables: Callable[[Path, Config], list[dict[str, Any]]] | None = None
    default_seq_len: Callable[[Config], int | None] | None = None
    modules: tuple[str, ...] = ()
    step_models: Callable[[Path, Config, Any], Mapping[str, Any]] | None = None
    step_parity_inputs: Callable[[Path, Config, Any], Any] | None = None


_REGISTRY: dict[str, AppHook] = {}
_APP_NAME = re.compile(r"apps\.[A-Za-z_][A-Za-z0-9_]*")


def _key(app: str) -> str:
    return app if app.startswith("apps.") else f"apps.{app}"


def register_app_hook(app: str, hook: AppHook) -> None:
    """Register ``hook`` for ``app`` (``"apps.sentiment"`` or ``"sentiment"``), replacing any.

    A registered hook wins over the app's own ``apps.<app>.export_hook.HOOK``.
    """
    if not isinstance(hook, AppHook):
        raise TypeError(f"hook must be an AppHook. Received: {type(hook).__name__}")
    _REGISTRY[_key(app)] = hook


def discover_app_hook(app: str) -> AppHook | None:
    """``HOOK`` of ``apps.<app>.export_hook``, or ``None`` when the app or its hook is absent.

    Raises:
        TypeError: when the module's ``HOOK`` is not an :class:`AppHook`.
        ImportError: when the hook module exists but fails to import (a bug in the app).
    """
    key = _key(app)
    if not _APP_NAME.fullmatch(key):
        return None
    name = f"{key}.{HOOK_MODULE}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name in ("apps", key, name):
            return None  # no such app, or an app without a hook
        raise
    hook = getattr(module, "HOOK", None)
    if hook is None:
        return None
    if not isinstance(hook, AppHook):
        raise TypeError(
            f"{name}.HOOK must be an export.app_hooks.AppHook. Received: {type(hook).__name__}"
        )
    return hook


def get_app_hook(app: str | None) -> AppHook:
    """The hook of ``app``: registered, else discovered, else an empty :class:`AppHook`."""
    if not app:
        return AppHook()
    key = _key(app)
    if key in _REGISTRY:
        return _REGISTRY[key]
    return discover_app_hook(key) or AppHook()


def registered_apps() -> list[str]:
    """Names of the apps with a hook registered through :func:`register_app_hook`."""
    return sorted(_REGISTRY)
