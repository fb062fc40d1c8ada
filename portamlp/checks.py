"""Checks of user input, written once: integers, numbers, choices, dtypes, layer sizes.

Every public function of portamlp that takes an option validates it through these helpers, so a
bad value gets the same kind of message everywhere: the option's name, the value given, and what
would be valid. Names are exact; a near miss gets a suggestion (``"ReLU"`` -> ``'relu'``).
Numbers come back as Python ``int`` / ``float``: a NumPy scalar hyper-parameter would otherwise
promote float32 arrays to float64 under NumPy 2 and CuPy 14 promotion rules (NEP 50).
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable
from typing import Any, Literal, overload

__all__ = [
    "DTYPES", "InvalidParameterError", "suggestion", "check_choice", "check_int", "check_float",
    "check_bool", "check_dtype", "parse_layers", "check_layers", "is_integer", "is_number",
]

#: Floating dtypes portamlp trains in, by name.
DTYPES = ("float32", "float64")


class InvalidParameterError(ValueError, TypeError):
    """An invalid parameter value, of the wrong type or out of range.

    It is both a :class:`ValueError` and a :class:`TypeError`, as scikit-learn's own
    ``InvalidParameterError`` is, so ``except ValueError`` and ``except TypeError`` both catch
    it. The checks below raise plain ``TypeError`` (wrong type) and ``ValueError`` (wrong
    value); an interface whose convention is one error for every invalid parameter (the
    scikit-learn estimator) raises this instead, with the check's message.
    """


def is_integer(value: Any) -> bool:
    """True for Python and NumPy integers, not for bools."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and \
        type(value).__name__ != "bool_"


def is_number(value: Any) -> bool:
    """True for real Python and NumPy numbers, not for bools."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and \
        type(value).__name__ != "bool_"


#: What other libraries (and habit) call portamlp's options: a name here that is not an option
#: gets the option as its suggestion.
OTHER_NAMES = {"lr": "learning_rate", "eta": "learning_rate",
               "learning_rate_init": "learning_rate", "n_epochs": "epochs",
               "num_epochs": "epochs", "max_iter": "epochs", "hidden_layer_sizes": "layers",
               "loss": "cost", "batch": "batch_size", "random_state": "seed"}


def suggestion(value: Any, choices: Iterable[str]) -> str:
    """``" (did you mean 'relu'?)"`` for a near miss of one of ``choices`` (or another
    library's name for one, :data:`OTHER_NAMES`), else ``""``."""
    if not isinstance(value, str):
        return ""
    choices = [str(c) for c in choices]
    folded = {c.lower().replace("-", "_"): c for c in choices}
    key = value.strip().lower().replace("-", "_")
    if key in folded:
        return f" (did you mean {folded[key]!r}?)"
    dashes = key[:len(key) - len(key.lstrip("_"))]  # "__" for a command-line flag
    other = OTHER_NAMES.get(key.lstrip("_"))
    if other is not None and dashes + other in folded:
        return f" (did you mean {folded[dashes + other]!r}?)"
    close = difflib.get_close_matches(key, list(folded), n=1, cutoff=0.75)
    return f" (did you mean {folded[close[0]]!r}?)" if close else ""


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` if it is exactly one of ``choices``; else a ValueError with a suggestion."""
    choices = list(choices)
    if isinstance(value, str) and value in choices:
        return value
    raise ValueError(f"unknown {name} {value!r}{suggestion(value, choices)}; choose one of "
                     f"{choices}")


@overload
def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None,
              optional: Literal[False] = False) -> int: ...
@overload
def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None,
              optional: Literal[True]) -> int | None: ...
def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None,
              optional: bool = False) -> int | None:
    """An integer option as a Python ``int`` (``None`` passes when ``optional``)."""
    if value is None and optional:
        return None
    if not is_integer(value):
        if is_number(value) and float(value).is_integer():
            hint = f" (write {int(value)})"
        else:
            hint = ""
        raise TypeError(f"{name} must be an integer, got {value!r}{hint}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}={value!r} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}={value!r} must be <= {maximum}")
    return value


@overload
def check_float(name: str, value: Any, *, minimum: float | None = None,
                maximum: float | None = None, above: float | None = None,
                below: float | None = None, optional: Literal[False] = False) -> float: ...
@overload
def check_float(name: str, value: Any, *, minimum: float | None = None,
                maximum: float | None = None, above: float | None = None,
                below: float | None = None, optional: Literal[True]) -> float | None: ...
def check_float(name: str, value: Any, *, minimum: float | None = None,
                maximum: float | None = None, above: float | None = None,
                below: float | None = None, optional: bool = False) -> float | None:
    """A finite real option as a Python ``float``, within the given bounds.

    ``minimum``/``maximum`` are inclusive, ``above``/``below`` exclusive.
    """
    if value is None and optional:
        return None
    if not is_number(value):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number")
    ok = ((minimum is None or value >= minimum) and (maximum is None or value <= maximum)
          and (above is None or value > above) and (below is None or value < below))
    if not ok:
        limits = [f"{op} {bound}" for op, bound in ((">=", minimum), (">", above),
                                                    ("<=", maximum), ("<", below))
                  if bound is not None]
        raise ValueError(f"{name}={value!r} must be {' and '.join(limits)}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """``True`` or ``False`` (NumPy bools too), nothing else."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def check_dtype(dtype: Any, name: str = "dtype") -> str:
    """``"float32"`` or ``"float64"`` from a name or a dtype of any array library.

    Accepts ``"float64"``, ``numpy.float64``, ``numpy.dtype("float64")``, ``torch.float64``,
    ``cupy.float64`` and ``array_api_strict.float64``; ``None`` means float32.
    """
    if dtype is None:
        return "float32"
    if isinstance(dtype, str):
        return check_choice(name, dtype, DTYPES)
    label = _dtype_name(dtype)
    if label in DTYPES:
        return label
    raise ValueError(f"{name}={dtype!r} is not supported; use one of {list(DTYPES)}")


def _dtype_name(dtype: Any) -> str | None:
    """The plain name of a dtype object of NumPy, CuPy, PyTorch or array-api-strict."""
    try:
        import numpy as np

        return np.dtype(dtype).name
    except TypeError:
        pass
    text = str(dtype).rsplit(".", 1)[-1].strip("'>")
    return text if text in DTYPES else None


def parse_layers(text: str) -> tuple[int, ...]:
    """``"784,30,10"`` (or ``"784-30-10"``) -> ``(784, 30, 10)``."""
    parts = [s for s in text.replace(" ", "").replace("-", ",").split(",") if s]
    try:
        return tuple(int(s) for s in parts)
    except ValueError:
        raise ValueError(f"layers={text!r} is not a comma-separated list of integers such as "
                         "784,30,10") from None


def check_layers(layers: Any, name: str = "layers", *, min_outputs: int = 2) -> tuple[int, ...]:
    """Validate layer sizes such as ``(784, 30, 10)`` (or ``"784,30,10"``); return a tuple.
    A classifier needs 2 outputs at least (``min_outputs=1``: a regression's single value)."""
    if isinstance(layers, str):
        layers = parse_layers(layers)
    try:
        sizes = tuple(layers)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of integers such as (784, 30, 10), got "
                        f"{layers!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"{name}={list(sizes)!r} needs at least 2 sizes (inputs and outputs), "
                         "e.g. (784, 30, 10)")
    for s in sizes:
        if not is_integer(s):
            raise TypeError(f"layer sizes must be integers, got {s!r} in {name}={list(sizes)!r}")
        if s < 1:
            raise ValueError(f"layer sizes must be positive, got {s} in {name}={list(sizes)!r}")
    if sizes[-1] < min_outputs:
        raise ValueError(f"the output layer needs at least 2 classes, got {name}={list(sizes)!r}")
    return tuple(int(s) for s in sizes)
