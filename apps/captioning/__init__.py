"""Image captioning app: a CNN encoder and an attending RNN decoder (Show, Attend and Tell).

``python -m apps.captioning`` trains on ``builtin:digits`` (scenes of scikit-learn's handwritten
digits captioned from their layout), evaluates, prints test captions and draws the attention of
one; ``python -m apps.captioning --help`` lists the commands (train, evaluate, caption, attend).
:func:`apps.captioning.train.train_and_evaluate` is the importable entry point.
"""
