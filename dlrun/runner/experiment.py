"""One run: compose -> build dataset, model, loss, optimizer + schedule, trainer -> task -> report.

The runner only wires. Every piece is built from its config group's ``_target_`` and
arguments; what differs between kinds of experiment lives in the task (``dlrun.runner.tasks``).
With ``model.hybridize`` (the model configs' default) the model is compiled into a graph
before the task runs and exported into the run folder after it (``dlrun.runner.export``).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

import dlrun

from .build import ConfigError, allow_targets, build, check_node, data_model_args, make_context, seed_everything
from .console import EPOCH_COLUMNS, RESULT_ROWS, Column, ConsoleReporter, format_duration
from .checkpoint import CheckpointStore, RunCheckpoints, write_atomic
from .distributed import (bind_device, job_world, launch, per_worker_batch, resume_with_workers,
                          scale_learning_rate, sync_batchnorm)
from .export import export_model
from .interrupt import INTERRUPTS
from .resume import identity_hash, resumed_choices, resumed_config
from .tasks import Setup, get_task
from .tracking import SPOOL_NAME, NullTracker, TrackingError, flatten, make_tracker


# --- reporting ----------------------------------------------------------------------------
class Reporter:
    """Fans a task's progress out to the console and the tracker."""

    def __init__(self, console: ConsoleReporter, tracker: Any):
        self.console = console
        self.tracker = tracker
        self._warned = False  # about an unreachable MLflow store

    def start(self, epochs: int, steps_per_epoch: int, columns: Sequence[Column] = EPOCH_COLUMNS) -> None:
        self.console.start(epochs, steps_per_epoch, columns)

    def epoch_start(self, epoch: int) -> None:
        self.console.epoch_start(epoch)

    def step(self, epoch: int, step: int, samples: int, loss: float | None = None) -> None:
        self.console.step(epoch, step, samples, loss)

    def train_losses(self, values: Sequence[tuple[int, float]]) -> None:
        for global_step, value in values:
            self.tracker.log_metrics({"train/step_loss": value}, global_step)

    def artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        """Logs a file the task wrote (e.g. a GAN's sample grid) with the run's artifacts."""
        self.tracker.log_artifact(path, artifact_path)

    def note(self, text: str) -> None:
        """A line of the task's own on the console (what the epoch table has no column for)."""
        self.console.console.print(text)

    def epoch_end(self, epoch: int, global_step: int, metrics: Mapping[str, float]) -> None:
        self.console.epoch_end(metrics)
        self.tracker.log_metrics(dict(metrics), global_step)
        outage = getattr(self.tracker, "outage", None)
        if outage and not self._warned:  # once: the run goes on, its records wait in the spool
            self._warned = True
            self.console.console.print(
                f"warning: MLflow at {self.tracker.tracking_uri} is unreachable ({outage}); training "
                f"goes on and its records wait in {self.tracker.spool.path} until it is back")
        if self.tracker.error is not None:  # fail early rather than train for nothing
            raise TrackingError(f"MLflow tracking at {self.tracker.tracking_uri} failed: "
                                f"{type(self.tracker.error).__name__}: {self.tracker.error}")


# --- the run ------------------------------------------------------------------------------
def run(cfg: DictConfig) -> float:
    """Runs the experiment ``cfg`` describes; returns the task's primary metric."""
    from hydra.core.hydra_config import HydraConfig

    wall_start = time.perf_counter()
    logging.captureWarnings(True)  # e.g. numpy overflow warnings: to the run's log file, not the console
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items()
               if not k.startswith("hydra") and v is not None}
    resume_from = None
    if cfg.get("resume"):  # the run continues in its own folder, with its own config
        cfg, resume_from = resumed_config(cfg, list(hydra_cfg.overrides.task))
        run_dir = resume_from.run_dir
        choices = resumed_choices(run_dir) or choices
    world = job_world(cfg)
    if world is None:  # distributed.workers > 1: this process starts the job and waits for it
        return launch(cfg, list(hydra_cfg.overrides.task), Path(hydra_cfg.runtime.output_dir), run_dir)
    if world.size > 1:  # the job's folder is rank 0's (ranks started by hand stamp their own)
        from dlrun.parallel.launch import record_rank
        run_dir = Path(world.allgather(str(run_dir))[0])
        record_rank(world, run_dir)
    # in a data-parallel job rank 0 alone prints, tracks and writes the run's files
    console = ConsoleReporter() if world.is_root else ConsoleReporter(_silent_console())

    allow_targets(cfg.get("allowed_targets") or [])
    seed_everything(int(cfg.seed))
    ctx = bind_device(make_context(cfg.device), world)

    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    config_file = run_dir / "config.yaml"
    text = OmegaConf.to_yaml(resolved).encode()  # atomic: a resume needs it whole
    if world.is_root:
        write_atomic(config_file, lambda f: f.write(text))
    tags = {"dlrun.version": dlrun.__version__, "dlrun.device": str(ctx),
            "dlrun.run_dir": str(run_dir.absolute()), "dlrun.task": str(cfg.task),
            "dlrun.overrides": " ".join(hydra_cfg.overrides.task),
            "mlflow.source.name": "dlrun", "mlflow.source.type": "LOCAL"}
    tags.update({f"dlrun.choice.{k}": str(v) for k, v in choices.items()})
    run_name = "-".join(str(choices.get(g, "")) for g in ("model", "optimizer", "dataset"))
    if hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN":
        run_name += f"-{hydra_cfg.job.num}"
    if resume_from is not None:
        tags["dlrun.resumed_from_step"] = str(resume_from.step)
    if world.size > 1:
        tags["dlrun.workers"] = str(world.size)
    tracker = NullTracker() if not world.is_root else make_tracker(
        cfg.logger, str(cfg.experiment), run_name=run_name, params=flatten(resolved), tags=tags,
        source_dir=Path(dlrun.__file__).parent,
        resume_run_id=resume_from.state.get("mlflow_run_id") if resume_from else None,
        spool=run_dir / SPOOL_NAME)
    tracker.start()  # mlflow's import and the run's creation overlap with the setup below

    status, metrics, task, exported = "FAILED", {}, None, None
    try:
        for key in ("model", "loss", "optimizer", "schedule", "dataset", "init"):  # names and types, at once
            check_node(cfg[key], key)
        # pieces that need no data first, so that a bad value fails before any data is read
        loss = build(cfg.loss, "loss")
        schedule = build(cfg.schedule, "schedule")
        optimizer = build(cfg.optimizer, "optimizer", lr_scheduler=schedule, wd=float(cfg.trainer.wd))
        scale_learning_rate(optimizer, schedule, cfg, world)
        data = build(cfg.dataset, "dataset")
        net = build(cfg.model, "model", **data_model_args(cfg.model, data))
        net.initialize(build(cfg.init, "init"), ctx=ctx)
        if cfg.distributed.sync_batchnorm:
            sync_batchnorm(net)
        hybridize = bool(cfg.model.get("hybridize"))  # checked by check_node; null: false
        if hybridize:  # the model and, as Gluon code does, the loss (a HybridBlock too)
            net.hybridize()
            getattr(loss, "hybridize", lambda: None)()
        from dlrun.optim import Trainer

        kvstore = None if world.size == 1 else "nccl" if ctx.device_type == "gpu" else "dist_sync"
        trainer = Trainer(net.collect_params(), optimizer, kvstore=kvstore,
                          clip_global_norm=cfg.trainer.clip_global_norm,
                          bucket_bytes=int(float(cfg.distributed.bucket_mb) * 2**20))
        # auto: a model that needs its own loop names it (a GAN), else the data does
        task_name = str(cfg.task) if cfg.task != "auto" else (
            getattr(net, "task", None) or getattr(data, "task", "classify"))
        report = Reporter(console, tracker)
        task_class = get_task(task_name)
        if world.size > 1 and not getattr(task_class, "distributed", False):
            raise ConfigError(f"the {task_name} task trains in one process only; drop "
                              f"distributed.workers (data-parallel: classification, language models)")
        if resume_from is not None:
            resume_with_workers(resume_from, world, cfg)
        checkpoints = RunCheckpoints(
            CheckpointStore(run_dir / "checkpoints", int(cfg.trainer.keep_checkpoints)),
            int(cfg.trainer.checkpoint_every), net, trainer, identity_hash(cfg),
            tracker.wait_for_run, tracker.flush,  # a resume continues that MLflow run
            world=world)
        INTERRUPTS.polling = True  # a first Ctrl-C/SIGTERM stops between steps, at a checkpoint
        task = task_class(Setup(cfg=cfg, ctx=ctx, data=data, net=net, loss=loss,
                                trainer=trainer, schedule=schedule, seed=int(cfg.seed),
                                report=report, checkpoints=checkpoints, resume_from=resume_from,
                                world=world, worker_batch=per_worker_batch(cfg, world)))
        n_params = sum(int(np.prod(p.shape)) for p in net.collect_params().values())
        console.header(f"dlrun {dlrun.__version__}", [
            ("run", str(run_dir)),
            ("dataset", str(choices.get("dataset", cfg.dataset._target_))),
            ("model", f"{choices.get('model', '')} ({type(net).__name__}, {n_params:,} parameters, "
                      f"{'hybridized' if hybridize else 'imperative'})"),
            *([("resumed", f"from {resume_from.source} (epoch {resume_from.epoch}, step "
                           f"{resume_from.step})")] if resume_from is not None else []),
            ("optimizer", _describe_optimizer(choices.get("optimizer", ""), cfg.optimizer,
                                              choices.get("schedule", ""))),
            *task.describe(),
            ("device", f"{ctx}, seed {cfg.seed}"),
            *([("workers", f"{world.size} processes ({world.launcher}), gradients all-reduced with "
                           + ("NCCL (MPI where ranks share a GPU)" if kvstore == "nccl" else "MPI"))]
              if world.size > 1 else []),
            ("tracking", _describe_tracking(tracker, cfg)),
        ])
        metrics = task.run()
        if not world.is_root:
            return float(metrics[task.primary_metric])
        params_file = run_dir / "model.npz"
        net.save_parameters(str(params_file))
        exported = export_model(net, run_dir, report, upload=cfg.logger.log_model) if hybridize else None
        metrics["wall_time"] = time.perf_counter() - wall_start
        (run_dir / "results.json").write_text(
            json.dumps({**metrics, "primary_metric": task.primary_metric}, indent=2) + "\n")
        tracker.log_metrics({"final/" + k.replace("/", "_"): v for k, v in metrics.items()
                             if k.startswith("eval/")}, int(metrics.get("steps", 0)))
        tracker.log_artifact(config_file)
        if cfg.logger.log_model:
            tracker.log_artifact(params_file)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        INTERRUPTS.polling = False
        console.close()
        try:
            tracker.finish(status)
        except TrackingError as e:
            if status == "FINISHED":
                raise TrackingError(f"{e}\nThe training itself finished; its results are in "
                                    f"{run_dir}") from e
            # the run already failed for another reason: report that one

    primary = task.primary_metric
    _print_results(console, metrics, getattr(task, "results", RESULT_ROWS), run_dir, tracker, cfg,
                   exported)
    return float(metrics[primary])


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
                   run_dir: Path, tracker: Any, cfg: DictConfig, exported: Path | None) -> None:
    rows = [(label, fmt.format(metrics[key])) for label, key, fmt in rows_spec if key in metrics]
    rows.append(("wall time", format_duration(metrics.get("wall_time", 0.0))
                 + f" ({metrics.get('wall_time', 0.0):.1f} s)"))
    footer = [f"run folder: {run_dir}"]
    spooled = getattr(tracker, "spooled", None)
    if spooled is not None:
        footer.append(f"MLflow was unreachable: the run's records wait in {spooled}; send them "
                      f"with: dlrun sync {run_dir}")
    if exported is not None:
        footer.append(f"exported model: {exported} (evaluate it: dlrun predict {run_dir})")
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
    console.results("Results", rows, footer)
