"""Gluon-style blocks: Block, Parameter, containers and layers."""
from . import init
from .activations import Activation
from .basic_layers import Dense, Dropout, Flatten
from .block import Block, HybridBlock, HybridSequential, ParameterFileError, Sequential
from .conv_layers import (AvgPool1D, AvgPool2D, AvgPool3D, Conv1D, Conv2D, Conv3D, MaxPool1D,
                          MaxPool2D, MaxPool3D)
from .parameter import DeferredInitializationError, Parameter, ParameterDict

__all__ = [
    "init", "Activation", "Dense", "Dropout", "Flatten", "Block", "HybridBlock",
    "HybridSequential", "ParameterFileError", "Sequential", "AvgPool1D", "AvgPool2D",
    "AvgPool3D", "Conv1D", "Conv2D", "Conv3D", "MaxPool1D", "MaxPool2D", "MaxPool3D",
    "DeferredInitializationError", "Parameter", "ParameterDict",
]
