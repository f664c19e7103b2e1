"""Schemas of the config groups in ``dlrun/conf``, registered in Hydra's ConfigStore.

Each YAML option in ``dlrun/conf/<group>/`` starts from one of these dataclasses
(``defaults: [/_schema_<name>@_here_]``), so that an unknown key or a value of the wrong
type fails when the config is composed, naming the key and the type it expects:

    dlrun trainer.epochs=abc   ->  Value 'abc' of type 'str' could not be converted to Integer
                                   full_key: trainer.epochs

A config file names a class (``_target_``) and its arguments and nothing else; adding a
model means adding a YAML file and, here, the dataclass that validates it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

# The data root: $DLRUN_DATA, else ~/.cache/dlrun (what dlrun.data.download.default_root says).
DATA_ROOT = "${oc.env:DLRUN_DATA,${oc.env:HOME}/.cache/dlrun}"


# --- dataset ------------------------------------------------------------------------------
@dataclass
class DigitsConfig:
    _target_: str = "dlrun.data.vision.digits"
    seed: int = 0


@dataclass
class MnistConfig:
    _target_: str = "dlrun.data.vision.mnist"
    root: Optional[str] = DATA_ROOT


@dataclass
class FashionMnistConfig:
    _target_: str = "dlrun.data.vision.fashion_mnist"
    root: Optional[str] = DATA_ROOT


# --- model --------------------------------------------------------------------------------
@dataclass
class LeNetConfig:
    _target_: str = "dlrun.models.lenet.LeNet"
    channels: List[int] = field(default_factory=lambda: [20, 50])
    kernel_size: int = 5
    hidden: int = 500
    activation: str = "tanh"
    pool: str = "avg"
    classes: int = 10


@dataclass
class MLPConfig:
    _target_: str = "dlrun.models.mlp.MLP"
    hidden: List[int] = field(default_factory=lambda: [128, 64])
    activation: str = "relu"
    dropout: float = 0.5
    classes: int = 10


# --- loss ---------------------------------------------------------------------------------
@dataclass
class SoftmaxCEConfig:
    _target_: str = "dlrun.loss.SoftmaxCrossEntropyLoss"


# --- optimizer and schedule ---------------------------------------------------------------
@dataclass
class SGDConfig:
    _target_: str = "dlrun.optim.SGD"
    lr: float = 0.1
    momentum: float = 0.0
    wd: float = 0.0


@dataclass
class AdamConfig:
    _target_: str = "dlrun.optim.Adam"
    lr: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    wd: float = 0.0


@dataclass
class ConstantScheduleConfig:
    _target_: str = "dlrun.optim.schedules.Constant"


# --- trainer, device, logger --------------------------------------------------------------
@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 64
    log_every: int = 10            # steps between training-loss reports (console and MLflow)
    eval_every_epoch: bool = True  # evaluate on the test split after every epoch (else only at the end)
    # the parameter initializer: a class of dlrun.nn.init and its arguments
    init: Any = field(default_factory=lambda: {"_target_": "dlrun.nn.init.Xavier"})


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
    # an MLflow tracking URI: sqlite:///ABS/PATH.db (the default, under outputs/) or http://host:port
    tracking_uri: Optional[str] = None
    # where a new experiment in a local store keeps its artifacts (ignored for a server,
    # which decides itself)
    artifact_location: Optional[str] = None
    log_model: bool = True         # upload the final parameters file as an artifact


# --- the whole config ---------------------------------------------------------------------
@dataclass
class Config:
    dataset: Any = MISSING
    model: Any = MISSING
    loss: Any = MISSING
    optimizer: Any = MISSING
    schedule: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    task: str = "classify"         # the training loop, from dlrun.runner.tasks
    seed: int = 0                  # fixes every random source of a run
    debug: bool = False            # show full Python tracebacks on errors
    experiment: str = "dlrun"      # the MLflow experiment name


SCHEMAS = {
    "config": Config,
    "digits": DigitsConfig,
    "mnist": MnistConfig,
    "fashion_mnist": FashionMnistConfig,
    "lenet": LeNetConfig,
    "mlp": MLPConfig,
    "softmax_ce": SoftmaxCEConfig,
    "sgd": SGDConfig,
    "adam": AdamConfig,
    "constant": ConstantScheduleConfig,
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
