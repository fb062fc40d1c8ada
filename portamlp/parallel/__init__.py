"""Batch inference on Dask arrays, on top of :class:`portamlp.Network`.

:func:`predict_dask` and :func:`predict_proba_dask` (in :mod:`portamlp.parallel.dask_inference`,
imported on first use; ``pip install "portamlp[dask]"``) turn a Dask array of inputs into a lazy
Dask array of predictions, chunked along rows. Data-parallel *training* is
:mod:`portamlp.distributed`.
"""

from __future__ import annotations

__all__ = ["predict_dask", "predict_proba_dask"]


def predict_dask(network, images):
    """Predicted classes of a Dask array of inputs, as a lazy Dask array chunked like its rows.

    See :func:`portamlp.parallel.dask_inference.predict_dask` (needs ``portamlp[dask]``).
    """
    from ..distributed.dask_inference import predict_dask as predict

    return predict(network, images)


def predict_proba_dask(network, images):
    """Class scores of a Dask array of inputs, as a lazy Dask array ``(n, n_classes)``.

    See :func:`portamlp.parallel.dask_inference.predict_proba_dask` (needs ``portamlp[dask]``).
    """
    from ..distributed.dask_inference import predict_proba_dask as predict_proba

    return predict_proba(network, images)
