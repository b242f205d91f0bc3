"""A searchable recurrent-cell description: ``CellGenotype``.

A genotype is a small computation graph over the step inputs ``x`` (x_t), ``h`` (h_{t-1}) and,
optionally, ``c`` (c_{t-1}). Each node computes

    node = activation( combine( term_1, ..., term_k ) [+ b_node] ),   1 <= k <= 3

where ``term_i`` is an input source (``x``, ``h``, ``c`` or another node), either bare or through
its own linear map ``source @ W_<source>_<node>`` of shape ``(fan_in, units)``. The search space:

- ``combine``: ``add`` (sum of the terms), ``mul`` (elementwise product) and ``blend`` — exactly
  three terms ``(a, b, g)``, ``blend(a, b, g) = g * a + (1 - g) * b``. ``blend`` is the one
  extension beyond ``+``/``*``: it is the gated interpolation that GRU, MUT1-3 (and highway
  layers) need for their ``1 - z``, in one node instead of three.
- ``activation``: ``tanh``, ``sigmoid``, ``relu``, ``identity``.
- ``bias``: a node with at least one linear map may add a bias ``b_<node>`` of shape ``(units,)``.
- outputs: ``h_out`` names the node that is the new ``h`` (and the cell's output); ``c_out`` the
  node that is the new ``c`` when the genotype reads ``c``.

A bare ``x`` term (no linear map) needs input width == units; cells check it when they build.

Genotypes are frozen dataclasses, so they hash and compare by value; ``validate()`` rejects
graphs that cannot be built (before any training), ``fingerprint()`` dedupes structurally
identical graphs, and ``param_count`` / ``units_for_budget`` size a candidate to a budget.

Example:

>>> g = CellGenotype(
...     nodes=(GenotypeNode("h_next", (NodeInput("x", True), NodeInput("h", True)),
...                         activation="tanh", bias=True),),
...     h_out="h_next",
... )
>>> g.validate().param_count(input_dim=3, units=4)
32

Reference:
    Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017.
    Jozefowicz, Zaremba & Sutskever, "An Empirical Exploration of Recurrent Network
    Architectures", ICML 2015.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SOURCES = ("x", "h", "c")
ACTIVATIONS = ("tanh", "sigmoid", "relu", "identity")
COMBINES = ("add", "mul", "blend")
MAX_INPUTS = 3
FORMAT = "seqlayers.CellGenotype"
FORMAT_VERSION = 1

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Ties between structurally identical nodes are broken by trying every labelling up to this many.
_MAX_CANONICAL_PERMUTATIONS = 5040


@dataclasses.dataclass(frozen=True)
class NodeInput:
    """One term of a node: a source, bare or through its own linear map.

    Args:
        source: ``"x"``, ``"h"``, ``"c"`` or the name of another node.
        linear: whether the term is ``source @ W_<source>_<node>`` instead of ``source``.
    """

    source: str
    linear: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "linear": self.linear}


def _as_input(value: Any) -> NodeInput:
    if isinstance(value, NodeInput):
        return value
    if isinstance(value, str):
        return NodeInput(value, False)
    if isinstance(value, Mapping):
        unknown = set(value) - {"source", "linear"}
        if unknown:
            raise ValueError(f"node input: unknown keys {sorted(unknown)}. Received: {dict(value)}")
        if "source" not in value:
            raise ValueError(f"node input: missing 'source'. Received: {dict(value)}")
        return NodeInput(str(value["source"]), bool(value.get("linear", False)))
    raise TypeError(
        "node input must be a NodeInput, a source name or a dict "
        f"{{'source': ..., 'linear': ...}}. Received: {value!r}"
    )


@dataclasses.dataclass(frozen=True)
class GenotypeNode:
    """One node of a cell genotype: ``activation(combine(terms) [+ b])``.

    Args:
        name: identifier (letters, digits, ``_``; not ``x``, ``h`` or ``c``), used in weight names.
        inputs: 1 to 3 terms (``NodeInput``, a bare source name, or a dict); ``blend`` takes
            exactly 3, ordered ``(a, b, g)``.
        combine: ``"add"``, ``"mul"`` or ``"blend"``.
        activation: ``"tanh"``, ``"sigmoid"``, ``"relu"`` or ``"identity"``.
        bias: add ``b_<name>``; only allowed when some term has a linear map.
    """

    name: str
    inputs: tuple[NodeInput, ...]
    combine: str = "add"
    activation: str = "identity"
    bias: bool = False

    def __post_init__(self) -> None:
        inputs = self.inputs
        if isinstance(inputs, (str, NodeInput, Mapping)):
            inputs = (inputs,)
        object.__setattr__(self, "inputs", tuple(_as_input(i) for i in inputs))

    @property
    def has_linear(self) -> bool:
        return any(i.linear for i in self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "inputs": [i.to_dict() for i in self.inputs],
            "combine": self.combine,
            "activation": self.activation,
            "bias": self.bias,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenotypeNode:
        unknown = set(data) - {"name", "inputs", "combine", "activation", "bias"}
        if unknown:
            raise ValueError(f"node {data.get('name')!r}: unknown keys {sorted(unknown)}")
        for key in ("name", "inputs"):
            if key not in data:
                raise ValueError(f"node {data.get('name')!r}: missing field '{key}'")
        return cls(
            name=str(data["name"]),
            inputs=tuple(_as_input(i) for i in data["inputs"]),
            combine=str(data.get("combine", "add")),
            activation=str(data.get("activation", "identity")),
            bias=bool(data.get("bias", False)),
        )


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    """A weight a genotype needs: ``name``, ``shape`` and ``kind`` (kernel/recurrent/bias)."""

    name: str
    shape: tuple[int, ...]
    kind: str
    node: str
    source: str | None


@dataclasses.dataclass(frozen=True)
class CellGenotype:
    """A recurrent cell as a graph over ``x``, ``h`` (and ``c``); see the module docstring.

    Construction does not validate (a search builds candidates first and then rejects the
    invalid ones); call ``validate()``. ``name`` is a label only: it is not part of equality
    nor of the fingerprint.

    Args:
        nodes: the nodes, in any order (they are evaluated in dependency order).
        h_out: the node computing the new ``h`` (also the cell output).
        c_out: the node computing the new ``c``; set exactly when some node reads ``c``.
        name: optional label, e.g. the preset name.
    """

    nodes: tuple[GenotypeNode, ...]
    h_out: str | None = None
    c_out: str | None = None
    name: str = dataclasses.field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "nodes",
            tuple(
                n if isinstance(n, GenotypeNode) else GenotypeNode.from_dict(n) for n in self.nodes
            ),
        )

    # ----------------------------------------------------------------------------- structure
    @property
    def uses_c(self) -> bool:
        """Whether the cell carries a second state ``c``."""
        return self.c_out is not None or any(i.source == "c" for n in self.nodes for i in n.inputs)

    @property
    def node_map(self) -> dict[str, GenotypeNode]:
        return {n.name: n for n in self.nodes}

    @property
    def bare_x_nodes(self) -> tuple[str, ...]:
        """Nodes with a bare ``x`` term; such cells need input width == units."""
        return tuple(
            n.name for n in self.nodes if any(i.source == "x" and not i.linear for i in n.inputs)
        )

    def topological_order(self) -> tuple[GenotypeNode, ...]:
        """The nodes in an evaluation order (stable w.r.t. the listed order); validates first."""
        self.validate()
        return self._topological_order()

    def _topological_order(self) -> tuple[GenotypeNode, ...]:
        nodes = self.node_map
        done: set[str] = set()
        order: list[GenotypeNode] = []

        def visit(name: str) -> None:
            if name in done or name not in nodes:
                return
            for i in nodes[name].inputs:
                visit(i.source)
            done.add(name)
            order.append(nodes[name])

        for n in self.nodes:
            visit(n.name)
        return tuple(order)

    # ----------------------------------------------------------------------------- validation
    def validate(self) -> CellGenotype:
        """Checks that the graph can be built; returns ``self``.

        Raises:
            ValueError: naming the offending node or field — bad names, unknown combine or
                activation, wrong arity, repeated or undefined inputs, a bias without a linear
                map, missing or dangling outputs, cycles, nodes or inputs that do not reach an
                output, clashing weight names.
        """
        if not isinstance(self.nodes, tuple) or not self.nodes:
            raise ValueError("nodes: a genotype needs at least one node")
        names: set[str] = set()
        for node in self.nodes:
            self._validate_node(node, names)
            names.add(node.name)
        for node in self.nodes:
            for term in node.inputs:
                if term.source not in SOURCES and term.source not in names:
                    raise ValueError(
                        f"node '{node.name}': input '{term.source}' is not defined "
                        f"(known: {', '.join(list(SOURCES) + sorted(names))})"
                    )
                if term.source == "c" and self.c_out is None:
                    raise ValueError(
                        f"c_out: missing output — node '{node.name}' reads 'c', so c_out must "
                        "name the node computing the new c"
                    )
        if not self.h_out:
            raise ValueError("h_out: missing output — name the node that computes the new h")
        for field in ("h_out", "c_out"):
            value = getattr(self, field)
            if value is not None and value not in names:
                raise ValueError(
                    f"{field}: '{value}' is not a node (nodes: {', '.join(sorted(names))})"
                )
        if self.c_out is not None and self.c_out == self.h_out:
            raise ValueError(f"c_out: must differ from h_out ('{self.h_out}')")
        self._check_acyclic()
        self._check_reachability()
        seen: dict[str, str] = {}
        for spec in self._weight_specs(1, 1):
            if spec.name in seen:
                raise ValueError(
                    f"node '{spec.node}': weight name '{spec.name}' clashes with one of node "
                    f"'{seen[spec.name]}'; rename a node"
                )
            seen[spec.name] = spec.node
        return self

    @staticmethod
    def _validate_node(node: GenotypeNode, names: set[str]) -> None:
        if not isinstance(node.name, str) or not _NAME_RE.match(node.name):
            raise ValueError(
                f"node name {node.name!r}: must start with a letter and hold only letters, "
                "digits and '_'"
            )
        if node.name in SOURCES:
            raise ValueError(
                f"node '{node.name}': name is reserved for an input ({', '.join(SOURCES)})"
            )
        if node.name in names:
            raise ValueError(f"node '{node.name}': name is used by two nodes")
        if node.combine not in COMBINES:
            raise ValueError(
                f"node '{node.name}': unknown combine '{node.combine}' "
                f"(choose from {', '.join(COMBINES)})"
            )
        if node.activation not in ACTIVATIONS:
            raise ValueError(
                f"node '{node.name}': unknown activation '{node.activation}' "
                f"(choose from {', '.join(ACTIVATIONS)})"
            )
        arity = len(node.inputs)
        if not 1 <= arity <= MAX_INPUTS:
            raise ValueError(
                f"node '{node.name}': inputs must hold 1 to {MAX_INPUTS} terms. Received: {arity}"
            )
        if node.combine == "blend" and arity != 3:
            raise ValueError(
                f"node '{node.name}': combine 'blend' takes exactly 3 inputs (a, b, g). "
                f"Received: {arity}"
            )
        sources = [i.source for i in node.inputs]
        for s in sources:
            if sources.count(s) > 1:
                raise ValueError(f"node '{node.name}': input '{s}' appears more than once")
        if node.bias and not node.has_linear:
            raise ValueError(f"node '{node.name}': bias needs at least one input with a linear map")

    def _check_acyclic(self) -> None:
        nodes = self.node_map
        state: dict[str, int] = {}  # 1 = on the stack, 2 = done

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2 or name not in nodes:
                return
            if state.get(name) == 1:
                cycle = path[path.index(name) :] + [name]
                raise ValueError(f"node '{name}': nodes form a cycle {' -> '.join(cycle)}")
            state[name] = 1
            for term in nodes[name].inputs:
                visit(term.source, path + [name])
            state[name] = 2

        for n in self.nodes:
            visit(n.name, [])

    def _check_reachability(self) -> None:
        nodes = self.node_map
        reached: set[str] = set()
        stack = [o for o in (self.h_out, self.c_out) if o is not None]
        while stack:
            name = stack.pop()
            if name in reached:
                continue
            reached.add(name)
            if name in nodes:
                stack.extend(i.source for i in nodes[name].inputs)
        outputs = "h_out" + (" or c_out" if self.c_out is not None else "")
        for n in self.nodes:
            if n.name not in reached:
                raise ValueError(f"node '{n.name}': unused — it does not reach {outputs}")
        required = ("x", "h", "c") if self.c_out is not None else ("x", "h")
        for source in required:
            if source not in reached:
                raise ValueError(f"input '{source}': does not reach {outputs}")

    # ----------------------------------------------------------------------------- weights
    def weight_specs(self, input_dim: int, units: int) -> tuple[WeightSpec, ...]:
        """The weights a cell with this genotype creates, in creation order (validates first).

        ``W_<source>_<node>`` has shape ``(input_dim or units, units)``; ``b_<node>`` ``(units,)``.

        Raises:
            ValueError: if the genotype is invalid, or a node uses a bare ``x`` while
                ``input_dim != units``.
        """
        self.validate()
        _check_dims(input_dim, units)
        if input_dim != units and self.bare_x_nodes:
            raise ValueError(
                f"node '{self.bare_x_nodes[0]}': uses x without a linear map, which needs input "
                f"width == units. Received: input_dim={input_dim}, units={units}"
            )
        return self._weight_specs(input_dim, units)

    def _weight_specs(self, input_dim: int, units: int) -> tuple[WeightSpec, ...]:
        specs = []
        for node in self.nodes:
            for term in node.inputs:
                if term.linear:
                    fan_in = input_dim if term.source == "x" else units
                    kind = "kernel" if term.source == "x" else "recurrent"
                    specs.append(
                        WeightSpec(
                            f"W_{term.source}_{node.name}",
                            (fan_in, units),
                            kind,
                            node.name,
                            term.source,
                        )
                    )
            if node.bias:
                specs.append(WeightSpec(f"b_{node.name}", (units,), "bias", node.name, None))
        return tuple(specs)

    def param_count(self, input_dim: int, units: int) -> int:
        """Number of scalars in the weights of a cell with this genotype."""
        return param_count(self, input_dim, units)

    # ----------------------------------------------------------------------------- fingerprint
    def canonical(self) -> list[Any]:
        """A naming- and order-independent encoding of the graph (validates first).

        Single-input nodes count as ``add``; pass-through nodes (one bare input, identity, no
        bias) are dissolved; ``add``/``mul`` terms are unordered, ``blend`` terms ordered. Nodes
        are ordered by their structural hash, ties broken by trying every labelling (up to
        5040; beyond that listed order breaks the ties, so fingerprints of such graphs may
        depend on node order).
        """
        self.validate()
        nodes = self.node_map

        def resolve(source: str) -> str:
            while source in nodes:
                n = nodes[source]
                if (
                    len(n.inputs) == 1
                    and not n.inputs[0].linear
                    and not n.bias
                    and (n.activation == "identity")
                ):
                    source = n.inputs[0].source
                else:
                    break
            return source

        kept = []
        for n in self._topological_order():
            if resolve(n.name) != n.name:
                continue
            combine = "add" if len(n.inputs) == 1 else n.combine
            terms = tuple((resolve(i.source), i.linear) for i in n.inputs)
            kept.append((n.name, combine, n.activation, n.bias, terms))
        outputs = (resolve(self.h_out), resolve(self.c_out) if self.c_out is not None else None)

        sig: dict[str, str] = {s: s for s in SOURCES}
        for name, combine, act, bias, terms in kept:
            term_sigs = [[sig[s], lin] for s, lin in terms]
            if combine != "blend":
                term_sigs.sort()
            sig[name] = _sha([combine, act, bias, term_sigs])

        groups: dict[str, list[str]] = {}
        for name, *_ in kept:
            groups.setdefault(sig[name], []).append(name)
        ordered_groups = [groups[s] for s in sorted(groups)]
        n_perm = math.prod(math.factorial(len(g)) for g in ordered_groups)
        if n_perm > _MAX_CANONICAL_PERMUTATIONS:
            choices = [[tuple(g)] for g in ordered_groups]
        else:
            choices = [list(itertools.permutations(g)) for g in ordered_groups]
        by_name = {k[0]: k for k in kept}
        best = None
        for combo in itertools.product(*choices):
            order = [name for group in combo for name in group]
            index = {name: i for i, name in enumerate(order)}

            def ref(source: str, index: dict[str, int] = index) -> Any:
                return index.get(source, source)

            encoded = []
            for name in order:
                _, combine, act, bias, terms = by_name[name]
                refs = [[ref(s), lin] for s, lin in terms]
                if combine != "blend":
                    refs.sort(key=lambda t: json.dumps(t))
                encoded.append([combine, act, bias, refs])
            candidate = [
                encoded,
                [ref(outputs[0]), None if outputs[1] is None else ref(outputs[1])],
            ]
            key = json.dumps(candidate, sort_keys=True)
            if best is None or key < best[0]:
                best = (key, candidate)
        return best[1]

    def fingerprint(self) -> str:
        """Stable 16-hex-digit hash of ``canonical()``: equal for structurally equal graphs."""
        return _sha(self.canonical())[:16]

    # ----------------------------------------------------------------------------- text
    def equations(self) -> str:
        """The cell as equations, one node a line, in evaluation order (validates first)."""
        lines = []
        for node in self.topological_order():
            wrap = "{}" if node.combine == "add" else "({})"
            terms = [
                wrap.format(f"{i.source} @ W_{i.source}_{node.name}") if i.linear else i.source
                for i in node.inputs
            ]
            if node.combine == "blend":
                a, b, g = terms
                expr = f"{g} * {a} + (1 - {g}) * {b}"
            else:
                expr = (" + " if node.combine == "add" else " * ").join(terms)
            if node.bias:
                expr += f" + b_{node.name}"
            if node.activation != "identity":
                expr = f"{node.activation}({expr})"
            lines.append(f"{node.name} = {expr}")
        lines.append(f"h' = {self.h_out}")
        if self.c_out is not None:
            lines.append(f"c' = {self.c_out}")
        return "\n".join(lines)

    # ----------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """A plain-JSON dict; ``from_dict`` reads it back."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "name": self.name,
            "nodes": [n.to_dict() for n in self.nodes],
            "h_out": self.h_out,
            "c_out": self.c_out,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CellGenotype:
        """Reads ``to_dict()`` output (no validation; call ``validate()``).

        Raises:
            ValueError: unknown keys, a missing ``nodes`` field or another format/version.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"genotype must be a dict. Received: {type(data).__name__}")
        unknown = set(data) - {"format", "version", "name", "nodes", "h_out", "c_out"}
        if unknown:
            raise ValueError(f"genotype: unknown keys {sorted(unknown)}")
        if data.get("format", FORMAT) != FORMAT:
            raise ValueError(f"format: expected '{FORMAT}'. Received: {data.get('format')!r}")
        if data.get("version", FORMAT_VERSION) != FORMAT_VERSION:
            raise ValueError(
                f"version: expected {FORMAT_VERSION}. Received: {data.get('version')!r}"
            )
        if "nodes" not in data or not isinstance(data["nodes"], Sequence):
            raise ValueError("nodes: missing or not a list")
        return cls(
            nodes=tuple(GenotypeNode.from_dict(n) for n in data["nodes"]),
            h_out=data.get("h_out"),
            c_out=data.get("c_out"),
            name=str(data.get("name") or ""),
        )

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> CellGenotype:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> Path:
        """Writes the JSON to ``path`` (via a temporary file and a rename); returns the path."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json() + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> CellGenotype:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()


def _check_dims(input_dim: int, units: int) -> None:
    for label, value in (("input_dim", input_dim), ("units", units)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{label} must be a positive integer. Received: {label}={value!r}")


def param_count(genotype: CellGenotype, input_dim: int, units: int) -> int:
    """Number of scalars in the weights of ``GenotypeCell(units, genotype)`` on ``input_dim``.

    Raises:
        ValueError: if the genotype is invalid or uses a bare ``x`` with ``input_dim != units``.
    """
    return sum(math.prod(s.shape) for s in genotype.weight_specs(input_dim, units))


def units_for_budget(
    genotype: CellGenotype,
    input_dim: int,
    budget: int,
    *,
    min_units: int = 1,
    max_units: int = 1 << 16,
) -> int:
    """The largest ``units`` in ``[min_units, max_units]`` whose cell has ``<= budget`` params.

    A genotype with a bare ``x`` term only builds with ``units == input_dim``, so that is the
    only candidate for it.

    Raises:
        ValueError: if no ``units`` in range fits the budget.
    """
    _check_dims(input_dim, min_units)
    if genotype.validate().bare_x_nodes:
        if (
            min_units <= input_dim <= max_units
            and param_count(genotype, input_dim, input_dim) <= budget
        ):
            return input_dim
        raise ValueError(
            f"budget: genotype uses a bare x (node '{genotype.bare_x_nodes[0]}'), so units must "
            f"be input_dim={input_dim}, which needs "
            f"{param_count(genotype, input_dim, input_dim)} params > budget={budget}"
        )
    if param_count(genotype, input_dim, min_units) > budget:
        raise ValueError(
            f"budget: even units={min_units} needs "
            f"{param_count(genotype, input_dim, min_units)} params > budget={budget}"
        )
    lo, hi = min_units, max_units  # param_count grows with units: find the last that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if param_count(genotype, input_dim, mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def random_genotype(
    seed: int | random.Random | None = None,
    *,
    num_nodes: int = 4,
    use_c: bool = False,
    allow_bare_x: bool = False,
    p_linear: float = 0.6,
) -> CellGenotype:
    """Samples a valid genotype (by construction; ``validate()`` passes).

    Nodes ``n0 .. n{num_nodes-1}`` each consume one not-yet-used value first (so everything
    reaches the output), then random other sources; ``add`` nodes then merge what is left
    into ``h_out``. With ``use_c`` the last sampled node is ``c_out``.

    Args:
        seed: an int seed or a ``random.Random``.
        num_nodes: sampled nodes before the merge nodes (>= 1; >= 2 with ``use_c``).
        use_c: carry a second state ``c``.
        allow_bare_x: allow ``x`` terms without a linear map (then input width must == units).
        p_linear: probability that a term gets a linear map.
    """
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    if num_nodes < (2 if use_c else 1):
        raise ValueError(f"num_nodes must be >= {2 if use_c else 1}. Received: {num_nodes}")
    pool = ["x", "h"] + (["c"] if use_c else [])
    pending = list(pool)
    nodes: list[GenotypeNode] = []

    def make_term(source: str) -> NodeInput:
        linear = rng.random() < p_linear or (source == "x" and not allow_bare_x)
        return NodeInput(source, linear)

    def make_node(name: str, sources: list[str], combine: str, activation: str) -> GenotypeNode:
        terms = tuple(make_term(s) for s in sources)
        bias = any(t.linear for t in terms) and rng.random() < 0.7
        return GenotypeNode(name, terms, combine, activation, bias)

    for k in range(num_nodes):
        first = pending.pop(rng.randrange(len(pending))) if pending else rng.choice(pool)
        others = [s for s in pool if s != first]
        arity = rng.randint(1, min(MAX_INPUTS, len(others) + 1))
        sources = [first] + rng.sample(others, arity - 1)
        for s in sources[1:]:
            if s in pending:
                pending.remove(s)
        if arity == 3:
            combine = rng.choice(COMBINES)
        else:
            combine = rng.choice(("add", "mul")) if arity == 2 else "add"
        nodes.append(make_node(f"n{k}", sources, combine, rng.choice(ACTIVATIONS)))
        pool.append(f"n{k}")
        pending.append(f"n{k}")
    c_out = None
    if use_c:
        c_out = nodes[-1].name
        pending.remove(c_out)  # an output: need not be consumed
    k = num_nodes
    while True:
        if len(pending) == 1 and pending[0] not in SOURCES:
            h_out = pending[0]
            break
        if not pending:  # only c_out was left: h reads it
            pending = [c_out]
        take = [pending.pop(0) for _ in range(min(MAX_INPUTS, len(pending)))]
        nodes.append(make_node(f"n{k}", take, "add", rng.choice(("tanh", "sigmoid", "identity"))))
        pending.append(f"n{k}")
        pool.append(f"n{k}")
        k += 1
    return CellGenotype(tuple(nodes), h_out=h_out, c_out=c_out).validate()
