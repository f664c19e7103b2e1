"""Ctrl-C and SIGTERM: the first asks the training loop to stop after its current step (it
writes a checkpoint and ends the run KILLED); a second one stops at once."""
from __future__ import annotations

import signal
from typing import Any


class Interrupts:
    """The stop request shared by the signal handlers and the training loop."""

    def __init__(self) -> None:
        self.requested: str | None = None  # the signal's name once one arrived
        self.polling = False                # a loop checks `requested` between steps

    def handle(self, signum: int, frame: Any) -> None:
        if self.requested is None and self.polling:
            self.requested = signal.Signals(signum).name
            return
        raise KeyboardInterrupt

    def install(self) -> None:
        signal.signal(signal.SIGINT, self.handle)
        signal.signal(signal.SIGTERM, self.handle)


INTERRUPTS = Interrupts()


class StopRequested(KeyboardInterrupt):
    """The loop stopped between steps on a signal; ``checkpoint`` is what it saved."""

    def __init__(self, signal_name: str, step: int, checkpoint: Any):
        super().__init__(f"{signal_name} at step {step}")
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
