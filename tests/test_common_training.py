"""apps.common.training: resumable fit with the run-dir callbacks; apps.common.plots."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.common import plots, training
from apps.common.rundir import RunDir


def _data():
    x = np.linspace(-1, 1, 48, dtype="float32").reshape(24, 2)
    y = (x[:, :1] + x[:, 1:] > 0).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.SGD(0.5), "binary_crossentropy")
    return model


class Interrupt(keras.callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt(f"killed in epoch {epoch}")


def _epochs(run):
    with open(run.history_csv, newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_resume_continues_instead_of_restarting(tmp_path):
    run = RunDir.prepare(tmp_path / "run", "apps.test")
    ds = _data()
    with pytest.raises(KeyboardInterrupt):
        training.fit(
            _model(), ds, ds, run, 4, callbacks=[Interrupt(2)], quiet=True, tensorboard=False
        )
    assert _epochs(run) == [0, 1]
    meta = json.loads((run.checkpoints / "backup" / "training_metadata.json").read_text())
    assert meta["epoch"] == 2
    first_loss = training.plots.read_history(run.history_csv)["loss"]

    model = _model()
    result = training.fit(model, ds, ds, run, 4, quiet=True, tensorboard=False)
    assert result.initial_epoch == 2 and result.resumed
    assert len(result.history["loss"]) == 2  # epochs 2 and 3 only
    assert _epochs(run) == [0, 1, 2, 3]
    losses = training.plots.read_history(run.history_csv)["loss"]
    assert losses[:2] == first_loss
    assert losses[2] < losses[0]  # continued from trained weights, not from scratch
    best = json.loads((run.checkpoints / "best.json").read_text())
    assert best["monitor"] == "val_loss" and best["epoch"] == result.best_epoch
    loaded = keras.saving.load_model(run.model_path, safe_mode=True)
    assert loaded.count_params() == model.count_params()
    assert (run.plots / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # running the finished command again trains nothing and keeps the history
    again = training.fit(_model(), ds, ds, run, 4, quiet=True, tensorboard=False)
    assert again.initial_epoch == 4 and again.history == {} and _epochs(run) == [0, 1, 2, 3]
    assert again.best == result.best


class SlowEpochs(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        import time

        time.sleep(0.2)


def test_train_seconds_survive_a_kill_and_add_up_over_resumes(tmp_path):
    run = RunDir.prepare(tmp_path / "run", "apps.test")
    ds = _data()
    assert training.read_train_seconds(run) is None
    with pytest.raises(KeyboardInterrupt):
        training.fit(_model(), ds, ds, run, 4, callbacks=[SlowEpochs(), Interrupt(2)],
                     quiet=True, tensorboard=False, plot=False)  # fmt: skip
    killed = training.read_train_seconds(run)
    assert killed is not None and killed >= 0.4  # two finished epochs of >= 0.2 s each
    training.fit(_model(), ds, ds, run, 4, callbacks=[SlowEpochs()], quiet=True,
                 tensorboard=False, plot=False)  # fmt: skip
    assert training.read_train_seconds(run) >= killed + 0.4
    (run.checkpoints / training.TRAIN_TIME).write_text("{not json")
    assert training.read_train_seconds(run) is None


class WeightsAfterEachBatch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append([np.array(w) for w in self.model.get_weights()])


def _fitted_line(learning_rate):
    """y = 2 x - 1 with its exact solution as the starting weights: the clean loss is 0."""
    x = np.linspace(-1, 1, 32, dtype="float32").reshape(32, 1)
    ds = tf.data.Dataset.from_tensor_slices((x, 2 * x - 1)).batch(8)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.set_weights([np.array([[2.0]], "float32"), np.array([-1.0], "float32")])
    model.compile(keras.optimizers.SGD(learning_rate), "mse")
    return model, ds


def test_weight_noise_perturbs_each_step_and_leaves_clean_weights(tmp_path):
    keras.utils.set_random_seed(0)
    model, ds = _fitted_line(0.0)  # no update: only the noise can move the weights
    start = [np.array(w) for w in model.get_weights()]
    watch = WeightsAfterEachBatch()
    run = RunDir.prepare(tmp_path / "run", "apps.test")
    result = training.fit(model, ds, ds, run, 2, callbacks=[watch], quiet=True,
                          tensorboard=False, plot=False, weight_noise=0.3)  # fmt: skip
    # gradients (and the logged training loss) came from noisy weights: loss > 0 at the optimum
    assert min(result.history["loss"]) > 1e-3
    # ... while validation, later callbacks and the saved model see the clean weights
    assert max(result.history["val_loss"]) < 1e-10
    assert len(watch.seen) == 2 * 4
    for weights in watch.seen:
        for got, want in zip(weights, start):
            np.testing.assert_allclose(got, want, atol=1e-6)
    saved = keras.saving.load_model(run.model_path)
    for got, want in zip(saved.get_weights(), start):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_weight_noise_updates_follow_the_noisy_gradient(tmp_path):
    keras.utils.set_random_seed(0)
    quiet, noisy = _fitted_line(0.05), _fitted_line(0.05)
    for model, noise, name in ((quiet[0], 0.0, "a"), (noisy[0], 0.3, "b")):
        run = RunDir.prepare(tmp_path / name, "apps.test")
        training.fit(model, quiet[1], None, run, 1, quiet=True, tensorboard=False, plot=False,
                     weight_noise=noise)  # fmt: skip
    # at the optimum the clean gradient is 0; the noisy one is not
    np.testing.assert_allclose(quiet[0].get_weights()[0], [[2.0]], atol=1e-7)
    assert abs(float(noisy[0].get_weights()[0][0, 0]) - 2.0) > 1e-4
    with pytest.raises(ValueError, match="stddev"):
        training.WeightNoise(0.0)


def test_history_rows_past_the_backup_are_dropped(tmp_path):
    run = RunDir.prepare(tmp_path / "run", "apps.test")
    run.history_csv.write_text("epoch,loss\n0,1.0\n1,0.9\n2,0.8\n3,0.")
    assert training.trim_history(run.history_csv, 2) == 2
    assert run.history_csv.read_text() == "epoch,loss\n0,1.0\n1,0.9\n"
    assert training.trim_history(run.history_csv, 0) == 0 and not run.history_csv.exists()


def test_broken_backup_metadata_falls_back_or_restarts(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "latest.weights.h5").write_bytes(b"w")
    (backup / "training_metadata.json").write_text('{"epoch": 3, "ba')  # cut by a kill
    (backup / "latest.weights.h5.bkp").write_bytes(b"prev")
    (backup / "training_metadata.json.bkp").write_text('{"epoch": 2, "batch": 0}')
    assert training.restored_epoch(backup) == 2
    assert (backup / "latest.weights.h5").read_bytes() == b"prev"
    (backup / "training_metadata.json").write_text("{")
    (backup / "training_metadata.json.bkp").unlink()
    assert training.restored_epoch(backup) == 0 and not backup.exists()


def test_step_backups_also_save_each_epoch(tmp_path):
    run = RunDir.prepare(tmp_path / "run", "apps.test")
    ds = _data()  # 3 steps per epoch
    with pytest.raises(KeyboardInterrupt):
        training.fit(
            _model(),
            ds,
            None,
            run,
            3,
            backup_every_steps=2,
            callbacks=[Interrupt(1)],
            quiet=True,
            tensorboard=False,
            plot=False,
        )
    meta = json.loads((run.checkpoints / "backup" / "training_metadata.json").read_text())
    assert meta["epoch"] == 1  # the end-of-epoch backup, not the mid-epoch one (epoch 0)
    result = training.fit(_model(), ds, None, run, 3, quiet=True, tensorboard=False, plot=False)
    assert result.initial_epoch == 1 and _epochs(run) == [0, 1, 2]


def test_plots_write_pngs(tmp_path):
    png = b"\x89PNG\r\n\x1a\n"
    out = plots.confusion_matrix([[3, 1], [0, 4]], ["neg", "pos"], tmp_path / "cm.png")
    assert out.read_bytes()[:8] == png
    out = plots.heatmap(np.eye(3, 2), ["a", "b"], ["x", "y", "z"], tmp_path / "h.png", "attn")
    assert out.read_bytes()[:8] == png
    out = plots.bar_chart(
        ["lstm", "gru"], {"acc": [0.8, 0.7], "f1": [0.7, 0.6]}, tmp_path / "b.png"
    )
    assert out.read_bytes()[:8] == png
    with pytest.raises(ValueError, match="matrix shape must be"):
        plots.heatmap(np.eye(2), ["a"], ["x", "y"], tmp_path / "bad.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png", "cm.png", "h.png"]


def test_progress_shows_only_after_the_delay_and_not_when_quiet():
    import io

    from apps.common.progress import Progress, track

    stream = io.StringIO()
    with Progress("reading", total=4, delay=0.0, min_interval=0.0, stream=stream) as bar:
        for _ in range(4):
            bar.update()
    lines = stream.getvalue().split("\r")
    assert lines[-1].startswith("reading: 4/4 [") and lines[-1].endswith("\n")
    assert "reading: 1/4 [=======>" in stream.getvalue()
    quiet = io.StringIO()
    with Progress("x", total=2, delay=0.0, quiet=True, stream=quiet) as bar:
        bar.update(2)
    slow_start = io.StringIO()
    with Progress("x", total=2, delay=60.0, stream=slow_start) as bar:
        bar.update(2)
    assert quiet.getvalue() == "" and slow_start.getvalue() == ""
    assert list(track([1, 2, 3], "items")) == [1, 2, 3]
