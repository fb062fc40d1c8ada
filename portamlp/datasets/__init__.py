"""Data sets in the MNIST (IDX) format: parsing, the embedded MNIST, loading and device staging.

``read_idx`` parses any IDX file; ``load`` / ``load_mnist`` return a split as arrays of a chosen
backend, device, dtype and scaling; ``DeviceDataset`` keeps a split on the device and serves
mini-batches. Named data sets other than MNIST are found on disk, or downloaded on request
(``download=True``) from their official source and verified.
"""

from .fetch import cache_dir, download
from .idx import IDX_TYPES, read_idx, write_idx
from .loading import SCALES, load, load_mnist, n_classes, scale_images
from .registry import DATASETS, SPLITS
from .sources import SYSTEM_DATA_DIR, clear_cache, find_files, read_split, search_dirs
from .staging import DeviceDataset

__all__ = [
    "DATASETS",
    "IDX_TYPES",
    "SCALES",
    "SPLITS",
    "SYSTEM_DATA_DIR",
    "DeviceDataset",
    "cache_dir",
    "clear_cache",
    "download",
    "find_files",
    "load",
    "load_mnist",
    "n_classes",
    "read_idx",
    "read_split",
    "scale_images",
    "search_dirs",
    "write_idx",
]
