"""The grid sweeper's loop (``hydra/sweeper=dlrun_basic``): Hydra's basic sweep where a trial
that fails is recorded and the sweep goes on, and :func:`launch`, which both sweepers use to
hand a batch of trials to Hydra's launcher and survive a trial whose process dies."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from omegaconf import OmegaConf

from ..console import error as print_error
from .checks import check_job, clean_hydra_error
from .session import SweepSession, active_session
from .trial import FAILED, FINISHED, MAX_ERROR, TRIAL_FILE, read_record, write_json


def launch(launcher: Any, jobs: Sequence[Sequence[str]], numbers: Sequence[int],
           sweep_dir: Path) -> list[Any]:
    """``launcher.launch`` for a batch of trials, surviving a trial whose process dies.

    When a trial's process dies (killed, out of memory, a crash), joblib ends the whole
    batch. The trials of the batch that left no result then run again, one at a time: a
    trial that dies again alone is recorded as FAILED in its folder, the others finish.
    Returns the JobReturn of each job (None where its process died).
    """
    try:
        return list(launcher.launch([list(j) for j in jobs], initial_job_idx=numbers[0]))
    except Exception as e:  # noqa: BLE001 - KeyboardInterrupt and SystemExit go through
        first = e
    results: list[Any] = [None] * len(jobs)
    if len(jobs) > 1:
        print_error(f"a trial's process died ({type(first).__name__}), which ended its batch; "
                    "the trials of the batch without a result run again, one at a time")
    for i, (job, number) in enumerate(zip(jobs, numbers)):
        if len(jobs) > 1 and read_record(sweep_dir, number)[1] is not None:
            continue
        death: BaseException | None = first if len(jobs) == 1 else None
        if death is None:
            try:
                results[i] = launcher.launch([list(job)], initial_job_idx=number)[0]
                continue
            except Exception as e:  # noqa: BLE001
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
            batch = sweeper.get_job_batch()
            for overrides in batch:  # composes and checks every job: mistakes show up now
                check_job(sweeper.hydra_context.config_loader, sweeper.config, overrides)
            session.started = True
            results = launch(sweeper.launcher, batch, range(index, index + len(batch)),
                             sweep_dir)
            index += len(batch)
            returns.append(results)
    return returns
