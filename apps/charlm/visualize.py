"""Seeing inside the cells: one unit's activation coloured under every character of a text.

The lecture's pictures (Karpathy, Johnson & Fei-Fei 2016) colour each character of a text by the
value of one hidden unit after the model has read that character: a unit that turns on inside
quotes, one that follows the position in the line, one that tracks the depth of nested brackets.
:func:`activations` runs the one-step model over a text and records a layer's state after every
character; :func:`text_property` computes those properties of the text; :func:`rank_units`
orders the units by their correlation with one; :func:`write_html` and :func:`write_png` draw
the coloured text (red: +1, white: 0, blue: -1).
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from apps.common.rundir import atomic_output, atomic_write_text

PROPERTIES = ("quotes", "line-position", "depth")
STATES = ("output", "cell")
OPENERS, CLOSERS = "([{", ")]}"


# ---------------------------------------------------------------------- text properties
def _string_mask(text: str) -> tuple[np.ndarray, np.ndarray]:
    """``(in_string, in_comment)`` per character, for Python-like text.

    Strings open with ``'``, ``"``, ``'''`` or ``\"\"\"`` outside comments and close with the
    same quote (backslash escapes honoured); a one-quote string also ends at a newline, so a
    stray apostrophe in prose cannot turn the rest of the text into a string. ``#`` outside a
    string starts a comment that ends at the newline. Quote characters count as inside.
    """
    n = len(text)
    in_string = np.zeros(n, dtype=bool)
    in_comment = np.zeros(n, dtype=bool)
    i, quote = 0, ""
    comment = False
    while i < n:
        c = text[i]
        if comment:
            in_comment[i] = True
            if c == "\n":
                comment = False
                in_comment[i] = False
            i += 1
            continue
        if quote:
            in_string[i] = True
            if c == "\\" and i + 1 < n:
                in_string[i + 1] = True
                i += 2
                continue
            if text.startswith(quote, i):
                in_string[i : i + len(quote)] = True
                i += len(quote)
                quote = ""
                continue
            if c == "\n" and len(quote) == 1:
                in_string[i] = False
                quote = ""
            i += 1
            continue
        if c == "#":
            comment = True
            in_comment[i] = True
        elif c in "'\"":
            quote = c * 3 if text.startswith(c * 3, i) else c
            in_string[i : i + len(quote)] = True
            i += len(quote)
            continue
        i += 1
    return in_string, in_comment


def text_property(text: str, kind: str) -> np.ndarray:
    """A per-character property of ``text`` (float64, one value per character).

    Args:
        text: the text.
        kind: ``quotes`` (1 inside a string literal, quotes included, else 0), ``line-position``
            (characters since the last newline: 0 at the start of a line) or ``depth`` (nesting
            depth of ``()[]{}`` outside strings and comments, after reading the character).

    Example:
        >>> text_property('a("b")', "quotes").tolist()
        [0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    """
    if kind not in PROPERTIES:
        raise ValueError(f"kind must be one of {PROPERTIES}. Received: kind={kind!r}")
    if kind == "line-position":
        out, col = np.zeros(len(text)), 0
        for i, c in enumerate(text):
            out[i] = col
            col = 0 if c == "\n" else col + 1
        return out
    in_string, in_comment = _string_mask(text)
    if kind == "quotes":
        return in_string.astype(np.float64)
    out, depth = np.zeros(len(text)), 0
    for i, c in enumerate(text):
        if not (in_string[i] or in_comment[i]):
            if c in OPENERS:
                depth += 1
            elif c in CLOSERS:
                depth = max(0, depth - 1)
        out[i] = depth
    return out


# ---------------------------------------------------------------------------- activations
def state_index(step_model: Any, layer: int, state: str) -> int:
    """Position, among the step model's states, of ``layer``'s ``output`` (h) or LSTM ``cell`` (c)."""
    names = [t.name for t in step_model.inputs[1:]]
    layers = sorted({int(n.split("_")[1]) for n in names})
    if layer < 1 or layer > len(layers):
        raise ValueError(f"layer must be in 1..{len(layers)}. Received: layer={layer}")
    own = [i for i, n in enumerate(names) if int(n.split("_")[1]) == layer]
    if state == "output":
        return own[0]
    if state == "cell" and len(own) == 2:
        return own[1]
    raise ValueError(f"state {state!r} needs an LSTM layer (its states: h, c)")


def activations(gen: Any, text: str, *, layer: int = 1, state: str = "output") -> np.ndarray:
    """The chosen state of ``layer`` after each character of ``text``, ``(len(text), units)``.

    The text is read one character at a time from zero state by the generator's one-step
    model. The LSTM cell state ``c`` is shown squashed (``tanh(c)``) to share the [-1, 1] scale.
    """
    index = state_index(gen.step_model, layer, state)
    states = gen.zero_states(1)
    rows = []
    for token in gen.vocab.encode(text):
        _, states = gen.step_fn(np.array([token]), states)
        rows.append(states[index][0])
    acts = np.stack(rows).astype(np.float64) if rows else np.zeros((0, 0))
    return np.tanh(acts) if state == "cell" else acts


def correlations(acts: np.ndarray, prop: np.ndarray) -> np.ndarray:
    """Pearson correlation of every unit (column of ``acts``) with ``prop`` (0 when either is
    constant)."""
    a = acts - acts.mean(axis=0, keepdims=True)
    p = prop - prop.mean()
    denom = np.sqrt((a * a).sum(axis=0) * (p * p).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * p[:, None]).sum(axis=0) / denom
    return np.where(denom > 0, r, 0.0)


def rank_units(acts: np.ndarray, prop: np.ndarray) -> list[tuple[int, float]]:
    """``(unit, r)`` for every unit, by decreasing ``|r|`` (ties: lower unit first)."""
    r = correlations(acts, prop)
    order = sorted(range(len(r)), key=lambda u: (-abs(r[u]), u))
    return [(int(u), float(r[u])) for u in order]


# -------------------------------------------------------------------------------- drawing
def _rgb(value: float) -> tuple[int, int, int]:
    """Red for +1, white for 0, blue for -1 (linear blend)."""
    v = float(np.clip(value, -1.0, 1.0))
    target = (214, 39, 40) if v > 0 else (31, 119, 180)
    a = abs(v)
    return tuple(round(255 * (1 - a) + t * a) for t in target)  # type: ignore[return-value]


def _shown(c: str) -> str:
    return {"\t": "→", "\r": "␍"}.get(c, c)


def write_html(text: str, panels: Sequence[tuple[str, np.ndarray]], path: str | os.PathLike,
               title: str) -> Path:  # fmt: skip
    """One block of coloured text per ``(label, values)`` panel; values in [-1, 1]."""
    style = (
        "body{font-family:sans-serif}"
        "pre{font-family:monospace;font-size:13px;line-height:1.35;white-space:pre-wrap}"
    )
    legend = (
        "<p>Each character is coloured by the unit's value after reading it: "
        "<span style='background:rgb(214,39,40)'>&nbsp;+1&nbsp;</span> "
        "<span style='background:#fff;border:1px solid #ccc'>&nbsp;0&nbsp;</span> "
        "<span style='background:rgb(31,119,180)'>&nbsp;-1&nbsp;</span></p>"
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{style}</style></head><body>",
        f"<h2>{html.escape(title)}</h2>",
        legend,
    ]
    for label, values in panels:
        parts.append(f"<h3>{html.escape(label)}</h3><pre>")
        for c, v in zip(text, values):
            r, g, b = _rgb(v)
            tip = f"{v:+.3f}"
            if c == "\n":
                parts.append(f"<span style='background:rgb({r},{g},{b})' title='{tip}'>↵</span>\n")
            else:
                parts.append(f"<span style='background:rgb({r},{g},{b})' title='{tip}'>"
                             f"{html.escape(_shown(c))}</span>")  # fmt: skip
        parts.append("</pre>")
    parts.append("</body></html>\n")
    path = Path(path)
    atomic_write_text(path, "".join(parts))
    return path


def layout(text: str, width: int) -> list[tuple[int, int, str]]:
    """``(row, column, char)`` of every character, wrapping at ``width`` and after newlines."""
    cells, row, col = [], 0, 0
    for c in text:
        if col >= width:
            row, col = row + 1, 0
        cells.append((row, col, c))
        if c == "\n":
            row, col = row + 1, 0
        else:
            col += 1
    return cells


def write_png(text: str, panels: Sequence[tuple[str, np.ndarray]], path: str | os.PathLike, *,
              width: int = 80, dpi: int = 80) -> Path:  # fmt: skip
    """The coloured text as a PNG, one panel per ``(label, values)``; values in [-1, 1]."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cells = layout(text, width)
    rows = (cells[-1][0] + 1) if cells else 1
    cols = min(width, max((c for _, c, _ in cells), default=0) + 1)
    panel_h = 0.45 + 0.17 * rows
    fig = Figure(figsize=(0.6 + 0.09 * cols, panel_h * len(panels)), dpi=dpi)
    FigureCanvasAgg(fig)
    for k, (label, values) in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, k + 1)
        grid = np.full((rows, cols, 3), 1.0)
        for (r, c, _), v in zip(cells, values):
            grid[r, c] = np.array(_rgb(v)) / 255.0
        ax.imshow(
            grid,
            aspect="auto",
            interpolation="nearest",
            extent=(-0.5, cols - 0.5, rows - 0.5, -0.5),
        )
        for r, c, ch in cells:
            shown = "↵" if ch == "\n" else _shown(ch)
            if shown.strip():
                ax.text(c, r, shown, ha="center", va="center", fontsize=8.5, family="monospace",
                        color="#888" if ch == "\n" else "black")  # fmt: skip
        ax.set_title(label, fontsize=9, loc="left")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def visualize(
    gen: Any,
    text: str,
    out_dir: str | os.PathLike,
    *,
    find: str | None = None,
    units: Sequence[int] = (),
    layer: int = 1,
    state: str = "output",
    top: int = 3,
    show: int | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Render chosen units, or the ``top`` units most correlated with a property of ``text``.

    Args:
        gen: a :class:`apps.charlm.sample.Generator`.
        text: the text to read.
        out_dir: folder for ``<name>.html`` and ``<name>.png``.
        find: ``quotes``, ``line-position`` or ``depth``: rank units by ``|r|`` with it.
        units: units to show (all of them when given; ranking still reported with ``find``).
        layer: recurrent layer (1 = nearest the input).
        state: ``output`` (h) or ``cell`` (LSTM c, as tanh(c)).
        top: units shown when ranking.
        show: draw only the first ``show`` characters (ranking still reads the whole text).
        name: output file stem (default ``cells_<find>`` or ``cells_units_<...>``).

    Returns:
        ``{"html", "png", "units": [{"unit", "r"}...], "ranking": [...], "property"}``.
    """
    if not text:
        raise ValueError("text must not be empty")
    if find is None and not units:
        raise ValueError("give find or units")
    acts = activations(gen, text, layer=layer, state=state)
    n_units = acts.shape[1]
    bad = [u for u in units if not 0 <= u < n_units]
    if bad:
        raise ValueError(f"units must be in 0..{n_units - 1}. Received: {bad}")
    ranking = rank_units(acts, text_property(text, find)) if find else []
    r_of = dict(ranking)
    chosen = list(units) if units else [u for u, _ in ranking[:top]]
    what = f"layer {layer} {'h' if state == 'output' else 'tanh(c)'}"
    panels = []
    for u in chosen:
        label = f"unit {u} ({what})"
        if find:
            label += f", r = {r_of[u]:+.2f} with {find}"
        panels.append((label, acts[:, u]))
    stem = name or (f"cells_{find}" if not units else "cells_units_" + "-".join(map(str, chosen)))
    title = f"Cell activations: {what}" + (
        f", units most correlated with {find}" if find and not units else ""
    )
    out_dir = Path(out_dir)
    shown = text[:show] if show else text
    html_path = write_html(shown, panels, out_dir / f"{stem}.html", title)
    png_path = write_png(shown, panels, out_dir / f"{stem}.png")
    return {
        "html": str(html_path),
        "png": str(png_path),
        "property": find,
        "layer": layer,
        "state": state,
        "chars_read": len(text),
        "chars_shown": len(shown),
        "units": [{"unit": u, "r": r_of.get(u)} for u in chosen],
        "ranking": [{"unit": u, "r": round(r, 4)} for u, r in ranking[:20]],
    }
