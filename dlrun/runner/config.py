"""How configs are checked.

The runner's own groups (trainer, device, logger) and the root have dataclass schemas,
registered in Hydra's ConfigStore; their YAML files extend them
(``defaults: [/_schema_<name>@_here_]``), so a wrong type or an unknown key fails when the
config is composed, naming the key:

    dlrun trainer.epochs=abc   ->  Value 'abc' of type 'str' could not be converted to Integer
                                   full_key: trainer.epochs

Groups that build a class (dataset, model, loss, optimizer, schedule, init) have no
schema to keep in step: their YAML names the class (``_target_``) and lists all of its
arguments, and :func:`check_arguments` checks the composed node against the class's own
signature and type hints before anything is built. A few keys of such a node are the
runner's own (:data:`RUNNER_KEYS`, e.g. ``model.hybridize``): checked the same way against
their declared type, and never passed to the class.
"""
from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any, Callable, List, Optional, Union

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

# The data root: $DLRUN_DATA, else ~/.cache/dlrun (what dlrun.data.download.default_root says).
DATA_ROOT = "${oc.env:DLRUN_DATA,${oc.env:HOME}/.cache/dlrun}"


# --- trainer, device, logger --------------------------------------------------------------
class NanPolicy(Enum):
    stop = "stop"
    skip = "skip"


class AmpMode(Enum):
    none = "none"
    fp16 = "fp16"
    bf16 = "bf16"


@dataclass
class EarlyStoppingConfig:
    patience: Optional[int] = None   # validations without improvement before the run stops (null: off)
    min_delta: float = 0.0           # the least change that counts as an improvement
    monitor: Optional[str] = None    # a val/ metric (null: trainer.monitor)
    mode: Optional[str] = None       # max or min (null: trainer.mode)


@dataclass
class CheckpointConfig:
    keep_best: int = 0               # keep the k best validations' parameters (checkpoints/best-*.npz)


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 64
    log_every: int = 10            # steps between training-loss reports (console and MLflow)
    val_every: int = 1             # epochs between validations (0: the last epoch only)
    val_every_steps: Optional[int] = None  # optimizer steps between validations, instead of epochs
    eval_batch_size: Optional[int] = None  # evaluation batch (null: batch_size)
    # what decides (early stopping, the best checkpoint, reduce-on-plateau): a val/ metric and
    # whether higher (max) or lower (min) is better; null: the task's primary metric
    monitor: Optional[str] = None
    mode: Optional[str] = None
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    restore_best: bool = True      # the final model (saved, exported, tested) is the best validation's
    accumulate_steps: int = 1      # batches whose gradients are summed before one update
    ema_decay: Optional[float] = None  # e.g. 0.999: evaluate and save an average of the weights
    wd: float = 0.0                # weight decay as MXNet's: w <- w - lr (g + wd w) (every optimizer)
    clip_global_norm: Optional[float] = None  # clip the global gradient norm (after the 1/batch rescale)
    checkpoint_every: int = 0      # steps between checkpoints (0: only at the end of each epoch)
    keep_checkpoints: Optional[int] = None  # newest N kept; 0: none once finished; null: 2 (trials 0)
    on_nan: NanPolicy = NanPolicy.stop  # a NaN/Inf gradient: stop the run, or skip the step
    max_nan_skips: int = 10        # on_nan=skip: stop after this many skipped steps
    amp: AmpMode = AmpMode.none     # mixed precision: fp16 compute, float32 master weights, loss scaling
    max_steps: Optional[int] = None  # dry runs (runner/limits.py): stop after N optimizer steps,
    limit_train_batches: Optional[float] = None  # N batches (or a fraction < 1) of every epoch,
    limit_val_batches: Optional[float] = None    # of every validation,
    limit_test_batches: Optional[float] = None   # of the test evaluation,
    fast_dev_run: bool = False       # one batch of train, val and test, then the whole ending


class DeviceType(Enum):
    cpu = "cpu"
    gpu = "gpu"


@dataclass
class DeviceConfig:
    type: DeviceType = DeviceType.cpu
    id: int = 0


class LoggerBackend(Enum):
    mlflow = "mlflow"
    none = "none"


@dataclass
class LoggerConfig:
    backend: LoggerBackend = LoggerBackend.mlflow
    tracking_uri: Optional[str] = None  # sqlite:///ABS/PATH.db (default: under outputs/) or http://host:port
    artifact_location: Optional[str] = None  # a new experiment's artifacts, local stores (a server decides)
    log_model: bool = True         # upload the final parameters (and the exported model) as artifacts
    register_model: Optional[str] = None  # with log_model: the MLflow model, a new version of this name
    log_onnx: bool = False         # the run's MLflow model carries its ONNX conversion too
    log_plots: bool = True         # curves, a classifier's confusion matrix (needs dlrun[plots])


class LrScaling(Enum):
    none = "none"
    linear = "linear"


@dataclass
class DistributedConfig:
    workers: int = 1  # processes (a GPU each): > 1 relaunches dlrun under mpiexec; under one, its count
    # the hosts go in the launcher's own options: MPICH -hosts/-f, Open MPI --host/--hostfile,
    # srun --nodelist (with --ntasks-per-node from the slots)
    hosts: List[str] = field(default_factory=list)  # e.g. [node1:4, node2:4]
    hostfile: Optional[str] = None  # a host file, in the launcher's format
    mpiexec: Optional[str] = None   # null: the virtualenv's mpiexec, else PATH's; or mpirun, srun
    mpiexec_args: List[str] = field(default_factory=list)  # passed to mpiexec as they are
    scale_batch: bool = True        # true: trainer.batch_size per worker; false: for the whole job
    lr_scaling: LrScaling = LrScaling.none  # linear: lr x workers (Goyal et al. 2017)
    warmup_steps: int = 0           # lr_scaling=linear: ramp from lr to lr x workers over these steps
    bucket_mb: float = 25.0         # gradients are all-reduced in flat buffers of about this size
    sync_batchnorm: bool = False    # BatchNorm statistics over all workers' batches (else per worker)
    allow_resize: bool = False      # resume= with another number of workers than the run had


# --- task: the settings of one kind of training ------------------------------------------
@dataclass
class TaskConfig:
    _target_: str = MISSING        # the task class (a dlrun.runner.tasks.TaskBase)


@dataclass
class LanguageModelTaskConfig(TaskConfig):
    bptt: int = 35                 # steps per truncated-backpropagation window


@dataclass
class GANTaskConfig(TaskConfig):
    scorer: Optional[str] = None   # a classifier's model.npz scoring the samples; null: train a LeNet
    scorer_steps: int = 500        # training steps of that LeNet


TASK_SCHEMAS = {"classify": TaskConfig, "regression": TaskConfig, "perceptron": TaskConfig,
                "language_model": LanguageModelTaskConfig, "tree_sentiment": TaskConfig,
                "gan": GANTaskConfig}

# keys that moved, and where they are now: a config or override that uses one is refused
MOVED_KEYS = {"trainer.bptt": "task.bptt", "model.scorer": "task.scorer",
              "model.scorer_steps": "task.scorer_steps", "trainer.eval_every_epoch": "trainer.val_every"}


def moved_key(key: str) -> str | None:
    """What to say when a config or an override sets ``key``, a key that moved; else None."""
    new = MOVED_KEYS.get(key)
    if new is None:
        return None
    why = ("settings of one kind of training live in the task group" if new.startswith("task.")
           else "every epoch validates on the val split; 0: the last epoch only")
    return f"{key} is now {new} ({why}); set {new} instead"


# nodes open by design, whose keys no schema lists: Hydra's own settings (hydra.*, which Hydra
# checks itself). The settings of a task of the user's own are open too: its file has no
# schema (the class reads them, as FitTask reads task.tolerance).
OPEN_KEYS = ("hydra",)


def unknown_key(cfg: Any, prefix: str = "") -> str | None:
    """What to say about the first key of the composed config ``cfg`` that its schema does not
    know (Hydra's own words, as composition says them for ``trainer.epocs=3``); else None.

    Composition refuses a key a schema lacks, but one added with ``+`` (``+trainer.epocs=3``,
    ``+foo=bar``) it takes, so the composed config is checked again here. Nodes with no
    schema are the class's to check (``check_arguments``: ``+model.foo=1``), or open
    (:data:`OPEN_KEYS`, a task of the user's own).
    """
    from omegaconf import DictConfig, OmegaConf

    schema = OmegaConf.get_type(cfg)
    known = {f.name for f in fields(schema)} if is_dataclass(schema) else None
    for key, node in cfg.items_ex(resolve=False):
        full = f"{prefix}{key}"
        if full in OPEN_KEYS:
            continue
        if known is not None and key not in known:
            return moved_key(full) or (f"Key '{key}' not in '{schema.__name__}'\n    full_key: "
                                       f"{full}\n    object_type={schema.__name__}")
        if isinstance(node, DictConfig) and not OmegaConf.is_missing(cfg, key) and node:
            found = unknown_key(node, f"{full}.")
            if found:
                return found
    return None


# --- the whole config ---------------------------------------------------------------------
@dataclass
class Config:
    dataset: Any = MISSING
    model: Any = MISSING
    loss: Any = MISSING
    optimizer: Any = MISSING
    schedule: Any = MISSING
    init: Any = MISSING            # the parameter initializer (dlrun.nn.init)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    task: Any = MISSING            # the training loop and its settings (the task group)
    seed: int = 0                  # fixes every random source of a run
    debug: bool = False            # show full Python tracebacks on errors
    experiment: str = "dlrun"      # the MLflow experiment name
    resume: Optional[str] = None   # a run folder or checkpoint: continue that run exactly
    allowed_targets: List[str] = field(default_factory=list)  # _target_ namespaces besides dlrun.
    callbacks: Any = field(default_factory=dict)  # name -> a _target_ node (dlrun.runner.callbacks)


SCHEMAS = {
    "config": Config,
    "trainer": TrainerConfig,
    "device": DeviceConfig,
    "logger": LoggerConfig,
}


def register_configs() -> None:
    """Stores every schema as the root-level config ``_schema_<name>``, which the YAML files extend.

    Root level rather than a group of its own, so that the schemas stay out of the group
    listing of ``dlrun --help``.
    """
    cs = ConfigStore.instance()
    for name, node in SCHEMAS.items():
        cs.store(name=f"_schema_{name}", node=node)
    for name, node in TASK_SCHEMAS.items():
        cs.store(name=f"_schema_task_{name}", node=node)


# --- the arguments of _target_ nodes ------------------------------------------------------
# keys of a group's node that the runner reads itself (not arguments of the node's class):
# name -> (type, what it does); null means the runner's default
RUNNER_KEYS: dict[str, dict[str, tuple[Any, str]]] = {
    "model": {"hybridize": (bool, "true compiles the model into a graph (and exports it at the "
                                  "end of the run), false runs it imperatively")},
}


def class_arguments(spec: dict, key: str) -> dict:
    """The arguments of node ``key``'s class: ``spec`` without the runner's own keys."""
    own = RUNNER_KEYS.get(key, {})
    return {k: v for k, v in spec.items() if k not in own}


class ArgumentError(ValueError):
    """A config node gives its class an argument it does not take, or a value of the wrong type."""


def accepted_arguments(fn: Callable) -> dict[str, Any]:
    """Argument name -> type hint (Any where none) of a function or class.

    A class whose ``__init__`` passes ``**kwargs`` on to its base takes the base's arguments
    too, so the walk follows the MRO until an ``__init__`` without ``**kwargs``.
    """
    inits = [c.__init__ for c in fn.__mro__ if "__init__" in vars(c)] if inspect.isclass(fn) else [fn]
    out: dict[str, Any] = {}
    for init in inits:
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # unresolvable annotations: skip type checks, keep the names
            hints = {}
        params = inspect.signature(init).parameters.values()
        for p in params:
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                out.setdefault(p.name, hints.get(p.name, Any))
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return out


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 1 or (len(args) == 2 and args[1] is Ellipsis):
            return all(_matches(v, args[0]) for v in value)
        return True
    return True  # classes, callables, unions of objects and names: the constructor decides


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is None and hasattr(hint, "__name__"):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("collections.abc.", "")


def check_arguments(fn: Callable, spec: dict, key: str) -> None:
    """Raises ArgumentError naming ``key.<arg>`` for an argument ``fn`` does not take or a value
    of the wrong type (the runner's own keys of ``key``, :data:`RUNNER_KEYS`, against their
    declared type). ``null`` values pass (they mean the default); nested ``_target_`` nodes
    are the caller's to check."""
    own = RUNNER_KEYS.get(key, {})
    for arg, (hint, meaning) in own.items():
        value = spec.get(arg)
        if value is not None and not _matches(value, hint):
            expected = "true or false" if hint is bool else _describe(hint)
            raise ArgumentError(f"{key}.{arg}={value!r}: expected {expected}; {meaning}")
    accepted = accepted_arguments(fn)
    name = getattr(fn, "__qualname__", str(fn))
    for arg, value in class_arguments(spec, key).items():
        moved = moved_key(f"{key}.{arg}")
        if moved:
            raise ArgumentError(moved)
        if arg not in accepted:
            raise ArgumentError(f"{key}.{arg}: {name} has no argument {arg!r}; it takes "
                                f"{', '.join(sorted(accepted))}"
                                + "".join(f" (and the runner's {k})" for k in own))
        if value is None or isinstance(value, dict) and "_target_" in value:
            continue  # null: the class's default (or what the data decides); nested: built apart
        if not _matches(value, accepted[arg]):
            raise ArgumentError(f"{key}.{arg}={value!r}: {name} expects {_describe(accepted[arg])}")
