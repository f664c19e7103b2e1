"""Gluon's ``rnn`` namespace: recurrent cells, recurrent layers and the Tree-LSTM cells."""
from .rnn_cell import (DropoutCell, GRUCell, LSTMCell, RecurrentCell, RNNCell,
                       SequentialRNNCell)
from .rnn_layer import GRU, LSTM, RNN
from .tree import BinaryTreeLSTMCell, ChildSumTreeLSTMCell

__all__ = ["RecurrentCell", "RNNCell", "LSTMCell", "GRUCell", "SequentialRNNCell", "DropoutCell",
           "RNN", "LSTM", "GRU", "ChildSumTreeLSTMCell", "BinaryTreeLSTMCell"]
