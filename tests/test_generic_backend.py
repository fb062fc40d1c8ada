"""The generic backend entry: a library with no entry of its own, served through the Array API
standard alone — Dask arrays here (installed with the dask extra), JAX where it is installed —
and a clear refusal for a namespace that lacks what portamlp computes with."""

from __future__ import annotations

import types

import numpy as np
import pytest
from conftest import ReadOnlyNumPy

import portamlp
from portamlp.backends import LIBRARIES, Backend, get_backend, library_for, to_numpy
from portamlp.backends.generic import REQUIRED, Generic

pytestmark = pytest.mark.filterwarnings("ignore::portamlp.PortamlpWarning")

OPTIONS = dict(layers=(6, 8, 3), epochs=2, batch_size=20, seed=0, learning_rate=0.3,
               cost="cross_entropy", activation="relu", momentum=0.9, progress=False)


def _data(n=120):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 6))
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    return x, y


def test_dask_arrays_train_and_predict_where_they_live():
    da = pytest.importorskip("dask.array")
    x, y = _data()
    xv, yv = _data(40)
    dx, dy = da.from_array(x, chunks=60), da.from_array(y, chunks=60)
    result = portamlp.train(x=dx, y=dy, validation_data=(da.from_array(xv), da.from_array(yv)),
                            dtype="float64", **OPTIONS)
    net = result.network
    assert net.backend.name == "dask" and net.backend.library.name not in LIBRARIES
    assert isinstance(net.backend.library, Generic) and not net.backend.in_place
    assert all(isinstance(p, da.Array) for p in net.parameters())
    reference = portamlp.train(x=x, y=y, validation_data=(xv, yv), dtype="float64", **OPTIONS)
    for p, q in zip(net.host_parameters()[0], reference.network.host_parameters()[0]):
        np.testing.assert_array_equal(p, q)  # the same maths, the same bits
    assert [r.validation_accuracy for r in result.history] == \
        [r.validation_accuracy for r in reference.history]
    labels = net.predict(dx)
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), reference.network.predict(x))
    assert net.evaluate(dx, dy) == reference.network.evaluate(x, y)
    assert get_backend("dask").library is net.backend.library  # known by name once seen
    assert get_backend("dask.array").name == "dask"
    # each step's results are computed and stored: the graphs do not grow with the steps
    # (without it, 600 steps made a graph of 28,000 tasks and every step slower than the last)
    assert net.backend.library.lazy
    assert all(len(dict(p.__dask_graph__())) <= 2 for p in net.parameters())


def test_a_namespace_without_what_portamlp_computes_with_is_refused_by_name():
    xp = types.ModuleType("sparse_maths", "an Array API namespace missing two functions")
    xp.__array_api_version__ = "2023.12"
    import array_api_compat.numpy as compat

    for name in REQUIRED:
        if name not in ("tanh", "take"):
            setattr(xp, name, getattr(compat, name))
    with pytest.raises(ValueError, match=r"backend 'sparse_maths' is not usable here: its "
                                         r"Array API namespace \(sparse_maths\) lacks \['take', "
                                         r"'tanh'\]"):
        get_backend(xp)


def test_arrays_of_no_array_api_library_say_so():
    class Opaque:
        shape = (3, 2)

    assert library_for(Opaque()) is None and library_for([1.0, 2.0]) is None
    with pytest.raises(TypeError, match="do not implement the Python Array API standard"):
        portamlp.backends.backend_of(Opaque())


class _Recording(ReadOnlyNumPy):
    """NumPy through a namespace that records which of its attributes are used."""

    def __init__(self):
        self.used: set[str] = set()

    def namespace(self):
        base, used = super().namespace(), self.used

        class Namespace(types.ModuleType):
            def __getattr__(self, name):
                used.add(name)
                return getattr(base, name)

        return Namespace("recording")


def test_training_and_prediction_use_only_what_the_generic_entry_requires():
    """The REQUIRED list of the generic entry is complete: the portable step, validation,
    dropout, max-norm, early stopping and prediction call nothing else of a namespace."""
    library = _Recording()
    be = Backend(library=library, xp=library.namespace(), device="cpu")
    x, y = _data()
    options = dict(OPTIONS, dropout=0.2, input_dropout=0.1, max_norm=3.0, early_stopping=True,
                   patience=1, layers=(6, 8, 8, 3))
    result = portamlp.train(x=x, y=y, validation_data=_data(40), test_data=_data(30),
                            backend=be, **options)
    result.network.predict_proba(x)
    adam = {k: v for k, v in OPTIONS.items() if k != "momentum"}
    portamlp.train(x=x, y=y, backend=be, **dict(adam, optimizer="adam", learning_rate=0.01,
                                                cost="quadratic", activation="sigmoid"))
    used = {name for name in library.used if not name.startswith("__")}
    assert used and used <= set(REQUIRED), sorted(used - set(REQUIRED))
    assert to_numpy(result.network.predict(x)).shape == (120,)
