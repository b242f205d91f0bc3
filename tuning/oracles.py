"""keras-tuner's own oracles, made to propose only valid, new, in-budget cell genotypes.

A study's candidates are hyperparameter values that decode to a genotype (or a fixed preset
plus a learning rate, for the baselines). :class:`CandidateFilter` says whether values are a
candidate — a valid graph that the space can hold and that fits the parameter budget — and
:class:`GenotypeFilterMixin` makes an oracle draw again when they are not, so invalid graphs are
rejected before any training. Random draws also skip genotypes already tried in the study (by
fingerprint); a duplicate that still comes through (a Bayesian proposal) is not retrained: the
tuner reuses its score.

Every oracle here also carries :class:`~tuning.distributed.ServedOracleMixin` (chief/worker
robustness, atomic state files).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import keras_tuner
import numpy as np
from keras_tuner.engine.trial import TrialStatus

from seqlayers.genotype import CellGenotype
from tuning.cluster import ServedOracleMixin

MAX_DRAWS = 2000  # random draws per candidate before the space counts as exhausted


class CandidateFilter:
    """Decides whether hyperparameter values are a trainable candidate.

    Args:
        decode: values -> genotype (raises ``ValueError`` for an invalid graph).
        accept: genotype -> ``None`` when usable, else the reason (e.g. over budget).
        sample: optional ``rng -> values``, a fast uniform draw of the whole space (the
            oracle then draws with it instead of going hyperparameter by hyperparameter).
    """

    def __init__(
        self,
        decode: Callable[[Mapping[str, Any]], CellGenotype],
        accept: Callable[[CellGenotype], str | None],
        sample: Callable[[random.Random], dict[str, Any]] | None = None,
    ) -> None:
        self.decode = decode
        self.accept = accept
        self.sample = sample

    def __call__(self, values: Mapping[str, Any]) -> CellGenotype | None:
        try:
            genotype = self.decode(values)
        except (ValueError, TypeError, KeyError):
            return None
        return genotype if self.accept(genotype) is None else None


class GenotypeFilterMixin:
    """Rejects invalid / out-of-budget draws and avoids repeating a fingerprint.

    Set ``candidates`` (a :class:`CandidateFilter`) after construction. Counters ``rejected``
    and ``repeated`` are part of the oracle's saved state.
    """

    candidates: CandidateFilter | None = None

    def _fingerprints(self) -> set[str]:
        cache = self.__dict__.setdefault("_fp_cache", {})
        out = set()
        for trial_id, trial in self.trials.items():
            if trial_id not in cache:
                genotype = (
                    self.candidates(trial.hyperparameters.values) if self.candidates else None
                )
                cache[trial_id] = None if genotype is None else genotype.fingerprint()
            if cache[trial_id] is not None:
                out.add(cache[trial_id])
        return out

    def _draw(self) -> dict[str, Any] | None:
        """One random point: the filter's fast sampler when it has one, else keras-tuner's."""
        if self.candidates.sample is None:
            return super()._random_values()
        rng = random.Random(self._seed_state)
        self._seed_state += 1
        values = self.candidates.sample(rng)
        return None if self._duplicate(values) else values

    def _random_values(self) -> dict[str, Any] | None:
        if self.candidates is None:
            return super()._random_values()
        seen = self._fingerprints()
        repeat = None
        for _ in range(MAX_DRAWS):
            values = self._draw()
            if values is None:
                continue
            genotype = self.candidates(values)
            if genotype is None:
                self.rejected = getattr(self, "rejected", 0) + 1
                continue
            if genotype.fingerprint() in seen:
                self.repeated = getattr(self, "repeated", 0) + 1
                repeat = repeat or values
                continue
            return values
        return repeat  # only repeats left (the tuner reuses their scores), or None: exhausted

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        response = super().populate_space(trial_id)
        if (
            self.candidates is not None
            and response.get("status") == TrialStatus.RUNNING
            and self.candidates(response.get("values") or {}) is None
        ):  # e.g. a Bayesian proposal that is not a valid graph: draw at random instead
            self.rejected = getattr(self, "rejected", 0) + 1
            values = self._random_values()
            if values is None:
                return {"status": TrialStatus.STOPPED, "values": None}
            response = {"status": TrialStatus.RUNNING, "values": values}
        return response

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["candidates"] = {
            "rejected": getattr(self, "rejected", 0),
            "repeated": getattr(self, "repeated", 0),
        }
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        counts = state.get("candidates", {})
        self.rejected = int(counts.get("rejected", 0))
        self.repeated = int(counts.get("repeated", 0))


class RandomSearchOracle(
    ServedOracleMixin, GenotypeFilterMixin, keras_tuner.oracles.RandomSearchOracle
):
    """keras-tuner's random search; with ``candidates`` set, over valid genotypes only."""


class BayesianOptimizationOracle(
    ServedOracleMixin, GenotypeFilterMixin, keras_tuner.oracles.BayesianOptimizationOracle
):
    """keras-tuner's Gaussian-process search (its GP, its UCB acquisition).

    Over a genotype encoding (``candidates`` set) the acquisition is maximised over a pool of
    ``acquisition_pool`` valid, untried random genotypes instead of keras-tuner's 50 L-BFGS
    restarts in the relaxed ``[0, 1]^d`` box: the encoding is discrete and mostly invalid, and
    with ~100 dimensions the finite-difference L-BFGS takes minutes per proposal (measured:
    over 300 s on 2 cores after 6 trials). Without ``candidates`` it is keras-tuner's oracle.
    """

    acquisition_pool = 48

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        if self.candidates is None:
            return super().populate_space(trial_id)
        completed = [t for t in self.trials.values() if t.status == TrialStatus.COMPLETED]
        initial = self.num_initial_points or max(3 * len(self.hyperparameters.space), 3)
        if len(completed) < initial:
            return self._random_populate_space()
        x, y = self._vectorize_trials()
        self.gpr.fit(np.nan_to_num(x, posinf=0, neginf=0), np.nan_to_num(y, posinf=0, neginf=0))
        pool = []
        for _ in range(self.acquisition_pool):
            values = self._random_values()
            if values is None:
                break
            pool.append(values)
        if not pool:
            return {"status": TrialStatus.STOPPED, "values": None}
        space = self._nonfixed_space()
        vectors = np.array(
            [[hp.value_to_prob(v.get(hp.name, hp.default)) for hp in space] for v in pool]
        )
        mu, sigma = self.gpr.predict(vectors, return_std=True)
        best = int(np.argmin(np.ravel(mu) - self.beta * np.ravel(sigma)))
        return {"status": TrialStatus.RUNNING, "values": pool[best]}


class HyperbandOracle(ServedOracleMixin, keras_tuner.oracles.HyperbandOracle):
    """keras-tuner's Hyperband (used by the hyperparameter search)."""


ORACLES = {
    "random": RandomSearchOracle,
    "bayesian": BayesianOptimizationOracle,
    "hyperband": HyperbandOracle,
}
