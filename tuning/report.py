"""What a cell search leaves in its run dir: leaderboard, best genotypes, their pictures.

``DIR/leaderboard.csv``   one row per trial: strategy, trial, status, fingerprint, cell, params,
                          units, metric, learning rate, seconds, reused, note
``DIR/leaderboard.md``    the best of each strategy, then every completed trial, best first
``DIR/best_genotype.json`` the best cell of the whole search (``--cell genotype:PATH`` in apps)
``DIR/best_genotype.png``  its graph;  ``DIR/best_<strategy>.json``: each strategy's best
``DIR/metrics.json``       the summary as JSON (best per strategy, timing, overhead)
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from apps.common.rundir import RunDir, atomic_write_text
from seqlayers.genotype import CellGenotype

CSV_FIELDS = (
    "strategy",
    "trial",
    "status",
    "fingerprint",
    "cell",
    "params",
    "units",
    "metric",
    "learning_rate",
    "seconds",
    "reused",
    "note",
)


@dataclasses.dataclass
class TrialRecord:
    """One trial of a study, as the leaderboard shows it."""

    strategy: str
    trial: str
    status: str
    fingerprint: str = ""
    cell: str = ""
    genotype: CellGenotype | None = None
    params: int | None = None
    units: int | None = None
    metric: float | None = None
    learning_rate: float | None = None
    seconds: float | None = None
    reused: bool = False
    note: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "trial": self.trial,
            "status": self.status,
            "fingerprint": self.fingerprint,
            "cell": self.cell,
            "params": "" if self.params is None else self.params,
            "units": "" if self.units is None else self.units,
            "metric": "" if self.metric is None else f"{self.metric:.6g}",
            "learning_rate": "" if self.learning_rate is None else f"{self.learning_rate:.4g}",
            "seconds": "" if self.seconds is None else f"{self.seconds:.2f}",
            "reused": int(self.reused),
            "note": self.note,
        }


def completed(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    return [r for r in records if r.status == "COMPLETED" and r.metric is not None]


def ranked(records: Sequence[TrialRecord], direction: str) -> list[TrialRecord]:
    """Completed trials, best first (ties: fewer params, then earlier)."""
    sign = 1.0 if direction == "min" else -1.0
    return sorted(completed(records), key=lambda r: (sign * r.metric, r.params or 0))


def best_per_strategy(records: Sequence[TrialRecord], direction: str) -> dict[str, TrialRecord]:
    out: dict[str, TrialRecord] = {}
    for record in ranked(records, direction):
        out.setdefault(record.strategy, record)
    return out


def strategy_summary(records: Sequence[TrialRecord], direction: str) -> dict[str, dict[str, Any]]:
    """Per strategy: best metric and cell, median, trials trained / reused / failed."""
    out = {}
    best = best_per_strategy(records, direction)
    for strategy in dict.fromkeys(r.strategy for r in records):
        mine = [r for r in records if r.strategy == strategy]
        done = completed(mine)
        top = best.get(strategy)
        out[strategy] = {
            "best": None if top is None else top.metric,
            "best_fingerprint": None if top is None else top.fingerprint,
            "best_cell": None if top is None else top.cell,
            "best_params": None if top is None else top.params,
            "best_learning_rate": None if top is None else top.learning_rate,
            "median": statistics.median([r.metric for r in done]) if done else None,
            "trials": len(mine),
            "trained": sum(1 for r in done if not r.reused),
            "reused": sum(1 for r in done if r.reused),
            "failed": sum(1 for r in mine if r.status != "COMPLETED"),
            "unique_cells": len({r.fingerprint for r in done}),
        }
    return out


def timing_summary(timing: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """Totals over studies: search wall time, time in trials, overhead fraction, trials/hour."""
    search = sum(t.get("search_seconds", 0.0) for t in timing.values())
    trials = sum(t.get("trial_seconds", 0.0) for t in timing.values())
    trained = sum(int(t.get("trials_trained", 0)) for t in timing.values())
    return {
        "search_seconds": search,
        "trial_seconds": trials,
        "overhead_fraction": (search - trials) / trials if trials > 0 else None,
        "trials_trained": trained,
        "trials_per_hour": 3600.0 * trained / search if search > 0 else None,
    }


def csv_text(records: Sequence[TrialRecord]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(record.row())
    return buf.getvalue()


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}"


def markdown(
    records: Sequence[TrialRecord],
    *,
    title: str,
    metric_label: str,
    direction: str,
    settings: Mapping[str, Any],
    timing: Mapping[str, Any] | None = None,
    best: TrialRecord | None = None,
) -> str:
    """The leaderboard as Markdown."""
    better = "lower" if direction == "min" else "higher"
    lines = [f"# {title}", "", f"Metric: {metric_label}; {better} is better.", ""]
    lines += [", ".join(f"{k}: {v}" for k, v in settings.items()), ""]
    summary = strategy_summary(records, direction)
    lines += [
        "## Best per strategy",
        "",
        "| strategy | best | median | cell | fingerprint | params | lr | trained | reused | failed |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for strategy, s in summary.items():
        lr = "—" if s["best_learning_rate"] is None else f"{s['best_learning_rate']:.3g}"
        lines.append(
            f"| {strategy} | {_fmt(s['best'])} | {_fmt(s['median'])} | {s['best_cell'] or '—'} | "
            f"`{s['best_fingerprint'] or '—'}` | {s['best_params'] or '—'} | {lr} | "
            f"{s['trained']} | {s['reused']} | {s['failed']} |"
        )
    if best is not None and best.genotype is not None:
        lines += [
            "",
            (
                f"## Best cell: {best.cell} `{best.fingerprint}` ({best.strategy}, "
                f"trial {best.trial}, {metric_label} {_fmt(best.metric)})"
            ),
            "",
            "```",
            best.genotype.equations(),
            "```",
        ]
    lines += [
        "",
        "## All trials, best first",
        "",
        "| rank | strategy | trial | cell | fingerprint | params | units | metric | lr | seconds | note |",
        "|---:|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for rank, r in enumerate(ranked(records, direction), 1):
        note = ("reused score; " if r.reused else "") + r.note
        lr = "—" if r.learning_rate is None else f"{r.learning_rate:.3g}"
        lines.append(
            f"| {rank} | {r.strategy} | {r.trial} | {r.cell} | `{r.fingerprint}` | {r.params} | "
            f"{r.units} | {_fmt(r.metric)} | {lr} | {_fmt(r.seconds, 1)} | {note} |"
        )
    failed = [r for r in records if r.status != "COMPLETED"]
    if failed:
        lines += ["", "## Trials without a score", ""]
        lines += [f"- {r.strategy} trial {r.trial}: {r.status} {r.note}".rstrip() for r in failed]
    if timing:
        lines += ["", "## Time", ""]
        if timing.get("trials_per_hour") is not None:
            lines.append(
                f"- trials trained: {timing['trials_trained']}, "
                f"{timing['trials_per_hour']:.0f} trials/hour"
            )
        if timing.get("overhead_fraction") is not None:
            lines.append(
                f"- search overhead (oracle, bookkeeping): "
                f"{100 * timing['overhead_fraction']:.2f}% of the time spent in trials "
                f"({timing['search_seconds'] - timing['trial_seconds']:.1f} s of "
                f"{timing['search_seconds']:.1f} s)"
            )
    return "\n".join(lines) + "\n"


def write_outputs(
    run: RunDir,
    records: Sequence[TrialRecord],
    *,
    title: str,
    metric_label: str,
    direction: str,
    settings: Mapping[str, Any],
    timing: Mapping[str, Mapping[str, float]],
) -> dict[str, Any]:
    """Write the leaderboard, the best genotypes, the picture and ``metrics.json``."""
    from tuning.draw import draw_genotype

    order = ranked(records, direction)
    best = next((r for r in order if r.genotype is not None), None)
    totals = timing_summary(timing)
    atomic_write_text(run.path / "leaderboard.csv", csv_text(records))
    atomic_write_text(
        run.path / "leaderboard.md",
        markdown(
            records,
            title=title,
            metric_label=metric_label,
            direction=direction,
            settings=settings,
            timing=totals,
            best=best,
        ),
    )
    for strategy, record in best_per_strategy(records, direction).items():
        if record.genotype is not None:
            _named(record).save(run.path / f"best_{strategy}.json")
    summary: dict[str, Any] = {
        "metric": metric_label,
        "direction": direction,
        "strategies": strategy_summary(records, direction),
        "timing": totals,
        "best": None,
    }
    if best is not None:
        genotype = _named(best)
        genotype.save(run.path / "best_genotype.json")
        draw_genotype(
            genotype,
            run.path / "best_genotype.png",
            title=f"{genotype.name} ({best.strategy})\n{metric_label} "
            f"{best.metric:.4f}, {best.params:,} params",
        )
        summary["best"] = {
            "strategy": best.strategy,
            "trial": best.trial,
            "fingerprint": best.fingerprint,
            "cell": best.cell,
            "metric": best.metric,
            "params": best.params,
            "units": best.units,
            "learning_rate": best.learning_rate,
            "genotype": str(run.path / "best_genotype.json"),
        }
    run.write_json("metrics.json", summary)
    return summary


def _named(record: TrialRecord) -> CellGenotype:
    g = record.genotype
    name = record.cell if record.cell != "searched" else f"searched-{record.fingerprint}"
    return CellGenotype(g.nodes, g.h_out, g.c_out, name=name)
