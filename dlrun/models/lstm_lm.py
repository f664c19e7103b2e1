"""The LSTM language model (Zaremba et al. 2014): embedding -> multi-layer LSTM -> decoder."""
from __future__ import annotations

from typing import Any

from .. import nn
from ..engine import NDArray


class LSTMLM(nn.HybridBlock):
    """Predicts the next token at every step of a (T, N) batch of token ids.

    Dropout is applied to the embeddings, between LSTM layers and before the decoder, as in
    Zaremba et al.; ``tie_weights`` shares the embedding matrix with the decoder (Press &
    Wolf 2017; needs ``embed_size == hidden_size``).
    """

    def __init__(self, vocab_size: int, embed_size: int = 200, hidden_size: int = 200,
                 num_layers: int = 2, dropout: float = 0.0, tie_weights: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if tie_weights and embed_size != hidden_size:
            raise ValueError(f"tie_weights needs embed_size == hidden_size, got {embed_size} and {hidden_size}")
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(hidden_size, num_layers=num_layers, dropout=dropout, input_size=embed_size)
        self.decoder = nn.Dense(vocab_size, flatten=False, in_units=hidden_size)
        if tie_weights:
            self.decoder.weight = self.embedding.weight

    def begin_state(self, batch_size: int, ctx: Any = None) -> list[NDArray]:
        """Zero (h, c), each (num_layers, batch_size, hidden_size)."""
        return self.lstm.begin_state(batch_size, ctx=ctx)

    def forward(self, tokens: NDArray, states: list[NDArray]) -> tuple[NDArray, list[NDArray]]:
        """Logits (T, N, vocab_size) and the states after the last step."""
        hidden, states = self.lstm(self.dropout(self.embedding(tokens)), states)
        return self.decoder(self.dropout(hidden)), states
