"""portamlp as scikit-learn estimators: ``from portamlp.sklearn import MLPClassifier,
MLPRegressor``.

:class:`MLPClassifier` and :class:`MLPRegressor` take scikit-learn's parameters (and a few of
portamlp's own), so code written for scikit-learn's estimators switches by changing the import;
they train with :func:`portamlp.train`, on NumPy or, with ``sklearn.set_config(
array_api_dispatch=True)``, on the library and device the data lives on (CuPy, PyTorch,
array-api-strict).

This package is a layer on top of the core: ``import portamlp`` never imports it, nor
scikit-learn. It needs scikit-learn 1.6 or later (``pip install "portamlp[sklearn]"``).
"""

try:
    import sklearn as _sklearn  # noqa: F401  (only to give a clear message when it is missing)
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError("portamlp.sklearn needs scikit-learn: pip install \"portamlp[sklearn]\" "
                      "(or pip install scikit-learn)") from exc

from ._classifier import MLPClassifier
from ._regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
