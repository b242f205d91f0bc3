"""export: phone-ready TFLite (builtin ops only) and SavedModel exports of Keras recurrent models.

Modules (import the one you need; this package imports nothing, so ``python -m export`` can
reject bad usage before TensorFlow loads):

- :mod:`export.tflite` — ``convert_to_tflite(model, seq_len=None|N, quantization=...)``;
- :mod:`export.ops` — ``list_ops``, ``assert_builtin_only``;
- :mod:`export.parity` — ``parity``, ``parity_report``, ``tflite_latency_ms``;
- :mod:`export.savedmodel` — ``export_saved_model`` with ``serving_default`` / ``serve_text``;
- :mod:`export.manifest` — ``manifest.json`` entries, hashes, atomic writes;
- :mod:`export.app_hooks` — per-app inputs, tables and text signatures;
- ``python -m export RUN_DIR --format tflite|saved_model ...`` — the command line.
"""
