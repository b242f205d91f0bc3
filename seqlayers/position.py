"""A learned embedding per position, added to a fixed-length sequence of features."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seqlayers")
class PositionEmbedding(keras.layers.Layer):
    """Adds a trainable vector per position: ``y[b, i] = x[b, i] + p_i``.

    Content-based attention over features that carry no position of their own (the cells of a
    CNN grid far from the image border look alike to the scorer) cannot tell "the second
    digit" from "the third"; adding a learned ``p_i`` to each position's features lets the
    attention move through the grid in order (as in Show, Attend and Tell's spatial features,
    or the learned positions of ViT, Dosovitskiy et al. 2021, section 3.1).

    Args:
        initializer: Initializer of the ``(length, dim)`` table. Default ``"glorot_uniform"``.
        **kwargs: Base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``(batch, length, dim)`` with a static ``length`` and ``dim``.

    Returns:
        ``inputs + table``, same shape. A keras mask of the inputs passes through.

    Example:

    >>> layer = PositionEmbedding()
    >>> y = layer(keras.ops.zeros((2, 16, 8)))
    >>> tuple(y.shape), tuple(layer.positions.shape)
    ((2, 16, 8), (16, 8))
    """

    def __init__(self, initializer: Any = "glorot_uniform", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                "PositionEmbedding needs inputs of shape (batch, length, dim) with a static "
                f"length and dim. Received: input_shape={input_shape}"
            )
        self.positions = self.add_weight(
            shape=(int(input_shape[1]), int(input_shape[2])),
            initializer=self.initializer,
            name="positions",
        )

    def call(self, inputs: Any) -> Any:
        return inputs + ops.expand_dims(ops.cast(self.positions, inputs.dtype), 0)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(),
                "initializer": keras.initializers.serialize(self.initializer)}  # fmt: skip
