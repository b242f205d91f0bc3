"""Many-to-many sequence labelling: named entities and part of speech with a BiLSTM.

``python -m apps.tagger`` trains a BiLSTM on generated ``builtin:teddy`` sentences (where the
words *after* a name decide its tag: "Teddy bears" vs "Teddy Roosevelt"), evaluates it and tags
the lecture's examples; see ``python -m apps.tagger --help`` for ``train``, ``evaluate``,
``tag`` and ``probe``.
"""
