"""int8 export of a forecaster whose level leaves the training range (Mauna Loa CO2).

The forecast models subtract each window's level (:class:`apps.forecast.model.WindowLevel`)
and add it back to the quantiles (:class:`~apps.forecast.model.QuantileOutput`). On a trending
series the test period's levels lie above every training window, so a fully integer model,
calibrated on training windows, clips them. Both layers set ``int8_float_ops``: their ops stay
float32 in the int8 file, the recurrent core is int8, and test-period outputs follow Keras.
"""

from __future__ import annotations

import numpy as np
import pytest

from apps.common import cli
from apps.forecast import verbs
from apps.forecast.export_hook import HOOK
from export import tflite
from export.ops import list_ops
from export.parity import run_tflite


@pytest.fixture(scope="module")
def co2_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("forecast-export") / "run"
    argv = ["train", "--size", "tiny", "--epochs", "2", "--classical", "none", "--quiet",
            "--run-dir", str(run)]  # fmt: skip
    assert cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, argv) == 0
    import keras

    import apps.forecast.model  # noqa: F401  (registers the layers)

    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    return run, model


def _run(result, windows) -> np.ndarray:
    _, outputs = run_tflite(result.content, windows, input_order=["window"])
    return np.stack([out["quantiles"][0] for out in outputs])


def _int8(model, run):
    seq_len = model.inputs[0].shape[1]
    reps = HOOK.representative_inputs(run, None)
    return tflite.convert_to_tflite(
        model, seq_len=seq_len, quantization="int8", representative_inputs=reps
    )


def test_the_test_period_lies_outside_the_calibration_range(co2_run):
    run, _ = co2_run
    reps, test = HOOK.representative_inputs(run, None), HOOK.parity_inputs(run, None)
    assert test[..., 0].min() > reps[..., 0].max()  # every test value above every training one


def test_int8_keeps_the_level_layers_float_and_follows_keras(co2_run):
    run, model = co2_run
    result = _int8(model, run)
    assert result.float_layers == ("window_level", "quantiles")
    ops = list_ops(result.content)
    assert {"QUANTIZE", "DEQUANTIZE", "FULLY_CONNECTED"} <= set(ops)
    test = HOOK.parity_inputs(run, None)
    expected = model.predict(test, verbose=0)
    got = _run(result, test)
    err = np.abs(got - expected)
    spread = expected.max() - expected.min()
    assert err.max() < 0.02 * spread, (err.max(), spread)
    print(f"int8 max |diff| {err.max():.4f} (scaled units), output spread {spread:.2f}")


def test_without_float_layers_int8_clips_the_test_levels(co2_run, monkeypatch):
    from apps.forecast import model as forecast_model

    run, model = co2_run
    monkeypatch.setattr(forecast_model.WindowLevel, "int8_float_ops", False)
    monkeypatch.setattr(forecast_model.QuantileOutput, "int8_float_ops", False)
    result = _int8(model, run)
    assert result.float_layers == ()
    test = HOOK.parity_inputs(run, None)
    expected = model.predict(test, verbose=0)
    got = _run(result, test)
    assert np.abs(got - expected).max() > 0.3  # the level is clipped to the training range


def test_int8_io_is_refused_when_layers_stay_float(co2_run):
    run, model = co2_run
    with pytest.raises(tflite.UnsupportedExportError, match="keeps float32 ops"):
        tflite.convert_to_tflite(model, seq_len=model.inputs[0].shape[1], quantization="int8",
                                 representative_inputs=HOOK.representative_inputs(run, None),
                                 int8_io=True)  # fmt: skip


def test_quantile_output_sorts_before_adding_the_level():
    from apps.forecast.model import QuantileOutput

    rng = np.random.default_rng(0)
    pred = rng.normal(size=(4, 3, 5)).astype("float32")
    level = rng.normal(size=(4, 3)).astype("float32") * 100
    got = np.asarray(QuantileOutput()([pred, level]))
    np.testing.assert_allclose(got, np.sort(pred + level[:, :, None], axis=-1), rtol=1e-6)
