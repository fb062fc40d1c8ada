"""The earlier path of Dask inference: ``from portamlp.parallel import predict_dask`` still works.

Inference on Dask arrays lives in :mod:`portamlp.distributed` with data-parallel training
(:func:`portamlp.distributed.predict_dask`, :func:`portamlp.distributed.predict_proba_dask`);
this package names the same functions.
"""

from __future__ import annotations

from ..distributed import predict_dask, predict_proba_dask

__all__ = ["predict_dask", "predict_proba_dask"]
