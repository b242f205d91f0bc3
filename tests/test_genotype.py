"""CellGenotype: validation, JSON, fingerprint, parameter counting, presets, sampling."""

from __future__ import annotations

import dataclasses
import json

import pytest

from seqlayers.genotype import (
    CellGenotype,
    GenotypeNode,
    NodeInput,
    param_count,
    random_genotype,
    units_for_budget,
)
from seqlayers.genotype_presets import PRESETS, get_preset, gru, lstm, mut1, mut2, mut3, vanilla


def W(source: str) -> NodeInput:
    return NodeInput(source, True)


def simple(**overrides) -> CellGenotype:
    """n = tanh(x W + h W + b); out = sigmoid(n W + b): a tiny valid genotype to break."""
    fields = {
        "nodes": (
            GenotypeNode("n", (W("x"), W("h")), "add", "tanh", True),
            GenotypeNode("out", (W("n"),), "add", "sigmoid", True),
        ),
        "h_out": "out",
        "c_out": None,
    }
    fields.update(overrides)
    return CellGenotype(**fields)


def rename(g: CellGenotype, mapping: dict[str, str]) -> CellGenotype:
    def r(name):
        return mapping.get(name, name)

    nodes = tuple(
        dataclasses.replace(
            n, name=r(n.name), inputs=tuple(NodeInput(r(i.source), i.linear) for i in n.inputs)
        )
        for n in g.nodes
    )
    return CellGenotype(nodes, h_out=r(g.h_out), c_out=None if g.c_out is None else r(g.c_out))


# ----------------------------------------------------------------------------- presets
def test_presets_are_valid_and_named():
    assert set(PRESETS) == {"vanilla", "lstm", "gru", "mut1", "mut2", "mut3"}
    for name, g in PRESETS.items():
        assert g.validate() is g
        assert g.name == name
        assert get_preset(name.upper()) == g
    assert lstm().uses_c and lstm().c_out == "c_next"
    assert not any(PRESETS[n].uses_c for n in ("vanilla", "gru", "mut1", "mut2", "mut3"))
    assert mut1().bare_x_nodes == ("tx",) and mut2().bare_x_nodes == ("r",)
    assert mut3().bare_x_nodes == () and gru().bare_x_nodes == ()
    with pytest.raises(ValueError, match="unknown genotype preset 'lstm2'"):
        get_preset("lstm2")


def test_preset_param_counts_match_the_textbook_formulas():
    d, u = 5, 7
    assert param_count(vanilla(), d, u) == d * u + u * u + u
    assert param_count(lstm(), d, u) == 4 * (d * u + u * u + u)  # keras LSTMCell
    assert param_count(gru(), d, u) == 3 * (d * u + u * u + u)  # keras GRUCell(reset_after=False)
    assert param_count(mut3(), d, u) == 3 * (d * u + u * u + u)
    assert param_count(mut1(), u, u) == 2 * u * u + u * u + u * u + 3 * u  # xz, xr, hr, hh
    assert param_count(mut2(), u, u) == 2 * u * u + u * u + 2 * u * u + 3 * u  # xz hz hr hh xh


def test_gru_equations_text():
    assert gru().equations().splitlines() == (
        [
            "z = sigmoid(x @ W_x_z + h @ W_h_z + b_z)",
            "r = sigmoid(x @ W_x_r + h @ W_h_r + b_r)",
            "rh = r * h",
            "hc = tanh(x @ W_x_hc + rh @ W_rh_hc + b_hc)",
            "h_next = z * h + (1 - z) * hc",
            "h' = h_next",
        ]
    )


# ----------------------------------------------------------------------------- JSON
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip(name, tmp_path):
    g = PRESETS[name]
    text = g.to_json()
    data = json.loads(text)
    assert data["format"] == "seqlayers.CellGenotype" and data["version"] == 1
    back = CellGenotype.from_json(text)
    assert back == g and back.name == name and hash(back) == hash(g)
    assert CellGenotype.from_dict(g.to_dict()) == g
    path = g.save(tmp_path / f"{name}.json")
    assert CellGenotype.load(path) == g
    assert not list(tmp_path.glob("*.tmp"))


def test_from_dict_rejects_unknown_keys_and_formats():
    data = vanilla().to_dict()
    with pytest.raises(ValueError, match=r"unknown keys \['extra'\]"):
        CellGenotype.from_dict({**data, "extra": 1})
    with pytest.raises(ValueError, match="version"):
        CellGenotype.from_dict({**data, "version": 99})
    bad_node = {**data["nodes"][0], "act": "tanh"}
    with pytest.raises(ValueError, match="node 'h_next': unknown keys"):
        CellGenotype.from_dict({**data, "nodes": [bad_node]})


# ----------------------------------------------------------------------------- fingerprint
def test_fingerprint_ignores_names_order_and_commutative_term_order():
    g = lstm()
    renamed = rename(g, {"i": "in_gate", "f": "forget", "c_next": "cell", "tc": "q", "h_next": "y"})
    reordered = CellGenotype(tuple(reversed(g.nodes)), h_out=g.h_out, c_out=g.c_out)
    swapped = CellGenotype(
        tuple(dataclasses.replace(n, inputs=tuple(reversed(n.inputs))) for n in g.nodes),
        h_out=g.h_out,
        c_out=g.c_out,
    )
    assert renamed != g
    assert renamed.fingerprint() == reordered.fingerprint() == swapped.fingerprint()
    assert g.fingerprint() == renamed.fingerprint()
    assert len(g.fingerprint()) == 16


def test_fingerprint_differs_for_different_graphs():
    prints = {g.fingerprint() for g in PRESETS.values()}
    assert len(prints) == len(PRESETS)
    g = gru()
    blend = g.node_map["h_next"]
    # blend is ordered: z*h + (1-z)*hc is not z*hc + (1-z)*h
    swapped = dataclasses.replace(blend, inputs=(blend.inputs[1], blend.inputs[0], blend.inputs[2]))
    other = CellGenotype(tuple(swapped if n is blend else n for n in g.nodes), h_out="h_next")
    assert other.fingerprint() != g.fingerprint()
    relu = simple(
        nodes=(dataclasses.replace(simple().nodes[0], activation="relu"), simple().nodes[1])
    )
    assert relu.fingerprint() != simple().fingerprint()
    no_bias = simple(nodes=(dataclasses.replace(simple().nodes[0], bias=False), simple().nodes[1]))
    assert no_bias.fingerprint() != simple().fingerprint()


def test_fingerprint_distinguishes_shared_from_duplicated_nodes():
    a = GenotypeNode("a", (W("x"),), activation="tanh")
    a2 = GenotypeNode("a2", (W("x"),), activation="tanh")
    shared = CellGenotype(
        (
            a,
            GenotypeNode("p", (W("a"), W("h"))),
            GenotypeNode("q", (W("a"), "h")),
            GenotypeNode("out", ("p", "q"), "mul"),
        ),
        h_out="out",
    )
    split = CellGenotype(
        (
            a,
            a2,
            GenotypeNode("p", (W("a"), W("h"))),
            GenotypeNode("q", (W("a2"), "h")),
            GenotypeNode("out", ("p", "q"), "mul"),
        ),
        h_out="out",
    )
    split_swapped = rename(split, {"a": "a2", "a2": "a"})
    assert shared.fingerprint() != split.fingerprint()
    assert split.fingerprint() == split_swapped.fingerprint()


def test_fingerprint_dissolves_pass_through_nodes():
    g = simple()
    alias = CellGenotype(
        (
            g.nodes[0],
            GenotypeNode("alias", ("n",)),
            GenotypeNode("out", (W("alias"),), "add", "sigmoid", True),
        ),
        h_out="out",
    )
    one_input_mul = simple(nodes=(g.nodes[0], dataclasses.replace(g.nodes[1], combine="mul")))
    assert alias.fingerprint() == g.fingerprint() == one_input_mul.fingerprint()


# ----------------------------------------------------------------------------- validate
@pytest.mark.parametrize(
    "genotype, message",
    [
        (
            simple(
                nodes=(
                    GenotypeNode("n", (W("x"), W("out")), "add", "tanh", True),
                    GenotypeNode("out", (W("n"), W("h")), "add", "sigmoid", True),
                )
            ),
            r"node '(n|out)': nodes form a cycle (n -> out -> n|out -> n -> out)",
        ),
        (
            simple(
                nodes=(
                    GenotypeNode("n", (W("x"), W("h"), W("n")), "add", "tanh", True),
                    simple().nodes[1],
                )
            ),
            r"node 'n': nodes form a cycle n -> n",
        ),
        (
            simple(
                nodes=(GenotypeNode("n", (W("x"), W("hh")), "add", "tanh", True), simple().nodes[1])
            ),
            r"node 'n': input 'hh' is not defined",
        ),
        (
            simple(nodes=simple().nodes + (GenotypeNode("spare", (W("h"),), bias=True),)),
            r"node 'spare': unused",
        ),
        (
            simple(
                nodes=(
                    GenotypeNode("n", (W("x"), W("h")), "add", "softsign", True),
                    simple().nodes[1],
                )
            ),
            r"node 'n': unknown activation 'softsign'",
        ),
        (
            simple(
                nodes=(GenotypeNode("n", (W("x"), W("h")), "max", "tanh", True), simple().nodes[1])
            ),
            r"node 'n': unknown combine 'max'",
        ),
        (simple(h_out=None), r"h_out: missing output"),
        (simple(h_out="nowhere"), r"h_out: 'nowhere' is not a node"),
        (
            simple(
                nodes=(
                    GenotypeNode("n", (W("x"), W("h"), W("c")), "add", "tanh", True),
                    simple().nodes[1],
                )
            ),
            r"c_out: missing output — node 'n' reads 'c'",
        ),
        (simple(c_out="n"), r"input 'c': does not reach"),
        (simple(c_out="out"), r"c_out: must differ from h_out"),
        (
            simple(
                nodes=(
                    GenotypeNode("n", (W("x"), W("h")), "blend", "tanh", True),
                    simple().nodes[1],
                )
            ),
            r"node 'n': combine 'blend' takes exactly 3",
        ),
        (
            simple(
                nodes=(
                    GenotypeNode("n", ("x", W("h"), W("x")), "add", "tanh", True),
                    simple().nodes[1],
                )
            ),
            r"node 'n': input 'x' appears more than once",
        ),
        (
            simple(
                nodes=(
                    GenotypeNode("n", (W("x"), W("h"), "x", "h"), "add", "tanh", True),
                    simple().nodes[1],
                )
            ),
            r"node 'n': inputs must hold 1 to 3 terms",
        ),
        (
            simple(nodes=(GenotypeNode("n", ("x", "h"), "add", "tanh", True), simple().nodes[1])),
            r"node 'n': bias needs at least one input with a linear",
        ),
        (
            simple(nodes=(GenotypeNode("n", (W("x"),), "add", "tanh", True), simple().nodes[1])),
            r"input 'h': does not reach h_out",
        ),
        (
            simple(nodes=(GenotypeNode("h", (W("x"),), "add", "tanh", True),)),
            r"node 'h': name is reserved",
        ),
        (simple(nodes=simple().nodes + (simple().nodes[0],)), r"node 'n': name is used by two"),
        (simple(nodes=(GenotypeNode("2n", (W("x"),)),)), r"node name '2n'"),
        (CellGenotype(nodes=(), h_out="out"), r"nodes: a genotype needs at least one node"),
    ],
)
def test_validate_rejects_with_a_message_naming_the_field(genotype, message):
    with pytest.raises(ValueError, match=message):
        genotype.validate()


def test_validate_rejects_clashing_weight_names():
    g = CellGenotype(
        (
            GenotypeNode("a_b", (W("x"), W("h"))),
            GenotypeNode("c2", (W("a_b"),)),
            GenotypeNode("a", (W("x"),)),
            GenotypeNode("b_c2", (W("a"),)),
            GenotypeNode("out", ("c2", "b_c2")),
        ),
        h_out="out",
    )
    with pytest.raises(ValueError, match="weight name 'W_a_b_c2' clashes"):
        g.validate()


def test_fingerprint_and_param_count_refuse_invalid_graphs():
    bad = simple(h_out=None)
    with pytest.raises(ValueError, match="h_out"):
        bad.fingerprint()
    with pytest.raises(ValueError, match="h_out"):
        param_count(bad, 3, 3)


# ----------------------------------------------------------------------------- sizing
def test_param_count_counts_every_weight():
    # n: x W (3x4) + h W (4x4) + b (4); out: n W (4x4) + b (4)
    assert param_count(simple(), 3, 4) == 12 + 16 + 4 + 16 + 4
    specs = simple().weight_specs(3, 4)
    assert [(s.name, s.shape, s.kind) for s in specs] == [
        ("W_x_n", (3, 4), "kernel"),
        ("W_h_n", (4, 4), "recurrent"),
        ("b_n", (4,), "bias"),
        ("W_n_out", (4, 4), "recurrent"),
        ("b_out", (4,), "bias"),
    ]


def test_bare_x_needs_input_width_equal_to_units():
    assert param_count(mut1(), 6, 6) > 0
    with pytest.raises(ValueError, match=r"node 'tx': uses x without a linear map.*input_dim=5"):
        param_count(mut1(), 5, 6)


@pytest.mark.parametrize("name", ["lstm", "gru", "vanilla", "mut3"])
@pytest.mark.parametrize("budget", [500, 12345])
def test_units_for_budget_is_the_largest_that_fits(name, budget):
    g = PRESETS[name]
    units = units_for_budget(g, 10, budget)
    assert param_count(g, 10, units) <= budget < param_count(g, 10, units + 1)


def test_units_for_budget_limits():
    assert units_for_budget(lstm(), 10, 10**9, max_units=64) == 64
    with pytest.raises(ValueError, match="even units=1 needs 48 params > budget=10"):
        units_for_budget(lstm(), 10, 10)
    # a bare x pins units to the input width
    assert units_for_budget(mut1(), 8, param_count(mut1(), 8, 8)) == 8
    with pytest.raises(ValueError, match="bare x"):
        units_for_budget(mut1(), 8, param_count(mut1(), 8, 8) - 1)


# ----------------------------------------------------------------------------- sampling
def test_random_genotypes_are_valid_repeatable_and_varied():
    prints = set()
    for seed in range(60):
        for use_c in (False, True):
            g = random_genotype(seed, num_nodes=2 + seed % 5, use_c=use_c)
            g.validate()
            assert g.uses_c == use_c
            assert not g.bare_x_nodes
            assert random_genotype(seed, num_nodes=2 + seed % 5, use_c=use_c) == g
            assert CellGenotype.from_json(g.to_json()) == g
            prints.add(g.fingerprint())
    assert len(prints) > 100
    assert any(random_genotype(s, allow_bare_x=True, p_linear=0.3).bare_x_nodes for s in range(20))
