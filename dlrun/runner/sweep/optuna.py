"""The Optuna sweeper's work (``hydra/sweeper=dlrun_optuna``; imported when an Optuna sweep
starts, not at every Hydra start). The search space is :mod:`.space`'s.

Trials are asked for in batches of ``n_jobs`` (``study.ask``), launched by Hydra's launcher
(the joblib one runs a batch in parallel), and told back (``study.tell``) with the metric the
task function returned, or as FAIL when the trial failed. The study lives in an RDB storage
(SQLite in the sweep folder unless ``storage`` names another URL), so rerunning the command
continues it; ``n_trials`` counts every trial of the study that ran to an outcome, so
interrupted trials are made up for. While a batch runs, the sweeper records the trials'
heartbeats: a trial whose process vanished (a crash, a machine switched off) is failed by
the next run after three heartbeat intervals and does not count.
"""
from __future__ import annotations

import functools
import logging
import math
import threading
import warnings
from pathlib import Path
from typing import Any, List, Optional, Sequence

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import distribution_to_json
from optuna.trial import TrialState

from ..interrupt import INTERRUPTS
from ..publish import sweep_end
from .checks import check_job
from .grid import launch
from .resolvers import TRIAL_ENV
from .session import SweepSession, active_session, default_storage, hide_password
from .space import Param, first_line, parse_search_space
from .table import TrialRow
from .trial import (FAILED, FINISHED, KILLED, MAX_ERROR, RUNNING, TRIAL_FILE, SweepError,
                    iter_trial_dirs, read_json)

log = logging.getLogger(__name__)


class _Heartbeat:
    """Records the heartbeat of running trials in the storage, every ``interval`` seconds."""

    def __init__(self, storage: Any, trial_ids: Sequence[int], interval: int):
        self.storage, self.trial_ids, self.interval = storage, list(trial_ids), interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="dlrun-optuna-heartbeat",
                                        daemon=True)

    def _beat(self) -> None:
        while True:
            for trial_id in self.trial_ids:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception:  # noqa: BLE001 - a busy database: the next beat will do
                    log.debug("heartbeat of trial %s failed", trial_id, exc_info=True)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "_Heartbeat":
        if self.interval > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)


class OptunaSweeperImpl:
    """``DlrunOptunaSweeper``'s work: the study, its trials in batches, the sweep's end."""

    def __init__(self, metric: str, direction: Any, n_trials: int, n_jobs: int,
                 study_name: str, storage: Optional[str], sampler: Any, params: Any,
                 heartbeat_interval: int = 10) -> None:
        self.metric = str(metric)
        self.direction = str(getattr(direction, "value", direction))
        self.n_trials = int(n_trials)
        self.n_jobs = max(1, int(n_jobs))
        self.study_name = str(study_name)
        self.storage_url = storage
        self.sampler = sampler
        self.params = dict(params or {})
        self.heartbeat_interval = int(heartbeat_interval or 0)
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    # --- the sweep ------------------------------------------------------------------------------
    def sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.hydra_context is not None
        session = active_session() or SweepSession.start(self.config)
        session.metric, session.direction = self.metric, self.direction
        self.sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        with session.running(self.config):
            if self.direction not in ("maximize", "minimize"):
                raise SweepError(f"hydra.sweeper.direction={self.direction}: use maximize or minimize")
            if self.n_trials < 1:  # refused before the parent run is kept: none is left FAILED
                raise SweepError(f"hydra.sweeper.n_trials={self.n_trials}: a study counts its "
                                 "trials in all; give at least 1 (hydra.sweeper.n_trials=20)")
            lines = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
            params, fixed = parse_search_space(lines, self.hydra_context.config_loader)
            self._check_space(params, fixed)
            study = self._open_study(params, fixed)
            session.rows = functools.partial(self._rows, study)
            self.sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")
            session.started = True
            self._loop(study, params, fixed)
        sweep_end(session, self.config, study)  # Optuna's plots; the best trial's model registered
        return None

    def _check_space(self, params: Sequence[Param], fixed: Sequence[str]) -> None:
        """Composes the config at the ends of every range and with every choice (and checks
        the ``_target_`` arguments), so that a mistake shows before any trial runs."""
        assert self.hydra_context is not None
        base = {p.key: p.corners[0] for p in params}
        first = list(fixed) + [p.override(base[p.key]) for p in params]
        check_job(self.hydra_context.config_loader, self.config, first)
        seen = {tuple(first)}
        for p in params:
            for corner in p.corners:
                overrides = list(fixed) + [q.override(corner if q is p else base[q.key])
                                           for q in params]
                if tuple(overrides) in seen:
                    continue
                seen.add(tuple(overrides))
                check_job(self.hydra_context.config_loader, self.config, overrides,
                            culprit=f"{p.override(corner)} (from the search space "
                                    f"{p.key}: {p.spec})")

    def _open_study(self, params: Sequence[Param], fixed: Sequence[str]) -> optuna.Study:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # heartbeats without study.optimize are what a sweep driving ask/tell needs
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        url = self.storage_url or default_storage(self.sweep_dir)
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        hb = self.heartbeat_interval or None
        try:
            self.storage = optuna.storages.RDBStorage(
                url, engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite")
                else None, heartbeat_interval=hb, grace_period=3 * hb if hb else None)
            study = optuna.create_study(storage=self.storage, study_name=self.study_name,
                                        direction=self.direction, load_if_exists=True)
        except Exception as e:  # noqa: BLE001 - a wrong URL, a missing driver, a locked file
            raise SweepError(f"the Optuna storage {hide_password(url)} cannot be opened: "
                             f"{type(e).__name__}: {first_line(e)}; check "
                             "hydra.sweeper.storage (an SQLAlchemy URL)") from None
        ident = {"space": {p.key: distribution_to_json(p.dist) for p in params},
                 "fixed": sorted(fixed), "metric": self.metric, "direction": self.direction}
        stored = study.user_attrs.get("dlrun")
        if study.direction.name.lower() != self.direction:
            stored = dict(stored or ident, direction=study.direction.name.lower())
        if stored is None:
            study.set_user_attr("dlrun", ident)
        elif stored != ident:
            diffs = [f"  {k}: {stored.get(k)} (now {ident[k]})" for k in ident
                     if stored.get(k) != ident[k]]
            raise SweepError(
                f"the study {self.study_name!r} in {hide_password(url)} was run with other "
                "settings:\n" + "\n".join(diffs) + "\nRerun it with the same ones to continue "
                "it, or start another study with hydra.sweeper.study_name=NEW_NAME")
        study.sampler = self._make_sampler(len(study.trials))
        self.url = url
        return study

    def _make_sampler(self, n_before: int) -> Any:
        sampler = self.sampler
        self.seed = None
        if sampler is None:
            return optuna.samplers.TPESampler()
        if isinstance(sampler, functools.partial):
            kwargs = dict(sampler.keywords)
            if kwargs.get("seed") is not None:
                # a resumed study: another seed than the first run's, or its first trials repeat
                kwargs["seed"] = self.seed = int(kwargs["seed"]) + n_before
            try:
                return sampler.func(*sampler.args, **kwargs)
            except Exception as e:  # noqa: BLE001
                raise SweepError(f"hydra.sweeper.sampler cannot be built: "
                                 f"{type(e).__name__}: {first_line(e)}") from None
        return sampler

    @staticmethod
    def _counted(study: optuna.Study) -> int:
        """Trials that count towards n_trials: run to an outcome, or running (elsewhere)."""
        n = 0
        for t in study.get_trials(deepcopy=False):
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING,
                           TrialState.WAITING):
                n += 1
            elif t.state == TrialState.FAIL and t.user_attrs.get("status") == FAILED:
                n += 1
        return n

    def _loop(self, study: optuna.Study, params: Sequence[Param], fixed: Sequence[str]) -> None:
        optuna.storages.fail_stale_trials(study)
        done = self._counted(study)
        sampler = type(study.sampler).__name__
        seed = self.seed
        print(f"Optuna study {self.study_name!r} ({hide_password(self.url)}): "
              f"{done} of {self.n_trials} trials done"
              + (f", {self.n_trials - done} to go, {min(self.n_jobs, self.n_trials - done)} at a time"
                 if done < self.n_trials else
                 "; raise hydra.sweeper.n_trials to run more")
              + f"; {self.direction} {self.metric}; {sampler}"
              + (f" (seed {seed})" if seed is not None else ""), flush=True)
        while True:
            optuna.storages.fail_stale_trials(study)
            todo = self.n_trials - self._counted(study)
            if todo <= 0:
                return
            INTERRUPTS.check()  # Ctrl-C: no more trials asked (the study stays resumable)
            trials: list = []
            try:
                for _ in range(min(self.n_jobs, todo)):
                    trials.append(study.ask({p.key: p.dist for p in params}))
                jobs = []
                for trial in trials:
                    overrides = list(fixed) + [p.override(trial.params[p.key]) for p in params]
                    trial.set_user_attr("overrides", overrides)
                    jobs.append(overrides + [f"++hydra.job.env_set.{TRIAL_ENV}={trial.number}"])
                with _Heartbeat(self.storage, [t._trial_id for t in trials],
                                self.heartbeat_interval):
                    # every asked trial starts (one asked after a Ctrl-C stops at once):
                    # each has its folder, which the study's trials and the table agree on
                    returns = launch(self.launcher, jobs, [t.number for t in trials],
                                     self.sweep_dir, one_by_one=False)
            except (KeyboardInterrupt, SystemExit):  # Ctrl-C: the study stays resumable
                self._settle(study, trials, None, interrupted=True)
                raise
            problem = self._settle(study, trials, returns)
            if problem:
                raise SweepError(problem)

    def _settle(self, study: optuna.Study, trials: Sequence[Any], returns: Any,
                interrupted: bool = False) -> str | None:
        """Tells the study how each trial of a batch ended; returns a problem of the sweep's
        own (its metric is not a metric of the runs), which stops it."""
        problem = None
        for i, trial in enumerate(trials):
            ret = returns[i] if returns is not None and i < len(returns) else None
            trial_dir = next(iter_trial_dirs(self.sweep_dir, trial.number), None)
            record = read_json(trial_dir / TRIAL_FILE) if trial_dir else None
            status, value, error, kind = KILLED, None, None, "error"
            if record is not None:
                status, value = record.get("status", KILLED), record.get("value")
                error, kind = record.get("error"), record.get("kind", "error")
            elif ret is not None and ret.status == JobStatus.COMPLETED:
                status, value = FINISHED, ret.return_value
            elif ret is not None and ret.status == JobStatus.FAILED:
                exc = ret._return_value
                status, error = FAILED, first_line(exc) if exc is not None else "failed"
                kind = getattr(exc, "kind", "error")
            elif interrupted:
                status, error = KILLED, "interrupted"
            else:
                status, error = FAILED, "the trial's process died without a result"
            if status == FINISHED:
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    status, error = FAILED, f"the run returned {value!r}, not a number"
                else:
                    if not math.isfinite(value):
                        status, error = FAILED, f"{self.metric} is {value}: the run diverged"
            elif status == KILLED and not error:
                error = "interrupted" if interrupted else "the trial stopped without a result"
            attrs = {"status": status, "error": (error or "")[:MAX_ERROR] or None,
                     "duration": record.get("duration") if record else None,
                     "blas_threads": record.get("blas_threads") if record else None,
                     "dir": str(trial_dir) if trial_dir else None,
                     "test_value": record.get("test_value") if record else None}
            try:
                for k, v in attrs.items():
                    if v is not None:
                        trial.set_user_attr(k, v)
                if status == FINISHED:
                    study.tell(trial, value)
                else:
                    study.tell(trial, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # failed meanwhile as stale (a very long trial on a slow database)
            if kind == "metric" and problem is None:
                problem = error
        return problem

    def _rows(self, study: optuna.Study) -> list[TrialRow]:
        rows = []
        for t in study.get_trials(deepcopy=False):
            a = t.user_attrs
            if t.state == TrialState.COMPLETE:
                status = FINISHED
            elif t.state == TrialState.FAIL:
                status = a.get("status") or KILLED
            elif t.state == TrialState.RUNNING:
                status = RUNNING
            elif t.state == TrialState.PRUNED:
                status = "PRUNED"
            else:
                continue
            duration = a.get("duration")
            if duration is None and t.duration is not None:
                duration = t.duration.total_seconds()
            error = a.get("error")
            if status == KILLED and not error:
                error = "the trial stopped without a result (interrupted, or its process died)"
            overrides = a.get("overrides") or [f"{k}={v}" for k, v in t.params.items()]
            rows.append(TrialRow(number=t.number, overrides=list(overrides), status=status,
                                 value=t.value if status == FINISHED else None,
                                 duration=duration, error=error, dir=a.get("dir"),
                                 metric=self.metric, threads=a.get("blas_threads"),
                                 direction=self.direction, test_value=a.get("test_value")))
        return rows
