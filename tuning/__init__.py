"""Searches with keras-tuner: cell structures (``CellGenotype`` graphs) and app hyperparameters.

``python -m tuning cells`` runs a NAS-style search over recurrent-cell graphs — an evolutionary
oracle in the manner of Jozefowicz et al. (2015) and keras-tuner's own oracles over an encoding
of the graph — against LSTM and GRU with tuned learning rates, every candidate sized to one
parameter budget. ``python -m tuning hparams`` tunes an app's model (cell kind, units, layers,
dropout, learning rate, batch size) with RandomSearch, BayesianOptimization or Hyperband.
Both resume when re-run and can run distributed (keras-tuner's chief / worker mode).

Modules: :mod:`tuning.encoding` (genotype <-> hyperparameters), :mod:`tuning.mutation`,
:mod:`tuning.evolution` (the evolutionary ``Oracle``), :mod:`tuning.oracles` (keras-tuner oracles
restricted to valid genotypes), :mod:`tuning.tasks` (jsb / charlm / sentiment), :mod:`tuning.budget`,
:mod:`tuning.cell_search`, :mod:`tuning.hparams`, :mod:`tuning.distributed`, :mod:`tuning.report`,
:mod:`tuning.draw`.
"""
