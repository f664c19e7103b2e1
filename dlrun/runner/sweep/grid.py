"""The grid sweeper's loop (``hydra/sweeper=dlrun_basic``): Hydra's basic sweep where a trial
that fails is recorded and the sweep goes on, and :func:`launch`, which both sweepers use to
hand a batch of trials to Hydra's launcher and survive a trial whose process dies."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from omegaconf import OmegaConf

from ..console import error as print_error
from ..interrupt import INTERRUPTS, Interrupted, is_interrupt, signal_name
from ..publish import sweep_end
from .checks import check_job, clean_hydra_error
from .session import SweepSession, active_session
from .trial import FAILED, FINISHED, MAX_ERROR, TRIAL_FILE, read_record, write_json


class _Jobs(list):
    """A batch of jobs that stops yielding them once a signal is recorded: a launcher that
    goes through its jobs one by one (Hydra's basic launcher, joblib's dispatch of the next
    job) starts no trial after a Ctrl-C, and returns what the started ones gave."""

    def __iter__(self) -> Any:
        for job in super().__iter__():
            if INTERRUPTS.requested is not None:
                return
            yield job


def _stop_if_interrupted(results: Sequence[Any]) -> None:
    """After a batch: a recorded signal, or a trial stopped by one (in a worker, which got
    its own Ctrl-C or SIGTERM), stops the sweep before it launches anything else."""
    for r in results:
        error = getattr(r, "_return_value", None)
        if isinstance(error, BaseException) and is_interrupt(error):
            INTERRUPTS.note(signal_name(error))
    INTERRUPTS.check()


def launch(launcher: Any, jobs: Sequence[Sequence[str]], numbers: Sequence[int],
           sweep_dir: Path, one_by_one: bool = True) -> list[Any]:
    """``launcher.launch`` for a batch of trials, surviving a trial whose process dies.

    When a trial's process dies (killed, out of memory, a crash), joblib ends the whole
    batch. The trials of the batch that left no result then run again, one at a time: a
    trial that dies again alone is recorded as FAILED in its folder, the others finish.
    Returns the JobReturn of each job (None where its process died).

    A Ctrl-C or SIGTERM (recorded by ``dlrun.runner.interrupt``) stops the batch between its
    trials (``one_by_one``: no trial starts after it; else every job of the batch is started,
    and one started after the signal stops at once) and raises Interrupted once the started
    trials have stopped; an error that comes from a signal is that signal, not a dead trial.
    """
    batch = _Jobs(list(j) for j in jobs) if one_by_one else [list(j) for j in jobs]
    try:
        results = list(launcher.launch(batch, initial_job_idx=numbers[0]))
    except Exception as e:  # noqa: BLE001 - KeyboardInterrupt and SystemExit go through
        if INTERRUPTS.requested is not None or is_interrupt(e):
            raise Interrupted(signal_name(e)) from e
        first = e
    else:
        _stop_if_interrupted(results)
        return results
    results: list[Any] = [None] * len(jobs)
    if len(jobs) > 1:
        print_error(f"a trial's process died ({type(first).__name__}), which ended its batch; "
                    "the trials of the batch without a result run again, one at a time")
    for i, (job, number) in enumerate(zip(jobs, numbers)):
        if len(jobs) > 1 and read_record(sweep_dir, number)[1] is not None:
            continue
        death: BaseException | None = first if len(jobs) == 1 else None
        if death is None:
            INTERRUPTS.check()
            try:
                results[i] = launcher.launch([list(job)], initial_job_idx=number)[0]
                _stop_if_interrupted(results[i:i + 1])
                continue
            except Exception as e:  # noqa: BLE001
                if INTERRUPTS.requested is not None or is_interrupt(e):
                    raise Interrupted(signal_name(e)) from e
                death = e
        folder, record = read_record(sweep_dir, number)
        text = (f"the trial's process died: {type(death).__name__}: "
                f"{clean_hydra_error(death)}")[:MAX_ERROR]
        print_error(f"trial {number}: {text}")
        if folder is not None and (record is None or record.get("status") != FINISHED):
            write_json(folder / TRIAL_FILE, {
                "number": number, "status": FAILED, "error": text, "kind": "died",
                "overrides": [o for o in job if not o.startswith(("hydra.", "++hydra."))],
                "dir": str(folder)})
    return results


def run_grid(sweeper: Any, arguments: list[str]) -> Any:
    """``DlrunBasicSweeper.sweep``: Hydra's basic sweep (every combination, in batches of
    ``max_batch_size``) where a failing trial is recorded and the sweep goes on."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    session = active_session() or SweepSession.start(sweeper.config)
    session.metric = sweeper.metric or session.metric
    session.direction = sweeper.direction or session.direction
    returns = []
    with session.running(sweeper.config):
        lines = sweeper._parse_config() + list(arguments)
        parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
        sweeper.overrides = sweeper.split_arguments(parser.parse_overrides(lines),
                                                    sweeper.max_batch_size)
        sweep_dir = Path(str(sweeper.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(sweeper.config, sweep_dir / "multirun.yaml")
        index = 0
        while not sweeper.is_done():
            INTERRUPTS.check()  # Ctrl-C: no more batches (session.running prints the table)
            batch = sweeper.get_job_batch()
            for overrides in batch:  # composes and checks every job: mistakes show up now
                check_job(sweeper.hydra_context.config_loader, sweeper.config, overrides)
            session.started = True
            results = launch(sweeper.launcher, batch, range(index, index + len(batch)),
                             sweep_dir)
            index += len(batch)
            returns.append(results)
    sweep_end(session, sweeper.config)  # the best trial's model registered (logger.register_model)
    return returns
