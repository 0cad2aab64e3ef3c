"""Rungs: when a search's configuration stops to be judged, and which paused one goes on.

A configuration trains to a rung (`min_epochs * eta^k` epochs, the last rung its full epochs),
stops, and is judged by the best value of the search's metric so far (the mean over its seeds).
With `median` it is pruned for good or goes straight on. With `asha` (Li et al., "A System for
Massively Parallel Hyperparameter Tuning", 2020) it is paused; whenever a worker is free, the
best paused configuration among the top 1/eta of its rung is promoted and continues from its
checkpoint, else a new configuration starts. A paused configuration is never lost: as more
configurations reach its rung, the top 1/eta grows, so a later `--resume` with more trials may
promote it. `hyperband` runs ASHA in brackets whose first rung grows by eta, assigned in turn.

Plain data only (no Optuna, no TensorFlow): sweep.json records these configurations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RUNNING, PAUSED, DUPLICATE = "running", "paused", "duplicate"
# A configuration that never trains again; a duplicate (the parameters of an earlier one) never trained.
FINISHED = ("completed", "pruned", "diverged", "failed", DUPLICATE)


@dataclass
class Config:
    """One suggested configuration (an entry of sweep.json's `configs`): its runs are the trials
    with `config` = its id, one per seed."""

    id: int
    params: dict[str, Any]  # dotted key -> value, without the seed
    number: int  # its Optuna trial's number (the one suggested; a promotion may add records)
    max_epochs: int  # the spec's training.epochs: the last rung
    bracket: int = 0
    status: str = RUNNING  # running, paused, completed, pruned, diverged, failed, duplicate
    epochs: int = 0  # the epochs its runs are given now
    rungs: list[dict[str, Any]] = field(default_factory=list)  # [{epochs, value}] as judged
    value: float | None = None  # completed: the mean over seeds of each run's best
    error: str | None = None
    duplicate_of: int | None = None  # duplicate: the earlier configuration with these parameters

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def value_at(self, epochs: int) -> float | None:
        return next((r["value"] for r in self.rungs if r["epochs"] == epochs), None)


def ladder(min_epochs: int, eta: int, max_epochs: int, bracket: int = 0) -> list[int]:
    """The rungs of a bracket: min_epochs * eta^(bracket + k) below max_epochs, then max_epochs."""
    rungs, epochs = [], min_epochs * eta**bracket
    while epochs < max_epochs:
        rungs.append(epochs)
        epochs *= eta
    return [*rungs, max_epochs]


def bracket_count(min_epochs: int, eta: int, max_epochs: int) -> int:
    """Hyperband's brackets: one per rung of the first bracket (the last trains in one go)."""
    return len(ladder(min_epochs, eta, max_epochs))


def next_rung(config: Config, pruner: str, min_epochs: int, eta: int) -> int:
    """The epochs a configuration trains to next: its next rung, or its full epochs without a pruner."""
    if pruner == "none":
        return config.max_epochs
    rungs = ladder(min_epochs, eta, config.max_epochs, config.bracket)
    return next((r for r in rungs if r > config.epochs), config.max_epochs)


def _key(config: Config, epochs: int, goal: str) -> tuple[float, int]:
    value = config.value_at(epochs)
    return (value if goal == "minimize" else -value, config.id)  # ties: the earlier configuration


def promotable(configs: list[Config], eta: int, goal: str) -> list[Config]:
    """Paused configurations in the top 1/eta of their rung (of their bracket), the highest rung
    first and the best first within it: ASHA's order of promotion."""
    found: list[tuple[int, tuple[float, int], Config]] = []
    rungs = {(c.bracket, r["epochs"]) for c in configs for r in c.rungs if r["value"] is not None}
    for bracket, epochs in rungs:
        reached = [
            c for c in configs if c.bracket == bracket and c.value_at(epochs) is not None
        ]  # diverged and failed configurations hold no value: they are no rival
        top = sorted(reached, key=lambda c: _key(c, epochs, goal))[: len(reached) // eta]
        waiting = [c for c in top if c.status == PAUSED and c.epochs == epochs]
        found += [(-epochs, _key(c, epochs, goal), c) for c in waiting]
    return [c for *_, c in sorted(found, key=lambda item: item[:2])]
