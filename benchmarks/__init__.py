"""rnnsuite's benchmark suite: ``python -m benchmarks [NAME ...] [--out DIR] [--quick]``.

Suite benchmarks (modules here, each with ``run(settings, out_dir)`` and ``main(argv)``):
``cells``, ``roofline``, ``scaling``, ``backends``. The app benchmarks (``generation``,
``export``, ``pipelines`` and the per-app scripts ``benchmarks/<app>_*.py``) run as their own
scripts in a subprocess; ``python -m benchmarks --list`` lists every name.
"""
