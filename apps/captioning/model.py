"""Show, Attend and Tell: a convolutional encoder, an attending recurrent decoder.

The trained model (``model.keras``) maps ``[image (B, S, S, C) float 0..255, caption (B, T)
int ids [START] w..]`` (inputs named ``image`` and ``caption``) to next-word logits
``(B, T, V)``::

    a     = encoder(image)                      (B, h, w, D)   CNN grid of features
    a     = project(reshape(a))                 (B, N, U)      N = h*w positions ("values";
                                                               U - E wide for MUT1/MUT2)
    s_0   = tanh(W_init mean_j a_j)             one per state of the decoder cell
    o_t, alpha_t = AttentionDecoder(embed(y_{t-1}), a, s_0)    seqlayers.BahdanauAttention
    logits_t = W_out dropout(o_t)               o_t = [cell output; context]

For decoding the same weights form two more models (:func:`build_init_model`,
:func:`build_step_model`): the encoder runs once per image and gives the values, their
precomputed attention keys and the initial states; then one step maps ``(token, states...,
values, keys)`` to ``(logits, states..., attention weights)``. That step is what
:mod:`apps.common.decoding` loops over and what the exporter turns into a one-step model.

When a ``keras.applications`` encoder is frozen, training runs on cached encoder features
(a model whose first input is ``"features"``, :func:`build_feature_model`), and
:func:`compose_full_model` joins the encoder back in front of the trained layers afterwards.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import keras

from apps.common.cells import make_cell
from apps.common.errors import UsageError

HEAD_LAYERS = ("grid", "project", "mean_features", "embedding", "decoder", "dropout", "logits")


def encoder_blocks(image_size: int) -> int:
    """Conv blocks of the ``cnn`` encoder: at least 3, more until the grid is about 8x8."""
    return max(3, int(math.log2(max(image_size // 8, 1))))


def build_cnn_encoder(image_size: int, channels: int, filters: int) -> keras.Model:
    """A small CNN trained from scratch: blocks of ``[conv 3x3, batch norm, ReLU] x n, max-pool 2``
    (two convolutions in the first block, one after).

    Filters double per block (at most ``8 * filters``); a 32x32 input gives a 4x4 grid, so on
    ``builtin:digits`` each grid position sees one cell of the scene.
    """
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for i in range(encoder_blocks(image_size)):
        width = filters * min(2**i, 8)
        for j in range(2 if i == 0 else 1):
            name = f"{i}" if j == 0 else f"{i}b"
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{name}")(x)
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{name}")(x)
            x = keras.layers.ReLU(name=f"relu{name}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    return keras.Model(inputs, x, name="encoder")


def build_pretrained_encoder(name: str, image_size: int, weights: str | Path,
                             trainable: bool) -> keras.Model:  # fmt: skip
    """A ``keras.applications`` network without its top, ImageNet weights from a local file.

    Args:
        name: ``mobilenet_v3_small`` or ``efficientnet_b0``.
        image_size: side of the RGB input (pixels 0..255: both networks rescale themselves).
        weights: the weights file (no top), e.g. ``weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5``
            or ``efficientnetb0_notop.h5``.
        trainable: fine-tune it (``True``) or keep it frozen.

    Raises:
        UsageError: the file is missing or does not fit the network.
    """
    path = Path(weights)
    if not path.is_file():
        raise UsageError(f"--encoder-weights: no such file: {path} (nothing is downloaded here)")
    constructors = {"mobilenet_v3_small": keras.applications.MobileNetV3Small,
                    "efficientnet_b0": keras.applications.EfficientNetB0}  # fmt: skip
    if name not in constructors:
        raise ValueError(f"name must be one of {sorted(constructors)}. Received: name={name!r}")
    kwargs: dict[str, Any] = {"include_preprocessing": True} if name.startswith("mobilenet") else {}
    try:
        net = constructors[name](input_shape=(image_size, image_size, 3), include_top=False,
                                 weights=None, **kwargs)  # fmt: skip
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            net.load_weights(str(path))
        partial = [w for w in caught if "freshly-initialized" in str(w.message)]
        if partial:  # keras loaded only some layers: the file is for another network
            raise ValueError(" ".join(str(partial[0].message).split()))
    except (ValueError, OSError, KeyError, TypeError) as e:
        first = " ".join(str(e).split())[:200]
        raise UsageError(
            f"--encoder-weights: {path} does not fit {name} without its top ({first})"
        ) from None
    net.trainable = trainable
    inputs = keras.Input((image_size, image_size, 3), name="image")
    return keras.Model(inputs, net(inputs, training=False if not trainable else None),
                       name="encoder")  # fmt: skip


def _state_sizes(cell: Any) -> list[int]:
    size = cell.state_size
    return [int(s) for s in (size if isinstance(size, (list, tuple)) else [size])]


def needs_square_input(cell: Any) -> bool:
    """Whether a cell adds its bare input to a ``units``-wide term (MUT1/MUT2, some genotypes),
    so that its input must be exactly ``units`` wide."""
    if type(cell).__name__ in ("MUT1Cell", "MUT2Cell"):
        return True
    genotype = getattr(cell, "genotype", None)
    return bool(genotype is not None and getattr(genotype, "bare_x_nodes", None))


def feature_width(cell: Any, units: int, embedding_dim: int) -> int:
    """Width of the projected image features (the attention's values).

    ``units`` in general; for a cell whose input must be ``units`` wide (MUT1, MUT2), the
    decoder cell reads ``[embedding; context]``, so the features get ``units - embedding_dim``.

    Raises:
        UsageError: such a cell with ``units <= embedding_dim``.
    """
    if not needs_square_input(cell):
        return units
    if units <= embedding_dim:
        raise UsageError(
            f"--cell: {type(cell).__name__} adds its bare input to its state, so the decoder "
            f"needs units > embedding_dim (got units={units}, embedding_dim={embedding_dim})"
        )
    return units - embedding_dim


def _make_head(vocab_size: int, grid: tuple[int, int, int], cell: str, units: int,
               embedding_dim: int, attention_units: int | None, dropout: float,
               seed: int) -> dict[str, Any]:  # fmt: skip
    import seqlayers

    h, w, d = grid
    inner = make_cell(cell, units, seed=seed)
    width = feature_width(inner, units, embedding_dim)
    attention_cell = seqlayers.AttentionDecoderCell(
        inner, attention_units=attention_units or units, name="attention_cell"
    )
    layers = {
        "grid": keras.layers.Reshape((h * w, d), name="grid"),
        "project": keras.layers.Dense(width, activation="relu", name="project"),
        "position": seqlayers.PositionEmbedding(name="position"),
        "mean_features": keras.layers.GlobalAveragePooling1D(name="mean_features"),
        "embedding": keras.layers.Embedding(vocab_size, embedding_dim, name="embedding"),
        "decoder": seqlayers.AttentionDecoder(attention_cell, name="decoder"),
        "dropout": keras.layers.Dropout(dropout, seed=seed, name="dropout"),
        "logits": keras.layers.Dense(vocab_size, name="logits"),
    }
    layers["init"] = [keras.layers.Dense(n, activation="tanh", name=f"init_state_{i}")
                      for i, n in enumerate(_state_sizes(inner))]  # fmt: skip
    return layers


def _values(layers: dict[str, Any], grid: Any) -> Any:
    """The attention's values: the grid flattened, projected, plus a learned position per cell
    (runs saved before ``position`` existed have none)."""
    values = layers["project"](layers["grid"](grid))
    return layers["position"](values) if layers.get("position") is not None else values


def _apply_head(layers: dict[str, Any], grid: Any, caption: Any) -> Any:
    values = _values(layers, grid)
    mean = layers["mean_features"](values)
    states = [dense(mean) for dense in layers["init"]]
    embedded = layers["embedding"](caption)
    outputs, _, _ = layers["decoder"](embedded, values, initial_state=states)
    return layers["logits"](layers["dropout"](outputs))


def _head_layers(model: keras.Model) -> dict[str, Any]:
    layers = {name: model.get_layer(name) for name in HEAD_LAYERS}
    names = {layer.name for layer in model.layers}
    layers["position"] = model.get_layer("position") if "position" in names else None
    layers["init"] = [layer for layer in model.layers if layer.name.startswith("init_state_")]
    layers["init"].sort(key=lambda layer: int(layer.name.rsplit("_", 1)[1]))
    return layers


def build_encoder(encoder: str, image_size: int, channels: int, *, filters: int = 32,
                  weights: str | Path | None = None, fine_tune: bool = False) -> keras.Model:  # fmt: skip
    """The ``cnn`` encoder or a ``keras.applications`` one (see the two builders)."""
    if encoder == "cnn":
        return build_cnn_encoder(image_size, channels, filters)
    if channels != 3:
        raise ValueError(f"{encoder} needs RGB input (channels=3). Received: channels={channels}")
    if weights is None:
        raise UsageError(f"--encoder-weights: {encoder} needs its ImageNet weights file (no top)")
    return build_pretrained_encoder(encoder, image_size, weights, trainable=fine_tune)


def build_model(encoder: keras.Model, vocab_size: int, *, cell: str = "lstm", units: int = 96,
                embedding_dim: int = 32, attention_units: int | None = None,
                dropout: float = 0.0, seed: int = 0) -> keras.Model:  # fmt: skip
    """The captioning model over images: ``[image, caption] -> logits (B, T, V)``.

    Args:
        encoder: from :func:`build_encoder` (its input is the image, its output a grid).
        vocab_size: ids of the caption vocabulary.
        cell: the decoder cell name (``apps.common.cells``).
        units: decoder hidden size (and width of the projected features).
        embedding_dim: word-vector width.
        attention_units: attention scoring size (``None``: ``units``).
        dropout: dropout before the vocabulary layer.
        seed: seed of the cell's and the dropout's randomness.
    """
    grid = tuple(int(d) for d in encoder.output.shape[1:])
    layers = _make_head(
        vocab_size, grid, cell, units, embedding_dim, attention_units, dropout, seed
    )
    image = keras.Input(encoder.input.shape[1:], name="image")
    caption = keras.Input((None,), dtype="int32", name="caption")
    logits = _apply_head(layers, encoder(image), caption)
    return keras.Model([image, caption], logits, name="captioner")


def build_feature_model(grid: tuple[int, int, int], vocab_size: int, **kwargs: Any) -> keras.Model:
    """The same head over cached encoder features: ``[features, caption] -> logits``.

    ``kwargs`` as in :func:`build_model`.
    """
    opts = {"cell": "lstm", "units": 96, "embedding_dim": 32, "attention_units": None,
            "dropout": 0.0, "seed": 0, **kwargs}  # fmt: skip
    layers = _make_head(vocab_size, tuple(grid), opts["cell"], opts["units"], opts["embedding_dim"],
                        opts["attention_units"], opts["dropout"], opts["seed"])  # fmt: skip
    features = keras.Input(tuple(grid), name="features")
    caption = keras.Input((None,), dtype="int32", name="caption")
    logits = _apply_head(layers, features, caption)
    return keras.Model([features, caption], logits, name="captioner")


def is_feature_model(model: keras.Model) -> bool:
    """Whether ``model`` reads cached features (``"features"`` input) instead of images."""
    return any(t.name == "features" for t in model.inputs) or "features" in getattr(
        model, "input_names", []
    )


def compose_full_model(feature_model: keras.Model, encoder: keras.Model) -> keras.Model:
    """The image model: ``encoder`` in front of a trained feature model's layers (shared)."""
    layers = _head_layers(feature_model)
    image = keras.Input(encoder.input.shape[1:], name="image")
    caption = keras.Input((None,), dtype="int32", name="caption")
    logits = _apply_head(layers, encoder(image), caption)
    return keras.Model([image, caption], logits, name="captioner")


# ----------------------------------------------------------------------- decoding models
class PrecomputeKeys(keras.layers.Layer):
    """``values U_a``: the attention keys of a trained decoder, computed once per image.

    Holds the decoder's ``BahdanauAttention`` (shared weights); used only inside the in-memory
    init model (never saved on its own).
    """

    def __init__(self, attention: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.attention = attention

    def call(self, values: Any) -> Any:
        return self.attention.precompute_keys(values)


def build_init_model(model: keras.Model) -> keras.Model:
    """``image -> [values (B, N, U), keys (B, N, A), state_0, ...]`` from a trained model."""
    layers = _head_layers(model)
    encoder = model.get_layer("encoder")
    image = keras.Input(encoder.input.shape[1:], name="image")
    values = _values(layers, encoder(image))
    keys = PrecomputeKeys(layers["decoder"].cell.attention, name="keys")(values)
    mean = layers["mean_features"](values)
    states = [dense(mean) for dense in layers["init"]]
    return keras.Model(image, [values, keys, *states], name="caption_init")


def build_step_model(model: keras.Model) -> keras.Model:
    """One decoder step: ``[token (B,), state_0.., values, keys] -> [logits (B, V), state_0..,
    weights (B, N)]``, sharing the trained weights.

    Example:
        >>> init, step = build_init_model(model), build_step_model(model)
        >>> values, keys, *states = init(images)
        >>> logits, *states, weights = step([tokens, *states, values, keys])
    """
    layers = _head_layers(model)
    cell = layers["decoder"].cell
    values_shape = (int(layers["grid"].target_shape[0]), int(layers["project"].units))
    keys_dim = cell.attention.units
    token = keras.Input((), dtype="int32", name="token")
    states = [keras.Input((int(n),), name=f"state_{i}")
              for i, n in enumerate(_state_sizes(cell))]  # fmt: skip
    values = keras.Input(values_shape, name="values")
    keys = keras.Input((values_shape[0], keys_dim), name="keys")
    embedded = layers["embedding"](token)
    output, new_states, weights = cell(embedded, states, values, keys=keys)
    logits = layers["logits"](output)
    outputs = [logits, *new_states, weights]
    return keras.Model([token, *states, values, keys], outputs, name="caption_step")


def grid_shape(model: keras.Model) -> tuple[int, int]:
    """``(h, w)`` of the attention grid of a trained model."""
    if is_feature_model(model):
        shape = next(t for t in model.inputs if "features" in t.name).shape
    else:
        shape = model.get_layer("encoder").output.shape
    return int(shape[1]), int(shape[2])


def count_states(model: keras.Model) -> int:
    """Number of recurrent state tensors of the decoder cell."""
    return len(_state_sizes(model.get_layer("decoder").cell))
