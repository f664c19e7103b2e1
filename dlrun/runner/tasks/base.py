"""What every task receives from the runner (``Setup``), and the defaults of the loop's
questions to a task (``TaskBase``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping, Sequence

import numpy as np

from ..console import EPOCH_COLUMNS, RESULT_ROWS, Column, Reporter
from ..limits import split_batches
from ..loop import StepResult, Totals

EVAL_BATCH_SIZE = 256  # evaluation keeps no graph, so larger batches are cheap and faster


@dataclass
class Setup:
    """The pieces the runner built from the config groups."""

    cfg: Any              # the whole composed config (DictConfig)
    ctx: Any              # the device context (dlrun.engine.Context)
    data: Any             # what the dataset group built (a Splits for classification)
    net: Any              # the model (a dlrun.nn.Block), initialized on ctx
    loss: Any             # the loss block
    trainer: Any          # dlrun.optim.Trainer over the model's parameters (None: the task builds its own)
    seed: int             # the run's seed (data shuffling follows it)
    report: Reporter
    run_dir: Path = Path(".")  # the run folder (a task's own files go there)
    checkpoints: Any = None   # RunCheckpoints (runner/checkpoint.py); None: the run writes none
    resume_from: Any = None   # the Checkpoint this run continues; None: a fresh start
    world: Any = None         # dlrun.parallel.World: this rank's place in a data-parallel job
    worker_batch: int = 0     # this worker's batch size (0: trainer.batch_size)
    # a Trainer (with its own optimizer and schedule, built from the optimizer and schedule
    # groups) over the given parameters: for a task with trainers of its own (a GAN's D and G)
    make_trainer: Callable[[Any], Any] | None = None
    callbacks: list = field(default_factory=list)  # dlrun.runner.callbacks, in calling order

    @property
    def task_cfg(self) -> Any:
        """The ``task`` group's settings (those of this kind of training)."""
        return self.cfg.get("task") or {}

    # --- batches ---------------------------------------------------------------------------
    @property
    def workers(self) -> int:
        return 1 if self.world is None else self.world.size

    @property
    def batch_size(self) -> int:
        """The batch of one step of the whole job (every worker's part together)."""
        return (self.worker_batch or int(self.cfg.trainer.batch_size)) * self.workers

    @property
    def eval_batch_size(self) -> int:
        """``trainer.eval_batch_size``; null: the training batch, at least EVAL_BATCH_SIZE
        (evaluation keeps no graph)."""
        tcfg = self.cfg.trainer
        return int(tcfg.get("eval_batch_size") or max(int(tcfg.batch_size), EVAL_BATCH_SIZE))

    @property
    def shard(self) -> tuple[int, int]:
        """(this worker's index, workers): a loader's ``shard`` argument."""
        return (0, 1) if self.world is None else (self.world.rank, self.world.size)

    def batch_text(self) -> str:
        """The batch of a step as the header shows it: ``64``, or ``128 (2 workers x 64)``."""
        if self.workers == 1:
            return str(self.batch_size)
        return f"{self.batch_size} ({self.workers} workers x {self.batch_size // self.workers})"

    # --- data parallelism ------------------------------------------------------------------
    def gather(self, part: Any, axis: int) -> Any:
        """The workers' parts of a host array joined along ``axis``, in rank order (every
        worker gets the whole; one worker's part is the whole)."""
        if self.workers == 1:
            return part
        return np.concatenate(self.world.allgather(part), axis=axis)

    def job_totals(self, *values: float) -> list[float]:
        """``values`` summed over the workers (an epoch's loss sum and example count)."""
        if self.workers == 1:
            return list(values)
        return [sum(v) for v in zip(*self.world.allgather(list(values)))]

    def own_part(self, *totals: float) -> list[float]:
        """This worker's part of job totals a checkpoint saved: all of them on rank 0, none
        elsewhere (so that ``job_totals`` gives them back)."""
        return list(totals) if self.shard[0] == 0 else [type(t)(0) for t in totals]


class TaskBase:
    """A task's answers to the loop where it has nothing of its own to say.

    A task sets ``steps`` (per epoch) and defines ``describe``, ``batches``, ``train_step``
    and ``evaluate`` (of the ``val`` or the ``test`` split: metrics named ``<split>/...``);
    ``primary`` declares the validation metric that decides (and whether higher or lower is
    better), ``columns`` and ``results`` what the console shows.
    """

    primary: tuple[str, str] = ("val/accuracy", "max")
    columns: Sequence[Column] = EPOCH_COLUMNS
    results: Sequence[Column] = RESULT_ROWS
    distributed = False  # True: it trains data-parallel (each worker on its part of a batch)
    own_trainers = False  # True: it builds its trainers with setup.make_trainer (a GAN's D and G)
    steps: int = 0

    def __init__(self, setup: Setup):
        self.setup = setup
        self.tcfg = setup.cfg.trainer
        # the trainers whose state the checkpoints hold, by name ("": the run's)
        self.trainers: dict[str, Any] = {} if setup.trainer is None else {"": setup.trainer}

    def describe(self) -> Sequence[tuple[str, str]]:
        return []

    def prepare(self) -> None:
        """Work before the first step (and before a checkpoint is restored)."""

    def batches(self, epoch: int, skip: int) -> Iterable[Any]:
        raise NotImplementedError

    def train_step(self, batch: Any, update: Callable[[Any, int], None]) -> StepResult:
        raise NotImplementedError

    def train_metrics(self, totals: Totals) -> dict[str, float]:
        """Metrics of the epoch's training beyond ``train/loss`` and samples/s."""
        return {}

    def converged(self, metrics: Mapping[str, float]) -> bool:
        """Whether training is done before its epochs are (after the epoch of ``metrics``)."""
        return False

    @property
    def has_val(self) -> bool:
        """Whether the data has a validation split (``dataset.val_fraction=0``: none)."""
        return getattr(self.setup.data, "val", None) is not None

    def evaluate(self, split: str = "val") -> dict[str, float]:
        """The model's metrics on ``split`` (``val`` or ``test``), named ``<split>/...``, over
        the batches :meth:`eval_batches` leaves."""
        raise NotImplementedError

    def eval_batches(self, split: str, batches: Collection[Any]) -> Iterable[Any]:
        """The first of ``split``'s ``batches`` that an evaluation goes through: all, or
        ``trainer.limit_<split>_batches`` of them (one with ``fast_dev_run``)."""
        return islice(batches, split_batches(len(batches), self.tcfg, split))

    def finish(self, metrics: dict[str, float]) -> dict[str, float]:
        """The run's final metrics from the last epoch's."""
        return metrics

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The task's own counters (JSON) and arrays for a checkpoint."""
        return {}, {}

    def load_state(self, state: Mapping[str, Any], arrays: Mapping[str, Any]) -> None:
        """Takes back what ``state()`` saved, when a run resumes."""
