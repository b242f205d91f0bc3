"""Translation app: recurrent encoder-decoders with Bahdanau attention, beam search, BLEU.

``python -m apps.translation`` trains the attention model on ``builtin:numbers`` (English number
phrases into German numerals in words), evaluates it on held-out numbers, prints a few
translations and writes an attention map; ``python -m apps.translation --help`` lists the
commands (train, evaluate, translate, attend). :func:`apps.translation.train.train_and_evaluate`
is the importable entry point.
"""
