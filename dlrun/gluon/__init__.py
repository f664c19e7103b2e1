"""MXNet Gluon's ``gluon`` package: ``gluon.nn``, ``gluon.rnn``, ``gluon.loss``,
``gluon.data`` (and ``data.vision``), ``gluon.model_zoo``, ``gluon.contrib``,
``gluon.utils``, ``Trainer``, ``Parameter``, ``Block``...

Each submodule re-exports dlrun's own classes (``dlrun.nn``, ``dlrun.data``,
``dlrun.models.zoo``, ``dlrun.optim``) under Gluon's module paths, so that
``import mxnet.gluon.nn as nn`` becomes ``import dlrun.gluon.nn as nn``.
"""
from . import contrib, data, loss, model_zoo, nn, rnn, utils
from .block import Block, HybridBlock, SymbolBlock
from .nn import Dense, Dropout  # the tutorial also writes gluon.Dense
from .parameter import Constant, Parameter, ParameterDict
from .trainer import Trainer

__all__ = ["contrib", "data", "loss", "model_zoo", "nn", "rnn", "utils", "Block", "HybridBlock",
           "SymbolBlock", "Constant", "Parameter", "ParameterDict", "Dense", "Dropout", "Trainer"]
