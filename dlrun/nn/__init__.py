"""Gluon-style blocks: Block, Parameter, containers and layers."""
from . import init, rnn
from .activations import ELU, GELU, SELU, Activation, LeakyReLU, PReLU, Swish
from .basic_layers import (BatchNorm, SyncBatchNorm, Dense, Dropout, Embedding, Flatten, HybridLambda, Lambda,
                           LayerNorm)
from .block import (Block, Concatenate, Concurrent, HybridBlock, HybridConcatenate,
                    HybridConcurrent, HybridSequential, Identity, ParameterFileError, Sequential)
from .conv_layers import (AvgPool1D, AvgPool2D, AvgPool3D, Conv1D, Conv1DTranspose, Conv2D,
                          Conv2DTranspose, Conv3D, Conv3DTranspose, GlobalAvgPool1D,
                          GlobalAvgPool2D, GlobalAvgPool3D, GlobalMaxPool1D, GlobalMaxPool2D,
                          GlobalMaxPool3D, MaxPool1D, MaxPool2D, MaxPool3D)
from .parameter import DeferredInitializationError, Parameter, ParameterDict
from .symbol_block import SymbolBlock
from .rnn import (GRU, LSTM, RNN, BinaryTreeLSTMCell, ChildSumTreeLSTMCell, DropoutCell, GRUCell,
                  LSTMCell, RecurrentCell, RNNCell, SequentialRNNCell)

__all__ = [
    "init", "rnn", "GRU", "LSTM", "RNN", "BinaryTreeLSTMCell", "ChildSumTreeLSTMCell", "DropoutCell",
    "GRUCell", "LSTMCell", "RecurrentCell", "RNNCell", "SequentialRNNCell", "ELU", "GELU", "SELU", "Swish", "Activation", "LeakyReLU", "PReLU", "BatchNorm", "SyncBatchNorm", "Dense", "Dropout",
    "Embedding", "Flatten", "HybridLambda", "Lambda", "LayerNorm", "Block", "Concatenate",
    "Concurrent", "HybridBlock", "HybridConcatenate", "HybridConcurrent", "Identity", "HybridSequential", "ParameterFileError", "Sequential",
    "AvgPool1D", "AvgPool2D", "AvgPool3D", "Conv1D", "Conv1DTranspose", "Conv2D",
    "Conv2DTranspose", "Conv3D", "Conv3DTranspose", "GlobalAvgPool1D", "GlobalAvgPool2D",
    "GlobalAvgPool3D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D", "MaxPool1D",
    "MaxPool2D", "MaxPool3D", "DeferredInitializationError", "Parameter", "ParameterDict", "SymbolBlock",
]
