"""Data sets in the MNIST (IDX) format: parsing, the embedded MNIST, loading and device staging."""

from .idx import IDX_TYPES, read_idx, write_idx
from .loading import SCALES, load, load_mnist, scale_images
from .sources import DATASETS, SPLITS, clear_cache, find_files, read_split
from .staging import DeviceDataset

__all__ = [
    "IDX_TYPES", "read_idx", "write_idx", "SCALES", "load", "load_mnist", "scale_images",
    "DATASETS", "SPLITS", "clear_cache", "find_files", "read_split", "DeviceDataset",
]
