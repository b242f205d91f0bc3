"""Time-series forecasting app: the lecture's fixed-window CNN against recurrent models.

``python -m apps.forecast`` trains a GRU on monthly Mauna Loa CO2 (``builtin:co2``), evaluates
it on the test period beside persistence, seasonal-naive and ETS baselines, forecasts from the
end of the series and writes ``plots/forecast.png``; ``python -m apps.forecast --help`` lists
the commands (train, evaluate, forecast, plot, compare).
:func:`apps.forecast.train.train_and_evaluate` is the importable entry point.
"""
