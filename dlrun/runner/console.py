"""What a run shows on the console: a header, a live progress bar, one row per epoch, results.

On a terminal the progress bar (samples/s, ETA) is redrawn in place with rich. When stdout
is not a terminal (CI logs, ``| cat``, files) the same information comes as plain lines: no
cursor movement, no colour codes, progress lines at most every ``plain_interval`` seconds, and
no line broken at a width (rich would break them at ``$COLUMNS``, else 80), so that a run
folder or an error message stays whole on its line for ``grep``. Everything printed also goes,
as plain text, to the logger ``dlrun.console``: the run's ``dlrun.log`` (no progress bar).
"""
from __future__ import annotations

import io
import logging
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from rich import box
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task,
                           TextColumn)
from rich.table import Table
from rich.text import Text

# a column of the per-epoch table, or a row of the results table: (label, metric key, format)
Column = tuple[str, str, str]

# classification's; a task can declare its own ``columns`` and ``results``
EPOCH_COLUMNS: Sequence[Column] = (
    ("epoch", "epoch", "{}"),
    ("train loss", "train/loss", "{:.4f}"),
    ("val loss", "val/loss", "{:.4f}"),
    ("val acc", "val/accuracy", "{:.2%}"),
    ("samples/s", "train/samples_per_sec", "{:,.0f}"),
    ("time", "epoch_time", "{:.1f}s"),
)
RESULT_ROWS: Sequence[Column] = (
    ("test accuracy (selected model)", "test/accuracy", "{:.2%}"),
    ("test loss", "test/loss", "{:.4f}"),
    ("val accuracy (selected model)", "val/accuracy", "{:.2%}"),
    ("selected epoch", "best/epoch", "{}"),
    ("selected step", "best/step", "{}"),  # validations every N steps
    ("train loss (last epoch)", "train/loss", "{:.4f}"),
    ("samples/s (last epoch)", "train/samples_per_sec", "{:,.0f}"),
    ("epochs", "epoch", "{}"),
    ("steps", "steps", "{}"),
)


class Reporter(Protocol):
    """Where the training loop, the tasks and the export send progress, metrics and files
    (the run's is ``dlrun.runner.report.RunReporter``: the console and the tracker)."""

    def start(self, epochs: int, steps_per_epoch: int, columns: Sequence[Column]) -> None: ...
    def epoch_start(self, epoch: int) -> None: ...
    def step(self, epoch: int, step: int, samples: int, loss: float | None = None) -> None: ...
    def train_losses(self, values: Sequence[tuple[int, float]]) -> None: ...
    def validation(self, global_step: int, metrics: Mapping[str, float]) -> None: ...
    def epoch_end(self, epoch: int, global_step: int, metrics: Mapping[str, float]) -> None: ...
    def artifact(self, path: Path | str, artifact_path: str | None = None) -> None: ...
    def note(self, text: str) -> None: ...


class SamplesPerSecond(ProgressColumn):
    """Throughput of the running epoch, in the task's unit per second (samples, tokens)."""

    def render(self, task: Task) -> Text:
        rate, unit = task.fields.get("rate"), task.fields.get("unit", "samples")
        return Text(f"{rate:,.0f} {unit}/s" if rate else f"- {unit}/s", style="cyan",
                    no_wrap=True)


class RunETA(ProgressColumn):
    """Time left for the whole run (all epochs), from the running epoch's pace."""

    def render(self, task: Task) -> Text:
        eta = task.fields.get("eta")
        return Text("eta " + (format_duration(eta) if eta is not None else "-:--"),
                    style="yellow", no_wrap=True)


# the width a console that is not a terminal renders at: no line is broken, no table squeezed
UNWRAPPED = 1 << 20
LOG = logging.getLogger("dlrun.console")  # what the console shows, for the run's dlrun.log


def plain(*objects: Any) -> str:
    """``objects`` as rich prints them, without colour or cursor codes, lines unbroken."""
    out = io.StringIO()
    Console(file=out, width=UNWRAPPED, soft_wrap=True, color_system=None, highlight=False,
            force_terminal=False).print(*objects)
    return out.getvalue().rstrip("\n")


def make_console(stderr: bool = False, soft_wrap: bool = False) -> Console:
    """A console on stdout (or stderr) for dlrun's output.

    On a terminal, rich's own: its width, and lines broken at it unless ``soft_wrap`` (then
    the terminal folds them). Anywhere else (a pipe, a log file, CI) every line is as long as
    its text and a table as wide as its cells: what is read later with ``grep`` should not
    depend on the ``$COLUMNS`` of the shell that started the run.
    """
    console = Console(stderr=stderr, highlight=False, soft_wrap=soft_wrap)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=UNWRAPPED)


def plural(count: int, noun: str) -> str:
    """``1 epoch``, ``3 epochs``."""
    return f"{count} {noun}" + ("" if int(count) == 1 else "s")


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ConsoleReporter:
    """Prints a run's progress; ``interactive`` picks the live bar (default: stdout is a tty)."""

    def __init__(self, console: Console | None = None, interactive: bool | None = None,
                 plain_interval: float = 15.0):
        self.console = console or make_console()
        self.interactive = self.console.is_terminal if interactive is None else interactive
        self.plain_interval = plain_interval
        self._progress: Progress | None = None
        self._task: Any = None
        self._epochs = 0
        self._steps = 0
        self._epoch_start = 0.0
        self._samples = 0
        self._last_plain = 0.0
        self._loss: float | None = None
        self._columns: list[tuple[str, str, str, int]] = []
        self._unit = "samples"  # what the rate counts: the task's throughput column's unit

    def print(self, *objects: Any, soft_wrap: bool | None = None) -> None:
        """Prints ``objects`` on the console and, as plain text, to the run's log."""
        self.console.print(*objects, soft_wrap=soft_wrap)
        if objects and LOG.isEnabledFor(logging.INFO):
            LOG.info(plain(*objects))

    # --- run-level ------------------------------------------------------------------------
    def header(self, title: str, rows: Sequence[tuple[str, str]]) -> None:
        self.print(Text(title, style="bold"))
        width = max(len(k) for k, _ in rows) if rows else 0
        for key, value in rows:
            self.print(Text.assemble(("  " + key.ljust(width) + "  ", "dim"), value))
        self.console.print()

    def start(self, epochs: int, steps_per_epoch: int, columns: Sequence[Column] = EPOCH_COLUMNS) -> None:
        self._epochs, self._steps = epochs, steps_per_epoch
        self._columns = [(label, key, fmt, max(len(label), 9)) for label, key, fmt in columns]
        self._unit = next((label.split("/")[0] for label, key, _ in columns
                           if key.endswith("_per_sec")), "samples")
        header = "  ".join(f"{label:>{w}}" for label, _, _, w in self._columns)
        self.print(Text(header, style="bold"))
        if self.interactive:
            self._progress = Progress(
                TextColumn("[progress.description]{task.description}"), BarColumn(bar_width=24),
                MofNCompleteColumn(), SamplesPerSecond(), TextColumn("{task.fields[loss]}"),
                RunETA(), console=self.console, transient=True)
            self._progress.start()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # --- epoch-level ----------------------------------------------------------------------
    def epoch_start(self, epoch: int) -> None:
        self._epoch_start = self._last_plain = time.perf_counter()
        self._samples = 0
        self._loss = None
        if self._progress is not None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(f"epoch {epoch}/{self._epochs}",
                                                 total=self._steps, rate=None, loss="", eta=None,
                                                 unit=self._unit)

    def step(self, epoch: int, step: int, samples: int, loss: float | None = None) -> None:
        """Called after each training step; ``loss`` when a fresh value was fetched."""
        self._samples += samples
        if loss is not None:
            self._loss = loss
        now = time.perf_counter()
        elapsed = max(now - self._epoch_start, 1e-9)
        rate = self._samples / elapsed
        if self._progress is not None:
            left = (self._epochs - epoch) * self._steps + (self._steps - step)
            fields = {"rate": rate, "eta": left * elapsed / step}
            if loss is not None:
                fields["loss"] = f"loss {loss:.4f}"
            self._progress.update(self._task, completed=step, **fields)
        elif now - self._last_plain >= self.plain_interval and step < self._steps:
            self._last_plain = now
            left = (self._epochs - epoch) * self._steps + (self._steps - step)
            eta = left * elapsed / step
            loss_text = f"  loss {self._loss:.4f}" if self._loss is not None else ""
            self.print(f"  epoch {epoch}/{self._epochs}  step {step}/{self._steps}"
                               f"{loss_text}  {rate:,.0f} {self._unit}/s  eta {format_duration(eta)}")

    def epoch_end(self, metrics: Mapping[str, float]) -> None:
        cells = [f"{fmt.format(metrics[key]) if key in metrics else '-':>{width}}"
                 for _, key, fmt, width in self._columns]
        self.print("  ".join(cells))

    # --- the end --------------------------------------------------------------------------
    def results(self, title: str, rows: Sequence[tuple[str, str]],
                footer: Sequence[str] = ()) -> None:
        self.close()
        table = Table(title=title, box=box.SIMPLE_HEAD if self.interactive else box.ASCII2,
                      show_header=True, title_justify="left", title_style="bold")
        table.add_column("result")
        table.add_column("value", overflow="fold")
        for key, value in rows:
            table.add_row(key, value)
        self.console.print()
        self.print(table)
        for line in footer:
            self.print(line, soft_wrap=True)


def warning(message: str) -> None:
    """A warning for the user on stderr (and in the run's log): the run goes on."""
    make_console(stderr=True, soft_wrap=True).print(Text.assemble(("warning: ", "yellow"), message))
    LOG.warning(message)


def error(message: str, hint: str | None = None) -> None:
    """An error for the user on stderr: the message, then how to get more detail."""
    console = make_console(stderr=True, soft_wrap=True)
    console.print(Text.assemble(("error: ", "bold red"), message))
    if hint:
        console.print(Text(hint, style="dim"))
    sys.stderr.flush()
