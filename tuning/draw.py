"""A picture of a cell genotype: inputs at the bottom, nodes in layers, outputs at the top.

Each node is a box ``name`` over ``activation(combine)`` (``+b`` when it has a bias); an edge
is solid with a ``W`` when the term goes through a matrix, dashed when the source enters bare.
Blend edges are labelled ``a``, ``b``, ``g`` (``g * a + (1 - g) * b``).
"""

from __future__ import annotations

import os
from pathlib import Path

from apps.common.rundir import atomic_output
from seqlayers.genotype import CellGenotype

_SYMBOL = {"add": "+", "mul": "\u2299", "blend": "blend"}
_ACT = {"tanh": "tanh", "sigmoid": "\u03c3", "relu": "relu", "identity": "id"}


def layout(genotype: CellGenotype) -> dict[str, tuple[float, float]]:
    """``(x, y)`` of every input, node and output: ``y`` is the depth (inputs at 0)."""
    order = genotype.topological_order()
    depth = {"x": 0, "h": 0, "c": 0}
    for node in order:
        depth[node.name] = 1 + max(depth[t.source] for t in node.inputs)
    top = max(depth.values()) + 1
    inputs = ["x", "h"] + (["c"] if genotype.uses_c else [])
    rows: dict[int, list[str]] = {0: inputs}
    for node in order:
        rows.setdefault(depth[node.name], []).append(node.name)
    rows[top] = ["h'"] + (["c'"] if genotype.c_out is not None else [])
    pos = {}
    for y, names in rows.items():
        for i, name in enumerate(names):
            pos[name] = (i - (len(names) - 1) / 2.0, float(y))
    return pos


def draw_genotype(
    genotype: CellGenotype, out_png: str | os.PathLike, *, title: str | None = None
) -> Path:
    """Draw ``genotype`` to ``out_png`` (written atomically); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    genotype.validate()
    pos = layout(genotype)
    width = max(abs(x) for x, _ in pos.values()) * 2 + 2
    height = max(y for _, y in pos.values()) + 1
    fig = Figure(figsize=(max(5.0, 1.7 * width), max(3.0, 1.1 * height + 0.8)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    box = {"boxstyle": "round,pad=0.35", "linewidth": 1.0}

    bends: dict[tuple[float, float], int] = {}

    def edge(src: str, dst: str, style: str, label: str = "") -> None:
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        rad = 0.0
        if y1 - y0 > 1 or (x0 == x1 and y1 - y0 > 1):  # skips a layer: bow around the nodes
            k = bends[(x0, y0)] = bends.get((x0, y0), 0) + 1
            rad = (0.25 + 0.1 * (k // 2)) * (1 if k % 2 else -1)
        ax.annotate(
            "",
            xy=(x1, y1 - 0.22),
            xytext=(x0, y0 + 0.22),
            arrowprops={
                "arrowstyle": "-|>",
                "linestyle": style,
                "color": "0.3",
                "lw": 1.0,
                "shrinkA": 2,
                "shrinkB": 2,
                "connectionstyle": f"arc3,rad={rad}",
            },
        )
        if label:  # the middle of the (quadratic) arc
            dx, dy = x1 - x0, (y1 - 0.22) - (y0 + 0.22)
            mx, my = (x0 + x1) / 2 + 0.5 * rad * dy, (y0 + y1) / 2 - 0.5 * rad * dx
            ax.text(
                mx,
                my,
                label,
                fontsize=7,
                color="tab:blue",
                ha="center",
                va="center",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none"},
            )

    for node in genotype.topological_order():
        for j, term in enumerate(node.inputs):
            tag = "abg"[j] if node.combine == "blend" else ""
            label = " ".join(s for s in (tag, "W" if term.linear else "") if s)
            edge(term.source, node.name, "solid" if term.linear else "dashed", label)
    edge(genotype.h_out, "h'", "solid")
    if genotype.c_out is not None:
        edge(genotype.c_out, "c'", "solid")

    for name in ("x", "h", "c"):
        if name in pos:
            label = {"x": "x\u209c", "h": "h\u209c\u208b\u2081", "c": "c\u209c\u208b\u2081"}[name]
            ax.text(
                *pos[name],
                label,
                ha="center",
                va="center",
                fontsize=10,
                bbox={**box, "fc": "#e8f0fe", "ec": "tab:blue"},
            )
    for node in genotype.nodes:
        combine = "" if len(node.inputs) == 1 else _SYMBOL[node.combine]
        inside = " ".join(s for s in (combine, "+b" if node.bias else "") if s)
        inner = f"{_ACT[node.activation]}({inside})" if inside else _ACT[node.activation]
        ax.text(
            *pos[node.name],
            f"{node.name}\n{inner}",
            ha="center",
            va="center",
            fontsize=8,
            bbox={**box, "fc": "#fff4e0", "ec": "tab:orange"},
        )
    for name in ("h'", "c'"):
        if name in pos:
            label = {"h'": "h\u209c", "c'": "c\u209c"}[name]
            ax.text(
                *pos[name],
                label,
                ha="center",
                va="center",
                fontsize=10,
                bbox={**box, "fc": "#e6f4ea", "ec": "tab:green"},
            )

    xs = [x for x, _ in pos.values()]
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(-0.6, max(y for _, y in pos.values()) + 0.6)
    ax.axis("off")
    ax.set_title(title or genotype.name or "cell", fontsize=9, wrap=True)
    fig.tight_layout()
    out = Path(out_png)
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png")
    return out
