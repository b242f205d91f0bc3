"""Music generation app: Bach chorales to Chopin with recurrent networks.

Two models share the app (``--repr``):

- ``roll``: a piano roll, each time step a multi-hot vector over the 88 piano keys predicted by
  88 independent sigmoids (Boulanger-Lewandowski et al. 2012; Chung et al. 2014). ``evaluate``
  reports the standard negative log-likelihood per time step.
- ``events``: each note as (step, pitch, duration[, velocity]) tokens of one vocabulary, for
  single-line and piano music.

``python -m apps.music`` trains a roll model on the Bach chorales shipped with music21, evaluates
it and writes a generated MIDI file, its piano-roll PNG and a WAV rendering;
``python -m apps.music --help`` lists the commands. :func:`apps.music.train.train_and_evaluate` is
the importable entry point.
"""
