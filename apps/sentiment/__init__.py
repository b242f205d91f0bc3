"""Sentiment analysis app: classify short texts (tweets, reviews) with recurrent models.

``python -m apps.sentiment`` trains a BiLSTM on the builtin tweets corpus, evaluates it and
prints a few predictions; ``python -m apps.sentiment --help`` lists the commands (train,
evaluate, predict, compare, probe). :func:`apps.sentiment.train.train_and_evaluate` is the
importable entry point.
"""
