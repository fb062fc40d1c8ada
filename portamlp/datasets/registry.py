"""The named data sets in the MNIST layout: file names, classes, credits and official sources.

Plain data only. Each download source is a base URL that the four file names are appended to,
with the hash of every compressed file pinned: the MD5 the publisher gives, or SHA-256. Tests point
``DATASETS[name]["mirrors"]`` and ``["hashes"]`` at a local server with ``monkeypatch.setitem``.
"""

from __future__ import annotations

__all__ = ["DATASETS", "SPLITS", "file_names", "n_classes", "class_names",
           "default_validation_length"]

#: File stems of each split in the MNIST layout (found as ``<stem>.gz`` or raw ``<stem>``).
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: Named data sets: number of classes, whether they are written symbols (a mirror image of one
#: is not a symbol of the set: flip=True warns), their names where they are not the digits,
#: credit line,
#: download mirrors (base URLs, tried in order),
#: pinned hashes of the ``.gz`` files (``"md5:<hex>"`` or ``"sha256:<hex>"``) and, where one
#: exists, the Debian package that installs the files under ``/usr/share/datasets/<name>/``.
DATASETS: dict[str, dict] = {
    "mnist": {
        "classes": 10,
        "symbols": True,
        "credit": "MNIST, Yann LeCun, Corinna Cortes and Christopher J.C. Burges (CC BY-SA 3.0)",
        # Embedded in the package (verified by SHA-256): nothing to download.
        "mirrors": [],
        "hashes": {},
        "debian": None,
    },
    "fashion-mnist": {
        "classes": 10,
        "symbols": False,
        # the labels' descriptions in the README of github.com/zalandoresearch/fashion-mnist
        "class_names": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                        "Shirt", "Sneaker", "Bag", "Ankle boot"],
        "credit": "Fashion-MNIST, Zalando Research (MIT licence)",
        # The official sources are the data/fashion folder of github.com/zalandoresearch/
        # fashion-mnist and the download links of its README (same files).
        "mirrors": [
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ],
        # MD5 checksums as published in the "Get the Data" table of the README of
        # github.com/zalandoresearch/fashion-mnist.
        "hashes": {
            "train-images-idx3-ubyte.gz": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "md5:25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "md5:bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "md5:bb300cfdad3c16e7a12a480ee83cd310",
        },
        "debian": "dataset-fashion-mnist",
    },
    "kmnist": {
        "classes": 10,
        "symbols": True,
        # the hiragana of each class (github.com/rois-codh/kmnist, kmnist_classmap.csv),
        # romanised: お き す つ な は ま や れ を
        "class_names": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
        "credit": "Kuzushiji-MNIST, CODH, adapted from the Kuzushiji Dataset (NIJL and others), "
                  "doi:10.20676/00000341 (CC BY-SA 4.0)",
        # The official source, as linked from the README of github.com/rois-codh/kmnist (http
        # there; https tried first).
        "mirrors": [
            "https://codh.rois.ac.jp/kmnist/dataset/kmnist/",
            "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        ],
        # The publisher lists no checksums (its README and download_data.py give only URLs);
        # these MD5s are the ones torchvision pins for the same URLs
        # (pytorch/vision, torchvision/datasets/mnist.py, class KMNIST, ``resources``).
        "hashes": {
            "train-images-idx3-ubyte.gz": "md5:bdb82020997e1d708af4cf47b453dcf7",
            "train-labels-idx1-ubyte.gz": "md5:e144d726b3acfaa3e44228e80efcd344",
            "t10k-images-idx3-ubyte.gz": "md5:5c965bf0a639b31b8f53240b1b52f4d7",
            "t10k-labels-idx1-ubyte.gz": "md5:7320c461ea6c1c855c0b718fb2a4b134",
        },
        "debian": None,
    },
}


def file_names(split: str) -> tuple[str, str]:
    """Stems ``(images, labels)`` of ``split``; raises ``ValueError`` for an unknown split."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not valid; choose one of {list(SPLITS)}")
    return SPLITS[split]


def n_classes(name: str) -> int:
    """Number of classes of a named data set (10 for a folder of MNIST-format files)."""
    return DATASETS.get(name, {}).get("classes", 10)


def class_names(name: str, k: int | None = None) -> list[str]:
    """The names of the classes of a named data set; the class numbers as text for MNIST, a
    folder, or a data set whose ``k`` classes differ from its registered names."""
    names = DATASETS.get(name, {}).get("class_names")
    k = n_classes(name) if k is None else k
    return list(names) if names and len(names) == k else [str(c) for c in range(k)]


def default_validation_length(n_train_file: int) -> int:
    """Rows at the end of a training file that form the validation split by default:
    ``min(10_000, n // 6)`` (10,000 of MNIST's 60,000)."""
    return min(10_000, n_train_file // 6)
