"""Classic recurrent cells written as ``CellGenotype`` graphs.

Weights are named ``W_<source>_<node>`` and ``b_<node>``; each preset's docstring maps them to
the usual symbols. ``blend(a, b, g) = g * a + (1 - g) * b``.

Reference:
    Jozefowicz, Zaremba & Sutskever, "An Empirical Exploration of Recurrent Network
    Architectures", ICML 2015 (MUT1-3).
    Cho et al., 2014 (GRU); Hochreiter & Schmidhuber, 1997 (LSTM, here in keras' form).
"""

from __future__ import annotations

from seqlayers.genotype import CellGenotype, GenotypeNode, NodeInput


def _node(
    name: str, inputs, combine: str = "add", activation: str = "identity", bias: bool = False
) -> GenotypeNode:
    return GenotypeNode(name, tuple(inputs), combine, activation, bias)


def _w(source: str) -> NodeInput:
    """A term through a linear map: ``source @ W_<source>_<node>``."""
    return NodeInput(source, True)


def vanilla() -> CellGenotype:
    """Elman cell: ``h' = tanh(W_hh h + W_xh x + b_h)``.

    Weights: ``W_x_h_next`` = W_xh, ``W_h_h_next`` = W_hh, ``b_h_next`` = b_h.
    """
    return CellGenotype(
        nodes=(_node("h_next", [_w("x"), _w("h")], activation="tanh", bias=True),),
        h_out="h_next",
        name="vanilla",
    )


def gru() -> CellGenotype:
    """GRU as keras ``GRUCell(reset_after=False)``.

    z = sigmoid(W_xz x + W_hz h + b_z); r = sigmoid(W_xr x + W_hr h + b_r);
    hc = tanh(W_xh x + W_hh (r * h) + b_h); h' = z * h + (1 - z) * hc.

    Weights: ``W_x_z``, ``W_h_z``, ``b_z``, ``W_x_r``, ``W_h_r``, ``b_r``,
    ``W_x_hc`` = W_xh, ``W_rh_hc`` = W_hh, ``b_hc`` = b_h.
    """
    return CellGenotype(
        nodes=(
            _node("z", [_w("x"), _w("h")], activation="sigmoid", bias=True),
            _node("r", [_w("x"), _w("h")], activation="sigmoid", bias=True),
            _node("rh", ["r", "h"], combine="mul"),
            _node("hc", [_w("x"), _w("rh")], activation="tanh", bias=True),
            _node("h_next", ["h", "hc", "z"], combine="blend"),
        ),
        h_out="h_next",
        name="gru",
    )


def lstm() -> CellGenotype:
    """LSTM as keras ``LSTMCell`` (gates i, f, c, o; no peepholes).

    i = sigmoid(W_xi x + W_hi h + b_i); f = sigmoid(W_xf x + W_hf h + b_f);
    g = tanh(W_xc x + W_hc h + b_c); o = sigmoid(W_xo x + W_ho h + b_o);
    c' = f * c + i * g; h' = o * tanh(c').

    Weights: ``W_x_<gate>``, ``W_h_<gate>``, ``b_<gate>`` for gate in i, f, g, o
    (``g`` is keras' ``c`` block).
    """
    gate = {"i": "sigmoid", "f": "sigmoid", "g": "tanh", "o": "sigmoid"}
    return CellGenotype(
        nodes=tuple(
            _node(name, [_w("x"), _w("h")], activation=act, bias=True) for name, act in gate.items()
        )
        + (
            _node("fc", ["f", "c"], combine="mul"),
            _node("ig", ["i", "g"], combine="mul"),
            _node("c_next", ["fc", "ig"], combine="add"),
            _node("tc", ["c_next"], activation="tanh"),
            _node("h_next", ["o", "tc"], combine="mul"),
        ),
        h_out="h_next",
        c_out="c_next",
        name="lstm",
    )


def mut1() -> CellGenotype:
    """MUT1 (Jozefowicz et al. 2015); needs input width == units (bare ``tanh(x)``).

    z = sigmoid(W_xz x + b_z); r = sigmoid(W_xr x + W_hr h + b_r);
    h' = tanh(W_hh (r * h) + tanh(x) + b_h) * z + h * (1 - z).

    Weights: ``W_x_z``, ``b_z``, ``W_x_r``, ``W_h_r``, ``b_r``, ``W_rh_hc`` = W_hh,
    ``b_hc`` = b_h.
    """
    return CellGenotype(
        nodes=(
            _node("z", [_w("x")], activation="sigmoid", bias=True),
            _node("r", [_w("x"), _w("h")], activation="sigmoid", bias=True),
            _node("rh", ["r", "h"], combine="mul"),
            _node("tx", ["x"], activation="tanh"),
            _node("hc", [_w("rh"), "tx"], activation="tanh", bias=True),
            _node("h_next", ["hc", "h", "z"], combine="blend"),
        ),
        h_out="h_next",
        name="mut1",
    )


def mut2() -> CellGenotype:
    """MUT2 (Jozefowicz et al. 2015); needs input width == units (bare ``x`` in r).

    z = sigmoid(W_xz x + W_hz h + b_z); r = sigmoid(x + W_hr h + b_r);
    h' = tanh(W_hh (r * h) + W_xh x + b_h) * z + h * (1 - z).

    Weights: ``W_x_z``, ``W_h_z``, ``b_z``, ``W_h_r``, ``b_r``, ``W_x_hc`` = W_xh,
    ``W_rh_hc`` = W_hh, ``b_hc`` = b_h.
    """
    return CellGenotype(
        nodes=(
            _node("z", [_w("x"), _w("h")], activation="sigmoid", bias=True),
            _node("r", ["x", _w("h")], activation="sigmoid", bias=True),
            _node("rh", ["r", "h"], combine="mul"),
            _node("hc", [_w("rh"), _w("x")], activation="tanh", bias=True),
            _node("h_next", ["hc", "h", "z"], combine="blend"),
        ),
        h_out="h_next",
        name="mut2",
    )


def mut3() -> CellGenotype:
    """MUT3 (Jozefowicz et al. 2015).

    z = sigmoid(W_xz x + W_hz tanh(h) + b_z); r = sigmoid(W_xr x + W_hr h + b_r);
    h' = tanh(W_hh (r * h) + W_xh x + b_h) * z + h * (1 - z).

    Weights: ``W_x_z``, ``W_th_z`` = W_hz (on ``th = tanh(h)``), ``b_z``, ``W_x_r``, ``W_h_r``,
    ``b_r``, ``W_rh_hc`` = W_hh, ``W_x_hc`` = W_xh, ``b_hc`` = b_h.
    """
    return CellGenotype(
        nodes=(
            _node("th", ["h"], activation="tanh"),
            _node("z", [_w("x"), _w("th")], activation="sigmoid", bias=True),
            _node("r", [_w("x"), _w("h")], activation="sigmoid", bias=True),
            _node("rh", ["r", "h"], combine="mul"),
            _node("hc", [_w("rh"), _w("x")], activation="tanh", bias=True),
            _node("h_next", ["hc", "h", "z"], combine="blend"),
        ),
        h_out="h_next",
        name="mut3",
    )


PRESETS: dict[str, CellGenotype] = {
    g.name: g for g in (vanilla(), lstm(), gru(), mut1(), mut2(), mut3())
}


def get_preset(name: str) -> CellGenotype:
    """The preset genotype called ``name`` (``vanilla``, ``lstm``, ``gru``, ``mut1-3``).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    key = name.lower()
    if key not in PRESETS:
        raise ValueError(f"unknown genotype preset '{name}' (choose from {', '.join(PRESETS)})")
    return PRESETS[key]
