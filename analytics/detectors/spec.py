"""What a detector declares to join the fleet: the entry of `dcops.analytics.fleet.DETECTORS`.

A `DetectorSpec` says everything the fleet scorer, training and the model file need, so none
of them names a detector:

- `name`: the key of its trained state in a `ModelBundle`, its metadata and its training rows;
- `estimator`: its scikit-learn-style estimator (the contract tests check every one);
- `scores` and `features`: what it looks at, in words and as feature names (model metadata);
- `scorer(fleet, state)`: builds its online part for one `FleetScorer`, from its trained state
  (None when untrained); the part's `score(features)` returns the interval's findings and,
  for a trained detector, `set_model(state)` takes a newly trained state between intervals;
- `trainer(setup)`: an accumulator fed every replayed interval (`observe(k, features)`) that
  `fit(previous)`s the trained state; None for a detector that learns online only;
- `state_type`: what its trained state is; the model file stores the state as is (joblib) and
  `ModelBundle.load` refuses a state of another type, naming the detector.

Adding a detector: one module with its estimator and its `DetectorSpec`, one line in
`DETECTORS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np

if TYPE_CHECKING:
    from dcops.analytics.fleet import FleetScorer
    from dcops.analytics.tracker import FeatureTracker, IntervalFeatures
    from dcops.findings import Finding
    from dcops.topology import Inventory

__all__ = ["DetectorSpec", "FleetPart", "TrainedPart", "Fitted", "Trainer", "TrainingSetup", "MAX_ROWS",
           "sample_rows", "rows_by_model"]

MAX_ROWS = 20_000  # per model: more rows add fitting time, not accuracy


class FleetPart(Protocol):
    """A detector's online part in one `FleetScorer`. A detector with a `trainer` also has
    `set_model(state)`, which takes a newly trained state between intervals."""

    def score(self, f: IntervalFeatures) -> list[Finding]: ...


class TrainedPart(ABC):
    """A part that scores only with a trained state: no findings until it has one."""

    def __init__(self, fleet: FleetScorer, state: Any) -> None:
        self.fleet, self.state = fleet, state

    def set_model(self, state: Any) -> None:
        self.state = state

    def score(self, f: IntervalFeatures) -> list[Finding]:
        return [] if self.state is None else self.score_trained(f, self.state)

    @abstractmethod
    def score_trained(self, f: IntervalFeatures, state: Any) -> list[Finding]:
        """The interval's findings with this trained state."""


@dataclass(frozen=True)
class Fitted:
    """A trainer's result: the state to save, training rows per model key, baseline drift."""

    state: Any
    rows: dict[str, int] = field(default_factory=dict)
    drift: dict[str, float] = field(default_factory=dict)  # model key -> shift in old spreads


class Trainer(Protocol):
    def observe(self, k: int, f: IntervalFeatures) -> None: ...

    def fit(self, previous: Any) -> Fitted: ...


@dataclass(frozen=True)
class TrainingSetup:
    """What every trainer is built from. Each trainer draws from its own generator seeded with
    `seed`, so adding or removing a detector leaves the other detectors' samples unchanged."""

    inventory: Inventory
    tracker: FeatureTracker
    window: int
    seed: int

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    estimator: type
    scores: str
    features: tuple[str, ...]
    scorer: Callable[[FleetScorer, Any], FleetPart]
    trainer: Callable[[TrainingSetup], Trainer] | None = None
    state_type: type | tuple[type, ...] = object


def sample_rows(rng: np.random.Generator, X: np.ndarray, n: int = MAX_ROWS) -> np.ndarray:
    return X if len(X) <= n else X[rng.choice(len(X), n, replace=False)]


def rows_by_model(inventory: Inventory) -> list[tuple[str, np.ndarray]]:
    """(accelerator model, indices of its accelerators) in sorted model order."""
    models = np.asarray(inventory.accel_tags["model"], dtype=object)
    return [(m, np.flatnonzero(models == m)) for m in np.unique(models)]
