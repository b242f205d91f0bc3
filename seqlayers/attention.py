"""Additive (Bahdanau) attention in pure ``keras.ops``."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

# How far below the lowest possible real score masked positions go: exp(-20) ~ 2e-9.
MASK_MARGIN = 20.0


@keras.saving.register_keras_serializable(package="seqlayers")
class BahdanauAttention(keras.layers.Layer):
    """Additive attention of Bahdanau, Cho & Bengio (2015).

    For a query ``s`` (the decoder state) and values ``h_1 .. h_Tv`` (the encoder outputs):

    ```
    e_j     = v_a^T tanh(s W_a + h_j U_a [+ b_a])      score of position j
    alpha   = softmax(e) over the unmasked positions    attention weights
    context = sum_j alpha_j h_j
    ```

    The keys ``k_j = h_j U_a [+ b_a]`` do not depend on the query, so a decoder can compute
    them once per source sequence with `precompute_keys` and pass them back through
    ``keys=`` at every step; only ``s W_a`` is then computed per step.

    Masked positions get the score ``-(||v_a||_1 + 20)`` before the softmax — 20 below any
    score a real position can have, since ``|e_j| <= ||v_a||_1`` — and the weights are then
    multiplied by the mask, so their weights are exactly 0 and the unmasked weights sum to 1
    within ``Tv * 2e-9``. (A fill close to the real scores, unlike ``-1e9``, leaves an int8
    quantized softmax input its resolution.)
    A row whose positions are all masked has all-zero weights and a zero context (no NaN).

    Args:
        units: Positive int, size of the hidden layer of the scoring network (columns of
            ``W_a`` and ``U_a``, length of ``v_a``).
        use_bias: Whether to add a bias ``b_a`` (shape ``(units,)``) inside the ``tanh``.
            Default ``False``, as in the paper's equation.
        kernel_initializer: Initializer for ``W_a``, ``U_a`` and ``v_a``.
        bias_initializer: Initializer for ``b_a``.
        kernel_regularizer: Optional regularizer for ``W_a``, ``U_a`` and ``v_a``.
        **kwargs: Base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        query: ``(batch, query_dim)`` or ``(batch, Tq, query_dim)``.
        values: ``(batch, Tv, value_dim)``.
        mask: Optional boolean mask of the values, ``(batch, Tv)``; ``True`` = attend. It is
            never taken from the inputs' keras mask: pass it explicitly.
        keys: Optional ``(batch, Tv, units)``, the result of `precompute_keys(values)`.

    Returns:
        ``(context, weights)``: for a rank-2 query, ``context`` is ``(batch, value_dim)`` and
        ``weights`` ``(batch, Tv)``; for a rank-3 query, ``(batch, Tq, value_dim)`` and
        ``(batch, Tq, Tv)``.

    Example:

    >>> attention = BahdanauAttention(16)
    >>> values = keras.random.normal((2, 5, 8))
    >>> state = keras.random.normal((2, 12))
    >>> context, weights = attention(state, values)
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 8), (2, 5))
    >>> keys = attention.precompute_keys(values)  # once per source sequence
    >>> context, weights = attention(state, values, keys=keys)

    Reference:
        Bahdanau, Cho & Bengio, "Neural Machine Translation by Jointly Learning to Align and
        Translate", ICLR 2015 (arXiv:1409.0473), section 3.1 and appendix A.1.2.
    """

    def __init__(
        self,
        units: int,
        use_bias: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"`units` must be a positive integer. Received: units={units}")
        self.units = units
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, query_shape: tuple, values_shape: tuple) -> None:
        query_dim = query_shape[-1]
        value_dim = values_shape[-1]
        if query_dim is None or value_dim is None:
            raise ValueError(
                "The last dimension of `query` and `values` must be known. "
                f"Received: query_shape={query_shape}, values_shape={values_shape}"
            )
        self.W_a = self.add_weight(
            name="W_a",
            shape=(query_dim, self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.U_a = self.add_weight(
            name="U_a",
            shape=(value_dim, self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.v_a = self.add_weight(
            name="v_a",
            shape=(self.units,),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.b_a = (
            self.add_weight(name="b_a", shape=(self.units,), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )

    def precompute_keys(self, values: Any) -> Any:
        """Returns the keys ``h_j U_a [+ b_a]``, ``(batch, Tv, units)``, for ``keys=``.

        The layer must be built (called once, or ``build(query_shape, values_shape)``).
        """
        if not self.built:
            raise ValueError(
                f"Layer '{self.name}' is not built yet: call it once or call "
                "`build(query_shape, values_shape)` before `precompute_keys`."
            )
        keys = ops.matmul(values, self.U_a)
        if self.b_a is not None:
            keys = keys + self.b_a
        return keys

    def call(self, query: Any, values: Any, mask: Any = None, keys: Any = None) -> tuple:
        if keys is None:
            keys = self.precompute_keys(values)
        query_rank = len(query.shape)
        if query_rank not in (2, 3):
            raise ValueError(f"`query` must have rank 2 or 3. Received: query.shape={query.shape}")
        single_query = query_rank == 2
        if single_query:
            query = ops.expand_dims(query, 1)  # (B, 1, Dq)

        # e_ij = v_a^T tanh(s_i W_a + k_j)
        projected_query = ops.matmul(query, self.W_a)  # (B, Tq, U)
        hidden = ops.tanh(ops.expand_dims(projected_query, 2) + ops.expand_dims(keys, 1))
        scores = ops.matmul(hidden, self.v_a)  # (B, Tq, Tv)

        # alpha = softmax over unmasked positions; masked ones exactly 0
        if mask is not None:
            valid = ops.expand_dims(ops.cast(mask, "bool"), 1)  # (B, 1, Tv)
            # |e_ij| <= ||v_a||_1 (tanh is bounded), so this fill is MASK_MARGIN below every real
            # score: masked positions take at most ~2e-9 of the mass before being zeroed below.
            # A fill near the real scores (not -1e9) keeps int8 softmax inputs finely quantized.
            lowest = ops.sum(ops.abs(ops.cast(self.v_a, scores.dtype)))
            fill = ops.zeros_like(scores) - (lowest + MASK_MARGIN)
            scores = ops.where(valid, scores, fill)
        weights = ops.softmax(scores, axis=-1)
        if mask is not None:
            weights = weights * ops.cast(valid, weights.dtype)

        # c_i = sum_j alpha_ij h_j
        context = ops.matmul(weights, values)  # (B, Tq, Dv)
        if single_query:
            context = ops.squeeze(context, 1)
            weights = ops.squeeze(weights, 1)
        return context, weights

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> None:
        # The outputs carry no keras mask (``mask`` belongs to the values, not to the query).
        return None

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config
