"""Data sets in the MNIST (IDX) format: parsing, the embedded MNIST, loading and device staging.

``read_idx`` parses any IDX file; ``load`` / ``load_mnist`` return a split as arrays of a chosen
backend, device, dtype and scaling; ``DeviceDataset`` keeps a split on the device and serves
mini-batches. Named data sets other than MNIST are found on disk, or downloaded on request
(``download=True``) from their official source and verified.
"""

from .fetch import cache_dir, download
from .idx import IDX_TYPES, read_idx, write_idx
from .loading import LOAD_SPLITS, host_split, load, load_mnist
from .registry import DATASETS, SPLITS, class_names, default_validation_length, n_classes
from .scaling import SCALES, Preprocessing, check_scale, scale_images, train_moments
from .sources import (
    EMBEDDED_DIR,
    SYSTEM_DATA_DIR,
    clear_cache,
    embedded_sums,
    find_files,
    read_split,
    search_dirs,
)
from .staging import DeviceDataset, one_hot

__all__ = [
    "DATASETS",
    "EMBEDDED_DIR",
    "IDX_TYPES",
    "LOAD_SPLITS",
    "SCALES",
    "SPLITS",
    "class_names",
    "SYSTEM_DATA_DIR",
    "DeviceDataset",
    "Preprocessing",
    "cache_dir",
    "check_scale",
    "clear_cache",
    "default_validation_length",
    "download",
    "embedded_sums",
    "find_files",
    "host_split",
    "load",
    "load_mnist",
    "n_classes",
    "one_hot",
    "read_idx",
    "read_split",
    "scale_images",
    "search_dirs",
    "train_moments",
    "write_idx",
]
