"""Mutations of cell genotypes, for the evolutionary search (Jozefowicz et al., 2015).

Each mutation changes one thing of one node (its activation, its combine, a term's source or
linear map, its bias), inserts a node on a term, removes a one-term node, or adds / drops a
term. The result is pruned of nodes that no longer reach an output and validated; a mutation
that breaks the graph raises ``ValueError`` (the search draws another).

Example:

>>> import random
>>> from seqlayers.genotype_presets import gru
>>> child, what = mutate(gru(), random.Random(0))
>>> child.validate() is child
True
"""

from __future__ import annotations

import random
from collections.abc import Callable

from seqlayers.genotype import (
    ACTIVATIONS,
    MAX_INPUTS,
    SOURCES,
    CellGenotype,
    GenotypeNode,
    NodeInput,
)
from tuning.encoding import prune


def _replace_node(genotype: CellGenotype, node: GenotypeNode) -> CellGenotype:
    nodes = tuple(node if n.name == node.name else n for n in genotype.nodes)
    return CellGenotype(nodes, genotype.h_out, genotype.c_out)


def _downstream(genotype: CellGenotype, name: str) -> set[str]:
    """``name`` and every node that reads it, directly or not."""
    readers: dict[str, set[str]] = {}
    for n in genotype.nodes:
        for t in n.inputs:
            readers.setdefault(t.source, set()).add(n.name)
    seen, stack = set(), [name]
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        stack.extend(readers.get(cur, ()))
    return seen


def _sources(genotype: CellGenotype, node: GenotypeNode) -> list[str]:
    """Sources ``node`` may read without closing a cycle."""
    banned = _downstream(genotype, node.name)
    allowed = [s for s in SOURCES if s != "c" or genotype.uses_c]
    return allowed + [n.name for n in genotype.nodes if n.name not in banned]


def _fresh_name(genotype: CellGenotype) -> str:
    names = set(genotype.node_map)
    k = 0
    while f"m{k}" in names:
        k += 1
    return f"m{k}"


def change_activation(g: CellGenotype, rng: random.Random) -> tuple[CellGenotype, str]:
    node = rng.choice(g.nodes)
    act = rng.choice([a for a in ACTIVATIONS if a != node.activation])
    new = GenotypeNode(node.name, node.inputs, node.combine, act, node.bias)
    return _replace_node(g, new), f"{node.name}: activation {node.activation} -> {act}"


def change_combine(g: CellGenotype, rng: random.Random) -> tuple[CellGenotype, str]:
    multi = [n for n in g.nodes if len(n.inputs) >= 2]
    if not multi:
        raise ValueError("no node with two or more terms")
    node = rng.choice(multi)
    options = ["add", "mul"] + (["blend"] if len(node.inputs) == 3 else [])
    combine = rng.choice([c for c in options if c != node.combine])
    new = GenotypeNode(node.name, node.inputs, combine, node.activation, node.bias)
    return _replace_node(g, new), f"{node.name}: combine {node.combine} -> {combine}"


def toggle_linear(g: CellGenotype, rng: random.Random) -> tuple[CellGenotype, str]:
    node = rng.choice(g.nodes)
    j = rng.randrange(len(node.inputs))
    terms = list(node.inputs)
    terms[j] = NodeInput(terms[j].source, not terms[j].linear)
    bias = node.bias and any(t.linear for t in terms)
    new = GenotypeNode(node.name, tuple(terms), node.combine, node.activation, bias)
    state = "on" if terms[j].linear else "off"
    return _replace_node(g, new), f"{node.name}: linear map on {terms[j].source} {state}"


def toggle_bias(g: CellGenotype, rng: random.Random) -> tuple[CellGenotype, str]:
    linear = [n for n in g.nodes if n.has_linear]
    if not linear:
        raise ValueError("no node with a linear map")
    node = rng.choice(linear)
    new = GenotypeNode(node.name, node.inputs, node.combine, node.activation, not node.bias)
    return _replace_node(g, new), f"{node.name}: bias {'on' if new.bias else 'off'}"


def rewire(g: CellGenotype, rng: random.Random) -> tuple[CellGenotype, str]:
    node = rng.choice(g.nodes)
    j = rng.randrange(len(node.inputs))
    used = {t.source for t in node.inputs}
    choices = [s for s in _sources(g, node) if s not in used]
    if not choices:
        raise ValueError("no other source")
    source = rng.choice(choices)
    terms = list(node.inputs)
    old = terms[j].source
    terms[j] = NodeInput(source, terms[j].linear)
    new = GenotypeNode(node.name, tuple(terms), node.combine, node.activation, node.bias)
    return _replace_node(g, new), f"{node.name}: input {old} -> {source}"


def add_input(g: CellGenotype, rng: random.Random) -> tuple[CellGenotype, str]:
    open_nodes = [n for n in g.nodes if len(n.inputs) < MAX_INPUTS]
    if not open_nodes:
        raise ValueError("every node has the most terms")
    node = rng.choice(open_nodes)
    used = {t.source for t in node.inputs}
    choices = [s for s in _sources(g, node) if s not in used]
    if not choices:
        raise ValueError("no other source")
    source = rng.choice(choices)
    linear = rng.random() < 0.7
    combine = node.combine if len(node.inputs) >= 2 else rng.choice(["add", "mul"])
    terms = node.inputs + (NodeInput(source, linear),)
    new = GenotypeNode(node.name, terms, combine, node.activation, node.bias)
    return _replace_node(g, new), f"{node.name}: new term {source}{' @ W' if linear else ''}"


def drop_input(g: CellGenotype, rng: random.Random) -> tuple[CellGenotype, str]:
    multi = [n for n in g.nodes if len(n.inputs) >= 2]
    if not multi:
        raise ValueError("no node with two or more terms")
    node = rng.choice(multi)
    j = rng.randrange(len(node.inputs))
    terms = node.inputs[:j] + node.inputs[j + 1 :]
    combine = "add" if node.combine == "blend" else node.combine
    bias = node.bias and any(t.linear for t in terms)
    new = GenotypeNode(node.name, terms, combine, node.activation, bias)
    return _replace_node(g, new), f"{node.name}: dropped term {node.inputs[j].source}"


def insert_node(g: CellGenotype, rng: random.Random) -> tuple[CellGenotype, str]:
    node = rng.choice(g.nodes)
    j = rng.randrange(len(node.inputs))
    term = node.inputs[j]
    name = _fresh_name(g)
    act = rng.choice(ACTIVATIONS)
    inserted = GenotypeNode(name, (NodeInput(term.source, True),), "add", act, rng.random() < 0.7)
    terms = list(node.inputs)
    terms[j] = NodeInput(name, False)
    bias = node.bias and any(t.linear for t in terms)
    new = GenotypeNode(node.name, tuple(terms), node.combine, node.activation, bias)
    nodes = []
    for n in g.nodes:
        if n.name == node.name:
            nodes.append(inserted)
            nodes.append(new)
        else:
            nodes.append(n)
    return (
        CellGenotype(tuple(nodes), g.h_out, g.c_out),
        f"{node.name}: new node {name} = {act}({term.source} @ W) on its input",
    )


def remove_node(g: CellGenotype, rng: random.Random) -> tuple[CellGenotype, str]:
    outputs = {g.h_out, g.c_out}
    single = [n for n in g.nodes if len(n.inputs) == 1 and n.name not in outputs]
    if not single:
        raise ValueError("no removable node")
    gone = rng.choice(single)
    src = gone.inputs[0]
    nodes = []
    for n in g.nodes:
        if n.name == gone.name:
            continue
        terms = tuple(
            NodeInput(src.source, t.linear or src.linear) if t.source == gone.name else t
            for t in n.inputs
        )
        nodes.append(GenotypeNode(n.name, terms, n.combine, n.activation, n.bias))
    return CellGenotype(tuple(nodes), g.h_out, g.c_out), f"removed node {gone.name}"


MUTATIONS: dict[str, Callable[[CellGenotype, random.Random], tuple[CellGenotype, str]]] = {
    "activation": change_activation,
    "combine": change_combine,
    "linear": toggle_linear,
    "bias": toggle_bias,
    "rewire": rewire,
    "add_input": add_input,
    "drop_input": drop_input,
    "insert_node": insert_node,
    "remove_node": remove_node,
}


def mutate(
    genotype: CellGenotype, rng: random.Random, *, steps: int = 1
) -> tuple[CellGenotype, list[str]]:
    """Apply ``steps`` random mutations; returns the valid child and what changed.

    Raises:
        ValueError: when a mutation cannot apply or leaves an invalid graph.
    """
    child = genotype
    changes = []
    for _ in range(steps):
        op = rng.choice(list(MUTATIONS))
        child, what = MUTATIONS[op](child, rng)
        child = prune(child)
        changes.append(what)
    child = CellGenotype(child.nodes, child.h_out, child.c_out).validate()
    return child, changes
