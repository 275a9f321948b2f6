"""Data modules: each keeps its whole set in memory as tensors."""

from litlab.data.circles import CirclesDataModule
from litlab.data.digits import DigitsDataModule
from litlab.data.tabular import CsvDataModule, DiabetesDataModule

__all__ = ["CirclesDataModule", "CsvDataModule", "DiabetesDataModule", "DigitsDataModule"]
