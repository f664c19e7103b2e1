"""The Reporter of a run (``dlrun.runner.console.Reporter``): what the training loop reports
goes to the console and to the tracker (MLflow) behind it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from .console import Column, ConsoleReporter
from .tracking import TrackingError


class RunReporter:
    """The Reporter of a run: the console and the tracker behind it."""

    def __init__(self, console: ConsoleReporter, tracker: Any):
        self.console = console
        self.tracker = tracker
        self._warned = False  # about an unreachable MLflow store

    def start(self, epochs: int, steps_per_epoch: int, columns: Sequence[Column]) -> None:
        self.tracker.start()  # a resumed run's: only now that its checkpoint is restored
        self.console.start(epochs, steps_per_epoch, columns)

    def epoch_start(self, epoch: int) -> None:
        self.console.epoch_start(epoch)

    def step(self, epoch: int, step: int, samples: int, loss: float | None = None) -> None:
        self.console.step(epoch, step, samples, loss)

    def train_losses(self, values: Sequence[tuple[int, float]]) -> None:
        for global_step, value in values:
            self.tracker.log_metrics({"train/step_loss": value}, global_step)

    def artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        self.tracker.log_artifact(path, artifact_path)

    def note(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)  # a URL in it stays whole on a terminal

    def validation(self, global_step: int, metrics: Mapping[str, float]) -> None:
        """A validation's ``val/...`` metrics, logged at the step it followed."""
        self.tracker.log_metrics(dict(metrics), global_step)

    def epoch_end(self, epoch: int, global_step: int, metrics: Mapping[str, float]) -> None:
        """The epoch's row (with its last validation's figures) and its metrics but those of
        validation, which :meth:`validation` logged."""
        self.console.epoch_end(metrics)
        self.tracker.log_metrics({k: v for k, v in metrics.items() if not k.startswith("val/")},
                                 global_step)
        outage = getattr(self.tracker, "outage", None)
        if outage and not self._warned:  # once: the run goes on, its records wait in the spool
            self._warned = True
            self.note(f"warning: MLflow at {self.tracker.tracking_uri} is unreachable ({outage}); "
                      f"training goes on and its records wait in {self.tracker.spool.path} until "
                      "it is back")
        if self.tracker.error is not None:  # fail early rather than train for nothing
            raise TrackingError(f"MLflow tracking at {self.tracker.tracking_uri} failed: "
                                f"{type(self.tracker.error).__name__}: {self.tracker.error}")
