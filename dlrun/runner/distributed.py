"""The runner's side of ``distributed.*``: launch the job or find this rank's place in it, bind
the rank's device, scale the learning rate, and check a resumed run's world size."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig

from dlrun.parallel import DistributedError, World, current, launched_by
from dlrun.parallel.launch import job_command, rank_threads, run_job

JOB_TAGS_ENV = "DLRUN_TRIAL_TAGS"  # a run launched as an MPI job: its MLflow tags (a sweep
                                   # trial's: sweep id, trial number, parent run), for rank 0


def job_world(cfg: DictConfig) -> World | None:
    """This process's World; None when ``distributed.workers`` asks for a job that this process
    must launch first (it is not a rank of one yet)."""
    workers = int(cfg.distributed.workers)
    if workers < 1:
        raise DistributedError(f"distributed.workers must be >= 1, got {workers}")
    found = launched_by()
    if found is None or found[2] == 1:
        if workers > 1:
            return None
        return current()
    world = current()
    if workers > 1 and workers != world.size:
        raise DistributedError(
            f"distributed.workers={workers} but {world.launcher} started {world.size} processes; "
            f"drop distributed.workers (the launcher's count is used) or launch {workers}")
    return world


def launch(cfg: DictConfig, overrides: Sequence[str], hydra_dir: Path, run_dir: Path,
           env: Mapping[str, str] | None = None) -> float:
    """Run this experiment as an MPI job of ``distributed.workers`` ranks, all in ``hydra_dir``,
    with ``env`` added to their environment (:func:`job_env`); returns the run's primary
    metric (from the results rank 0 wrote into ``run_dir``)."""
    d = cfg.distributed
    cmd = job_command(int(d.workers), overrides, hydra_dir, hosts=list(d.hosts), hostfile=d.hostfile,
                      mpiexec=d.mpiexec, mpiexec_args=list(d.mpiexec_args))
    threads = rank_threads(int(d.workers), bool(d.hosts or d.hostfile))
    run_job(cmd, run_dir, {**threads, **(env or {})} or None)
    results = json.loads((run_dir / "results.json").read_text())
    return float(results[results["primary_metric"]])


def job_env(tags: Mapping[str, str] | None) -> dict[str, str] | None:
    """The environment that passes a run's MLflow ``tags`` to the ranks of its MPI job."""
    return {JOB_TAGS_ENV: json.dumps(dict(tags))} if tags else None


def job_tags() -> dict[str, str]:
    """In a rank of an MPI job: the tags of the run that launched it (:func:`job_env`)."""
    return json.loads(os.environ.get(JOB_TAGS_ENV, "{}"))


def per_worker_batch(cfg: DictConfig, world: World) -> int:
    """``trainer.batch_size`` per worker (``distributed.scale_batch``) or split among them."""
    batch = int(cfg.trainer.batch_size)
    if cfg.distributed.scale_batch or world.size == 1:
        return batch
    if batch % world.size:
        raise DistributedError(
            f"distributed.scale_batch=false splits trainer.batch_size={batch} among "
            f"{world.size} workers, which does not divide it; use a multiple of {world.size}")
    return batch // world.size


def bind_device(ctx: Any, world: World) -> Any:
    """Rank ``r`` of a job on GPUs computes on GPU ``local_rank % GPUs on its machine``."""
    if world.size == 1 or ctx.device_type != "gpu":
        return ctx
    from dlrun.engine import gpu
    from dlrun.engine.backend import num_gpus

    return gpu(world.local_rank % max(num_gpus(), 1))


def scale_learning_rate(optimizer: Any, schedule: Any, cfg: DictConfig, world: World) -> None:
    """``distributed.lr_scaling=linear``: lr x workers (the batch grew as much), reached
    linearly over ``distributed.warmup_steps`` from the single-worker lr (Goyal et al. 2017)."""
    rule = getattr(cfg.distributed.lr_scaling, "value", cfg.distributed.lr_scaling)
    if rule == "none" or world.size == 1:
        return
    warmup = int(cfg.distributed.warmup_steps)
    if warmup and getattr(schedule, "warmup_steps", 0):
        raise DistributedError("the schedule has its own warm-up (schedule.warmup_steps) and "
                               "distributed.warmup_steps asks for another; keep one")
    base = optimizer.lr
    optimizer.lr = base * world.size
    if schedule is not None:
        schedule.base_lr = optimizer.lr
        if warmup:
            schedule.warmup_steps, schedule.warmup_begin_lr = warmup, base


def sync_batchnorm(net: Any) -> None:
    """Make every BatchNorm of ``net`` take its statistics over all workers' batches."""
    from dlrun.nn import BatchNorm

    net.apply(lambda block: setattr(block, "sync", True) if isinstance(block, BatchNorm) else None)


def resume_with_workers(ckpt: Any, world: World, cfg: DictConfig) -> None:
    """A resumed run continues with the number of workers it had, unless
    ``distributed.allow_resize``; then a job batch of another size goes on from the example
    the checkpoint reached."""
    saved = int(ckpt.state.get("workers", 1))
    if saved == world.size:
        return
    if not cfg.distributed.allow_resize:
        raise DistributedError(
            f"the checkpoint was written by a job of {saved} worker(s) and this one has "
            f"{world.size}: its batches and learning rate would differ. Resume with "
            f"distributed.workers={saved}, or set distributed.allow_resize=true to go on anyway")
    if cfg.distributed.scale_batch:
        ckpt.batch = ckpt.batch * saved // world.size
