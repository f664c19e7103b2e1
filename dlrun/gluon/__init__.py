"""MXNet Gluon's ``gluon`` namespace: ``gluon.nn``, ``gluon.loss``, ``gluon.Trainer``..."""
from . import gluon_utils as utils
from . import loss, nn
from .nn import rnn
from .nn import Block, HybridBlock, Parameter, ParameterDict, SymbolBlock
from .nn.basic_layers import Dense, Dropout  # the tutorial also writes gluon.Dense
from .optim import Trainer

__all__ = ["loss", "nn", "utils", "rnn", "Block", "HybridBlock", "Parameter", "ParameterDict", "Dense",
           "Dropout", "SymbolBlock", "Trainer"]
