"""One run: compose -> build dataset, model, loss, optimizer + schedule, trainer -> task ->
the loop -> report.

The runner only wires. Every piece is built from its config group's ``_target_`` and
arguments; what differs between kinds of experiment lives in the task (``dlrun.runner.tasks``),
and what every kind shares in the loop (``dlrun.runner.loop``). With ``model.hybridize`` (the
model configs' default) the model is compiled into a graph before the task runs and exported
into the run folder after it (``dlrun.runner.export``).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import dlrun
from dlrun.parallel import World
from dlrun.parallel.launch import record_rank

from .assemble import TrainerFactory, build_model, describe_model, task_class_of
from .build import (ConfigError, allow_targets, build, check_config, check_node, make_context,
                    seed_everything)
from .callbacks import make_callbacks, objective
from .checkpoint import Checkpoint, CheckpointStore, RunCheckpoints, kept_checkpoints, write_atomic
from .console import Column, ConsoleReporter, format_duration
from .distributed import (bind_device, job_env, job_world, launch, per_worker_batch,
                          resume_with_workers, sync_batchnorm)
from .export import PREFIX, export_model, log_model_files, save_weights
from .publish import SERVING_EXAMPLE, publish_run
from .interrupt import is_interrupt
from .loop import Loop
from .report import RunReporter
from .pairing import mismatch
from .resume import check_epochs, check_tracked, identity_hash, resumed_choices, resumed_config
from .preflight import check_distributed_task, check_job, warn_large_batch
from .runlog import log_start
from .runstore import lookup_run
from .sweep import in_multirun
from .sweep.trial import MAX_ERROR
from .tasks import Setup, TaskBase
from .spool import SPOOL_NAME, Spool
from .records import flatten
from .tracking import NullTracker, TrackingError, make_tracker, mlflow_store


@dataclass
class Place:
    """Where a run happens: its config, folder, config-group choices, the checkpoint it
    continues, its worker in a data-parallel job and its device."""

    cfg: DictConfig
    run_dir: Path
    choices: dict[str, str]
    resume_from: Checkpoint | None
    world: World
    ctx: Any = None


def run(cfg: DictConfig, tags: Mapping[str, str] | None = None) -> float:
    """Runs the experiment ``cfg`` describes, its MLflow run tagged with ``tags`` too (a sweep
    trial's: they nest it under the sweep's run); returns the task's primary metric."""
    wall_start = time.perf_counter()
    logging.captureWarnings(True)  # e.g. numpy overflow warnings: to the run's log file, not the console
    check_config(cfg)  # a key no schema knows (+trainer.epocs=3), a bad _target_: before anything starts
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    run_dir = Path(hydra_cfg.runtime.output_dir)
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items()
               if not k.startswith("hydra") and v is not None}
    unfit = mismatch(cfg.model, cfg.dataset, choices)  # model=lenet dataset=pydoc: before building
    if unfit:
        raise ConfigError(unfit)
    resume_from = None
    if cfg.get("resume"):  # the run continues in its own folder, with its own config
        cfg, resume_from = resumed_config(cfg, overrides)
        run_dir = resume_from.run_dir
        choices = resumed_choices(run_dir) or choices
        check_epochs(resume_from, int(cfg.trainer.epochs), run_dir)
    world = job_world(cfg)
    if world is None:  # distributed.workers > 1: this process starts the job and waits for it
        check_job(cfg, choices, resume_from)  # in one line here, not once per rank after MPI starts
        return launch(cfg, list(hydra_cfg.overrides.task), Path(hydra_cfg.runtime.output_dir), run_dir,
                      env=job_env(tags))  # the job's rank 0 tags its run with ``tags``
    if world.size > 1:  # the job's folder is rank 0's (ranks started by hand stamp their own)
        run_dir = Path(world.allgather(str(run_dir))[0])
        record_rank(world, run_dir)
    place = Place(cfg, run_dir, choices, resume_from, world)
    if resume_from is not None:  # every check before the MLflow run is touched
        _check_resume(place)
    allow_targets(cfg.get("allowed_targets") or [])
    seed_everything(int(cfg.seed))
    place.ctx = bind_device(make_context(cfg.device), world)
    log_start(cfg, place.ctx, world)  # the run's dlrun.log: command, versions, device, config
    # in a data-parallel job rank 0 alone prints, tracks and writes the run's files
    console = ConsoleReporter() if world.is_root else ConsoleReporter(_silent_console())
    tracker = _start_tracking(place, overrides, _run_name(choices, hydra_cfg), tags)

    status, metrics, task, exported = "FAILED", {}, None, None
    try:
        task, setup = _make_task(place, RunReporter(console, tracker))
        _print_header(console, place, setup, task, tracker)
        metrics = Loop(setup, task).run()
        if not world.is_root:
            return float(metrics[objective(task.primary[0], task.has_val)])
        metrics["wall_time"] = time.perf_counter() - wall_start
        exported = _save_results(place, setup, task, metrics, tracker)
        status = "FINISHED"
    except BaseException as e:
        if is_interrupt(e):  # a signal, or a library's error made of one: KILLED, not FAILED
            status = "KILLED"
        raise
    finally:
        console.close()
        if status != "FINISHED":  # failed or stopped (sys.exc_info: the error on its way out)
            _record_failure(place, tracker, sys.exc_info()[1], status)
        try:
            tracker.finish(status)
        except TrackingError as e:
            if status == "FINISHED":
                raise TrackingError(f"{e}\nThe training itself finished; its results are in "
                                    f"{run_dir}") from e
            # the run already failed for another reason: report that one
    model_uri = publish_run(cfg, run_dir, tracker, setup, exported)
    _print_results(console, metrics, task.results, run_dir, tracker, cfg, exported, model_uri)
    return float(metrics[objective(task.primary[0], task.has_val)])


def _run_name(choices: Mapping[str, str], hydra_cfg: Any) -> str:
    name = "-".join(str(choices.get(g, "")) for g in ("model", "optimizer", "dataset"))
    if hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN":
        name += f"-{hydra_cfg.job.num}"
    return name


def _start_tracking(place: Place, overrides: Sequence[str], run_name: str,
                    extra_tags: Mapping[str, str] | None = None) -> Any:
    """Writes the resolved config into the run folder and starts the run's tracker (rank 0;
    the other ranks of a job get a NullTracker)."""
    cfg, world, resume_from = place.cfg, place.world, place.resume_from
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    text = OmegaConf.to_yaml(resolved).encode()  # atomic: a resume needs it whole
    if not world.is_root:
        return NullTracker()
    write_atomic(place.run_dir / "config.yaml", lambda f: f.write(text))
    tags = {"dlrun.version": dlrun.__version__, "dlrun.device": str(place.ctx),
            "dlrun.run_dir": str(place.run_dir.absolute()), "dlrun.task": str(place.choices.get("task", cfg.task._target_)),
            "dlrun.overrides": " ".join(overrides),
            "mlflow.source.name": "dlrun", "mlflow.source.type": "LOCAL"}
    tags.update({f"dlrun.choice.{k}": str(v) for k, v in place.choices.items()})
    if resume_from is not None:
        tags["dlrun.resumed_from_step"] = str(resume_from.step)
    if world.size > 1:
        tags["dlrun.workers"] = str(world.size)
    tracker = make_tracker(
        cfg.logger, str(cfg.experiment), run_name=run_name, params=flatten(resolved),
        tags={**tags, **(extra_tags or {})},  # a sweep trial's: nested under the sweep's run
        source_dir=Path(dlrun.__file__).parent,
        resume_run_id=resume_from.state.get("mlflow_run_id") if resume_from else None,
        spool=place.run_dir / SPOOL_NAME)
    if resume_from is None:  # a resumed run's starts once its checkpoint is restored
        tracker.start()  # mlflow's import and the run's creation overlap with the setup that follows
    return tracker


def _check_resume(place: Place) -> None:
    """What a resume checks before it touches the MLflow run: the job's workers, and (rank 0)
    that the MLflow run the checkpoint names is this folder's and holds its steps."""
    ckpt, cfg = place.resume_from, place.cfg
    resume_with_workers(ckpt, place.world, cfg)
    store = mlflow_store(cfg.logger) if place.world.is_root else None
    run_id = ckpt.state.get("mlflow_run_id")
    if store is not None and run_id:
        check_tracked(ckpt, place.run_dir, lookup_run(store[0], str(run_id)),
                      Spool(place.run_dir / SPOOL_NAME).pending)


def _make_task(place: Place, report: RunReporter) -> tuple[TaskBase, Setup]:
    """Builds the pieces the config names, in the order that fails fastest, and the task."""
    cfg, ctx, world = place.cfg, place.ctx, place.world
    for key in ("model", "loss", "optimizer", "schedule", "dataset", "init"):  # names and types, at once
        check_node(cfg[key], key)
    # pieces that need no data first, so that a bad value fails before any data is read
    loss = build(cfg.loss, "loss")
    make_trainer = TrainerFactory(cfg, world, ctx)
    data = build(cfg.dataset, "dataset")
    net = build_model(cfg, data, ctx, loss)  # hybridized: traced at its first call, after these
    if cfg.distributed.sync_batchnorm:
        sync_batchnorm(net)
    if int(cfg.trainer.accumulate_steps) > 1:  # gradients summed over batches (Gluon's way)
        for p in net.collect_params().values():
            if p.grad_req != "null":
                p.grad_req = "add"
    task_class = task_class_of(cfg)  # the dataset's or the model's own choice
    if int(cfg.trainer.accumulate_steps) > 1 and task_class.own_trainers:
        raise ConfigError(f"trainer.accumulate_steps={cfg.trainer.accumulate_steps}: the "
                          f"{place.choices.get('task', task_class.__name__)} task updates its "
                          "own trainers in turn and cannot sum batches; set trainer.accumulate_steps=1")
    check_distributed_task(task_class, place.choices.get("task", task_class.__name__), world.size)
    tracker = report.tracker
    checkpoints = RunCheckpoints(
        CheckpointStore(place.run_dir / "checkpoints",
                        kept_checkpoints(cfg.trainer.get("keep_checkpoints"), in_multirun())),
        int(cfg.trainer.checkpoint_every), net, identity_hash(cfg),
        tracker.wait_for_run, tracker.flush, world=world)  # a resume continues that MLflow run
    setup = Setup(cfg=cfg, ctx=ctx, data=data, net=net, loss=loss,
                  trainer=None if task_class.own_trainers else make_trainer(net.collect_params()),
                  seed=int(cfg.seed), report=report, run_dir=place.run_dir,
                  checkpoints=checkpoints, resume_from=place.resume_from, world=world,
                  worker_batch=per_worker_batch(cfg, world), make_trainer=make_trainer)
    if world.is_root:
        warn_large_batch(setup.batch_size, data)
    task = task_class(setup)
    setup.callbacks = make_callbacks(cfg, task.primary, task.has_val)
    if not task.has_val and any(hasattr(t.optimizer.lr_scheduler, "observe")
                                for t in task.trainers.values()):
        raise ConfigError(f"schedule={place.choices.get('schedule', 'reduce_on_plateau')} "
                          "watches a validation metric, but the dataset has no validation "
                          "split (dataset.val_fraction=0?); give it one or pick another schedule")
    return task, setup


def _print_header(console: ConsoleReporter, place: Place, setup: Setup, task: TaskBase,
                  tracker: Any) -> None:
    cfg, choices, net, world = place.cfg, place.choices, setup.net, place.world
    resumed = place.resume_from
    reduce = "NCCL (MPI where ranks share a GPU)" if place.ctx.device_type == "gpu" else "MPI"
    console.header(f"dlrun {dlrun.__version__}", [
        ("run", str(place.run_dir)),
        ("dataset", str(choices.get("dataset", cfg.dataset._target_))),
        ("model", f"{choices.get('model', '')} ({type(net).__name__}, {describe_model(net, cfg.model)})"),
        *([("resumed", f"from {resumed.source} (epoch {resumed.epoch}, step {resumed.step})")]
          if resumed is not None else []),
        ("optimizer", _describe_optimizer(choices.get("optimizer", ""), cfg.optimizer,
                                          choices.get("schedule", ""))),
        *task.describe(),
        ("device", f"{place.ctx}, seed {cfg.seed}"),
        *([("workers", f"{world.size} processes ({world.launcher}), gradients all-reduced with {reduce}")]
          if world.size > 1 else []),
        ("tracking", _describe_tracking(tracker, cfg)),
    ])


def _save_results(place: Place, setup: Setup, task: TaskBase, metrics: Mapping[str, float],
                  tracker: Any) -> Path | None:
    """The trained parameters, the exported model and results.json in the run folder, and
    the final metrics and files in the tracker; returns the exported graph file, if any."""
    cfg, run_dir, net = place.cfg, place.run_dir, setup.net
    exported = export_model(net, run_dir, setup.report) if cfg.model.get("hybridize") else None
    shared = save_weights(net, run_dir, exported)  # model.npz: the export's file, or its own
    primary, direction = task.primary
    (run_dir / "results.json").write_text(json.dumps(
        {**metrics, "primary_metric": objective(primary, task.has_val), "direction": direction},
        indent=2) + "\n")
    # once, at the end: the selected model's test figures and which validation selected it
    tracker.log_metrics({k: v for k, v in metrics.items() if k.startswith(("test/", "best/"))},
                        int(metrics.get("steps", 0)))
    tracker.log_artifact(run_dir / "config.yaml")
    if cfg.logger.log_model:
        log_model_files(tracker, run_dir, exported, shared)
    setup.checkpoints.store.finished()  # keep_checkpoints=0 (a sweep trial's default): deleted
    return exported


def _record_failure(place: Place, tracker: Any, error: BaseException | None, status: str) -> None:
    """A run that failed, diverged or was stopped leaves what there is to debug it in its
    MLflow run: the error as the tag ``dlrun.error`` and as ``error.txt`` (with its traceback),
    ``config.yaml``, the run's ``dlrun.log`` and its last checkpoint's manifest."""
    if error is None or tracker.tracking_uri is None:  # a rank > 0 returning; logger=none
        return
    run_dir = place.run_dir
    text = _error_text(error, status)
    tracker.log_tags({"dlrun.error": text[:MAX_ERROR]})  # truncated as a sweep's trial errors
    report = text if status == "KILLED" else "".join(traceback.format_exception(error))
    try:
        (run_dir / "error.txt").write_text(report if report.endswith("\n") else report + "\n")
        tracker.log_artifact(run_dir / "error.txt")
    except OSError:  # a full disk, say: the tag says it
        pass
    for name in ("config.yaml", "dlrun.log"):
        if (run_dir / name).is_file():
            tracker.log_artifact(run_dir / name)
    manifest = CheckpointStore(run_dir / "checkpoints").latest()
    if manifest is not None:
        tracker.log_artifact(manifest, "checkpoints")


def _error_text(error: BaseException, status: str) -> str:
    """One line or so for the tag: the signal that stopped the run and where, or the error."""
    if status == "KILLED" or isinstance(error, KeyboardInterrupt):
        name, step = getattr(error, "signal_name", None), getattr(error, "step", None)
        return (f"stopped by {name}" if name else "interrupted") + (
            f" after step {step}" if step is not None else "")
    message = str(error).strip()
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _silent_console() -> Any:
    """The console of a data-parallel job's ranks other than 0: their progress is rank 0's."""
    from rich.console import Console

    return Console(file=open(os.devnull, "w"))


def _describe_optimizer(name: str, node: Any, schedule: str) -> str:
    args = ", ".join(f"{k}={v}" for k, v in node.items() if k != "_target_")
    return f"{name} ({args}), schedule {schedule}"


def _describe_tracking(tracker: Any, cfg: DictConfig) -> str:
    if tracker.tracking_uri is None:
        return "off (logger=none)"
    return f"MLflow {tracker.tracking_uri}, experiment {cfg.experiment!r}"


def _print_results(console: ConsoleReporter, metrics: Mapping[str, float], rows_spec: Sequence[Column],
                   run_dir: Path, tracker: Any, cfg: DictConfig, exported: Path | None,
                   model_uri: str | None = None) -> None:
    rows = [(label, fmt.format(metrics[key])) for label, key, fmt in rows_spec if key in metrics]
    rows.append(("wall time", format_duration(metrics.get("wall_time", 0.0))
                 + f" ({metrics.get('wall_time', 0.0):.1f} s)"))
    footer = [f"run folder: {run_dir}", f"test its model again: dlrun test {run_dir}"]
    spooled = getattr(tracker, "spooled", None)
    if spooled is not None:
        footer.append(f"MLflow was unreachable: the run's records wait in {spooled}; send them "
                      f"with: dlrun sync {run_dir}")
    if exported is not None:
        footer.append(f"exported model: {exported} (its graph, without the model's class: "
                      f"dlrun predict {exported.with_name(PREFIX)})")
    if tracker.run_id:
        footer.append(f"MLflow run: {tracker.run_id} (experiment {cfg.experiment!r})")
        if tracker.run_url:
            footer.append(f"open: {tracker.run_url}")
        elif str(tracker.tracking_uri).startswith("sqlite:///"):
            db = Path(str(tracker.tracking_uri)[len("sqlite:///"):])
            try:
                db = db.relative_to(Path.cwd())
            except ValueError:
                pass
            footer.append(f"open: mlflow ui --backend-store-uri sqlite:///{db}")
    if model_uri:
        footer.append(f"MLflow model: {model_uri}")
        footer.append(f"serve it: MLFLOW_TRACKING_URI={tracker.tracking_uri} mlflow models serve "
                      f"-m {model_uri.split(',')[0]} --env-manager local -p 5001")
        footer.append("ask it: curl -H 'Content-Type: application/json' -d "
                      f"@{run_dir / SERVING_EXAMPLE} http://127.0.0.1:5001/invocations")
    console.results("Results", rows, footer)
