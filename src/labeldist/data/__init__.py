"""Datasets with per-annotator votes, in one schema."""

from labeldist.data.describe import describe
from labeldist.data.registry import dataset_names, get_spec, load_dataset
from labeldist.data.schema import Dataset, Item
from labeldist.errors import DataError

__all__ = ["DataError", "Dataset", "Item", "dataset_names", "describe", "get_spec", "load_dataset"]
