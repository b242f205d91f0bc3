"""export: phone-ready TFLite (builtin ops only) and SavedModel exports of Keras recurrent models.

Modules (import the one you need; this package imports nothing, so ``python -m export`` can
reject bad usage before TensorFlow loads):

- :mod:`export.tflite` — ``convert_to_tflite(model, seq_len=None|N, quantization=...)``;
- :mod:`export.loop_calibration` — int8 ranges of ``WHILE`` loops (TF's calibrator crashes on
  them), replayed one iteration at a time in LiteRT;
- :mod:`export.zero_fill` — all-zero constants made by a ``FILL`` op at run time;
- :mod:`export.calibration` — calibration sets that reach the export length;
- :mod:`export.ops` — ``list_ops``, ``assert_builtin_only``, ``pack_model``;
- :mod:`export.parity` — ``parity``, ``parity_report``, ``tflite_latency_ms``;
- :mod:`export.savedmodel` — ``export_saved_model`` with ``serving_default`` / ``serve_text``;
- :mod:`export.manifest` — ``manifest.json`` entries, hashes, atomic writes;
- :mod:`export.app_hooks` — ``AppHook`` (per-app inputs, tables, text signatures, one-step
  generator models), found as ``apps.<app>.export_hook.HOOK``;
- :mod:`export.steps` — one-step / encoder models to builtin-only TFLite with their loop layout;
- :mod:`export.reference_loop` — NumPy + LiteRT generation over an exported step model (no
  TensorFlow), the reference a phone app is checked against;
- ``python -m export RUN_DIR --format tflite|saved_model ...`` — the command line.
"""
