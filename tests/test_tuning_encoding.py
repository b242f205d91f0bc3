"""Genotype <-> hyperparameter encoding, mutations, budgets and the evolutionary oracle.

No training here: these are the pure parts of the cell search (fast).
"""

from __future__ import annotations

import random

import keras
import keras_tuner
import numpy as np
import pytest

import seqlayers
from seqlayers.genotype import CellGenotype, GenotypeNode, NodeInput, param_count
from seqlayers.genotype_presets import PRESETS, get_preset
from tuning.budget import Sizing, block_params, size_for_budget
from tuning.encoding import GenotypeSpace, canonical_names, prune
from tuning.evolution import EvolutionOracle
from tuning.mutation import MUTATIONS, mutate
from tuning.oracles import CandidateFilter, RandomSearchOracle

SPACE = GenotypeSpace(max_nodes=9)


def _space_hp(space: GenotypeSpace = SPACE) -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    hp.Fixed("learning_rate", 0.01)
    return hp


# ------------------------------------------------------------------------------ encoding
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_rebuild_exactly_through_the_encoding(name):
    preset = get_preset(name)
    values = SPACE.encode(preset)
    decoded = SPACE.decode(values)
    # the same graph, nodes renamed n0.. in evaluation order: equal node by node
    assert decoded == canonical_names(preset)
    assert decoded.fingerprint() == preset.fingerprint()
    assert decoded.equations().count("\n") == preset.equations().count("\n")
    dims = (7, 7) if preset.bare_x_nodes else (5, 7)
    assert param_count(decoded, *dims) == param_count(preset, *dims)
    # through keras-tuner's HyperParameters and its gRPC proto (what workers receive)
    hp = _space_hp()
    hp.values.update(values)
    hp.ensure_active_values()
    again = keras_tuner.HyperParameters.from_proto(hp.to_proto())
    assert SPACE.decode(again.values) == decoded


def test_lstm_encoding_values():
    values = SPACE.encode(get_preset("lstm"))
    # node i (slot 0): sigmoid(x @ W + h @ W + b); c_next (slot 6) = fc + ig; h_out slot 8
    assert [values[f"n0_{k}"] for k in ("arity", "combine2", "in0", "in1", "act", "bias")] == [
        2,
        "add",
        "x",
        "h",
        "sigmoid",
        True,
    ]
    assert (values["n0_in0_linear"], values["n0_in1_linear"]) == (True, True)
    assert (values["n4_combine2"], values["n4_in0"], values["n4_in1"]) == ("mul", "n1", "c")
    assert (values["n6_in0"], values["n6_in1"], values["n6_in0_linear"]) == ("n4", "n5", False)
    assert (values["h_out"], values["c_out"]) == ("n8", "n6")
    assert "n0_combine3" not in values and "n0_in2" not in values  # inactive: arity is 2


@pytest.mark.parametrize("name", ["lstm", "mut1"])
def test_decoded_preset_computes_the_same_function(name):
    preset = get_preset(name)
    decoded = SPACE.decode(SPACE.encode(preset))
    units = 4
    dim = units if preset.bare_x_nodes else 3
    x = np.random.default_rng(0).normal(size=(2, 5, dim)).astype("float32")
    a = seqlayers.GenotypeRNN(units, preset, return_sequences=True)
    b = seqlayers.GenotypeRNN(units, decoded, return_sequences=True)
    a(x), b(x)
    rename = {n.name: f"n{k}" for k, n in enumerate(preset.topological_order())}
    for spec in preset.weight_specs(dim, units):
        if spec.kind == "bias":
            target = f"b_{rename[spec.node]}"
        else:
            source = rename.get(spec.source, spec.source)
            target = f"W_{source}_{rename[spec.node]}"
        b.cell.get_weight(target).assign(a.cell.get_weight(spec.name))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(b(x)), keras.ops.convert_to_numpy(a(x)), rtol=0, atol=1e-6
    )


def test_random_draws_are_valid_and_round_trip():
    hp = _space_hp()
    oracle = RandomSearchOracle(objective="val_loss", max_trials=5, hyperparameters=hp, seed=3)
    oracle.candidates = CandidateFilter(SPACE.decode, lambda g: None)
    seen = set()
    for _ in range(15):
        values = oracle._random_values()
        genotype = SPACE.decode(values)
        assert genotype.validate() is genotype
        assert SPACE.decode(SPACE.encode(genotype)) == canonical_names(genotype)
        seen.add(genotype.fingerprint())
    assert len(seen) == 15
    assert oracle.rejected > 0  # invalid draws happened and were drawn again


def test_fast_draws_are_points_of_the_keras_tuner_space():
    space = GenotypeSpace(max_nodes=5, bare_x=False)
    rng = random.Random(1)
    for _ in range(50):
        values = space.random_values(rng)
        hp = keras_tuner.HyperParameters()
        space.declare(hp)
        hp.values = dict(values)
        active = {p.name for p in hp.space if hp.is_active(p)}
        assert active == set(values)  # exactly the active hyperparameters get a value
        for p in hp.space:
            if p.name in values and hasattr(p, "values"):
                assert values[p.name] in p.values
        for k in range(5):
            srcs = [values[f"n{k}_in{j}"] for j in range(values[f"n{k}_arity"])]
            assert len(set(srcs)) == len(srcs)
            assert all(values[f"n{k}_in{j}_linear"] for j, s in enumerate(srcs) if s == "x")
        assert values["c_out"] != values["h_out"]


def _values_with(**changes):
    values = SPACE.encode(get_preset("vanilla"))
    values.update(changes)
    return values


def test_decode_rejects_invalid_graphs_naming_the_problem():
    with pytest.raises(ValueError, match="input 'x' appears more than once"):
        SPACE.decode(_values_with(n0_in1="x"))
    with pytest.raises(ValueError, match="input 'x': does not reach h_out"):
        SPACE.decode(_values_with(n0_arity=1, n0_in0="h"))  # x is read by no node
    with pytest.raises(ValueError, match="n0_in0: 'n3' is not a source of slot 0"):
        SPACE.decode(_values_with(n0_in0="n3"))  # a forward edge would allow a cycle
    with pytest.raises(ValueError, match="n0_arity: missing hyperparameter value"):
        SPACE.decode({k: v for k, v in _values_with().items() if k != "n0_arity"})
    c_no_out = _values_with(n0_arity=3, n0_combine3="add", n0_in2="c", n0_in2_linear=False)
    with pytest.raises(ValueError, match="c_out: missing output"):
        SPACE.decode(c_no_out)


def test_validation_rejects_cycles_and_unused_inputs():
    cycle = CellGenotype(
        (
            GenotypeNode("a", (NodeInput("x", True), NodeInput("b"))),
            GenotypeNode("b", (NodeInput("a"), NodeInput("h", True)), activation="tanh"),
        ),
        h_out="b",
    )
    with pytest.raises(ValueError, match="cycle"):
        cycle.validate()
    unused_h = CellGenotype((GenotypeNode("a", (NodeInput("x", True),), activation="tanh"),), "a")
    with pytest.raises(ValueError, match="input 'h': does not reach h_out"):
        unused_h.validate()
    with pytest.raises(ValueError, match="holds at most 4"):
        GenotypeSpace(max_nodes=4).encode(get_preset("lstm"))


def test_prune_drops_unreachable_nodes_only():
    g = CellGenotype(
        (
            GenotypeNode("dead", (NodeInput("x", True),)),
            GenotypeNode("a", (NodeInput("x", True), NodeInput("h", True)), activation="tanh"),
        ),
        h_out="a",
    )
    assert [n.name for n in prune(g).nodes] == ["a"]


# ------------------------------------------------------------------------------ budget
def test_size_for_budget_is_the_largest_fit():
    lstm = get_preset("lstm")
    assert size_for_budget(lstm, 88, 20000) == Sizing(39, 19968, False)
    assert param_count(lstm, 88, 40) > 20000
    mut1 = get_preset("mut1")  # bare x: the projection 88 -> units is counted
    sizing = size_for_budget(mut1, 88, 20000)
    assert sizing.projected and sizing.params == 88 * sizing.units + param_count(
        mut1, *[sizing.units] * 2
    )
    assert block_params(mut1, 88, sizing.units + 1) > 20000
    with pytest.raises(ValueError, match="even units=4 needs 1488 params"):
        size_for_budget(lstm, 88, 1000)


# ------------------------------------------------------------------------------ mutation
def test_mutations_give_valid_new_children():
    rng = random.Random(0)
    children = set()
    failures = 0
    for k in range(300):
        parent = get_preset(("lstm", "gru", "mut1", "mut2", "mut3")[k % 5])
        try:
            child, changes = mutate(parent, rng, steps=1 + k % 2)
        except ValueError:
            failures += 1
            continue
        assert child.validate() is child and len(changes) == 1 + k % 2
        children.add(child.fingerprint())
    assert len(children) > 150 and failures < 150
    assert set(MUTATIONS) >= {"activation", "rewire", "insert_node", "remove_node"}


def test_mutation_is_seeded():
    a = mutate(get_preset("gru"), random.Random(7), steps=2)
    b = mutate(get_preset("gru"), random.Random(7), steps=2)
    assert a[0] == b[0] and a[1] == b[1]


# ------------------------------------------------------------------------------ evolution
def _evolution(tmp_path, max_trials=9):
    hp = _space_hp()

    def encode(genotype):
        return {**SPACE.encode(genotype), "learning_rate": 0.01}

    def accept(genotype):
        try:
            size_for_budget(genotype, 6, 600)
        except ValueError as e:
            return str(e)
        return None

    oracle = EvolutionOracle(
        objective=keras_tuner.Objective("val_bpc", "min"),
        max_trials=max_trials,
        encode=encode,
        candidates=CandidateFilter(SPACE.decode, accept),
        seeds=[(n, get_preset(n)) for n in ("lstm", "gru", "mut1")],
        population=3,
        seed=5,
        hyperparameters=hp,
    )
    oracle._set_project_dir(str(tmp_path), "evolution")
    return oracle


def _run_trials(oracle, count):
    """Complete ``count`` trials with a made-up score: fewer nodes is better."""
    fps = []
    for _ in range(count):
        trial = oracle.create_trial("tuner0")
        genotype = SPACE.decode(trial.hyperparameters.values)
        fps.append(genotype.fingerprint())
        oracle.update_trial(trial.trial_id, {"val_bpc": float(len(genotype.nodes))})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return fps


def test_evolution_starts_from_the_seeds_then_mutates_the_best(tmp_path):
    oracle = _evolution(tmp_path)
    fps = _run_trials(oracle, 7)
    assert fps[:3] == [get_preset(n).fingerprint() for n in ("lstm", "gru", "mut1")]
    assert len(set(fps)) == 7  # no duplicate was handed out
    parents = [oracle.lineage[str(k)]["parent"] for k in range(3, 7)]
    assert set(parents) <= set(fps[:7])
    assert oracle.lineage["0"] == {"origin": "seed lstm"}
    assert all(oracle.lineage[str(k)]["mutations"] for k in range(3, 7))


def test_evolution_resumes_with_the_same_proposals(tmp_path):
    first = _evolution(tmp_path / "a")
    _run_trials(first, 5)
    expected = _run_trials(first, 2)
    # a second oracle reloading the state after 5 trials proposes the same next two
    second = _evolution(tmp_path / "b")
    _run_trials(second, 5)
    second.save()
    reloaded = _evolution(tmp_path / "b")
    reloaded.reload()
    assert reloaded.lineage == second.lineage and len(reloaded.trials) == 5
    assert _run_trials(reloaded, 2) == expected
