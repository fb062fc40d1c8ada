"""portamlp: a multilayer perceptron written from scratch against the Python Array API standard.

One implementation of forward pass, backpropagation and SGD runs on NumPy (CPU), CuPy (CUDA GPUs),
PyTorch tensors and any other Array API namespace::

    import portamlp
    result = portamlp.train(backend="numpy", epochs=3)
    print(result.test_accuracy)
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from . import datasets, images
from .backends import Backend, BackendStatus, available_backends, get_backend
from .errors import (
    DataFormatError,
    DeviceMemoryError,
    DivergenceError,
    ModelFormatError,
    PortamlpWarning,
    TrainingInterrupted,
)
from .files.models import load
from .nn.network import Network
from .training.config import EpochRecord, TrainConfig, TrainResult
from .training.train import train


def export_onnx(network: Network, path, **options):
    """:func:`portamlp.export.export_onnx` (imported when called: it needs the ``onnx``
    extra)."""
    from .export import export_onnx as export

    return export(network, path, **options)


try:
    __version__ = _version("portamlp")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "Backend", "BackendStatus", "available_backends", "get_backend", "Network", "train",
    "TrainConfig", "TrainResult", "EpochRecord", "load", "datasets", "images",
    "DataFormatError",
    "ModelFormatError", "DivergenceError", "DeviceMemoryError", "TrainingInterrupted",
    "PortamlpWarning", "__version__", "export_onnx",
]
