"""The forecasting app's pictures: one forecast with its band, and the model comparison.

Matplotlib on an Agg canvas (no pyplot state), PNGs written atomically, like
:mod:`apps.common.plots`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from apps.common.rundir import atomic_output

BASELINE_STYLE = {"persistence": ":", "seasonal_naive": "-.", "ets": "--", "sarimax": "--"}


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def _save(fig: Any, out_png: str | os.PathLike) -> Path:
    out = Path(out_png)
    fig.tight_layout()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png")
    return out


def forecast_plot(
    *,
    history_times: np.ndarray,
    history: np.ndarray,
    future_times: np.ndarray,
    quantiles: np.ndarray,
    quantile_levels: Sequence[float],
    truth: np.ndarray | None,
    baselines: Mapping[str, np.ndarray] | None,
    title: str,
    ylabel: str,
    out_png: str | os.PathLike,
) -> Path:
    """History, the median forecast, the band between the outer quantiles, the truth where
    known and the baselines' forecasts, as a PNG.

    Args:
        history_times, history: the input part shown (gaps as NaN break the line).
        future_times: the forecast's times ``(H,)``.
        quantiles: ``(H, Q)`` forecast quantiles.
        quantile_levels: the Q levels (0.5 is the point forecast).
        truth: ``(H,)`` observed future values (NaN: unknown), or ``None``.
        baselines: ``{name: (H,)}`` baseline forecasts to overlay.
        title, ylabel: labels.
        out_png: output path.
    """
    fig, (ax,) = _figure(8.0, 3.6)
    levels = list(quantile_levels)
    median = quantiles[:, levels.index(0.5)]
    ax.plot(history_times, history, color="black", lw=1.0, label="history")
    ax.fill_between(future_times, quantiles[:, 0], quantiles[:, -1], color="tab:blue", alpha=0.25,
                    label=f"band q{levels[0]:g}-q{levels[-1]:g}")  # fmt: skip
    ax.plot(future_times, median, color="tab:blue", lw=1.6, label="forecast (median)")
    if truth is not None and np.isfinite(truth).any():
        ax.plot(future_times, truth, color="black", lw=1.0, ls="--", label="truth")
    for name, values in (baselines or {}).items():
        if np.isfinite(values).any():
            ax.plot(future_times, values, lw=0.9, ls=BASELINE_STYLE.get(name, ":"), label=name)
    ax.axvline(history_times[-1], color="grey", lw=0.6)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncols=2)
    fig.autofmt_xdate()
    return _save(fig, out_png)


def compare_plot(
    rows: Sequence[Mapping[str, Any]],
    out_png: str | os.PathLike,
    *,
    title: str,
    ylabel: str = "MAE",
) -> Path:
    """Test MAE per method (bars; models blue, baselines grey) and MAE per horizon step
    (lines), side by side.

    Args:
        rows: ``{"name", "kind" ("model" | "baseline"), "mae", "mae_per_step"}`` per method.
        out_png: output path.
        title: figure title.
        ylabel: the metric's label.
    """
    fig, (bars, lines) = _figure(11.0, 3.8, ncols=2)
    names = [r["name"] for r in rows]
    colors = ["tab:blue" if r["kind"] == "model" else "tab:gray" for r in rows]
    x = np.arange(len(rows))
    drawn = bars.bar(x, [r["mae"] for r in rows], color=colors)
    bars.bar_label(drawn, fmt="%.3g", fontsize=7)
    bars.set_xticks(x, labels=names, rotation=35, ha="right", fontsize=8)
    bars.set_ylabel(f"test {ylabel}")
    bars.set_title(title, fontsize=9)
    for r in rows:
        steps = np.array([np.nan if v is None else v for v in r["mae_per_step"]], dtype=float)
        style = "-" if r["kind"] == "model" else BASELINE_STYLE.get(r["name"], ":")
        lines.plot(np.arange(1, len(steps) + 1), steps, ls=style, lw=1.2, label=r["name"])
    lines.set_xlabel("horizon step")
    lines.set_ylabel(ylabel)
    lines.set_title(f"{ylabel} per horizon step", fontsize=9)
    lines.grid(alpha=0.3)
    lines.legend(fontsize=7, ncols=2)
    return _save(fig, out_png)
