"""Character-level language model: truncated BPTT over contiguous streams, sampling, and the cells' insides.

``python -m apps.charlm`` trains an LSTM on the Python standard library's own source files
(``builtin:pysource``, the analogue of the lecture's Linux-kernel corpus), prints a sample and
writes one cell-activation picture; ``python -m apps.charlm --help`` lists the commands (train,
evaluate, generate, visualize, gradients). :func:`apps.charlm.train.train_and_evaluate` is the
importable entry point.
"""
