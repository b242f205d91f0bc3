"""Cell genotypes as keras-tuner hyperparameters: ``GenotypeSpace``.

A genotype with at most ``max_nodes`` nodes is written as one value per choice, node by node in
evaluation order (slot ``k`` is node ``n{k}``):

=====================  ============================================================================
``n{k}_arity``         how many terms the node sums / multiplies / blends: 1, 2 or 3
``n{k}_combine2``      ``add`` or ``mul`` (only when the arity is 2: a ``conditional_scope``)
``n{k}_combine3``      ``add``, ``mul`` or ``blend`` (only when the arity is 3)
``n{k}_in{j}``         term ``j``'s source: ``x``, ``h``, ``c`` or an earlier slot ``n0..n{k-1}``
                       (terms 1 and 2 exist only when the arity is high enough)
``n{k}_in{j}_linear``  whether term ``j`` goes through its own matrix ``W_<source>_n{k}``
``n{k}_act``           ``tanh``, ``sigmoid``, ``relu`` or ``identity``
``n{k}_bias``          add ``b_n{k}`` (kept only when some term is linear)
``h_out``, ``c_out``   the slots holding the new ``h`` and the new ``c`` (``c_out`` may be ``none``)
=====================  ============================================================================

Sources only point back to earlier slots, so every assignment is acyclic. Decoding keeps the
nodes that reach an output (unused slots are dropped, as in NAS cells) and then validates, so
an assignment can still be rejected (a repeated input, ``x`` or ``h`` not reaching the output,
``c`` read without ``c_out``...). Encoding a valid genotype and decoding it back gives the same
graph with its nodes renamed ``n0, n1, ...`` in evaluation order (:func:`canonical_names`), so the
LSTM, GRU and MUT presets are points of the space.

Example:

>>> from seqlayers.genotype_presets import lstm
>>> space = GenotypeSpace(max_nodes=9)
>>> values = space.encode(lstm())
>>> space.decode(values) == canonical_names(lstm())
True
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from seqlayers.genotype import ACTIVATIONS, MAX_INPUTS, CellGenotype, GenotypeNode, NodeInput

NO_C = "none"
COMBINES_BY_ARITY = {2: ("add", "mul"), 3: ("add", "mul", "blend")}


def slot(k: int) -> str:
    """The node name of slot ``k`` (``n{k}``)."""
    return f"n{k}"


def prune(genotype: CellGenotype) -> CellGenotype:
    """``genotype`` without the nodes that reach neither ``h_out`` nor ``c_out`` (order kept)."""
    nodes = genotype.node_map
    reached: set[str] = set()
    stack = [o for o in (genotype.h_out, genotype.c_out) if o is not None]
    while stack:
        name = stack.pop()
        if name in reached or name not in nodes:
            continue
        reached.add(name)
        stack.extend(term.source for term in nodes[name].inputs)
    kept = tuple(n for n in genotype.nodes if n.name in reached)
    return CellGenotype(kept, genotype.h_out, genotype.c_out, name=genotype.name)


def canonical_names(genotype: CellGenotype) -> CellGenotype:
    """The same graph with nodes renamed ``n0, n1, ...`` in evaluation order.

    Single-input nodes get ``combine="add"`` (one term: the combine does nothing), which is how
    :meth:`GenotypeSpace.decode` writes them.
    """
    order = genotype.topological_order()
    rename = {node.name: slot(k) for k, node in enumerate(order)}
    nodes = tuple(
        GenotypeNode(
            rename[node.name],
            tuple(NodeInput(rename.get(t.source, t.source), t.linear) for t in node.inputs),
            "add" if len(node.inputs) == 1 else node.combine,
            node.activation,
            node.bias,
        )
        for node in order
    )
    c_out = None if genotype.c_out is None else rename[genotype.c_out]
    return CellGenotype(nodes, rename[genotype.h_out], c_out, name=genotype.name)


class GenotypeSpace:
    """The genotypes of at most ``max_nodes`` nodes, as keras-tuner hyperparameters.

    Args:
        max_nodes: node slots (9 holds the LSTM preset, the largest).
        use_c: whether genotypes may carry a second state ``c`` (LSTM-like cells).
        bare_x: whether ``x`` may enter a node without a linear map (MUT1, MUT2). Such a
            cell needs inputs exactly ``units`` wide, which the apps do not arrange for a
            ``genotype:PATH`` cell; a search meant for the apps leaves it off.

    Example:

    >>> import keras_tuner
    >>> hp = keras_tuner.HyperParameters()
    >>> GenotypeSpace(max_nodes=4).declare(hp)
    >>> sorted(hp.values)[:3]
    ['c_out', 'h_out', 'n0_act']
    """

    def __init__(self, max_nodes: int = 9, *, use_c: bool = True, bare_x: bool = True) -> None:
        if (
            not isinstance(max_nodes, int)
            or isinstance(max_nodes, bool)
            or not 1 <= max_nodes <= 32
        ):
            raise ValueError(f"max_nodes must be an integer in [1, 32]. Received: {max_nodes!r}")
        self.max_nodes = max_nodes
        self.use_c = bool(use_c)
        self.bare_x = bool(bare_x)
        self._defaults: dict[str, Any] | None = None

    # ------------------------------------------------------------------ the hyperparameters
    def sources(self, k: int) -> list[str]:
        """The sources slot ``k`` may read: the step inputs and the earlier slots."""
        if not hasattr(self, "_sources"):
            inputs = ["x", "h"] + (["c"] if self.use_c else [])
            self._sources = [inputs + [slot(j) for j in range(i)] for i in range(self.max_nodes)]
        return list(self._sources[k])

    def declare(self, hp: Any) -> None:
        """Declare every hyperparameter of the space on ``hp`` (a ``keras_tuner.HyperParameters``).

        The combine and the second and third terms depend on the arity: they are declared in
        ``hp.conditional_scope("n{k}_arity", ...)``, so oracles only sample them when active.
        """
        arities = list(range(1, MAX_INPUTS + 1))
        for k in range(self.max_nodes):
            name = slot(k)
            hp.Choice(f"{name}_arity", arities, default=1)
            for arity, combines in COMBINES_BY_ARITY.items():
                with hp.conditional_scope(f"{name}_arity", [arity]):
                    hp.Choice(f"{name}_combine{arity}", list(combines), default="add")
            for j in range(MAX_INPUTS):
                needs = [a for a in arities if a > j]
                with hp.conditional_scope(f"{name}_arity", needs):
                    hp.Choice(f"{name}_in{j}", self.sources(k), default="x")
                    hp.Boolean(f"{name}_in{j}_linear", default=True)
            hp.Choice(f"{name}_act", list(ACTIVATIONS), default="tanh")
            hp.Boolean(f"{name}_bias", default=True)
        outputs = [slot(k) for k in range(self.max_nodes)]
        hp.Choice("h_out", outputs, default=outputs[0])
        if self.use_c:
            hp.Choice("c_out", [NO_C] + outputs, default=NO_C)

    def random_values(self, rng: random.Random) -> dict[str, Any]:
        """A random point, distributed as keras-tuner's random search draws *valid* points.

        keras-tuner draws every active hyperparameter uniformly (a fair coin for booleans)
        and the search rejects what is not a valid graph. Here the draws that are rejected
        for sure are never made — a node's sources are drawn without repetition, ``c_out``
        differs from ``h_out``, and when the space excludes a bare ``x`` every ``x`` term is
        linear — which leaves the distribution over accepted points unchanged (a uniform draw
        conditioned on those events) while making valid points about 8 times likelier and
        each draw far cheaper than going through ``HyperParameters``.
        """
        values: dict[str, Any] = {}
        for k in range(self.max_nodes):
            name = slot(k)
            sources = self.sources(k)
            arity = rng.choice(range(1, min(MAX_INPUTS, len(sources)) + 1))
            values[f"{name}_arity"] = arity
            if arity in COMBINES_BY_ARITY:
                values[f"{name}_combine{arity}"] = rng.choice(COMBINES_BY_ARITY[arity])
            for j, source in enumerate(rng.sample(sources, arity)):
                values[f"{name}_in{j}"] = source
                linear = rng.random() < 0.5
                values[f"{name}_in{j}_linear"] = linear or (source == "x" and not self.bare_x)
            values[f"{name}_act"] = rng.choice(ACTIVATIONS)
            values[f"{name}_bias"] = rng.random() < 0.5
        outputs = [slot(k) for k in range(self.max_nodes)]
        values["h_out"] = rng.choice(outputs)
        if self.use_c:
            values["c_out"] = rng.choice([NO_C] + [o for o in outputs if o != values["h_out"]])
        return values

    @property
    def defaults(self) -> dict[str, Any]:
        """The default value of every hyperparameter that is active with the defaults."""
        if self._defaults is None:
            import keras_tuner

            hp = keras_tuner.HyperParameters()
            self.declare(hp)
            self._defaults = dict(hp.values)
        return dict(self._defaults)

    def names(self) -> list[str]:
        """Every hyperparameter name of the space."""
        names = []
        for k in range(self.max_nodes):
            n = slot(k)
            names += [f"{n}_arity", f"{n}_combine2", f"{n}_combine3"]
            for j in range(MAX_INPUTS):
                names += [f"{n}_in{j}", f"{n}_in{j}_linear"]
            names += [f"{n}_act", f"{n}_bias"]
        return names + ["h_out"] + (["c_out"] if self.use_c else [])

    # ------------------------------------------------------------------ genotype <-> values
    def check_encodable(self, genotype: CellGenotype) -> None:
        """Raises ``ValueError`` when ``genotype`` (valid) is not a point of this space."""
        count = len(genotype.nodes)
        if count > self.max_nodes:
            raise ValueError(
                f"nodes: the genotype has {count} nodes; this space holds at most "
                f"{self.max_nodes} (raise --max-nodes)"
            )
        if genotype.uses_c and not self.use_c:
            raise ValueError("c_out: the genotype carries c, which this space excludes")
        if genotype.bare_x_nodes and not self.bare_x:
            raise ValueError(
                f"node '{genotype.bare_x_nodes[0]}': reads x without a linear map, which this "
                "space excludes (allow it with --bare-x)"
            )

    def check_candidate(self, genotype: CellGenotype) -> None:
        """:meth:`check_encodable`, and refuse a dead state: a ``c`` that never reaches
        ``h_out`` cannot change the output (its weights would get no gradient)."""
        self.check_encodable(genotype)
        if genotype.uses_c and "c" not in _ancestors(genotype, genotype.h_out):
            raise ValueError("input 'c': does not reach h_out, so the state c is dead")

    def encode(self, genotype: CellGenotype) -> dict[str, Any]:
        """The hyperparameter values of ``genotype`` (validated first).

        Unused slots get the default values (they do not reach an output, so decoding drops
        them).

        Raises:
            ValueError: an invalid genotype, or one with too many nodes / a ``c`` the space
                excludes.
        """
        genotype.validate()
        self.check_encodable(genotype)
        order = genotype.topological_order()
        rename = {node.name: slot(k) for k, node in enumerate(order)}
        values = self.defaults
        for k, node in enumerate(order):
            name = slot(k)
            arity = len(node.inputs)
            values[f"{name}_arity"] = arity
            for a in COMBINES_BY_ARITY:
                values.pop(f"{name}_combine{a}", None)
            if arity in COMBINES_BY_ARITY:
                values[f"{name}_combine{arity}"] = node.combine
            for j in range(MAX_INPUTS):
                values.pop(f"{name}_in{j}", None)
                values.pop(f"{name}_in{j}_linear", None)
            for j, term in enumerate(node.inputs):
                values[f"{name}_in{j}"] = rename.get(term.source, term.source)
                values[f"{name}_in{j}_linear"] = bool(term.linear)
            values[f"{name}_act"] = node.activation
            values[f"{name}_bias"] = bool(node.bias)
        values["h_out"] = rename[genotype.h_out]
        if self.use_c:
            values["c_out"] = NO_C if genotype.c_out is None else rename[genotype.c_out]
        return values

    def decode(self, values: Mapping[str, Any]) -> CellGenotype:
        """The genotype of hyperparameter ``values``: unused slots dropped, then validated.

        Raises:
            ValueError: a missing or out-of-range value (naming it), or a graph that
                ``CellGenotype.validate`` rejects.
        """
        nodes = []
        for k in range(self.max_nodes):
            name = slot(k)
            arity = _get(values, f"{name}_arity")
            if arity not in range(1, MAX_INPUTS + 1):
                raise ValueError(f"{name}_arity: must be 1, 2 or 3. Received: {arity!r}")
            combine = "add" if arity == 1 else _get(values, f"{name}_combine{arity}")
            terms = []
            allowed = self.sources(k)
            for j in range(arity):
                source = _get(values, f"{name}_in{j}")
                if source not in allowed:
                    raise ValueError(
                        f"{name}_in{j}: '{source}' is not a source of slot {k} "
                        f"(choose from {', '.join(self.sources(k))})"
                    )
                terms.append(NodeInput(str(source), bool(_get(values, f"{name}_in{j}_linear"))))
            has_linear = any(t.linear for t in terms)
            bias = bool(_get(values, f"{name}_bias")) and has_linear
            nodes.append(
                GenotypeNode(name, tuple(terms), combine, _get(values, f"{name}_act"), bias)
            )
        c_out = values.get("c_out", NO_C) if self.use_c else NO_C
        genotype = CellGenotype(
            tuple(nodes), _get(values, "h_out"), None if c_out == NO_C else str(c_out)
        )
        return prune(genotype).validate()

    def try_decode(self, values: Mapping[str, Any]) -> CellGenotype | None:
        """:meth:`decode`, or ``None`` when the values are not a valid genotype."""
        try:
            return self.decode(values)
        except (ValueError, TypeError):
            return None


def _ancestors(genotype: CellGenotype, name: str) -> set[str]:
    """Every node and input ``name`` reads, directly or not."""
    nodes = genotype.node_map
    seen: set[str] = set()
    stack = [name]
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        if cur in nodes:
            stack.extend(t.source for t in nodes[cur].inputs)
    return seen


def _get(values: Mapping[str, Any], key: str) -> Any:
    if key not in values:
        raise ValueError(f"{key}: missing hyperparameter value")
    return values[key]


def describe(genotype: CellGenotype) -> str:
    """A short label: the preset name when the graph is a preset, else ``searched``."""
    from seqlayers.genotype_presets import PRESETS

    fp = genotype.fingerprint()
    for name, preset in PRESETS.items():
        if preset.fingerprint() == fp:
            return name
    return "searched"


def preset_names() -> Sequence[str]:
    """The preset names of seqlayers (``vanilla``, ``lstm``, ``gru``, ``mut1..3``)."""
    from seqlayers.genotype_presets import PRESETS

    return tuple(PRESETS)
