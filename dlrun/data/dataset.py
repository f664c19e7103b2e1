"""In-memory datasets."""
from __future__ import annotations

import numpy as np


class ArrayDataset:
    """Examples ``data[i]`` with labels ``label[i]``, held as two NumPy arrays."""

    def __init__(self, data: np.ndarray, label: np.ndarray):
        if len(data) != len(label):
            raise ValueError(f"ArrayDataset: {len(data)} examples but {len(label)} labels")
        self.data = data
        self.label = label

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.data[i], self.label[i]
