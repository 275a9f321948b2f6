"""Data modules: the built-in ones keep their whole set in memory as tensors; images of
one's own are read from disk."""

from litlab.data.circles import CirclesDataModule
from litlab.data.digits import DigitsDataModule
from litlab.data.images import ImagesDataModule
from litlab.data.tabular import CsvDataModule, DiabetesDataModule

__all__ = [
    "CirclesDataModule",
    "CsvDataModule",
    "DiabetesDataModule",
    "DigitsDataModule",
    "ImagesDataModule",
]
