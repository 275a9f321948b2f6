"""Data modules: each keeps its whole set in memory as tensors."""

from litlab.data.circles import CirclesDataModule

__all__ = ["CirclesDataModule"]
