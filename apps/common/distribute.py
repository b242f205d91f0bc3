"""``train --distribute none|mirrored|multiworker``: data-parallel training with ``tf.distribute``.

- ``mirrored``: :class:`tf.distribute.MirroredStrategy` over this machine's devices (every GPU,
  or the CPU); one process.
- ``multiworker``: :class:`tf.distribute.MultiWorkerMirroredStrategy`, one process per machine
  (or per port on one machine), the cluster read from the ``TF_CONFIG`` environment variable::

      TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:23456", "10.0.0.2:23456"]},
                  "task": {"type": "worker", "index": 0}}'

  Every worker runs the same command. ``--batch-size`` is the *global* batch: each global
  batch is split in contiguous parts (equal when the batch divides evenly), one per worker (:func:`shard_batches`), so the
  workers together take the same optimisation steps as one process would with that batch
  size. Worker 0 (the chief) writes the run dir given by ``--run-dir``; worker ``i > 0``
  writes its own copy next to it, ``DIR.worker<i>`` (:func:`worker_run_dir`), so workers that
  share a file system never write the same file.

``train`` selects the strategy (:func:`use`); the shared training loop
(:func:`apps.common.training.fit`) then trains a copy of the app's model made in the strategy's
scope (:func:`replicate`) and copies the trained weights back, so no app has strategy-specific
code and everything after training (evaluation, plots, export) runs on an ordinary model.

Keras 3.15 needs two fixes to train under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585,
"Does Keras 3 work with tf.distribute.MultiWorkerMirroredStrategy?", open): ``fit`` builds the
model from a batch averaged across workers with ``strategy.reduce("MEAN", batch)``, which the
collective reduce cannot do on a per-replica input batch, and the per-step logs (scalars) are
averaged with ``reduce(..., axis=0)``, which fails on rank-0 values.
:func:`_patch_keras_fit` replaces those two steps when a strategy is used: the model is built
from zeros shaped like the dataset's element spec (reading a batch there also starts an extra
pass over the data, so with ``reshuffle_each_iteration`` every epoch would see another order
than a run without a strategy, under ``mirrored`` too), and scalar logs are averaged across
workers with ``axis=None`` (multi-worker only; other reductions keep Keras' code).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from apps.common.errors import UsageError

CHOICES = ("none", "mirrored", "multiworker")


def cluster_spec() -> tuple[int, int]:
    """``(number of workers, this worker's index)`` from ``TF_CONFIG``.

    Raises:
        UsageError: ``TF_CONFIG`` is missing, not JSON, or has no worker list / valid index.
    """
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        raise UsageError(
            "--distribute multiworker: set TF_CONFIG to the cluster, e.g. "
            '\'{"cluster": {"worker": ["host1:23456", "host2:23456"]}, '
            '"task": {"type": "worker", "index": 0}}\''
        )
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        index = task["index"]
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(
            f"--distribute multiworker: TF_CONFIG is not a cluster spec ({e.__class__.__name__}: "
            f"{e}); expected {{\"cluster\": {{\"worker\": [...]}}, \"task\": {{\"type\": "
            f"\"worker\", \"index\": N}}}}"
        ) from None
    if not isinstance(workers, list) or not workers or not all(isinstance(w, str) for w in workers):
        raise UsageError("--distribute multiworker: TF_CONFIG cluster.worker must list host:port")
    if task.get("type") != "worker" or not isinstance(index, int) or not 0 <= index < len(workers):
        raise UsageError(
            f"--distribute multiworker: TF_CONFIG task must be a worker with an index in "
            f"0..{len(workers) - 1}, got {task!r}"
        )
    return len(workers), index


def worker_run_dir(path: str | os.PathLike, distribute: str) -> Path:
    """The run dir this process writes: ``path`` itself, or ``path.worker<i>`` for worker
    ``i > 0`` of a ``multiworker`` cluster."""
    path = Path(path)
    if distribute != "multiworker":
        return path
    _, index = cluster_spec()
    return path if index == 0 else path.with_name(f"{path.name}.worker{index}")


def make_strategy(distribute: str) -> Any:
    """The ``tf.distribute`` strategy for ``--distribute`` (``None`` for ``"none"``)."""
    if distribute not in CHOICES:
        raise UsageError(f"--distribute must be one of {', '.join(CHOICES)}, got {distribute!r}")
    if distribute == "none":
        return None
    import tensorflow as tf

    _patch_keras_fit()
    if distribute == "mirrored":
        return tf.distribute.MirroredStrategy()
    cluster_spec()  # a clear error before TensorFlow reads TF_CONFIG
    return tf.distribute.MultiWorkerMirroredStrategy()


_REQUESTED: dict[str, Any] = {"strategy": None}


def use(distribute: str) -> None:
    """Train with ``distribute`` from now on in this process (``train --distribute``): every
    :func:`apps.common.training.fit` call then trains a replica of its model under the
    strategy (:func:`replicate`)."""
    strategy = make_strategy(distribute)
    _REQUESTED["strategy"] = strategy


def training_strategy() -> Any:
    """The strategy set by :func:`use` (``None``: train in-process as usual)."""
    return _REQUESTED["strategy"]


def replicate(model: Any, strategy: Any) -> Any:
    """A copy of the compiled ``model`` created in ``strategy``'s scope (same architecture,
    weights and compile settings), to train with the strategy.

    The original stays an ordinary, undistributed model: after training, :func:`copy_back`
    puts the trained weights into it, and evaluation and prediction run on it in this process
    alone (a distributed Keras model's ``predict_on_batch`` would concatenate the same batch
    once per worker).
    """
    import keras

    layers = model._flatten_layers(include_self=False, recursive=True)
    stateful = [layer.name for layer in layers if getattr(layer, "stateful", False)]
    if stateful:
        raise UsageError(
            f"--distribute: layer {stateful[0]!r} is stateful (it carries one state per stream "
            "of a fixed batch from batch to batch), so its batches cannot be split across "
            "replicas; train it without --distribute"
        )
    with strategy.scope():
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        clone.compile_from_config(model.get_compile_config())
    return clone


def copy_back(trained: Any, model: Any) -> None:
    """Put the weights of the distributed ``trained`` replica into ``model``."""
    model.set_weights(trained.get_weights())


def is_multiworker(strategy: Any) -> bool:
    """Whether ``strategy`` spans more than one worker process."""
    extended = getattr(strategy, "extended", None)
    return bool(getattr(extended, "_in_multi_worker_mode", lambda: False)())


def shard_batches(dataset: Any, workers: int, index: int) -> Any:
    """This worker's part of every global batch of ``dataset``.

    Each batch of ``n`` examples is cut into ``workers`` contiguous parts of ``ceil(n /
    workers)`` (the last ones may be shorter); worker ``index`` keeps part ``index``. Batches
    with fewer than ``workers`` examples are dropped (every worker needs one example per step).
    tf.data's automatic sharding is turned off: it would shard the source before shuffling and
    give each worker a different shuffle, so the global batches would differ from a
    single-process run.

    Args:
        dataset: a batched ``tf.data.Dataset`` (elements: a tensor, a tuple or a dict of
            tensors with the batch on axis 0).
        workers: number of workers.
        index: this worker's index.

    Returns:
        The sharded dataset.
    """
    import tensorflow as tf

    def size(*element: Any) -> Any:
        return tf.shape(tf.nest.flatten(element)[0])[0]

    def part(*element: Any) -> Any:
        n = size(*element)
        per = (n + workers - 1) // workers
        start = tf.minimum(index * per, n)
        stop = tf.minimum(start + per, n)
        sliced = tf.nest.map_structure(lambda t: t[start:stop], element)
        return sliced if len(sliced) > 1 else sliced[0]

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.filter(lambda *e: size(*e) >= workers).map(part).with_options(options)


def distribute_datasets(train_ds: Any, val_ds: Any, strategy: Any) -> tuple[Any, Any]:
    """Under a multi-worker strategy, ``train_ds`` / ``val_ds`` as distributed datasets whose
    workers each read their part of every global batch (:func:`shard_batches`); unchanged
    otherwise.

    ``strategy.distribute_datasets_from_function`` is used because it keeps the batches as
    given: ``experimental_distribute_dataset`` would treat each worker's part as a global batch
    and split it once more across all replicas.
    """
    if not is_multiworker(strategy) or not hasattr(train_ds, "element_spec"):
        return train_ds, val_ds

    def distributed(ds: Any) -> Any:
        if ds is None:
            return None
        return strategy.distribute_datasets_from_function(
            lambda ctx: shard_batches(ds, ctx.num_input_pipelines, ctx.input_pipeline_id)
        )

    return distributed(train_ds), distributed(val_ds)


_PATCHED = False


def _patch_keras_fit() -> None:
    """Keras 3.15's ``fit`` under a strategy, fixed (module doc); idempotent."""
    global _PATCHED
    if _PATCHED:
        return
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            def mean(v: Any) -> Any:
                if not isinstance(v, tf.distribute.DistributedValues):
                    return v
                return strategy.reduce("MEAN", v, axis=None)

            return tf.nest.map_structure(mean, values)
        return original_reduce(values, strategy, reduction)

    def maybe_symbolic_build(self: Any, iterator: Any = None, data_batch: Any = None) -> None:
        if self._distribute_strategy is None:
            return
        if iterator is not None:  # shapes only: reading a batch would consume a reshuffle
            spec = iterator.data_adapter.get_tf_dataset().element_spec

            def zeros(s: Any) -> Any:
                s = s._value_specs[0] if hasattr(s, "_value_specs") else s  # PerReplicaSpec
                return tf.zeros([1 if d is None else d for d in s.shape], s.dtype)

            data_batch = tf.nest.map_structure(zeros, spec)
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    _PATCHED = True


__all__ = [
    "CHOICES",
    "cluster_spec",
    "copy_back",
    "distribute_datasets",
    "is_multiworker",
    "make_strategy",
    "replicate",
    "shard_batches",
    "training_strategy",
    "use",
    "worker_run_dir",
]
