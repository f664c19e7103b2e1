"""The ``dlrun`` command: Hydra composes the config from ``dlrun/conf``, the runner runs it.

    dlrun                                  # LeNet on the embedded digits, tracked in MLflow
    dlrun model=mlp optimizer=adam trainer.epochs=3
    dlrun --help                           # groups, options and the composed config
    dlrun -m optimizer.lr=0.1,0.03,0.01    # a sweep (dlrun.runner.sweep)
    dlrun test outputs/runs/DATE/TIME      # its selected model on its test split again (any model)
    dlrun predict outputs/runs/DATE/TIME/model   # the same through its exported graph (dlrun.runner.predict)
    dlrun predict RUN --input x.npy        # predictions of new data (dlrun.runner.predict_input)
    dlrun log-model RUN; dlrun export RUN --format onnx   # its MLflow model; ONNX (dlrun.runner.publish)

Errors end with one message and a non-zero exit; ``debug=true`` (or HYDRA_FULL_ERROR=1)
shows the full Python traceback instead. Only light modules are imported here, so that
``dlrun --help`` answers quickly: the engine, the data and mlflow load when a run starts.
"""
from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra._internal import utils as hydra_utils
from omegaconf import DictConfig

from .config import moved_key, register_configs
from .explain import explain, versions
from .interrupt import INTERRUPTS, Interrupted, StopRequested, exit_status, signal_name
from .sweep import register_resolvers

register_resolvers()  # also where a joblib worker unpickles the task function
INTERRUPTS.install_in_worker()  # there too: a worker records Ctrl-C as the launching process does

_DEBUG_ARG = re.compile(r"\+*debug=(true|True|TRUE|yes|1)")
_RESUME_ARG = re.compile(r"\+*resume=(.+)")
DEBUG_HINT = "run again with debug=true to see the full traceback"


def _message(error: BaseException) -> tuple[str, str | None]:
    """What to tell the user about ``error``: the message and, for unexpected errors, a hint."""
    from dlrun.data.errors import DataError
    from dlrun.engine import ContextError
    from dlrun.engine.jit import GraphFormatError
    from dlrun.parallel import DistributedError

    from .checkpoint import CheckpointError
    from .build import ConfigError
    from .predict import PredictError
    from .publish import USER_ERRORS
    from .resume import ResumeError
    from .sync import SyncError
    from .sweep import TrialFailed
    from .tasks import DivergenceError
    from .tracking import TrackingError

    explained = explain(error)  # Hydra's, OmegaConf's, YAML's: a missing value, a bad file
    if explained is not None:
        return explained, DEBUG_HINT
    if isinstance(error, (ContextError, DataError, ConfigError, TrackingError, DivergenceError,
                          TrialFailed, GraphFormatError, PredictError,
                          CheckpointError, ResumeError, SyncError, DistributedError)):
        return str(error), None
    if isinstance(error, USER_ERRORS):  # dlrun export, log-model, predict --input
        return str(error), None
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return str(error), None
    return f"{type(error).__name__}: {error}", DEBUG_HINT


def _compose_report(func: Any) -> Any:
    """Hydra's run_and_report: what goes wrong while Hydra composes the config (an unknown
    key or option, a malformed YAML file) ends in dlrun's message, not Hydra's format."""
    from .build import in_debug_mode

    try:
        return func()
    except Exception as e:
        if in_debug_mode():
            raise
        raise SystemExit(_report(e)) from None


def _report(error: BaseException) -> int:
    """Prints ``error`` for the user; returns the exit code. A rank of a data-parallel job
    names itself, and ends the whole job (the others would wait for it forever)."""
    from dlrun.parallel import current

    from .console import error as print_error

    text, hint = _message(error)
    world = current()
    if world.size > 1:
        print_error(f"rank {world.rank}: {text}", hint)
        world.abort(1)
        return 1
    print_error(text, hint)
    return 1


@hydra.main(config_path="pkg://dlrun.conf", config_name="config", version_base="1.3")
def _run(cfg: DictConfig) -> Any:
    """One run; in a sweep, one trial: its outcome goes to ``trial.json`` and a failure is
    raised as TrialFailed, so that Hydra records the job as failed and the sweep goes on."""
    from .build import in_debug_mode
    from .distributed import job_tags
    from .experiment import run
    from .sweep import TrialScope, in_multirun

    # not the module's globals: a joblib worker gets this function by value, and a copy of
    # INTERRUPTS would not be the one its signal handler and the training loop share
    from .interrupt import (INTERRUPTS, Interrupted, TrialInterrupted, exit_status, is_interrupt,
                            signal_name)
    from .runlog import log_failure

    trial = TrialScope() if in_multirun() else None
    try:
        if INTERRUPTS.requested is not None:  # a signal while its config was composed (a
            # sweep's trial started after a Ctrl-C, a job joblib had handed out): not started
            raise Interrupted(INTERRUPTS.requested, "before it started")
        # the MLflow tags the run gets from above: a sweep trial's (which nest it under the
        # sweep's parent run), or in a rank of an MPI job those of the run that launched it
        tags = trial.tags(cfg.logger, str(cfg.experiment)) if trial is not None else job_tags()
        value = run(cfg, tags=tags)
        value = trial.finished(value) if trial is not None else value
    except Exception as e:
        if not is_interrupt(e):  # an interrupt turned into another error is an interrupt
            _failed(e, cfg, trial)
        stop: BaseException = e
    except KeyboardInterrupt as e:
        stop = e
    else:
        if INTERRUPTS.requested is None:
            return value
        # a signal after the training loop's last check: the run finished, the sweep stops
        # before its next trial (the trial's own record stays FINISHED)
        if trial is not None:
            return value
        from .console import error as print_error

        print_error(f"{INTERRUPTS.requested} arrived as the run was ending; it finished")
        raise SystemExit(exit_status(INTERRUPTS.requested))
    from dlrun.parallel import current
    from dlrun.parallel.launch import JobStopped

    if isinstance(stop, JobStopped):  # its signal went to the job, not to this handler
        INTERRUPTS.note("a signal")
    text, hint = _interrupted(stop)
    log_failure(text, None)
    if trial is not None:
        trial.killed(text)
    elif in_debug_mode(cfg):
        raise stop
    from .console import error as print_error

    if not isinstance(stop, JobStopped) and current().rank == 0:  # rank 0 speaks for a job
        print_error(f"trial {trial.number}: {text}" if trial is not None else text, hint)
    if trial is not None:
        # an Exception, which Hydra returns as the job's result: the sweep stops at its next
        # safe point (a KeyboardInterrupt would make joblib kill the other running trials)
        raise TrialInterrupted(signal_name(stop)) from stop
    raise SystemExit(exit_status(signal_name(stop))) from None


def _failed(e: Exception, cfg: DictConfig, trial: Any) -> None:
    """A run that failed: its message and exit 1; a sweep's trial: ``trial.json`` says FAILED
    and TrialFailed tells Hydra, and the sweep goes on."""
    from .build import in_debug_mode
    from .runlog import log_failure
    from .sweep import TrialFailed

    log_failure(_message(e)[0], e)  # the run's dlrun.log: the message and its traceback
    if trial is None:
        if in_debug_mode(cfg):
            raise e
        raise SystemExit(_report(e)) from None
    text, hint = _message(e)
    kind = e.kind if isinstance(e, TrialFailed) else "error"
    trial.failed(text, kind)
    if in_debug_mode(cfg):
        import traceback

        traceback.print_exc()  # Hydra keeps a failed job's exception, not its traceback
        raise e
    from .console import error as print_error

    print_error(f"trial {trial.number}: {text}", hint)
    raise TrialFailed(text, kind=kind) from None


def _sync(args: list[str]) -> int:
    """``dlrun sync RUN`` (dlrun.runner.sync); errors end like a run's. Returns the exit code."""
    from .sync import sync

    try:
        sync(args)
    except Exception as e:
        return _report(e)
    return 0


def _interrupted(stop: BaseException) -> tuple[str, str | None]:
    """What to say when a run was interrupted: where it stopped and how to go on."""
    if isinstance(stop, StopRequested) and stop.checkpoint is not None:
        run_dir = stop.checkpoint.parent.parent
        return (f"stopped by {stop.signal_name} after step {stop.step}; checkpoint "
                f"{stop.checkpoint}", f"continue it with: {resume_command(run_dir)}")
    if isinstance(stop, StopRequested):
        return f"interrupted by {stop.signal_name}", None
    if isinstance(stop, Interrupted):
        return f"interrupted by {stop}", None
    return "interrupted", None


def resume_command(run_dir: Path | str) -> str:
    """The command that resumes ``run_dir``, to paste into a shell: the path is quoted for
    Hydra (a space, a comma or a non-ASCII letter in an unquoted value is a parse error or a
    sweep) and the whole argument for the shell."""
    path = str(run_dir)
    if not re.fullmatch(r"[A-Za-z0-9_/.:-]+", path):
        path = '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"dlrun {shlex.quote('resume=' + path)}"


def _predict(args: list[str]) -> int:
    """``dlrun predict ARGS`` (dlrun.runner.predict); errors end like a run's. Returns the exit code."""
    from .build import in_debug_mode
    from .predict import predict

    try:
        predict(args)
    except Exception as e:
        if in_debug_mode():
            raise
        return _report(e)
    return 0


def _command(name: str, args: list[str]) -> int:
    """``dlrun export|log-model ARGS``, ``dlrun predict MODEL --input FILE``; errors end like
    a run's. Returns the exit code."""
    from .build import in_debug_mode
    from .export import export_command
    from .predict_input import predict_input
    from .publish import log_model_command

    command = {"export": export_command, "log-model": log_model_command, "predict": predict_input}
    try:
        command[name](args)
    except Exception as e:
        if in_debug_mode():
            raise
        return _report(e)
    return 0


def _resume_in_place(args: list[str]) -> list[str]:
    """``args`` with, for ``resume=RUN``, Hydra's working folder set to the run's own (its log
    goes on in its dlrun.log) and no new ``.hydra`` record there (the run's stays its own),
    instead of a new, stray outputs/runs/<time>/ folder on every resume."""
    found = [m.group(1) for a in args if (m := _RESUME_ARG.fullmatch(a))]
    if not found or any(a in ("-m", "--multirun") or a.startswith("hydra.mode=") for a in args):
        return args
    given = Path(found[-1].strip("'\"")).expanduser()
    if given.is_dir():  # a run folder, or its checkpoints folder (as load_checkpoint reads it)
        folder = given if (given / "checkpoints").is_dir() else given.parent
    else:  # a checkpoint manifest in <run>/checkpoints/
        folder = given.parent.parent
    if not (folder / "config.yaml").is_file():
        return args  # no run folder: the run refuses it and says why
    extra = []
    if not any(a.lstrip("+").startswith("hydra.run.dir=") for a in args):  # a job's ranks get one
        quoted = str(folder.absolute()).replace("\\", "\\\\").replace('"', '\\"')
        extra.append(f'hydra.run.dir="{quoted}"')
    if not any(a.lstrip("+").startswith("hydra.output_subdir=") for a in args):
        extra.append("hydra.output_subdir=null")
    return [*args, *extra]


def main() -> None:
    """Console-script entry point (``dlrun``)."""
    if any(_DEBUG_ARG.fullmatch(arg) for arg in sys.argv[1:]):
        # errors while composing the config happen before `debug` is known: let Hydra show them in full
        os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    for arg in sys.argv[1:]:  # an override of a key that moved: say where it went
        moved = moved_key(arg.lstrip("+~").split("=", 1)[0])
        if moved:
            from .console import error as print_error

            print_error(moved)
            raise SystemExit(1)
    if sys.argv[1:2] in (["--version"], ["-V"]):  # dlrun's, not Hydra's
        print(versions())
        raise SystemExit(0)
    register_configs()
    register_resolvers()
    hydra_utils.run_and_report = _compose_report  # Hydra's errors in dlrun's words
    # `kill` (SIGTERM) ends a run like Ctrl-C: a training loop stops after its step and writes
    # a checkpoint, the MLflow run ends KILLED rather than left RUNNING, a sweep's table is
    # printed and its study is ready to resume; a second signal stops at once
    # (dlrun.runner.interrupt): the first is recorded and acted on at the next safe point
    INTERRUPTS.install(deferred=sys.argv[1:2] not in (["predict"], ["test"], ["sync"], ["export"],
                                                      ["log-model"]))
    try:
        if sys.argv[1:2] in (["export"], ["log-model"]) or (sys.argv[1:2] == ["predict"]
                                                            and "--input" in sys.argv):
            raise SystemExit(_command(sys.argv[1], sys.argv[2:]))
        # dlrun test RUN: the run's selected model (restore_best), rebuilt, on its test split
        if sys.argv[1:2] in (["predict"], ["test"]):
            raise SystemExit(_predict(sys.argv[2:]))
        if sys.argv[1:2] == ["sync"]:
            raise SystemExit(_sync(sys.argv[2:]))
        sys.argv[1:] = _resume_in_place(sys.argv[1:])
        _run()
        INTERRUPTS.check()  # a signal no safe point saw (while Hydra printed --help, say)
    except KeyboardInterrupt as stop:  # outside a run (a sweep stopped between its trials, say)
        from .console import error as print_error

        print_error(*_interrupted(stop))
        raise SystemExit(exit_status(signal_name(stop))) from None


if __name__ == "__main__":
    main()
