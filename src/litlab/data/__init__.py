"""Data modules: the built-in ones hold their sets as tensors; images are read from disk."""

from litlab.data.circles import CirclesDataModule as CirclesDataModule
from litlab.data.digits import DigitsDataModule as DigitsDataModule
from litlab.data.images import ImagesDataModule as ImagesDataModule
from litlab.data.tabular import CsvDataModule as CsvDataModule
from litlab.data.tabular import DiabetesDataModule as DiabetesDataModule
