"""Batch inference on Dask arrays: lazy predictions, one task per chunk of rows.

The network enters the task graph once, as a single key holding its host parameters (a
:class:`NetworkPayload` wrapped by :func:`dask.delayed`); every chunk's task depends on that key.
A distributed scheduler therefore ships the network to each worker once, however many chunks
there are, and each worker process rebuilds the :class:`~portamlp.Network` once per array
library (NumPy or CuPy, following its chunks). The graph comes from :func:`dask.array.map_blocks`:
Dask schedules it; nothing here does.

Needs ``pip install "portamlp[dask]"``.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.array.utils import meta_from_array
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(f"Dask inference needs Dask ({exc}): pip install \"portamlp[dask]\"") \
        from exc

from ..backends import backend_of, library_of
from ..nn.network import Network

__all__ = ["predict_dask", "predict_proba_dask", "NetworkPayload", "payload_loads"]

#: How many times a :class:`NetworkPayload` was unpickled in this process (for tests and
#: diagnostics: a worker should load the network once, not once per chunk).
_LOADS = 0


def payload_loads() -> int:
    """How many network payloads this process has unpickled so far."""
    return _LOADS


class NetworkPayload:
    """A network as plain host data, rebuilt on first use in each process and array library.

    Parameters
    ----------
    network : Network
        Its parameters are copied to the host once, here.
    """

    def __init__(self, network: Network):
        if not isinstance(network, Network):
            raise TypeError(f"network must be a portamlp.Network, got {type(network).__name__}")
        weights, biases = network.host_parameters()
        self.weights, self.biases = [np.asarray(w) for w in weights], \
            [np.asarray(b) for b in biases]
        self.activation, self.cost, self.dtype = network.activation, network.cost, network.dtype
        self.preprocessing = network.preprocessing
        self.n_in, self.n_classes = network.layers[0], network.layers[-1]
        digest = hashlib.sha256()
        for a in self.weights + self.biases:
            digest.update(a.tobytes())
        digest.update(f"{self.activation}/{self.cost}/{self.dtype}".encode())
        self.token = digest.hexdigest()[:32]
        self._networks: dict[tuple[str, str], Network] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_networks"], state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        global _LOADS
        _LOADS += 1
        self.__dict__.update(state)
        self._networks = {}
        self._lock = threading.Lock()

    def network_for(self, chunk: Any) -> Network:
        """The network on the library and device of ``chunk`` (built once per process)."""
        key = (library_of(chunk), str(getattr(chunk, "device", "")))
        with self._lock:
            net = self._networks.get(key)
            if net is None:
                backend = backend_of(chunk) if key[0] != "numpy" else "numpy"
                net = Network.from_arrays(self.weights, self.biases, activation=self.activation,
                                          cost=self.cost, dtype=self.dtype, backend=backend,
                                          preprocessing=self.preprocessing)
                self._networks[key] = net
            return net


def _rows(chunk: Any) -> Any:
    """A chunk as ``(rows, features)``: images ``(rows, 28, 28)`` are flattened."""
    return chunk if chunk.ndim == 2 else chunk.reshape(chunk.shape[0], -1)


def _predict_block(chunk: Any, payload: NetworkPayload) -> Any:
    return payload.network_for(chunk).predict(_rows(chunk))


def _predict_proba_block(chunk: Any, payload: NetworkPayload) -> Any:
    return payload.network_for(chunk).predict_proba(_rows(chunk))


def _prepared(network: Network, images: Any) -> tuple[Any, Any]:
    """Check the input and keep whole rows in each chunk: ``(images, the network's key)``."""
    if not isinstance(images, da.Array):
        raise TypeError(f"images must be a dask.array.Array, got {type(images).__name__}; for "
                        "arrays in memory use network.predict(x)")
    payload = NetworkPayload(network)
    if images.ndim < 2 or int(np.prod(images.shape[1:])) != payload.n_in:
        raise ValueError(f"images must have shape (n_samples, {payload.n_in}) (or (n_samples, "
                         f"...) with {payload.n_in} values per row) for a network with layers "
                         f"{list(network.layers)}, got shape {images.shape}")
    if any(len(c) > 1 for c in images.chunks[1:]):  # a row must not be split across chunks
        images = images.rechunk({axis: -1 for axis in range(1, images.ndim)})
    return images, dask.delayed(payload, name=f"portamlp-network-{payload.token}", pure=True)


def predict_dask(network: Network, images: Any) -> Any:
    """Predicted class of each row of a Dask array, lazily.

    Parameters
    ----------
    network : Network
    images : dask.array.Array of shape (n_samples, n_in) or (n_samples, ...)
        Chunked along the rows (the other axes are merged into one chunk if split); NumPy or
        CuPy chunks, already prepared as the network's inputs (e.g. divided by 255), as for
        :meth:`Network.predict`.

    Returns
    -------
    dask.array.Array of int64, shape (n_samples,)
        Chunked like ``images``'s rows; each chunk in the library of the input chunk. Nothing
        is computed until you call ``.compute()`` (or persist it).

    Examples
    --------
    >>> import dask.array as da
    >>> labels = predict_dask(net, da.from_array(x, chunks=(10_000, 784)))  # doctest: +SKIP
    >>> labels.compute()  # doctest: +SKIP
    """
    images, key = _prepared(network, images)
    return da.map_blocks(_predict_block, images, key, dtype=np.int64,
                         drop_axis=list(range(1, images.ndim)),
                         meta=meta_from_array(images, ndim=1, dtype=np.int64))


def predict_proba_dask(network: Network, images: Any) -> Any:
    """Class scores of each row of a Dask array, lazily: :meth:`Network.predict_proba` per chunk.

    Parameters
    ----------
    network : Network
    images : dask.array.Array of shape (n_samples, n_in) or (n_samples, ...)
        As for :func:`predict_dask`.

    Returns
    -------
    dask.array.Array of shape (n_samples, n_classes)
        In the network's dtype, chunked like ``images``'s rows (one chunk across the classes).
    """
    images, key = _prepared(network, images)
    dtype = np.dtype(network.dtype)
    return da.map_blocks(_predict_proba_block, images, key, dtype=dtype,
                         chunks=(images.chunks[0], (network.layers[-1],)),
                         drop_axis=list(range(2, images.ndim)) or None,
                         meta=meta_from_array(images, ndim=2, dtype=dtype))
