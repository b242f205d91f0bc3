"""``EvolutionOracle``: the Jozefowicz et al. (2015) search as a keras-tuner ``Oracle``.

The first trials are the seed genotypes (LSTM, GRU, MUT1-3 — whichever fit the budget — and
any the user adds). After that each new candidate is a mutation (one or two random changes,
see :mod:`tuning.mutation`) of a parent picked by tournament among the best ``population``
genotypes scored so far. Children that are invalid, over budget, too large for the space or
already tried (same fingerprint) are drawn again; only when none can be found is a repeat
handed out (the tuner then reuses its score instead of training again).

Candidates travel as the values of a :class:`~tuning.encoding.GenotypeSpace`, like those of the
other strategies, so workers decode every strategy the same way. The oracle's own state —
each child's parent and mutations, and the rejection counters — is saved with keras-tuner's
state in ``oracle.json``; draws are seeded by ``(seed, trial_id)``, so a resumed search proposes
what the killed one would have.

Reference:
    Jozefowicz, Zaremba & Sutskever, "An Empirical Exploration of Recurrent Network
    Architectures", ICML 2015.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import keras_tuner
from keras_tuner.engine.trial import TrialStatus

from seqlayers.genotype import CellGenotype
from tuning.cluster import ServedOracleMixin
from tuning.mutation import mutate
from tuning.oracles import CandidateFilter

MAX_ATTEMPTS = 500


class EvolutionOracle(ServedOracleMixin, keras_tuner.Oracle):
    """Evolves cell genotypes from seeds by mutating the best ones found so far.

    Args:
        objective: the keras-tuner objective (its direction ranks the population).
        max_trials: trials in the study (seeds included).
        encode: genotype -> hyperparameter values (``GenotypeSpace.encode`` plus fixed values).
        candidates: decides whether values are a usable candidate (:class:`CandidateFilter`).
        seeds: genotypes tried first, in order (those the filter rejects are skipped).
        population: how many of the best scored genotypes may be parents.
        tournament: parents are the best of this many picked at random from the population.
        seed: seed of the draws.
        **kwargs: ``keras_tuner.Oracle`` arguments.
    """

    def __init__(
        self,
        objective: Any,
        max_trials: int,
        encode: Any,
        candidates: CandidateFilter,
        seeds: Sequence[tuple[str, CellGenotype]] = (),
        population: int = 8,
        tournament: int = 2,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
        if population < 1 or tournament < 1:
            raise ValueError(
                f"population and tournament must be >= 1. Received: {population}, {tournament}"
            )
        self.encode = encode
        self.candidates = candidates
        self.seeds = list(seeds)
        self.population = population
        self.tournament = tournament
        self.lineage: dict[str, dict[str, Any]] = {}
        self.rejected = 0
        self.repeated = 0

    # ------------------------------------------------------------------ keras-tuner hooks
    def populate_space(self, trial_id: str) -> dict[str, Any]:
        tried = self._tried()
        usable = self.usable_seeds()
        for label, genotype, values in usable:
            if genotype.fingerprint() not in tried:
                self.lineage[trial_id] = {"origin": f"seed {label}"}
                return _running(values)
        parents = self._population()
        if not parents:  # nothing scored yet (all running elsewhere): mutate the seeds
            parents = [(genotype, None) for _, genotype, _ in usable]
        if not parents:
            return {"status": TrialStatus.STOPPED, "values": None}
        rng = random.Random(f"{self.seed}/{trial_id}")
        repeat = None
        for _ in range(MAX_ATTEMPTS):
            parent = self._pick(parents, rng)
            try:
                child, changes = mutate(parent, rng, steps=rng.choice((1, 1, 2)))
                values = self.encode(child)
            except ValueError:
                self.rejected += 1
                continue
            if self.candidates(values) is None:
                self.rejected += 1
                continue
            origin = {"parent": parent.fingerprint(), "mutations": changes}
            if child.fingerprint() in tried:
                self.repeated += 1
                repeat = repeat or (values, origin)
                continue
            self.lineage[trial_id] = origin
            return _running(values)
        if repeat is None:
            return {"status": TrialStatus.STOPPED, "values": None}
        self.lineage[trial_id] = {**repeat[1], "repeat": True}
        return _running(repeat[0])

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["evolution"] = {
            "lineage": self.lineage,
            "rejected": self.rejected,
            "repeated": self.repeated,
            "population": self.population,
            "tournament": self.tournament,
        }
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        own = state.get("evolution", {})
        self.lineage = dict(own.get("lineage", {}))
        self.rejected = int(own.get("rejected", 0))
        self.repeated = int(own.get("repeated", 0))

    # ------------------------------------------------------------------ helpers
    def usable_seeds(self) -> list[tuple[str, CellGenotype, dict[str, Any]]]:
        """``(label, genotype, values)`` of the seeds the space holds and the filter accepts."""
        out = []
        for label, genotype in self.seeds:
            try:
                values = self.encode(genotype)
            except ValueError:
                continue
            if self.candidates(values) is not None:
                out.append((label, genotype, values))
        return out

    def _genotype(self, trial: Any) -> CellGenotype | None:
        cache = self.__dict__.setdefault("_genotype_cache", {})
        if trial.trial_id not in cache:
            cache[trial.trial_id] = self.candidates(trial.hyperparameters.values)
        return cache[trial.trial_id]

    def _tried(self) -> set[str]:
        out = set()
        for trial in self.trials.values():
            genotype = self._genotype(trial)
            if genotype is not None:
                out.add(genotype.fingerprint())
        return out

    def _population(self) -> list[tuple[CellGenotype, float]]:
        scored = []
        for trial in self.trials.values():
            if trial.status != TrialStatus.COMPLETED or trial.score is None:
                continue
            genotype = self._genotype(trial)
            if genotype is not None:
                scored.append((genotype, float(trial.score)))
        best_first = self.objective.direction == "max"
        scored.sort(key=lambda item: item[1], reverse=best_first)
        unique, seen = [], set()
        for genotype, score in scored:
            fp = genotype.fingerprint()
            if fp not in seen:
                seen.add(fp)
                unique.append((genotype, score))
        return unique[: self.population]

    def _pick(
        self, parents: list[tuple[CellGenotype, float | None]], rng: random.Random
    ) -> CellGenotype:
        """Tournament selection: the best of ``tournament`` parents drawn at random."""
        drawn = [rng.randrange(len(parents)) for _ in range(self.tournament)]
        return parents[min(drawn)][0]  # parents are sorted best first


def _running(values: dict[str, Any]) -> dict[str, Any]:
    return {"status": TrialStatus.RUNNING, "values": values}
