"""Ctrl-C and SIGTERM: the first is recorded and acted on at the next safe point, a second
one stops at once.

The first signal never raises: a ``KeyboardInterrupt`` raised wherever the main thread happens
to be is lost in a garbage-collector callback ("Exception ignored in ..."), or turned into
another error by the library it lands in (Hydra's config loading makes an ``UnboundLocalError``
of it). The handler records the signal's name in ``requested`` and the code checks it where
stopping is safe: the training loop between steps (it writes a checkpoint and ends the run
KILLED), a run before its first step and after its end, a sweep before each trial and before
its table (the trials so far go into the table and MLflow). The second signal raises
``KeyboardInterrupt`` at once, for a user who will not wait for the next safe point.

A sweep's joblib workers install the same handler (they get the Ctrl-C of the terminal's
process group too); the launching process passes its first signal on to them as a notice
(SIGUSR1 for SIGINT, SIGUSR2 for SIGTERM) that sets ``requested`` but never counts as a
second signal, so that ``kill PID`` of a parallel sweep stops its running trials as well.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# the notice a launching process sends its joblib workers for each of its stop signals
NOTICES = {signal.SIGUSR1: "SIGINT", signal.SIGUSR2: "SIGTERM"}
_NOTICE_OF = {name: signum for signum, name in NOTICES.items()}


class Interrupts:
    """The stop request shared by the signal handlers and the safe points that check it."""

    def __init__(self) -> None:
        self.requested: str | None = None  # the signal's name once one arrived
        self.received = 0                  # stop signals received (notices not counted)

    def handle(self, signum: int, frame: Any) -> None:
        self.received += 1
        if self.received > 1:  # a second Ctrl-C/SIGTERM: stop at once
            raise KeyboardInterrupt
        name = signal.Signals(signum).name
        self.requested = self.requested or name
        _notify_workers(_NOTICE_OF[name])

    def notice(self, signum: int, frame: Any) -> None:
        """The launching process of a sweep passed its stop signal on: never raises."""
        self.requested = self.requested or NOTICES[signum]

    def note(self, name: str) -> None:
        """Record a stop that came another way (a data-parallel job stopped by its signal)."""
        self.requested = self.requested or name

    def check(self) -> None:
        """A safe point: raises :class:`Interrupted` if a signal was recorded."""
        if self.requested is not None:
            raise Interrupted(self.requested)

    def install(self, deferred: bool = True) -> None:
        """The handler of Ctrl-C and SIGTERM; ``deferred=False`` (a command without safe
        points, ``dlrun predict``): both raise KeyboardInterrupt at once."""
        for s in STOP_SIGNALS:
            signal.signal(s, self.handle if deferred else signal.default_int_handler)

    def install_in_worker(self) -> None:
        """In a joblib (loky) worker of a sweep: the handler, and the launching process's
        notices. Elsewhere (the module imported by a test, say) nothing changes."""
        import multiprocessing

        if (type(multiprocessing.current_process()).__name__ == "LokyProcess"
                and threading.current_thread() is threading.main_thread()):
            self.install()
            for s in NOTICES:
                signal.signal(s, self.notice)


def _notify_workers(notice: int) -> None:
    """Pass a stop on to this process's joblib workers (a parallel sweep's running trials)."""
    mp = sys.modules.get("multiprocessing")  # not imported: no workers
    if mp is None:
        return
    try:
        workers = [p.pid for p in mp.active_children() if type(p).__name__ == "LokyProcess"]
    except Exception:  # noqa: BLE001 - best effort: the workers may get the signal themselves
        return
    for pid in workers:
        try:
            os.kill(pid, notice)
        except (ProcessLookupError, PermissionError, TypeError):
            pass


INTERRUPTS = Interrupts()


class Interrupted(KeyboardInterrupt):
    """A recorded Ctrl-C/SIGTERM, acted on at a safe point (``when``: "before it started")."""

    def __init__(self, signal_name: str = "SIGINT", when: str | None = None):
        super().__init__(f"{signal_name} {when}" if when else signal_name)
        self.signal_name = signal_name


class StopRequested(Interrupted):
    """The loop stopped between steps on a signal; ``checkpoint`` is what it saved."""

    def __init__(self, signal_name: str, step: int, checkpoint: Any):
        super().__init__(signal_name, f"at step {step}")
        self.step, self.checkpoint = step, checkpoint


class TrialInterrupted(Exception):
    """A sweep's trial stopped by a signal, carried out of the trial's job as an Exception:
    Hydra then returns it as the job's result (a BaseException would make joblib kill the
    other workers, whose trials are stopping cleanly), and the sweep stops."""

    def __init__(self, signal_name: str = "SIGINT"):
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name = signal_name

    def __reduce__(self) -> Any:  # crosses process boundaries (joblib)
        return (TrialInterrupted, (self.signal_name,))


def is_interrupt(error: BaseException | None) -> bool:
    """Whether ``error`` is an interrupt or comes from one: an exception whose cause or
    context chain holds a KeyboardInterrupt (a library turned the signal into its own error)."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        if isinstance(e, (KeyboardInterrupt, TrialInterrupted)):
            return True
        seen.add(id(e))
        todo += [e.__cause__, e.__context__]
    return False


def exit_status(name: str) -> int:
    """The shell's exit status of a process stopped by the signal ``name``: 128 + its number
    (130 for SIGINT, Ctrl-C; 143 for SIGTERM, ``kill``)."""
    return 128 + int(getattr(signal.Signals, name, signal.SIGINT))


def signal_name(error: BaseException | None) -> str:
    """The signal behind an interrupt (the recorded one, else the error's, else SIGINT)."""
    return INTERRUPTS.requested or getattr(error, "signal_name", None) or "SIGINT"
