"""What every task receives from the runner, and what it gives back."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


class Reporter(Protocol):
    """Where a task sends progress and metrics (the console and the tracker behind it)."""

    def start(self, epochs: int, steps_per_epoch: int) -> None: ...

    def epoch_start(self, epoch: int) -> None: ...

    def step(self, epoch: int, step: int, samples: int, loss: float | None = None) -> None: ...

    def train_losses(self, values: Sequence[tuple[int, float]]) -> None: ...

    def epoch_end(self, epoch: int, global_step: int, metrics: Mapping[str, float]) -> None: ...


@dataclass
class Setup:
    """The pieces the runner built from the config groups."""

    cfg: Any              # the whole composed config (DictConfig)
    ctx: Any              # the device context (dlrun.engine.Context)
    data: Any             # what the dataset group built (a Splits for classification)
    net: Any              # the model (a dlrun.nn.Block), initialized on ctx
    loss: Any             # the loss block
    trainer: Any          # dlrun.optim.Trainer over the model's parameters
    seed: int             # the run's seed (data shuffling follows it)
    report: Reporter


class Task(Protocol):
    primary_metric: str

    def __init__(self, setup: Setup) -> None: ...

    def describe(self) -> Sequence[tuple[str, str]]: ...

    def run(self) -> dict[str, float]: ...
