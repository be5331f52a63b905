"""Datasets in, tensors out: loaders, labeled/unlabeled/validation splits (unlabeled
targets are -1)."""
from .images import ImageSet
from .sources import DATASETS, DataNotFoundError, load_dataset
from .splits import split_labeled, split_with_validation

__all__ = ["ImageSet", "DATASETS", "DataNotFoundError", "load_dataset", "split_labeled",
           "split_with_validation"]
