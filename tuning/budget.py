"""Sizing candidates to one parameter budget, so that every cell in a search is compared fairly.

The budget counts the recurrent block: the cell's weights (``CellGenotype.param_count``) and,
for a genotype that reads a bare ``x`` (MUT1, MUT2, searched cells alike), the bias-free
projection ``x @ P`` of shape ``(input_dim, units)`` that makes the input as wide as the cell.
Embeddings and output layers are the same for every candidate of a task and are not counted.
"""

from __future__ import annotations

import dataclasses

from seqlayers.genotype import CellGenotype, param_count, units_for_budget

MIN_UNITS = 4


@dataclasses.dataclass(frozen=True)
class Sizing:
    """How a candidate is built under a budget.

    Attributes:
        units: width of ``h`` (and ``c``).
        params: weights of the recurrent block (projection included).
        projected: whether ``x`` is projected to ``units`` first (bare-``x`` genotypes).
    """

    units: int
    params: int
    projected: bool


def block_params(genotype: CellGenotype, input_dim: int, units: int) -> int:
    """Weights of the recurrent block of ``genotype`` at ``units`` on ``input_dim`` inputs."""
    if genotype.validate().bare_x_nodes:
        return input_dim * units + param_count(genotype, units, units)
    return param_count(genotype, input_dim, units)


def size_for_budget(
    genotype: CellGenotype, input_dim: int, budget: int, *, min_units: int = MIN_UNITS
) -> Sizing:
    """The largest ``units >= min_units`` whose recurrent block fits in ``budget`` weights.

    Uses ``seqlayers.units_for_budget`` for genotypes without a bare ``x``; with one, the
    projection is counted too.

    Raises:
        ValueError: an invalid genotype, or a budget too small for ``min_units``.

    Example:

    >>> from seqlayers.genotype_presets import lstm
    >>> size_for_budget(lstm(), input_dim=88, budget=20000)
    Sizing(units=39, params=19968, projected=False)
    """
    genotype.validate()
    if not genotype.bare_x_nodes:
        units = units_for_budget(genotype, input_dim, budget, min_units=min_units)
        return Sizing(units, param_count(genotype, input_dim, units), False)
    need = block_params(genotype, input_dim, min_units)
    if need > budget:
        raise ValueError(
            f"budget: even units={min_units} needs {need} params (projection included) "
            f"> budget={budget}"
        )
    lo, hi = min_units, max(min_units, budget)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if block_params(genotype, input_dim, mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return Sizing(lo, block_params(genotype, input_dim, lo), True)


def fits(genotype: CellGenotype, input_dim: int, budget: int) -> bool:
    """Whether ``genotype`` builds with at least ``MIN_UNITS`` units within ``budget``."""
    try:
        size_for_budget(genotype, input_dim, budget)
    except ValueError:
        return False
    return True
