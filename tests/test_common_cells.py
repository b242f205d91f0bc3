"""apps.common.cells: one mapping from --cell/--model names to layers."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from apps.common.cells import CellSpec, make_cell, parse_cell_name, recurrent_layer
from apps.common.errors import UsageError


@pytest.mark.parametrize(
    "name, kind, bi",
    [
        ("lstm", "lstm", False),
        ("GRU", "gru", False),
        ("bilstm", "lstm", True),
        ("bivanilla", "vanilla", True),
        ("mut3", "mut3", False),
        ("bimut1", "mut1", True),
    ],
)
def test_parse(name, kind, bi):
    assert parse_cell_name(name) == CellSpec(kind, bi)


def test_parse_errors(tmp_path):
    with pytest.raises(UsageError) as info:
        parse_cell_name("lstmm", flag="--model")
    assert str(info.value).startswith("--model: unknown cell 'lstmm' (choose from vanilla, lstm")
    with pytest.raises(UsageError, match="no such genotype file"):
        parse_cell_name("genotype:/nope.json")
    with pytest.raises(UsageError, match="unknown cell 'bi'"):
        parse_cell_name("bi")
    with pytest.raises(UsageError, match="needs a one-way cell"):
        parse_cell_name("bigru", allow_bidirectional=False)
    g = tmp_path / "g.json"
    g.write_text("{}")
    assert parse_cell_name(f"bigenotype:{g}") == CellSpec("genotype", True, g)
    assert parse_cell_name(f"genotype:{g}").name == f"genotype:{g}"


def test_keras_layers_and_bidirectional():
    x = np.ones((2, 5, 3), "float32")
    layer = recurrent_layer("lstm", 4, name="enc")
    assert isinstance(layer, keras.layers.LSTM) and layer.name == "enc"
    assert layer(x).shape == (2, 4)
    bi = recurrent_layer("bigru", 4, return_sequences=True, name="bienc")
    assert isinstance(bi, keras.layers.Bidirectional) and bi.name == "bienc"
    assert bi(x).shape == (2, 5, 8)
    out, h, c = recurrent_layer("lstm", 4, return_state=True)(x)
    assert out.shape == h.shape == c.shape == (2, 4)
    np.testing.assert_allclose(out, h)


@pytest.mark.parametrize("name", ["vanilla", "mut1", "mut2", "mut3", "bimut2"])
def test_seqlayers_cells(name):
    x = np.ones((2, 5, 4), "float32")  # MUT1/MUT2 add x_t itself: input width == units
    layer = recurrent_layer(name, 4, seed=1)
    width = 8 if name.startswith("bi") else 4
    assert layer(x).shape == (2, width)
    assert type(layer).__module__.startswith("keras" if name.startswith("bi") else "seqlayers")


def test_genotype_layer_and_make_cell(tmp_path):
    import seqlayers

    path = tmp_path / "lstm_like.json"
    path.write_text(seqlayers.GENOTYPE_PRESETS["lstm"].to_json())
    layer = recurrent_layer(f"genotype:{path}", 4)
    assert layer(np.ones((2, 5, 3), "float32")).shape == (2, 4)
    cell = make_cell(f"genotype:{path}", 4)
    assert isinstance(cell, seqlayers.GenotypeCell)
    assert isinstance(make_cell("lstm", 3), keras.layers.LSTMCell)
    assert isinstance(make_cell("gru", 3), keras.layers.GRUCell)
    assert isinstance(make_cell("mut2", 3), seqlayers.MUT2Cell)
    assert isinstance(make_cell("vanilla", 3), seqlayers.VanillaRNNCell)
    with pytest.raises(UsageError, match="needs a one-way cell"):
        make_cell("bilstm", 3)
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodes": 3}')
    with pytest.raises(UsageError, match="is not a valid cell genotype"):
        recurrent_layer(f"genotype:{bad}", 4)
